"""Knockout masks: categorized prompt + condition → boolean ``[query, key]`` masks (True = blocked).

Named conditions (paper Tables 2 and 3; paper-spec §6 E1):

=============  ============================================  =====================
condition      hidden demonstration categories               paper name
=============  ============================================  =====================
``icl``        none                                          Standard ICL
``-template``  template                                      Standard ICL − TEMP
``-stopword``  stopword                                      Standard ICL − STOP
``-content``   content                                       Standard ICL − CONT
``+template``  stopword, content                             Zero-shot + TEMP
``+stopword``  template, content                             Zero-shot + STOP
``+content``   template, stopword                            Zero-shot + CONT
``none``       template, stopword, content                   (diagnostic: labels only)
``zero_shot``  — a separate prompt without demonstrations    Zero-shot
=============  ============================================  =====================

Key rule: a key is hidden iff none of its categories is ``bos``, ``instruction``, ``label`` or
``test`` and every one of its ``template``/``stopword``/``content`` categories is hidden (so a
newline, template + stopword, stays visible while either kind is visible). Queries are the test
tokens and every generated token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
from jaxtyping import Bool
from torch import Tensor

from ..categorize import BITS, CATEGORIES, TokenizedPrompt

__all__ = [
    "CONDITIONS",
    "PAPER_ORDER",
    "ZERO_SHOT",
    "KINDS",
    "ALWAYS_VISIBLE",
    "ALIASES",
    "Knockout",
    "resolve_condition",
    "hidden_categories",
    "key_hidden",
    "condition_knockout",
    "parse_conditions",
    "custom_knockout",
    "SPEC_NAMES",
]

ZERO_SHOT = "zero_shot"
KINDS: tuple[str, ...] = ("template", "stopword", "content")
ALWAYS_VISIBLE: tuple[str, ...] = ("bos", "instruction", "label", "test")

CONDITIONS: dict[str, frozenset[str]] = {
    "icl": frozenset(),
    "-template": frozenset({"template"}),
    "-stopword": frozenset({"stopword"}),
    "-content": frozenset({"content"}),
    "+template": frozenset({"stopword", "content"}),
    "+stopword": frozenset({"template", "content"}),
    "+content": frozenset({"template", "stopword"}),
    "none": frozenset(KINDS),
}
#: Paper layout: Table 2 rows, then Table 3 rows, then the diagnostic.
PAPER_ORDER: tuple[str, ...] = (
    ZERO_SHOT, "+content", "+stopword", "+template",
    "icl", "-content", "-stopword", "-template", "none",
)
#: paper-spec §6 code names and Table 15 names → our names.
ALIASES: dict[str, str] = {
    "standard": "icl", "minus_temp": "-template", "minus_stop": "-stopword",
    "minus_cont": "-content", "only_temp": "+template", "only_stop": "+stopword",
    "only_cont": "+content", "only_label": "none", "zero-shot": ZERO_SHOT,
    "temp": "+template", "stop": "+stopword", "cont": "+content",
    "temp_cont": "-stopword", "cont_stop": "-template", "temp_stop": "-content",
}


#: Our names → paper-spec §6 code names.
SPEC_NAMES: dict[str, str] = {
    "zero_shot": "zero_shot", "+content": "only_cont", "+stopword": "only_stop",
    "+template": "only_temp", "icl": "standard", "-content": "minus_cont",
    "-stopword": "minus_stop", "-template": "minus_temp", "none": "only_label",
}


def resolve_condition(name: str) -> str:
    """Canonical condition name (accepts paper-spec aliases); clear error if unknown."""
    name = ALIASES.get(name, name)
    if name == ZERO_SHOT or name in CONDITIONS:
        return name
    raise ValueError(
        f"unknown condition {name!r}; choose from {list(PAPER_ORDER)} (or the aliases "
        f"{sorted(ALIASES)})."
    )


def parse_conditions(spec: str | Sequence[str]) -> list[str]:
    """``"all"`` or a comma-separated list / sequence of names → canonical, de-duplicated."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    items = [s.strip() for s in items if s.strip()]
    if items == ["all"]:
        return list(PAPER_ORDER)
    if not items:
        raise ValueError("no conditions given; use 'all' or e.g. 'icl,-template'.")
    out: list[str] = []
    for s in items:
        c = resolve_condition(s)
        if c not in out:
            out.append(c)
    return out


