"""Three-state verdicts on the paper's patterns, and whether a model does ICL at all.

Each paper-spec §8 pattern is declared once, next to its experiment
(:class:`~icl_tokens.experiments.claims.Pattern`); this module decides it from tidy rows:

* every claim's contrast is estimated per task on the crossed design
  (:func:`~icl_tokens.analysis.inference.contrast_effect`; a one-cell claim:
  :func:`~icl_tokens.analysis.inference.cell_estimate`), then averaged over the tasks where the
  model does in-context learning (:func:`icl_status`; the paper's "task means");
* a claim is **consistent** when its interval lies on the claimed side (95% interval; for
  ``equivalent`` the 90% interval lies inside ± margin, i.e. TOST at 5%, Schuirmann 1987),
  **inconsistent** when the interval lies on the other side (for ``equivalent``: the 95% interval
  lies wholly outside ± margin), and **inconclusive** otherwise;
* a pattern is consistent when all its claims are, inconsistent when any is, inconclusive
  otherwise.

    v = verdicts({"representation": rows})      # one row per (model, pattern, claim)
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..experiments.claims import Claim, Pattern
from .inference import (
    ACCURACY_METRICS,
    Estimate,
    cell_estimate,
    column_of,
    contrast_effect,
    contrast_estimate,
    contrast_matrix,
    pair_weights,
    pool_tasks,
    scale_of,
)
from .scores import label_words

__all__ = ["VERDICTS", "all_patterns", "pattern_by_key", "decide", "cell_rows", "icl_status",
           "verdicts", "pattern_summary", "verdict_table"]

#: The three states.
VERDICTS = ("consistent", "inconsistent", "inconclusive")


def all_patterns() -> tuple[Pattern, ...]:
    """Every §8 pattern, in the paper's order (each declared next to its experiment)."""
    from ..experiments import representation, template_parts, token_level, variants

    return (representation.PATTERNS + token_level.PATTERNS + template_parts.PATTERNS
            + variants.PATTERNS)


def pattern_by_key(key: str) -> Pattern:
    """The pattern ``"1"``, ``"2a"``, ... (an error names the keys)."""
    for p in all_patterns():
        if p.key == key:
            return p
    raise ValueError(f"no pattern {key!r}; choose from {[p.key for p in all_patterns()]}.")


def decide(claim: Claim, est95: Estimate, est90: Estimate | None = None) -> tuple[str, str]:
    """(verdict, reason) of one claim from its intervals (display units)."""
    lo, hi = est95.ci_low, est95.ci_high
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive", "no interval (too few seeds or examples)"
    m, k = claim.margin, claim.kind
    if k == "equivalent":
        e90 = est90 or est95
        if -m < e90.ci_low and e90.ci_high < m:
            return "consistent", f"90% interval inside ±{m:g} (TOST, 5%)"
        if lo > m or hi < -m:
            return "inconsistent", f"95% interval outside ±{m:g}"
        return "inconclusive", f"interval overlaps ±{m:g}"
    side = {"positive": (lo > 0, hi < 0, "0"), "negative": (hi < 0, lo > 0, "0"),
            "at_least": (lo > m, hi < m, f"{m:g}"), "at_most": (hi < m, lo > m, f"{m:g}")}
    yes, no, ref = side[k]
    if yes:
        return "consistent", f"95% interval on the claimed side of {ref}"
    if no:
        return "inconsistent", f"95% interval on the other side of {ref}"
    return "inconclusive", f"95% interval includes {ref}"


def cell_rows(frames: Mapping[str, pd.DataFrame], column: str) -> pd.DataFrame:
    """Every experiment's rows as ``model, task, seed, example_id, condition, <column>`` with
    ``condition = "<experiment>|<cell>"`` (Tables 8-10: the setting, averaged over templates)."""
    from .variant_tables import setting_rows

    parts = []
    for exp, df in frames.items():
        if column not in df.columns:
            raise ValueError(f"the {exp} rows have no column {column!r}.")
        if exp == "variants":
            sub = setting_rows(df, column)
        else:
            sub = df[["model", "task", "seed", "example_id", "condition", column]].copy()
        sub["condition"] = exp + "|" + sub["condition"].astype(str)
        parts.append(sub)
    return pd.concat(parts, ignore_index=True)


