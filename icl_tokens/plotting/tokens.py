"""Token views of one categorized prompt: :func:`token_category_html` and :func:`mask_heatmap`."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ..ablation.conditions import Knockout
from ..categorize import CATEGORIES, TokenizedPrompt
from .base import visible_whitespace

__all__ = ["CATEGORY_COLORS", "mask_heatmap", "token_category_html", "token_text"]

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


def token_text(tp: TokenizedPrompt, i: int) -> str:
    """The prompt characters of token ``i`` (the token string for zero-width tokens such as BOS)."""
    s, e = tp.offsets[i]
    return tp.prompt.text[s:e] if e > s else tp.tokens[i]


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


def _where(tp: TokenizedPrompt, positions: Sequence[int]) -> str:
    """What the given prompt positions are: test-example, demonstration or other tokens."""
    pos = np.asarray(positions, dtype=int)
    test = tp.has("test")[pos]
    demo = np.asarray(tp.demo)[pos] >= 0
    if test.all():
        return "test-example tokens"
    if demo.all():
        return "demonstration tokens"
    if (test | demo).all():
        return "demonstration and test-example tokens"
    return "prompt tokens"


def _query_title(tp: TokenizedPrompt, restricted: np.ndarray, all_rows: bool) -> str:
    """The y-axis title: which tokens the rows are, from the prompt's categories."""
    if not len(restricted):
        return "query (every token; none is restricted)"
    who = _where(tp, restricted)
    return f"query (every token; restricted: {who})" if all_rows else f"query ({who})"


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
        knockout: From :func:`icl_tokens.ablation.conditions.condition_knockout` (or any
            :class:`Knockout`).
        max_tokens: Show only the last ``max_tokens`` key positions (the end of the
            demonstrations and the test example); ``None`` for all.
        all_rows: Show every query row, not only the restricted (test-example) queries.
        title: Figure title (default: the knockout's name).

    Returns:
        A figure whose ``data[0].z`` is ``knockout.dense(len(tp))[rows][:, cols]`` as 0/1 ints,
        with ``data[0].x`` / ``data[0].y`` the key / query positions and token tick labels. The
        y-axis title says what the restricted query rows are (test-example or demonstration
        tokens), read from the prompt's categories.
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
                     title_text=_query_title(tp, knockout.query_positions(), all_rows))
    fig.update_layout(
        title=title if title is not None else f"knockout {knockout.name}: red = blocked",
        height=max(300, 18 * len(rows) + 200),
        width=max(600, 12 * len(cols) + 200),
    )
    return fig
