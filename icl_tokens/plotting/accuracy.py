"""Accuracy bars: ours by condition (mean ± std over seeds) next to the paper's numbers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..ablation.conditions import PAPER_ORDER

__all__ = ["accuracy_bar"]


def _pick(columns: Sequence[str], options: Sequence[str], what: str, required: bool = True
          ) -> str | None:
    for o in options:
        if o in columns:
            return o
    if required:
        raise ValueError(f"table has no {what} column (looked for {list(options)}); "
                         f"columns: {list(columns)}.")
    return None


def _condition_order(conds: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(conds))
    known = [c for c in PAPER_ORDER if c in seen]
    return known + [c for c in seen if c not in known]


def _paper_long(paper: pd.DataFrame) -> pd.DataFrame:
    """Paper numbers as long rows ``condition, task, value`` (long or conditions × tasks input)."""
    if "condition" in paper.columns and "value" in paper.columns:
        out = paper.copy()
        if "task" not in out.columns and "dataset" in out.columns:
            out = out.rename(columns={"dataset": "task"})
        return out
    wide = paper.copy()
    wide.index.name = "condition"
    wide.columns.name = None
    return wide.reset_index().melt(id_vars="condition", var_name="task", value_name="value")


def accuracy_bar(
    table: pd.DataFrame, paper: pd.DataFrame | None = None, **kw: Any
) -> go.Figure:
    """Grouped bars: accuracy by condition, ours (mean ± std over seeds) and the paper's alongside.

    Args:
        table: Tidy results with a ``condition`` column and a ``value`` (or ``accuracy``) column;
            optionally ``seed``, ``task`` (or ``dataset``) and ``metric``. Rows are averaged per
            (task, condition); the error bar is the standard deviation over rows (``ddof=1``; 0
            for a single row).
        paper: The paper's numbers: a long table with ``condition``, ``value`` (and ``task``),
            e.g. :func:`icl_tokens.reference.paper_values`, or a conditions × tasks table, e.g.
            :func:`icl_tokens.reference.paper_condition_table`.
        **kw: ``metric`` (rows to keep when ``table`` has a ``metric`` column; default
            ``"acc_gen"`` when present), ``scale`` (multiply our values, e.g. 100 for fractions;
            default 1), ``name`` / ``paper_name`` (legend entries), ``conditions`` (order and
            selection); anything else goes to ``fig.update_layout`` (e.g. ``title``).

    Returns:
        The figure: ``data[0]`` ours (``y`` = means, ``error_y.array`` = stds), ``data[1]`` the
        paper's (if given). With several tasks the x axis is two-level (task, condition).
    """
    metric = kw.pop("metric", None)
    scale = float(kw.pop("scale", 1.0))
    name = kw.pop("name", "ours")
    paper_name = kw.pop("paper_name", "paper")
    conditions = kw.pop("conditions", None)
    df = table.copy()
    val = _pick(df.columns, ("value", "accuracy", "acc"), "value")
    task_col = _pick(df.columns, ("task", "dataset"), "task", required=False)
    _pick(df.columns, ("condition",), "condition")
    if "metric" in df.columns:
        if metric is None:
            metrics = list(dict.fromkeys(df["metric"]))
            metric = "acc_gen" if "acc_gen" in metrics else (metrics[0] if len(metrics) == 1
                                                             else None)
            if metric is None:
                raise ValueError(f"table holds several metrics {metrics}; pass metric=...")
        df = df[df["metric"] == metric]
    if df.empty:
        raise ValueError("no rows to plot (check the metric / conditions).")
    if task_col is None:
        df["_task"] = ""
        task_col = "_task"
    grouped = df.groupby([task_col, "condition"], sort=False)[val]
    stats = grouped.agg(["mean", "std", "count"]).reset_index()
    stats["std"] = stats["std"].fillna(0.0)
    order = list(conditions) if conditions is not None else _condition_order(stats["condition"])
    tasks = list(dict.fromkeys(stats[task_col]))
    keys = [(t, c) for t in tasks for c in order]
    idx = {(r[task_col], r["condition"]): r for _, r in stats.iterrows()}
    mean = [idx[k]["mean"] * scale if k in idx else np.nan for k in keys]
    std = [idx[k]["std"] * scale if k in idx else np.nan for k in keys]
    n = [int(idx[k]["count"]) if k in idx else 0 for k in keys]
    multi = len(tasks) > 1
    x: Any = [[k[0] for k in keys], [k[1] for k in keys]] if multi else [k[1] for k in keys]
    fig = go.Figure()
    fig.add_trace(go.Bar(
        x=x, y=mean, name=name, error_y={"type": "data", "array": std, "visible": True},
        customdata=n, hovertemplate="%{x}: %{y:.1f} ± %{error_y.array:.1f} (n=%{customdata})"
                                    "<extra>" + str(name) + "</extra>",
    ))
    if paper is not None:
        p = _paper_long(paper)
        if "task" in p.columns and task_col != "_task":
            pidx = {(r["task"], r["condition"]): float(r["value"]) for _, r in p.iterrows()}
            pvals = [pidx.get(k, np.nan) for k in keys]
        else:
            if "task" in p.columns and p["task"].nunique() > 1:
                raise ValueError("our table has no task column but the paper table has several "
                                 "tasks; select one task from the paper table.")
            pidx = {r["condition"]: float(r["value"]) for _, r in p.iterrows()}
            pvals = [pidx.get(k[1], np.nan) for k in keys]
        fig.add_trace(go.Bar(x=x, y=pvals, name=paper_name))
    fig.update_layout(barmode="group", yaxis_title="accuracy", xaxis_title="condition")
    if kw:
        fig.update_layout(**kw)
    return fig
