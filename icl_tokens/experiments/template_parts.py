"""Template parts (paper §5.1, Tables 5 and 6; paper-spec E5 and §10 #10–11).

The test example (and every generated token) sees only template tokens of the demonstrations —
their stopword and content tokens are hidden — and only some of them:

==================  =====================================================  ==============
condition           visible demonstration tokens                          paper cell
==================  =====================================================  ==============
``temp+label``      every T_in and T_out token (``\\n`` included), labels  Table 5 TEMP
``t_out+label``     T_out tokens only (``Answer``, ``:``, ``\\n\\n``), labels   Table 5 −T_in
``t_in+label``      T_in tokens only (``Article``, ``:``, ``\\n``), labels     Table 5 −T_out
``*-colon+label``   the same minus every template colon                    "w/o :"
``*-label``         the same with the label words hidden                   Table 6
==================  =====================================================  ==============

A token is visible if it carries a visible part (a merged ``.\\n`` is a T_in newline, so it
stays visible under ``t_in``). ``temp+label`` hides exactly what the representation-level
``+template`` hides: the identity of Tables 2 and 5 (tested: identical predictions).

    >>> [c for c in PART_CONDITIONS if c.startswith("t_out")]
    ['t_out+label', 't_out-colon+label', 't_out-label', 't_out-colon-label']
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ablation.conditions import PART_CONDITIONS, REGISTRY, part_knockout
from .claims import Claim, Pattern
from .config import RunConfig
from .runner import run_config

__all__ = ["PartsConfig", "PART_CONDITIONS", "PAPER_CELLS", "part_knockout",
           "run_template_parts", "PATTERNS"]

#: Condition → (paper table, setting, variant) in ``data/reference``.
PAPER_CELLS: dict[str, tuple[int, str, str]] = {
    c.name: (c.table, c.label, c.spec)
    for c in REGISTRY.conditions(REGISTRY.defaults("template-parts"), "template-parts")}


_P = "parts"
#: Paper-spec §8 target 5 (Table 5: label words visible), decided by
#: :mod:`icl_tokens.analysis.verdicts`.
PATTERNS: tuple[Pattern, ...] = (
    Pattern("5a", "hiding ':' lowers TEMP", (5,), (
        Claim.between((_P, "temp-colon+label"), (_P, "temp+label"), "negative"),)),
    Pattern("5b", "keeping T_out beats keeping T_in (row −T_in vs −T_out)", (5,), (
        Claim.between((_P, "t_out+label"), (_P, "t_in+label"), "positive"),)),
)


@dataclass
class PartsConfig(RunConfig):
    """Arguments of a template-parts run (Tables 5 and 6)."""

    level = "template-parts"
    namespace = "template-parts"

    conditions: tuple[str, ...] = ("all",)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.parse_conditions()
        if self.k == 0:
            raise ValueError("k=0 leaves no demonstrations; template parts need k >= 1.")


#: Run (or resume) the template-parts experiment and return its tidy rows (the one runner).
run_template_parts = run_config
