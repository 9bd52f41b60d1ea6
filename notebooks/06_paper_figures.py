# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · The paper's tables and figures, from saved results
#
# Notebooks 01–05 run experiments. This one runs **no model**: it reads a results folder that
# `python -m icl_tokens reproduce` wrote (tidy rows, provenance) and rebuilds every table of the
# paper (Bai et al., arXiv 2401.11323: Tables 2–6, 8–10, 14, 15) in the paper's layout beside
# the paper's numbers, with intervals, the statistics, the continuous metrics and the verdicts
# on the patterns of paper-spec §8. Every number is recomputed here from the rows.
#
# The default folder, `docs/results/smoke-gemma-3-270m`, is committed: the project's own
# command made it (`python -m icl_tokens reproduce --tables all --budget smoke`, Gemma-3-270M,
# the CBU files of the six tasks), at the smallest budget (1 seed × 2 test examples per task),
# so the notebook runs anywhere, and its numbers mean nothing: point `RESULTS` at a folder of
# your own (`--budget small` or `paper`) for real ones.

# %% tags=["parameters"]
import os

SMOKE = os.environ.get("ICL_TOKENS_SMOKE", "0") == "1"
RESULTS = None  # a results folder; None: the committed smoke folder
PAPER_MODEL = None  # None: the folder's (Llama-7B unless reproduce was told otherwise)

# %% [markdown]
# ## Setup (ignore)

# %%
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from IPython.display import Markdown, display

from icl_tokens.analysis.findings import folder_verdicts, icl_table, verdict_markdown
from icl_tokens.analysis.metrics import paired_metric_tests
from icl_tokens.analysis.report import load_results, paper_tables
from icl_tokens.analysis.stats import cell_intervals, pairwise_ttests
from icl_tokens.analysis.verdicts import all_patterns
from icl_tokens.plotting import use_embedded_renderer

use_embedded_renderer()  # figures survive HTML export (plotly.js embedded once)

pd.set_option("display.width", 160)
pd.set_option("display.precision", 3)


def committed_folder() -> Path:
    for root in (Path.cwd(), *Path.cwd().parents):
        p = root / "docs" / "results" / "smoke-gemma-3-270m"
        if p.is_dir():
            return p
    raise FileNotFoundError("no committed results folder found; set RESULTS to a folder made "
                            "by `python -m icl_tokens reproduce`.")


res = load_results(Path(RESULTS) if RESULTS else committed_folder())
if PAPER_MODEL:
    res.provenance["paper_model"] = PAPER_MODEL
tables = paper_tables(res)
print(res.note())
print("command:", res.provenance["command"])
print("tables:", sorted(tables), "| experiments:", list(res.tidy))

# %% [markdown]
# ## Seeds and examples are crossed
#
# Every seed's prompts are scored on the same test examples, so the rows of a cell form a
# seeds × examples grid, not independent draws: a hard example is hard under every seed, and a
# helpful set of demonstrations helps on every example. A bootstrap or a test over the rows as if
# they were independent ignores both shared effects and gives intervals that are too narrow and
# p-values that are too small. Every interval and test below uses the crossed random-effects
# model of `icl_tokens.analysis.inference` instead: the variance of a mean or of a paired
# difference is `s²_seed / S + s²_example / E + s²_resid / (S·E)`, estimated from the ANOVA mean
# squares, with a t interval on Satterthwaite's degrees of freedom. With few seeds the seed term
# has few degrees of freedom and the intervals are wide; with one seed (the smoke folder) the
# seed variance cannot be estimated at all. `docs/statistics.md` gives the method and its
# checks.
#
# ## Does the model do in-context learning?
#
# Standard ICL against zero-shot (paired) and against chance, per task and metric. A task where
# the model does not learn from its demonstrations is uninformative for knockouts, so the
# verdicts below average only the tasks where it does.

# %%
display(Markdown(icl_table(res)))

# %% [markdown]
# ## Which of the paper's patterns hold
#
# Paper-spec §8 lists the qualitative targets (the absolute numbers of a 270M model will not be
# the paper's); each is declared once beside its experiment. `folder_verdicts` decides each one
# from the rows, per metric: the paired effect of every claim with its 95% interval, averaged
# over the informative tasks. **Consistent**: the interval lies on the paper's side ("about
# equal" claims: the 90% interval lies within the stated margin); **inconsistent**: it lies on
# the other side; **inconclusive**: neither, so these rows cannot tell. On the smoke folder
# every verdict is inconclusive.

# %%
verdict_rows = folder_verdicts(res)
display(Markdown(verdict_markdown(verdict_rows)))

# %% [markdown]
# The paper's printed task means (over this folder's tasks) have no rows behind them, so they
# get no interval: the same declared patterns read on them as **point values, with no test**.
# "n/a" marks a cell that no table of the paper prints (Table 4's −TEMP, given as 0 % in its
# text, and the restored `:`) or a table this folder lacks.

# %%
EXPERIMENT_TABLES = {"representation": (2, 3), "token": (4,), "parts": (5, 6),
                     "variants": (8, 9, 10)}