def hidden_categories(condition_or_hidden: str | Iterable[str]) -> frozenset[str]:
    """Hidden demonstration kinds for a named condition, or a validated custom set."""
    if isinstance(condition_or_hidden, str):
        c = resolve_condition(condition_or_hidden)
        if c == ZERO_SHOT:
            raise ValueError("zero_shot is a separate prompt, not a mask over the ICL prompt.")
        return CONDITIONS[c]
    hidden = frozenset(condition_or_hidden)
    bad = sorted(hidden - set(KINDS))
    if bad:
        hint = " (always visible)" if set(bad) & set(ALWAYS_VISIBLE) else ""
        raise ValueError(
            f"cannot hide categories {bad}{hint}; a hidden set takes only {list(KINDS)}. "
            f"Known categories: {list(CATEGORIES)}. Use hide_bos=True to hide BOS."
        )
    return hidden


def key_hidden(
    codes: np.ndarray, hidden: frozenset[str], *, hide_bos: bool = False
) -> np.ndarray:
    """Which positions are hidden keys under ``hidden`` (the key rule in the module docstring)."""
    keep = 0
    for c in ALWAYS_VISIBLE:
        if not (c == "bos" and hide_bos):
            keep |= BITS[c]
    kinds = sum(BITS[k] for k in KINDS)
    hidden_bits = sum(BITS[k] for k in hidden)
    has_kind = (codes & kinds) != 0
    all_hidden = (codes & kinds & ~hidden_bits) == 0
    out = has_kind & all_hidden & ((codes & keep) == 0)
    if hide_bos:
        out |= (codes & BITS["bos"]) != 0
    return out


@dataclass(frozen=True)
class Knockout:
    """A knockout over one prompt: which queries may not see which keys.

    The mask is ``query[:, None] & key[None, :]`` (every E1 mask has this form) unless
    ``pairs`` is given. Positions past the prompt (generated tokens) are queries when
    ``query_generated`` and never hidden keys.

    Attributes:
        query: Bool ``[pos]``: restricted query positions.
        key: Bool ``[pos]``: hidden key positions.
        pairs: Optional explicit Bool ``[pos, pos]`` mask (overrides ``query``/``key``).
        query_generated: Generated tokens are restricted queries too (the paper's rule).
        name: Condition name for logs.
    """

    query: np.ndarray
    key: np.ndarray
    pairs: np.ndarray | None = None
    query_generated: bool = True
    name: str = "custom"

    @property
    def n(self) -> int:
        return len(self.key)

    @property
    def is_empty(self) -> bool:
        if self.pairs is not None:
            return not bool(self.pairs.any())
        return not (bool(self.query.any()) or self.query_generated) or not bool(self.key.any())

    @property
    def first_query(self) -> int | None:
        """The earliest restricted query position (``None`` if no prompt position is restricted).

        A cached demonstration prefix is only valid when this lies inside the test example.
        """
        q = self.query_positions()
        return int(q[0]) if len(q) else None

    def dense(self, total: int | None = None) -> Bool[Tensor, "q k"]:
        """The ``[total, total]`` boolean mask (True = blocked), extended to generated tokens."""
        n = self.n
        total = n if total is None else total
        if total < n:
            raise ValueError(f"mask for {n} positions asked for only {total}.")
        if self.pairs is not None:
            m = np.zeros((total, total), dtype=bool)
            m[:n, :n] = self.pairs
            return torch.from_numpy(m)
        q = np.zeros(total, dtype=bool)
        q[:n] = self.query
        q[n:] = self.query_generated
        k = np.zeros(total, dtype=bool)
        k[:n] = self.key
        return torch.from_numpy(np.outer(q, k))

    def rows(self, q_positions: Sequence[int] | np.ndarray, total: int) -> Bool[Tensor, "q k"]:
        """Mask rows for the given absolute query positions over ``total`` keys."""
        qpos = np.asarray(q_positions)
        if self.pairs is not None:
            return self.dense(total)[torch.as_tensor(qpos)]
        q = np.where(qpos < self.n, self.query[np.minimum(qpos, self.n - 1)], self.query_generated)
        k = np.zeros(total, dtype=bool)
        k[: self.n] = self.key
        return torch.from_numpy(np.outer(q, k))

    def query_positions(self) -> np.ndarray:
        """Absolute positions of restricted queries inside the prompt."""
        q = self.pairs.any(axis=1) if self.pairs is not None else self.query
        return np.flatnonzero(q)

    def validate(self) -> "Knockout":
        """Raise if a query is blocked from itself (which could leave a row fully masked)."""
        m = self.dense().numpy()
        # A query that keeps its own position always has a visible key, so this one check
        # also rules out fully masked rows (a softmax over -inf).
        if np.any(np.diag(m)):
            i = int(np.flatnonzero(np.diag(m))[0])
            raise ValueError(f"knockout blocks query {i} from itself; never hide a query's own "
                             "position (its softmax row could be left with nothing).")
        return self


