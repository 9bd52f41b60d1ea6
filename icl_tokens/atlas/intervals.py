"""Intervals for atlas summaries that fit the design: demonstration seeds x test examples, crossed.

Every seed of an atlas run scores the same test examples (the fixed subset), so a per-example
value (a Spearman correlation, a category's share of ``|delta_margin|``) forms a complete
``seed x example`` matrix whose rows are not independent: a hard example is hard under every
seed, a seed's demonstrations shape every example. The estimand is the mean over new seeds and
new examples, as for accuracies (:mod:`icl_tokens.analysis.inference`).

* **Means** of a complete matrix with at least 2 seeds and 2 examples: the crossed
  random-effects t interval of :func:`~icl_tokens.analysis.inference.crossed_mean` (ANOVA
  variance components, Satterthwaite degrees of freedom; ``docs/statistics.md``).
* **Ratios of sums** ``R = sum(num) / sum(den)`` (a pooled false-negative rate, an interaction
  share): linearized (the delta method, as for ratio estimators in survey sampling):
  ``z = (num - R den) / mean(den)`` per cell, and ``R`` ± the crossed t half-width of ``z``'s
  mean.
* Means of a matrix with undefined cells (a Spearman correlation of a constant attribution):
  the **pigeonhole bootstrap** (Owen 2007): seeds and examples are resampled independently,
  with replacement, and the mean is recomputed on the resampled cells, so both sources of
  variation enter the interval.
* One seed, or seeds that scored different examples: a percentile bootstrap over the rows
  (examples), labelled as such: it says nothing about other demonstrations.

Intervals are cut to the range the statistic can take where the caller gives it (a share to
[0, 1], a correlation to [-1, 1]): a t interval knows nothing of that range, and with 3 seeds its
half-width can exceed the distance to a bound. :func:`design_note` names the method an interval
used; summaries carry it in an ``interval`` column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from jaxtyping import Float

from ..analysis.inference import crossed_mean

__all__ = ["Layout", "layout_of", "mean_interval", "ratio_interval", "ratio_of_sums", "clip",
           "design_note", "example_bootstrap", "pigeonhole"]

Interval = tuple[float, float, float]


@dataclass(frozen=True)
class Layout:
    """Where each row of a per-example frame sits: ``seed`` and ``example`` indices, and
    whether every (seed, example) cell holds exactly one row (``crossed``)."""

    seed: np.ndarray
    example: np.ndarray
    n_seeds: int
    n_examples: int
    crossed: bool

    def matrix(self, values: np.ndarray) -> Float[np.ndarray, "seed example"]:
        """``values`` (one per row) as a ``[seed, example]`` matrix (NaN where absent)."""
        m = np.full((self.n_seeds, self.n_examples), np.nan)
        m[self.seed, self.example] = values
        return m


def layout_of(per: pd.DataFrame) -> Layout:
    """The layout of a frame with ``seed`` and ``example_id`` columns (one row per example of a
    seed)."""
    seeds, s_idx = np.unique(per["seed"].astype(str).to_numpy(), return_inverse=True)
    examples, e_idx = np.unique(per["example_id"].astype(str).to_numpy(), return_inverse=True)
    cells = len(seeds) * len(examples)
    crossed = (len(seeds) >= 2 and len(per) == cells
               and len(set(zip(s_idx.tolist(), e_idx.tolist()))) == cells)
    return Layout(s_idx, e_idx, len(seeds), len(examples), crossed)


def design_note(lay: Layout) -> str:
    """The interval method used on this layout."""
    if not lay.crossed:
        why = "1 seed" if lay.n_seeds < 2 else "seeds scored different examples"
        return f"bootstrap over {len(lay.seed)} examples ({why})"
    return f"crossed t, {lay.n_seeds} seeds x {lay.n_examples} examples"


def example_bootstrap(n_units: int, stat: Callable[[np.ndarray], float], *,
                      n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """``(estimate, lo, hi)``: ``stat`` of all rows and its percentile bootstrap interval
    (rows resampled with replacement; ``stat`` takes an index array)."""
    if n_units < 1:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    est = stat(np.arange(n_units))
    draws = np.array([stat(rng.integers(0, n_units, n_units)) for _ in range(n_boot)])
    return est, *_percentiles(draws, level)


def pigeonhole(lay: Layout, stat: Callable[[np.ndarray, np.ndarray], float], *,
               n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """``(estimate, lo, hi)`` of ``stat(seed_idx, example_idx)`` (which reads the cells of those
    seeds and examples) with seeds and examples resampled independently (Owen 2007)."""
    rng = np.random.default_rng(seed)
    est = stat(np.arange(lay.n_seeds), np.arange(lay.n_examples))
    draws = np.array([stat(rng.integers(0, lay.n_seeds, lay.n_seeds),
                           rng.integers(0, lay.n_examples, lay.n_examples))
                      for _ in range(n_boot)])
    return est, *_percentiles(draws, level)


def _percentiles(draws: np.ndarray, level: float) -> tuple[float, float]:
    draws = draws[np.isfinite(draws)]
    if not draws.size:
        return math.nan, math.nan
    a = (1 - level) / 2
    return float(np.quantile(draws, a)), float(np.quantile(draws, 1 - a))


def _nanmean(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def clip(iv: Interval, bounds: tuple[float, float] | None) -> Interval:
    """The interval cut to the statistic's range (e.g. a share cannot leave [0, 1])."""
    if bounds is None:
        return iv
    est, lo, hi = iv
    return est, max(lo, bounds[0]), min(hi, bounds[1])


