"""The Jupyter widget (ipywidgets) over :class:`~icl_tokens.explore.state.ExplorerState`.

Controls on the left set a :class:`~icl_tokens.explore.selection.Selection`; every change runs
one :meth:`~icl_tokens.explore.state.ExplorerState.update` and redraws the prediction, the
label-word probabilities, the test example's attention mass per category and the knockout as
code. The prompt is a row of toggle buttons, one per token, coloured by category (hover:
position, token id, categories, roles); clicking a demonstration token hides it. Errors (a
selection that cannot be run) are shown in the widget, never swallowed.

All logic lives in the state; :meth:`Explorer.selection_from_controls` is the only mapping
from control values to a selection, so the tests drive the widget without a browser.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from ..ablation.conditions import CONDITIONS, PAPER_ORDER
from ..ablation.selection import KINDS
from ..aggregation.block import BLOCK_QUERIES
from ..plotting.base import visible_whitespace
from .selection import EXTRA_CATEGORIES, QUERY_SCOPES, Selection
from .state import ExplorerState, Update
from .static import CATEGORY_COLORS, color_kinds, static_view

__all__ = ["Explorer"]

_PRESETS = ["(custom)"] + [c for c in PAPER_ORDER if c in CONDITIONS]


class Explorer:
    """The knockout explorer widget; display it with ``display(explorer.widget)`` (or just
    leave ``explorer`` as the cell's last expression).

    Attributes:
        state: The :class:`ExplorerState` (its ``item``, ``cache``, ``selection``).
        controls: Name → control widget.
        last: The last :class:`Update` (``None`` before the first or after an error).
        error: The last error message (``None`` when the last update ran).
    """

    def __init__(self, state: ExplorerState, *, live: bool = True) -> None:
        self.state = state
        self.last: Update | None = None
        self.error: str | None = None
        self._muted = False
        n_layers, n_heads = state.n_layers, state.n_heads
        n_demos = int(max(t.demo for t in state.tokens)) + 1
        self.controls: dict[str, W.Widget] = {
            "preset": W.Dropdown(options=_PRESETS, value="icl", description="condition"),
            "kinds": W.SelectMultiple(options=list(KINDS), description="hide kinds", rows=3),
            "categories": W.SelectMultiple(options=list(EXTRA_CATEGORIES),
                                           description="hide also", rows=3),
            "roles": W.Text(placeholder="demo_*.t_out.colon, ...", description="hide roles",
                            continuous_update=False),
            "demos": W.SelectMultiple(options=[(f"demo {i}", i) for i in range(n_demos)],
                                      description="hide demos", rows=min(4, max(1, n_demos))),
            "layers": W.IntRangeSlider(value=(0, n_layers - 1), min=0, max=n_layers - 1,
                                       description="layers", continuous_update=False),
            "heads": W.SelectMultiple(options=list(range(n_heads)), description="heads (none=all)",
                                      rows=min(4, n_heads)),
            "queries": W.Dropdown(options=list(QUERY_SCOPES), value="test",
                                  description="queries"),
            "aggregation": W.Dropdown(options=[("off", None)] + [(k, k) for k in BLOCK_QUERIES],
                                      value=None, description="E9 block"),
            "mode": W.Dropdown(options=["scores", "pattern"], value="scores", description="mode"),
        }
        self.token_buttons = [self._token_button(t) for t in state.tokens]
        self.clear = W.Button(description="clear clicked tokens")
        self.clear.on_click(lambda _: self._clear_tokens())
        self.result = W.HTML()
        self.code = W.Textarea(layout=W.Layout(width="100%", height="140px"))
        self.status = W.HTML()
        for name, c in self.controls.items():
            c.observe(self._preset_changed if name == "preset" else self._changed, names="value")
        for b in self.token_buttons:
            b.observe(self._changed, names="value")
        left = W.VBox(list(self.controls.values()) + [self.clear])
        right = W.VBox([self.status, self.result, W.HTML("<b>the knockout as code</b>"),
                        self.code])
        prompt = W.Box(self.token_buttons,
                       layout=W.Layout(display="flex", flex_flow="row wrap", width="100%"))
        self.widget = W.VBox([W.HBox([left, right]), prompt])
        if live:
            self.refresh()

    def _token_button(self, t: Any) -> W.ToggleButton:
        kinds = color_kinds(t.categories)
        b = W.ToggleButton(
            value=False, description=visible_whitespace(t.text)[:24] or "·",
            tooltip=(f"#{t.position} id={t.token_id} | {', '.join(t.categories)} | "
                     f"{', '.join(t.roles)}"),
            disabled=t.is_test, layout=W.Layout(width="auto", height="26px", padding="0 2px",
                                                margin="1px"))
        b.style.button_color = CATEGORY_COLORS.get(kinds[0], "#ffffff")
        return b

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
        return Selection(
            kinds=frozenset(c["kinds"].value), categories=frozenset(c["categories"].value),
            roles=roles, demos=tuple(c["demos"].value),
            tokens=tuple(i for i, b in enumerate(self.token_buttons) if b.value),
            layers=layers, heads=tuple(c["heads"].value) or None, queries=c["queries"].value,
            aggregation=c["aggregation"].value, mode=c["mode"].value)

    def _preset_changed(self, change: dict) -> None:
        if self._muted:
            return
        if change["new"] in CONDITIONS:
            self._muted = True
            self.controls["kinds"].value = tuple(k for k in KINDS
                                                 if k in CONDITIONS[change["new"]])
            self._muted = False
        self.refresh()

    def _changed(self, change: dict) -> None:
        if self._muted:
            return
        if change.get("owner") is self.controls["kinds"]:
            kinds = frozenset(change["new"])
            match = [c for c in _PRESETS[1:] if frozenset(CONDITIONS[c]) == kinds]
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
        try:
            sel = self.selection_from_controls()
            up = self.state.update(sel)
        except ValueError as err:
            self.last, self.error = None, str(err)
            self.status.value = f'<span style="color:#b2182b"><b>cannot run:</b> {err}</span>'
            return None
        self.last, self.error = up, None
        self._draw(up)
        return up

    def _draw(self, up: Update) -> None:
        for b, hidden in zip(self.token_buttons, up.hidden):
            b.icon = "eye-slash" if hidden else ""
        pred = up.prediction if up.prediction is not None else up.label_prediction
        ok = "✓" if pred == up.gold else "✗"
        self.status.value = (
            f"<b>prediction</b> {pred!r} {ok} (gold {up.gold!r}; label argmax "
            f"{up.label_prediction!r}) · {up.seconds * 1000:.0f} ms"
            f"{' (computed a new prefix)' if up.prefix_computed else ''}")
        self.result.value = static_view(
            [], category_mass=up.mass_by_category().to_dict(), label_probs=up.label_probs,
            full_page=False)
        self.code.value = self.state.as_code(up.selection)