def _chance(rows: pd.DataFrame) -> float:
    """1 / number of labels of one task's rows (from its ``score_<label>`` columns)."""
    n = sum(rows[f"score_{w}"].notna().any() for w in label_words(rows))
    return 1.0 / n if n else math.nan


def icl_status(rows: pd.DataFrame, metric: str = "correct", *, level: float = 0.95
               ) -> pd.DataFrame:
    """Whether the model does in-context learning on each task: Standard ICL against zero-shot
    (paired, crossed) and against chance (accuracies: 1 / number of labels).

    Returns:
        One row per (model, task): ``icl``, ``icl_low``, ``icl_high``, ``zero_shot``,
        ``chance``, ``gain`` (ICL − zero-shot) with ``gain_low``, ``gain_high``, ``gain_p``, and
        ``does_icl``: the gain's interval is above 0 and (accuracies) ICL's interval is above
        chance. Tasks where it is False are uninformative for knockouts.
    """
    col = column_of(metric)
    scale = scale_of(col)
    out = []
    for (model, task), g in rows.groupby(["model", "task"], sort=False):
        icl_m, _, _ = contrast_matrix(g, {"icl": 1.0}, col)
        zs_m, _, _ = contrast_matrix(g, {"zero_shot": 1.0}, col)
        icl = cell_estimate(icl_m, level=level, scale=scale)
        gain, _ = contrast_effect(g, pair_weights("icl", "zero_shot"), col, level=level)
        chance = _chance(g) * scale if scale == 100.0 else math.nan
        above_chance = (icl.ci_low > chance) if math.isfinite(chance) else True
        out.append({"model": model, "task": task, "metric": col, "icl": icl.mean,
                    "icl_low": icl.ci_low, "icl_high": icl.ci_high,
                    "zero_shot": float(zs_m.mean() * scale), "chance": chance,
                    "gain": gain.mean, "gain_low": gain.ci_low, "gain_high": gain.ci_high,
                    "gain_p": gain.p, "n_seeds": icl.n_seeds, "n_examples": icl.n_examples,
                    "does_icl": bool(gain.ci_low > 0 and above_chance)})
    return pd.DataFrame(out)


def _claim_task(claim: Claim, rows: pd.DataFrame, col: str, levels: Sequence[float]
                ) -> list[Estimate]:
    """One claim's estimate on one task at each interval level (one matrix for all)."""
    weights = {f"{e}|{c}": w for e, c, w in claim.weights}
    m, _, _ = contrast_matrix(rows, weights, col)
    if claim.is_cell:
        return [cell_estimate(m, level=lv, scale=scale_of(col)) for lv in levels]
    return [contrast_estimate(m, weights, col, level=lv) for lv in levels]


def _claim_row(claim: Claim, rows: pd.DataFrame, col: str, use: Sequence[str], level: float
               ) -> dict[str, object]:
    """One claim decided on one model's rows, pooled over the tasks ``use``."""
    if not use:
        return {"claim": claim.describe(), "effect": np.nan, "ci_low": np.nan,
                "ci_high": np.nan, "p": np.nan, "claim_verdict": "inconclusive",
                "reason": "no task where the model does ICL", "n_seeds": 0, "n_examples": 0}
    per95, per90 = zip(*(_claim_task(claim, rows[rows.task == t], col, (level, 0.90))
                         for t in use))
    e95, e90 = pool_tasks(per95, level=level), pool_tasks(per90, level=0.90)
    v, why = decide(claim, e95, e90)
    return {"claim": claim.describe(), "effect": e95.mean, "ci_low": e95.ci_low,
            "ci_high": e95.ci_high, "p": e95.p, "claim_verdict": v, "reason": why,
            "n_seeds": e95.n_seeds, "n_examples": e95.n_examples}


def _pattern_rows(pat: Pattern, rows: pd.DataFrame, col: str, use: Sequence[str],
                  level: float) -> list[dict[str, object]]:
    """Every claim of one pattern on one model's rows, with the pattern's verdict: inconsistent
    when any claim is, consistent when all are, inconclusive otherwise."""
    claim_rows = [_claim_row(claim, rows, col, use, level) for claim in pat.claims]
    states = [r["claim_verdict"] for r in claim_rows]
    overall = ("inconsistent" if "inconsistent" in states else "consistent"
               if all(s == "consistent" for s in states) else "inconclusive")
    return [{"pattern": pat.key, "name": pat.title, "metric": col, **r, "verdict": overall,
             "tasks": ",".join(use)} for r in claim_rows]


