"""Variance components of a crossed seeds x examples matrix, from the ANOVA mean squares.

The two-way crossed random-effects model ``y[s, e] = mu + a_s + b_e + e_se`` of a complete
S x E matrix: the components by the method of moments (:func:`variance_components`), the
variance of the grand mean from the observed mean squares (:func:`observed_variance`) and
Satterthwaite's degrees of freedom of a linear combination of mean squares
(:func:`satterthwaite`). :mod:`~icl_tokens.analysis.inference` builds intervals and tests on
them; ``docs/statistics.md`` gives the method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from jaxtyping import Float

__all__ = ["Components", "satterthwaite", "variance_components", "observed_variance"]


@dataclass(frozen=True)
class Components:
    """Variance components of a crossed S x E matrix (in the matrix's units squared)."""

    seed: float
    example: float
    residual: float
    n_seeds: int
    n_examples: int
    ms: tuple[float, float, float]     # mean squares: seed, example, residual
    df: tuple[int, int, int]           # their degrees of freedom

    def variance_of_mean(self, n_seeds: int | None = None, n_examples: int | None = None
                         ) -> float:
        """Variance of the grand mean for a design of ``n_seeds`` x ``n_examples``."""
        s = self.n_seeds if n_seeds is None else n_seeds
        e = self.n_examples if n_examples is None else n_examples
        return self.seed / s + self.example / e + self.residual / (s * e)

    def satterthwaite_df(self, n_seeds: int | None = None, n_examples: int | None = None
                         ) -> float:
        """Degrees of freedom of :meth:`variance_of_mean` for a design of that size, from the
        expected mean squares (Satterthwaite 1946)."""
        s = self.n_seeds if n_seeds is None else n_seeds
        e = self.n_examples if n_examples is None else n_examples
        parts = [(self.seed / s, s - 1), (self.example / e, e - 1),
                 (self.residual / (s * e), (s - 1) * (e - 1))]
        return satterthwaite(parts)


def satterthwaite(terms: Sequence[tuple[float, float]]) -> float:
    """df of a linear combination of independent variance estimates ``(value, df)`` (a term
    may be negative, e.g. ``-MS_resid``; terms with no degrees of freedom are ignored)."""
    num = sum(v for v, _ in terms) ** 2
    den = sum(v * v / d for v, d in terms if d > 0)
    return float(num / den) if den > 0 else math.inf


def variance_components(m: Float[np.ndarray, "seed example"]) -> Components:
    """Method-of-moments variance components of a complete crossed matrix."""
    m = np.asarray(m, dtype=float)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"need a non-empty seeds x examples matrix, got shape {m.shape}.")
    if not np.isfinite(m).all():
        raise ValueError("the matrix has missing or infinite values; a crossed estimate needs "
                         "every seed to score every example.")
    s, e = m.shape
    grand = m.mean()
    rows, cols = m.mean(axis=1), m.mean(axis=0)
    df_s, df_e, df_r = s - 1, e - 1, (s - 1) * (e - 1)
    ms_s = e * ((rows - grand) ** 2).sum() / df_s if df_s else 0.0
    ms_e = s * ((cols - grand) ** 2).sum() / df_e if df_e else 0.0
    resid = m - rows[:, None] - cols[None, :] + grand
    ms_r = (resid ** 2).sum() / df_r if df_r else 0.0
    var_r = ms_r
    var_s = max(0.0, (ms_s - ms_r) / e) if df_s else 0.0
    var_e = max(0.0, (ms_e - ms_r) / s) if df_e else 0.0
    if not df_r:  # one seed or one example: the residual is confounded with the other term
        var_r = 0.0
        var_s = ms_s if df_s else 0.0  # one example: the seed mean square is all there is
        var_e = ms_e if df_e else 0.0  # one seed: likewise for the examples
    return Components(float(var_s), float(var_e), float(var_r), s, e,
                      (float(ms_s), float(ms_e), float(ms_r)), (df_s, df_e, df_r))


def observed_variance(c: Components) -> tuple[float, float]:
    """(variance of the grand mean, Satterthwaite df) from the observed mean squares."""
    s, e = c.n_seeds, c.n_examples
    ms_s, ms_e, ms_r = c.ms
    df_s, df_e, df_r = c.df
    if not df_r:
        if df_s:
            return ms_s / s, float(df_s)
        if df_e:
            return ms_e / e, float(df_e)
        return math.nan, math.nan
    # V = (MS_s + MS_e - MS_r) / (SE); a component estimated below 0 is truncated at 0, which
    # drops its mean-square difference from V (and from the degrees of freedom).
    terms: list[tuple[float, float]]
    if ms_s > ms_r and ms_e > ms_r:
        terms = [(ms_s / (s * e), df_s), (ms_e / (s * e), df_e), (-ms_r / (s * e), df_r)]
    elif ms_s > ms_r:
        terms = [(ms_s / (s * e), df_s)]
    elif ms_e > ms_r:
        terms = [(ms_e / (s * e), df_e)]
    else:
        terms = [(ms_r / (s * e), df_r)]
    return float(sum(t for t, _ in terms)), satterthwaite(terms)
