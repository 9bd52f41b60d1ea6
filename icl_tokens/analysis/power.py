"""A budget planner: how many seeds x examples detect a paired effect, from a pilot run.

The pilot's variance components of each paired difference (seed, example, residual;
:func:`~icl_tokens.analysis.inference.variance_components`) give, for any design S x E, the
variance of the mean difference ``V = s_a²/S + s_b²/E + s_e²/(SE)`` and its Satterthwaite degrees
of freedom (from the expected mean squares). The power of the two-sided crossed t-test at level
alpha to detect a true difference ``delta`` is approximated by a central t shifted by the
noncentrality ``delta / sqrt(V)``. The seed term does not shrink with more examples, so a pair whose
difference varies by seed needs seeds, not examples: :func:`plan` says when no number of
examples is enough.

Pilot estimates of a variance from a few seeds are themselves noisy (the seed term of a 3-seed
pilot has 2 degrees of freedom), so the plan is a guide; rerun it on the larger run.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as sps

from .inference import column_of, contrast_matrix, pair_weights, scale_of
from .table15 import TABLE15_PAIRS
from .variance import Components, variance_components

__all__ = ["default_pairs", "pilot_components", "power_of", "detectable_effect", "plan",
           "plan_pairs", "summarize_plan"]


def default_pairs(conditions: Sequence[str]) -> list[tuple[str, str]]:
    """The paired comparisons the tables test, among the conditions present: Table 15's six,
    each ``icl-*`` against ``icl`` and each ``+*`` against ``zero_shot``; otherwise every pair
    with ``icl``."""
    have = set(conditions)
    pairs = [(a, b) for _, a, b in TABLE15_PAIRS if a in have and b in have]
    pairs += [(c, "icl") for c in conditions if c.startswith("icl-") and "icl" in have]
    pairs += [(c, "zero_shot") for c in conditions if c.startswith("+") and "zero_shot" in have]
    if not pairs and "icl" in have:
        pairs = [(c, "icl") for c in conditions if c != "icl"]
    return list(dict.fromkeys(pairs))


def pilot_components(rows: pd.DataFrame, pairs: Sequence[tuple[str, str]], metric: str
                     ) -> pd.DataFrame:
    """Variance components (display units², e.g. points²) of each pair's per-row difference
    ``a − b`` per (model, task), with the pilot's size and observed mean difference."""
    col = column_of(metric)
    scale = scale_of(col)
    out = []
    for (model, task), g in rows.groupby(["model", "task"], sort=False):
        for a, b in pairs:
            m, seeds, examples = contrast_matrix(g, pair_weights(a, b), col)
            c = variance_components(m * scale)
            out.append({"model": model, "task": task, "a": a, "b": b, "metric": col,
                        "diff": float(m.mean() * scale), "var_seed": c.seed,
                        "var_example": c.example, "var_residual": c.residual,
                        "pilot_seeds": len(seeds), "pilot_examples": len(examples)})
    return pd.DataFrame(out)


def _components(r: pd.Series | dict, s: int, e: int) -> Components:
    return Components(float(r["var_seed"]), float(r["var_example"]), float(r["var_residual"]),
                      s, e, (math.nan,) * 3, (s - 1, e - 1, (s - 1) * (e - 1)))


def power_of(r: pd.Series | dict, effect: float, n_seeds: int, n_examples: int,
             alpha: float = 0.05) -> float:
    """Power of the two-sided crossed t-test to detect ``effect`` with ``n_seeds`` x
    ``n_examples``, given one row of :func:`pilot_components`."""
    c = _components(r, n_seeds, n_examples)
    v = c.variance_of_mean()
    if v <= 0:
        return 1.0 if effect != 0 else alpha
    df = c.satterthwaite_df()
    df = df if math.isfinite(df) else 1e6
    if df <= 0:
        return math.nan
    crit = sps.t.ppf(1 - alpha / 2, df)
    ncp = abs(effect) / math.sqrt(v)
    # The shifted central t (scipy's noncentral t loses accuracy for large noncentralities).
    return float(sps.t.sf(crit - ncp, df) + sps.t.cdf(-crit - ncp, df))


