"""Tables, verdicts and reports from a ``reproduce`` results folder — no model needed.

    res = load_results("results/reproduce-gemma-3-270m-smoke")
    tables = paper_tables(res)              # {2: PaperTable, 3: ..., 15: ...}
    print(tables[2].markdown())
    write_report("results/reproduce-gemma-3-270m-smoke")
    # tables/*.md, report.md/.html, patterns.csv, table15.csv

Every number is recomputed from ``tidy/<experiment>.csv`` (or ``.csv.gz``; the rows), so a
reader can check any cell by hand; the paper's numbers come from ``data/reference``. What the
rows conclude (ICL per task, three-state verdicts, tests) comes from
:mod:`~icl_tokens.analysis.findings`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .figures import (
    figure_markdown,
    has_figure,
    md_to_html,
    report_page,
    table_figures,
    write_figures,
)
from .folder import Results, display_model, load_results
from .markdown import markdown_table

__all__ = ["Results", "PaperTable", "load_results", "md_to_html", "paper_tables",
           "render_markdown", "write_report", "markdown_table", "METRICS"]

#: Metrics a table is shown in: column → label.
METRICS = {"correct": "acc_gen", "label_correct": "acc_label",
           "calibrated_correct": "calibrated acc_label", "margin": "gold log-prob margin"}
_TITLES = {
    2: "Table 2: representation level, Zero-shot + X",
    3: "Table 3: representation level, Standard ICL − X",
    4: "Table 4: token level (tokens removed from demonstrations and test example)",
    5: "Table 5: template parts, label words visible (with ':' / w/o ':')",
    6: "Table 6: template parts, label words hidden (with ':' / w/o ':')",
    8: "Table 8: lexical meaning (no masking)",
    9: "Table 9: repetition (no masking)",
    10: "Table 10: structural cues (one-shot Randomfixed)",
    14: "Table 14: representation level, NLTK stopwords (Appendix B)",
    15: "Table 15: pairwise comparisons (crossed estimate and the paper's t-tests over seeds)",
}


@dataclass
class PaperTable:
    """One table in the paper's layout: our cells (mean ± std over seeds) beside the paper's."""

    number: int
    title: str
    rows: list[tuple[str, str]]          # (key in the data, label shown)
    tasks: list[str]
    ours: dict[str, pd.DataFrame]        # metric → long table (condition, task, mean, std, n)
    paper: pd.DataFrame | None           # label keys × tasks
    text: str | None = None              # Table 15: preformatted
    notes: list[str] = field(default_factory=list)
    ci: pd.DataFrame | None = None       # acc_gen intervals: task, condition, lo, hi

    def ci_markdown(self) -> str:
        """95% intervals of acc_gen on the crossed seeds x examples design."""
        if self.ci is None:
            return ""
        ci = self.ci.set_index(["condition", "task"])
        body = [[label] + [f"[{ci.loc[(k, t), 'lo']:.1f}, {ci.loc[(k, t), 'hi']:.1f}]"
                           if (k, t) in ci.index else "" for t in self.tasks]
                for k, label in self.rows]
        return markdown_table(["setting"] + self.tasks, body)

    def grid(self, metric: str = "correct") -> pd.DataFrame:
        """Our means as row keys × tasks (+ ``avg``)."""
        long = self.ours[metric]
        g = long.pivot_table(index="condition", columns="task", values="mean", sort=False)
        g = g.reindex(index=[k for k, _ in self.rows], columns=self.tasks)
        g["avg"] = g.mean(axis=1, skipna=False)
        return g

    def markdown(self, metric: str = "correct", paper: bool = True) -> str:
        if self.text is not None:
            return self.text
        long = self.ours[metric].set_index(["condition", "task"])
        header = ["setting"]
        for t in self.tasks:
            header.append(f"{t}")
            if paper and self.paper is not None:
                header.append(f"{t} (paper)")
        header += ["avg"] + (["avg (paper)"] if paper and self.paper is not None else [])
        body = []
        grid = self.grid(metric)
        for key, label in self.rows:
            cells = [label]
            for t in self.tasks:
                if (key, t) in long.index:
                    r = long.loc[(key, t)]
                    cells.append(_fmt(r["mean"], r["std"], metric, int(r["n_seeds"])))
                else:
                    cells.append("")
                if paper and self.paper is not None:
                    cells.append(_num(self.paper.loc[key, t]) if key in self.paper.index
                                 and t in self.paper.columns else "")
            cells.append(_num(grid.loc[key, "avg"], metric))
            if paper and self.paper is not None:
                cells.append(_num(self.paper.loc[key, self.tasks].mean(skipna=False))
                             if key in self.paper.index else "")
            body.append(cells)
        return markdown_table(header, body)


def _num(v: Any, metric: str = "correct") -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    return f"{float(v):.2f}" if metric == "margin" else f"{float(v):.1f}"


def _fmt(mean: float, std: float, metric: str, n_seeds: int = 2) -> str:
    """``mean ± std`` over seeds; one seed has no spread to show."""
    d = 2 if metric == "margin" else 1
    return f"{mean:.{d}f}" if n_seeds < 2 else f"{mean:.{d}f} ± {std:.{d}f}"


def _long(df: pd.DataFrame, metric: str, key: str = "condition") -> pd.DataFrame:
    """Mean ± std over seeds of a metric per (key, task)."""
    scale = 1.0 if metric == "margin" else 100.0
    per_seed = (df.groupby([key, "task", "seed"], sort=False)[metric].mean() * scale
                ).reset_index()
    g = per_seed.groupby([key, "task"], sort=False)[metric]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1).fillna(0.0),
                        "n_seeds": g.size()}).reset_index()
    return out.rename(columns={key: "condition"})


def _metrics(df: pd.DataFrame) -> list[str]:
    return [m for m in METRICS if m in df.columns]


def _rep_table(n: int, df: pd.DataFrame, res: Results, conds: Sequence[str]) -> PaperTable:
    from ..ablation.conditions import CONDITION_LABELS
    from ..reference import paper_condition_table, paper_values

    tasks = _tasks(df, res)
    if n == 14:
        pv = paper_values(14, res.paper_model)
        paper = pv[pv.condition != ""].pivot_table(index="condition", columns="task",
                                                   values="value", sort=False)
    else:
        paper = paper_condition_table(res.paper_model)
    sub = df[df.condition.isin(conds)]
    ours = {m: _long(sub, m) for m in _metrics(sub)}
    title = _TITLES[n] + (f", {_bos_scope(res)}" if n == 14 else "")
    return PaperTable(n, title, [(c, CONDITION_LABELS.get(c, c)) for c in conds], tasks,
                      ours, paper.reindex(columns=tasks), ci=_ci(sub))


def _bos_scope(res: Results) -> str:
    """What Table 14's BOS setting did for this model."""
    bos = res.provenance.get("model_info", {}).get("prepends_bos")
    if bos is False:
        return ("the model has no BOS, so hiding it changes nothing: Zero-shot, Standard ICL "
                "and +TEMP equal Tables 2/3 by construction")
    if bos is None:
        return "BOS hidden in the masked conditions (whether the model has BOS is not recorded)"
    return "BOS hidden in the masked conditions (the paper's accident); Standard ICL unmasked"


