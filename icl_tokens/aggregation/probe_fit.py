"""Fitting one probe: nested group-k-fold L2 logistic regression on the residual stream.

**Folds** are never split by group (:func:`group_folds`): with the groups of
:func:`~icl_tokens.aggregation.probe_data.prompt_groups` no prompt and no demonstration text is
in both the training and the test side of any fold, in the outer and in the inner folds.

**Probe** (:func:`fit_probes`, :func:`fit_probe`): ``StandardScaler`` + L2 logistic regression
(scikit-learn's ``LogisticRegression`` model, solved for many label vectors at once by
:func:`~icl_tokens.aggregation.probe_solver._fit_predict_many`), fitted in the span of the
training rows (:func:`_training_basis`, an exact reformulation), ``C`` chosen by an inner group
k-fold on the training side only (:func:`_choose_C`); accuracy on the held-out folds. Each fit
also reports the majority baseline (the training side's most frequent label).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from jaxtyping import Float, Int

from .probe_solver import _fit_predict_many

__all__ = ["DEFAULT_CS", "ProbeFit", "group_folds", "fit_probes", "fit_probe"]

#: Regularisation strengths the inner cross-validation chooses from.
DEFAULT_CS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0)


@dataclass
class ProbeFit:
    """Held-out result of one probe: accuracy, majority baseline, chosen C per outer fold."""

    accuracy: float
    majority: float
    Cs: list[float] = field(default_factory=list)
    predictions: np.ndarray | None = None

def group_folds(groups: Int[np.ndarray, "n"], n_splits: int, seed: int = 0
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, test)`` index pairs of a shuffled group k-fold: each group on one side only.

    Groups are assigned to folds at random (``seed``), balanced by size.
    """
    groups = np.asarray(groups)
    uniq = np.unique(groups)
    if n_splits < 2:
        raise ValueError(f"need at least 2 folds, got {n_splits}.")
    if len(uniq) < n_splits:
        raise ValueError(f"only {len(uniq)} independent groups (prompts that share no text) for "
                         f"{n_splits} folds; use more test examples or seeds, or fewer folds.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(uniq)
    sizes = {g: int((groups == g).sum()) for g in uniq}
    load = np.zeros(n_splits)
    fold_of: dict[Any, int] = {}
    for g in sorted(order, key=lambda g: -sizes[g]):  # stable: ties keep the random order
        f = int(np.argmin(load))
        fold_of[g] = f
        load[f] += sizes[g]
    f = np.array([fold_of[g] for g in groups])
    return [(np.flatnonzero(f != i), np.flatnonzero(f == i)) for i in range(n_splits)]



def _choose_C(Z: Float[np.ndarray, "n r"], codes: Int[np.ndarray, "t n"],
              inner: Sequence[tuple[np.ndarray, np.ndarray]], Cs: Sequence[float],
              n_classes: int) -> Float[np.ndarray, "t"]:
    """Per label vector, the C with the best accuracy over the ``inner`` group folds (ties:
    the smallest C)."""
    if len(Cs) == 1 or not inner:
        return np.full(len(codes), float(Cs[0]) if len(Cs) == 1 else float(min(Cs)))
    order = np.argsort(Cs)
    grid = np.asarray(Cs, dtype=np.float64)[order]  # increasing
    score = np.zeros((len(codes), len(grid)))
    for tr, te in inner:
        W = None
        for j, C in enumerate(grid):  # warm start along increasing C
            pred, W = _fit_predict_many(Z[tr], codes[:, tr], Z[te], np.full(len(codes), C),
                                        n_classes, W)
            score[:, j] += (pred == codes[:, te]).sum(axis=1)
    return grid[np.argmax(score, axis=1)]  # the first maximum: the smallest C


def _inner_folds(groups: np.ndarray, inner_folds: int, seed: int
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The inner group folds of one training side (none when it has under 2 groups)."""
    n_inner = min(inner_folds, len(np.unique(groups)))
    return group_folds(groups, n_inner, seed) if n_inner >= 2 else []


def _training_basis(X_tr: np.ndarray, X_te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise on the training rows, then express both sides in the span of the training
    rows (``Z = X V``, ``V`` their right singular vectors).

    An L2-regularised linear model's weights lie in the span of its training rows (representer
    theorem) and ``V`` is orthonormal, so logistic regression on ``Z`` is the same model as on
    the standardised ``X`` -- for any subset of the training rows too (the inner folds) -- with
    at most ``n_train`` instead of ``d_model`` features.
    """
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X_tr)
    A, B = scaler.transform(X_tr), scaler.transform(X_te)
    _, S, Vt = np.linalg.svd(A, full_matrices=False)
    keep = S > S[0] * 1e-10 if len(S) and S[0] > 0 else np.zeros(len(S), dtype=bool)
    if not keep.any():  # constant features: nothing to learn; one zero feature
        return np.zeros((len(A), 1)), np.zeros((len(B), 1))
    V = Vt[keep].T
    return A @ V, B @ V


def fit_probes(X: Float[np.ndarray, "n d"], targets: dict[str, Int[np.ndarray, "n"]],
               groups: Int[np.ndarray, "n"], *, folds: int = 5, inner_folds: int = 3,
               Cs: Sequence[float] = DEFAULT_CS, seed: int = 0, batch: Sequence[str] = ()
               ) -> dict[str, ProbeFit]:
    """Nested group-k-fold logistic-regression probes of several targets on the same points
    (e.g. the task, its control and the permutation null's shuffles), sharing folds and
    standardisation.

    Args:
        X: Features, one row per point.
        targets: Name → integer labels per point.
        groups: Group per point; a group is never split across train and test
            (:func:`group_folds`), in the outer and in the inner folds.
        folds: Outer folds (held-out accuracy).
        inner_folds: Inner folds on each training side (choose ``C``).
        Cs: Candidate inverse regularisation strengths (scikit-learn's ``C``).
        seed: Fold assignment.
        batch: Names of targets solved together (vectorised: the null's shuffles). Every other
            target is solved on its own, so its result never depends on what else is fitted
            (a batch's rounding can depend on its size).

    Each outer training side is standardised (``StandardScaler``; its inner folds reuse that
    scaling, as a scaler in a pipeline before ``LogisticRegressionCV`` would) and the fit runs
    in the span of its rows (:func:`_training_basis`, an exact reformulation, for speed). None
    of this depends on the labels, so it is computed once per fold for all targets; each
    target then gets its own inner choice of ``C`` and its own fit. The fits are scikit-learn's
    ``LogisticRegression`` model (lbfgs: the same objective, tolerance and iteration cap),
    solved by :func:`~.probe_solver._fit_predict_many`.

    Returns:
        Per target: held-out accuracy (every point predicted once), the majority baseline (each
        test fold predicted as its training side's most frequent label), the chosen ``C`` per
        fold, the held-out predictions.
    """
    X = np.asarray(X, dtype=np.float64)
    groups = np.asarray(groups)
    ys = {k: np.asarray(v) for k, v in targets.items()}
    _check_fit_args(X, groups, ys, Cs, batch)
    names = list(ys)
    solves = [np.array([j]) for j, k in enumerate(names) if k not in set(batch)]
    solves += [np.array([names.index(k) for k in batch])] if len(batch) else []
    labels, inv = np.unique(np.stack([ys[k] for k in names]), return_inverse=True)
    codes = inv.reshape(len(names), len(X))  # [target, n]: class indices
    pred = np.empty_like(codes)
    base = np.empty_like(codes)
    chosen = np.empty((len(names), 0))
    for i, (tr, te) in enumerate(group_folds(groups, folds, seed)):
        Z_tr, Z_te = _training_basis(X[tr], X[te])
        inner = _inner_folds(groups[tr], inner_folds, seed + 1 + i)
        C = np.empty(len(names))
        for idx in solves:
            C[idx] = _choose_C(Z_tr, codes[idx][:, tr], inner, Cs, len(labels))
            pred[np.ix_(idx, te)], _ = _fit_predict_many(Z_tr, codes[idx][:, tr], Z_te, C[idx],
                                                         len(labels))
        chosen = np.hstack([chosen, C[:, None]])
        counts = np.stack([np.bincount(c, minlength=len(labels)) for c in codes[:, tr]])
        base[:, te] = np.argmax(counts, axis=1)[:, None]
    return {k: ProbeFit(float((pred[j] == codes[j]).mean()), float((base[j] == codes[j]).mean()),
                        chosen[j].tolist(), labels[pred[j]].astype(ys[k].dtype))
            for j, k in enumerate(names)}


def _check_fit_args(X: np.ndarray, groups: np.ndarray, ys: dict[str, np.ndarray],
                    Cs: Sequence[float], batch: Sequence[str]) -> None:
    """Refuse misshapen points, no ``C``, batch names that are not targets, and features
    with inf or NaN (say where they come from)."""
    if X.ndim != 2 or len(X) != len(groups) or any(len(v) != len(X) for v in ys.values()):
        raise ValueError(f"X {X.shape}, groups {groups.shape} and targets "
                         f"{ {k: v.shape for k, v in ys.items()} } must have one row per point.")
    if not Cs:
        raise ValueError("give at least one C.")
    if set(batch) - set(ys):
        raise ValueError(f"batch names {sorted(set(batch) - set(ys))} are not targets.")
    if not np.isfinite(X).all():
        raise ValueError("the probe features hold inf or NaN (activations that overflow the "
                         "model's dtype, e.g. float16); capture them with --dtype float32.")


def fit_probe(X: Float[np.ndarray, "n d"], y: Int[np.ndarray, "n"], groups: Int[np.ndarray, "n"],
              **kw: Any) -> ProbeFit:
    """One target of :func:`fit_probes` (same arguments)."""
    return fit_probes(X, {"y": y}, groups, **kw)["y"]

