"""Statistics over tidy result rows: Table 15's t-tests, bootstrap intervals, paired differences.

Every function reads the tidy rows an experiment writes (one row per model, task, seed, example
and condition; :mod:`icl_tokens.experiments.runner`), so every experiment gets them.

* **t-tests (paper Appendix C, Table 15; paper-spec E3).** Paired t-tests over the seeds
  (``scipy.stats.ttest_rel`` on the per-seed accuracies of the two conditions) for the six pairs
  of :data:`TABLE15_PAIRS`, Welch's test (``ttest_ind(equal_var=False)``) beside, and a Holm
  correction within each (model, task) family when asked (:func:`pairwise_ttests`). Each
  ``icl-*`` condition against ``icl`` (paired) and each ``+*`` condition against ``zero_shot``
  (one-sample against the zero-shot accuracy, which has no seed variance on a fixed test set):
  :func:`baseline_ttests`. :func:`table15_layout` puts our p-values beside the paper's.
* **Bootstrap intervals (every cell).** Hierarchical: resample the seeds with replacement, then
  the examples within each drawn seed; the statistic is the mean over seeds of the per-seed mean
  (the paper's "averaged over the 15 seeds"). Seeded per cell (the cell's key enters the seed),
  so a cell's interval does not depend on which other cells are present
  (:func:`bootstrap_ci`).
* **Paired differences** between two conditions on the same (seed, example) rows: the mean
  difference, its hierarchical bootstrap interval (both conditions resampled together), paired
  t-tests over seeds and over examples, and the effect sizes d_z (mean difference / sd of the
  differences) over seeds and over examples (:func:`paired_differences`).

Accuracy columns (0/1: ``correct``, ``label_correct``, ``calibrated_correct``) are reported in
percent; any other numeric column (e.g. ``margin`` from :mod:`~icl_tokens.analysis.metrics`) in
its own unit.
"""

from __future__ import annotations

import functools
import warnings
import zlib
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = [
    "TABLE15_PAIRS",
    "ACCURACY_METRICS",
    "per_seed",
    "pairwise_ttests",
    "baseline_ttests",
    "holm",
    "bootstrap_ci",
    "paired_differences",
    "table15_layout",
    "format_table15",
]

