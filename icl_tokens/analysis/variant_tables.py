"""Tables 8-10 from template-variant rows: per-setting rows and accuracies, the paper's
layout, each template's accuracy, and the point checks of patterns 6-7 on printed means.

A setting's accuracy is the mean over its templates and seeds (paper-spec §10 #24);
:func:`per_template_table` keeps every template's own accuracy, since the printed templates
repeat strings (paper-spec §10 #19).
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from ..experiments.variants import PATTERNS, SETTINGS, TABLES, Cell
from ..prompts.variants import parse_template_spec
from ..tasks import PAPER_TASKS

__all__ = ["setting_rows", "setting_accuracy", "variant_table", "per_template_table",
           "paper_variant_table", "variant_pattern_checks", "complete"]


def _parse_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows with ``variant`` and ``number`` (of their template spec) and ``one_shot`` (of
    their cell)."""
    out = df.copy()
    specs = {s: parse_template_spec(s) for s in out["template"].astype(str).unique()}
    out["variant"] = out["template"].astype(str).map(lambda s: specs[s][0])
    out["number"] = out["template"].astype(str).map(lambda s: specs[s][1])
    cells = {c: Cell.from_name(c) for c in out["condition"].astype(str).unique()}
    out["one_shot"] = out["condition"].astype(str).map(lambda c: cells[c].one_shot)
    return out


def setting_rows(df: pd.DataFrame, metric: str = "correct") -> pd.DataFrame:
    """One row per (model, task, seed, example, setting) of every table present: ``condition``
    is ``"<table>:<setting>"`` and ``metric`` the mean over the setting's templates (a 0/1
    column becomes a share). The cells of :data:`PATTERNS`."""
    rows = _parse_rows(df)
    parts = []
    for s in SETTINGS:
        sel = rows[(rows["variant"] == s.variant) & (rows["base_condition"] == s.condition)
                   & (rows["one_shot"] == s.one_shot)]
        if sel.empty:
            continue
        g = sel.groupby(["model", "task", "seed", "example_id"], sort=False)[metric].mean()
        part = g.reset_index()
        part.insert(4, "condition", f"{s.table}:{s.label}")
        parts.append(part)
    if not parts:
        raise ValueError("no rows of Tables 8-10 in these results.")
    return pd.concat(parts, ignore_index=True)


def setting_accuracy(df: pd.DataFrame, table: int, metric: str = "correct") -> pd.DataFrame:
    """Accuracy (%) per (model, task, setting, template number, seed) of one table.

    Returns columns ``model, task, setting, number, seed, accuracy, n`` (``setting`` as the paper
    prints it); settings with no rows are absent.
    """
    rows = _parse_rows(df)
    parts = []
    for s in (s for s in SETTINGS if s.table == table):
        sel = rows[(rows["variant"] == s.variant) & (rows["base_condition"] == s.condition)
                   & (rows["one_shot"] == s.one_shot)]
        if sel.empty:
            continue
        g = sel.groupby(["model", "task", "number", "seed"], sort=False)[metric]
        acc = g.mean().mul(100).rename("accuracy").reset_index()
        acc["n"] = g.size().values
        acc.insert(2, "setting", s.label)
        parts.append(acc)
    if not parts:
        raise ValueError(f"no rows of Table {table} in these results; run it with tables "
                         f"including {table}.")
    return pd.concat(parts, ignore_index=True)


def variant_table(df: pd.DataFrame, table: int, metric: str = "correct") -> pd.DataFrame:
    """Mean and std of accuracy over templates × seeds per (model, task, setting).

    The layout of :func:`icl_tokens.analysis.tables.accuracy_table` (the setting is in
    ``condition``), so :func:`~icl_tokens.analysis.tables.format_accuracy_table` prints it.
    """
    acc = setting_accuracy(df, table, metric)
    g = acc.groupby(["model", "task", "setting"], sort=False)["accuracy"]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1).fillna(0.0),
                        "n_seeds": g.size()}).reset_index()
    return out.rename(columns={"setting": "condition"})


def per_template_table(df: pd.DataFrame, table: int, metric: str = "correct") -> pd.DataFrame:
    """Accuracy (%) per template: rows (setting, template number), columns tasks; the mean over
    seeds (one model)."""
    acc = setting_accuracy(df, table, metric)
    wide = (acc.groupby(["setting", "number", "task"], sort=False)["accuracy"].mean()
            .unstack("task"))
    order = [s.label for s in SETTINGS if s.table == table]
    wide = wide.reindex(sorted(wide.index, key=lambda i: (order.index(i[0]), i[1])))
    return wide.reindex(columns=list(dict.fromkeys(acc["task"])))


def paper_variant_table(table: int, model: str = "Llama-7B",
                        tasks: Sequence[str] | None = None) -> pd.DataFrame:
    """The paper's Table 8, 9 or 10 for one model: settings × tasks."""
    from ..reference import paper_values

    if table not in TABLES:
        raise ValueError(f"Table {table} is not a variant table; choose from {list(TABLES)}.")
    vals = paper_values(table, model)
    wide = vals.pivot(index="setting", columns="task", values="value")
    order = [s.label for s in SETTINGS if s.table == table]
    return wide.reindex(index=order, columns=list(tasks or PAPER_TASKS))


def _avg(means: pd.DataFrame | pd.Series, label: str) -> float:
    return float(means.loc[label].mean()) if label in means.index else float("nan")


def variant_pattern_checks(tables: dict[int, pd.DataFrame]) -> dict[str, str]:
    """Paper-spec §8 targets 6 and 7 on point values (e.g. the paper's printed tables, which
    have no rows to test), from the one declaration of each (:data:`PATTERNS`); our rows get a
    three-state verdict with an interval: :func:`icl_tokens.analysis.verdicts.verdicts`.

    Args:
        tables: Table number → settings × tasks means (ours: the ``mean`` of
            :func:`variant_table` pivoted; the paper's: :func:`paper_variant_table`). Each check
            compares the averages over the tasks present; a check whose table is absent is left
            out.
    """
    def mean_of(_: str, cell: str) -> float | None:
        table, label = cell.split(":", 1)
        t = tables.get(int(table))
        return _avg(t, label) if t is not None and label in t.index else None

    out = {p.title: p.point_check(mean_of) for p in PATTERNS}
    return {k: v for k, v in out.items() if v}


def complete(df: pd.DataFrame, table: int) -> bool:
    """Whether the rows hold every setting of ``table``."""
    try:
        have = set(setting_accuracy(df, table)["setting"])
    except ValueError:
        return False
    return have == {s.label for s in SETTINGS if s.table == table}
