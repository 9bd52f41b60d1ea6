"""What a results folder concludes, with intervals: does the model do ICL on each task, which
of the paper's patterns hold (three-state verdicts), the seed-level tests of Table 15 and E3,
which prompts outrun a sliding window, and what effect the budget could detect.

The report (:mod:`~icl_tokens.analysis.report`) and the results page
(:mod:`~icl_tokens.analysis.results_page`) print these sections; ``patterns.csv`` and
``table15.csv`` hold them machine-readably.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from .inference import ACCURACY_METRICS
from .markdown import markdown_table
from .stats import baseline_ttests, pairwise_ttests
from .table15 import fmt_p, table15_layout
from .verdicts import icl_status, pattern_summary, verdicts

if TYPE_CHECKING:
    from .folder import Results

__all__ = ["DECISION_METRICS", "informative_tasks", "icl_table", "folder_verdicts",
           "verdict_markdown", "table15_frame", "baseline_markdown", "window_markdown",
           "detectable_markdown"]

#: The metrics verdicts are decided on (those a folder has): acc_gen (the paper's), calibrated
#: accuracy, and the margin (nats).
DECISION_METRICS = {"correct": "acc_gen", "calibrated_correct": "calibrated acc_label",
                    "margin": "gold log-prob margin (nats)"}


def _metrics(res: "Results") -> list[str]:
    rep = res.tidy.get("representation")
    have = set(rep.columns) if rep is not None else set()
    return [m for m in DECISION_METRICS if m in have]


def informative_tasks(res: "Results", metric: str = "correct") -> dict[str, list[str]] | None:
    """Model → tasks where it does ICL on ``metric`` (None: no representation rows to tell)."""
    rep = res.tidy.get("representation")
    if rep is None or not {"icl", "zero_shot"} <= set(rep["condition"]):
        return None
    st = icl_status(rep, metric)
    return {m: list(g.loc[g.does_icl, "task"]) for m, g in st.groupby("model", sort=False)}


def _num(v: float, metric: str) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:+.2f}" if metric not in ACCURACY_METRICS else f"{v:.1f}"


def icl_table(res: "Results") -> str:
    """Per task and metric: ICL, zero-shot, chance, the gain with its interval and p, and
    whether the task is informative."""

    rep = res.tidy.get("representation")
    if rep is None or not {"icl", "zero_shot"} <= set(rep["condition"]):
        return "_No Standard ICL and zero-shot rows: whether the model does ICL is not tested._"
    body = []
    for m in _metrics(res):
        st = icl_status(rep, m)
        for _, r in st.iterrows():
            gain = (f"{r['gain']:+.1f} [{r['gain_low']:+.1f}, {r['gain_high']:+.1f}]"
                    if m in ACCURACY_METRICS else
                    f"{r['gain']:+.2f} [{r['gain_low']:+.2f}, {r['gain_high']:+.2f}]")
            icl = (f"{r['icl']:.1f} [{r['icl_low']:.1f}, {r['icl_high']:.1f}]"
                   if m in ACCURACY_METRICS else
                   f"{r['icl']:+.2f} [{r['icl_low']:+.2f}, {r['icl_high']:+.2f}]")
            body.append([r["task"], DECISION_METRICS[m], icl, _num(r["zero_shot"], m),
                         _num(r["chance"], m) if m in ACCURACY_METRICS else "—", gain,
                         fmt_p(r["gain_p"]),
                         "yes" if r["does_icl"] else "no: uninformative for knockouts"])
    return markdown_table(["task", "metric", "Standard ICL [95% CI]", "zero-shot", "chance",
                           "ICL − zero-shot [95% CI]", "p", "does ICL"], body)


def folder_verdicts(res: "Results") -> pd.DataFrame:
    """Every pattern's verdict per decision metric, averaged over the tasks where the model does
    ICL on that metric (all tasks when that cannot be tested)."""
    frames = {k: v for k, v in res.tidy.items() if k != "nltk"}
    parts = []
    for m in _metrics(res):
        parts.append(verdicts(frames, metric=m, tasks=informative_tasks(res, m)))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def verdict_markdown(v: pd.DataFrame) -> str:
    """The verdict table: pattern, verdict, effect [95% CI] of each claim, tasks averaged."""

    if v.empty:
        return "_No pattern could be decided from these rows._"
    out = []
    for metric, g in v.groupby("metric", sort=False):
        s = pattern_summary(g, digits=1 if metric in ACCURACY_METRICS else 2)
        body = [[r["name"], f"**{r['verdict']}**", r["evidence"], r["tasks"] or "none"]
                for _, r in s.iterrows()]
        out += [f"**{DECISION_METRICS.get(metric, metric)}**", "",
                markdown_table(["pattern", "verdict", "effect [95% CI] per claim",
                                "tasks averaged"], body), ""]
    return "\n".join(out).rstrip()


def table15_frame(res: "Results") -> pd.DataFrame | None:
    """Table 15 (acc_gen): the crossed estimate and the paper's seed-level tests, beside the
    paper's p-values (``table15.csv``)."""
    rep = res.tidy.get("representation")
    if rep is None:
        return None
    return table15_layout(pairwise_ttests(rep), res.paper_model)


