"""Token-level removal (paper §4.2.2, Table 4; paper-spec E4 and §10 #12–13).

The tokens of a kind are dropped from the already tokenised prompt (positions removed, never
re-tokenised), in the demonstrations and, by default, in the test example (the paper's
footnote 5):

* a token is dropped only if it carries at least one of template/stopword/content and **all** of
  its kinds are removed; BOS, the instruction and the label words are never dropped;
* so ``icl-template`` keeps the newline tokens (template + stopword: "a basic separator") and a
  demonstration becomes ``{D_in}\\n {label}\\n\\n``, the prompt ends ``{x_test}\\n``;
  ``icl-stopword`` keeps template newlines the same way;
* ``icl-template+last``: as ``icl-template``, then the last prompt token (the ``:`` of the output
  prefix) is kept, so the prompt ends ``{x_test}\\n:``; with ``restore_in_demos`` every
  demonstration's ``T_out`` colon is kept too;
* ``scope="demos"`` keeps the test example intact (a reviewer's question).

    >>> import numpy as np
    >>> from icl_tokens.categorize import BITS
    >>> T, S, C, L = (BITS[k] for k in ("template", "stopword", "content", "label"))
    >>> codes = np.array([T, C, S, T | S, L, T | S])        # Review x . \\n label \\n\\n
    >>> removed_positions(codes, np.zeros(6, int), [()] * 6, {"template"}).tolist()
    [True, False, False, False, False, False]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
from jaxtyping import Bool

from ..categorize import BITS
from .conditions import REGISTRY, TOKEN_CONDITIONS
from .selection import KINDS, kind_rule

__all__ = ["TokenRemoval", "remove_tokens", "TOKEN_CONDITIONS", "removed_positions",
           "removal_counts", "parse_token_condition"]

SCOPES = ("all", "demos")


def parse_token_condition(name: str) -> str:
    """Canonical token-level condition name (``-content`` and the spec names are aliases; the
    names live in the ``token`` namespace of the condition registry)."""
    return REGISTRY.resolve(name, "token")


def removed_positions(
    codes: np.ndarray, demo: np.ndarray, roles: Sequence[Sequence[str]],
    kinds: Iterable[str], *, scope: str = "all", keep_last: bool = False,
    restore_in_demos: bool = False,
) -> Bool[np.ndarray, "pos"]:
    """Which positions a token-level condition drops (True = dropped).

    Args:
        codes: Category bits per token.
        demo: Demonstration index per token (-1 outside).
        roles: Role strings per token (for ``restore_in_demos``).
        kinds: Removed kinds (template, stopword, content).
        scope: ``"all"`` (demonstrations and test example) or ``"demos"``.
        keep_last: Keep the final prompt token (``icl-template+last``).
        restore_in_demos: Also keep every demonstration's ``T_out`` colon.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; use one of {SCOPES}.")
    codes = np.asarray(codes)
    drop = kind_rule(codes, kinds, protected=("bos", "instruction", "label"))
    if scope == "demos":
        drop &= (codes & BITS["test"]) == 0
    if keep_last and len(drop):
        drop[-1] = False
    if restore_in_demos:
        colon = np.array([any(r.endswith(".t_out.colon") and r.startswith("demo_") for r in rs)
                          for rs in roles], dtype=bool)
        drop &= ~colon
    return drop


def removal_counts(codes: np.ndarray, drop: np.ndarray) -> dict[str, int]:
    """How many dropped tokens carry each kind (a token counts once per kind it carries)."""
    codes = np.asarray(codes)[np.asarray(drop, dtype=bool)]
    return {f"removed_{k}": int(((codes & BITS[k]) != 0).sum()) for k in KINDS}


@dataclass(frozen=True)
class TokenRemoval:
    """A token-level condition (a registered ``token`` condition's name) with its options,
    applied to items by :meth:`apply`."""

    condition: str
    scope: str = "all"
    restore_in_demos: bool = False

    def __post_init__(self) -> None:
        cond = REGISTRY.get(self.condition, "token")
        object.__setattr__(self, "condition", cond.name)
        if self.scope not in SCOPES:
            raise ValueError(f"unknown scope {self.scope!r}; use one of {SCOPES}.")
        if self.restore_in_demos and not cond.keep_last:
            raise ValueError(f"restore_in_demos applies to icl-template+last (conditions that "
                             f"keep the last token), not to {self.condition!r}.")

    @property
    def kinds(self) -> frozenset[str]:
        return REGISTRY.get(self.condition, "token").removal or frozenset()

    @property
    def keep_last(self) -> bool:
        return REGISTRY.get(self.condition, "token").keep_last

    def drop(self, item: object) -> np.ndarray:
        """Bool ``[pos]``: what this condition drops from ``item`` (an Item or TokenizedPrompt)."""
        last = self.keep_last
        return removed_positions(item.codes, item.demo, item.roles, self.kinds,  # type: ignore
                                 scope=self.scope, keep_last=last,
                                 restore_in_demos=self.restore_in_demos and last)

    def apply(self, item: object) -> object:
        """The item with the dropped positions removed; ``meta`` gets the removed counts and
        the scope."""
        return remove_tokens(item, self.kinds, keep_last=self.keep_last, scope=self.scope,
                             restore_in_demos=self.restore_in_demos,
                             condition=self.condition)


def remove_tokens(item: Any, kinds: Iterable[str], *, keep_last: bool = False,
                  scope: str = "all", restore_in_demos: bool = False,
                  condition: str | None = None) -> Any:
    """``item`` with the positions of :func:`removed_positions` dropped; ``meta`` gets the
    removed counts (:func:`removal_counts`) and the scope."""
    drop = removed_positions(item.codes, item.demo, item.roles, kinds, scope=scope,
                             keep_last=keep_last, restore_in_demos=restore_in_demos and keep_last)
    return item.keep(~drop, condition=condition,
                     meta={**removal_counts(item.codes, drop), "scope": scope})
