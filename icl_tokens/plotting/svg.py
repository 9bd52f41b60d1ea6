"""A small deterministic SVG writer for grouped horizontal bars with intervals: :func:`bars_svg`.

Static images for pages that cannot run plotly.js (``docs/results.md`` on GitHub, ``report.html``
without 4 MB of script): the same numbers always give the same bytes (fixed layout, coordinates
rounded to 0.1 px, no ids or dates), so committed images regenerate byte for byte. Every bar has
a ``<title>`` (its value and interval), which a browser shows on hover.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["BarPanel", "bars_svg"]

OURS_COLOR = "#1f77b4"
PAPER_COLOR = "#b8b8b8"
_PANEL_W, _GAP, _BAR, _TOP, _CHAR = 140.0, 30.0, 8.0, 78.0, 6.2


@dataclass(frozen=True)
class BarPanel:
    """One panel (e.g. a task): a value per row, optional interval, optional reference value."""

    title: str
    values: Sequence[float]
    lo: Sequence[float] | None = None
    hi: Sequence[float] | None = None
    reference: Sequence[float] | None = None


def _n(x: float) -> str:
    return f"{x:.1f}"


def _finite(v: float | None) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def _text(x: float, y: float, s: str, anchor: str = "start", **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}"{extra}>{escape(s)}</text>'


def _legend(series: str, reference: str | None, whisker: str | None, y: float) -> list[str]:
    out = [f'<rect x="10" y="{_n(y - 9)}" width="12" height="9" fill="{OURS_COLOR}"/>',
           _text(26, y, series + (f" ({whisker})" if whisker else ""))]
    if reference:
        out += [f'<rect x="10" y="{_n(y + 6)}" width="12" height="9" fill="{PAPER_COLOR}"/>',
                _text(26, y + 15, reference)]
    return out


def _bar(x0: float, y: float, width: float, color: str, tip: str) -> str:
    return (f'<rect x="{_n(x0)}" y="{_n(y)}" width="{_n(max(width, 0.0))}" height="{_n(_BAR)}" '
            f'fill="{color}"><title>{escape(tip)}</title></rect>')


def _panel(p: BarPanel, rows: Sequence[str], x0: float, row_h: float, vmax: float,
           unit: str) -> list[str]:
    """One panel's frame, ticks, bars and whiskers."""
    scale = _PANEL_W / vmax
    bottom = _TOP + row_h * len(rows)
    out = [_text(x0 + _PANEL_W / 2, _TOP - 8, p.title, "middle", font_weight="bold")]
    for t in (0.0, vmax / 2, vmax):
        x = x0 + t * scale
        out.append(f'<line x1="{_n(x)}" y1="{_n(_TOP)}" x2="{_n(x)}" y2="{_n(bottom)}" '
                   'stroke="#dddddd"/>')
        out.append(_text(x, bottom + 12, f"{t:g}", "middle", fill="#555555"))
    for i, label in enumerate(rows):
        y = _TOP + i * row_h + 3
        v = p.values[i]
        lo = p.lo[i] if p.lo is not None else None
        hi = p.hi[i] if p.hi is not None else None
        if _finite(v):
            ci = f" [{lo:.1f}, {hi:.1f}]" if _finite(lo) and _finite(hi) else ""
            out.append(_bar(x0, y, v * scale, OURS_COLOR, f"{p.title}, {label}: {v:.1f}{unit}{ci}"))
            if ci:
                yc = y + _BAR / 2
                out.append(f'<path d="M{_n(x0 + lo * scale)} {_n(yc)}H{_n(x0 + hi * scale)}'
                           f'M{_n(x0 + lo * scale)} {_n(yc - 3)}v6M{_n(x0 + hi * scale)} '
                           f'{_n(yc - 3)}v6" stroke="#222222" stroke-width="1.2" fill="none"/>')
        ref = p.reference[i] if p.reference is not None else None
        if _finite(ref):
            out.append(_bar(x0, y + _BAR + 1, ref * scale, PAPER_COLOR,
                            f"{p.title}, {label}: paper {ref:.1f}{unit}"))
    return out


def bars_svg(title: str, rows: Sequence[str], panels: Sequence[BarPanel], *, series: str,
             reference: str | None = None, whisker: str | None = None, axis: str = "",
             vmax: float = 100.0, unit: str = "%") -> str:
    """Panels of horizontal bars side by side, one bar (and a reference bar) per row.

    Args:
        title: The figure's title.
        rows: Row labels (e.g. conditions), shared by every panel.
        panels: One per column (e.g. per task); values in ``[0, vmax]``; NaN draws no bar.
        series: Legend text of the values (e.g. the model).
        reference: Legend text of the reference bars (e.g. the paper's model), if any.
        whisker: Legend text of the intervals, if any.
        axis: Caption under the axes.

    Returns:
        The SVG document as text.
    """
    if not rows or not panels:
        raise ValueError("bars_svg needs at least one row and one panel.")
    bad = [p.title for p in panels if len(p.values) != len(rows)]
    if bad:
        raise ValueError(f"panels {bad} do not have one value per row ({len(rows)} rows).")
    label_w = 14 + _CHAR * max(len(r) for r in rows)
    row_h = 2 * _BAR + 7 if any(p.reference is not None for p in panels) else _BAR + 7
    legend = series + (f" ({whisker})" if whisker else "")
    width = max(label_w + len(panels) * (_PANEL_W + _GAP) + 10,
                36 + _CHAR * max(len(legend), len(reference or ""), len(axis)),
                20 + 7.8 * len(title))
    height = _TOP + row_h * len(rows) + 42
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(width)}" height="{_n(height)}" '
           f'viewBox="0 0 {_n(width)} {_n(height)}" font-family="DejaVu Sans, Arial, sans-serif" '
           'font-size="11" role="img">', f"<title>{escape(title)}</title>",
           f'<rect width="{_n(width)}" height="{_n(height)}" fill="#ffffff"/>',
           _text(10, 18, title, font_size="13", font_weight="bold")]
    out += _legend(series, reference, whisker, 36)
    for i, label in enumerate(rows):
        out.append(_text(label_w - 8, _TOP + i * row_h + row_h / 2 + 1, label, "end"))
    for j, p in enumerate(panels):
        out += _panel(p, rows, label_w + j * (_PANEL_W + _GAP), row_h, vmax, unit)
    out.append(_text(label_w, height - 8, axis, fill="#333333"))
    out.append("</svg>")
    return "\n".join(out) + "\n"
