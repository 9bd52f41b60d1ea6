"""Statistics over tidy result rows: Table 15's t-tests, cell intervals, paired differences.

Every function reads the tidy rows an experiment writes (one row per model, task, seed, example
and condition; :mod:`icl_tokens.experiments.runner`), so every experiment gets them.

* **t-tests (paper Appendix C, Table 15; paper-spec E3).** Paired t-tests over the seeds
  (``scipy.stats.ttest_rel`` on the per-seed accuracies of the two conditions) for the six pairs
  of :data:`TABLE15_PAIRS`, Welch's test (``ttest_ind(equal_var=False)``) beside, and Holm's
  correction within each (model, task) family of six (:func:`pairwise_ttests`). Each ``icl-*``
  condition against ``icl`` (paired) and each ``+*`` condition against ``zero_shot`` (one-sample
  against the zero-shot accuracy, which has no seed variance on a fixed test set):
  :func:`baseline_ttests`. A seed-level test is ``n/a`` with its reason when it is undefined or
  meaningless: fewer than 3 seeds, or differences with no variance (a p of 0 from an infinite t
  is never printed). Beside each, the test that fits the design: the crossed seeds x examples
  estimate of :mod:`~icl_tokens.analysis.inference` (``diff_crossed``, ``lo``, ``hi``,
  ``p_crossed``).
* **Cell intervals** (:func:`cell_intervals`): the crossed estimate of each cell, with Wilson
  intervals from the distinct examples for 0/1 columns (a 0/12 cell is not ``[0, 0]``).
* **Paired differences** (:func:`paired_differences`): the crossed estimate of ``a − b``.
* **Table 15 beside the paper** (:func:`table15_layout`, :func:`format_table15`, from
  :mod:`~icl_tokens.analysis.table15`, where the six pairs are declared).

Accuracy columns (0/1: ``correct``, ``label_correct``, ``calibrated_correct``) are reported in
percent; any other numeric column (e.g. ``margin`` from :mod:`~icl_tokens.analysis.metrics`) in
its own unit.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from .inference import (
    ACCURACY_METRICS,
    cell_estimate,
    contrast_effect,
    contrast_matrix,
    pair_weights,
    scale_of,
)
from .table15 import TABLE15_PAIRS, format_table15, table15_layout

__all__ = [
    "TABLE15_PAIRS",
    "ACCURACY_METRICS",
    "per_seed",
    "pairwise_ttests",
    "baseline_ttests",
    "holm",
    "cell_intervals",
    "paired_differences",
    "seed_test_note",
    "table15_layout",
    "format_table15",
]

_CELL = ["model", "task", "condition"]


def _quiet(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Silence scipy's "precision loss" warning: cells whose samples are identical (e.g. a
    zero-shot accuracy that no seed changes) give a degenerate or NaN p-value, which the
    tables show as such."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Precision loss occurred",
                                    category=RuntimeWarning)
            return fn(*args, **kwargs)
    return wrapper


def _scale(metric: str) -> float:
    return scale_of(metric)


def _check_columns(df: pd.DataFrame, metric: str) -> None:
    need = ["model", "task", "seed", "example_id", "condition", metric]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"tidy rows lack the column(s) {missing}; metric columns such as "
                         "'margin' come from icl_tokens.analysis.metrics.add_continuous_metrics.")
    if not pd.api.types.is_numeric_dtype(df[metric]):
        raise ValueError(f"column {metric!r} is not numeric (dtype {df[metric].dtype}).")
    if df[metric].isna().any():
        raise ValueError(f"column {metric!r} has {int(df[metric].isna().sum())} missing values; "
                         "nothing is dropped silently: filter the rows first.")


def per_seed(df: pd.DataFrame, metric: str = "correct") -> pd.DataFrame:
    """Mean of ``metric`` per (model, task, condition, seed): columns ``value`` (percent for
    accuracy columns) and ``n`` (examples)."""
    _check_columns(df, metric)
    g = df.groupby(_CELL + ["seed"], sort=False)[metric]
    out = g.mean().mul(_scale(metric)).rename("value").reset_index()
    out["n"] = g.size().to_numpy()
    return out


def _seed_pair(seeds: pd.DataFrame, model: str, task: str, a: str, b: str
               ) -> tuple[np.ndarray, np.ndarray, list]:
    """Per-seed values of conditions a and b on the seeds both have (an error if they differ)."""
    cell = seeds[(seeds.model == model) & (seeds.task == task)]
    va = cell[cell.condition == a].set_index("seed")["value"]
    vb = cell[cell.condition == b].set_index("seed")["value"]
    if set(va.index) != set(vb.index):
        raise ValueError(f"{model}/{task}: conditions {a!r} and {b!r} have different seeds "
                         f"({sorted(va.index)} vs {sorted(vb.index)}); a paired test needs the "
                         "same seeds.")
    order = sorted(va.index)
    return va.loc[order].to_numpy(float), vb.loc[order].to_numpy(float), order


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and do not count in m).

    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def seed_test_note(d: np.ndarray) -> str:
    """Why a seed-level t-test on differences ``d`` is not given ('' when it is)."""
    if len(d) < 3:
        return f"n/a: {len(d)} seed{'s' * (len(d) != 1)} (a t-test over seeds needs >= 3)"
    if np.ptp(d) == 0:
        return "n/a: every seed gives the same difference (zero variance; t undefined)"
    return ""


def _crossed(cell: pd.DataFrame, a: str, b: str, metric: str) -> dict[str, float]:
    """The design-fitting estimate of ``a − b`` (crossed seeds x examples)."""
    est, _ = contrast_effect(cell, pair_weights(a, b), metric)
    return {"diff_crossed": est.mean, "lo": est.ci_low, "hi": est.ci_high, "p_crossed": est.p}


def _family_holm(out: pd.DataFrame, col: str = "p") -> pd.Series:
    res = pd.Series(np.nan, index=out.index)
    for _, idx in out.groupby(["model", "task"], sort=False).groups.items():
        res.loc[idx] = holm(out.loc[idx, col].to_numpy(float))
    return res


@_quiet
def pairwise_ttests(
    df: pd.DataFrame,
    pairs: Sequence[tuple[str, str, str]] = TABLE15_PAIRS,
    *,
    metric: str = "correct",
    correction: str | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Table 15's t-tests: for every (model, task) and pair, over the seeds.

    Args:
        df: Tidy rows holding both conditions of every pair (on the same seeds and examples).
        pairs: ``(label, condition_a, condition_b)``; default the paper's six.
        metric: The 0/1 or numeric column tested (per-seed means).
        correction: ``None`` or ``"holm"``: which p the ``significant`` column reads (``p_holm``,
            Holm within each (model, task) family, is always given).
        alpha: Level for the ``significant`` column.

    Returns:
        One row per (model, task, pair): ``comparison, condition_a, condition_b, n_seeds,
        mean_a, mean_b, diff, t, p`` (paired, ``ttest_rel``), ``p_holm``, ``t_welch, p_welch``
        (``ttest_ind(equal_var=False)``), ``note`` (why t/p are NaN: fewer than 3 seeds, or
        zero variance), the crossed estimate ``diff_crossed, lo, hi, p_crossed`` and
        ``significant`` (False where p is n/a).
    """
    if correction not in (None, "holm"):
        raise ValueError(f"unknown correction {correction!r}; use None or 'holm'.")
    seeds = per_seed(df, metric)
    conds = set(seeds.condition)
    missing = sorted({c for _, a, b in pairs for c in (a, b)} - conds)
    if missing:
        raise ValueError(f"the rows lack the condition(s) {missing} the tests need (they hold "
                         f"{sorted(conds)}); run them, or pass pairs=... with what you have.")
    rows = []
    for (model, task), cell in df.groupby(["model", "task"], sort=False):
        for label, a, b in pairs:
            xa, xb, order = _seed_pair(seeds, model, task, a, b)
            note = seed_test_note(xa - xb)
            rel = welch = None
            with np.errstate(all="ignore"):
                if not note:
                    rel = sps.ttest_rel(xa, xb)
                if len(order) >= 3 and (np.ptp(xa) > 0 or np.ptp(xb) > 0):
                    welch = sps.ttest_ind(xa, xb, equal_var=False)
            rows.append({
                "model": model, "task": task, "comparison": label, "condition_a": a,
                "condition_b": b, "n_seeds": len(order), "mean_a": xa.mean(),
                "mean_b": xb.mean(), "diff": (xa - xb).mean(),
                "t": float(rel.statistic) if rel else np.nan,
                "p": float(rel.pvalue) if rel else np.nan,
                "t_welch": float(welch.statistic) if welch else np.nan,
                "p_welch": float(welch.pvalue) if welch else np.nan,
                "note": note, **_crossed(cell, a, b, metric),
            })
    out = pd.DataFrame(rows)
    out.insert(out.columns.get_loc("p") + 1, "p_holm", _family_holm(out))
    key = "p_holm" if correction == "holm" else "p"
    out["significant"] = (out[key] < alpha).fillna(False).astype(bool)
    return out


