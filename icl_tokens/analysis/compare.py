""""Is this difference real?": the paired effect of condition B over condition A.

One function for the CLI (``python -m icl_tokens compare``), the report, the notebooks and Python
users. Rows of the two conditions are matched on (model, task, seed, example); the effect
``B − A`` is estimated on the crossed design (:mod:`~icl_tokens.analysis.inference`), per
(model, task), and averaged over the tasks when there are several (the paper's task means).

    >>> import pandas as pd
    >>> rows = pd.DataFrame({"model": "m", "task": "t", "seed": [0, 0, 1, 1] * 2,
    ...                      "example_id": ["a", "b"] * 4,
    ...                      "condition": ["icl"] * 4 + ["icl-content"] * 4,
    ...                      "correct": [1, 1, 1, 0, 1, 0, 0, 0]})
    >>> c = compare(rows, "icl", "icl-content")
    >>> round(c.effect, 1), c.n_seeds, c.n_examples, c.seed_ttest.note[:4]
    (-50.0, 2, 2, 'n/a:')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .inference import (
    Estimate,
    SeedTest,
    column_of,
    contrast_effect,
    pair_weights,
    pool_tasks,
    scale_of,
)
from .table15 import fmt_p

__all__ = ["Comparison", "compare", "prepare_rows"]


@dataclass(frozen=True)
class Comparison:
    """The paired effect ``b − a`` with its interval, test and the seed-level t-test."""

    a: str
    b: str
    metric: str
    unit: str
    estimate: Estimate
    seed_ttest: SeedTest
    groups: list[dict[str, Any]] = field(default_factory=list)

    @property
    def effect(self) -> float:
        return self.estimate.mean

    @property
    def n_seeds(self) -> int:
        return self.estimate.n_seeds

    @property
    def n_examples(self) -> int:
        return self.estimate.n_examples

    def reading(self) -> str:
        """One line in words."""
        e = self.estimate
        if not (math.isfinite(e.ci_low) and math.isfinite(e.ci_high)):
            return f"no interval: {e.note or 'too few seeds or examples'}."
        span = f"[{e.ci_low:+.2f}, {e.ci_high:+.2f}] {self.unit}"
        if e.ci_low > 0 or e.ci_high < 0:
            way = "higher" if e.mean > 0 else "lower"
            return (f"{self.b} is {way} than {self.a} by {abs(e.mean):.2f} {self.unit}; the 95% "
                    f"interval {span} excludes 0.")
        return (f"no evidence of a difference: the 95% interval {span} includes 0 (it cannot "
                f"rule out effects up to {max(abs(e.ci_low), abs(e.ci_high)):.2f} {self.unit}).")

    def to_dict(self) -> dict[str, Any]:
        e = self.estimate
        nan = lambda x: None if isinstance(x, float) and not math.isfinite(x) else x  # noqa
        return {"a": self.a, "b": self.b, "metric": self.metric, "unit": self.unit,
                "effect": nan(e.mean), "ci_low": nan(e.ci_low), "ci_high": nan(e.ci_high),
                "p": nan(e.p), "se": nan(e.se), "df": nan(e.df), "n_seeds": e.n_seeds,
                "n_examples": e.n_examples, "method": e.method, "note": e.note,
                "components": e.components, "seed_ttest": self.seed_ttest.to_dict(),
                "reading": self.reading(), "groups": self.groups}

    def text(self) -> str:
        """The human-readable report of ``compare``."""
        e = self.estimate
        lines = [f"{self.b} − {self.a} ({self.metric}, {self.unit}):",
                 f"  effect {e.mean:+.2f}  95% CI [{e.ci_low:+.2f}, {e.ci_high:+.2f}]  "
                 f"p = {fmt_p(e.p)}",
                 f"  {e.n_seeds} seeds x {e.n_examples} distinct examples; method: {e.method}"]
        if e.note:
            lines.append(f"  note: {e.note}")
        lines.append(f"  seed-level paired t-test (the paper's): {self.seed_ttest.format_p()}")
        if len(self.groups) > 1:
            lines.append("  per task:")
            for g in self.groups:
                lines.append(f"    {g['model']}/{g['task']}: {g['effect']:+.2f} "
                             f"[{g['ci_low']:+.2f}, {g['ci_high']:+.2f}], p = {fmt_p(g['p'])}")
        lines.append(f"  reading: {self.reading()}")
        return "\n".join(lines)


def prepare_rows(rows: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, str]:
    """The rows with ``metric``'s column present (the margin is computed from the label scores
    when missing) → (rows, column)."""
    col = column_of(metric)
    if col not in rows.columns:
        if col in ("margin", "gold_prob", "gold_score"):
            from .metrics import add_continuous_metrics

            rows = add_continuous_metrics(rows)
        elif col == "calibrated_correct":
            raise ValueError("calibrated accuracy needs the content-free rows: use a reproduce "
                             "folder's tidy CSV (tidy/representation.csv), which has "
                             "calibrated_correct.")
        else:
            raise ValueError(f"the rows have no column {col!r}; --metric takes acc_gen, "
                             "acc_label, calibrated or margin.")
    return rows, col


def compare(rows: pd.DataFrame, a: str, b: str, metric: str = "acc_gen", *,
            level: float = 0.95) -> Comparison:
    """The paired effect ``b − a`` over the rows' (model, task) groups.

    Raises:
        ValueError: a condition is missing, or the two conditions share no (seed, example)
            rows; the message names which.
    """
    rows, col = prepare_rows(rows, metric)
    for c in (a, b):
        if c not in set(rows["condition"]):
            raise ValueError(f"condition {c!r} is not in the rows (they hold "
                             f"{sorted(map(str, set(rows['condition'])))}).")
        if "source" in rows.columns:
            files = sorted(set(rows.loc[rows.condition == c, "source"]))
            if len(files) > 1:
                raise ValueError(f"condition {c!r} is in several files ({', '.join(files)}), "
                                 "e.g. Standard ICL of several experiments; pass the one file "
                                 "that holds both conditions.")
    groups, ests, seeds = [], [], []
    for (model, task), g in rows.groupby(["model", "task"], sort=False):
        ga, gb = g[g.condition == a], g[g.condition == b]
        if ga.empty or gb.empty:
            continue
        common = set(zip(ga.seed, ga.example_id)) & set(zip(gb.seed, gb.example_id))
        if not common:
            raise ValueError(f"{model}/{task}: conditions {a!r} and {b!r} have no (seed, "
                             "example) rows in common; compare rows of the same run.")
        est, st = contrast_effect(g, pair_weights(b, a), col, level=level)
        ests.append(est)
        seeds.append(st)
        groups.append({"model": model, "task": task, "effect": est.mean,
                       "ci_low": est.ci_low, "ci_high": est.ci_high, "p": est.p,
                       "n_seeds": est.n_seeds, "n_examples": est.n_examples,
                       "seed_ttest": st.to_dict()})
    if not ests:
        raise ValueError(f"no (model, task) has rows of both {a!r} and {b!r}.")
    unit = "points" if scale_of(col) == 100.0 else "nats" if col == "margin" else col
    pooled = pool_tasks(ests, level=level)
    if len(seeds) == 1:
        st = seeds[0]
    else:
        st = SeedTest(math.nan, math.nan, max(s.n_seeds for s in seeds),
                      "n/a: several tasks; see each task's seed_ttest in groups")
    return Comparison(a, b, col, unit, pooled, st, groups)
