"""Figures survive a notebook's export to HTML: a notebook that calls
:func:`icl_tokens.plotting.use_embedded_renderer` and shows two figures is executed (nbclient),
exported (nbconvert, HTML), and opened in headless Chromium, which draws both figures from the
one copy of plotly.js the export holds. Skips, saying why, without a Chromium/Chrome binary.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from icl_tokens.plotting import EMBEDDED, use_embedded_renderer

PLOTLYJS_BANNER = "* plotly.js v"

CELLS = [
    "from IPython.display import display\n"
    "from icl_tokens.plotting import imshow, use_embedded_renderer\n"
    "use_embedded_renderer()",
    "imshow([[0.0, 1.0], [-1.0, 0.5]], title='first figure').show()",
    "display(imshow([[1.0, 2.0, 3.0]], title='second figure'))",
]


class _Plots(HTMLParser):
    """Counts drawn plotly figures: ``.js-plotly-plot`` divs and the ``.main-svg`` inside."""

    def __init__(self) -> None:
        super().__init__()
        self.plots: list[dict[str, int | str]] = []
        self._depth: list[int] = []  # nesting depth of each open plot div
        self._level = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "div":
            self._level += 1
            if "js-plotly-plot" in classes:
                self.plots.append({"id": a.get("id", ""), "svg": 0})
                self._depth.append(self._level)
        if tag == "svg" and "main-svg" in classes and self._depth:
            self.plots[-1]["svg"] += 1

    def handle_endtag(self, tag):
        if tag == "div":
            if self._depth and self._depth[-1] == self._level:
                self._depth.pop()
            self._level -= 1


def _bundles() -> list[dict]:
    fig = go.Figure(go.Bar(y=[1, 2]))
    return [fig._repr_mimebundle_() for _ in range(3)]


def test_renderer_sends_html_beside_the_mimetype_and_plotlyjs_once():
    before = pio.renderers.default
    try:
        use_embedded_renderer()
        assert pio.renderers.default == EMBEDDED
        bundles = _bundles()
        for b in bundles:
            assert "application/vnd.plotly.v1+json" in b and "text/html" in b
            assert "Plotly.newPlot" in b["text/html"]
            assert "<script src=" not in b["text/html"], "plotly.js must not come from a CDN"
        assert [b["text/html"].count(PLOTLYJS_BANNER) for b in bundles] == [1, 0, 0]
        use_embedded_renderer()  # "Run all" starts the page again
        assert _bundles()[0]["text/html"].count(PLOTLYJS_BANNER) == 1
    finally:
        pio.renderers.default = before


def _export(tmp_path: Path) -> Path:
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{errors[0].ename}: {errors[0].evalue}"
    body, _ = HTMLExporter().from_notebook_node(nb)
    out = tmp_path / "figures.html"
    out.write_text(body, encoding="utf-8")
    return out


def test_exported_notebook_draws_every_figure_in_chromium(tmp_path, chromium_dom):
    page = _export(tmp_path)
    text = page.read_text(encoding="utf-8")
    assert text.count(PLOTLYJS_BANNER) == 1, "plotly.js should be in the page exactly once"
    sources = re.findall(r"<script[^>]*\bsrc=['\"]([^'\"]+)", text)
    assert not [s for s in sources if "plotly" in s], f"plotly.js loaded from {sources}"
    html = chromium_dom(page, budget_ms=5000, timeout=180)
    dom = _Plots()
    dom.feed(html)
    assert len(dom.plots) == 2, f"drawn figures: {dom.plots}"
    assert all(p["svg"] >= 1 for p in dom.plots), f"a figure has no .main-svg: {dom.plots}"
    for title in ("first figure", "second figure"):
        assert title in html, f"{title!r} was not drawn"


# --- labels a reader can read ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tp():
    from icl_tokens.categorize import categorize
    from icl_tokens.models import gpt2_tokenizer
    from icl_tokens.prompts import build_prompt
    from icl_tokens.tasks import Example, load_task

    demos = [Example("d0", {"text": "a warm and funny film ."}, "1"),
             Example("d1", {"text": "a dull mess ."}, "0")]
    return categorize(build_prompt(load_task("sst2"), demos,
                                   Example("t", {"text": "dull ."}, "0")), gpt2_tokenizer())


def test_mask_heatmap_names_the_rows_it_shows(tp):
    from icl_tokens.ablation.conditions import condition_knockout
    from icl_tokens.aggregation.block import aggregation_knockout
    from icl_tokens.plotting import mask_heatmap

    test_rows = mask_heatmap(tp, condition_knockout(tp, "icl-template"))
    assert test_rows.layout.yaxis.title.text == "query (test-example tokens)"
    block = aggregation_knockout().resolve(tp)
    assert (mask_heatmap(tp, block).layout.yaxis.title.text
            == "query (demonstration tokens)")
    assert (mask_heatmap(tp, block, all_rows=True).layout.yaxis.title.text
            == "query (every token; restricted: demonstration tokens)")


def _mass_rows() -> pd.DataFrame:
    rows = [{"example_id": "a", "knockout": "icl", "scope": "last", "layer": layer,
             "head": 0, "category": c, "mass": m, "mass_per_token": m / 4}
            for layer in range(3) for c, m in (("bos", 0.8), ("template", 0.15),
                                               ("content", 0.05))]
    return pd.DataFrame(rows)


def test_mass_heatmap_puts_bos_apart_and_says_so():
    from icl_tokens.plotting import mass_heatmap

    fig = mass_heatmap(_mass_rows(), value="mass_per_token")
    assert list(fig.data[0].x) == ["template", "content"] and list(fig.data[1].x) == ["bos"]
    assert fig.layout.coloraxis.colorscale != fig.layout.coloraxis2.colorscale
    assert "BOS" in fig.layout.title.text and "own scale" in fig.layout.title.text
    assert "mass_per_token" not in fig.layout.coloraxis.colorbar.title.text
    assert "per key token" in fig.layout.coloraxis.colorbar.title.text
    gone = mass_heatmap(_mass_rows(), bos="exclude")
    assert len(gone.data) == 1 and "left out" in gone.layout.title.text
    assert "bos" in mass_heatmap(_mass_rows(), bos="include").data[0].x
    with pytest.raises(ValueError, match="bos must be"):
        mass_heatmap(_mass_rows(), bos="drop")


def test_window_and_compare_figures_title_axes_in_words_without_overlapping_notes():
    from icl_tokens.plotting import compare_figure, window_figure

    curve = pd.DataFrame({"icl-template": [50.0, 52.0, 49.0, 50.5], "icl": [70.0, 71.0, 72.0,
                                                                           70.2]},
                         index=["L0-3", "L2-5", "no block", "all layers"])
    fig = window_figure(curve, metric_label="label_correct (%)")
    assert fig.layout.yaxis.title.text.startswith("acc_label: accuracy")
    assert not fig.layout.annotations, "reference lines should be named in the legend"
    names = [t.name for t in fig.data]
    assert {"icl: no block", "icl: all layers", "icl-template: all layers"} <= set(names)
    table = pd.DataFrame({"none": [60.0], "block": [55.0], "Δ": [-5.0], "paired_se": [1.0]},
                         index=["icl"])
    assert compare_figure(table, metric_label="correct").layout.yaxis.title.text \
        .startswith("acc_gen: accuracy")
    assert compare_figure(table).layout.yaxis.title.text == "accuracy (%)"


def test_probe_legend_names_no_position():
    from icl_tokens.plotting import probe_curves

    rows = [{"position": p, "layer": layer, "knockout": k, "accuracy": 0.6, "majority": 0.5}
            for p in ("label", "t_out.colon", "content") for k in ("icl", "icl+block")
            for layer in range(3)]
    fig = probe_curves(pd.DataFrame(rows))
    shown = [t.name for t in fig.data if t.showlegend is not False]
    assert sorted(shown) == ["icl (probe accuracy)", "icl+block (probe accuracy)",
                             "majority baseline"]
    assert "label icl" in {t.name for t in fig.data}  # data traces keep their panel's name


def test_every_notebook_with_plotly_figures_embeds_them() -> None:
    """A notebook that draws plotly figures turns on the embedding renderer, so its HTML export
    (and any reader without a live kernel) keeps the figures."""
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    for script in sorted(notebooks.glob("*.py")):
        text = script.read_text(encoding="utf-8")
        draws = any(s in text for s in (".show()", "go.Figure", "imshow(", "_figure(", "heatmap("))
        if draws:
            assert "use_embedded_renderer()" in text, f"{script.name} draws figures without it"
