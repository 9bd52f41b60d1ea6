"""The atlas as a resumable run: one CSV row per (seed, test example, demonstration token).

Each test example is one unit of work (:func:`~icl_tokens.aggregation.loop.run_units`): its
exact atlas (:func:`~icl_tokens.atlas.exact.exact_atlas`) and its attribution
(:func:`~icl_tokens.atlas.attribution.attribute`), written in one append. Rows are keyed by
``(seed, example_id, "pos=<position>")``; the expected keys come from the episodes' prompts (the
tokenizer alone), so a killed run rerun with the same arguments computes only the missing
examples.

Columns (:func:`atlas_columns`): ``position`` is the token's index in the categorized prompt
(as ``categorize --json`` numbers its ``tokens``), ``token``, ``categories`` and ``roles`` are
that record's ``text``, ``categories`` and ``roles`` (lists joined with ``|``), ``demo`` the
0-based demonstration. ``delta_margin`` is the exact change of the gold label's margin
(``margin - base_margin``; :func:`~icl_tokens.atlas.exact.label_margin`), ``flipped`` whether the
prediction of the run's scoring changed, ``attribution`` / ``attribution_atp`` the gradient and
AtP* estimates of ``delta_margin`` over the same layers, ``score_<label>`` the knocked-out label
scores. Per category knockout ``g`` (``groups``): ``in_<g>`` (1 if ``g`` hides this token) and
``group_<g>`` (the measured margin change of ``g`` on this example, the same on all its rows).
``exact_s`` and ``attribution_s``: each method's wall time on this example (the same on all its
rows; the episode's shared prefix is computed before either clock starts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import numpy as np
import pandas as pd

from ..ablation.condition import Options, fingerprint_sha256
from ..ablation.conditions import REGISTRY
from ..ablation.knockout import check_index_list
from ..categorize import TokenizedPrompt, categorize
from ..engine.items import Item, LabelSet
from ..engine.prefix_cache import PrefixCache
from ..episodes import Episode, sample_episode
from ..experiments.config import RunConfig
from ..experiments.runner import data_note, model_check, on_model
from ..prompts import build_prompt
from ..tasks import TaskSpec
from .attribution import attribute
from .exact import ExactAtlas, exact_atlas
from .items import (
    DEFAULT_GROUPS,
    atlas_items,
    check_groups,
    demo_positions,
    group_keys,
    pos_condition,
)

__all__ = ["AtlasConfig", "run_atlas", "example_unit", "atlas_columns", "read_atlas",
           "atlas_prompts", "expected_keys", "TEXT_COLUMNS"]

#: Columns read back as text.
TEXT_COLUMNS = ("model", "task", "example_id", "condition", "gold", "token", "categories",
                "roles", "base_prediction", "prediction")
_HEAD = ("model", "task", "seed", "k", "example_id", "condition", "gold", "position", "demo",
         "token", "categories", "roles", "base_margin", "margin", "delta_margin",
         "base_prediction", "prediction", "flipped", "attribution", "attribution_atp")
Key = tuple[str, str, str]

if TYPE_CHECKING:
    from ..aggregation.loop import UnitContext


@dataclass
class AtlasConfig(RunConfig):
    """An atlas run (see the module docstring for its rows).

    Attributes:
        layers: Knock out (and attribute) only in these layers (``None``: all).
        groups: Representation-level category knockouts measured beside, for additivity.
    """

    scoring: str = "label"
    batch_size: int = 32
    layers: tuple[int, ...] | None = None
    groups: tuple[str, ...] = DEFAULT_GROUPS

    level: ClassVar[str] = "atlas"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.one_run_over_demonstrations("an atlas run")
        if self.layers is not None:
            if not self.layers:
                raise ValueError("layers is empty; pass None for all layers.")
            self.layers = tuple(int(v) for v in self.layers)
        self.groups = check_groups(tuple(self.groups))

    def identity(self) -> dict[str, Any]:
        """:meth:`RunConfig.identity` plus what each group knockout does."""
        d = super().identity()
        opts = Options(layers=self.layers)
        d["groups_sha256"] = fingerprint_sha256(REGISTRY.conditions(self.groups,
                                                                    "representation"), opts)
        return d

    def condition_names(self) -> list[str]:
        raise ValueError("atlas conditions depend on each prompt (pos=<i> per demonstration "
                         "token); use expected_keys(...) instead.")

    def build_items(self, ctx: Any, episode: Episode) -> list[Item]:
        """Per test example: the unablated item, its single-key knockouts, its groups."""
        return [it for _, item in atlas_prompts(ctx.task, ctx.tokenizer, ctx.labels, episode,
                                                self.stopword_variant)
                for it in atlas_items(item, self.layers, self.groups)]

    def check_model(self, model: Any) -> None:
        check_index_list("layer", self.layers, int(model.cfg.n_layers))


def atlas_prompts(task: TaskSpec, tokenizer: Any, labels: LabelSet, episode: Episode,
                  stopword_variant: str = "paper") -> list[tuple[TokenizedPrompt, Item]]:
    """Each test example's categorized prompt and its unablated item (as ``prompt_item``)."""
    out = []
    for test in episode.tests:
        tp = categorize(build_prompt(task, episode.demos, test), tokenizer,
                        stopword_variant=stopword_variant)
        out.append((tp, Item.from_prompt(tp, labels, meta={"seed": episode.seed,
                                                           "k": episode.k})))
    return out


