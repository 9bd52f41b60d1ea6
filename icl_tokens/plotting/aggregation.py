"""Aggregation figures: probe accuracy per layer with its baseline and permutation null, and
layer × key-category attention-mass heatmaps. Built from the tidy tables of
:mod:`icl_tokens.aggregation.probes` / :mod:`~icl_tokens.aggregation.attention_mass` (or their
CSVs); save with :func:`~icl_tokens.plotting.base.save_figure` (offline HTML + JSON)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["probe_curves", "mass_heatmap", "mass_table"]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
_DASH = {0: "solid", 1: "dash", 2: "dot", 3: "dashdot"}


def _need(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what} needs columns {missing}; the table has {list(df.columns)}.")


def probe_curves(df: pd.DataFrame, *, positions: Sequence[str] | None = None,
                 title: str = "Probe accuracy by layer", cols: int = 3,
                 alpha: float = 0.05) -> go.Figure:
    """One panel per probe position: accuracy by layer (a line per knockout, mean over seeds)
    against its majority baseline and permutation null.

    Args:
        df: Rows with ``position``, ``layer``, ``knockout``, ``accuracy``, ``majority``
            (:func:`~icl_tokens.aggregation.probe_run.run_probes` or the ``probe`` CSV); with the
            null columns ``null_mean``, ``null_q95``, ``max_null_q95``, ``p_max`` the panel
            also shows the null band and the best-layer threshold; with a finite ``control``
            (a learnable control task) its curve.
        positions: Panels in this order (default: the table's order).
        title: Figure title.
        cols: Panels per row.
        alpha: Layers with ``p_max <= alpha`` (corrected for choosing the best layer) get
            filled markers; the others open ones.

    The legend names each line once, position-free (legend-only traces after the data traces).
    Trace names are ``{position} {knockout}`` (accuracy), ``{position} {knockout} majority``,
    ``{position} {knockout} null band`` (the null mean to its 95th percentile, per layer),
    ``{position} {knockout} null 95%`` and ``{position} {knockout} best-layer threshold``
    (the 95th percentile of each shuffle's best layer), and ``{position} {knockout} control``
    where the control is learnable; ``y`` is the mean over seeds per layer.
    """
    _need(df, ("position", "layer", "knockout", "accuracy", "majority"), "probe_curves")
    if df.empty:
        raise ValueError("probe_curves got an empty table.")
    order = list(dict.fromkeys(df["position"])) if positions is None else list(positions)
    unknown = [p for p in order if p not in set(df["position"])]
    if unknown:
        raise ValueError(f"positions {unknown} are not in the table; it has "
                         f"{sorted(set(df['position']))}.")
    kos = list(dict.fromkeys(df["knockout"]))
    values = [c for c in ("accuracy", "majority", "control", "null_mean", "null_q95",
                          "max_null_q95", "p_max") if c in df.columns]
    rows = int(np.ceil(len(order) / cols))
    fig = make_subplots(rows=rows, cols=min(cols, len(order)), subplot_titles=order,
                        shared_yaxes=True, horizontal_spacing=0.04, vertical_spacing=0.12)
    legend: dict[str, go.Scatter] = {}
    for i, pos in enumerate(order):
        r, c = i // cols + 1, i % cols + 1
        for j, kn in enumerate(kos):
            g = df[(df.position == pos) & (df.knockout == kn)]
            if g.empty:
                continue
            g = g.groupby("layer", sort=True)[values].mean()
            for trace in _probe_traces(g, f"{pos} {kn}", kn, _COLORS[j % len(_COLORS)],
                                       _DASH[j % 4], alpha=alpha):
                fig.add_trace(trace, row=r, col=c)
                legend.setdefault(trace.legendgroup, _legend_entry(trace, kn))
    for entry in legend.values():
        fig.add_trace(entry, row=1, col=1)
    fig.update_yaxes(range=[0, 1.02])
    fig.update_yaxes(title_text="held-out accuracy", col=1)
    fig.update_xaxes(title_text="layer (residual stream at its output)", row=rows)
    fig.update_layout(title=title, height=260 * rows + 80, template="plotly_white",
                      legend={"orientation": "h", "y": -0.12,
                              "title": {"text": "every panel (one per position):"}})
    return fig


def _legend_entry(trace: go.Scatter, kn: str) -> go.Scatter:
    """A legend-only copy of ``trace`` named without its panel's position: the same style
    stands for the same line in every panel."""
    group = trace.legendgroup
    name = f"{kn} (probe accuracy)" if group == kn else {
        "majority": "majority baseline", "null band": "permutation null (mean to 95th pct)",
        "null 95%": "permutation null 95th pct"}.get(group, group)
    marker = {"color": trace.line.color, "size": 7} if "markers" in (trace.mode or "") else None
    return go.Scatter(x=[None], y=[None], mode=trace.mode, line=trace.line, marker=marker,
                      fill=trace.fill, fillcolor=trace.fillcolor, name=name, legendgroup=group,
                      showlegend=True, hoverinfo="skip")


def _has(g: pd.DataFrame, col: str) -> bool:
    return col in g.columns and bool(g[col].notna().any())


def _probe_traces(g: pd.DataFrame, name: str, kn: str, color: str, dash: str, *,
                  alpha: float) -> list[go.Scatter]:
    """One panel's traces for one knockout: null band and thresholds, majority, control,
    accuracy (``g``: per-layer means); none is in the legend (:func:`_legend_entry` is)."""
    x = g.index.to_list()
    out = []
    if _has(g, "null_q95"):
        lo, hi = g["null_mean"].to_list(), g["null_q95"].to_list()
        out.append(go.Scatter(x=x + x[::-1], y=hi + lo[::-1], fill="toself", mode="lines",
                              fillcolor="rgba(128,128,128,0.2)", line={"width": 0},
                              hoverinfo="skip", name=f"{name} null band",
                              legendgroup="null band", showlegend=False))
        out.append(go.Scatter(x=x, y=hi, mode="lines",
                              line={"color": "grey", "dash": "dash", "width": 1},
                              name=f"{name} null 95%", legendgroup="null 95%",
                              showlegend=False))
        out.append(go.Scatter(x=x, y=g["max_null_q95"].to_list(), mode="lines",
                              line={"color": color, "dash": "longdash", "width": 1},
                              name=f"{name} best-layer threshold",
                              legendgroup=f"{kn} best-layer threshold", showlegend=False))
    out.append(go.Scatter(x=x, y=g["majority"].to_list(), mode="lines",
                          line={"color": "grey", "dash": "dot", "width": 1},
                          name=f"{name} majority", legendgroup="majority",
                          showlegend=False))
    if _has(g, "control"):
        out.append(go.Scatter(x=x, y=g["control"].to_list(), mode="lines",
                              line={"color": color, "dash": "dot", "width": 1},
                              name=f"{name} control", legendgroup=f"{kn} control",
                              showlegend=False))
    if _has(g, "p_max"):
        p = g["p_max"].to_numpy()
        marker = {"symbol": ["circle" if v <= alpha else "circle-open" for v in p], "size": 7}
        text = [f"p_max = {v:.3f}" for v in p]
    else:
        marker, text = {}, None
    out.append(go.Scatter(x=x, y=g["accuracy"].to_list(), mode="lines+markers",
                          line={"color": color, "dash": dash}, marker=marker, text=text,
                          name=name, legendgroup=kn, showlegend=False))
    return out


def mass_table(df: pd.DataFrame, *, scope: str = "last", knockout: str | None = None,
               value: str = "mass", head: int | None = None) -> pd.DataFrame:
    """Layer × category table of ``value`` (mean over examples, and over heads unless ``head``).

    Args:
        df: :func:`~icl_tokens.aggregation.attention_mass.attention_mass` rows or the
            ``attention`` CSV.
        scope: ``last`` or ``test`` queries.
        knockout: Which knockout's rows (default: the first in the table).
        value: ``mass`` or ``mass_per_token``.
        head: One head only (default: the mean over heads).
    """
    _need(df, ("layer", "head", "category", value), "mass_table")
    g = df
    if "scope" in g.columns:
        if scope not in set(g["scope"]):
            raise ValueError(f"scope {scope!r} is not in the table; it has "
                             f"{sorted(set(g['scope']))}.")
        g = g[g.scope == scope]
    if "knockout" in g.columns:
        knockout = knockout if knockout is not None else g["knockout"].iloc[0]
        if knockout not in set(g["knockout"]):
            raise ValueError(f"knockout {knockout!r} is not in the table; it has "
                             f"{sorted(set(g['knockout']))}.")
        g = g[g.knockout == knockout]
    if head is not None:
        if head not in set(g["head"]):
            raise ValueError(f"head {head} is not in the table.")
        g = g[g["head"] == head]
    cats = list(dict.fromkeys(g["category"]))
    return g.pivot_table(index="layer", columns="category", values=value,
                         aggfunc="mean")[cats]


def mass_heatmap(df: pd.DataFrame, *, scope: str = "last", knockout: str | None = None,
                 value: str = "mass", head: int | None = None, title: str | None = None,
                 bos: str = "separate") -> go.Figure:
    """Heatmap of :func:`mass_table`: rows are layers, columns key categories; ``z`` is the
    share of attention (``value="mass"``) or the share per key (``"mass_per_token"``).

    BOS, an attention sink that takes most of the mass, would wash out every other column, so by
    default (``bos="separate"``) it gets its own narrow panel with its own colour scale;
    ``"exclude"`` leaves it out, ``"include"`` keeps it in the shared scale. The title says
    which. ``data[0].z`` is always the table without BOS (unless ``"include"``).
    """
    if bos not in ("separate", "exclude", "include"):
        raise ValueError(f"bos must be 'separate', 'exclude' or 'include', got {bos!r}.")
    t = mass_table(df, scope=scope, knockout=knockout, value=value, head=head)
    what = "share of attention" if value == "mass" else "share per key token"
    who = "the last token" if scope == "last" else "the test example's tokens"
    heads = "mean over heads" if head is None else f"head {head}"
    has_bos = "bos" in t.columns and bos != "include"
    main = t.drop(columns="bos") if has_bos else t
    note = {"separate": "BOS (an attention sink) on its own scale, right",
            "exclude": "BOS (an attention sink) left out", "include": ""}[bos] \
        if "bos" in t.columns else ""
    label = title or f"Attention of {who} by key category ({what}, {heads})"
    separate = has_bos and bos == "separate"
    fig = make_subplots(rows=1, cols=2 if separate else 1, shared_yaxes=True)
    fig.add_trace(_mass_trace(main, "coloraxis"), row=1, col=1)
    fig.update_layout(coloraxis={"colorscale": "Viridis", "colorbar": {
        "title": {"text": what.replace(" ", "<br>", 1)}, "x": 0.86 if separate else 1.02}})
    if separate:
        fig.add_trace(_mass_trace(t[["bos"]], "coloraxis2"), row=1, col=2)
        fig.update_layout(xaxis={"domain": [0.0, 0.68]}, xaxis2={"domain": [0.73, 0.81]},
                          coloraxis2={"colorscale": "Greys", "colorbar": {
                              "title": {"text": "BOS"}, "x": 1.0}})
    fig.update_xaxes(title_text="key category (what the query attends to)", row=1, col=1)
    fig.update_yaxes(title_text="layer", autorange="reversed", row=1, col=1)
    fig.update_layout(title=label + (f"<br><sup>{note}</sup>" if note else ""),
                      height=max(320, 22 * len(t) + 160), template="plotly_white")
    return fig


def _mass_trace(t: pd.DataFrame, coloraxis: str) -> go.Heatmap:
    z = t.to_numpy()
    return go.Heatmap(z=z, x=[str(c) for c in t.columns], y=[int(i) for i in t.index],
                      coloraxis=coloraxis, text=np.round(z, 2), texttemplate="%{text:.2f}",
                      hovertemplate="layer %{y}, %{x}: %{z:.3f}<extra></extra>")