def condition_knockout(
    tp: TokenizedPrompt,
    condition: str | Iterable[str],
    *,
    hide_bos: bool = False,
    query_scope: str = "test",
) -> Knockout:
    """The knockout of a named condition (or custom hidden set) on one categorized prompt.

    Args:
        tp: The categorized ICL prompt.
        condition: A name from :data:`CONDITIONS` (or alias) or an iterable of kinds to hide.
        hide_bos: Also hide BOS (paper Appendix B accident; a sensitivity check).
        query_scope: ``"test"`` (every test token and generated token; the paper's rule) or
            ``"last"`` (only the final prompt token and generated tokens; a diagnostic).
    """
    hidden = hidden_categories(condition)
    name = condition if isinstance(condition, str) else "hide:" + "+".join(sorted(hidden))
    key = key_hidden(tp.codes, hidden, hide_bos=hide_bos)
    if query_scope == "test":
        query = tp.is_test.copy()
    elif query_scope == "last":
        query = np.zeros(len(tp), dtype=bool)
        query[-1] = True
    else:
        raise ValueError(f"unknown query_scope {query_scope!r}; use 'test' or 'last'.")
    return Knockout(query=query, key=key, name=str(name))


def _is_bool_selection(sel: object) -> bool:
    return isinstance(sel, np.ndarray) or (
        isinstance(sel, (list, tuple)) and bool(sel) and isinstance(sel[0], (bool, np.bool_)))


def _positions(tp: TokenizedPrompt, sel: Iterable[str] | np.ndarray | None, default: np.ndarray
               ) -> np.ndarray:
    if sel is None:
        return default
    if _is_bool_selection(sel):
        arr = np.asarray(sel, dtype=bool)
        if arr.shape != (len(tp),):
            raise ValueError(f"position selection has shape {arr.shape}; expected ({len(tp)},).")
        return arr
    names = list(sel)  # category names: tokens carrying any of them
    bad = sorted(set(names) - set(CATEGORIES))
    if bad:
        raise ValueError(f"unknown categories {bad}; known: {list(CATEGORIES)}.")
    out = np.zeros(len(tp), dtype=bool)
    for n in names:
        out |= tp.has(n)
    return out


def custom_knockout(
    tp: TokenizedPrompt,
    *,
    hidden: Iterable[str] | None = None,
    queries: Iterable[str] | np.ndarray | None = None,
    keys: Iterable[str] | np.ndarray | None = None,
    demo_keys_only: bool = True,
    query_generated: bool = True,
    hide_bos: bool = False,
    name: str = "custom",
) -> Knockout:
    """A knockout with any hidden set and any query/key selection.

    Args:
        hidden: Kinds to hide under the standard key rule (default: none).
        queries: Restricted queries: category names (tokens with any of them) or a Bool
            ``[pos]`` array. Default: the test tokens. Demonstration queries make the mask
            *demonstration-internal* (not valid for the cached engine).
        keys: Extra hidden keys: category names or a Bool ``[pos]`` array, OR-ed with the
            ``hidden`` rule. With category names and ``demo_keys_only``, only demonstration
            tokens are taken.
        query_generated: Whether generated tokens are restricted too.
        hide_bos: Hide BOS as well.
    """
    key = key_hidden(tp.codes, hidden_categories(hidden or ()), hide_bos=hide_bos)
    extra = _positions(tp, keys, np.zeros(len(tp), dtype=bool))
    if keys is not None and not _is_bool_selection(keys) and demo_keys_only:
        extra &= tp.demo >= 0
    query = _positions(tp, queries, tp.is_test.copy())
    return Knockout(query=query, key=key | extra, query_generated=query_generated,
                    name=name).validate()
