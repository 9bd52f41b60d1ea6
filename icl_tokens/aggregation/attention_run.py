"""An attention-mass run: where each test example's attention goes, per layer, head and key group,
resumable through :func:`~icl_tokens.aggregation.loop.run_units`.

One unit per fixed batch of test examples and knockout (``icl``; ``agg``: the default aggregation
block). CSV rows: one per (seed, test example, knockout, scope, layer, head, key group present in
the prompt); ``condition`` is ``{knockout}|{scope}|L{layer}|H{head}|{category}``; then the tidy
columns of :func:`~icl_tokens.aggregation.attention_mass.category_mass`. A key group the prompt
does not have (``bos`` for a model without BOS, ``instruction`` for a task without one) has no
row: its share is 0 and its per-token share undefined. Every written value is finite: a row with
inf or NaN (a model whose forward overflows float16) is refused with the dtype named.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import pandas as pd

from ..ablation.knockout import Knockout
from ..engine.items import Item, LabelSet
from ..episodes import sample_episode
from ..experiments.config import RunConfig
from ..experiments.items import prompt_item
from ..experiments.runner import data_note, on_model
from .attention_mass import COUNTS, QUERY_SCOPES, attention_mass, key_groups
from .loop import (
    Unit,
    UnitContext,
    check_paths,
    chunks,
    knockout_set,
    open_store,
    prepare_run,
    run_units,
    stderr_log,
)

__all__ = ["AttentionConfig", "run_attention", "attention_columns", "ATTENTION_CSV"]

#: Columns of the attention CSV.
ATTENTION_CSV: tuple[str, ...] = ("model", "task", "k", "seed", "example_id", "condition",
                                  "knockout", "scope", "layer", "head", "category", "mass",
                                  "n_keys", "mass_per_token", "n_queries")
_NUMBERS = ("mass", "n_keys", "mass_per_token")
Key = tuple[str, str, str]


def attention_columns() -> list[str]:
    """Columns of the attention CSV."""
    return list(ATTENTION_CSV)


@dataclass
class AttentionConfig(RunConfig):
    """An attention-mass run (see the module docstring).

    Attributes:
        scopes: Query scopes, names of :data:`~.attention_mass.QUERY_SCOPES`.
        count: ``"each"`` or ``"exact"`` (see :func:`~.attention_mass.key_groups`).
        aggregation: Also measure under the default aggregation block (knockout ``agg``).
    """

    scoring: str = "label"
    batch_size: int = 8
    scopes: tuple[str, ...] = ("test", "last")
    count: str = "each"
    aggregation: bool = False

    level: ClassVar[str] = "attention"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.one_run_over_demonstrations("an attention run")
        self.scopes = tuple(self.scopes)
        bad = [s for s in self.scopes if s not in QUERY_SCOPES]
        if bad or not self.scopes:
            raise ValueError(f"unknown attention scopes {bad or list(self.scopes)}; choose "
                             f"from {list(QUERY_SCOPES)}.")
        if len(set(self.scopes)) != len(self.scopes):
            raise ValueError(f"attention scopes {list(self.scopes)} repeat a name; give each "
                             "once.")
        if self.count not in COUNTS:
            raise ValueError(f"unknown count {self.count!r}; use one of {COUNTS}.")

    def knockouts(self) -> dict[str, Knockout | None]:
        """Knockout name → knockout (``icl``: none; ``agg``: the default aggregation block)."""
        return knockout_set(self.aggregation)


def run_attention(
    cfg: AttentionConfig, *, model: Any = None, tokenizer: Any = None,
    out: str | Path | None = None, progress: bool = True,
    log: Callable[[str], None] | None = None, on_unit: Callable[[str], None] | None = None,
    executor: Any = None,
) -> pd.DataFrame:
    """Run (or resume) an attention-mass run; returns its rows (:func:`attention_columns`).

    Arguments as :func:`~icl_tokens.aggregation.probe_run.run_probes`; ``on_unit`` gets labels
    such as ``icl seed 0 test:12..test:40`` (test examples of one batch). ``executor``: run the
    units on a :class:`~icl_tokens.executors.ray_executor.RayExecutor` 's workers (this process
    loads the tokenizer only); the file equals a local run's.
    """
    log = log or stderr_log
    out = None if out is None else Path(out)
    check_paths({"--out": out})
    setup = prepare_run(cfg, model, log, executor)
    episodes = [sample_episode(setup.data, s, k=cfg.k, n_test=cfg.n_test) for s in cfg.seeds]
    model, tokenizer = setup.model_here(cfg, model, tokenizer)
    labels = LabelSet.for_task(setup.task, tokenizer)
    items = [prompt_item(setup.task, tokenizer, labels, ep, t,
                         stopword_variant=cfg.stopword_variant)
             for ep in episodes for t in ep.tests]
    shape = on_model(executor, model, tokenizer, _shape)
    kos = cfg.knockouts()
    units = [u for kn, ko in kos.items()
             for u in _units(cfg, setup.task.name, items, kn, ko, shape)]
    expected = set().union(*(u.keys for u in units))
    with open_store(out, ATTENTION_CSV, setup.identity, setup.sidecar, expected,
                    setup.model_info(model), log) as store:
        rows = run_units(store, units, check=lambda r: _check_rows(r, cfg.dtype),
                         on_unit=on_unit, progress=progress, desc="attention",
                         ctx=UnitContext(model, tokenizer), executor=executor)
        if store is not None and expected <= store.done:
            store.canonicalize([k for kn in kos for k in _ordered_keys(cfg, kn, items, shape)])
    df = store.read() if store is not None else pd.DataFrame(rows, columns=ATTENTION_CSV)
    df.attrs["data"] = data_note(setup.data, cfg.model, cfg.seeds, cfg.n_test)
    return df


def _groups(item: Item, count: str) -> list[str]:
    """The key groups the item has (a group without keys gets no row)."""
    return [g for g, mask in key_groups(item, count).items() if mask.any()]


def _shape(model: Any, tokenizer: Any) -> tuple[int, int]:
    return int(model.cfg.n_layers), int(model.cfg.n_heads)


def _units(cfg: AttentionConfig, task: str, items: list[Item], kn: str, ko: Knockout | None,
           shape: tuple[int, int]) -> list[Unit]:
    """One unit per fixed batch of test examples of one seed, under one knockout."""
    units = []
    for seed in cfg.seeds:
        mine = [it for it in items if it.meta["seed"] == seed]
        for batch in chunks(mine, cfg.batch_size):
            groups = {it.example_id: _groups(it, cfg.count) for it in batch}
            units.append(Unit(f"{kn} seed {seed} {batch[0].example_id}..{batch[-1].example_id}",
                              frozenset(_ordered_keys(cfg, kn, batch, shape)),
                              remote=(attention_unit, (cfg, task, kn, ko, list(batch), groups))))
    return units


def attention_unit(ctx: UnitContext, cfg: AttentionConfig, task: str, kn: str,
                   ko: Knockout | None, batch: list[Item], groups: dict[str, list[str]]
                   ) -> list[dict[str, Any]]:
    """The rows of one batch under one knockout, in the process that holds the model."""
    df = attention_mass(ctx.model, ctx.tokenizer, batch, scopes=cfg.scopes, count=cfg.count,
                        batch_size=cfg.batch_size, knockout=ko)
    present = [c in groups[e] for e, c in zip(df["example_id"], df["category"])]
    df = df[present].assign(knockout=kn, model=cfg.model, task=task, k=cfg.k)
    df["condition"] = (kn + "|" + df["scope"] + "|L" + df["layer"].astype(str)
                       + "|H" + df["head"].astype(str) + "|" + df["category"])
    return df[list(ATTENTION_CSV)].to_dict("records")


def _ordered_keys(cfg: AttentionConfig, kn: str, items: Sequence[Item],
                  shape: tuple[int, int]) -> list[Key]:
    """The keys of the items' rows in the order they are computed (item, scope, layer, head,
    key group)."""
    n_layers, n_heads = shape
    return [(str(it.meta["seed"]), it.example_id, f"{kn}|{s}|L{la}|H{h}|{c}")
            for it in items for groups in [_groups(it, cfg.count)] for s in cfg.scopes
            for la in range(n_layers) for h in range(n_heads) for c in groups]


def _check_rows(rows: list[dict[str, Any]], dtype: str) -> None:
    """Refuse rows with inf or NaN (none is ever written)."""
    for r in rows:
        bad = [c for c in _NUMBERS if not np.isfinite(float(r[c]))]
        if bad:
            raise ValueError(
                f"the attention of {r['example_id']} (seed {r['seed']}, {r['condition']}) has "
                f"non-finite {', '.join(bad)} in {dtype}: the model's forward overflows that "
                "dtype; rerun with --dtype float32 (or bfloat16). Nothing of this batch was "
                "written.")