def detectable_effect(r: pd.Series | dict, n_seeds: int, n_examples: int, power: float = 0.8,
                      alpha: float = 0.05) -> float:
    """The smallest effect detected with ``power`` at ``n_seeds`` x ``n_examples``."""
    if n_seeds < 2 and float(r["var_seed"]) > 0:
        return math.inf
    c = _components(r, n_seeds, n_examples)
    v = c.variance_of_mean()
    if v <= 0:
        return 0.0
    hi = math.sqrt(v) * 100
    if power_of(r, hi, n_seeds, n_examples, alpha) < power:
        return math.inf
    return float(optimize.brentq(lambda d: power_of(r, d, n_seeds, n_examples, alpha) - power,
                                 1e-9, hi, xtol=1e-6))


def plan(comps: pd.DataFrame, effect: float, *, power: float = 0.8, alpha: float = 0.05,
         seeds: Sequence[int] = (3, 5, 8, 10, 15, 20, 30), max_examples: int = 500
         ) -> pd.DataFrame:
    """For each (model, task) and number of seeds: the fewest examples (<= ``max_examples``)
    that detect ``effect`` with ``power`` for the median pair and for every pair.

    Returns:
        ``model, task, seeds, examples_median_pair, examples_every_pair`` (NaN: not reachable
        with that many seeds and at most ``max_examples`` examples), ``rows_every_pair``
        (seeds x examples per condition), ``hardest_pair``.
    """
    return summarize_plan(plan_pairs(comps, effect, power=power, alpha=alpha, seeds=seeds,
                                     max_examples=max_examples))


def summarize_plan(per_pair: pd.DataFrame) -> pd.DataFrame:
    """:func:`plan`'s per-task summary of a :func:`plan_pairs` table (computed once)."""
    cols = [c for c in per_pair.columns if c.endswith(" seeds")]
    out = []
    for (model, task), g in per_pair.groupby(["model", "task"], sort=False):
        for col in cols:
            s = int(col.split()[0])
            arr = g[col].to_numpy(float)
            need = np.where(np.isnan(arr), np.inf, arr)  # unreachable counts as infinite
            worst = int(np.argmax(need))
            every = float("nan") if np.isnan(arr).any() else float(arr.max())
            med = float(np.median(need)) if len(arr) else float("nan")
            out.append({"model": model, "task": task, "seeds": s,
                        "examples_median_pair": med if math.isfinite(med) else float("nan"),
                        "examples_every_pair": every,
                        "rows_every_pair": s * every if math.isfinite(every) else float("nan"),
                        "hardest_pair": g["pair"].iloc[worst]})
    return pd.DataFrame(out)


def plan_pairs(comps: pd.DataFrame, effect: float, *, power: float = 0.8, alpha: float = 0.05,
               seeds: Sequence[int] = (3, 5, 8, 10, 15, 20, 30), max_examples: int = 500
               ) -> pd.DataFrame:
    """Per (model, task, pair): the fewest examples (<= ``max_examples``) that detect
    ``effect`` with ``power`` for each number of seeds; columns ``model, task, pair`` and one
    per seed count (NaN: not reachable)."""
    if effect <= 0:
        raise ValueError(f"--effect must be > 0 (the paired difference to detect), got {effect}.")
    out = []
    for _, r in comps.iterrows():
        row = {"model": r["model"], "task": r["task"], "pair": f"{r['a']} − {r['b']}"}
        for s in seeds:
            n = _min_examples(r, effect, s, power, alpha, max_examples)
            row[f"{s} seeds"] = float("nan") if n is None else float(n)
        out.append(row)
    return pd.DataFrame(out)


def _min_examples(r: pd.Series, effect: float, s: int, power: float, alpha: float,
                  max_examples: int) -> int | None:
    """Fewest examples reaching ``power`` with ``s`` seeds (power grows with E: bisection)."""
    if power_of(r, effect, s, max_examples, alpha) < power:
        return None
    lo, hi = 2, max_examples
    if power_of(r, effect, s, lo, alpha) >= power:
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if power_of(r, effect, s, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return hi
