"""A notebook renderer whose figures survive export: :func:`use_embedded_renderer`.

Plotly's default notebook output carries only the plotly mimetype
(``application/vnd.plotly.v1+json``), which JupyterLab and VS Code draw but ``jupyter nbconvert
--to html`` and nbviewer drop, leaving empty space. After :func:`use_embedded_renderer` every
figure is sent with that mimetype *and* a ``text/html`` representation that draws it with
plotly.js; the first figure after the call carries plotly.js itself (from the installed plotly
package, never a CDN), so an executed and exported notebook holds it once and opens offline.
"""

from __future__ import annotations

import uuid
from typing import Any

import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer

__all__ = ["EMBEDDED", "EmbeddedHtmlRenderer", "use_embedded_renderer"]

#: The name of the combined renderer :func:`use_embedded_renderer` makes the default.
EMBEDDED = "plotly_mimetype+icl_tokens_html"
_HTML = "icl_tokens_html"


class EmbeddedHtmlRenderer(MimetypeRenderer):
    """``text/html`` that draws the figure; plotly.js inlined in the first bundle only.

    Plotly copies a renderer for every figure it shows, so whether plotly.js was sent lives in
    a shared ``state`` dict, not in an attribute.
    """

    def __init__(self) -> None:
        self.state = {"plotlyjs_sent": False}

    def to_mimebundle(self, fig_dict: dict[str, Any]) -> dict[str, str]:
        first = not self.state["plotlyjs_sent"]
        html = pio.to_html(fig_dict, include_plotlyjs=first, include_mathjax=False,
                           full_html=False, div_id=f"icl-fig-{uuid.uuid4().hex[:16]}",
                           default_width="100%", default_height=525, validate=False,
                           config={"responsive": True})
        self.state["plotlyjs_sent"] = True
        return {"text/html": html}


def use_embedded_renderer() -> None:
    """Make every figure a notebook shows (``fig.show()``, ``display(fig)``, a cell's last
    value) keep its drawing when the notebook is exported to HTML.

    Call it once near the top of a notebook, after the imports; calling it again (e.g. "Run
    all") makes the next figure carry plotly.js again, so a notebook run top to bottom holds
    plotly.js exactly once. Outside a notebook kernel it changes nothing a script prints: plotly
    figures there are written with :func:`~icl_tokens.plotting.base.save_figure`. The default
    renderer becomes :data:`EMBEDDED`; it returns nothing, so a cell ending with it shows
    nothing.
    """
    pio.renderers[_HTML] = EmbeddedHtmlRenderer()
    pio.renderers.default = EMBEDDED
