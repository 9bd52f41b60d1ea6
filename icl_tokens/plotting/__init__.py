"""Thin plotly helpers: figures are built from tables (or one categorized prompt), never from runs.

Only plotly is used. circuitsvis (which probes the internet on every render) and kaleido (which
downloads Chrome for static export) are never imported; figures are saved as self-contained HTML
(plotly.js inlined, so they open offline) plus the figure JSON (:func:`save_figure`).

* :func:`imshow`: a heatmap of a tensor/array, ``RdBu`` centred at 0 by default (TL demo style).
* :func:`token_category_html`: a prompt with every token coloured by its categories.
* :func:`mask_heatmap`: a knockout's ``[query, key]`` mask with token tick labels.
* :func:`accuracy_bar`: accuracy by condition (mean ± std over seeds) next to the paper's numbers.
* :func:`save_figure`: ``.html`` + ``.json`` (plain-list JSON, :func:`figure_json`).
* :func:`use_embedded_renderer`: notebook figures that survive ``nbconvert --to html``.

Tests check figure data (``fig.data[0].z``, ``.y``), never pixels.

Modules: :mod:`.base` (imshow, whitespace, saving), :mod:`.tokens` (token HTML, mask heatmap),
:mod:`.accuracy` (accuracy bars), :mod:`.aggregation` (probe curves, attention-mass heatmaps),
:mod:`.windows` (the aggregation block comparison, layer-window curves), :mod:`.render` (the
notebook renderer), :mod:`.svg` (deterministic static bar charts for pages without plotly.js).
"""

from __future__ import annotations

from .accuracy import _condition_order, _paper_long, _pick, accuracy_bar
from .aggregation import mass_heatmap, mass_table, probe_curves
from .base import (
    _PX_IMSHOW_KW,
    _WHITESPACE,
    _plain_arrays,
    _to_numpy,
    axis_label,
    figure_json,
    imshow,
    save_figure,
    visible_whitespace,
)
from .render import EMBEDDED, use_embedded_renderer
from .tokens import (
    _LEGEND_NOTES,
    _TOKEN_CSS,
    CATEGORY_COLORS,
    _background,
    _kinds,
    _tick_labels,
    mask_heatmap,
    token_category_html,
    token_text,
)
from .windows import compare_figure, window_figure

__all__ = [
    "CATEGORY_COLORS",
    "EMBEDDED",
    "accuracy_bar",
    "axis_label",
    "compare_figure",
    "figure_json",
    "imshow",
    "mask_heatmap",
    "mass_heatmap",
    "mass_table",
    "probe_curves",
    "save_figure",
    "token_category_html",
    "token_text",
    "use_embedded_renderer",
    "visible_whitespace",
    "window_figure",
]

# Private names stay importable from here for old callers.
_PRIVATE = (_LEGEND_NOTES, _PX_IMSHOW_KW, _TOKEN_CSS, _WHITESPACE, _background, _condition_order,
            _kinds, _paper_long, _pick, _plain_arrays, _tick_labels, _to_numpy)
