"""How well the one-pass attribution ranks tokens like the exact atlas, per task and model.

Per test example (its demonstration tokens): the Spearman correlation of an attribution column
with ``delta_margin``; the top-k overlap (the share of the k tokens with the largest exact
``|delta_margin|`` that are among the k with the largest ``|attribution|``); and the false
negatives (tokens whose exact ``|delta_margin|`` exceeds ``threshold`` but which the attribution
ranks outside its top k). Summaries average the per-example values (the false-negative rate is
pooled: false negatives / tokens above the threshold) with **intervals that fit the design**,
seeds x test examples crossed (:mod:`~icl_tokens.atlas.intervals`: the crossed t interval for
means, the linearized crossed t for the pooled rate; one seed: a bootstrap over examples, said
so in the ``interval`` column), and report each method's mean wall time per example.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .intervals import design_note, layout_of, mean_interval, ratio_interval

__all__ = ["spearman", "top_k_overlap", "false_negatives", "per_example", "cross_check",
           "EXAMPLE", "ATTRIBUTIONS", "DEFAULT_THRESHOLD"]

#: Columns identifying one test example.
EXAMPLE = ["model", "task", "seed", "example_id"]
#: The attribution columns of an atlas CSV.
ATTRIBUTIONS = ("attribution", "attribution_atp")
#: Exact ``|delta_margin|`` (nats of margin) above which a token counts as critical.
DEFAULT_THRESHOLD = 0.1


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either is constant."""
    rx = pd.Series(x).rank().to_numpy()
    ry = pd.Series(y).rank().to_numpy()
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _top(v: np.ndarray, k: int) -> set[int]:
    """Indices of the ``k`` largest ``|v|`` (ties broken by position)."""
    order = np.lexsort((np.arange(len(v)), -np.abs(v)))
    return set(order[:k].tolist())


def top_k_overlap(exact: np.ndarray, attr: np.ndarray, k: int) -> float:
    """Share of the exact top-``k`` (by magnitude) that the attribution's top-``k`` holds."""
    k = min(k, len(exact))
    if k < 1:
        return float("nan")
    return len(_top(exact, k) & _top(attr, k)) / k


def false_negatives(exact: np.ndarray, attr: np.ndarray, k: int, threshold: float
                    ) -> tuple[int, int]:
    """``(tokens with |exact| > threshold, of them outside the attribution's top k)``."""
    above = np.flatnonzero(np.abs(exact) > threshold)
    top = _top(attr, min(k, len(attr)))
    return len(above), sum(int(i) not in top for i in above)


def per_example(df: pd.DataFrame, method: str = "attribution", ks: Sequence[int] = (5, 10),
                threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """One row per test example: ``spearman``, ``top<k>`` overlaps, ``n_above``, ``fn<k>``,
    ``n_keys``, ``exact_s``, ``attribution_s``."""
    if method not in df.columns:
        raise ValueError(f"no column {method!r}; atlas attributions are {list(ATTRIBUTIONS)}.")
    out = []
    for key, g in df.groupby(EXAMPLE, sort=False):
        exact = g["delta_margin"].to_numpy(float)
        attr = g[method].to_numpy(float)
        ok = np.isfinite(attr)
        exact, attr = exact[ok], attr[ok]
        row = dict(zip(EXAMPLE, key), method=method, n_keys=len(exact),
                   n_undefined=int((~ok).sum()), spearman=spearman(exact, attr),
                   exact_s=float(g["exact_s"].iloc[0]),
                   attribution_s=float(g["attribution_s"].iloc[0]))
        for k in ks:
            row[f"top{k}"] = top_k_overlap(exact, attr, k)
            row["n_above"], row[f"fn{k}"] = false_negatives(exact, attr, k, threshold)
        out.append(row)
    return pd.DataFrame(out)


def cross_check(df: pd.DataFrame, methods: Sequence[str] = ATTRIBUTIONS,
                ks: Sequence[int] = (5, 10), threshold: float = DEFAULT_THRESHOLD, *,
                n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per (model, task, method): each measure with its design interval.

    Columns: ``model, task, method, n_seeds, n_examples, threshold``, per measure ``<m>``,
    ``<m>_lo``, ``<m>_hi`` (``spearman``, ``top<k>``, ``fnr<k>``), ``interval`` (the method;
    :mod:`~icl_tokens.atlas.intervals`),
    ``n_above``, ``exact_s``, ``attribution_s`` (mean seconds per example) and ``speedup``
    (their ratio).
    """
    out = []
    opts = dict(level=level, n_boot=n_boot, seed=seed)
    for method in methods:
        pe = per_example(df, method, ks, threshold)
        for (model, task), g in pe.groupby(["model", "task"], sort=False):
            lay = layout_of(g)
            row: dict[str, object] = {"model": model, "task": task, "method": method,
                                      "n_seeds": lay.n_seeds, "n_examples": len(g),
                                      "threshold": threshold, "interval": design_note(lay)}
            for name in ["spearman"] + [f"top{k}" for k in ks]:
                row[name], row[f"{name}_lo"], row[f"{name}_hi"] = mean_interval(
                    g, name, bounds=(-1.0, 1.0) if name == "spearman" else (0.0, 1.0), **opts)
            above = g["n_above"].to_numpy(float)
            for k in ks:
                row[f"fnr{k}"], row[f"fnr{k}_lo"], row[f"fnr{k}_hi"] = ratio_interval(
                    g, g[f"fn{k}"].to_numpy(float), above, bounds=(0.0, 1.0), **opts)
            row["n_above"] = int(above.sum())
            row["exact_s"] = float(g["exact_s"].mean())
            row["attribution_s"] = float(g["attribution_s"].mean())
            row["speedup"] = row["exact_s"] / row["attribution_s"] if row["attribution_s"] \
                else float("nan")
            out.append(row)
    return pd.DataFrame(out)
