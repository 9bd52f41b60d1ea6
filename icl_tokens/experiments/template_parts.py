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
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ..ablation.knockout import Block, Knockout
from ..ablation.selection import Sel
from ..engine.items import Item
from ..episodes import Episode
from .claims import Claim, Pattern
from .config import RunConfig
from .representation import representation_items
from .runner import RunContext, run_experiment

__all__ = ["PartsConfig", "PART_CONDITIONS", "PAPER_CELLS", "part_knockout",
           "run_template_parts", "PATTERNS"]

_PARTS = {"temp": Sel.category("template") & Sel.part("demo"),
          "t_out": Sel.category("template") & Sel.role("demo_*.t_out.*"),
          "t_in": Sel.category("template") & Sel.role("demo_*.t_in.*")}
_COLON = Sel.role("demo_*.t_in.colon", "demo_*.t_out.colon")
_ROW = {"temp": ("TEMP+D_out", "TEMP w/o D_out"), "t_out": ("−T_in", "−T_in"),
        "t_in": ("−T_out", "−T_out")}

#: Condition → (part, with colon, labels visible).
PART_CONDITIONS: dict[str, tuple[str, bool, bool]] = {
    f"{part}{'' if colon else '-colon'}{'+label' if label else '-label'}": (part, colon, label)
    for part in ("temp", "t_out", "t_in") for label in (True, False) for colon in (True, False)
}
#: Condition → (paper table, setting, variant) in ``data/reference``.
PAPER_CELLS: dict[str, tuple[int, str, str]] = {
    name: (5 if label else 6, _ROW[part][0 if label else 1],
           "with_colon" if colon else "without_colon")
    for name, (part, colon, label) in PART_CONDITIONS.items()
}


_P = "parts"
#: Paper-spec §8 target 5 (Table 5: label words visible), decided by
#: :mod:`icl_tokens.analysis.verdicts`.
PATTERNS: tuple[Pattern, ...] = (
    Pattern("5a", "hiding ':' lowers TEMP", (5,), (
        Claim.between((_P, "temp-colon+label"), (_P, "temp+label"), "negative"),)),
    Pattern("5b", "keeping T_out beats keeping T_in (row −T_in vs −T_out)", (5,), (
        Claim.between((_P, "t_out+label"), (_P, "t_in+label"), "positive"),)),
)

def part_knockout(condition: str) -> Knockout:
    """The knockout of one template-part condition: the test example may not see any
    demonstration token outside the visible set."""
    if condition not in PART_CONDITIONS:
        raise ValueError(f"unknown template-part condition {condition!r}; choose from "
                         f"{list(PART_CONDITIONS)}.")
    part, colon, label = PART_CONDITIONS[condition]
    visible = _PARTS[part] if colon else _PARTS[part] & ~_COLON
    if label:
        visible = visible | Sel.category("label")
    return Knockout((Block(Sel.test(), Sel.part("demo") & ~visible),), name=condition)


@dataclass
class PartsConfig(RunConfig):
    """Arguments of a template-parts run (Tables 5 and 6)."""

    level = "template-parts"

    conditions: tuple[str, ...] = tuple(PART_CONDITIONS)

    def __post_init__(self) -> None:
        super().__post_init__()
        for c in self.conditions:
            part_knockout(c)  # validates the name
        self.conditions = tuple(dict.fromkeys(self.conditions))
        if not self.conditions:
            raise ValueError("no template-part conditions given.")
        if self.k == 0:
            raise ValueError("k=0 leaves no demonstrations; template parts need k >= 1.")


def run_template_parts(
    cfg: PartsConfig, *, model: Any = None, tokenizer: Any = None,
    out: str | Path | None = None, progress: bool = True,
    log: Callable[[str], None] | None = None, meta: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Run (or resume) the template-parts experiment and return its tidy rows."""
    def build(ctx: RunContext, ep: Episode) -> list[Item]:
        return representation_items(ctx.task, ctx.tokenizer, ctx.labels, ep, cfg.conditions,
                                    part_knockout, stopword_variant=cfg.stopword_variant)

    return run_experiment(cfg, build, cfg.conditions, model=model, tokenizer=tokenizer, out=out,
                          progress=progress, meta=meta, log=log)
