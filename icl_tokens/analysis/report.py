"""Tables, pattern checks and reports from a ``reproduce`` results folder — no model needed.

    res = load_results("results/reproduce-gemma-3-270m-smoke")
    tables = paper_tables(res)              # {2: PaperTable, 3: ..., 15: ...}
    print(tables[2].markdown())
    print("\\n".join(pattern_lines(res)))
    write_report("results/reproduce-gemma-3-270m-smoke")   # tables/*.md, report.md/.html

Every number is recomputed from ``tidy/<experiment>.csv`` (the rows), so a reader can check any
cell by hand; the paper's numbers come from ``data/reference``.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["Results", "PaperTable", "load_results", "paper_tables", "pattern_lines",
           "render_markdown", "write_report", "markdown_table", "results_doc", "METRICS"]

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
    14: "Table 14: representation level, NLTK stopwords, BOS hidden (Appendix B)",
    15: "Table 15: pairwise t-tests over seeds (p-values)",
}


@dataclass
class Results:
    """A results folder: its provenance and each experiment's tidy rows."""

    folder: Path
    provenance: dict[str, Any]
    tidy: dict[str, pd.DataFrame]

    @property
    def model(self) -> str:
        return str(self.provenance["model"])

    @property
    def paper_model(self) -> str:
        return str(self.provenance.get("paper_model", "Llama-7B"))

    def note(self) -> str:
        b = self.provenance["budget"]
        srcs = sorted({d["source"] for d in self.provenance["data"].values()})
        ex = "test example" if b["n_test"] == 1 else "test examples"
        return (f"model {self.model}; budget {b['name']} (seeds {b['seeds']}, {b['n_test']} "
                f"{ex} per seed, k = {b['k']}); data source {', '.join(srcs)}")


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
        """95% hierarchical bootstrap intervals of acc_gen (seeds, then examples)."""
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
            return f"```\n{self.text}\n```"
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
                    cells.append(_fmt(r["mean"], r["std"], metric))
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


def _fmt(mean: float, std: float, metric: str) -> str:
    d = 2 if metric == "margin" else 1
    return f"{mean:.{d}f} ± {std:.{d}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table (``|`` in cells escaped)."""
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def load_results(folder: str | Path) -> Results:
    """Read ``provenance.json`` and ``tidy/*.csv`` of a results folder."""
    folder = Path(folder)
    prov_path = folder / "provenance.json"
    if not prov_path.is_file():
        raise FileNotFoundError(f"{folder} is not a results folder (no provenance.json); make "
                                "one with `python -m icl_tokens reproduce`.")
    prov = json.loads(prov_path.read_text(encoding="utf-8"))
    tidy = {}
    for exp in prov["experiments"]:
        p = folder / "tidy" / f"{exp}.csv"
        if not p.is_file():
            raise FileNotFoundError(f"{p} is missing; rerun the reproduce command (it resumes).")
        tidy[exp] = pd.read_csv(p, dtype={"example_id": str, "gold": str, "prediction": str,
                                          "label_prediction": str, "continuation": str},
                                keep_default_na=False)
    return Results(folder, prov, tidy)


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
    return PaperTable(n, _TITLES[n], [(c, CONDITION_LABELS.get(c, c)) for c in conds], tasks,
                      ours, paper.reindex(columns=tasks), ci=_ci(sub))


def _ci(sub: pd.DataFrame) -> pd.DataFrame:
    from .stats import bootstrap_ci

    return bootstrap_ci(sub, "correct", n_boot=1000, by=("task", "condition"))


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
    from ..experiments.variants import SETTINGS, paper_variant_table, setting_accuracy

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
    from ..analysis.stats import format_table15, pairwise_ttests, table15_layout
    from ..experiments.template_parts import PAPER_CELLS
    from ..experiments.token_level import TABLE4_ROWS

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
            tests = pairwise_ttests(rep)
            text = format_table15(table15_layout(tests, res.paper_model))
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


def _check(ok: bool | None, text: str) -> str:
    return f"{'holds' if ok else 'does not hold'} ({text})"


