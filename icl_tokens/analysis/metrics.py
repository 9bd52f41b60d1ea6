"""Continuous per-example metrics from tidy rows, for effects accuracy cannot see.

A small model may predict the same label for every example under every condition (SmolLM2-135M
on SST-2: accuracy 66.7 % everywhere), while the log-probabilities of the labels still move by
condition. The runner writes, for every row, ``score_<label>``: the teacher-forced
log-probability (natural log, over the full vocabulary) of ``" " + label`` (all its tokens)
after the prompt, under the row's knockout (:func:`icl_tokens.experiments.runner.result_row`).
From these columns alone, so every experiment gets them:

* ``gold_score``: the gold label's log-probability;
* ``best_other_score``: the highest log-probability of any other label;
* ``margin = gold_score − best_other_score`` (> 0 exactly when the label-restricted prediction
  is right, up to ties): **the continuous metric**;
* ``gold_prob``: the gold label's probability renormalised over the label set (softmax of the
  scores);
* ``pred_score``: the log-probability of the label-restricted prediction.

:func:`continuous_table` gives every cell's mean with its interval, and
:func:`paired_metric_tests` the paired differences between conditions, both on the crossed
seeds x examples design (:mod:`icl_tokens.analysis.inference`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .calibration import calibrate
from .scores import label_scores
from .stats import cell_intervals, paired_differences
from .table15 import TABLE15_PAIRS

__all__ = ["CONTINUOUS_COLUMNS", "add_continuous_metrics", "continuous_table",
           "paired_metric_tests", "cell_summary"]

#: The columns :func:`add_continuous_metrics` adds.
CONTINUOUS_COLUMNS = ("gold_score", "best_other_score", "margin", "gold_prob", "pred_score")


def _task_metrics(rows: pd.DataFrame) -> pd.DataFrame:
    words, s = label_scores(rows)
    gold = rows["gold"].astype(str).to_numpy()
    unknown = sorted(set(gold) - set(words))
    if unknown:
        raise ValueError(f"gold label(s) {unknown} have no score column (labels {words}).")
    gi = np.array([words.index(g) for g in gold])
    n = np.arange(len(rows))
    gold_s = s[n, gi]
    other = s.copy()
    other[n, gi] = -np.inf
    best_other = other.max(axis=1) if len(words) > 1 else np.full(len(rows), np.nan)
    z = s - s.max(axis=1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    pred = s.max(axis=1)
    return pd.DataFrame({"gold_score": gold_s, "best_other_score": best_other,
                         "margin": gold_s - best_other, "gold_prob": prob[n, gi],
                         "pred_score": pred}, index=rows.index)


def add_continuous_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of the tidy rows with the :data:`CONTINUOUS_COLUMNS` (per task, so rows of
    several tasks may be mixed)."""
    out = df.copy()
    cols = {c: np.full(len(df), np.nan) for c in CONTINUOUS_COLUMNS}
    for pos in df.groupby("task", sort=False).indices.values():  # positions: any index works
        part = _task_metrics(df.iloc[pos])
        for c in CONTINUOUS_COLUMNS:
            cols[c][pos] = part[c].to_numpy()
    for c in CONTINUOUS_COLUMNS:
        out[c] = cols[c]
    return out


def continuous_table(df: pd.DataFrame, metric: str = "margin", *, level: float = 0.95
                     ) -> pd.DataFrame:
    """Every (model, task, condition) cell's mean ``metric`` with its crossed interval
    (:func:`~.stats.cell_intervals`)."""
    rows = df if metric in df.columns else add_continuous_metrics(df)
    return cell_intervals(rows, metric, level=level)


def paired_metric_tests(
    df: pd.DataFrame,
    pairs: Sequence[tuple[str, str, str]] | Sequence[tuple[str, str]] = TABLE15_PAIRS,
    metric: str = "margin", *, level: float = 0.95,
) -> pd.DataFrame:
    """Paired differences of ``metric`` between conditions on the crossed seeds x examples
    design (:func:`~.stats.paired_differences`). Pairs whose conditions the rows lack are an
    error."""
    rows = df if metric in df.columns else add_continuous_metrics(df)
    return paired_differences(rows, pairs, metric=metric, level=level)


def cell_summary(
    df: pd.DataFrame, cf_rows: pd.DataFrame | None = None,
    metrics: Sequence[str] = ("correct", "label_correct", "margin"), *,
    level: float = 0.95,
) -> pd.DataFrame:
    """Every (model, task, condition) cell with each metric's mean and crossed interval.

    Args:
        df: Tidy rows (any experiment).
        cf_rows: Content-free rows (:func:`~.calibration.content_free_rows`); when given,
            ``calibrated_correct`` is added to the metrics.
        metrics: Columns of ``df`` or of :data:`CONTINUOUS_COLUMNS` (added when missing).

    Returns:
        ``model, task, condition, n_seeds, n_examples`` and per metric ``<m>``, ``<m>_lo``,
        ``<m>_hi`` (accuracies in percent), in the rows' order of first appearance.
    """
    rows = df
    if any(m in CONTINUOUS_COLUMNS and m not in df.columns for m in metrics):
        rows = add_continuous_metrics(rows)
    metrics = list(metrics)
    if cf_rows is not None:
        rows = calibrate(rows, cf_rows)
        metrics.append("calibrated_correct")
    out: pd.DataFrame | None = None
    for m in metrics:
        ci = cell_intervals(rows, m, level=level)
        ci = ci.rename(columns={"mean": m, "lo": f"{m}_lo", "hi": f"{m}_hi"}).drop(
            columns="metric")
        out = ci if out is None else out.merge(
            ci.drop(columns=["n_seeds", "n_examples"]), on=["model", "task", "condition"])
    assert out is not None
    return out
