"""Figures of the aggregation experiments' tables: the with/without-block comparison and the
layer-window curves (:mod:`icl_tokens.aggregation`)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from .base import axis_label

__all__ = ["compare_figure", "window_figure"]


def compare_figure(table: pd.DataFrame, *, title: str = "Accuracy without and with the "
                   "aggregation block", metric_label: str = "accuracy (%)") -> go.Figure:
    """Grouped bars per condition: without the block (``none``) and with it, with the paired SE
    of the difference as error bars on the block's bar.

    Args:
        table: :func:`~icl_tokens.aggregation.experiment.compare_table` output.
        metric_label: The y-axis title; a metric column (``label_correct``) is shown in words
            (:func:`~icl_tokens.plotting.base.axis_label`).
    """
    need = {"none", "Δ", "paired_se"}
    if not need <= set(table.columns):
        raise ValueError(f"compare_figure needs a compare_table (columns {sorted(need)}); got "
                         f"{list(table.columns)}.")
    block = [c for c in table.columns if c not in ("none", "Δ", "paired_se", "n")]
    if len(block) != 1:
        raise ValueError(f"expected one block column beside 'none'; got {block}.")
    x = [str(c) for c in table.index]
    fig = go.Figure()
    fig.add_bar(name="without the block", x=x, y=table["none"].tolist())
    fig.add_bar(name=f"with {block[0]}", x=x, y=table[block[0]].tolist(),
                error_y=dict(type="data", array=table["paired_se"].tolist()))
    fig.update_layout(title=title, barmode="group", yaxis_title=axis_label(metric_label),
                      xaxis_title="condition", height=380)
    return fig


def window_figure(curve: pd.DataFrame, *, title: str = "Knockout inside a window of layers",
                  metric_label: str = "accuracy (%)") -> go.Figure:
    """One line per condition over the window start; the reference rows (``all layers``,
    ``no block``) as dashed horizontal lines named in the legend (not as annotations, which
    overlap when references are close).

    Args:
        curve: :func:`~icl_tokens.aggregation.windows.window_curve` output.
        metric_label: The y-axis title; a metric column (``label_correct``) is shown in words.
    """
    refs = [r for r in ("no block", "all layers") if r in curve.index]
    spans = [w for w in curve.index if w not in refs]
    if not spans:
        raise ValueError("the curve has no window rows.")
    starts = [int(w[1:].split("-")[0]) for w in spans]
    ends = [min(starts) - 0.5, max(starts) + 0.5]
    colors = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
    fig = go.Figure()
    for j, cond in enumerate(curve.columns):
        color = colors[j % len(colors)]
        fig.add_scatter(x=starts, y=curve.loc[spans, cond].tolist(), mode="lines+markers",
                        name=f"{cond}: window", customdata=spans, line={"color": color},
                        legendgroup=str(cond),
                        hovertemplate="%{customdata}: %{y:.1f}<extra>" + str(cond) + "</extra>")
        for r, dash in zip(refs, ("dot", "dash")):
            y = float(curve.loc[r, cond])
            fig.add_scatter(x=ends, y=[y, y], mode="lines", name=f"{cond}: {r}",
                            legendgroup=str(cond), opacity=0.6,
                            line={"color": color, "dash": dash, "width": 1.5},
                            hovertemplate=f"{cond}, {r}: %{{y:.1f}}<extra></extra>")
    fig.update_layout(title=title, xaxis_title="first layer of the window",
                      yaxis_title=axis_label(metric_label), height=400)
    return fig
