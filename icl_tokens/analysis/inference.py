"""Inference for the crossed design: every seed scores the same test examples.

The runs cross two random factors: the demonstration **seed** (which k demonstrations the prompt
shows) and the **test example** (one fixed subset shared by every seed, condition and model,
paper-spec §4). A hard example is hard under every seed, and a good seed is good on every
example, so the S x E rows of one cell are not S·E independent observations. The estimand is the
population mean over new seeds and new examples.

**Method** (``docs/statistics.md``): the two-way crossed random-effects model of a complete
S x E matrix ``y[s, e] = mu + a_s + b_e + e_se`` (for a paired effect, ``y`` is the per-row
difference between conditions, so seed-by-condition and example-by-condition interactions are
the ``a`` and ``b`` terms), with the variance of the grand mean estimated from the ANOVA mean
squares (the method of moments; Cornfield & Tukey 1956, Clark 1973, Baayen, Davidson & Bates
2008 for the same design in psycholinguistics, subjects x items)::

    V = s_a² / S + s_b² / E + s_e² / (S E)
      = (MS_seed + MS_example - MS_resid) / (S E)      (components truncated at 0)

and a t interval and test with Satterthwaite's degrees of freedom (1946) for that linear
combination of mean squares (both in :mod:`~icl_tokens.analysis.variance`). With two seeds the
seed term has one degree of freedom, and the interval widens accordingly; the simulation tests
(``tests/test_inference.py``) measure its coverage and false-positive rate at 2 x 12, 5 x 50 and
15 x 24.

Degenerate cells get honest intervals, not ``[0, 0]``:

* a 0/1 cell whose rows are all 0 (or all 1) gets the Wilson interval of its ``E`` distinct
  examples; an interior 0/1 cell gets a Wilson interval with the design's effective sample size
  (Kish's ``n_eff = p(1-p) / V``, at most S·E) and the t quantile in place of z (Korn & Graubard
  1998);
* a paired 0/1 difference with no discordant row (every difference 0) gets ``±(1 - q)``,
  ``q = (alpha/2)^(1/E)``: the exact (Clopper-Pearson) bound on the rate of examples whose
  answer the change flips either way, none of ``E`` distinct examples having flipped; its
  p-value is 1. A difference of +1 in every row gets ``[2q - 1, 1]`` (the rate of upward flips
  is at least q, of downward ones at most 1 - q) and the sign-test p-value over its distinct
  examples, ``2 · 0.5^E``; -1 likewise.

A condition with no seed dependence (zero-shot: no demonstrations) contributes its E values once
however many seeds repeat them: the ANOVA gives that term no seed variance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from jaxtyping import Float
from scipy import stats as sps

from .variance import Components, observed_variance, satterthwaite, variance_components

__all__ = [
    "ACCURACY_METRICS",
    "METRIC_COLUMNS",
    "Components",
    "Estimate",
    "SeedTest",
    "scale_of",
    "column_of",
    "variance_components",
    "crossed_mean",
    "cell_estimate",
    "seed_ttest",
    "pair_weights",
    "contrast_matrix",
    "contrast_effect",
    "contrast_estimate",
    "pool_tasks",
]

#: 0/1 columns, shown in percent.
ACCURACY_METRICS = ("correct", "label_correct", "calibrated_correct")
#: User-facing metric names → tidy columns.
METRIC_COLUMNS = {"acc_gen": "correct", "acc_label": "label_correct",
                  "calibrated": "calibrated_correct", "margin": "margin"}


def column_of(metric: str) -> str:
    """``acc_gen``/``acc_label``/``calibrated``/``margin`` (or a column name) → the column."""
    return METRIC_COLUMNS.get(metric, metric)


def scale_of(column: str) -> float:
    """100 for 0/1 accuracy columns (percent points), 1 otherwise (e.g. nats)."""
    return 100.0 if column in ACCURACY_METRICS else 1.0


@dataclass(frozen=True)
class Estimate:
    """A mean over a crossed design with its interval (in display units: points or nats)."""

    mean: float
    ci_low: float
    ci_high: float
    se: float
    df: float
    p: float                      # H0: mean == 0 (for a paired effect)
    n_seeds: int
    n_examples: int
    method: str
    note: str = ""
    components: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_METHOD = ("crossed random effects (seeds x examples), method-of-moments variance, "
           "Satterthwaite t")


def _t(level: float, df: float) -> float:
    return float(sps.t.ppf((1 + level) / 2, df)) if math.isfinite(df) else \
        float(sps.norm.ppf((1 + level) / 2))


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.isin(values, (0.0, 1.0)).all())


def _exact_bound(mean: float, s: int, e: int, level: float, scale: float,
                 comp: dict[str, float]) -> Estimate:
    """A paired 0/1 difference that is the same in every row: the exact bounds of the module
    docstring over its ``e`` distinct examples."""
    q = ((1 - level) / 2) ** (1 / e)  # exact bound: none of e examples did it
    p = 1.0 if mean == 0 else min(1.0, 2 * 0.5 ** e)
    if mean == 0:  # no example flipped either way: each rate is at most 1 - q
        lo, hi = -(1 - q), 1 - q
    else:  # every example flipped one way: that rate >= q, the other <= 1 - q
        lo, hi = (2 * q - 1, 1.0) if mean > 0 else (-1.0, 1 - 2 * q)
    return Estimate(mean * scale, max(-1.0, lo) * scale, min(1.0, hi) * scale,
                    math.nan, math.nan, p, s, e,
                    "exact bound: no discordant example" if mean == 0 else
                    "sign test over distinct examples", "every row has the same "
                    "difference; the interval bounds the share of examples it could flip", comp)


def crossed_mean(m: Float[np.ndarray, "seed example"], *, level: float = 0.95,
                 scale: float = 1.0, difference_of_binary: bool = False,
                 bounds: tuple[float, float] | None = None) -> Estimate:
    """The grand mean of a complete crossed matrix, its interval and its test against 0.

    Args:
        m: ``[seed, example]`` values (per-row paired differences, or one cell's values).
        level: Coverage of the interval.
        scale: Multiplies the reported mean, interval and SE (100 for percent points).
        difference_of_binary: ``m`` holds differences of two 0/1 columns (values in {-1, 0, 1});
            an all-zero or constant matrix then gets the exact bounds of the module docstring,
            and the interval is clipped to [-1, 1] (before ``scale``).
        bounds: Clip the interval to these values (before ``scale``), e.g. (0, 1).
    """
    if difference_of_binary and bounds is None:
        bounds = (-1.0, 1.0)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}.")
    m = np.asarray(m, dtype=float)
    c = variance_components(m)
    s, e = m.shape
    mean = float(m.mean())
    comp = {"seed": c.seed * scale ** 2, "example": c.example * scale ** 2,
            "residual": c.residual * scale ** 2}
    if s * e == 1 and not difference_of_binary:
        return Estimate(mean * scale, math.nan, math.nan, math.nan, math.nan, math.nan, s, e,
                        _METHOD, "one seed and one example: no interval", comp)
    if np.ptp(m) == 0:  # every row the same value
        if difference_of_binary:
            return _exact_bound(mean, s, e, level, scale, comp)
        return Estimate(mean * scale, mean * scale, mean * scale, 0.0, math.nan,
                        1.0 if mean == 0 else math.nan, s, e, _METHOD,
                        "every row has the same value: no variance to test against", comp)
    v, df = observed_variance(c)
    if not math.isfinite(v):
        return Estimate(mean * scale, math.nan, math.nan, math.nan, math.nan, math.nan, s, e,
                        _METHOD, "one seed and one example: no interval", comp)
    se = math.sqrt(max(v, 0.0))
    q = _t(level, df)
    p = float(2 * sps.t.sf(abs(mean) / se, df)) if se > 0 else (1.0 if mean == 0 else 0.0)
    note = ""
    if s == 1:
        note = "one seed: the interval covers examples only (seed variance unknown)"
    elif e == 1:
        note = "one example: the interval covers seeds only"
    lo, hi = mean - q * se, mean + q * se
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return Estimate(mean * scale, lo * scale, hi * scale, se * scale, df, p, s, e, _METHOD,
                    note, comp)


def _wilson(p: float, n: float, z: float) -> tuple[float, float]:
    """Wilson's score interval (exactly 0 / 1 at the ends for p = 0 / 1)."""
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    lo = 0.0 if p == 0 else max(0.0, centre - half)
    hi = 1.0 if p == 1 else min(1.0, centre + half)
    return lo, hi


def cell_estimate(m: Float[np.ndarray, "seed example"], *, level: float = 0.95,
                  binary: bool | None = None, scale: float = 1.0) -> Estimate:
    """One condition's mean with an interval that starts from its distinct examples.

    0/1 cells get a Wilson interval with the design's effective sample size (an all-0 or all-1
    cell: its ``E`` distinct examples), so ``0/12`` gives ``[0, 24.2]`` %, never ``[0, 0]``;
    other cells the crossed t interval. ``p`` tests the mean against 0 and is rarely useful for
    a cell (NaN for 0/1 cells)."""
    m = np.asarray(m, dtype=float)
    binary = _is_binary(m) if binary is None else binary
    if not binary:
        return crossed_mean(m, level=level, scale=scale)
    c = variance_components(m)
    s, e = m.shape
    p_hat = float(m.mean())
    comp = {"seed": c.seed * scale ** 2, "example": c.example * scale ** 2,
            "residual": c.residual * scale ** 2}
    # An all-0 or all-1 cell has no variance to estimate: the plain Wilson interval (z) of its
    # distinct examples.
    v, df = observed_variance(c) if np.ptp(m) > 0 else (0.0, math.inf)
    if v > 0 and math.isfinite(v):
        n_eff = min(s * e, p_hat * (1 - p_hat) / v)
    else:
        n_eff = float(e)
    n_eff = max(n_eff, 1.0)
    q = _t(level, df if math.isfinite(df) and df > 0 else math.inf)
    lo, hi = _wilson(p_hat, n_eff, q)
    se = math.sqrt(v) if v > 0 and math.isfinite(v) else math.nan
    return Estimate(p_hat * scale, lo * scale, hi * scale, se * scale, df, math.nan, s, e,
                    "Wilson interval with the crossed design's effective sample size "
                    f"(n_eff = {n_eff:.1f} of {s * e} rows, {e} distinct examples)", "", comp)


@dataclass(frozen=True)
class SeedTest:
    """The paper's paired t-test over per-seed means, or why it is not given."""

    t: float
    p: float
    n_seeds: int
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {"t": None if math.isnan(self.t) else self.t,
                "p": None if math.isnan(self.p) else self.p,
                "n_seeds": self.n_seeds, "note": self.note}

    def format_p(self) -> str:
        if not math.isnan(self.p):
            return f"{self.p:.4f}"
        return self.note if self.note.startswith("n/a") else f"n/a ({self.note})"


def seed_ttest(per_seed_diff: Sequence[float]) -> SeedTest:
    """Paired t-test over seeds (one-sample on the per-seed mean differences), refusing the
    cases where it is undefined or meaningless: fewer than 3 seeds, or differences with no
    variance (then t is infinite or 0/0, and a p of 0 would be printed as a finding)."""
    d = np.asarray(per_seed_diff, dtype=float)
    n = len(d)
    if n < 3:
        return SeedTest(math.nan, math.nan, n, f"n/a: {n} seed{'s' * (n != 1)}; a t-test "
                        "over seeds needs at least 3")
    if np.ptp(d) == 0:
        return SeedTest(math.nan, math.nan, n, "n/a: every seed gives the same difference "
                        f"({d[0]:+.4g}); the t statistic is undefined")
    res = sps.ttest_1samp(d, 0.0)
    return SeedTest(float(res.statistic), float(res.pvalue), n, "paired t-test over seeds "
                    f"(df {n - 1}); it ignores example variance")


# --- contrasts of conditions over tidy rows -------------------------------------------------


def pair_weights(a: str, b: str) -> dict[str, float]:
    """The contrast ``a − b`` (``a == b`` gives the zero contrast, not ``-b``)."""
    w = {a: 1.0}
    w[b] = w.get(b, 0.0) - 1.0
    return w


def contrast_matrix(rows: pd.DataFrame, weights: Mapping[str, float], column: str, *,
                    key: str = "condition") -> tuple[np.ndarray, list[int], list[str]]:
    """``sum_c w_c · y_c`` per (seed, example) of one (model, task), as a seeds x examples
    matrix.

    Args:
        rows: Tidy rows of one model and task.
        weights: Condition (value of ``key``) → weight, e.g. ``{"icl-content": 1, "icl": -1}``.
        column: The metric column.
        key: The column that names the cells.

    Raises:
        ValueError: a condition is absent, a (seed, example) row is missing for one of them, or
            a value is missing; the message names which.
    """
    if column not in rows.columns:
        raise ValueError(f"the rows have no column {column!r}; metric columns such as 'margin' "
                         "come from icl_tokens.analysis.metrics.add_continuous_metrics, and "
                         "'calibrated_correct' from a reproduce folder's tidy rows.")
    have = set(rows[key])
    missing = [c for c in weights if c not in have]
    if missing:
        raise ValueError(f"the rows lack the condition(s) {missing} (they hold "
                         f"{sorted(map(str, have))}).")
    names = list(weights)
    sub = rows[rows[key].isin(names)]
    vals = pd.to_numeric(sub[column], errors="coerce").to_numpy(float)
    if np.isnan(vals).any():
        raise ValueError(f"column {column!r} has {int(np.isnan(vals).sum())} missing or "
                         "non-numeric values; nothing is dropped silently: filter the rows "
                         "first.")
    s_code, seed_vals = pd.factorize(sub["seed"], sort=True)
    e_code, ex_vals = pd.factorize(sub["example_id"])
    c_code = pd.Categorical(sub[key], categories=names).codes
    shape = (len(names), len(seed_vals), len(ex_vals))
    count = np.zeros(shape, dtype=np.int64)
    np.add.at(count, (c_code, s_code, e_code), 1)
    if (count > 1).any():
        c, si, ei = (int(x[0]) for x in np.nonzero(count > 1))
        raise ValueError(f"{int((count > 1).sum())} duplicated (seed, example, {key}) rows, "
                         f"e.g. seed {seed_vals[si]}, example {ex_vals[ei]}, {names[c]}; merge "
                         "shards with `python -m icl_tokens merge` instead of concatenating "
                         "them.")
    if (count == 0).any():
        c = int(np.nonzero((count == 0).any(axis=(1, 2)))[0][0])
        n = int((count[c] == 0).sum())
        raise ValueError(f"{n} (seed, example) row(s) of condition {names[c]!r} are missing "
                         f"(seeds {list(seed_vals)}, {len(ex_vals)} examples): a crossed "
                         "comparison needs every seed to score every example under every "
                         "condition; finish the run (rerun its command: it resumes).")
    cube = np.empty(shape)
    cube[c_code, s_code, e_code] = vals
    total = np.tensordot(np.array([weights[c] for c in names], dtype=float), cube, axes=1)
    return total, [s.item() if hasattr(s, "item") else s for s in seed_vals], list(ex_vals)


def contrast_effect(rows: pd.DataFrame, weights: Mapping[str, float], column: str, *,
                    level: float = 0.95, key: str = "condition") -> tuple[Estimate, SeedTest]:
    """The crossed estimate of a contrast of conditions on one (model, task), in display units,
    with the paper's seed-level t-test beside it."""
    m, _, _ = contrast_matrix(rows, weights, column, key=key)
    est = contrast_estimate(m, weights, column, level=level)
    return est, seed_ttest(m.mean(axis=1) * scale_of(column))


def contrast_estimate(m: Float[np.ndarray, "seed example"], weights: Mapping[str, float],
                      column: str, *, level: float = 0.95) -> Estimate:
    """:func:`crossed_mean` of a :func:`contrast_matrix` in display units; a paired difference
    of two 0/1 columns gets the exact bounds of the module docstring when degenerate."""
    binary_diff = column in ACCURACY_METRICS and sorted(abs(w) for w in weights.values()) \
        in ([1.0, 1.0], [0.0]) and sum(weights.values()) == 0
    return crossed_mean(m, level=level, scale=scale_of(column), difference_of_binary=binary_diff)


def pool_tasks(estimates: Sequence[Estimate], *, level: float = 0.95) -> Estimate:
    """The mean over tasks of per-task effects (the paper's task means), tasks independent:
    variance ``sum V_t / T²``, Satterthwaite df over the tasks' df. A task with an exact bound
    and no variance contributes the variance its bound implies as a normal 95% interval
    (``(half-width / 1.96)²``)."""
    if not estimates:
        raise ValueError("no task estimates to pool.")
    if len(estimates) == 1:
        return estimates[0]
    t = len(estimates)
    terms = []
    for est in estimates:
        if math.isfinite(est.se):
            v, df = est.se ** 2, est.df
        else:  # an exact-bound task: the variance its bound implies, read as a normal interval
            df = math.inf
            half = (est.ci_high - est.ci_low) / 2
            v = (half / _t(level, df)) ** 2 if math.isfinite(half) else math.nan
        terms.append((v / t ** 2, df))
    if any(not math.isfinite(v) for v, _ in terms):
        return Estimate(float(np.mean([e.mean for e in estimates])), math.nan, math.nan,
                        math.nan, math.nan, math.nan, max(e.n_seeds for e in estimates),
                        sum(e.n_examples for e in estimates), _METHOD,
                        "a task has no interval, so neither has their mean")
    v = sum(x for x, _ in terms)
    df = satterthwaite(terms)
    mean = float(np.mean([e.mean for e in estimates]))
    se = math.sqrt(v)
    q = _t(level, df)
    p = float(2 * sps.t.sf(abs(mean) / se, df)) if se > 0 else (1.0 if mean == 0 else 0.0)
    return Estimate(mean, mean - q * se, mean + q * se, se, df, p,
                    max(e.n_seeds for e in estimates), sum(e.n_examples for e in estimates),
                    _METHOD + f"; mean of {t} tasks", "")
