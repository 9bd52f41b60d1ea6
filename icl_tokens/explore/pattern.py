"""The attention pattern of one head as a token x token heatmap (plain SVG, offline).

Rows are the test example's tokens (the queries the explorer's knockouts restrict), columns
every prompt token (the keys), as in CircuitsVis' attention-pattern view but drawn without any
script or download: one ``<rect>`` per weight, darker for more attention, with the exact value on
hover. The key tokens are labelled above their column, coloured by category (the colour of
:data:`~icl_tokens.explore.static.CATEGORY_COLORS`), and keys hidden from the test example are
struck through with a red mark.

    up = state.update(Selection(kinds=frozenset({"content"})))
    html = pattern_view(state.tokens, up.pattern, state.queries, layer=3, head=0,
                        hidden=up.hidden)
"""

from __future__ import annotations

import html
from typing import Sequence

import numpy as np
from jaxtyping import Float

from ..plotting.base import visible_whitespace
from .state import TokenInfo
from .static import CATEGORY_COLORS, color_kinds

__all__ = ["pattern_view", "MEAN_HEADS"]

#: The ``head`` value that averages the heads of a layer.
MEAN_HEADS = -1

_CELL_W, _CELL_H, _ROW_LABEL, _COL_LABEL = 11, 14, 120, 90


def _label(text: str, width: int) -> str:
    t = visible_whitespace(text)
    return t if len(t) <= width else t[: width - 1] + "…"


def _head_matrix(pattern: np.ndarray, layer: int, head: int) -> np.ndarray:
    """``pattern[layer, head]`` (``[query, key]``), or the mean over heads for MEAN_HEADS."""
    n_layers, n_heads = pattern.shape[:2]
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer {layer} is out of range; the model has layers 0..{n_layers - 1}.")
    if head == MEAN_HEADS:
        return pattern[layer].mean(axis=0)
    if not 0 <= head < n_heads:
        raise ValueError(f"head {head} is out of range; pass 0..{n_heads - 1} or MEAN_HEADS "
                         f"({MEAN_HEADS}) for the mean over heads.")
    return pattern[layer, head]


def _scale(m: np.ndarray, tokens: Sequence[TokenInfo]) -> float:
    """The weight drawn darkest: the largest weight on a non-BOS key (BOS, an attention sink,
    would otherwise wash out every other cell; its own cells are capped)."""
    keep = [i for i, t in enumerate(tokens) if "bos" not in t.categories]
    top = float(m[:, keep].max()) if keep and m.size else 0.0
    return top if top > 0 else max(float(m.max()) if m.size else 0.0, 1e-12)


def _key_labels(tokens: Sequence[TokenInfo], hidden: np.ndarray, y0: int) -> list[str]:
    out = []
    for j, t in enumerate(tokens):
        x = _ROW_LABEL + j * _CELL_W
        color = CATEGORY_COLORS.get(color_kinds(t.categories)[0], "#ffffff")
        deco = ' text-decoration="line-through" fill="#b2182b"' if hidden[j] else ""
        tip = html.escape(f"key #{j} {t.text!r} ({', '.join(t.categories) or 'no category'})"
                          + (" hidden from the test example" if hidden[j] else ""))
        out.append(f'<rect x="{x}" y="{y0 - 6}" width="{_CELL_W - 1}" height="5" '
                   f'fill="{color}" stroke="#999" stroke-width=".5"><title>{tip}</title></rect>')
        out.append(f'<text x="{x + _CELL_W - 3}" y="{y0 - 9}" transform="rotate(-90 '
                   f'{x + _CELL_W - 3} {y0 - 9})"{deco}>{html.escape(_label(t.text, 12))}</text>')
        if hidden[j]:
            out.append(f'<line class="hid" x1="{x}" y1="{y0 - 1}" x2="{x + _CELL_W - 1}" '
                       f'y2="{y0 - 1}" stroke="#b2182b" stroke-width="2"/>')
    return out


def pattern_view(tokens: Sequence[TokenInfo], pattern: Float[np.ndarray, "layer head query key"],
                 queries: Sequence[int], *, layer: int, head: int = MEAN_HEADS,
                 hidden: Sequence[bool] | np.ndarray | None = None) -> str:
    """An HTML fragment: the heatmap of ``pattern[layer, head]`` (``head=MEAN_HEADS``: the
    mean of the layer's heads), rows the query positions ``queries``, columns ``tokens``."""
    pattern = np.asarray(pattern, dtype=float)
    if pattern.ndim != 4 or pattern.shape[2:] != (len(queries), len(tokens)):
        raise ValueError(f"pattern has shape {pattern.shape}; expected [layer, head, "
                         f"{len(queries)} queries, {len(tokens)} keys] (Update.pattern).")
    hid = np.zeros(len(tokens), bool) if hidden is None else np.asarray(hidden, dtype=bool)
    m = _head_matrix(pattern, layer, head)
    top = _scale(m, tokens)
    y0 = _COL_LABEL
    parts = _key_labels(tokens, hid, y0)
    for r, q in enumerate(queries):
        y = y0 + r * _CELL_H
        parts.append(f'<text x="{_ROW_LABEL - 4}" y="{y + _CELL_H - 3}" text-anchor="end">'
                     f"{html.escape(_label(tokens[q].text, 14))}</text>")
        parts.append(f'<g transform="translate({_ROW_LABEL} {y})">')
        parts += [f'<rect class="c" x="{j * _CELL_W}" fill-opacity="{min(1.0, v / top):.2f}">'
                  f"<title>#{q}→#{j} {v:.4f}</title></rect>" for j, v in enumerate(m[r].tolist())]
        parts.append("</g>")
    width = _ROW_LABEL + len(tokens) * _CELL_W + 4
    height = y0 + len(queries) * _CELL_H + 4
    who = "mean of the heads" if head == MEAN_HEADS else f"head {head}"
    caption = (f"attention pattern, layer {layer}, {who}: rows are the test example's tokens "
               f"(queries), columns every prompt token (keys); darkest = {top:.3f} (the largest "
               "weight on a non-BOS key); hover a cell for its weight (#query→#key), a key's "
               "coloured mark for its category; red: hidden keys")
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" class="icl-pattern" width="{width}" '
           f'height="{height}" data-layer="{layer}" data-head="{head}" font-family="monospace" '
           f'font-size="10"><style>.icl-pattern rect.c{{width:{_CELL_W - 1}px;'
           f"height:{_CELL_H - 1}px;fill:#08519c}}</style>"
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>'
           + "".join(parts) + "</svg>")
    return (f'<div class="icl-pattern-view"><div style="font-size:12px">{html.escape(caption)}'
            f'</div><div style="overflow-x:auto;max-width:100%">{svg}</div></div>')
