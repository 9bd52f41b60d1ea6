"""Plot basics: :func:`imshow`, visible whitespace, and saving figures as offline HTML + JSON."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import plotly.io as pio

__all__ = ["METRIC_WORDS", "axis_label", "figure_json", "imshow", "save_figure",
           "visible_whitespace"]

#: Axis titles in words for the tidy tables' metric columns.
METRIC_WORDS = {
    "correct": "acc_gen: accuracy of the generated answer (%)",
    "label_correct": "acc_label: accuracy of the best-ranked label word (%)",
    "calibrated_correct": "calibrated acc_label: label accuracy, content-free bias removed (%)",
    "margin": "gold label's log-probability margin (nats)",
    "mass": "share of the query's attention",
    "mass_per_token": "share of attention per key token",
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


def axis_label(label: str) -> str:
    """An axis title in words: a metric column (``label_correct``, or ``label_correct (%)``) is
    replaced by its :data:`METRIC_WORDS` entry; any other text is kept.

    >>> axis_label("label_correct (%)")
    'acc_label: accuracy of the best-ranked label word (%)'
    >>> axis_label("accuracy (%)")
    'accuracy (%)'
    """
    column = label.removesuffix(" (%)").strip()
    return METRIC_WORDS.get(column, label)


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
