"""Figures of a results folder's paper tables, as deterministic SVG, and the HTML report page.

    svgs = table_figures(tables, model="gemma-3-270m", paper_model="Llama-7B")  # {2: "<svg ..."}
    write_figures(folder, svgs)                 # figures/table2.svg, ...
    html = report_page(markdown, svgs, title)   # figures inlined, provenance folded

One figure per table with our accuracy: a panel per task, a bar per setting (the mean over seeds)
with its 95% interval on the crossed seeds x examples design (:func:`~.stats.cell_intervals`)
beside the paper's number.
"""

from __future__ import annotations

import re
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from ..plotting.base import METRIC_WORDS
from ..plotting.svg import BarPanel, bars_svg

__all__ = ["figure_markdown", "has_figure", "md_to_html", "report_page", "table_figure",
           "table_figures", "write_figures"]

#: A :class:`~icl_tokens.analysis.report.PaperTable` (not imported: report imports this module).
PaperTable = Any

#: Figure metric: column → words on the axis.
_AXIS = {m: METRIC_WORDS[m] for m in ("correct", "label_correct")}
_WHISKER = "mean over seeds; whisker: 95% interval, seeds x examples crossed"


def _metric(tab: PaperTable) -> str | None:
    return next((m for m in _AXIS if m in tab.ours), None)


def _panel(tab: PaperTable, metric: str, task: str) -> BarPanel:
    long = tab.ours[metric].set_index(["condition", "task"])
    keys = [k for k, _ in tab.rows]
    values = [float(long.loc[(k, task), "mean"]) if (k, task) in long.index else np.nan
              for k in keys]
    lo = hi = None
    if tab.ci is not None and metric == "correct":
        ci = tab.ci.set_index(["condition", "task"])
        lo = [float(ci.loc[(k, task), "lo"]) if (k, task) in ci.index else np.nan for k in keys]
        hi = [float(ci.loc[(k, task), "hi"]) if (k, task) in ci.index else np.nan for k in keys]
    ref = None
    if tab.paper is not None and task in tab.paper.columns:
        ref = [float(tab.paper.loc[k, task]) if k in tab.paper.index else np.nan for k in keys]
    return BarPanel(task, values, lo, hi, ref)


def has_figure(tab: PaperTable) -> bool:
    """Whether the table gets a figure (it has rows, tasks and an accuracy; Table 15 has not)."""
    return tab.text is None and _metric(tab) is not None and bool(tab.rows) and bool(tab.tasks)


def table_figure(tab: PaperTable, model: str, paper_model: str) -> str | None:
    """The SVG of one table (``None`` for a table without an accuracy, e.g. Table 15)."""
    metric = _metric(tab)
    if not has_figure(tab) or metric is None:
        return None
    panels = [_panel(tab, metric, t) for t in tab.tasks]
    has_ci = any(p.lo is not None for p in panels)
    has_paper = any(p.reference is not None for p in panels)
    whisker = _WHISKER if has_ci else "mean over seeds; no interval for this table"
    return bars_svg(tab.title, [label for _, label in tab.rows], panels, series=model,
                    reference=f"paper: {paper_model}" + ("" if metric == "correct" else
                                                         " (acc_gen)") if has_paper else None,
                    whisker=whisker, axis=_AXIS[metric])


def table_figures(tables: dict[int, PaperTable], model: str, paper_model: str
                  ) -> dict[int, str]:
    """Every table's SVG, keyed by table number (tables without one are left out)."""
    out = {}
    for n, tab in tables.items():
        svg = table_figure(tab, model, paper_model)
        if svg is not None:
            out[n] = svg
    return out


def write_figures(folder: str | Path, svgs: dict[int, str]) -> dict[str, Path]:
    """Write ``figures/table<N>.svg`` under ``folder``; stale ``table*.svg`` files are removed."""
    out_dir = Path(folder) / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    keep = {f"table{n}.svg" for n in svgs}
    for old in out_dir.glob("table*.svg"):
        if old.name not in keep:
            old.unlink()
    paths = {}
    for n, svg in svgs.items():
        p = out_dir / f"table{n}.svg"
        p.write_text(svg, encoding="utf-8")
        paths[f"figures/table{n}.svg"] = p
    return paths


def figure_markdown(titles: dict[int, str], prefix: str) -> list[str]:
    """Markdown image lines for the figures (``prefix``: the folder of the SVGs, as a link)."""
    if not titles:
        return []
    out = ["## Figures", "",
           "Accuracy per task beside the paper's; whiskers are 95% intervals (seeds x examples "
           "crossed). The tables below hold every number.", ""]
    for n, title in titles.items():
        out += [f"![{title}]({prefix.rstrip('/')}/table{n}.svg)", ""]
    return out


def md_to_html(md: str) -> str:
    """Markdown (CommonMark + tables) as HTML, with markdown-it-py; raw HTML is escaped."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(md)


_CSS = ("body{font-family:sans-serif;max-width:1150px;margin:auto;padding:0 12px}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:2px 6px}figure{margin:12px 0;overflow-x:auto}details{margin:24px 0}"
        "summary{font-weight:bold;cursor:pointer}figure svg{max-width:100%;height:auto}")


def report_page(md: str, svgs: dict[int, str], title: str) -> str:
    """``report.md`` as one self-contained HTML page: the markdown rendered, each figure image
    replaced by its inline SVG, and the provenance section folded into ``<details>``."""
    body, sep, provenance = md.partition("\n## Provenance\n")
    html = md_to_html(body)

    def inline(m: re.Match[str]) -> str:
        n = int(m.group(1))
        if n not in svgs:
            raise ValueError(f"report.md links figures/table{n}.svg but no figure was made; "
                             "rewrite the report with write_report(folder).")
        return f'<figure id="table{n}">{svgs[n]}</figure>'

    html = re.sub(r'<p><img src="[^"]*table(\d+)\.svg" alt="[^"]*" /></p>', inline, html)
    if sep:
        html += ("<details id='provenance'><summary>Provenance (versions, model, budget)"
                 "</summary>" + md_to_html(provenance) + "</details>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + escape(title)
            + f"</title><style>{_CSS}</style></head><body>" + html + "</body></html>\n")
