"""Layer windows and head-level knockouts: *where* the test example reads
template/stopword information, and *where* the demonstrations aggregate content.

A sweep slides a window of ``width`` consecutive layers over the model (every start). With
``target="test"`` the test-example condition is applied only inside the window; with
``target="block"`` the test-example condition applies in every layer and the aggregation block
only inside the window. Each row of a sweep is a :class:`WindowRow` (base condition, window,
whether the block applies); its :attr:`WindowRow.name` is the rows' ``condition``
(``+template@L4-7``, ``+template|agg@L4-7``), and the columns ``base_condition``, ``target``,
``window_start`` and ``window_end`` (inclusive; -1 for the reference rows: the condition in all
layers, and for the block target the condition without any block) hold its fields.

A window only changes something when the knockout it places hides something: with
``target="test"`` a condition that hides nothing (``icl``) is refused, and the block options
(``block_queries``, ``block_scope``) are refused unless ``target="block"`` places the block.

    >>> windows(18, 4)[:3]
    [(0, 3), (1, 4), (2, 5)]
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Sequence

import numpy as np
import pandas as pd

from ..ablation.conditions import ZERO_SHOT, knockout_for, parse_conditions
from ..ablation.knockout import Block, Knockout
from ..engine.items import Item
from ..episodes import Episode
from ..experiments.config import RunConfig
from ..experiments.items import prompt_item
from ..experiments.runner import RunContext, layer_count, model_for, on_model, run_experiment
from .block import AggregationBlock

__all__ = ["WindowConfig", "WindowRow", "run_layer_windows", "windows", "window_conditions",
           "head_knockout", "top_heads", "random_heads", "window_curve", "WINDOW_COLUMNS",
           "TARGETS"]

TARGETS = ("test", "block")
WINDOW_COLUMNS = ("base_condition", "target", "window_start", "window_end")


def windows(n_layers: int, width: int) -> list[tuple[int, int]]:
    """Every window of ``width`` consecutive layers: ``(start, end)`` with ``end`` inclusive."""
    if not 1 <= width <= n_layers:
        raise ValueError(f"window width {width} must be between 1 and the model's {n_layers} "
                         "layers.")
    return [(s, s + width - 1) for s in range(n_layers - width + 1)]


@dataclass(frozen=True)
class WindowRow:
    """One row kind of a sweep: the base condition, its window and whether the block applies.

    Attributes:
        base: The test-example condition.
        start, end: The window's layers (inclusive); -1, -1: a reference row (all layers).
        blocked: The aggregation block applies (``target="block"``; inside the window, or in
            every layer for a reference row).
    """

    base: str
    start: int = -1
    end: int = -1
    blocked: bool = False

    @property
    def name(self) -> str:
        """The rows' ``condition``: ``base``, then ``|agg`` when blocked, then ``@L{s}-{e}``."""
        window = "" if self.start < 0 else f"@L{self.start}-{self.end}"
        return f"{self.base}{'|agg' if self.blocked else ''}{window}"

    @property
    def reference(self) -> bool:
        """No window: the knockout (or block) in every layer."""
        return self.start < 0


def window_conditions(conditions: Sequence[str], target: str, spans: Sequence[tuple[int, int]]
                      ) -> list[WindowRow]:
    """Every row kind of a sweep: per condition, the reference rows (``start = end = -1``; for
    the block target also the condition without the block), then one per window."""
    if target not in TARGETS:
        raise ValueError(f"unknown window target {target!r}; use one of {TARGETS}.")
    blocked = target == "block"
    out: list[WindowRow] = []
    for c in conditions:
        if blocked:
            out.append(WindowRow(c))
        out.append(WindowRow(c, blocked=blocked))
        out += [WindowRow(c, s, e, blocked) for s, e in spans]
    return out


