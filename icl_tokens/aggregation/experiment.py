"""The aggregation-knockout experiment: test-example conditions with and
without the demonstration-internal block.

Rows are ordinary representation-level rows (same conditions, same columns) plus one column,
``aggregation``: the block's name (``agg``, ``agg[t_out]``, ``agg[own,L0-4]`` ...), or ``none``
for the comparison rows without the block. A CSV holds one block variant; the comparison rows are
an ordinary ``ablate`` run kept in a sibling file (:func:`baseline_path`), so both files resume
and the block file's rows keep the condition names a user asked for.

    >>> cfg = AggregationConfig(conditions=("icl", "+template"), block_queries="t_out")
    >>> cfg.block().name
    'agg[t_out]'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import pandas as pd

from ..ablation.conditions import ZERO_SHOT
from ..ablation.knockout import Knockout, check_index_list
from ..engine.items import Item
from ..episodes import Episode
from ..experiments.representation import AblationConfig, representation_items
from ..experiments.runner import RunContext, model_for, run_config
from .block import AggregationBlock

__all__ = ["AggregationConfig", "run_aggregation", "aggregation_items", "baseline_path",
           "AGGREGATION_CONDITIONS", "compare_table"]

#: The test-example conditions of the experiment (``icl-content`` is the paper's −CONT).
AGGREGATION_CONDITIONS = ("icl", "+template", "+stopword", "icl-content")


@dataclass
class AggregationConfig(AblationConfig):
    """A representation-level ablation with the aggregation block active in the demonstrations.

    Attributes:
        block_queries: Which demonstration queries are blocked (see ``block.BLOCK_QUERIES``).
        block_scope: ``"all"`` (content of every demonstration up to the query) or ``"own"``.
        block_layers: Layers of the block (``None``: all); the test-example knockout keeps its
            own ``layers``.
    """

    conditions: tuple[str, ...] = AGGREGATION_CONDITIONS
    block_queries: str = "all"
    block_scope: str = "all"
    block_layers: tuple[int, ...] | None = None

    level: ClassVar[str] = "aggregation"

    def __post_init__(self) -> None:
        super().__post_init__()
        if ZERO_SHOT in self.conditions:
            raise ValueError("zero_shot has no demonstrations, so the aggregation block changes "
                             "nothing; run it without the block (plain ablate).")
        if self.k < 1:
            raise ValueError("the aggregation block needs demonstrations: use k >= 1.")
        if self.block_layers is not None:
            self.block_layers = tuple(int(x) for x in self.block_layers)
        self.block()  # validates queries/scope/layers

    def block(self) -> AggregationBlock:
        """The block variant of this run."""
        return AggregationBlock(self.block_queries, self.block_scope, self.block_layers,
                                self.k if self.block_scope == "own" else None)

    def knockout(self, condition: str) -> Knockout:
        """The test-example condition's knockout united with the block."""
        return super().knockout(condition) | self.block().knockout()

    def check_model(self, model: Any) -> None:
        super().check_model(model)
        check_index_list("layer", self.block_layers, int(model.cfg.n_layers))

    def build_items(self, ctx: RunContext, episode: Episode) -> list[Item]:
        """The representation-level items with the block in the demonstrations."""
        return aggregation_items(ctx, episode, self)

    def extra_columns(self) -> tuple[str, ...]:
        return ("aggregation",)

    def baseline(self) -> AblationConfig:
        """The same run without the block (the comparison rows)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(AblationConfig)}
        return AblationConfig(**fields)


def aggregation_items(ctx: RunContext, episode: Episode, cfg: AggregationConfig) -> list[Item]:
    """One item per (test example, condition), each under condition | block."""
    name = cfg.block().name
    items = representation_items(ctx.task, ctx.tokenizer, ctx.labels, episode, cfg.conditions,
                                 cfg.knockout, stopword_variant=cfg.stopword_variant)
    return [dataclasses.replace(it, meta={**it.meta, "aggregation": name}) for it in items]


def baseline_path(out: str | Path) -> Path:
    """Where the comparison rows of ``out`` go: ``F.csv`` → ``F.noblock.csv``."""
    p = Path(out)
    return p.with_name(p.stem + ".noblock" + p.suffix)


def run_aggregation(
    cfg: AggregationConfig,
    *,
    compare: bool = True,
    model: Any = None,
    tokenizer: Any = None,
    out: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    executor: Any = None,
) -> pd.DataFrame:
    """Run (or resume) the block rows, and with ``compare`` the same conditions without it.

    Returns the rows of both (column ``aggregation``: the block's name or ``none``). With
    ``out``, the block rows go to ``out`` and the comparison rows to :func:`baseline_path`.
    ``executor``: both runs score on a
    :class:`~icl_tokens.executors.ray_executor.RayExecutor` 's workers (which load the model
    once for both).
    """
    if executor is None:
        model, tokenizer = model_for(cfg, model, tokenizer)
    df = run_config(cfg, model=model, tokenizer=tokenizer, out=out, progress=progress, log=log,
                    executor=executor)
    if not compare:
        return df
    base = run_config(cfg.baseline(), model=model, tokenizer=tokenizer,
                      out=None if out is None else baseline_path(out), progress=progress, log=log,
                      executor=executor)
    base = base.assign(aggregation="none")
    both = pd.concat([base, df], ignore_index=True)
    both.attrs["data"] = df.attrs.get("data")
    return both


def compare_table(df: pd.DataFrame, metric: str = "correct") -> pd.DataFrame:
    """Accuracy (%) per condition without and with the block, and the difference.

    Rows: conditions (in first-seen order); columns: ``none``, the block's name, ``Δ``
    (block − none, points), ``paired_se`` (the SE of the paired difference on the crossed
    seeds x examples design, :func:`icl_tokens.analysis.inference.crossed_mean`; NaN when it
    cannot be estimated, e.g. one row), ``n``.
    """
    from ..analysis.inference import crossed_mean

    if "aggregation" not in df.columns:
        raise ValueError("these rows have no 'aggregation' column; run run_aggregation first.")
    names = [a for a in dict.fromkeys(df["aggregation"]) if a != "none"]
    if "none" not in set(df["aggregation"]) or len(names) != 1:
        raise ValueError(f"compare_table needs rows without the block ('none') and of exactly one "
                         f"block; got {sorted(set(df['aggregation']))}.")
    block = names[0]
    conds = list(dict.fromkeys(df["condition"]))
    wide = df.pivot_table(index=["seed", "example_id", "condition"], columns="aggregation",
                          values=metric, aggfunc="first")
    out = []
    for c in conds:
        sub = wide.xs(c, level="condition")
        missing = sub[["none", block]].isna().any(axis=1)
        if missing.any():
            raise ValueError(f"condition {c}: {int(missing.sum())} examples lack a row with or "
                             "without the block; run both to completion.")
        diff = (sub[block].astype(float) - sub["none"].astype(float)) * 100
        grid = diff.unstack("example_id")
        se = crossed_mean(grid.to_numpy(float)).se if grid.notna().all().all() else float("nan")
        out.append({"condition": c, "none": 100 * sub["none"].astype(float).mean(),
                    block: 100 * sub[block].astype(float).mean(), "Δ": diff.mean(),
                    "paired_se": se, "n": len(diff)})
    return pd.DataFrame(out).set_index("condition")