#: Table 15's comparisons in the paper's row order: (label, condition a, condition b).
#: temp = +template, cont = +content, stop = +stopword, temp_cont = icl-stopword,
#: cont_stop = icl-template, temp_stop = icl-content (paper-spec E1).
TABLE15_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("temp ↔ cont", "+template", "+content"),
    ("temp ↔ stop", "+template", "+stopword"),
    ("cont ↔ stop", "+content", "+stopword"),
    ("temp_cont ↔ cont_stop", "icl-stopword", "icl-template"),
    ("temp_stop ↔ cont_stop", "icl-content", "icl-template"),
    ("temp_cont ↔ temp_stop", "icl-stopword", "icl-content"),
)
#: 0/1 columns reported in percent.
ACCURACY_METRICS = ("correct", "label_correct", "calibrated_correct")
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
    return 100.0 if metric in ACCURACY_METRICS else 1.0


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
        df: Tidy rows holding both conditions of every pair (on the same seeds).
        pairs: ``(label, condition_a, condition_b)``; default the paper's six.
        metric: The 0/1 or numeric column tested (per-seed means).
        correction: ``None`` or ``"holm"`` (within each (model, task): the paper's six tests).
        alpha: Level for the ``significant`` column (on ``p_holm`` when corrected).

    Returns:
        One row per (model, task, pair): ``comparison, condition_a, condition_b, n_seeds,
        mean_a, mean_b, diff, t, p`` (paired, ``ttest_rel``), ``t_welch, p_welch``
        (``ttest_ind(equal_var=False)``), ``p_holm`` (with ``correction="holm"``) and
        ``significant``. p is NaN where scipy gives NaN (one seed, or no variance).
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
    for (model, task), _ in seeds.groupby(["model", "task"], sort=False):
        for label, a, b in pairs:
            xa, xb, order = _seed_pair(seeds, model, task, a, b)
            with np.errstate(all="ignore"):
                rel = sps.ttest_rel(xa, xb) if len(order) > 1 else None
                welch = sps.ttest_ind(xa, xb, equal_var=False) if len(order) > 1 else None
            rows.append({
                "model": model, "task": task, "comparison": label, "condition_a": a,
                "condition_b": b, "n_seeds": len(order), "mean_a": xa.mean(),
                "mean_b": xb.mean(), "diff": (xa - xb).mean(),
                "t": float(rel.statistic) if rel else np.nan,
                "p": float(rel.pvalue) if rel else np.nan,
                "t_welch": float(welch.statistic) if welch else np.nan,
                "p_welch": float(welch.pvalue) if welch else np.nan,
            })
    out = pd.DataFrame(rows)
    key = "p"
    if correction == "holm":
        out["p_holm"] = np.nan
        for _, idx in out.groupby(["model", "task"], sort=False).groups.items():
            out.loc[idx, "p_holm"] = holm(out.loc[idx, "p"].to_numpy())
        key = "p_holm"
    out["significant"] = out[key] < alpha
    return out


@_quiet
def baseline_ttests(df: pd.DataFrame, *, metric: str = "correct",
                    correction: str | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """Each ``icl-*`` condition against ``icl`` (paired over seeds) and each ``+*`` condition
    against ``zero_shot`` (paper-spec E3).

    The zero-shot prompt has no demonstrations, so on a fixed test set every seed gives the same
    zero-shot accuracy: then the test is one-sample (``ttest_1samp`` against it); if the
    zero-shot values do vary by seed, the test is paired. The ``test`` column says which.
    Conditions that are absent are left out (their baseline must be present).
    """
    seeds = per_seed(df, metric)
    rows = []
    for (model, task), cell in seeds.groupby(["model", "task"], sort=False):
        present = list(dict.fromkeys(cell.condition))
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
            with np.errstate(all="ignore"):
                if len(order) < 2:
                    res = None
                elif constant:
                    res = sps.ttest_1samp(xa, xb[0])
                else:
                    res = sps.ttest_rel(xa, xb)
            rows.append({"model": model, "task": task, "condition": cond, "baseline": base,
                         "test": "one-sample" if constant else "paired",
                         "n_seeds": len(order), "mean": xa.mean(), "baseline_mean": xb.mean(),
                         "diff": (xa - xb).mean(),
                         "t": float(res.statistic) if res else np.nan,
                         "p": float(res.pvalue) if res else np.nan})
    out = pd.DataFrame(rows)
    key = "p"
    if correction == "holm" and len(out):
        out["p_holm"] = np.nan
        for _, idx in out.groupby(["model", "task"], sort=False).groups.items():
            out.loc[idx, "p_holm"] = holm(out.loc[idx, "p"].to_numpy())
        key = "p_holm"
    elif correction not in (None, "holm"):
        raise ValueError(f"unknown correction {correction!r}; use None or 'holm'.")
    out["significant"] = out[key] < alpha if len(out) else []
    return out


# --- bootstrap -------------------------------------------------------------------------------


def _cell_rng(seed: int, key: tuple) -> np.random.Generator:
    """A generator for one cell: the user's seed and a stable hash of the cell's key."""
    h = zlib.crc32("\x1f".join(str(k) for k in key).encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence([int(seed), h]))


def _matrix(values: pd.Series, seeds: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Rows grouped by seed → (``Float[n_seeds, max_n]`` padded with 0, ``Int[n_seeds]`` counts)."""
    groups = [g.to_numpy(float) for _, g in values.groupby(seeds.to_numpy(), sort=True)]
    counts = np.array([len(g) for g in groups])
    m = np.zeros((len(groups), counts.max()))
    for i, g in enumerate(groups):
        m[i, : len(g)] = g
    return m, counts


def _hier_boot(m: np.ndarray, counts: np.ndarray, n_boot: int, rng: np.random.Generator,
               block: int = 256) -> np.ndarray:
    """Hierarchical bootstrap replicates of the mean over seeds of per-seed means.

    ``m``: ``Float[..., n_seeds, max_n]`` (a leading axis of paired columns is resampled
    together); returns ``Float[..., n_boot]``."""
    n_s, max_n = m.shape[-2], m.shape[-1]
    out = []
    for s in range(0, n_boot, block):
        b = min(block, n_boot - s)
        pick = rng.integers(0, n_s, size=(b, n_s))  # seeds drawn
        n = counts[pick]  # [b, n_s]
        u = rng.random((b, n_s, max_n))
        ex = np.minimum((u * n[..., None]).astype(np.int64), max_n - 1)  # examples within seed
        valid = np.arange(max_n)[None, None, :] < n[..., None]
        vals = m[..., pick[..., None], ex]  # [..., b, n_s, max_n]
        seed_means = (vals * valid).sum(-1) / n
        out.append(seed_means.mean(-1))
    return np.concatenate(out, axis=-1)


def bootstrap_ci(
    df: pd.DataFrame,
    metric: str = "correct",
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    by: Sequence[str] = ("model", "task", "condition"),
) -> pd.DataFrame:
    """Hierarchical bootstrap interval of every cell (seeds, then examples within seed).

    Args:
        df: Tidy rows.
        metric: A 0/1 accuracy column (percent) or any numeric column.
        n_boot: Replicates per cell.
        level: Coverage of the percentile interval.
        seed: The bootstrap seed (each cell's generator also takes its key: deterministic).
        by: The cell columns.

    Returns:
        One row per cell: ``mean`` (mean over seeds of the per-seed mean), ``lo``, ``hi``,
        ``n_seeds``, ``n_examples`` (rows), ``metric``.
    """
    _check_columns(df, metric)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}.")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}.")
    scale = _scale(metric)
    rows = []
    for key, cell in df.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        m, counts = _matrix(cell[metric], cell["seed"])
        point = float((m.sum(-1) / counts).mean())
        reps = _hier_boot(m, counts, n_boot, _cell_rng(seed, key))
        lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
        rows.append({**dict(zip(by, key)), "mean": point * scale, "lo": lo * scale,
                     "hi": hi * scale, "n_seeds": len(counts), "n_examples": int(counts.sum()),
                     "metric": metric})
    return pd.DataFrame(rows)


# --- paired differences ----------------------------------------------------------------------


def _paired_rows(cell: pd.DataFrame, a: str, b: str, metric: str) -> pd.DataFrame:
    """Rows of a and b side by side on (seed, example_id); an error for unpaired rows."""
    wide = cell[cell.condition.isin([a, b])].pivot_table(
        index=["seed", "example_id"], columns="condition", values=metric, aggfunc="first")
    for c in (a, b):
        if c not in wide.columns:
            raise ValueError(f"the rows lack condition {c!r}.")
    unpaired = int(wide[[a, b]].isna().any(axis=1).sum())
    if unpaired:
        raise ValueError(f"{unpaired} (seed, example) rows have only one of {a!r} and {b!r}; a "
                         "paired comparison needs both for every row.")
    return wide.reset_index()


def _dz(d: np.ndarray) -> float:
    sd = d.std(ddof=1) if len(d) > 1 else np.nan
    return float(d.mean() / sd) if sd and np.isfinite(sd) and sd > 0 else np.nan


@_quiet
def paired_differences(
    df: pd.DataFrame,
    pairs: Sequence[tuple[str, str, str]] | Sequence[tuple[str, str]] = TABLE15_PAIRS,
    *,
    metric: str = "correct",
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired differences ``a − b`` between conditions, per (model, task).

    Args:
        pairs: ``(label, a, b)`` or ``(a, b)`` (label ``"a − b"``).
        metric: A 0/1 accuracy column (percent points) or any numeric column.

    Returns:
        One row per (model, task, pair): ``diff`` (mean over seeds of the per-seed mean
        difference), ``lo``/``hi`` (hierarchical bootstrap, both conditions resampled on the
        same seeds and examples), ``t_seeds, p_seeds, dz_seeds`` (over the per-seed means),
        ``t_examples, p_examples, dz_examples`` (over every (seed, example) row, treated as
        independent), ``p_wilcoxon`` (signed-rank test over the rows: for skewed metrics such
        as the margin; NaN when every difference is 0), ``n_seeds``, ``n_examples``.
    """
    _check_columns(df, metric)
    scale = _scale(metric)
    norm = [(p[0], p[1], p[2]) if len(p) == 3 else (f"{p[0]} − {p[1]}", p[0], p[1])
            for p in pairs]
    rows = []
    for (model, task), cell in df.groupby(["model", "task"], sort=False):
        for label, a, b in norm:
            wide = _paired_rows(cell, a, b, metric)
            d = (wide[a] - wide[b]).astype(float)
            m, counts = _matrix(d, wide["seed"])
            seed_d = m.sum(-1) / counts
            reps = _hier_boot(m, counts, n_boot, _cell_rng(seed, (model, task, a, b)))
            lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
            dv = d.to_numpy()
            with np.errstate(all="ignore"):
                ts = sps.ttest_1samp(seed_d, 0.0) if len(seed_d) > 1 else None
                te = sps.ttest_1samp(dv, 0.0) if len(dv) > 1 else None
                pw = float(sps.wilcoxon(dv).pvalue) if np.any(dv != 0) else np.nan
            rows.append({
                "model": model, "task": task, "comparison": label, "condition_a": a,
                "condition_b": b, "metric": metric, "diff": float(seed_d.mean()) * scale,
                "lo": lo * scale, "hi": hi * scale,
                "t_seeds": float(ts.statistic) if ts else np.nan,
                "p_seeds": float(ts.pvalue) if ts else np.nan, "dz_seeds": _dz(seed_d),
                "t_examples": float(te.statistic) if te else np.nan,
                "p_examples": float(te.pvalue) if te else np.nan, "dz_examples": _dz(dv),
                "p_wilcoxon": pw,
                "n_seeds": len(counts), "n_examples": len(dv),
            })
    return pd.DataFrame(rows)


# --- Table 15 layout -------------------------------------------------------------------------


def table15_layout(tests: pd.DataFrame, paper_model: str | None = "Llama-7B",
                   alpha: float = 0.05) -> pd.DataFrame:
    """Our Table 15 p-values beside the paper's, one row per (model, task, comparison).

    Args:
        tests: From :func:`pairwise_ttests` (Table 15's pairs).
        paper_model: The paper's model to put beside ours (``None``: every paper model, one row
            each).
        alpha: Significance level of the ``agree`` column.

    Returns:
        Columns ``model, task, comparison, p`` (ours; ``p_holm`` too when present),
        ``paper_model, paper_p, paper_significant, significant, agree`` (both significant or
        both not; missing where either p-value is), in the paper's row order. Tasks the paper
        does not have get no paper values.
    """
    from ..reference import paper_values

    paper = paper_values(15, paper_model)
    paper = paper.rename(columns={"model": "paper_model", "value": "paper_p"})
    paper["paper_significant"] = ~paper["not_significant"].astype(bool)
    keep = [c for c in ("model", "task", "comparison", "condition_a", "condition_b", "n_seeds",
                        "diff", "p", "p_holm") if c in tests.columns]
    out = tests[keep].merge(
        paper[["paper_model", "comparison", "task", "paper_p", "paper_significant"]],
        on=["comparison", "task"], how="left")
    key = "p_holm" if "p_holm" in out.columns else "p"
    out["significant"] = out[key] < alpha
    known = out["paper_p"].notna() & out[key].notna()
    agree = pd.array([pd.NA] * len(out), dtype="boolean")
    agree[known.to_numpy()] = (out["significant"] == out["paper_significant"])[known].to_numpy(
        bool)
    out["agree"] = agree
    order = {c[0]: i for i, c in enumerate(TABLE15_PAIRS)}
    out["_o"] = out["comparison"].map(lambda c: order.get(c, len(order)))
    return (out.sort_values(["model", "_o"], kind="stable").drop(columns="_o")
            .reset_index(drop=True))


def _fmt_p(p: float) -> str:
    if p != p:  # NaN
        return "n/a"
    s = f"{p:.7f}"
    return f"**{s}** (n.s.)" if p >= 0.05 else s


def format_table15(layout: pd.DataFrame) -> str:
    """Markdown like paper Table 15: rows = comparisons, columns = tasks, cells ``ours / paper``
    (bold n.s. = p ≥ 0.05, as in the paper)."""
    key = "p_holm" if "p_holm" in layout.columns else "p"
    tasks = list(dict.fromkeys(layout["task"]))
    lines = ["| Model | Comparison | " + " | ".join(f"{t} (ours / paper)" for t in tasks) + " |",
             "|---|---|" + "---|" * len(tasks)]
    for (model, comp), g in layout.groupby(["model", "comparison"], sort=False):
        cells = []
        for t in tasks:
            r = g[g.task == t]
            if r.empty:
                cells.append("")
                continue
            r = r.iloc[0]
            paper = r.get("paper_p")
            cells.append(f"{_fmt_p(r[key])} / "
                         f"{_fmt_p(paper) if paper == paper and paper is not None else '—'}")
        lines.append(f"| {model} | {comp} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
