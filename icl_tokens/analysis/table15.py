"""Table 15 of the paper (Appendix C): its six pairwise comparisons, our tests of them beside
the paper's p-values (:func:`table15_layout`), and the markdown the report shows
(:func:`format_table15`). The tests themselves come from
:func:`~icl_tokens.analysis.stats.pairwise_ttests`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TABLE15_PAIRS", "table15_layout", "fmt_p", "format_table15"]

#: Table 15's comparisons in the paper's row order: (label, condition a, condition b).
#: temp = +template, cont = +content, stop = +stopword, temp_cont = icl-stopword,
#: cont_stop = icl-template, temp_stop = icl-content (paper-spec E1).
TABLE15_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("temp ↔ cont", "+template", "+content"),
    ("temp ↔ stop", "+template", "+stopword"),
    ("cont ↔ stop", "+content", "+stopword"),
    ("temp_cont ↔ cont_stop", "icl-stopword", "icl-template"),
    ("temp_stop ↔ cont_stop", "icl-content", "icl-template"),
    ("temp_cont ↔ temp_stop", "icl-stopword", "icl-content"),
)


def table15_layout(tests: pd.DataFrame, paper_model: str | None = "Llama-7B",
                   alpha: float = 0.05) -> pd.DataFrame:
    """Our Table 15 tests beside the paper's p-values, one row per (model, task, comparison).

    Args:
        tests: From :func:`pairwise_ttests` (Table 15's pairs).
        paper_model: The paper's model to put beside ours (``None``: every paper model, one row
            each).
        alpha: Significance level of the ``significant`` and ``agree`` columns.

    Returns:
        Our columns (``diff_crossed, lo, hi, p_crossed``: the design-fitting test; ``p,
        p_holm, p_welch, note``: the paper's seed-level tests), ``paper_model, paper_p,
        paper_significant``, ``significant`` (ours, on ``p_crossed``) and ``agree`` (both
        significant or both not; missing where either p is), in the paper's row order. Tasks
        the paper does not have get no paper values.
    """
    from ..reference import paper_values

    paper = paper_values(15, paper_model)
    paper = paper.rename(columns={"model": "paper_model", "value": "paper_p"})
    paper["paper_significant"] = ~paper["not_significant"].astype(bool)
    keep = [c for c in ("model", "task", "comparison", "condition_a", "condition_b", "n_seeds",
                        "diff", "diff_crossed", "lo", "hi", "p_crossed", "p", "p_holm",
                        "p_welch", "note") if c in tests.columns]
    out = tests[keep].merge(
        paper[["paper_model", "comparison", "task", "paper_p", "paper_significant"]],
        on=["comparison", "task"], how="left")
    key = "p_crossed" if "p_crossed" in out.columns else "p"
    out["significant"] = (out[key] < alpha).where(out[key].notna())
    known = out["paper_p"].notna() & out[key].notna()
    agree = pd.array([pd.NA] * len(out), dtype="boolean")
    agree[known.to_numpy()] = (out["significant"] == out["paper_significant"])[known].to_numpy(
        bool)
    out["agree"] = agree
    order = {c[0]: i for i, c in enumerate(TABLE15_PAIRS)}
    out["_o"] = out["comparison"].map(lambda c: order.get(c, len(order)))
    tasks = {t: i for i, t in enumerate(dict.fromkeys(out["task"]))}
    out["_t"] = out["task"].map(tasks)
    return (out.sort_values(["model", "_t", "_o"], kind="stable").drop(columns=["_o", "_t"])
            .reset_index(drop=True))


def fmt_p(p: Any) -> str:
    """A p-value for a table: 3 significant digits, ``<0.0001`` below that, ``n/a`` if
    missing."""
    if p is None or not isinstance(p, (int, float, np.floating)) or not math.isfinite(p):
        return "n/a"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def format_table15(layout: pd.DataFrame) -> str:
    """Markdown of :func:`table15_layout`: one row per (task, comparison) with the crossed
    effect and p (the test that fits the design), the paper's seed-level paired t-test with its
    Holm correction over the six comparisons, Welch's test, and the paper's p; n/a tests say
    why below the table."""
    lines = ["| task | comparison | effect a − b, points [95% CI] | p (crossed) | p (seed t) | "
             "p (seed t, Holm) | p (Welch) | p (paper) |", "|---|---|---|---|---|---|---|---|"]
    notes: dict[str, None] = {}
    for _, r in layout.iterrows():
        eff = r.get("diff_crossed", r.get("diff"))
        lo, hi = r.get("lo", np.nan), r.get("hi", np.nan)
        ci = f"{eff:+.1f} [{lo:+.1f}, {hi:+.1f}]" if math.isfinite(lo) else f"{eff:+.1f}"
        seed_p = fmt_p(r.get("p"))
        note = r.get("note") or ""
        if note:
            notes[note] = None
            seed_p = f"n/a ({list(notes).index(note) + 1})"
        paper = r.get("paper_p")
        lines.append(f"| {r['task']} | {r['comparison']} | {ci} | {fmt_p(r.get('p_crossed'))} | "
                     f"{seed_p} | {fmt_p(r.get('p_holm'))} | {fmt_p(r.get('p_welch'))} | "
                     f"{fmt_p(paper) if paper == paper and paper is not None else '—'} |")
    for i, n in enumerate(notes, 1):
        lines.append(f"\n({i}) {n}")
    return "\n".join(lines)
