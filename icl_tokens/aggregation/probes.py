"""Linear probes (decodable evidence for aggregation): is a demonstration's label readable from
the residual stream at its template, stopword and label tokens?

Above all at the output-template tokens *before* the label word (``Sentiment``, ``:``): there
the label can only be known from the demonstration's content, so a probe that decodes it there
says content information has been aggregated into those representations. The test example's last
token is probed for the model's own answer.

This module holds :func:`probe_table` (every layer of one position: accuracy, majority
baseline, permutation null, control), with the table's columns :data:`PROBE_COLUMNS`, and
re-exports the public names of the modules that hold the parts:

* :mod:`~icl_tokens.aggregation.probe_data` — probe positions, per-prompt demonstrations, fold
  groups, the points of one position (:class:`ProbeData`);
* :mod:`~icl_tokens.aggregation.probe_capture` — capturing the points from a model;
* :mod:`~icl_tokens.aggregation.probe_fit` — group folds and the nested group-k-fold probe
  (standardisation, inner choice of ``C``, held-out accuracy);
* :mod:`~icl_tokens.aggregation.probe_solver` — its vectorised L-BFGS logistic regression;
* :mod:`~icl_tokens.aggregation.probe_null` — the permutation null (group shuffles, p-values,
  the best-layer max-statistic) and the control task.

A whole run (prompts → captures → one table, resumable) is
:func:`~icl_tokens.aggregation.probe_run.run_probes` with a
:class:`~icl_tokens.aggregation.probe_run.ProbeConfig`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .probe_capture import collect_probe_data, model_answers
from .probe_data import (
    PROBE_POSITIONS,
    ProbeData,
    ProbePosition,
    probe_episodes,
    probe_items,
    prompt_groups,
)
from .probe_fit import DEFAULT_CS, ProbeFit, fit_probe, fit_probes, group_folds
from .probe_fit import _training_basis as _training_basis
from .probe_null import (
    DEFAULT_PERMUTATIONS,
    UNLEARNABLE,
    _null_seed,
    control_labels,
    control_seen,
    null_pvalues,
    permute_groups,
    permuted_labels,
)
from .probe_solver import _fit_predict as _fit_predict
from .probe_solver import _fit_predict_many as _fit_predict_many

__all__ = ["ProbePosition", "PROBE_POSITIONS", "DEFAULT_CS", "DEFAULT_PERMUTATIONS",
           "PROBE_COLUMNS", "UNLEARNABLE", "ProbeData", "ProbeFit", "fit_probes", "fit_probe",
           "probe_episodes", "probe_items", "prompt_groups", "group_folds", "control_labels",
           "control_seen", "permute_groups", "permuted_labels", "null_pvalues",
           "collect_probe_data", "probe_table", "model_answers"]

#: Columns of :func:`probe_table` (a stable contract; new columns are appended). ``control``
#: and ``selectivity`` are NaN unless ``control_seen > 0``; the null columns are NaN when
#: ``permutations`` is 0.
PROBE_COLUMNS: tuple[str, ...] = (
    "seed", "position", "layer", "knockout", "target", "accuracy", "majority", "control",
    "selectivity", "n", "n_groups", "n_classes", "C_median", "folds", "control_seen",
    "control_note", "permutations", "null_mean", "null_q95", "p_perm", "max_null_q95", "p_max")


def probe_table(data: ProbeData, *, knockout: str = "icl", folds: int = 5,
                inner_folds: int = 3, Cs: Sequence[float] = DEFAULT_CS, seed: int = 0,
                per_seed: bool = False, permutations: int = DEFAULT_PERMUTATIONS,
                progress: bool = False, on_row: Callable[[dict[str, Any]], None] | None = None,
                skip: Callable[[int, int], bool] | None = None) -> pd.DataFrame:
    """Probe every layer of one position: accuracy, baseline, permutation null, control.

    Args:
        data: :func:`collect_probe_data` output for one position.
        knockout: Name for the rows' ``knockout`` column (``icl``: none, or the knockout's name).
        folds, inner_folds, Cs, seed: See :func:`fit_probe` (``seed`` also draws the control
            and the shuffles).
        per_seed: One probe per seed (rows carry that seed); ``False`` (default): one probe on
            the pooled points of every seed (``seed`` = -1 in the rows).
        permutations: Group shuffles of the permutation null (0: none; the null columns are
            NaN). Each refits the whole probe on every layer.
        progress: A tqdm bar over the shuffles' fits.
        on_row: Called with each row once its family (all layers of one seed) is computed
            (e.g. to append it to a results file).
        skip: ``(seed, layer) -> bool``: cells already computed (not returned; with
            ``permutations`` their shuffles are still fitted, for the best-layer correction).

    Returns:
        Rows with :data:`PROBE_COLUMNS`. ``p_max`` corrects for the best of the layers in
        ``data`` (the family is this position and knockout).
    """
    rows = []
    seeds = sorted(set(data.seeds.tolist())) if per_seed else [-1]
    for s in seeds:
        sel = data.seeds == s if per_seed else np.ones(len(data.y), dtype=bool)
        y, g = data.y[sel], data.groups[sel]
        texts = [t for t, m in zip(data.texts, sel) if m]
        seen = control_seen(texts, group_folds(g, folds, seed))
        yc = control_labels(texts, y, seed) if seen > 0 else None
        shuffles = permuted_labels(y, g, permutations, seed=_null_seed(seed, s))
        todo = [skip is None or not skip(s, layer) for layer in data.layers]
        if not any(todo):
            continue
        real, null = _fit_family(data, sel, y, yc, shuffles, todo, folds=folds,
                                 inner_folds=inner_folds, Cs=Cs, seed=seed,
                                 bar=_bar(permutations * len(data.layers),
                                          f"{data.position} {knockout} null",
                                          progress and permutations > 0))
        observed = np.array([real[li]["task"].accuracy if li in real else np.nan
                             for li in range(len(data.layers))])
        stats = null_pvalues(observed, null)
        for li in sorted(real):
            row = _row(data, s, li, knockout, folds, real[li], seen, permutations,
                       {k: float(v[li]) for k, v in stats.items()}, y, g)
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return pd.DataFrame(rows, columns=list(PROBE_COLUMNS))


def _fit_family(data: ProbeData, sel: np.ndarray, y: np.ndarray, yc: np.ndarray | None,
                shuffles: np.ndarray, todo: Sequence[bool], *, folds: int, inner_folds: int,
                Cs: Sequence[float], seed: int, bar: Any
                ) -> tuple[dict[int, dict[str, ProbeFit]], np.ndarray]:
    """Fit one family (every layer of the points ``sel``): per layer to do, the task and its
    control (if any); per layer, every shuffle. Returns the real fits by layer index and the
    null accuracies ``[perm, layer]`` (NaN for a layer neither done nor shuffled)."""
    permutations = len(shuffles)
    g = data.groups[sel]
    real: dict[int, dict[str, ProbeFit]] = {}
    null = np.full((permutations, len(data.layers)), np.nan)
    for li in range(len(data.layers)):
        if not todo[li] and not permutations:
            continue
        targets = {f"perm{b}": shuffles[b] for b in range(permutations)}
        if todo[li]:
            targets = {"task": y, **({} if yc is None else {"control": yc}), **targets}
        fits = fit_probes(data.X[sel, li], targets, g, folds=folds,
                          inner_folds=inner_folds, Cs=Cs, seed=seed,
                          batch=[f"perm{b}" for b in range(permutations)])
        null[:, li] = [fits[f"perm{b}"].accuracy for b in range(permutations)]
        if todo[li]:
            real[li] = fits
        if bar is not None:
            bar.update(permutations)
    if bar is not None:
        bar.close()
    return real, null


def _bar(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="fit", file=sys.stderr)


def _row(data: ProbeData, seed: int, li: int, knockout: str, folds: int,
         fits: dict[str, ProbeFit], seen: float, permutations: int, stats: dict[str, float],
         y: np.ndarray, g: np.ndarray) -> dict[str, Any]:
    """One table row: the real fit, the control where it can be learnt, the null."""
    real = fits["task"]
    ctrl = fits.get("control")
    note = (UNLEARNABLE if ctrl is None
            else f"learnable: {seen:.0%} of held-out points have their text in training")
    return {"seed": seed, "position": data.position, "layer": data.layers[li],
            "knockout": knockout, "target": data.target,
            "accuracy": real.accuracy, "majority": real.majority,
            "control": np.nan if ctrl is None else ctrl.accuracy,
            "selectivity": np.nan if ctrl is None else real.accuracy - ctrl.accuracy,
            "n": int(len(y)), "n_groups": int(len(np.unique(g))),
            "n_classes": int(len(np.unique(y))), "C_median": float(np.median(real.Cs)),
            "folds": folds, "control_seen": float(seen), "control_note": note,
            "permutations": int(permutations), **stats}