def _ci(sub: pd.DataFrame) -> pd.DataFrame:
    from .stats import cell_intervals

    return cell_intervals(sub, "correct", by=("task", "condition"))


def _tasks(df: pd.DataFrame, res: Results) -> list[str]:
    have = set(df["task"])
    return [t for t in res.provenance["tasks"] if t in have]


def _cells_table(n: int, df: pd.DataFrame, res: Results, cells: dict[str, tuple[int, str, str]],
                 labels: dict[str, str]) -> PaperTable:
    from ..reference import paper_cells_table

    tasks = _tasks(df, res)
    keys = [c for c in labels if c in set(df.condition)]
    sub = df[df.condition.isin(keys)]
    paper = paper_cells_table({k: v for k, v in cells.items() if k in keys}, res.paper_model,
                              tasks) if cells else None
    return PaperTable(n, _TITLES[n], [(k, labels[k]) for k in keys], tasks,
                      {m: _long(sub, m) for m in _metrics(sub)}, paper, ci=_ci(sub))


def _variant_table(n: int, df: pd.DataFrame, res: Results) -> PaperTable:
    from ..experiments.variants import SETTINGS
    from .variant_tables import paper_variant_table, setting_accuracy

    tasks = _tasks(df, res)
    ours = {}
    for m in [m for m in ("correct", "label_correct") if m in df.columns]:
        sa = setting_accuracy(df, n, m)  # per (task, setting, template number, seed), in %
        per_seed = (sa.groupby(["setting", "task", "seed"], sort=False)["accuracy"].mean()
                    ).reset_index()
        g = per_seed.groupby(["setting", "task"], sort=False)["accuracy"]
        ours[m] = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1).fillna(0.0),
                                "n_seeds": g.size()}).reset_index().rename(
                                    columns={"setting": "condition"})
    labels = [s.label for s in SETTINGS if s.table == n]
    paper = paper_variant_table(n, res.paper_model, tasks)
    numbers = res.provenance["budget"].get("numbers", [1, 2, 3, 4, 5])
    return PaperTable(n, _TITLES[n], [(s, s) for s in labels], tasks, ours, paper,
                      notes=[f"mean over the random-string templates {numbers} and the seeds "
                             "(std over seeds of the template mean)"])