def mean_interval(per: pd.DataFrame, column: str, *, level: float = 0.95,
                  n_boot: int = 2000, seed: int = 0,
                  bounds: tuple[float, float] | None = None) -> Interval:
    """The mean of ``per[column]`` over examples (and seeds) with its design interval, cut to
    ``bounds`` (the range the statistic can take) where given."""
    lay = layout_of(per)
    v = per[column].to_numpy(float)
    if not lay.crossed:
        return clip(example_bootstrap(len(v), lambda i: _nanmean(v[i]), n_boot=n_boot,
                                      level=level, seed=seed), bounds)
    m = lay.matrix(v)
    if np.isfinite(m).all():
        est = crossed_mean(m, level=level)
        return clip((est.mean, est.ci_low, est.ci_high), bounds)
    return clip(pigeonhole(lay, lambda s, e: _nanmean(m[np.ix_(s, e)].ravel()),
                           n_boot=n_boot, level=level, seed=seed), bounds)


def ratio_of_sums(num: np.ndarray, den: np.ndarray) -> float:
    """``sum(num) / sum(den)`` over the finite pairs (NaN when the denominator sums to 0)."""
    ok = np.isfinite(num) & np.isfinite(den)
    d = float(den[ok].sum())
    return float(num[ok].sum() / d) if d else math.nan


def ratio_interval(per: pd.DataFrame, num: np.ndarray, den: np.ndarray, *,
                   level: float = 0.95, n_boot: int = 2000, seed: int = 0,
                   bounds: tuple[float, float] | None = None) -> Interval:
    """``R = sum(num) / sum(den)`` over the rows of ``per`` with its design interval: on a
    complete crossed layout the linearized crossed t interval, with undefined cells the
    pigeonhole bootstrap, otherwise a bootstrap over the rows; cut to ``bounds``."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    lay = layout_of(per)
    if not lay.crossed:
        return clip(example_bootstrap(len(num), lambda i: ratio_of_sums(num[i], den[i]),
                                      n_boot=n_boot, level=level, seed=seed), bounds)
    mn, md = lay.matrix(num), lay.matrix(den)
    r = ratio_of_sums(num, den)
    if not (np.isfinite(mn).all() and np.isfinite(md).all()) or not math.isfinite(r):
        return clip(pigeonhole(lay, lambda s, e: ratio_of_sums(mn[np.ix_(s, e)].ravel(),
                                                               md[np.ix_(s, e)].ravel()),
                               n_boot=n_boot, level=level, seed=seed), bounds)
    est = crossed_mean((mn - r * md) / md.mean(), level=level)
    if not math.isfinite(est.ci_low):
        return r, math.nan, math.nan
    return clip((r, r + est.ci_low, r + est.ci_high), bounds)
