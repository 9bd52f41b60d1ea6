"""Synthetic crossed seeds x examples data with known truth, to check the inference of
:mod:`~icl_tokens.analysis.inference` (coverage of its intervals, false-positive rate of its
test) on a design before trusting it; ``tests/test_inference.py`` and
``benchmarks/bench_inference.py`` use it.

    >>> cov, fpr = check_method("gauss", 5, 50, delta=0.0, n_sim=200, seed=0)
    >>> 0.9 < cov <= 1.0 and fpr < 0.1
    True
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit

from .inference import crossed_mean

__all__ = ["BINARY", "GAUSS", "binary_difference", "binary_truth", "gauss_difference",
           "check_method"]

#: Binary accuracies from a logistic model with crossed random effects (logit-scale SDs):
#: shared seed ``sa`` and example ``sb`` effects, condition-specific seed ``su``, example ``sv``
#: and residual ``sw`` terms, intercept ``mu``.
BINARY = dict(sa=1.0, su=0.5, sb=1.5, sv=0.7, sw=0.5, mu=0.5)
#: Margin-like Gaussian differences with the variance components (nats²) of Gemma-3-270M's
#: pilot on SST-2.
GAUSS = dict(seed=0.01, example=0.09, residual=0.06)
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(80)


def binary_difference(rng: np.random.Generator, s: int, e: int, delta: float,
                      p: dict[str, float] = BINARY) -> np.ndarray:
    """``y_B − y_A`` on an ``s x e`` design; B's logit is shifted by ``delta``."""
    a = rng.normal(0, p["sa"], (s, 1))
    b = rng.normal(0, p["sb"], (1, e))

    def cond(d: float) -> np.ndarray:
        x = (p["mu"] + d + a + b + rng.normal(0, p["su"], (s, 1))
             + rng.normal(0, p["sv"], (1, e)) + rng.normal(0, p["sw"], (s, e)))
        return (rng.random((s, e)) < expit(x)).astype(float)

    return cond(delta) - cond(0.0)


def binary_truth(delta: float, p: dict[str, float] = BINARY) -> float:
    """The population difference of accuracies, E[expit(mu + delta + Z)] − E[expit(mu + Z)]."""
    sd = math.sqrt(sum(p[k] ** 2 for k in ("sa", "su", "sb", "sv", "sw")))

    def mean(mu: float) -> float:
        return float((_GH_W * expit(mu + sd * _GH_X)).sum() / _GH_W.sum())

    return mean(p["mu"] + delta) - mean(p["mu"])


def gauss_difference(rng: np.random.Generator, s: int, e: int, delta: float,
                     g: dict[str, float] = GAUSS) -> np.ndarray:
    """Gaussian per-row differences with mean ``delta`` and crossed components ``g``."""
    return (delta + rng.normal(0, math.sqrt(g["seed"]), (s, 1))
            + rng.normal(0, math.sqrt(g["example"]), (1, e))
            + rng.normal(0, math.sqrt(g["residual"]), (s, e)))


def check_method(kind: str, s: int, e: int, delta: float, *, n_sim: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """(coverage of the interval, rejection rate at 1 − level) of the crossed paired estimate
    over ``n_sim`` synthetic ``s x e`` runs of ``kind`` ``"binary"`` or ``"gauss"``."""
    if kind not in ("binary", "gauss"):
        raise ValueError(f"kind must be 'binary' or 'gauss', got {kind!r}.")
    rng = np.random.default_rng(seed)
    truth = binary_truth(delta) if kind == "binary" else delta
    cover = reject = 0
    for _ in range(n_sim):
        if kind == "binary":
            est = crossed_mean(binary_difference(rng, s, e, delta), level=level,
                               difference_of_binary=True)
        else:
            est = crossed_mean(gauss_difference(rng, s, e, delta), level=level)
        cover += est.ci_low <= truth <= est.ci_high
        reject += est.p < 1 - level
    return cover / n_sim, reject / n_sim
