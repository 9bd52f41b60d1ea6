"""Token-level ablation (paper §4.2.2, Table 4; paper-spec E4).

Where the representation-level ablation hides a kind's *representations* from the test example,
this removes the kind's *tokens* from the prompt (:mod:`icl_tokens.prompts.removal`). Each
condition is the ICL item with positions dropped; its prefix shrinks accordingly, so the cached
engine computes one prefix per condition and seed. Rows add ``removed_template``,
``removed_stopword``, ``removed_content`` (tokens dropped, per kind) and ``scope`` (``all`` or
``demos``, so tables built from several files tell the scopes apart) to the usual columns;
``n_tokens`` is the kept prompt's length.

    >>> cfg = TokenAblationConfig(conditions=("-content", "icl-template+last"))
    >>> cfg.conditions
    ('icl-content', 'icl-template+last')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from ..engine.items import Item, LabelSet
from ..episodes import Episode
from ..prompts.removal import SCOPES, TOKEN_CONDITIONS, TokenRemoval, parse_token_condition
from ..tasks import TaskSpec
from .claims import Claim, Pattern
from .config import RunConfig
from .representation import prompt_item
from .runner import RunContext, run_experiment

__all__ = ["TokenAblationConfig", "token_items", "run_token_ablation", "REMOVAL_COLUMNS",
           "TOKEN_COLUMNS", "TABLE4_ROWS", "PATTERNS"]

REMOVAL_COLUMNS = ("removed_template", "removed_stopword", "removed_content")
#: The columns a token-level row adds: the removed counts and the scope.
TOKEN_COLUMNS = REMOVAL_COLUMNS + ("scope",)
#: Our token-level condition → the row of paper Table 4 (−TEMP is not printed: 0 everywhere).
TABLE4_ROWS = {"icl": "Standard ICL", "icl-content": "− CONT", "icl-stopword": "− STOP"}

_T, _R = "token", "representation"
#: Paper-spec §8 targets 3-4 (Table 4, against Table 3), decided by
#: :mod:`icl_tokens.analysis.verdicts`. Target 3 is a difference of differences on the same seeds
#: and examples; "about 0 %" is at most 5 points; "brings accuracy back" is within 15 points of
#: Standard ICL (non-inferiority).
PATTERNS: tuple[Pattern, ...] = (
    Pattern("3", "removing CONT tokens costs more than hiding CONT", (4, 3), (
        Claim(((_T, "icl-content", 1.0), (_T, "icl", -1.0), (_R, "icl-content", -1.0),
               (_R, "icl", 1.0)), "negative",
              text="(token −CONT − ICL) − (representation −CONT − ICL)"),)),
    Pattern("4a", "token-level −TEMP about 0 %", (4,), (
        Claim.cell((_T, "icl-template"), "at_most", 5.0),)),
    Pattern("4b", "restoring the last ':' brings accuracy back", (4,), (
        Claim.between((_T, "icl-template+last"), (_T, "icl"), "at_least", -15.0),)),
)


@dataclass
class TokenAblationConfig(RunConfig):
    """Arguments of a token-level ablation run."""

    level = "token"

    conditions: tuple[str, ...] = tuple(TOKEN_CONDITIONS)
    scope: str = "all"
    restore_in_demos: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        conds = [parse_token_condition(c) for c in self.conditions]
        self.conditions = tuple(dict.fromkeys(conds))
        if not self.conditions:
            raise ValueError("no token-level conditions given.")
        if self.scope not in SCOPES:
            raise ValueError(f"unknown scope {self.scope!r}; use one of {SCOPES}.")
        if self.restore_in_demos and not any(TOKEN_CONDITIONS[c][1] for c in self.conditions):
            raise ValueError("restore_in_demos applies to icl-template+last, which is not among "
                             f"the conditions {list(self.conditions)}.")
        if self.k == 0 and any(c != "icl" for c in self.conditions):
            raise ValueError("k=0 leaves no demonstrations; token-level removal needs k >= 1.")

    def removal(self, condition: str) -> TokenRemoval:
        restore = self.restore_in_demos and TOKEN_CONDITIONS[condition][1]
        return TokenRemoval(condition, scope=self.scope, restore_in_demos=restore)


def token_items(task: TaskSpec, tokenizer: Any, labels: LabelSet, episode: Episode,
                removals: Sequence[TokenRemoval], *, stopword_variant: str = "paper"
                ) -> list[Item]:
    """One item per (test example, token-level condition) of an episode."""
    items: list[Item] = []
    for test in episode.tests:
        icl = prompt_item(task, tokenizer, labels, episode, test,
                          stopword_variant=stopword_variant)
        items.extend(r.apply(icl) for r in removals)  # type: ignore[misc]
    return items


def run_token_ablation(
    cfg: TokenAblationConfig, *, model: Any = None, tokenizer: Any = None,
    out: str | Path | None = None, progress: bool = True,
    log: Callable[[str], None] | None = None, meta: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Run (or resume) a token-level ablation and return its tidy rows (see the module doc)."""
    removals = [cfg.removal(c) for c in cfg.conditions]

    def build(ctx: RunContext, ep: Episode) -> list[Item]:
        return token_items(ctx.task, ctx.tokenizer, ctx.labels, ep, removals,
                           stopword_variant=cfg.stopword_variant)

    return run_experiment(cfg, build, cfg.conditions, model=model, tokenizer=tokenizer, out=out,
                          progress=progress, meta=meta, extra_columns=TOKEN_COLUMNS, log=log)
