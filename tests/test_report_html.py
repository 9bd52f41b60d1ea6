"""``report.html`` as a reader sees it: figures first (one per paper table with an accuracy, bars
with the crossed-design intervals beside the paper's numbers, a legend naming the model), the
markdown rendered, the provenance folded at the end; the same figures as committed SVG files that
``docs/results.md`` links and that regenerate byte for byte; and headless Chromium drawing them.
"""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from icl_tokens.analysis.figures import has_figure
from icl_tokens.analysis.report import load_results, paper_tables, write_report
from icl_tokens.analysis.results_page import results_doc
from icl_tokens.analysis.stats import cell_intervals
from icl_tokens.plotting.svg import PAPER_COLOR, BarPanel, bars_svg

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SMOKE = DOCS / "results" / "smoke-gemma-3-270m"
FOLDERS = sorted(p.parent for p in (DOCS / "results").glob("*/provenance.json"))

def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("runs", "report.html", "figures",
                                                            "timing.json"))
    return dst


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    folder = _copy(SMOKE, tmp_path_factory.mktemp("report") / "smoke")
    write_report(folder)
    return folder


class _Page(HTMLParser):
    """The page's element order, visible text outside code, figures and the details block."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []
        self.text: list[str] = []
        self.svg_text: list[str] = []
        self.figures: list[str] = []
        self.details_text = ""
        self.after_details: list[str] = []
        self._stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._stack.append(tag)
        if "/details" in self.order:
            self.after_details.append(tag)
        if tag in ("figure", "table", "details", "h2", "script"):
            self.order.append(tag)
        if tag == "figure":
            self.figures.append(a.get("id", ""))

    def handle_endtag(self, tag):
        while self._stack and self._stack.pop() != tag:
            pass
        if tag == "details":
            self.order.append("/details")

    def handle_data(self, data):
        if "details" in self._stack:
            self.details_text += data
        elif "svg" in self._stack:
            self.svg_text.append(data)
        elif not {"code", "pre", "style", "title"} & set(self._stack):
            self.text.append(data)


def _page(folder: Path) -> _Page:
    p = _Page()
    p.feed((folder / "report.html").read_text(encoding="utf-8"))
    return p


def test_figures_come_first_markdown_is_rendered_provenance_is_folded(smoke):
    res = load_results(smoke)
    tables = paper_tables(res)
    page = _page(smoke)
    want = [f"table{n}" for n, t in tables.items() if has_figure(t)]
    assert page.figures == want and len(want) == len(tables) - 1  # every table but Table 15
    assert page.order.index("figure") < page.order.index("table"), page.order[:5]
    assert "script" not in page.order, "the report needs no script (static SVG figures)"
    visible = "".join(page.text)
    for literal in ("**", "`", "## "):
        assert literal not in visible, f"markdown shown literally: {literal!r}"
    assert page.order[-1] == "/details" and not page.after_details
    assert '"versions"' in page.details_text and "Provenance" in page.details_text
    svg = " ".join(page.svg_text)
    assert res.model in svg and f"paper: {res.paper_model}" in svg
    assert "ours" not in svg


def test_bars_carry_the_crossed_intervals_and_the_papers_numbers(smoke):
    res = load_results(smoke)
    t3 = paper_tables(res)[3]
    svg = (smoke / "figures" / "table3.svg").read_text(encoding="utf-8")
    rep = res.tidy["representation"]
    ci = cell_intervals(rep[rep.condition.isin([k for k, _ in t3.rows])], "correct",
                        by=("task", "condition"))
    labels = dict(t3.rows)
    for _, r in ci.iterrows():
        tip = f"{r.task}, {labels[r.condition]}: {r['mean']:.1f}% [{r.lo:.1f}, {r.hi:.1f}]"
        assert f"<title>{tip}</title>" in svg.replace("&#x27;", "'"), tip
        paper = t3.paper.loc[r.condition, r.task]
        assert f"{r.task}, {labels[r.condition]}: paper {paper:.1f}%" in svg
    assert svg.count('stroke="#222222"') == len(ci)  # one whisker per cell
    assert svg.count(f'fill="{PAPER_COLOR}"') == len(ci) + 1  # + the legend swatch


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_committed_figures_regenerate_byte_for_byte(tmp_path, folder):
    copy = _copy(folder, tmp_path / folder.name)
    write_report(copy)
    made = sorted(p.name for p in (copy / "figures").glob("*.svg"))
    committed = sorted(p.name for p in (folder / "figures").glob("*.svg"))
    assert made and made == committed, (folder.name, made, committed)
    for name in made:
        assert (copy / "figures" / name).read_bytes() == (folder / "figures" / name).read_bytes()
    links = re.findall(r"\]\(figures/(table\d+\.svg)\)", (copy / "report.md").read_text())
    assert sorted(links) == made, "report.md should link every figure once"


def test_results_page_links_every_committed_figure():
    text = (DOCS / "results.md").read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+\.svg)\)", text)
    assert links, "docs/results.md shows no figure"
    for link in links:
        assert (DOCS / link).is_file(), f"docs/results.md links a missing image {link}"
    shown = {(DOCS / link).resolve() for link in links}
    for f in FOLDERS:
        if f.name in text:
            assert {p.resolve() for p in (f / "figures").glob("*.svg")} <= shown, f.name


def test_results_page_links_are_relative_to_the_page(monkeypatch):
    monkeypatch.chdir(ROOT)
    folder = SMOKE.relative_to(ROOT).as_posix()
    page = results_doc([folder], "python -m icl_tokens report X", doc="docs/results.md")
    assert "](results/smoke-gemma-3-270m/figures/table2.svg)" in page
    from_command = results_doc([folder], f"python -m icl_tokens report {folder} --doc "
                                         "docs/other/page.md")
    assert "](../results/smoke-gemma-3-270m/figures/table2.svg)" in from_command


def test_bars_svg_rejects_panels_without_a_value_per_row():
    with pytest.raises(ValueError, match="one value per row"):
        bars_svg("t", ["a", "b"], [BarPanel("sst2", [1.0])], series="m")
    with pytest.raises(ValueError, match="at least one row"):
        bars_svg("t", [], [], series="m")
    one = bars_svg("t", ["a"], [BarPanel("sst2", [float("nan")])], series="m")
    assert one == bars_svg("t", ["a"], [BarPanel("sst2", [float("nan")])], series="m")
    assert "<rect x" in one and "sst2, a" not in one  # NaN draws no bar


PROBE = """<script>
const first = s => document.querySelector(s).getBoundingClientRect().top;
for (const f of document.querySelectorAll('figure')) {
  const svg = f.querySelector('svg').getBoundingClientRect();
  const bars = [...f.querySelectorAll('rect')].filter(r => r.querySelector('title'))
    .filter(r => r.getBoundingClientRect().width > 0);
  f.setAttribute('data-size', svg.width + 'x' + svg.height);
  f.setAttribute('data-bars', String(bars.length));
}
document.body.setAttribute('data-order', first('figure') < first('table') ? 'figures-first'
                                                                          : 'tables-first');
</script>"""


def test_chromium_draws_the_figures_above_the_tables(smoke, tmp_path, chromium_dom):
    probe = tmp_path / "probe.html"
    probe.write_text((smoke / "report.html").read_text(encoding="utf-8")
                     .replace("</body>", PROBE + "</body>"), encoding="utf-8")
    html = chromium_dom(probe, extra=("--window-size=1200,900",))
    assert 'data-order="figures-first"' in html, "the probe did not run or tables lead"
    figures = re.findall(r'<figure id="(table\d+)" data-size="([\d.]+)x([\d.]+)" '
                         r'data-bars="(\d+)"', html)
    assert len(figures) == len(_page(smoke).figures) > 0
    for fid, w, h, bars in figures:
        assert float(w) > 300 and float(h) > 100, (fid, w, h)
        assert int(bars) > 0, f"{fid} has no drawn bar"
