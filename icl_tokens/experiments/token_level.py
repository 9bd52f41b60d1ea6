"""Token-level ablation (paper §4.2.2, Table 4; paper-spec E4).

Where the representation-level ablation hides a kind's *representations* from the test example,
this removes the kind's *tokens* from the prompt (:mod:`icl_tokens.ablation.removal`). Each
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
from typing import Any, Sequence

from ..ablation.condition import Options
from ..ablation.conditions import REGISTRY
from ..ablation.removal import SCOPES, TokenRemoval
from ..engine.items import Item, LabelSet
from ..episodes import Episode
from ..tasks import TaskSpec
from .claims import Claim, Pattern
from .config import RunConfig
from .items import prompt_item
from .runner import run_config

__all__ = ["TokenAblationConfig", "token_items", "run_token_ablation", "REMOVAL_COLUMNS",
           "TOKEN_COLUMNS", "TABLE4_ROWS", "PATTERNS"]

REMOVAL_COLUMNS = ("removed_template", "removed_stopword", "removed_content")
#: The columns a token-level row adds: the removed counts and the scope.
TOKEN_COLUMNS = REMOVAL_COLUMNS + ("scope",)
#: Our token-level condition → the row of paper Table 4 (−TEMP is not printed: 0 everywhere).
TABLE4_ROWS = {c.name: c.label for c in REGISTRY.conditions(REGISTRY.defaults("token"), "token")
               if c.table == 4}

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
    namespace = "token"

    conditions: tuple[str, ...] = ("all",)
    scope: str = "all"
    restore_in_demos: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.parse_conditions()
        if self.scope not in SCOPES:
            raise ValueError(f"unknown scope {self.scope!r}; use one of {SCOPES}.")
        conds = self.condition_objects()
        if self.restore_in_demos and not any(c.keep_last for c in conds):
            raise ValueError("restore_in_demos applies to icl-template+last, which is not among "
                             f"the conditions {list(self.conditions)}.")
        if self.k == 0 and any(c.removal for c in conds):
            raise ValueError("k=0 leaves no demonstrations; token-level removal needs k >= 1.")

    def options(self) -> Options:
        return Options(scope=self.scope, restore_in_demos=self.restore_in_demos)

    def removal(self, condition: str) -> TokenRemoval:
        restore = self.restore_in_demos and REGISTRY.get(condition, "token").keep_last
        return TokenRemoval(condition, scope=self.scope, restore_in_demos=restore)

    def extra_columns(self) -> tuple[str, ...]:
        return TOKEN_COLUMNS


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


#: Run (or resume) a token-level ablation and return its tidy rows (the one runner).
run_token_ablation = run_config
