"""The paper's qualitative claims (paper-spec §8) as data: which cells, which direction, which
metric.

A :class:`Pattern` is one of the §8 targets. It holds one or more :class:`Claim`\\ s; each claim
is a *contrast* (a weighted sum of cells, e.g. ``+TEMP − +STOP``) and what the paper says of it:

==============  ===========================================  ================================
kind            the paper says                               example
==============  ===========================================  ================================
``positive``    the contrast is above 0                      +TEMP above +STOP
``negative``    the contrast is below 0                      Swap below Standard ICL
``equivalent``  the contrast lies within ± ``margin``         −CONT within ~2 points of ICL
``at_least``    the contrast is at least ``margin``          −TEMP + ':' within 15 of ICL
``at_most``     the contrast is at most ``margin``           token-level −TEMP about 0 %
==============  ===========================================  ================================

Each pattern is declared once, next to its experiment (``PATTERNS`` in
:mod:`~icl_tokens.experiments.representation`, :mod:`~icl_tokens.experiments.token_level`,
:mod:`~icl_tokens.experiments.template_parts`, :mod:`~icl_tokens.experiments.variants`);
:func:`icl_tokens.analysis.verdicts.verdicts` decides each one from the rows with an interval
(consistent / inconsistent / inconclusive), and :func:`icl_tokens.analysis.verdicts.point_check`
reads the paper's printed means, which have no rows to test.

    >>> c = Claim.between(("representation", "+template"), ("representation", "+stopword"),
    ...                   "positive")
    >>> c.text, [w for _, _, w in c.weights]
    ('+template − +stopword', [1.0, -1.0])
    >>> c.describe(), c.holds_at(3.0), c.holds_at(-1.0)
    ('+template − +stopword > 0', True, False)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Optional

__all__ = ["CellRef", "Claim", "Pattern", "KINDS"]

#: A cell: (experiment, condition); for Tables 8-10 the condition is ``"<table>:<setting>"``.
CellRef = tuple[str, str]
Kind = Literal["positive", "negative", "equivalent", "at_least", "at_most"]
#: The claim kinds (see the module table).
KINDS: tuple[str, ...] = ("positive", "negative", "equivalent", "at_least", "at_most")


@dataclass(frozen=True)
class Claim:
    """One statement about a contrast of cells.

    Attributes:
        weights: ``(experiment, cell, weight)`` terms of the contrast.
        kind: See :data:`KINDS`.
        margin: In display units (points for accuracies): the equivalence margin, or the
            threshold of ``at_least``/``at_most``.
        text: How the contrast reads, e.g. ``"+template − +stopword"``.
    """

    weights: tuple[tuple[str, str, float], ...]
    kind: Kind
    margin: float = 0.0
    text: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown claim kind {self.kind!r}; choose from {list(KINDS)}.")
        if not self.weights:
            raise ValueError("a claim needs at least one cell.")
        if self.kind == "equivalent" and self.margin <= 0:
            raise ValueError("an equivalence claim needs a positive margin.")

    @classmethod
    def between(cls, a: CellRef, b: CellRef, kind: Kind, margin: float = 0.0) -> "Claim":
        """The claim on ``a − b``."""
        return cls(((a[0], a[1], 1.0), (b[0], b[1], -1.0)), kind, margin, f"{a[1]} − {b[1]}")

    @classmethod
    def cell(cls, a: CellRef, kind: Kind, margin: float) -> "Claim":
        """A claim on one cell's value (e.g. its accuracy is at most ``margin``)."""
        return cls(((a[0], a[1], 1.0),), kind, margin, a[1])

    @property
    def experiments(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e for e, _, _ in self.weights))

    @property
    def is_cell(self) -> bool:
        return len(self.weights) == 1

    @property
    def has_margin(self) -> bool:
        """Whether the claim states a margin (in accuracy points), not only a direction."""
        return self.kind not in ("positive", "negative")

    def value(self, mean_of: Callable[[str, str], Optional[float]]) -> float:
        """The contrast on point values (``mean_of(experiment, cell)``; NaN if one is
        missing)."""
        total = 0.0
        for e, c, w in self.weights:
            v = mean_of(e, c)
            if v is None or not math.isfinite(v):
                return math.nan
            total += w * v
        return total

    def holds_at(self, v: float) -> bool:
        """Whether a point value satisfies the claim (no interval: for printed means)."""
        return {"positive": v > 0, "negative": v < 0, "equivalent": abs(v) <= self.margin,
                "at_least": v >= self.margin, "at_most": v <= self.margin}[self.kind]

    def describe(self) -> str:
        """The claim in words, e.g. ``'+template − +stopword > 0'``."""
        op = {"positive": "> 0", "negative": "< 0", "equivalent": f"within ±{self.margin:g}",
              "at_least": f">= {self.margin:g}", "at_most": f"<= {self.margin:g}"}[self.kind]
        return f"{self.text} {op}"


@dataclass(frozen=True)
class Pattern:
    """A paper-spec §8 target: its claims must all be consistent for the pattern to be.

    Attributes:
        key: ``"1"``, ``"2a"``, ...
        name: What the paper says, in words.
        tables: The paper tables it reads.
        claims: Its claims (all must hold).
        metric: The tidy column decided on (the paper's numbers are ``correct``, acc_gen).
    """

    key: str
    name: str
    tables: tuple[int, ...]
    claims: tuple[Claim, ...]
    metric: str = "correct"

    @property
    def experiments(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e for c in self.claims for e in c.experiments))

    def point_check(self, mean_of: Callable[[str, str], Optional[float]]) -> str:
        """'holds' / 'does not hold' on point values, e.g. the paper's printed task means,
        which have no rows to test (our rows get a verdict with an interval:
        :func:`icl_tokens.analysis.verdicts.verdicts`). Empty when a cell is missing."""
        vals = [c.value(mean_of) for c in self.claims]
        if any(not math.isfinite(v) for v in vals):
            return ""
        ok = all(c.holds_at(v) for c, v in zip(self.claims, vals))
        shown = " / ".join(f"{c.text} = {v:+.1f}" for c, v in zip(self.claims, vals))
        return f"{'holds' if ok else 'does not hold'} ({shown}; point values, no test)"

    @property
    def title(self) -> str:
        return f"{self.key}. {self.name} (Table{'s' * (len(self.tables) > 1)} " \
            f"{', '.join(map(str, self.tables))})"