def pattern_lines(res: Results, tables: dict[int, PaperTable] | None = None,
                  metric: str = "correct") -> list[str]:
    """Paper-spec §8 targets 1-7, each 'holds' / 'does not hold' on our rows (averaged over
    the tasks run), with the numbers behind it."""
    t = tables if tables is not None else paper_tables(res)
    lines = []
    if 2 in t:
        a = {c: _avg(t[2], c, metric) for c in ("+template", "+stopword", "+content")}
        lines.append("1. +TEMP > +STOP > +CONT (Table 2): " + _check(
            a["+template"] > a["+stopword"] > a["+content"],
            f"{a['+template']:.1f} / {a['+stopword']:.1f} / {a['+content']:.1f}"))
    if 3 in t:
        d = {c: _avg(t[3], c, metric) - _avg(t[3], "icl", metric)
             for c in ("icl-content", "icl-stopword", "icl-template")}
        lines.append("2a. −TEMP is the largest drop (Table 3): " + _check(
            d["icl-template"] < min(d["icl-content"], d["icl-stopword"]),
            f"Δ {d['icl-template']:+.1f} vs {d['icl-content']:+.1f} / {d['icl-stopword']:+.1f}"))
        lines.append("2b. −CONT and −STOP within about 2 points of Standard ICL (Table 3): "
                     + _check(max(abs(d["icl-content"]), abs(d["icl-stopword"])) <= 2.5,
                              f"Δ {d['icl-content']:+.1f} / {d['icl-stopword']:+.1f}"))
    if 4 in t and 3 in t:
        tok = _avg(t[4], "icl-content", metric) - _avg(t[4], "icl", metric)
        rep = _avg(t[3], "icl-content", metric) - _avg(t[3], "icl", metric)
        lines.append("3. removing CONT tokens costs more than hiding CONT (Tables 4 vs 3): "
                     + _check(tok < rep, f"Δ token {tok:+.1f} vs representation {rep:+.1f}"))
    if 4 in t:
        mt, last = _avg(t[4], "icl-template", metric), _avg(t[4], "icl-template+last", metric)
        icl = _avg(t[4], "icl", metric)
        lines.append("4a. token-level −TEMP about 0 (Table 4): " + _check(mt <= 5, f"{mt:.1f}"))
        lines.append("4b. restoring the last ':' brings accuracy back (Table 4): " + _check(
            last >= icl - 15, f"{last:.1f} vs Standard ICL {icl:.1f}"))
    if 5 in t:
        temp, nocolon = _avg(t[5], "temp+label", metric), _avg(t[5], "temp-colon+label", metric)
        tout, tin = _avg(t[5], "t_out+label", metric), _avg(t[5], "t_in+label", metric)
        lines.append("5a. hiding ':' lowers TEMP (Table 5): " + _check(
            nocolon < temp, f"{nocolon:.1f} vs {temp:.1f}"))
        lines.append("5b. keeping T_out beats keeping T_in (Table 5, row −T_in vs −T_out): "
                     + _check(tout > tin, f"{tout:.1f} vs {tin:.1f}"))
    from ..experiments.variants import variant_pattern_checks

    means = {n: t[n].grid(metric).drop(columns="avg") for n in (8, 9, 10) if n in t}
    lines += [f"{k}: {v}" for k, v in variant_pattern_checks(means).items()]
    return lines


def render_markdown(res: Results, tables: dict[int, PaperTable] | None = None) -> str:
    """The whole report as markdown: every table in every metric, patterns, provenance."""
    t = tables if tables is not None else paper_tables(res)
    b = res.provenance["budget"]
    out = [f"# Reproduction: {res.model}, budget {b['name']}", "",
           f"Command: `{res.provenance['command']}`", "",
           f"{res.note()}. Paper numbers: {res.paper_model} (arXiv 2401.11323 v2). Cells: mean "
           "± std over seeds (%; margins in nats).", "",
           "## Which of the paper's patterns hold (paper-spec §8, acc_gen, task means)", ""]
    out += [f"- {line}" for line in pattern_lines(res, t)] + [""]
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
            out += ["**95% intervals of acc_gen** (hierarchical bootstrap: seeds, then examples "
                    "within seed)", "", tab.ci_markdown(), ""]
        out += [f"_{x}_" for x in tab.notes] + ([""] if tab.notes else [])
    out += ["## Provenance", "", "```json",
            json.dumps({k: res.provenance[k] for k in ("versions", "model_info", "budget")},
                       indent=2, sort_keys=True), "```", ""]
    return "\n".join(out)


def _figures(t: dict[int, PaperTable]) -> list[str]:
    """One bar chart per table: our task-mean acc_gen beside the paper's (deterministic ids)."""
    import plotly.graph_objects as go

    divs = []
    for n, tab in t.items():
        if tab.text is not None or "correct" not in tab.ours:
            continue
        labels = [lab for _, lab in tab.rows]
        fig = go.Figure()
        fig.add_bar(name="ours", x=labels, y=[_avg(tab, k) for k, _ in tab.rows])
        if tab.paper is not None:
            fig.add_bar(name="paper", x=labels, y=[_avg(tab, k, paper=True) for k, _ in tab.rows])
        fig.update_layout(title=tab.title, yaxis_title="acc_gen (%), mean over tasks",
                          barmode="group", height=380)
        divs.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"table{n}"))
    return divs