def paper_mean(experiment: str, cell: str) -> float | None:
    """The paper's printed value of one cell, averaged over this folder's tasks (or None)."""
    numbers = EXPERIMENT_TABLES[experiment]
    if experiment == "variants":  # cells are "<table>:<setting>"
        n, cell = cell.split(":", 1)
        numbers = (int(n),)
    for n in numbers:
        t = tables.get(n)
        if t is not None and t.paper is not None and cell in t.paper.index:
            v = t.paper.loc[cell, t.tasks].mean(skipna=False)
            return None if pd.isna(v) else float(v)
    return None


paper_points = pd.Series({p.title: p.point_check(paper_mean) or "n/a" for p in all_patterns()},
                         name=f"{res.paper_model}: point values, no test").to_frame()
with pd.option_context("display.max_colwidth", 120):
    display(paper_points)

# %% [markdown]
# ## Tables 2 and 3: hiding representations from the test example
#
# Cells: mean ± std over seeds (acc_gen, %), the paper's value beside. Then label-restricted
# accuracy (which label the model ranks first), calibrated accuracy (the label bias of
# content-free inputs removed, Zhao et al. 2021) and the gold label's log-probability margin
# over the best other label — the continuous metric that still moves on a small model whose
# accuracy does not.

# %%
def show(n: int) -> None:
    if n not in tables:
        print(f"Table {n}: not in this folder")
        return
    t = tables[n]
    display(Markdown(f"### {t.title}\n\n" + t.markdown()))
    for m in ("label_correct", "calibrated_correct", "margin"):
        if m in t.ours:
            display(Markdown(f"**{m}**\n\n" + t.markdown(m, paper=False)))
    if t.ci is not None:
        display(Markdown("**95% intervals of acc_gen**\n\n" + t.ci_markdown()))


def bars(n: int) -> go.Figure | None:
    if n not in tables or tables[n].text is not None:
        return None
    t = tables[n]
    labels = [lab for _, lab in t.rows]
    ours = t.grid().loc[[k for k, _ in t.rows], "avg"].tolist()
    fig = go.Figure(go.Bar(name=f"{res.model} (ours)", x=labels, y=ours))
    if t.paper is not None:
        fig.add_bar(name=res.paper_model, x=labels,
                    y=[t.paper.loc[k, t.tasks].mean() if k in t.paper.index else None
                       for k, _ in t.rows])
    fig.update_layout(title=t.title, barmode="group", yaxis_title="acc_gen (%), task mean",
                      height=360)
    return fig


for n in (2, 3):
    show(n)
    fig = bars(n)
    if fig is not None:
        fig.show()

# %% [markdown]
# ## Table 15: are the differences significant?
#
# The crossed estimate of each difference (with its interval and p) beside the paper's t-tests
# over seeds (paper-spec E3) and its printed p-values; a t-test over seeds needs at least three
# seeds, so on the smoke folder those cells stay empty.

# %%
show(15)
tests = pairwise_ttests(res.tidy["representation"]) if "representation" in res.tidy else None
if tests is not None:
    display(tests.head(12))

# %% [markdown]
# The same comparisons on the continuous margin (the gold label's log-probability lead, nats),
# with the same crossed intervals. The margin can move where accuracy is flat, but its interval
# is as wide as the seeds and the examples make it: an interval that includes 0 is no evidence
# of an effect.

# %%
if "representation" in res.tidy:
    pm = paired_metric_tests(res.tidy["representation"])
    display(pm[["task", "comparison", "diff", "lo", "hi", "p", "n_seeds", "n_examples",
                "seeds_note"]])

# %% [markdown]
# ## Table 4: removing tokens; Tables 5 and 6: template parts

# %%
for n in (4, 5, 6):
    show(n)
    fig = bars(n)
    if fig is not None:
        fig.show()

# %% [markdown]
# ## Tables 8–10: lexical meaning, repetition, structural cues
#
# Each setting is the mean over the five random-string templates of paper-spec §6.1 (and the
# seeds); notebook 05 shows every template's own accuracy.

# %%
for n in (8, 9, 10):
    show(n)
    fig = bars(n)
    if fig is not None:
        fig.show()

# %% [markdown]
# ## Table 14: the NLTK stopword list and its BOS accident

# %%
show(14)

# %% [markdown]
# ## Intervals for every cell, from the rows
#
# The crossed estimate of every (task, condition) cell of every experiment (acc_gen, %), with
# its 95% interval: a Wilson interval from the design's effective sample size, so a cell whose
# rows are all 0 or all 1 still gets an honest width from its distinct examples.

# %%
cis = pd.concat([cell_intervals(df, "correct").assign(experiment=exp)
                 for exp, df in res.tidy.items()], ignore_index=True)
display(cis.head(20))
print(f"{len(cis)} cells")

# %% [markdown]
# ## Provenance

# %%
prov = res.provenance
print({k: prov[k] for k in ("model", "scoring", "dtype", "tables", "tasks")})
print("budget:", prov["budget"])
print("versions:", prov["versions"])
print({t: d["source"] for t, d in prov["data"].items()})