def verdicts(frames: Mapping[str, pd.DataFrame], patterns: Sequence[Pattern] | None = None,
             *, metric: str | None = None, tasks: Mapping[str, Sequence[str]] | None = None,
             level: float = 0.95) -> pd.DataFrame:
    """Decide every pattern whose experiments and cells (with the metric's column) are present
    (on a metric other than an accuracy, only patterns whose claims state no margin: the margins
    are in accuracy points).

    Args:
        frames: Experiment name (``representation``, ``token``, ``parts``, ``variants``) → its
            tidy rows.
        patterns: Default :func:`all_patterns`.
        metric: Decide on this column instead of each pattern's own (``correct``, acc_gen).
        tasks: Model → the tasks to average over (default: every task of the rows; the report
            passes the tasks where :func:`icl_status` says the model does ICL).
        level: Of the intervals.

    Returns:
        One row per (model, pattern, claim): ``model, pattern, name, claim, metric, effect,
        ci_low, ci_high, p, claim_verdict, reason, verdict`` (the pattern's), ``tasks``,
        ``n_seeds``, ``n_examples``.
    """
    patterns = all_patterns() if patterns is None else patterns
    out = []
    for pat in patterns:
        if not all(e in frames for e in pat.experiments):
            continue
        col = column_of(metric or pat.metric)
        if col not in ACCURACY_METRICS and any(c.has_margin for c in pat.claims):
            continue  # its margin is in accuracy points: not decidable on, e.g., nats
        if not all(col in frames[e].columns for e in pat.experiments):
            continue  # e.g. calibrated accuracy exists for the representation rows only
        rows = cell_rows({e: frames[e] for e in pat.experiments}, col)
        cells = {f"{e}|{c}" for cl in pat.claims for e, c, _ in cl.weights}
        if not cells <= set(rows["condition"]):
            continue  # a table the rows do not hold (e.g. Table 8 not run)
        for model, mrows in rows.groupby("model", sort=False):
            use = list(dict.fromkeys(mrows["task"]))
            if tasks is not None:
                use = [t for t in use if t in set(tasks.get(model, ()))]
            out += [{"model": model, **r} for r in _pattern_rows(pat, mrows, col, use, level)]
    cols = ["model", "pattern", "name", "claim", "metric", "effect", "ci_low", "ci_high", "p",
            "claim_verdict", "reason", "verdict", "tasks", "n_seeds", "n_examples"]
    return pd.DataFrame(out, columns=cols)


def pattern_summary(v: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """One line per (model, pattern): the verdict and each claim's effect [interval]."""
    def fmt(r: pd.Series) -> str:
        if not math.isfinite(r["effect"]):
            return f"{r['claim']}: n/a"
        return (f"{r['claim']}: {r['effect']:+.{digits}f} "
                f"[{r['ci_low']:+.{digits}f}, {r['ci_high']:+.{digits}f}]")

    rows = []
    for (model, key), g in v.groupby(["model", "pattern"], sort=False):
        rows.append({"model": model, "pattern": key, "name": g["name"].iloc[0],
                     "verdict": g["verdict"].iloc[0], "evidence": "; ".join(g.apply(fmt, axis=1)),
                     "tasks": g["tasks"].iloc[0]})
    return pd.DataFrame(rows)


def verdict_table(frames: Mapping[str, pd.DataFrame], metrics: Sequence[str],
                  patterns: Sequence[Pattern] | None = None) -> pd.DataFrame:
    """(pattern, metric) × (verdict, evidence): :func:`pattern_summary` of :func:`verdicts` for
    each metric, for a notebook to display."""
    parts = {m: pattern_summary(verdicts(frames, patterns, metric=m)) for m in metrics}
    out = pd.concat(parts, names=["metric", None]).reset_index(level=0)
    return (out.sort_values("pattern", kind="stable")
            .set_index(["name", "metric"])[["verdict", "evidence"]])