def expected_keys(items: Sequence[Item]) -> list[Key]:
    """The row keys of these unablated items, in order: ``(seed, example_id, pos=<i>)``."""
    return [(str(it.meta["seed"]), it.example_id, pos_condition(int(p)))
            for it in items for p in demo_positions(it)]


def atlas_columns(task: TaskSpec, groups: Sequence[str]) -> list[str]:
    """The CSV columns of an atlas of ``task`` with these groups."""
    return (list(_HEAD) + [f"score_{w}" for w in task.label_words]
            + [c for g in groups for c in (f"in_{g}", f"group_{g}")]
            + ["n_tokens", "exact_s", "attribution_s"])


def _rows(cfg: AtlasConfig, task: TaskSpec, tp: TokenizedPrompt, ex: ExactAtlas,
          attr_grad: np.ndarray, attr_atp: np.ndarray, attr_s: float) -> list[dict[str, Any]]:
    """The rows of one example."""
    item, table = ex.item, tp.table()
    base_pred = ex.base.prediction(cfg.scoring)
    margins, delta, flips = ex.margins(), ex.delta_margin(), ex.flipped()
    groups = {g: (group_keys(item, g), ex.group_delta(g)) for g in cfg.groups}
    rows = []
    for j, p in enumerate(ex.positions.tolist()):
        r = ex.rows[j]
        row: dict[str, Any] = {
            "model": cfg.model, "task": task.name, "seed": item.meta["seed"], "k": cfg.k,
            "example_id": item.example_id, "condition": pos_condition(p), "gold": item.gold,
            "position": p, "demo": int(item.demo[p]), "token": table[p]["text"],
            "categories": "|".join(table[p]["categories"]),
            "roles": "|".join(table[p]["roles"]), "base_margin": f"{ex.base_margin:.6f}",
            "margin": f"{margins[j]:.6f}", "delta_margin": f"{delta[j]:.6f}",
            "base_prediction": base_pred, "prediction": r.prediction(cfg.scoring),
            "flipped": int(flips[j]), "attribution": f"{attr_grad[p]:.6f}",
            "attribution_atp": f"{attr_atp[p]:.6f}", "n_tokens": len(item),
            "exact_s": f"{ex.seconds:.4f}", "attribution_s": f"{attr_s:.4f}"}
        for w in task.label_words:
            row[f"score_{w}"] = f"{r.label_scores[w]:.6f}"
        for g, (keys, measured) in groups.items():
            row[f"in_{g}"] = int(keys[p])
            row[f"group_{g}"] = f"{measured:.6f}"
        rows.append(row)
    return rows


def _example(cfg: AtlasConfig, task: TaskSpec, model: Any, tokenizer: Any,
             tp: TokenizedPrompt, item: Item, cache: PrefixCache) -> list[dict[str, Any]]:
    """Exact atlas and attribution of one example, as rows."""
    if cfg.engine == "cached" and item.prefix_len:  # shared by the episode: off both clocks
        cache.get(model, tuple(item.input_ids[: item.prefix_len]), None, None, "scores")
    ex = exact_atlas(model, tokenizer, item, layers=cfg.layers, groups=cfg.groups,
                     scoring=cfg.scoring, engine=cfg.engine, batch_size=cfg.batch_size,
                     prefix_cache=cache)
    at = attribute(model, tokenizer, item, engine=cfg.engine, prefix_cache=cache,
                   base_scores=ex.base.label_scores)
    return _rows(cfg, task, tp, ex, at.estimate("grad", cfg.layers),
                 at.estimate("atp", cfg.layers), at.seconds)