def _md_to_html(md: str) -> str:
    """The small markdown subset :func:`render_markdown` writes, as HTML."""
    out, in_code, table = [], False, []

    def flush_table() -> None:
        if not table:
            return
        rows = [r.strip().strip("|").split(" | ") for r in table if not r.startswith("|---")]
        head, body = rows[0], rows[1:]
        out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head)
                   + "</tr></thead><tbody>" + "".join(
                       "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                       for r in body) + "</tbody></table>")
        table.clear()

    for line in md.splitlines():
        if line.startswith("```"):
            flush_table()
            out.append("</pre>" if in_code else "<pre>")
            in_code = not in_code
            continue
        if in_code:
            out.append(html.escape(line))
            continue
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.startswith("- "):
            out.append(f"<li>{html.escape(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    flush_table()
    return "\n".join(out)


def write_report(folder: str | Path) -> dict[str, Path]:
    """Write ``tables/table<N>.md``, ``report.md`` and a self-contained ``report.html``."""
    from plotly.offline import get_plotlyjs

    res = load_results(folder)
    t = paper_tables(res)
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
    md = render_markdown(res, t)
    (folder / "report.md").write_text(md, encoding="utf-8")
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>icl_tokens reproduction"
            "</title><style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
            "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
            "padding:2px 6px}</style><script type='text/javascript'>" + get_plotlyjs()
            + "</script></head><body>" + _md_to_html(md) + "<h2>Figures</h2>"
            + "\n".join(_figures(t)) + "</body></html>\n")
    (folder / "report.html").write_text(page, encoding="utf-8")
    paths["report.md"] = folder / "report.md"
    paths["report.html"] = folder / "report.html"
    return paths


_WHY = (
    "Why a pattern may not reproduce here: the models are 135M and 270M parameters against the "
    "paper's 3B-30B (the paper itself finds the effects grow with size, e.g. lexical meaning "
    "matters little for its 3B model); the weights are 4-bit GGUF quantisations dequantised to "
    "float32; the data are the CBU files (paper-spec §3; DBPedia is a 64-row pool and a 256-row "
    "dev subsample), and the prompts, the fixed test subset and the scoring rule follow the "
    "project's decisions where the paper is silent (paper-spec §10); and the budgets are small, "
    "so most cells' intervals span tens of points and a 'holds' or 'does not hold' can flip with "
    "one example. Greedy generation (acc_gen) also penalises a small model that ranks the right "
    "label first but writes something else: compare acc_label, calibrated accuracy and the "
    "margin.")


def results_doc(folders: Sequence[str | Path], command: str, note: str | None = None) -> str:
    """``docs/results.md``: which of the paper's patterns hold for each folder's model, why they
    may not, then each folder's tables, with the command, budget and wall time that produced
    them (``timing.json``)."""
    results = [load_results(f) for f in folders]
    tables = [paper_tables(r) for r in results]
    parts = ["# Measured results", "",
             f"Regenerate this page with `{command}` (it reads the folders below; each folder is "
             "made, and resumed, by the `reproduce` command shown in its section).", ""]
    if note:
        parts += [note, ""]
    parts += ["## Which of the paper's patterns hold (paper-spec §8, acc_gen, task means)", ""]
    lines = [dict(_split_pattern(ln) for ln in pattern_lines(r, t))
             for r, t in zip(results, tables)]
    keys = list(dict.fromkeys(k for ls in lines for k in ls))
    rows = [[k] + [ls.get(k, "not run") for ls in lines] for k in keys]
    header = ["pattern"] + [f"{r.model} ({r.provenance['budget']['name']})" for r in results]
    parts += [markdown_table(header, rows), "", _WHY, ""]
    for f, res, t in zip(folders, results, tables):
        body = render_markdown(res, t).split("\n", 1)[1]
        parts += [f"## {res.model}, budget {res.provenance['budget']['name']}", "",
                  _wall_line(Path(f) / "timing.json"), body.replace("\n## ", "\n### "), ""]
    return "\n".join(parts)


def _split_pattern(line: str) -> tuple[str, str]:
    """A :func:`pattern_lines` line → (pattern, verdict); the pattern may itself hold ': '."""
    m = re.match(r"^(.*?): ((?:holds|does not hold)\b.*)$", line, flags=re.S)
    if m is None:
        raise ValueError(f"pattern line without a verdict: {line!r}")
    return m.group(1), m.group(2)


def _wall_line(timing: Path) -> str:
    """The sentence on the wall time a folder's ``timing.json`` recorded."""
    if not timing.is_file():
        return ("Wall time: not recorded (the folder has no `timing.json`; it is written by the "
                "`reproduce` run on the machine that made the folder and is not committed).")
    t = json.loads(timing.read_text())
    n = int(t.get("invocations", 1))
    return (f"Wall time recorded by the runs that made it: {t['total'] / 60:.0f} min on the "
            f"machine that made it (the sum over the {n} invocation{'s' * (n != 1)} that made "
            "and resumed it, from `timing.json`).")