@_quiet
def baseline_ttests(df: pd.DataFrame, *, metric: str = "correct",
                    correction: str | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """Each ``icl-*`` condition against ``icl`` (paired over seeds) and each ``+*`` condition
    against ``zero_shot`` (paper-spec E3).

    The zero-shot prompt has no demonstrations, so on a fixed test set every seed gives the same
    zero-shot accuracy: then the test is one-sample (``ttest_1samp`` against it); if the
    zero-shot values do vary by seed, the test is paired. The ``test`` column says which, and
    ``note`` why a test is n/a (fewer than 3 seeds, zero variance). ``p_holm`` is Holm within
    each (model, task); the crossed estimate (``diff_crossed, lo, hi, p_crossed``) is beside.
    Conditions that are absent are left out (their baseline must be present).
    """
    if correction not in (None, "holm"):
        raise ValueError(f"unknown correction {correction!r}; use None or 'holm'.")
    seeds = per_seed(df, metric)
    rows = []
    for (model, task), cell in seeds.groupby(["model", "task"], sort=False):
        present = list(dict.fromkeys(cell.condition))
        raw = df[(df.model == model) & (df.task == task)]
        for cond in present:
            base = "icl" if cond.startswith("icl-") else "zero_shot" if cond.startswith("+") \
                else None
            if base is None:
                continue
            if base not in present:
                raise ValueError(f"{model}/{task}: {cond!r} is tested against {base!r}, which "
                                 "the rows lack; run it too.")
            xa, xb, order = _seed_pair(seeds, model, task, cond, base)
            constant = base == "zero_shot" and np.ptp(xb) == 0
            note = seed_test_note(xa - xb)
            res = None
            with np.errstate(all="ignore"):
                if not note:
                    res = sps.ttest_1samp(xa, xb[0]) if constant else sps.ttest_rel(xa, xb)
            rows.append({"model": model, "task": task, "condition": cond, "baseline": base,
                         "test": "one-sample" if constant else "paired",
                         "n_seeds": len(order), "mean": xa.mean(), "baseline_mean": xb.mean(),
                         "diff": (xa - xb).mean(),
                         "t": float(res.statistic) if res else np.nan,
                         "p": float(res.pvalue) if res else np.nan, "note": note,
                         **_crossed(raw, cond, base, metric)})
    out = pd.DataFrame(rows)
    if not len(out):
        return out
    out.insert(out.columns.get_loc("p") + 1, "p_holm", _family_holm(out))
    key = "p_holm" if correction == "holm" else "p"
    out["significant"] = (out[key] < alpha).fillna(False).astype(bool)
    return out


# --- cell intervals and paired differences ----------------------------------------------------


def cell_intervals(
    df: pd.DataFrame,
    metric: str = "correct",
    *,
    level: float = 0.95,
    by: Sequence[str] = ("model", "task", "condition"),
) -> pd.DataFrame:
    """The crossed (seeds x examples) estimate of every cell with its interval.

    0/1 columns get a Wilson interval from the design's effective sample size (an all-0 or all-1
    cell: its distinct examples), other columns a crossed t interval
    (:func:`~icl_tokens.analysis.inference.cell_estimate`).

    Returns:
        One row per cell: ``mean`` (percent for 0/1 columns), ``lo``, ``hi``, ``n_seeds``,
        ``n_examples`` (distinct examples), ``metric``.
    """
    _check_columns(df, metric)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}.")
    scale = _scale(metric)
    rows = []
    for key, cell in df.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        if cell.duplicated(["seed", "example_id"]).any():
            raise ValueError(f"cell {dict(zip(by, key))} has several rows per (seed, example); "
                             "group by every column that tells them apart (e.g. condition).")
        m, _, _ = contrast_matrix(cell.assign(_cell="cell"), {"cell": 1.0}, metric, key="_cell")
        est = cell_estimate(m, level=level, scale=scale,
                            binary=metric in ACCURACY_METRICS)
        rows.append({**dict(zip(by, key)), "mean": est.mean, "lo": est.ci_low,
                     "hi": est.ci_high, "n_seeds": est.n_seeds, "n_examples": est.n_examples,
                     "metric": metric})
    return pd.DataFrame(rows)


