"""Tables 8-10 as text for the ``variants`` command: the paper's layout beside the paper's
numbers, each template's accuracy, and the paper-spec §8 verdicts (patterns 6-7) with their
intervals for our rows, the paper's printed means beside."""

from __future__ import annotations

import pandas as pd

from ..experiments.variants import PATTERNS, SETTINGS, TABLES
from ..tasks import PAPER_TASKS
from .tables import format_accuracy_table
from .variant_tables import (
    complete,
    paper_variant_table,
    per_template_table,
    variant_pattern_checks,
    variant_table,
)
from .verdicts import pattern_summary, verdicts

__all__ = ["format_variant_report"]


def format_variant_report(df: pd.DataFrame, *, paper_model: str = "Llama-7B",
                          metric: str = "correct", per_template: bool = True) -> str:
    """Tables 8-10 (those present) in the paper's layout beside the paper's numbers, each
    template's accuracy, and the §8 pattern checks 6-7 for ours and the paper's model."""
    what = {"correct": "acc_gen", "label_correct": "acc_label"}.get(metric, metric)
    note = df.attrs.get("data")
    lines: list[str] = []
    paper: dict[int, pd.DataFrame] = {}
    for table in TABLES:
        if not complete(df, table):
            continue
        t = variant_table(df, table, metric)
        tasks = [x for x in dict.fromkeys(t["task"]) if x in PAPER_TASKS]
        paper[table] = paper_variant_table(table, paper_model, tasks or None)
        order = [s.label for s in SETTINGS if s.table == table]
        caveat = "" if metric == "correct" else "; the paper's numbers are free generation"
        lines += [f"Table {table} ({what}, %; mean ± std over templates × seeds{caveat}):",
                  format_accuracy_table(t, paper[table] if tasks else None,
                                        paper_label=f"paper {paper_model}", data_note=note,
                                        order=order), ""]
        if per_template:
            lines += [f"Table {table}, each template ({what}, %, mean over seeds):",
                      per_template_table(df, table, metric).round(1).to_string(), ""]
    lines.append(f"paper-spec §8 verdicts, ours ({what}, averaged over the tasks run; effect and "
                 "95% interval on the crossed seeds x examples design):")
    ours_v = pattern_summary(verdicts({"variants": df}, PATTERNS, metric=metric))
    lines += [f"  {r['name']}: {r['verdict']} ({r['evidence']})" for _, r in ours_v.iterrows()]
    lines.append(f"the same patterns on the paper's {paper_model} (same tasks; printed means, "
                 "no rows to test):")
    lines += [f"  {k}: {v}" for k, v in variant_pattern_checks(paper).items()]
    return "\n".join(lines)
