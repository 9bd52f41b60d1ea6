"""Paper-layout tables from tidy result rows: accuracy per seed, mean ± std, Δ columns, checks.

Every function reads the tidy rows an experiment writes (one row per model, task, seed, example
and condition), so every experiment gets the same tables. Printed tables name the data they ran
on (:func:`format_accuracy_table`'s ``data_note``): the StaICC SST-2 fallback, for one, is not
the paper's evaluation set.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..ablation.conditions import CONDITION_LABELS, CONDITIONS, PAPER_ORDER, TABLE2_CONDITIONS
from ..categorize import BITS

__all__ = [
    "accuracy_by_seed",
    "accuracy_table",
    "format_accuracy_table",
    "paper_layout",
    "layout_text",
    "LAYOUT_FOOTNOTE",
    "NO_VALUE",
    "task_means",
    "pattern_checks",
    "hidden_counts",
    "validity_table",
]


def accuracy_by_seed(df: pd.DataFrame, metric: str = "correct") -> pd.DataFrame:
    """Accuracy (%) per (model, task, condition, seed)."""
    g = df.groupby(["model", "task", "condition", "seed"], sort=False)[metric]
    out = g.mean().mul(100).rename("accuracy").reset_index()
    out["n"] = g.size().values
    return out


def accuracy_table(df: pd.DataFrame, metric: str = "correct") -> pd.DataFrame:
    """Mean and std (over seeds) of accuracy per (model, task, condition), paper row order."""
    per_seed = accuracy_by_seed(df, metric)
    g = per_seed.groupby(["model", "task", "condition"], sort=False)["accuracy"]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1).fillna(0.0),
                        "n_seeds": g.size()}).reset_index()
    order = {c: i for i, c in enumerate(PAPER_ORDER)}
    task_order = {t: i for i, t in enumerate(dict.fromkeys(df["task"]))}  # as first seen
    out["_o"] = out["condition"].map(lambda c: order.get(c, len(order)))
    out["_t"] = out["task"].map(task_order)
    return (out.sort_values(["model", "_t", "_o"], kind="stable").drop(columns=["_o", "_t"])
            .reset_index(drop=True))


def format_accuracy_table(
    table: pd.DataFrame, paper: pd.DataFrame | None = None, paper_label: str = "paper",
    data_note: str | None = None, order: Sequence[str] | None = None,
) -> str:
    """Paper-layout text table: rows = conditions, columns = tasks, cells ``mean ± std``.

    A cell of one seed has no spread over seeds: it shows the accuracy alone, and its task's
    header says ``1 seed`` (never ``± 0.0``).

    Args:
        table: From :func:`accuracy_table` (one model).
        paper: Optional conditions × tasks reference values shown in extra columns.
        paper_label: Column label of the reference values.
        data_note: What the rows ran on (data source, model, seeds); printed above the table.
            Required in spirit whenever ``paper`` is given: the paper's numbers come from other
            models and, for the StaICC fallback, another evaluation set.
        order: Row order (default: the paper's, then any other condition alphabetically).
    """
    missing = {"task", "condition", "mean", "std", "n_seeds"} - set(table.columns)
    if missing:
        raise ValueError(f"the table lacks columns {sorted(missing)}; pass the output of "
                         "accuracy_table(rows).")
    tasks = list(dict.fromkeys(table["task"]))
    order = list(order) if order is not None else (
        list(PAPER_ORDER) + sorted(set(table["condition"]) - set(PAPER_ORDER)))
    conds = [c for c in order if c in set(table["condition"])]
    header = ["condition"] + [f"{t} ({_spread_label(table[table.task == t])})" for t in tasks]
    if paper is not None:
        header += [f"{t} ({paper_label})" for t in tasks if t in paper.columns]
    lines = [header]
    for c in conds:
        cells = [CONDITION_LABELS.get(c, c)]
        for t in tasks:
            r = table[(table.task == t) & (table.condition == c)]
            cells.append("" if r.empty else _mean_cell(r.iloc[0]))
        if paper is not None:
            for t in tasks:
                if t in paper.columns:
                    v = paper.loc[c, t] if c in paper.index else np.nan
                    cells.append("" if pd.isna(v) else f"{v:5.1f}")
        lines.append(cells)
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(header))]
    fmt = lambda row: "  ".join(str(x).ljust(w) for x, w in zip(row, widths))  # noqa: E731
    rule = "  ".join("-" * w for w in widths)
    caption = [f"data: {data_note}"] if data_note else []
    return "\n".join(caption + [fmt(lines[0]), rule] + [fmt(r) for r in lines[1:]])


def _mean_cell(row: pd.Series) -> str:
    """``mean ± std`` over seeds; the mean alone for one seed (it has no spread)."""
    if int(row["n_seeds"]) < 2:
        return f"{row['mean']:5.1f}"
    return f"{row['mean']:5.1f} ± {row['std']:4.1f}"


def _spread_label(rows: pd.DataFrame) -> str:
    """The header of one task's columns: ``ours``, or ``ours, 1 seed`` when its cells have no
    spread (``ours, a cell without ± is 1 seed`` when only some do)."""
    n = rows["n_seeds"].astype(int)
    if (n < 2).all():
        return "ours, 1 seed"
    if (n < 2).any():
        return "ours; a cell without ± is 1 seed"
    return "ours"


#: What :func:`layout_text` shows where :func:`paper_layout` has no number.
NO_VALUE = "–"
#: The footnote of a :func:`layout_text` table.
LAYOUT_FOOTNOTE = (f"{NO_VALUE} no value: the Δ of a baseline row (Zero-shot and Standard ICL, "
                   "which the other rows are measured from), or a number the paper does not "
                   "give (and any avg or Δ over it).")


def layout_text(layout: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """:func:`paper_layout` for reading: each number with ``digits`` decimals and
    :data:`NO_VALUE` where there is none (never ``NaN``); print :data:`LAYOUT_FOOTNOTE` under
    it."""
    if digits < 0:
        raise ValueError(f"digits must be >= 0, got {digits}.")
    return layout.apply(lambda col: col.map(
        lambda v: NO_VALUE if pd.isna(v) else f"{v:.{digits}f}"))


def paper_layout(table: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Conditions × (task, ours/paper) with ``avg`` and ``Δ`` columns, as in Tables 2 and 3.

    Args:
        table: From :func:`accuracy_table` (one model).
        paper: Conditions × tasks reference values
            (:func:`icl_tokens.reference.paper_condition_table`), or None.

    ``avg`` is the mean over the tasks present (the paper averages all six); ``Δ`` is the
    difference of ``avg`` from Zero-shot for the Table 2 rows and from Standard ICL otherwise.
    A cell without a value (the baselines' own ``Δ``, a number the paper does not give) is NaN;
    :func:`layout_text` shows it as :data:`NO_VALUE` for reading.
    """
    tasks = list(dict.fromkeys(table["task"]))
    ours = table.pivot(index="condition", columns="task", values="mean")
    conds = [c for c in PAPER_ORDER if c in ours.index]
    sources = {"ours": ours.reindex(index=conds, columns=tasks)}
    if paper is not None:
        sources["paper"] = paper.reindex(index=conds, columns=tasks)
    cols: dict[tuple[str, str], pd.Series] = {}
    for t in tasks:
        for who, src in sources.items():
            cols[(t, who)] = src[t]
    avgs = {who: src.mean(axis=1, skipna=False) for who, src in sources.items()}
    for who, avg in avgs.items():
        cols[("avg", who)] = avg
    for who, avg in avgs.items():
        delta = {}
        for c in conds:
            base = "zero_shot" if c in TABLE2_CONDITIONS else "icl"
            delta[c] = (np.nan if c in ("zero_shot", "icl") or base not in avg.index
                        else avg[c] - avg[base])
        cols[("Δ", who)] = pd.Series(delta)
    out = pd.DataFrame(cols)
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    out.index = [f"{CONDITION_LABELS[c]}  [{c}]" for c in conds]
    return out


def task_means(table: pd.DataFrame) -> pd.Series:
    """Mean accuracy over tasks per condition, from :func:`accuracy_table`."""
    return table.pivot(index="condition", columns="task", values="mean").mean(axis=1)


def pattern_checks(avg: pd.Series) -> dict[str, str]:
    """Paper-spec §8 targets 1-2 on point values (e.g. the paper's printed task means, which
    have no rows to test): 'holds' / 'does not hold', from the one declaration of each pattern
    (:data:`icl_tokens.experiments.representation.PATTERNS`). Our rows get a three-state
    verdict with an interval instead: :func:`icl_tokens.analysis.verdicts.verdicts`.

    Args:
        avg: Accuracy per condition (e.g. :func:`task_means`).
    """
    from ..experiments.representation import PATTERNS

    def mean_of(_: str, cell: str) -> float | None:
        return float(avg[cell]) if cell in avg.index else None

    return {p.title: p.point_check(mean_of) for p in PATTERNS}


def hidden_counts(tp: Any, conditions: Sequence[str] | None = None, **kw: Any) -> pd.DataFrame:
    """Per condition: how many demonstration tokens the test example cannot see, by kind.

    Args:
        tp: A categorized prompt (or item).
        conditions: Masked condition names (default: every masked condition in paper order).
        **kw: Passed to :func:`~icl_tokens.ablation.conditions.knockout_for` (``hide_bos``, ...).

    Returns:
        Rows = conditions; columns ``hidden demo tokens``, ``of which template``,
        ``stopword``, ``content``, ``hidden newlines`` (template + stopword tokens).
    """
    from ..ablation.conditions import condition_knockout

    conds = [c for c in (conditions or PAPER_ORDER) if c in CONDITIONS]
    codes = np.asarray(tp.codes)
    has = {k: (codes & BITS[k]) != 0 for k in ("template", "stopword", "content")}
    rows = []
    for c in conds:
        key = condition_knockout(tp, c, **kw).key
        rows.append({
            "condition": c,
            "hidden demo tokens": int(key.sum()),
            "of which template": int((key & has["template"]).sum()),
            "stopword": int((key & has["stopword"]).sum()),
            "content": int((key & has["content"]).sum()),
            "hidden newlines": int((key & has["template"] & has["stopword"]).sum()),
        })
    return pd.DataFrame(rows).set_index("condition")


def validity_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per condition × task: the share of valid generations (the generated word is a label
    word) and the gap ``acc_label − acc_gen`` (points), which invalid generations explain."""
    tasks = list(dict.fromkeys(results["task"]))
    order = [c for c in PAPER_ORDER if c in set(results["condition"])]
    valid = (results.groupby(["task", "condition"], sort=False)["valid"].mean().mul(100)
             .unstack("task").reindex(index=order, columns=tasks))
    gen = accuracy_table(results).pivot(index="condition", columns="task", values="mean")
    lab = accuracy_table(results, "label_correct").pivot(index="condition", columns="task",
                                                         values="mean")
    gap = (lab - gen).reindex(index=order, columns=tasks)
    return pd.concat({"valid generations (%)": valid, "acc_label − acc_gen": gap}, axis=1)
