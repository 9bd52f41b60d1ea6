"""A static view of one explorer update: self-contained HTML that needs no kernel.

The prompt's tokens coloured by category (CSS classes, one rule per category or combination;
hover shows position, token id, categories and roles), the keys hidden from the test example
struck through, the test example's attention mass per category as bars, and per token as a bar
under it, plus the prediction and the label-word probabilities. No script and nothing fetched:
the file opens offline, in a results report or a slide.

    html = update_view(state, state.update(sel))         # a full page
    save_view("results/view.html", html)
    display(HTML(update_view(state, up, full_page=False)))   # inside a notebook

Each token is ``<span class="icl-tok cat-..." data-pos data-token-id data-cats data-roles
data-mass title=...>``; the colour of category ``c`` is :data:`CATEGORY_COLORS` ``[c]`` (a
token of several categories is striped with all of their colours, top to bottom).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..plotting.base import visible_whitespace
from ..plotting.tokens import CATEGORY_COLORS
from .state import ExplorerState, TokenInfo, Update

__all__ = ["CATEGORY_COLORS", "category_css", "color_kinds", "static_view", "update_view",
           "save_view", "css_class"]

_UNKNOWN = "#ffffff"


def color_kinds(categories: Sequence[str]) -> tuple[str, ...]:
    """The categories that give a token its colour, in :data:`CATEGORY_COLORS` order
    (``test`` is an outline, not a colour; a token without any is ``unknown``)."""
    kinds = tuple(c for c in CATEGORY_COLORS if c in categories and c != "test")
    return kinds or ("unknown",)


def css_class(kinds: Sequence[str]) -> str:
    """The colour class of a combination, e.g. ``cat-template-stopword``."""
    return "cat-" + "-".join(kinds)


def _color(kind: str) -> str:
    return CATEGORY_COLORS.get(kind, _UNKNOWN)


def _fill(kinds: Sequence[str], important: bool = False) -> str:
    """CSS declarations that colour a token of ``kinds`` (stripes for several)."""
    bang = " !important" if important else ""
    out = f"background-color:{_color(kinds[0])}{bang}"
    if len(kinds) == 1:
        return out + (f";background-image:none{bang}" if important else "")
    step = 100 / len(kinds)
    stops = ", ".join(f"{_color(k)} {i * step:.0f}% {(i + 1) * step:.0f}%"
                      for i, k in enumerate(kinds))
    return out + f";background-image:linear-gradient(180deg, {stops}){bang}"


def category_css(combos: Sequence[Sequence[str]], scope: str = ".icl-view",
                 important: bool = False) -> str:
    """One CSS rule per colour combination (``.{scope} .cat-...{...}``); ``important`` wins over
    a widget library's own button colours."""
    return "".join(f"{scope} .{css_class(k)}{{{_fill(k, important)}}}" for k in combos)


_CSS = (
    ".icl-view{font-family:monospace;font-size:13px;line-height:2.2;color:#000}"
    ".icl-view .icl-tok{border:1px solid #999;border-radius:2px;padding:0 1px;margin:1px;"
    "white-space:pre;display:inline-block;line-height:1.5}"
    ".icl-view .icl-tok.test{border:1px dashed #222}"
    ".icl-view .icl-tok.hidden{text-decoration:line-through;opacity:.45}"
    ".icl-view .icl-tok:hover{outline:2px solid #000}"
    ".icl-view .mbar{display:block;height:3px;background:#333;margin-top:1px}"
    ".icl-view table{border-collapse:collapse;margin:6px 0}"
    ".icl-view td,.icl-view th{padding:1px 8px;text-align:left}"
    ".icl-view .bar{display:inline-block;height:10px;vertical-align:middle;border:1px solid #555}"
    ".icl-view .leg{border:1px solid #555;border-radius:3px;padding:1px 4px;margin-right:6px}"
    ".icl-view pre{background:#f4f4f4;padding:6px;line-height:1.3;white-space:pre-wrap}"
)


def _token_span(t: TokenInfo, hidden: bool, mass: float | None, mass_max: float) -> str:
    kinds = color_kinds(t.categories)
    classes = ["icl-tok", css_class(kinds)] + (["test"] if t.is_test else []) + (
        ["hidden"] if hidden else [])
    tip = (f"#{t.position} id={t.token_id} text={t.text!r}\ncategories: "
           f"{', '.join(t.categories) or '(none)'}\nroles: {', '.join(t.roles) or '(none)'}")
    attrs = {"class": " ".join(classes), "data-pos": str(t.position),
             "data-token-id": str(t.token_id), "data-cats": " ".join(t.categories),
             "data-color": " ".join(kinds), "data-roles": " ".join(t.roles),
             "data-hidden": "1" if hidden else "0"}
    bar = ""
    if mass is not None:
        attrs["data-mass"] = f"{mass:.6f}"
        tip += f"\nattention from the test example: {mass:.4f}"
        width = 0 if mass_max <= 0 else max(0.0, min(1.0, mass / mass_max))
        bar = f'<span class="mbar" style="width:{100 * width:.0f}%"></span>'
    if hidden:
        tip += "\nhidden from the test example"
    attrs["title"] = tip
    inner = html.escape(visible_whitespace(t.text))
    a = " ".join(f'{k}="{html.escape(v, quote=True)}"' for k, v in attrs.items())
    out = f"<span {a}>{inner}{bar}</span>"
    if "\n" in t.text:
        out += "<br>" * t.text.count("\n")
    return out