@_quiet
def paired_differences(
    df: pd.DataFrame,
    pairs: Sequence[tuple[str, str, str]] | Sequence[tuple[str, str]] = TABLE15_PAIRS,
    *,
    metric: str = "correct",
    level: float = 0.95,
) -> pd.DataFrame:
    """Paired differences ``a − b`` between conditions, per (model, task), on the crossed
    design.

    Args:
        pairs: ``(label, a, b)`` or ``(a, b)`` (label ``"a − b"``).
        metric: A 0/1 accuracy column (percent points) or any numeric column.

    Returns:
        One row per (model, task, pair): ``diff`` (the mean difference), ``lo``/``hi`` and ``p``
        (crossed seeds x examples, Satterthwaite t), ``df``, ``t_seeds, p_seeds, seeds_note``
        (the seed-level paired t-test, n/a with its reason under 3 seeds or zero variance),
        ``n_seeds``, ``n_examples`` (distinct examples), ``method``.
    """
    _check_columns(df, metric)
    norm = [(p[0], p[1], p[2]) if len(p) == 3 else (f"{p[0]} − {p[1]}", p[0], p[1])
            for p in pairs]
    rows = []
    for (model, task), cell in df.groupby(["model", "task"], sort=False):
        for label, a, b in norm:
            est, st = contrast_effect(cell, pair_weights(a, b), metric, level=level)
            rows.append({
                "model": model, "task": task, "comparison": label, "condition_a": a,
                "condition_b": b, "metric": metric, "diff": est.mean, "lo": est.ci_low,
                "hi": est.ci_high, "p": est.p, "df": est.df, "t_seeds": st.t,
                "p_seeds": st.p, "seeds_note": st.note, "n_seeds": est.n_seeds,
                "n_examples": est.n_examples, "method": est.method,
            })
    return pd.DataFrame(rows)