def paper_tables(res: Results) -> dict[int, PaperTable]:
    """Every table the folder has data for, in the paper's layout."""
    from ..ablation.conditions import TABLE2_CONDITIONS
    from ..experiments.template_parts import PAPER_CELLS
    from ..experiments.token_level import TABLE4_ROWS
    from .findings import baseline_markdown, table15_frame
    from .table15 import format_table15

    out: dict[int, PaperTable] = {}
    tables = res.provenance["tables"]
    t2 = [c for c in TABLE2_CONDITIONS if c != "none"]
    t3 = ["icl", "icl-content", "icl-stopword", "icl-template"]
    rep = res.tidy.get("representation")
    if rep is not None:
        if 2 in tables:
            out[2] = _rep_table(2, rep, res, t2)
        if 3 in tables:
            out[3] = _rep_table(3, rep, res, t3)
        if 15 in tables:
            text = (format_table15(table15_frame(res)) + "\n\n**Baseline tests (paper-spec "
                    "E3)**: each −X against Standard ICL, each +X against zero-shot.\n\n"
                    + baseline_markdown(res))
            out[15] = PaperTable(15, _TITLES[15], [], _tasks(rep, res), {}, None, text=text)
    if "nltk" in res.tidy and 14 in tables:
        out[14] = _rep_table(14, res.tidy["nltk"], res, t2 + t3)
    if "token" in res.tidy and 4 in tables:
        labels = {"icl": "Standard ICL", "icl-content": "− CONT", "icl-stopword": "− STOP",
                  "icl-template": "− TEMP", "icl-template+last": "− TEMP + last ':'"}
        out[4] = _cells_table(4, res.tidy["token"], res,
                              {k: (4, v, "") for k, v in TABLE4_ROWS.items()}, labels)
    if "parts" in res.tidy:
        for n in (5, 6):
            if n in tables:
                cells = {k: v for k, v in PAPER_CELLS.items() if v[0] == n}
                labels = {k: f"{v[1]} ({v[2].replace('_', ' ')})" for k, v in cells.items()}
                out[n] = _cells_table(n, res.tidy["parts"], res, cells, labels)
    if "variants" in res.tidy:
        for n in (8, 9, 10):
            if n in tables:
                out[n] = _variant_table(n, res.tidy["variants"], res)
    return out


def _avg(t: PaperTable, key: str, metric: str = "correct", paper: bool = False) -> float:
    if paper:
        return float(t.paper.loc[key, t.tasks].mean()) if t.paper is not None \
            and key in t.paper.index else float("nan")
    g = t.grid(metric)
    return float(g.loc[key, "avg"]) if key in g.index else float("nan")