def _bars(values: Mapping[str, float], colors: Mapping[str, str] | None, scale: float,
          cls: str) -> str:
    rows = []
    for name, v in values.items():
        color = (colors or {}).get(name, "#888")
        w = 0.0 if not np.isfinite(v) or scale <= 0 else 200 * v / scale
        rows.append(f'<tr class="{cls}" data-name="{html.escape(name)}" data-value="{v:.6f}">'
                    f"<td>{html.escape(name)}</td><td>{v:.3f}</td>"
                    f'<td><span class="bar" style="width:{w:.0f}px;background:{color}">'
                    "</span></td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _prompt_block(tokens: Sequence[TokenInfo], hid: np.ndarray, tm: np.ndarray | None) -> str:
    """The legend and the prompt's token spans (with attention bars when ``tm`` is given)."""
    # bars scaled to the largest demonstration-side token (BOS, an attention sink, would
    # otherwise flatten every other bar; its own bar is capped at full width)
    scaled = [i for i, t in enumerate(tokens) if not t.is_test and "bos" not in t.categories]
    mmax = float(np.nanmax(tm[scaled])) if tm is not None and scaled else 1.0
    legend = "".join(f'<span class="leg {css_class((c,))}">{html.escape(c)}</span>'
                     for c in CATEGORY_COLORS if c != "test")
    legend += '<span class="leg icl-tok test">test example (dashed)</span>'
    legend += '<span class="leg icl-tok hidden">hidden from the test example</span>'
    spans = "".join(_token_span(t, bool(hid[i]), None if tm is None else float(tm[i]), mmax)
                    for i, t in enumerate(tokens))
    return f'<div class="legend">{legend}</div><div class="tokens">{spans}</div>'


def static_view(
    tokens: Sequence[TokenInfo], *,
    hidden: Sequence[bool] | np.ndarray | None = None,
    token_mass: Sequence[float] | np.ndarray | None = None,
    category_mass: Mapping[str, float] | None = None,
    label_probs: Mapping[str, float] | None = None,
    summary: Mapping[str, str] | None = None,
    code: str | None = None,
    title: str | None = None,
    full_page: bool = True,
) -> str:
    """The HTML view.

    Args:
        tokens: The prompt's tokens (:func:`~icl_tokens.explore.state.token_infos`).
        hidden: Bool per token: hidden from the test example (struck through).
        token_mass: Attention each token gets from the test example (a bar under it).
        category_mass: Key group → attention mass (bars, coloured by category).
        label_probs: Label word → probability (bars).
        summary: Extra lines (name → text), e.g. prediction and gold.
        code: Python source shown in a ``<pre>`` (the knockout).
        title: A heading.
        full_page: A complete HTML document (``True``) or a fragment for a notebook.
    """
    n = len(tokens)
    for name, arr in (("hidden", hidden), ("token_mass", token_mass)):
        if arr is not None and len(arr) != n:
            raise ValueError(f"{name} has {len(arr)} entries for {n} tokens.")
    hid = np.zeros(n, dtype=bool) if hidden is None else np.asarray(hidden, dtype=bool)
    tm = None if token_mass is None else np.asarray(token_mass, dtype=float)
    combos = sorted({color_kinds(t.categories) for t in tokens} |
                    {(c,) for c in CATEGORY_COLORS if c != "test"})
    css = "<style>" + _CSS + category_css(combos) + "</style>"
    parts = [f'<div class="icl-view">{css}']
    if title:
        parts.append(f"<h3>{html.escape(title)}</h3>")
    if summary:
        parts.append("<table>" + "".join(
            f'<tr class="summary" data-name="{html.escape(k)}"><th>{html.escape(k)}</th>'
            f"<td>{html.escape(v)}</td></tr>" for k, v in summary.items()) + "</table>")
    if tokens:
        parts.append(_prompt_block(tokens, hid, tm))
    if label_probs:
        parts.append("<h4>label-word probabilities</h4>")
        parts.append(_bars(label_probs, None, 1.0, "label"))
    if category_mass:
        scale = max([v for v in category_mass.values() if np.isfinite(v)] or [1.0])
        parts.append("<h4>attention mass of the test example per key category "
                     "(mean over layers, heads and test tokens)</h4>")
        parts.append(_bars(category_mass, CATEGORY_COLORS | {"test": "#dddddd"}, scale, "mass"))
    if code:
        parts.append(f"<h4>the knockout as code</h4><pre>{html.escape(code)}</pre>")
    parts.append("</div>")
    body = "".join(parts)
    if not full_page:
        return body
    head = html.escape(title or "icl_tokens explorer view")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{head}'
            f"</title></head><body>{body}</body></html>")


def update_view(state: ExplorerState, update: Update, *, title: str | None = None,
                full_page: bool = True) -> str:
    """:func:`static_view` of one :class:`~icl_tokens.explore.state.Update` of ``state``."""
    summary = {"knockout": update.selection.name, "gold": update.gold,
               "label prediction": update.label_prediction}
    if update.prediction is not None:
        summary["prediction (generated)"] = f"{update.prediction} ({update.continuation!r})"
    return static_view(
        state.tokens, hidden=update.hidden, token_mass=update.token_mass,
        category_mass=update.mass_by_category().to_dict(), label_probs=update.label_probs,
        summary=summary, code=state.as_code(update.selection), title=title, full_page=full_page)


def save_view(path: str | Path, page: str) -> Path:
    """Write an HTML page (from :func:`static_view` / :func:`update_view`) to ``path``."""
    p = Path(path)
    if p.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"{p} should end in .html so a browser opens it.")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(page, encoding="utf-8")
    return p