@dataclass
class WindowConfig(RunConfig):
    """A layer-window sweep.

    Attributes:
        conditions: Test-example conditions (representation level; not ``zero_shot``).
        target: ``"test"`` (the condition inside the window) or ``"block"`` (the block inside
            the window, the condition everywhere).
        width: Window width in layers (``None``: ``n_layers // 4``, at least 1).
        block_queries, block_scope: The block variant (``target="block"``).
    """

    conditions: tuple[str, ...] = ("+template", "+stopword", "icl-template")
    target: str = "test"
    width: int | None = None
    block_queries: str = "all"
    block_scope: str = "all"

    level: ClassVar[str] = "layer-windows"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.conditions = tuple(parse_conditions(list(self.conditions)))
        if ZERO_SHOT in self.conditions:
            raise ValueError("zero_shot has no knockout to place in a layer window; drop it.")
        if self.target not in TARGETS:
            raise ValueError(f"unknown window target {self.target!r}; use one of {TARGETS}.")
        if self.width is not None and int(self.width) < 1:
            raise ValueError(f"window width must be >= 1, got {self.width}.")
        if self.k < 1:
            raise ValueError("layer windows need demonstrations: use k >= 1.")
        AggregationBlock(self.block_queries, self.block_scope, None,
                         self.k if self.block_scope == "own" else None)
        if self.target == "test":
            self._check_test_target()

    def _check_test_target(self) -> None:
        """With ``target="test"`` the window holds the condition's knockout: refuse block
        options (no block is placed) and conditions that hide nothing (every window would equal
        the reference row)."""
        if (self.block_queries, self.block_scope) != ("all", "all"):
            raise ValueError("block queries/scope (--agg-queries, --agg-scope) shape the "
                             "aggregation block, which only target 'block' places in the "
                             "window; drop them or use --target block.")
        empty = [c for c in self.conditions if not knockout_for(c).blocks]
        if empty:
            raise ValueError(f"conditions {empty} hide nothing, so a window of their knockout "
                             "changes nothing (every window equals the reference row); drop "
                             "them, or use --target block to place the aggregation block in "
                             "the window under them.")

    def resolved_width(self, n_layers: int) -> int:
        return int(self.width) if self.width is not None else max(1, n_layers // 4)

    def knockout(self, base: str, start: int, end: int, blocked: bool) -> Knockout:
        """The knockout of one row (``start = -1``: all layers / no window)."""
        span = None if start < 0 else tuple(range(start, end + 1))
        k_own = self.k if self.block_scope == "own" else None
        if self.target == "test":
            return knockout_for(base, layers=span)
        ko = knockout_for(base)
        if blocked:
            ko = ko | AggregationBlock(self.block_queries, self.block_scope, span, k_own).knockout()
        return ko


def _window_items(ctx: RunContext, ep: Episode, cfg: WindowConfig,
                  rows: Sequence[WindowRow]) -> list[Item]:
    items: list[Item] = []
    for test in ep.tests:
        icl = prompt_item(ctx.task, ctx.tokenizer, ctx.labels, ep, test,
                          stopword_variant=cfg.stopword_variant)
        for row in rows:
            ko = cfg.knockout(row.base, row.start, row.end, row.blocked)
            it = icl.with_knockout(ko if ko.blocks else None, row.name)
            items.append(dataclasses.replace(it, meta={
                **it.meta, "base_condition": row.base, "target": cfg.target,
                "window_start": row.start, "window_end": row.end}))
    return items


def run_layer_windows(
    cfg: WindowConfig,
    *,
    model: Any = None,
    tokenizer: Any = None,
    out: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    executor: Any = None,
) -> pd.DataFrame:
    """Run (or resume) a layer-window sweep; the model is needed first (its layer count).
    ``executor``: score on a :class:`~icl_tokens.executors.ray_executor.RayExecutor` 's workers
    (started here; the layer count is asked of them)."""
    if executor is None:
        model, tokenizer = model_for(cfg, model, tokenizer)
    else:
        executor.start(cfg)
    n = on_model(executor, model, tokenizer, layer_count)
    rows = window_conditions(cfg.conditions, cfg.target, windows(n, cfg.resolved_width(n)))
    build = functools.partial(_window_items, cfg=cfg, rows=rows)
    return run_experiment(cfg, build, [r.name for r in rows], model=model, tokenizer=tokenizer,
                          out=out, progress=progress, extra_columns=WINDOW_COLUMNS, log=log,
                          executor=executor)


def window_curve(df: pd.DataFrame, metric: str = "correct") -> pd.DataFrame:
    """Accuracy (%) per window (rows ``L{start}-{end}``, after the reference rows ``all layers``
    and, for the block target, ``no block``) × base condition (columns)."""
    need = set(WINDOW_COLUMNS) | {metric, "condition"}
    if not need <= set(df.columns):
        raise ValueError(f"these rows lack {sorted(need - set(df.columns))}; run "
                         "run_layer_windows first.")
    d = df.assign(_acc=df[metric].astype(float) * 100)
    d["window"] = [_window_label(_row_of(c, b, t, int(s), int(e)), t)
                   for c, b, t, s, e in zip(d["condition"], d["base_condition"], d["target"],
                                            d["window_start"], d["window_end"])]
    table = d.pivot_table(index="window", columns="base_condition", values="_acc",
                          aggfunc="mean", sort=False)
    order = [w for w in ("no block", "all layers") if w in table.index]
    order += sorted((w for w in table.index if w not in order),
                    key=lambda w: int(w[1:].split("-")[0]))
    return table.loc[order, list(dict.fromkeys(d["base_condition"]))]


def _row_of(condition: str, base: str, target: str, start: int, end: int) -> WindowRow:
    """The :class:`WindowRow` of a CSV row (its columns, checked against its condition)."""
    kinds = [WindowRow(base, start, end, blocked) for blocked in
             ((False, True) if target == "block" else (False,))]
    match = [r for r in kinds if r.name == condition]
    if not match:
        raise ValueError(f"row {condition!r} is not a window row of base {base!r}, target "
                         f"{target!r}, window {start}-{end}; these rows do not come from "
                         "run_layer_windows.")
    return match[0]


def _window_label(row: WindowRow, target: str) -> str:
    """``L{start}-{end}``; a reference row: ``no block`` (block target, unblocked) or
    ``all layers``."""
    if not row.reference:
        return f"L{row.start}-{row.end}"
    return "no block" if target == "block" and not row.blocked else "all layers"


def head_knockout(condition: str, heads: Iterable[tuple[int, int]], *, name: str | None = None
                  ) -> Knockout:
    """The condition's knockout restricted to these ``(layer, head)`` pairs (one block per
    layer with its heads)."""
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(int(layer), []).append(int(head))
    if not by_layer:
        raise ValueError("head_knockout needs at least one (layer, head) pair.")
    base = knockout_for(condition)
    if not base.blocks:
        raise ValueError(f"condition {condition!r} hides nothing; choose a masked condition.")
    blocks = tuple(Block(b.queries, b.keys, layers=(layer,), heads=tuple(sorted(hs)))
                   for layer, hs in sorted(by_layer.items()) for b in base.blocks)
    return Knockout(blocks, name=name or f"{base.name}@{len(list(_pairs(by_layer)))}heads",
                    mode=base.mode)


def _pairs(by_layer: dict[int, list[int]]) -> Iterable[tuple[int, int]]:
    for layer, hs in by_layer.items():
        for h in hs:
            yield layer, h


def top_heads(mass: pd.DataFrame, category: str = "template", n: int = 8, *,
              value: str = "mass") -> list[tuple[int, int]]:
    """The ``n`` (layer, head) pairs with the largest mean ``value`` on ``category`` in an
    attention-mass table (columns ``layer``, ``head``, ``category`` and ``value``)."""
    need = {"layer", "head", "category", value}
    if not need <= set(mass.columns):
        raise ValueError(f"attention-mass table lacks columns {sorted(need - set(mass.columns))}.")
    sub = mass[mass["category"] == category]
    if sub.empty:
        have = sorted(set(mass["category"]))
        raise ValueError(f"no rows for category {category!r}; have {have}.")
    mean = sub.groupby(["layer", "head"])[value].mean().sort_values(ascending=False, kind="stable")
    if n > len(mean):
        raise ValueError(f"asked for {n} heads; the table has {len(mean)}.")
    return [(int(layer), int(h)) for layer, h in mean.index[:n]]


def random_heads(n_layers: int, n_heads: int, n: int, seed: int,
                 exclude: Iterable[tuple[int, int]] = ()) -> list[tuple[int, int]]:
    """``n`` (layer, head) pairs drawn uniformly without replacement (a control for
    :func:`top_heads`), avoiding ``exclude``."""
    ex = set(exclude)
    pool = [(la, h) for la in range(n_layers) for h in range(n_heads) if (la, h) not in ex]
    if n > len(pool):
        raise ValueError(f"asked for {n} random heads; only {len(pool)} are left.")
    idx = np.random.default_rng(seed).choice(len(pool), size=n, replace=False)
    return sorted(pool[i] for i in idx)
