"""The Jupyter widget (ipywidgets) over :class:`~icl_tokens.explore.state.ExplorerState`.

Controls on the left set a :class:`~icl_tokens.explore.selection.Selection`; every change runs
one :meth:`~icl_tokens.explore.state.ExplorerState.update` and redraws the prediction, the
label-word probabilities, the test example's attention mass per category, the knockout as code
and the attention pattern of one head (layer and head chosen below it; choosing them redraws
without a forward). The prompt is a row of toggle buttons, one per token, coloured by category
as in the static view (CSS classes ``icl-tok cat-...`` and one stylesheet; several categories
are striped), the test example dashed; clicking a demonstration token hides it, and every key
hidden from the test example is struck through and dimmed. Errors (a selection that cannot be
run) are shown in the widget, never swallowed. With an atlas on the state
(:meth:`~icl_tokens.explore.state.ExplorerState.set_atlas`), a checkbox colours the token
buttons by each token's exact effect instead (:mod:`~icl_tokens.explore.atlas`; no forward).

All logic lives in the state; :meth:`Explorer.selection_from_controls` is the only mapping
from control values to a selection, so the tests drive the widget without a browser.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as W
import numpy as np

from ..ablation.conditions import REGISTRY
from ..ablation.selection import KINDS
from ..aggregation.block import BLOCK_QUERIES
from ..plotting.base import visible_whitespace
from .atlas import ATLAS_CLASS, atlas_css
from .pattern import MEAN_HEADS, pattern_view
from .selection import EXTRA_CATEGORIES, QUERY_SCOPES, Selection
from .state import ExplorerState, Update
from .static import CATEGORY_COLORS, category_css, color_kinds, css_class, static_view

__all__ = ["AGGREGATION_OFF", "Explorer", "explorer_css"]

#: The aggregation dropdown's value for "no E9 block" (a dropdown shows ``None`` as a blank).
AGGREGATION_OFF = "off"
_WIDE = {"description_width": "initial"}

_CSS = (
    ".icl-explorer .icl-tok{font-family:monospace;font-size:12px;color:#000 !important;"
    "border:1px solid #999 !important;border-radius:2px;padding:0 3px !important;"
    "margin:1px !important;white-space:pre;text-overflow:clip}"
    ".icl-explorer .icl-tok.test{border:1px dashed #222 !important}"
    ".icl-explorer .icl-tok.hidden{text-decoration:line-through;opacity:.45}"
    ".icl-explorer .icl-tok.mod-active{outline:2px solid #b2182b;box-shadow:none !important}"
    ".icl-explorer .icl-tok:disabled{cursor:default;opacity:1 !important}"
    ".icl-explorer .leg{font-family:monospace;font-size:12px;border:1px solid #555;"
    "border-radius:3px;padding:1px 4px;margin-right:6px}"
    ".icl-explorer .leg.hidden{text-decoration:line-through;opacity:.45}"
    ".icl-explorer .leg.test{border:1px dashed #222}"
    ".icl-explorer .leg.clicked{outline:2px solid #b2182b}"
)


def kind_presets() -> dict[str, frozenset[str]]:
    """The registered representation-level conditions that hide kinds (the paper's and a
    user's, read when a widget is built): name → hidden kinds."""
    return {c.name: c.hidden for c in REGISTRY.conditions(REGISTRY.names())
            if c.hidden is not None and c.knockout is None and not c.parts}


def explorer_css(state: ExplorerState) -> str:
    """The explorer's stylesheet: token buttons coloured by category (``!important`` beats the
    widget library's button colours), hidden keys struck through, the legend."""
    combos = sorted({color_kinds(t.categories) for t in state.tokens}
                    | {(c,) for c in CATEGORY_COLORS if c != "test"})
    css = _CSS + category_css(combos, ".icl-explorer", important=True)
    if state.atlas is not None:
        css += atlas_css(state.atlas, ".icl-explorer")
    return "<style>" + css + "</style>"


def _legend() -> str:
    cats = "".join(f'<span class="leg {css_class((c,))}">{html.escape(c)}</span>'
                   for c in CATEGORY_COLORS if c != "test")
    return (f"<div>{cats}<span class='leg test'>test example (dashed)</span>"
            "<span class='leg hidden'>hidden from the test example</span>"
            "<span class='leg clicked'>clicked (hidden by you)</span></div>"
            "<div style='font-size:12px'>click a demonstration token to hide it from the test "
            "example; hover a token for its position, id, categories and roles</div>")


def _controls(state: ExplorerState, presets: dict[str, frozenset[str]]) -> dict[str, W.Widget]:
    """The selection controls, each with a readable label and a class ``icl-ctl-<name>``."""
    n_layers, n_heads = state.n_layers, state.n_heads
    n_demos = int(max(t.demo for t in state.tokens)) + 1
    wide = W.Layout(width="330px")
    c: dict[str, W.Widget] = {
        "preset": W.Dropdown(options=["(custom)", *presets], value="icl",
                             description="condition"),
        "kinds": W.SelectMultiple(options=list(KINDS), description="hide kinds", rows=3),
        "categories": W.SelectMultiple(options=list(EXTRA_CATEGORIES), description="hide also",
                                       rows=3),
        "roles": W.Text(placeholder="demo_*.t_out.colon, ...", description="hide roles",
                        continuous_update=False),
        "demos": W.SelectMultiple(options=[(f"demo {i} (demo_{i + 1}.*)", i)
                                           for i in range(n_demos)],
                                  description="hide demos", rows=min(4, max(1, n_demos))),
        "layers": W.IntRangeSlider(value=(0, n_layers - 1), min=0, max=n_layers - 1,
                                   description="layers", continuous_update=False),
        "heads": W.SelectMultiple(options=list(range(n_heads)), description="heads (none = all)",
                                  rows=min(4, n_heads)),
        "queries": W.Dropdown(options=list(QUERY_SCOPES), value="test", description="queries"),
        "aggregation": W.Dropdown(options=[AGGREGATION_OFF, *BLOCK_QUERIES],
                                  value=AGGREGATION_OFF, description="E9 aggregation block"),
        "mode": W.Dropdown(options=["scores", "pattern"], value="scores", description="mode"),
    }
    for name, w in c.items():
        w.style = _WIDE
        w.layout = wide
        w.add_class(f"icl-ctl-{name}")
    return c


def _atlas_legend(effects: Any) -> str:
    vmax = float(np.nanmax(np.abs(effects))) if np.isfinite(effects).any() else 0.0
    return ("<div class='icl-atlas-legend' style='font-size:12px'>atlas colours (exact effect "
            "of knocking one token out on the gold label's margin): <span class='leg' "
            "style='background:#b2182b;color:#fff'>lowers it</span><span class='leg'>0</span>"
            "<span class='leg' style='background:#2166ac;color:#fff'>raises it</span> "
            f"(full colour at |effect| = {vmax:.3g} nats)</div>")


def _token_button(t: Any, effect: float | None = None) -> W.ToggleButton:
    """One prompt token: classes ``icl-tok``, its colour class, ``test``, ``icl-pos-<i>``."""
    tip = (f"#{t.position} id={t.token_id} | {', '.join(t.categories) or '(none)'} | "
           f"{', '.join(t.roles) or '(no role)'}")
    if effect is not None and np.isfinite(effect):
        tip += f" | atlas effect {effect:+.4f}"
    b = W.ToggleButton(
        value=False, description=visible_whitespace(t.text)[:24] or "·", tooltip=tip,
        disabled=t.is_test, layout=W.Layout(width="auto", height="24px"))
    for cls in ("icl-tok", css_class(color_kinds(t.categories)), f"icl-pos-{t.position}"):
        b.add_class(cls)
    if t.is_test:
        b.add_class("test")
    return b


class Explorer:
    """The knockout explorer widget; display it with ``display(explorer.widget)`` (or just
    leave ``explorer`` as the cell's last expression).

    Attributes:
        state: The :class:`ExplorerState` (its ``item``, ``cache``, ``selection``).
        controls: Name → control widget.
        pattern_controls: ``layer`` and ``head`` of the attention-pattern view.
        last: The last :class:`Update` (``None`` before the first or after an error).
        error: The last error message (``None`` when the last update ran).
        updates: How many updates ran (shown as ``data-update`` in the status line).
    """

    def __init__(self, state: ExplorerState, *, live: bool = True) -> None:
        self.state = state
        self.last: Update | None = None
        self.error: str | None = None
        self.updates = 0
        self._muted = False
        self._hidden = [False] * len(state.tokens)
        self.presets = kind_presets()
        self.controls = _controls(state, self.presets)
        effects = state.atlas if state.atlas is not None else [None] * len(state.tokens)
        self.token_buttons = [_token_button(t, e) for t, e in zip(state.tokens, effects)]
        self.atlas_toggle: W.Checkbox | None = None
        if state.atlas is not None:
            self.atlas_toggle = W.Checkbox(value=True, description="colour the prompt by the "
                                           "atlas (exact effect)", style=_WIDE)
            self.atlas_toggle.add_class("icl-ctl-atlas")
        self.clear = W.Button(description="clear clicked tokens", layout=W.Layout(width="auto"))
        self.clear.add_class("icl-ctl-clear")
        self.clear.on_click(lambda _: self._clear_tokens())
        self.pattern_controls = {
            "layer": W.IntSlider(value=state.n_layers - 1, min=0, max=state.n_layers - 1,
                                 description="pattern layer", style=_WIDE,
                                 continuous_update=False),
            "head": W.Dropdown(options=[("mean of heads", MEAN_HEADS)]
                               + [(f"head {h}", h) for h in range(state.n_heads)],
                               value=MEAN_HEADS, description="pattern head", style=_WIDE),
        }
        for name, c in self.pattern_controls.items():
            c.add_class(f"icl-ctl-pattern-{name}")
        self.result, self.status, self.pattern = W.HTML(), W.HTML(), W.HTML()
        self.code = W.Textarea(layout=W.Layout(width="100%", height="140px"))
        self._observe()
        self.widget = self._layout()
        if live:
            self.refresh()

    def _observe(self) -> None:
        for name, c in self.controls.items():
            c.observe(self._preset_changed if name == "preset" else self._changed, names="value")
        for b in self.token_buttons:
            b.observe(self._changed, names="value")
        for c in self.pattern_controls.values():
            c.observe(lambda _: self._draw_pattern(), names="value")
        if self.atlas_toggle is not None:
            self.atlas_toggle.observe(lambda _: self._colour_by_atlas(), names="value")

    def _layout(self) -> W.Widget:
        left = W.VBox(list(self.controls.values()) + [self.clear],
                      layout=W.Layout(min_width="340px"))
        right = W.VBox([self.status, self.result, W.HTML("<b>the knockout as code</b>"),
                        self.code], layout=W.Layout(flex="1 1 auto"))
        prompt = W.Box(self.token_buttons,
                       layout=W.Layout(display="flex", flex_flow="row wrap", width="100%"))
        prompt.add_class("icl-prompt")
        pattern = W.VBox([W.HBox(list(self.pattern_controls.values())), self.pattern])
        legend = [W.HTML(_legend())]
        if self.atlas_toggle is not None:
            legend += [self.atlas_toggle, W.HTML(_atlas_legend(self.state.atlas))]
        box = W.VBox([W.HTML(explorer_css(self.state)), W.HBox([left, right]), *legend, prompt,
                      pattern])
        box.add_class("icl-explorer")
        if self.atlas_toggle is not None and self.atlas_toggle.value:
            box.add_class(ATLAS_CLASS)
        return box

    def _colour_by_atlas(self) -> None:
        """Atlas colours on or off (a class on the box; no forward)."""
        on = self.atlas_toggle is not None and self.atlas_toggle.value
        (self.widget.add_class if on else self.widget.remove_class)(ATLAS_CLASS)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # ------------------------------------------------------------------ control → selection
    def selection_from_controls(self) -> Selection:
        """The selection the controls hold now."""
        c = self.controls
        lo, hi = c["layers"].value
        layers = None if (lo, hi) == (0, self.state.n_layers - 1) else tuple(range(lo, hi + 1))
        roles = tuple(r.strip() for r in c["roles"].value.split(",") if r.strip())
        agg = c["aggregation"].value
        return Selection(
            kinds=frozenset(c["kinds"].value), categories=frozenset(c["categories"].value),
            roles=roles, demos=tuple(c["demos"].value),
            tokens=tuple(i for i, b in enumerate(self.token_buttons) if b.value),
            layers=layers, heads=tuple(c["heads"].value) or None, queries=c["queries"].value,
            aggregation=None if agg == AGGREGATION_OFF else agg, mode=c["mode"].value)

    def _preset_changed(self, change: dict) -> None:
        if self._muted:
            return
        if change["new"] in self.presets:
            self._muted = True
            self.controls["kinds"].value = tuple(k for k in KINDS
                                                 if k in self.presets[change["new"]])
            self._muted = False
        self.refresh()

    def _changed(self, change: dict) -> None:
        if self._muted:
            return
        if change.get("owner") is self.controls["kinds"]:
            kinds = frozenset(change["new"])
            match = [c for c, hidden in self.presets.items() if hidden == kinds]
            self._muted = True
            self.controls["preset"].value = match[0] if match else "(custom)"
            self._muted = False
        self.refresh()

    def _clear_tokens(self) -> None:
        self._muted = True
        for b in self.token_buttons:
            b.value = False
        self._muted = False
        self.refresh()

    # ------------------------------------------------------------------ one update
    def refresh(self) -> Update | None:
        """Run the current selection and redraw; returns the update (``None`` on an error)."""
        self.updates += 1
        try:
            sel = self.selection_from_controls()
            up = self.state.update(sel)
        except ValueError as err:
            self.last, self.error = None, str(err)
            self.status.value = (f'<span class="icl-status icl-error" data-update='
                                 f'"{self.updates}" style="color:#b2182b"><b>cannot run:</b> '
                                 f"{html.escape(str(err))}</span>")
            return None
        self.last, self.error = up, None
        self._draw(up)
        return up

    def _draw(self, up: Update) -> None:
        for i, (b, hidden) in enumerate(zip(self.token_buttons, up.hidden)):
            hidden = bool(hidden)
            if hidden != self._hidden[i]:
                (b.add_class if hidden else b.remove_class)("hidden")
                b.icon = "eye-slash" if hidden else ""
                self._hidden[i] = hidden
        self.result.value = static_view(
            [], category_mass=up.mass_by_category().to_dict(), label_probs=up.label_probs,
            full_page=False)
        self.code.value = self.state.as_code(up.selection)
        self._draw_pattern()
        pred = up.prediction if up.prediction is not None else up.label_prediction
        ok = "✓" if pred == up.gold else "✗"
        n_hidden = int(up.hidden.sum())
        self.status.value = (
            f'<span class="icl-status" data-update="{self.updates}" data-pred='
            f'"{html.escape(str(pred), quote=True)}" data-label-pred='
            f'"{html.escape(up.label_prediction, quote=True)}"><b>prediction</b> '
            f"{html.escape(repr(pred))} {ok} (gold {html.escape(repr(up.gold))}; label argmax "
            f"{html.escape(repr(up.label_prediction))}) · {n_hidden} keys hidden from the test "
            f"example · {up.seconds * 1000:.0f} ms"
            f"{' (computed a new prefix)' if up.prefix_computed else ''}</span>")

    def _draw_pattern(self) -> None:
        """Redraw the attention pattern of the chosen layer and head (no forward)."""
        if self.last is None:
            return
        self.pattern.value = pattern_view(
            self.state.tokens, self.last.pattern, self.state.queries,
            layer=self.pattern_controls["layer"].value, head=self.pattern_controls["head"].value,
            hidden=self.last.hidden)
