"""Thin plotly helpers: figures are built from tables (or one categorized prompt), never from runs.

Only plotly is used. circuitsvis (which probes the internet on every render) and kaleido (which
downloads Chrome for static export) are never imported; figures are saved as self-contained HTML
(plotly.js inlined, so they open offline) plus the figure JSON (:func:`save_figure`).

* :func:`imshow`: a heatmap of a tensor/array, ``RdBu`` centred at 0 by default (TL demo style).
* :func:`token_category_html`: a prompt with every token coloured by its categories.
* :func:`mask_heatmap`: a knockout's ``[query, key]`` mask with token tick labels.
* :func:`accuracy_bar`: accuracy by condition (mean ± std over seeds) next to the paper's numbers.
* :func:`save_figure`: ``.html`` + ``.json`` (plain-list JSON, :func:`figure_json`).

Tests check figure data (``fig.data[0].z``, ``.y``), never pixels.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import plotly.io as pio

from .categorize import CATEGORIES, TokenizedPrompt
from .ablation.conditions import PAPER_ORDER, Knockout

__all__ = [
    "CATEGORY_COLORS",
    "accuracy_bar",
    "figure_json",
    "imshow",
    "mask_heatmap",
    "save_figure",
    "token_category_html",
    "token_text",
    "visible_whitespace",
]

#: Background colour of each category (ColorBrewer "Paired"-like, readable with black text).
CATEGORY_COLORS: dict[str, str] = {
    "bos": "#bdbdbd",
    "instruction": "#dadaeb",
    "template": "#a6cee3",
    "stopword": "#fdbf6f",
    "content": "#b2df8a",
    "label": "#fb9a99",
    "test": "#ffffff",
}
_LEGEND_NOTES: dict[str, str] = {
    "bos": "BOS (special token)",
    "instruction": "instruction I",
    "template": "TEMP (T_in / T_out)",
    "stopword": "STOP (stopwords in D_in; newlines)",
    "content": "CONT (rest of D_in)",
    "label": "label D_out",
    "test": "test example (dashed outline; colour = its kind)",
}
_WHITESPACE = {"\n": "⏎", "\t": "⇥", "\r": "␍", " ": "·"}

# plotly-express keyword arguments of px.imshow; everything else goes to update_layout.
_PX_IMSHOW_KW = {
    "zmin", "zmax", "origin", "labels", "color_continuous_scale", "color_continuous_midpoint",
    "range_color", "title", "template", "width", "height", "aspect", "contrast_rescaling",
    "binary_string", "binary_backend", "binary_compression_level", "binary_format", "text_auto",
    "facet_col", "facet_col_wrap", "facet_col_spacing", "facet_row_spacing", "animation_frame",
    "x", "y",
}


def visible_whitespace(text: str) -> str:
    """``text`` with whitespace made visible: ``\\n`` → ⏎, space → ·, tab → ⇥, ``\\r`` → ␍.

    >>> visible_whitespace(" the.\\n\\n")
    '·the.⏎⏎'
    """
    return "".join(_WHITESPACE.get(c, c) for c in text)


def token_text(tp: TokenizedPrompt, i: int) -> str:
    """The prompt characters of token ``i`` (the token string for zero-width tokens such as BOS)."""
    s, e = tp.offsets[i]
    return tp.prompt.text[s:e] if e > s else tp.tokens[i]


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, pd.DataFrame):
        return x.to_numpy()
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().to("cpu")
        if str(getattr(x, "dtype", "")) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def imshow(
    tensor_or_array: Any, x: Sequence[Any] | None = None, y: Sequence[Any] | None = None,
    **kwargs: Any,
) -> go.Figure:
    """A heatmap of a 2-D tensor, array or DataFrame (ARENA ``plotly_utils.imshow`` shape).

    The default colour scale is ``RdBu`` centred at 0, for diverging (signed) values; pass
    ``color_continuous_scale=...`` / ``color_continuous_midpoint=None`` for others. Boolean input
    is shown as 0/1. Keyword arguments that ``px.imshow`` knows go to it; the rest (e.g.
    ``xaxis_title``) go to ``fig.update_layout``.

    Args:
        tensor_or_array: 2-D data (torch tensor, numpy array, DataFrame or nested lists).
        x, y: Column / row labels (a DataFrame's columns / index by default).

    Returns:
        The figure; ``fig.data[0].z`` is the data.
    """
    z = _to_numpy(tensor_or_array)
    if z.dtype == bool:
        z = z.astype(int)
    if isinstance(tensor_or_array, pd.DataFrame):
        x = list(tensor_or_array.columns) if x is None else x
        y = list(tensor_or_array.index) if y is None else y
    px_kw = {k: v for k, v in kwargs.items() if k in _PX_IMSHOW_KW}
    layout_kw = {k: v for k, v in kwargs.items() if k not in _PX_IMSHOW_KW}
    px_kw.setdefault("color_continuous_scale", "RdBu")
    px_kw.setdefault("color_continuous_midpoint", 0.0)
    if px_kw["color_continuous_midpoint"] is None:
        del px_kw["color_continuous_midpoint"]
    fig = px.imshow(z, x=x, y=y, **px_kw)
    if layout_kw:
        fig.update_layout(**layout_kw)
    return fig


# -------------------------------------------------------------------------------- token HTML


def _kinds(tp: TokenizedPrompt, i: int) -> list[str]:
    """Categories of token ``i`` that get a colour (``test`` is drawn as an outline instead)."""
    return [c for c in tp.categories(i) if c != "test"]


def _background(kinds: Sequence[str]) -> str:
    if not kinds:
        return "#ffffff"
    if len(kinds) == 1:
        return CATEGORY_COLORS[kinds[0]]
    step = 100 / len(kinds)
    stops = ", ".join(
        f"{CATEGORY_COLORS[k]} {i * step:.0f}% {(i + 1) * step:.0f}%" for i, k in enumerate(kinds)
    )
    return f"linear-gradient(180deg, {stops})"


def token_category_html(tp: TokenizedPrompt, *, title: str | None = None) -> str:
    """The prompt as HTML, each token a span coloured by its categories.

    A token with several categories (e.g. a newline: template + stopword) is striped with all of
    their colours; test-example tokens have a dashed outline. Whitespace is visible (``\\n`` → ⏎
    followed by a line break, space → ·). Hovering a token shows its position, token string and
    categories. Display it in a notebook with ``IPython.display.HTML(...)``.

    Args:
        tp: A categorized prompt (:func:`icl_tokens.categorize.categorize`).
        title: Optional heading.

    Returns:
        A self-contained HTML fragment (a scoped ``<style>`` block and inline backgrounds; no
        scripts).
    """
    legend = "".join(
        f'<span class="icl-leg{" icl-test" if c == "test" else ""}" '
        f'style="background:{CATEGORY_COLORS[c]}">{html.escape(_LEGEND_NOTES[c])}</span>'
        for c in CATEGORIES
    )
    spans = []
    for i in range(len(tp)):
        text = token_text(tp, i)
        cats = tp.categories(i)
        tip = f"#{i} token={tp.tokens[i]!r} text={text!r} → {', '.join(cats)}"
        spans.append(
            f'<span class="icl-tok{" icl-test" if "test" in cats else ""}" data-i="{i}" '
            f'data-cats="{" ".join(cats)}" title="{html.escape(tip, quote=True)}" '
            f'style="background:{_background(_kinds(tp, i))}">'
            f"{html.escape(visible_whitespace(text))}</span>"
        )
        if "\n" in text:
            spans.append("<br>" * text.count("\n"))
    head = f'<h4 style="margin:4px 0">{html.escape(title)}</h4>' if title else ""
    return (
        f"<div class=\"icl-tokens\">{_TOKEN_CSS}{head}"
        f'<div style="margin-bottom:6px">{legend}</div><div>{"".join(spans)}</div></div>'
    )


_TOKEN_CSS = (
    "<style>"
    ".icl-tokens{font-family:monospace;font-size:12px;line-height:2.0}"
    ".icl-tokens .icl-tok{border:1px solid #999;border-radius:2px;padding:0 1px;margin:1px;"
    "white-space:pre;color:#000}"
    ".icl-tokens .icl-leg{border:1px solid #555;border-radius:3px;padding:1px 4px;"
    "margin-right:6px;color:#000}"
    ".icl-tokens .icl-test{border:1px dashed #222}"
    "</style>"
)


# -------------------------------------------------------------------------------- mask heatmap


def _tick_labels(tp: TokenizedPrompt, positions: Sequence[int], width: int = 12) -> list[str]:
    out = []
    for i in positions:
        t = visible_whitespace(token_text(tp, int(i)))
        out.append(f"{int(i)} {t[:width]}")
    return out


def mask_heatmap(
    tp: TokenizedPrompt,
    knockout: Knockout,
    *,
    max_tokens: int | None = None,
    all_rows: bool = False,
    title: str | None = None,
) -> go.Figure:
    """The ``[query, key]`` knockout mask of one prompt as a heatmap (1 = blocked, 0 = allowed).

    Args:
        tp: The categorized prompt the knockout was built for.
        knockout: From :func:`icl_tokens.ablation.conditions.condition_knockout` (or any :class:`Knockout`).
        max_tokens: Show only the last ``max_tokens`` key positions (the end of the
            demonstrations and the test example); ``None`` for all.
        all_rows: Show every query row, not only the restricted (test-example) queries.
        title: Figure title (default: the knockout's name).

    Returns:
        A figure whose ``data[0].z`` is ``knockout.dense(len(tp))[rows][:, cols]`` as 0/1 ints,
        with ``data[0].x`` / ``data[0].y`` the key / query positions and token tick labels.
        Causally invisible (future) keys are allowed by the mask, so they show as 0.
    """
    if len(tp) != knockout.n:
        raise ValueError(f"knockout covers {knockout.n} positions but the prompt has {len(tp)}.")
    dense = knockout.dense(len(tp)).numpy().astype(int)
    rows = np.arange(len(tp)) if all_rows else knockout.query_positions()
    if len(rows) == 0:
        rows = np.arange(len(tp))
    cols = np.arange(len(tp))
    if max_tokens is not None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}.")
        cols = cols[-max_tokens:]
    z = dense[np.ix_(rows, cols)]
    xl, yl = _tick_labels(tp, cols), _tick_labels(tp, rows)
    hover = np.array([[f"query {q}<br>key {k}" for k in xl] for q in yl], dtype=object)
    fig = go.Figure(
        go.Heatmap(
            z=z, x=cols.tolist(), y=rows.tolist(), zmin=0, zmax=1,
            colorscale=[[0.0, "#f7f7f7"], [0.5, "#f7f7f7"], [0.5, "#b2182b"], [1.0, "#b2182b"]],
            showscale=False, xgap=1, ygap=1, customdata=hover,
            hovertemplate="%{customdata}<br>blocked=%{z}<extra></extra>",
        )
    )
    fig.update_xaxes(tickmode="array", tickvals=cols.tolist(), ticktext=xl, tickangle=-90,
                     title_text="key (token attended to)")
    fig.update_yaxes(tickmode="array", tickvals=rows.tolist(), ticktext=yl, autorange="reversed",
                     title_text="query (test token)")
    fig.update_layout(
        title=title if title is not None else f"knockout {knockout.name}: red = blocked",
        height=max(300, 18 * len(rows) + 200),
        width=max(600, 12 * len(cols) + 200),
    )
    return fig


# -------------------------------------------------------------------------------- accuracy bars


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


# -------------------------------------------------------------------------------- saving


def _plain_arrays(obj: Any) -> Any:
    """Replace plotly's base64 typed-array specs (``{"dtype", "bdata", "shape"}``) by lists."""
    if isinstance(obj, dict):
        if "bdata" in obj and "dtype" in obj:
            arr = np.frombuffer(base64.b64decode(obj["bdata"]), dtype=np.dtype(obj["dtype"]))
            if "shape" in obj:
                arr = arr.reshape([int(n) for n in str(obj["shape"]).split(",")])
            return arr.tolist()
        return {k: _plain_arrays(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain_arrays(v) for v in obj]
    return obj


def figure_json(fig: go.Figure) -> str:
    """The figure as plotly JSON with plain lists (plotly ≥ 6 would base64-encode numpy arrays).

    ``plotly.io.from_json`` reads it back; ``NaN`` becomes ``null``.
    """
    return pio.to_json(_plain_arrays(json.loads(fig.to_json())), validate=False)


def save_figure(fig: go.Figure, path_without_suffix: str | Path) -> list[Path]:
    """Write ``<path>.html`` (plotly.js inlined: opens offline) and ``<path>.json``.

    The JSON holds plain lists (:func:`figure_json`), so other tools can read the data.

    Args:
        fig: The figure.
        path_without_suffix: Target path without suffix; parent folders are created.

    Returns:
        The two written paths, HTML first.
    """
    base = Path(path_without_suffix)
    base.parent.mkdir(parents=True, exist_ok=True)
    html_path = base.with_name(base.name + ".html")
    json_path = base.with_name(base.name + ".json")
    fig.write_html(str(html_path), include_plotlyjs=True, full_html=True)
    json_path.write_text(figure_json(fig), encoding="utf-8")
    return [html_path, json_path]
