"""The probes' solver: L2 logistic regression for many label vectors of the same rows at once.

The model is scikit-learn's ``LogisticRegression(solver="lbfgs")``: mean log-loss
+ ``||coef||^2 / (2 C n)``, intercept unpenalised; sigmoid for two classes, softmax for more;
stop at max |gradient| <= 1e-4 or 500 iterations. :func:`_fit_predict_many` solves it for
several label vectors (the task, its control, the permutation null's shuffles) with one
vectorised L-BFGS (:func:`_lbfgs`), each row with its own history, line search and stopping
rule. Private: :mod:`~icl_tokens.aggregation.probe_fit` is its user.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from jaxtyping import Float, Int

# The solver: L2 logistic regression as scikit-learn's ``LogisticRegression(solver="lbfgs")``
# defines it (mean log-loss + ||coef||^2 / (2 C n), intercept unpenalised; sigmoid for two
# classes, softmax for more; stop at max |gradient| <= 1e-4 or 500 iterations), solved for many
# label vectors of the same rows at once (the task, its control, the null's shuffles).
_TOL, _MAX_ITER, _HISTORY = 1e-4, 500, 10
_FTOL = 64 * np.finfo(float).eps


def _lbfgs(fg: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
           W0: Float[np.ndarray, "t p"]) -> Float[np.ndarray, "t p"]:
    """Minimise ``t`` independent smooth convex objectives with one L-BFGS per row, vectorised.

    ``fg(W, rows)`` gives the objectives and gradients of the rows ``rows`` of the batch at
    ``W`` (``[len(rows), p]``). Each row keeps its own history (the last 10 pairs), line search
    (Armijo backtracking from the unit step) and stopping rule; finished rows leave the batch.
    """
    out = np.array(W0, dtype=np.float64)
    rows = np.arange(len(out))
    W = out.copy()
    f, G = fg(W, rows)
    S = np.zeros((_HISTORY, *W.shape))  # [pair, t, p]
    Y = np.zeros_like(S)
    rho = np.zeros((_HISTORY, len(W)))
    k = 0
    for _ in range(_MAX_ITER):
        keep = np.abs(G).max(axis=1) > _TOL
        if not keep.all():
            out[rows[~keep]] = W[~keep]
            rows, W, f, G = rows[keep], W[keep], f[keep], G[keep]
            S, Y, rho = S[:, keep], Y[:, keep], rho[:, keep]
        if not len(rows):
            return out
        D = -_two_loop(G, S, Y, rho, k)
        slope = np.einsum("tp,tp->t", G, D)
        step = np.ones(len(rows))
        W_new = W + D
        f_new, G_new = fg(W_new, rows)
        bad = ~(f_new <= f + 1e-4 * slope)
        for _ in range(50):  # backtracking, only for the rows that need it
            if not bad.any():
                break
            b = np.flatnonzero(bad)
            step[b] *= 0.5
            W_new[b] = W[b] + step[b, None] * D[b]
            f_new[b], G_new[b] = fg(W_new[b], rows[b])
            bad[b] = ~(f_new[b] <= f[b] + 1e-4 * step[b] * slope[b])
        stuck = bad | (f - f_new <= _FTOL * np.maximum(np.maximum(abs(f), abs(f_new)), 1.0))
        s, y = W_new - W, G_new - G
        sy = np.einsum("tp,tp->t", s, y)
        ok = ~bad & (sy > 1e-12 * np.einsum("tp,tp->t", y, y))
        i = k % _HISTORY
        S[i], Y[i] = np.where(ok[:, None], s, 0.0), np.where(ok[:, None], y, 0.0)
        rho[i] = np.where(ok, 1.0 / np.where(ok, sy, 1.0), 0.0)
        k += 1
        W = np.where(bad[:, None], W, W_new)
        f, G = np.where(bad, f, f_new), np.where(bad[:, None], G, G_new)
        if stuck.any():  # no progress left (as scipy's ftol): finished
            out[rows[stuck]] = W[stuck]
            keep = ~stuck
            rows, W, f, G = rows[keep], W[keep], f[keep], G[keep]
            S, Y, rho = S[:, keep], Y[:, keep], rho[:, keep]
    out[rows] = W
    return out


def _two_loop(G: np.ndarray, S: np.ndarray, Y: np.ndarray, rho: np.ndarray, k: int
              ) -> np.ndarray:
    """L-BFGS inverse-Hessian times ``G`` per row (the two-loop recursion; a unit-length
    gradient step before any pair is stored)."""
    h = min(k, _HISTORY)
    if h == 0:
        return G / np.maximum(np.linalg.norm(G, axis=1), 1e-300)[:, None]
    order = [(k - h + j) % _HISTORY for j in range(h)]  # oldest first
    q = G.copy()
    alpha = []
    for i in reversed(order):
        a = rho[i] * np.einsum("tp,tp->t", S[i], q)
        q -= a[:, None] * Y[i]
        alpha.append(a)
    last = order[-1]
    yy = np.einsum("tp,tp->t", Y[last], Y[last])
    gamma = np.where((rho[last] > 0) & (yy > 0), 1.0 / np.maximum(rho[last] * yy, 1e-300), 1.0)
    q *= gamma[:, None]
    for i, a in zip(order, reversed(alpha)):
        q += (a - rho[i] * np.einsum("tp,tp->t", Y[i], q))[:, None] * S[i]
    return q


def _objective(Z1: Float[np.ndarray, "n p"], codes: Int[np.ndarray, "t n"],
               present: np.ndarray, l2: Float[np.ndarray, "t"], binary: bool
               ) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``fg(W, rows)`` of :func:`_lbfgs`: the scaled L2 log-loss per label vector.

    ``W`` rows are ``[1, p]`` (binary: the logit of class 1) or ``[K, p]`` (softmax over the
    classes ``present`` in that row's training labels; the others have no logit) flattened;
    the last feature of ``Z1`` is the (unpenalised) intercept's 1.
    """
    n, p = Z1.shape
    onehot = np.eye(present.shape[1])[codes] if not binary else None  # [t, n, K]
    y1 = (codes == 1).T.astype(np.float64) if binary else None  # [n, t]

    def fg(W: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lam = l2[rows]
        if binary:
            assert y1 is not None
            z = Z1 @ W.T  # [n, t]
            yr = y1[:, rows]
            loss = (np.logaddexp(0.0, z) - yr * z).mean(axis=0)
            G = (((0.5 + 0.5 * np.tanh(0.5 * z)) - yr) / n).T @ Z1  # [t, p]
            coef = W[:, :-1]
        else:
            assert onehot is not None
            t, K = len(rows), present.shape[1]
            z = (Z1 @ W.reshape(t * K, p).T).reshape(n, t, K)
            z = np.where(present[rows][None], z, -np.inf)
            top = z.max(axis=2, keepdims=True)
            lse = top + np.log(np.exp(z - top).sum(axis=2, keepdims=True))
            oh = onehot[rows].transpose(1, 0, 2)  # [n, t, K]
            loss = (lse[..., 0] - np.where(oh > 0, z, 0.0).sum(axis=2)).mean(axis=0)
            R = (np.exp(z - lse) - oh) / n
            G = (R.reshape(n, t * K).T @ Z1).reshape(t, K * p)
            coef = W.reshape(t, K, p)[..., :-1]
            G = G.reshape(t, K, p)
            G[..., :-1] += lam[:, None, None] * coef
            G = G.reshape(t, K * p)
            return loss + 0.5 * lam * (coef * coef).sum(axis=(1, 2)), G
        G[:, :-1] += lam[:, None] * coef
        return loss + 0.5 * lam * (coef * coef).sum(axis=1), G

    return fg


def _fit_predict_many(Z_tr: Float[np.ndarray, "n r"], codes: Int[np.ndarray, "t n"],
                      Z_te: Float[np.ndarray, "m r"], C: Float[np.ndarray, "t"], n_classes: int,
                      W0: np.ndarray | None = None) -> tuple[Int[np.ndarray, "t m"], np.ndarray]:
    """Fit one L2 logistic regression per row of ``codes`` (class indices ``0..n_classes-1``)
    on the same rows, with its own ``C``; predict ``Z_te``.

    As scikit-learn: only a row's training classes are predicted; one training class predicts
    that class; two classes are a binary (sigmoid) model (in a task of more classes, the softmax
    over the two with ``C/2``, the same model). ``W0`` warm-starts (a path over increasing C);
    returns the predictions and the weights ``[t, K', r+1]`` (``K' = 1`` for a binary task).
    """
    t, n = codes.shape
    binary = n_classes <= 2
    K = 1 if binary else n_classes
    Z1 = np.hstack([Z_tr, np.ones((n, 1))])
    Zt1 = np.hstack([Z_te, np.ones((len(Z_te), 1))])
    present = np.zeros((t, max(n_classes, 2)), dtype=bool)
    present[np.repeat(np.arange(t), n), codes.ravel()] = True
    n_present = present.sum(axis=1)
    l2 = 1.0 / (np.asarray(C, dtype=np.float64) * n) * np.where(
        (not binary) & (n_present == 2), 2.0, 1.0)
    W = np.zeros((t, K, Z1.shape[1])) if W0 is None else np.array(W0, dtype=np.float64)
    fit = np.flatnonzero(n_present >= 2)
    if len(fit):
        fg = _objective(Z1, codes[fit], present[fit], l2[fit], binary)
        W[fit] = _lbfgs(fg, W[fit].reshape(len(fit), -1)).reshape(len(fit), K, -1)
    z = np.einsum("mp,tkp->tmk", Zt1, W)
    if binary:
        pred = (z[..., 0] > 0).astype(np.int64)
    else:
        pred = np.where(present[:, None, :], z, -np.inf).argmax(axis=2)
    single = n_present == 1
    pred[single] = codes[single, :1]  # one training class: predict it
    return pred, W


def _fit_predict(Z_tr: np.ndarray, y_tr: np.ndarray, Z_te: np.ndarray, C: float,
                 W0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One target of :func:`_fit_predict_many` with its own labels (any integers)."""
    labels, codes = np.unique(np.asarray(y_tr), return_inverse=True)
    pred, W = _fit_predict_many(Z_tr, codes[None], Z_te, np.array([C]), len(labels), W0)
    return labels[pred[0]], W