def example_unit(ctx: UnitContext, cfg: AtlasConfig, task: TaskSpec, tp: TokenizedPrompt,
                 item: Item) -> list[dict[str, Any]]:
    """One atlas unit (one test example) in the process that holds the model: here, or on an
    executor's worker; the episode's prefix cache lives in ``ctx.state`` (one per seed)."""
    cache = ctx.state.setdefault(("prefix", item.meta["seed"]), PrefixCache())
    return _example(cfg, task, ctx.model, ctx.tokenizer, tp, item, cache)


def run_atlas(cfg: AtlasConfig, *, model: Any = None, tokenizer: Any = None,
              out: str | Path | None = None, progress: bool = True,
              log: Callable[[str], None] | None = None,
              on_unit: Callable[[str], None] | None = None,
              executor: Any = None) -> pd.DataFrame:
    """Run (or resume) an atlas and return its rows (:func:`atlas_columns`).

    Args:
        cfg: The run's arguments.
        model, tokenizer: A loaded bridge and its tokenizer (loaded from ``cfg`` if None).
        out: CSV path (resumable); ``None``: rows are only returned.
        progress: A progress bar over the examples.
        log: Where notes go (default stderr).
        on_unit: Called with ``seed S example E`` after each example's rows are written.
        executor: ``None``: compute here; a
            :class:`~icl_tokens.executors.ray_executor.RayExecutor`: one unit per test example
            on its workers (each holds the model; this process loads the tokenizer only). The
            file equals a local run's (floats within 1e-5 where hardware differs).
    """
    from ..aggregation.loop import (
        Unit,
        UnitContext,
        check_paths,
        open_store,
        prepare_run,
        run_units,
        stderr_log,
    )

    log = log or stderr_log
    out = None if out is None else Path(out)
    check_paths({"--out": out})
    setup = prepare_run(cfg, model, log, executor)
    episodes = [sample_episode(setup.data, s, k=cfg.k, n_test=cfg.n_test) for s in cfg.seeds]
    model, tokenizer = setup.model_here(cfg, model, tokenizer)
    on_model(executor, model, tokenizer, model_check, cfg.check_model)
    labels = LabelSet.for_task(setup.task, tokenizer)
    units, order = [], []
    for ep in episodes:
        for tp, item in atlas_prompts(setup.task, tokenizer, labels, ep, cfg.stopword_variant):
            keys = expected_keys([item])
            order += keys
            units.append(Unit(f"seed {ep.seed} example {item.example_id}", frozenset(keys),
                              remote=(example_unit, (cfg, setup.task, tp, item))))
    columns = atlas_columns(setup.task, cfg.groups)
    with open_store(out, columns, setup.identity, setup.sidecar, set(order),
                    setup.model_info(model), log) as store:
        rows = run_units(store, units, on_unit=on_unit, progress=progress, desc="examples",
                         ctx=UnitContext(model, tokenizer), executor=executor)
        if store is not None and set(order) <= store.done:
            store.canonicalize(order)
    df = read_atlas(out) if out is not None else _typed(pd.DataFrame(rows, columns=columns))
    df.attrs["data"] = data_note(setup.data, cfg.model, cfg.seeds, cfg.n_test)
    return df


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Number columns as numbers, text columns as text."""
    for c in df.columns:
        if c not in TEXT_COLUMNS:
            df[c] = pd.to_numeric(df[c])
    return df


def read_atlas(path: str | Path) -> pd.DataFrame:
    """The rows of an atlas CSV (tokens such as ``1`` or ``None`` stay text)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such atlas file; write it with `atlas --out`.")
    df = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False,
                     encoding="utf-8")
    missing = [c for c in ("seed", "example_id", "position", "delta_margin", "attribution")
               if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: lacks the atlas column(s) {missing}; it was not written by "
                         "`atlas --out`.")
    return _typed(df)