def render_markdown(res: Results, tables: dict[int, PaperTable] | None = None,
                    verdict_rows: pd.DataFrame | None = None, figures: str = "figures") -> str:
    """The whole report as markdown: the figures (images under the link ``figures``, which
    :func:`write_report` writes), whether the model does ICL, the verdicts with intervals, every
    table in every metric, prompts over the sliding window, provenance."""
    from .findings import (
        detectable_markdown,
        folder_verdicts,
        icl_table,
        verdict_markdown,
        window_markdown,
    )

    t = tables if tables is not None else paper_tables(res)
    v = verdict_rows if verdict_rows is not None else folder_verdicts(res)
    b = res.provenance["budget"]
    out = [f"# Reproduction: {display_model(res)}, budget {b['name']}", "",
           f"Command: `{res.provenance['command']}`", "",
           f"{res.note()}. Paper numbers: {res.paper_model} (arXiv 2401.11323 v2). Cells: mean "
           "± std over seeds (%; margins in nats). Intervals and tests treat seeds and examples "
           "as crossed random factors (docs/statistics.md).", "",
           *figure_markdown({n: tab.title for n, tab in t.items() if has_figure(tab)}, figures),
           "## Does the model do in-context learning?", "",
           "Standard ICL against zero-shot (paired) and against chance, per task. A task where it "
           "does not is uninformative for knockouts: the verdicts below average only the tasks "
           "where it does.", "", icl_table(res), "",
           "## Which of the paper's patterns hold (paper-spec §8)", "",
           "Each verdict comes from the interval of the paired effect, averaged over the "
           "informative tasks: **consistent** (the 95% interval lies on the paper's side; "
           "'about equal' claims: the 90% interval lies within the stated margin, TOST), "
           "**inconsistent** (it lies on the other side), **inconclusive** (neither).", "",
           verdict_markdown(v), ""]
    mde = detectable_markdown(res)
    if mde:
        out += [mde, ""]
    for n, tab in t.items():
        out += [f"## {tab.title}", ""]
        if tab.text is not None:
            out += [tab.markdown(), ""]
            continue
        for m in METRICS:
            if m in tab.ours:
                out += [f"**{METRICS[m]}**" + (" beside the paper's acc_gen" if m == "correct"
                                               else ""), "",
                        tab.markdown(m, paper=(m == "correct")), ""]
        if tab.ci is not None:
            out += ["**95% intervals of acc_gen** (crossed seeds x examples; 0/1 cells: Wilson "
                    "from the effective sample size)", "", tab.ci_markdown(), ""]
        out += [f"_{x}_" for x in tab.notes] + ([""] if tab.notes else [])
    out += ["## Prompt length and the sliding window", "", window_markdown(res), ""]
    out += ["## Provenance", "", "```json",
            json.dumps({k: res.provenance[k] for k in ("versions", "model_info", "budget")},
                       indent=2, sort_keys=True), "```", ""]
    return "\n".join(out)


def _csv(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False, float_format="%.6g", lineterminator="\n")
    return path


def write_report(folder: str | Path) -> dict[str, Path]:
    """Write ``tables/table<N>.md``, ``report.md``, a self-contained ``report.html``, and the
    machine-readable ``patterns.csv`` (model, pattern, metric, effect, ci_low, ci_high, verdict,
    ...) and ``table15.csv``; ``figures/table<N>.svg`` (one per table with an accuracy), which
    report.md links and report.html inlines above the tables."""
    from .findings import folder_verdicts, table15_frame

    res = load_results(folder)
    t = paper_tables(res)
    v = folder_verdicts(res)
    folder = Path(folder)
    (folder / "tables").mkdir(parents=True, exist_ok=True)
    paths = {}
    for n, tab in t.items():
        body = [f"# {tab.title}", "", res.note(), ""]
        for m in METRICS:
            if tab.text is not None:
                body += [tab.markdown(), ""]
                break
            if m in tab.ours:
                body += [f"**{METRICS[m]}**", "", tab.markdown(m, paper=(m == "correct")), ""]
        if tab.ci is not None:
            body += ["**95% intervals of acc_gen**", "", tab.ci_markdown(), ""]
        p = folder / "tables" / f"table{n}.md"
        p.write_text("\n".join(body), encoding="utf-8")
        paths[f"table{n}"] = p
    md = render_markdown(res, t, v)
    (folder / "report.md").write_text(md, encoding="utf-8")
    paths["patterns.csv"] = _csv(v, folder / "patterns.csv")
    t15 = table15_frame(res)
    if t15 is not None:
        paths["table15.csv"] = _csv(t15, folder / "table15.csv")
    svgs = table_figures(t, res.model, res.paper_model)
    paths.update(write_figures(folder, svgs))
    page = report_page(md, svgs, f"Reproduction: {display_model(res)}, budget "
                       f"{res.provenance['budget']['name']}")
    (folder / "report.html").write_text(page, encoding="utf-8")
    paths["report.md"] = folder / "report.md"
    paths["report.html"] = folder / "report.html"
    return paths
