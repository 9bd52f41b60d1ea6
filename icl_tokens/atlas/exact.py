"""The exact atlas of one test example: one single-key knockout per demonstration token.

Every knockout of an example shares its demonstration prefix (the knockouts restrict the test
queries only), so on the cached engine the prefix runs once and each knockout costs one forward
of the test example's tokens, batched. The measurement is the gold label's log-probability
margin of :mod:`icl_tokens.analysis.metrics` (gold score minus the best other label's score,
from label scoring), its change against the unablated prompt, and whether the prediction (of
the run's scoring) flips.

    >>> label_margin({"Positive": -1.0, "Negative": -3.0}, "Positive")
    2.0
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..engine.items import Item
from ..engine.prefix_cache import PrefixCache
from ..engine.scoring import BatchSize, RowResult, score_items
from .items import atlas_items, demo_positions

__all__ = ["label_margin", "best_other", "ExactAtlas", "exact_atlas"]


def best_other(scores: Mapping[str, float], gold: str) -> str:
    """The label other than ``gold`` with the highest score (first in order on ties)."""
    others = [w for w in scores if w != gold]
    if not others:
        raise ValueError(f"the margin needs at least two labels, got only {list(scores)}.")
    return max(others, key=lambda w: scores[w])


def label_margin(scores: Mapping[str, float], gold: str) -> float:
    """Gold label score minus the best other label's score (``analysis.metrics``' margin)."""
    if gold not in scores:
        raise ValueError(f"gold label {gold!r} is not one of the scored labels {list(scores)}.")
    return float(scores[gold] - scores[best_other(scores, gold)])


@dataclass
class ExactAtlas:
    """The exact knockouts of one test example.

    Attributes:
        item: The unablated item.
        scoring: ``label`` or ``generate`` (which prediction ``flipped`` compares).
        base: The unablated row.
        positions: Int ``[n]`` demonstration-token positions, in order.
        rows: The knocked-out row of each position.
        groups: Category knockout name → its row.
        seconds: Wall time of the knockouts (and the unablated row), prefix excluded when it
            was cached before.
    """

    item: Item
    scoring: str
    base: RowResult
    positions: np.ndarray
    rows: list[RowResult]
    groups: dict[str, RowResult] = field(default_factory=dict)
    seconds: float = float("nan")

    @property
    def base_margin(self) -> float:
        return label_margin(self.base.label_scores, self.item.gold)

    def margins(self) -> np.ndarray:
        """Float ``[n]``: the margin under each single-key knockout."""
        gold = self.item.gold
        return np.array([label_margin(r.label_scores, gold) for r in self.rows])

    def delta_margin(self) -> np.ndarray:
        """Float ``[n]``: knocked-out margin minus the unablated margin."""
        return self.margins() - self.base_margin

    def flipped(self) -> np.ndarray:
        """Bool ``[n]``: whether the prediction differs from the unablated prediction."""
        base = self.base.prediction(self.scoring)
        return np.array([r.prediction(self.scoring) != base for r in self.rows], dtype=bool)

    def group_delta(self, name: str) -> float:
        """The measured margin change of the category knockout ``name``."""
        if name not in self.groups:
            raise ValueError(f"group {name!r} was not measured; measured: {list(self.groups)}.")
        return label_margin(self.groups[name].label_scores, self.item.gold) - self.base_margin


def exact_atlas(
    model: Any, tokenizer: Any, item: Item, *, layers: Sequence[int] | None = None,
    groups: Sequence[str] = (), scoring: str = "label", engine: str = "cached",
    batch_size: int | str | BatchSize = 32, prefix_cache: PrefixCache | None = None,
) -> ExactAtlas:
    """Score the unablated prompt, every single-key knockout and the category knockouts.

    Args:
        model, tokenizer: A bridge and its tokenizer.
        item: The unablated item of one test example (:func:`~icl_tokens.experiments.items.
            prompt_item`).
        layers: Knock out only in these layers (``None``: all).
        groups: Representation-level conditions to measure beside (``icl-template``, ...).
        scoring: ``label`` or ``generate`` (the knockout then covers every generated token).
        engine: ``cached`` (one prefix forward shared by all) or ``naive``.
        batch_size: Rows per forward (see :func:`~icl_tokens.engine.scoring.score_items`).
        prefix_cache: Shared across the examples of one episode (the same prefix).
    """
    items = atlas_items(item, layers, groups)
    start = time.perf_counter()
    res = score_items(model, tokenizer, items, scoring=scoring, engine=engine,
                      batch_size=batch_size, prefix_cache=prefix_cache)
    seconds = time.perf_counter() - start
    n = len(demo_positions(item))
    if [r.condition for r in res] != [it.condition for it in items]:
        raise RuntimeError("the engine returned the atlas rows out of order.")
    named = {g: res[1 + n + i] for i, g in enumerate(groups)}
    return ExactAtlas(item, scoring, res[0], demo_positions(item), res[1 : 1 + n], named,
                      seconds)