def baseline_markdown(res: "Results") -> str:
    """Paper-spec E3's baseline tests: each −X against Standard ICL (paired) and each +X against
    zero-shot (one-sample), seed-level with Holm, beside the crossed estimate."""

    rep = res.tidy.get("representation")
    if rep is None:
        return ""
    b = baseline_ttests(rep)
    body = []
    for _, r in b.iterrows():
        body.append([r["task"], f"{r['condition']} − {r['baseline']}",
                     f"{r['diff_crossed']:+.1f} [{r['lo']:+.1f}, {r['hi']:+.1f}]",
                     fmt_p(r["p_crossed"]), r["test"],
                     fmt_p(r["p"]) if not r["note"] else r["note"], fmt_p(r["p_holm"])])
    return markdown_table(["task", "comparison", "effect, points [95% CI]", "p (crossed)",
                           "seed test", "p (seed)", "p (seed, Holm)"], body)


def window_markdown(res: "Results") -> str:
    """Per experiment and task: how many scored prompts are longer than the model's sliding
    window (their local-attention layers cannot see the earliest demonstrations)."""

    window = res.provenance.get("model_info", {}).get("sliding_window")
    if window is None:
        known = "sliding_window" in res.provenance.get("model_info", {})
        return ("The model has no sliding-window layers: every layer sees the whole prompt."
                if known else "_Sliding window: not recorded for this folder._")
    body = []
    for exp, df in res.tidy.items():
        if "n_tokens" not in df.columns:
            continue
        n = pd.to_numeric(df["n_tokens"], errors="coerce")
        long = df.assign(_long=n > window)
        for task, g in long.groupby("task", sort=False):
            k = g.loc[g._long, ["seed", "example_id"]].drop_duplicates()
            if len(k):
                cells = sorted(set(g.loc[g._long, "condition"].astype(str)))
                body.append([exp, task, f"{len(k)} of "
                             f"{len(g[['seed', 'example_id']].drop_duplicates())}",
                             int(n[g.index].max()), ", ".join(cells[:6])
                             + (" …" if len(cells) > 6 else "")])
    if not body:
        return f"No scored prompt is longer than the model's {window}-token sliding window."
    return (f"Prompts longer than the model's {window}-token sliding window (its local layers "
            "cannot see the earliest demonstration tokens, which confounds these cells):\n\n"
            + markdown_table(["experiment", "task", "(seed, example) prompts over the window",
                              "longest prompt (tokens)", "conditions"], body))


def detectable_markdown(res: "Results", power: float = 0.8) -> str:
    """The smallest paired acc_gen difference this folder's budget detects with 80% power, per
    pair and task, from its own variance components (the planner, ``power``)."""
    from .power import default_pairs, detectable_effect, pilot_components

    rep = res.tidy.get("representation")
    if rep is None:
        return ""
    pairs = default_pairs(list(dict.fromkeys(rep["condition"])))
    comps = pilot_components(rep, pairs, "correct")
    tasks = list(dict.fromkeys(comps["task"]))
    sizes = {t: (int(g["pilot_seeds"].iloc[0]), int(g["pilot_examples"].iloc[0]))
             for t, g in comps.groupby("task", sort=False)}
    body = []
    for (a, b), g in comps.groupby(["a", "b"], sort=False):
        cells = []
        for t in tasks:
            r = g[g.task == t]
            x = detectable_effect(r.iloc[0], *sizes[t], power) if len(r) else math.nan
            cells.append("not detectable" if math.isinf(x) else "" if math.isnan(x)
                         else f"{x:.1f}")
        body.append([f"{a} − {b}"] + cells)
    head = [f"{t} ({sizes[t][0]} x {sizes[t][1]})" for t in tasks]
    return ("Smallest paired acc_gen difference (points) this budget detects with "
            f"{power:.0%} power (two-sided, 5%), from its own variance components "
            "(`python -m icl_tokens power FOLDER --effect 5` plans a budget):\n\n"
            + markdown_table(["pair"] + head, body))

