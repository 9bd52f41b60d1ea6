"""The condition registry: names, aliases, paper labels and order; each condition built from blocks.

Representation-level conditions (paper Tables 2 and 3; paper-spec §6 E1). Every name works as a
bare command-line argument (``--conditions icl-template``); the paper-like spellings
(``-template``, ``minus_temp``, ``only_temp``, Table 15's ``cont_stop``, ...) are aliases.

================  ============================================  =====================
condition         hidden demonstration kinds                    paper name
================  ============================================  =====================
``icl``           none                                          Standard ICL
``icl-template``  template                                      Standard ICL − TEMP
``icl-stopword``  stopword                                      Standard ICL − STOP
``icl-content``   content                                       Standard ICL − CONT
``+template``     stopword, content                             Zero-shot + TEMP
``+stopword``     template, content                             Zero-shot + STOP
``+content``      template, stopword                            Zero-shot + CONT
``none``          template, stopword, content                   (diagnostic: labels only)
``zero_shot``     — a separate prompt without demonstrations    Zero-shot
================  ============================================  =====================

Each masked condition is one :class:`~icl_tokens.ablation.knockout.Block`: queries = the test
example and every generated token; keys = the paper's key rule
(:func:`~icl_tokens.ablation.selection.key_rule`: a key is hidden iff every one of its
template/stopword/content kinds is hidden and it is not BOS, instruction, label or test). Compose
your own in a line::

    >>> from icl_tokens.ablation import Block, Knockout, Sel, knockout_for
    >>> inside = Block(Sel.part("demo"), Sel.category("content"))
    >>> ko = knockout_for("+template") | Knockout((inside,))
    >>> [b.queries.describe() for b in ko.blocks]
    ['(part(test) | generated())', 'part(demo)']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from .knockout import Block, Knockout, ResolvedKnockout
from .selection import KINDS, Sel, SelectionTarget, check_kinds

__all__ = [
    "Condition",
    "REGISTRY",
    "CONDITIONS",
    "PAPER_ORDER",
    "ZERO_SHOT",
    "ALIASES",
    "SPEC_NAMES",
    "CONDITION_LABELS",
    "TABLE2_CONDITIONS",
    "resolve_condition",
    "parse_conditions",
    "hidden_categories",
    "knockout_for",
    "condition_knockout",
    "custom_knockout",
]

ZERO_SHOT = "zero_shot"


@dataclass(frozen=True)
class Condition:
    """One representation-level condition.

    Attributes:
        name: Canonical name (a bare CLI argument).
        hidden: Demonstration kinds hidden from the test example (``None``: a separate prompt).
        label: The paper's row name.
        table: ``2`` (Zero-shot + X; Δ vs Zero-shot), ``3`` (Standard ICL − X; Δ vs Standard)
            or ``0`` (our diagnostic, Δ vs Zero-shot).
        spec: The paper-spec code name.
        aliases: Other accepted spellings.
    """

    name: str
    hidden: frozenset[str] | None
    label: str
    table: int
    spec: str
    aliases: tuple[str, ...] = ()


_T, _S, _C = "template", "stopword", "content"
REGISTRY: tuple[Condition, ...] = (
    Condition(ZERO_SHOT, None, "Zero-shot", 2, "zero_shot", ("zero-shot", "zeroshot")),
    Condition("+content", frozenset({_T, _S}), "+ CONT", 2, "only_cont", ("only_cont", "cont")),
    Condition("+stopword", frozenset({_T, _C}), "+ STOP", 2, "only_stop", ("only_stop", "stop")),
    Condition("+template", frozenset({_S, _C}), "+ TEMP", 2, "only_temp", ("only_temp", "temp")),
    Condition("icl", frozenset(), "Standard ICL", 3, "standard", ("standard",)),
    Condition("icl-content", frozenset({_C}), "- CONT", 3, "minus_cont",
              ("-content", "minus_cont", "temp_stop")),
    Condition("icl-stopword", frozenset({_S}), "- STOP", 3, "minus_stop",
              ("-stopword", "minus_stop", "temp_cont")),
    Condition("icl-template", frozenset({_T}), "- TEMP", 3, "minus_temp",
              ("-template", "minus_temp", "cont_stop")),
    Condition("none", frozenset(KINDS), "all hidden (labels only)", 0, "only_label",
              ("only_label",)),
)
_BY_NAME = {c.name: c for c in REGISTRY}
#: Paper layout: Table 2 rows, then Table 3 rows, then the diagnostic.
PAPER_ORDER: tuple[str, ...] = tuple(c.name for c in REGISTRY)
#: Masked conditions → hidden kinds.
CONDITIONS: dict[str, frozenset[str]] = {c.name: c.hidden for c in REGISTRY
                                         if c.hidden is not None}
#: Alias → canonical name.
ALIASES: dict[str, str] = {a: c.name for c in REGISTRY for a in c.aliases}
#: Canonical name → paper-spec code name.
SPEC_NAMES: dict[str, str] = {c.name: c.spec for c in REGISTRY}
#: Canonical name → the paper's row label.
CONDITION_LABELS: dict[str, str] = {c.name: c.label for c in REGISTRY}
#: Rows whose Δ is taken against Zero-shot (Table 2 and the diagnostic).
TABLE2_CONDITIONS: tuple[str, ...] = tuple(c.name for c in REGISTRY if c.table in (0, 2))


def resolve_condition(name: str) -> str:
    """Canonical condition name (accepts the aliases); clear error if unknown."""
    name = ALIASES.get(name, name)
    if name in _BY_NAME:
        return name
    raise ValueError(
        f"unknown condition {name!r}; choose from {list(PAPER_ORDER)} (aliases: "
        f"{sorted(ALIASES)})."
    )


def parse_conditions(spec: str | Sequence[str]) -> list[str]:
    """``"all"`` or a comma-separated list / sequence of names → canonical, de-duplicated."""
    items = spec.split(",") if isinstance(spec, str) else [str(s) for s in spec]
    items = [s.strip() for s in items if s.strip()]
    if items == ["all"]:
        return list(PAPER_ORDER)
    if not items:
        raise ValueError("no conditions given; use 'all' or e.g. 'icl,icl-template'.")
    out: list[str] = []
    for s in items:
        c = resolve_condition(s)
        if c not in out:
            out.append(c)
    return out


def hidden_categories(condition_or_hidden: str | Iterable[str]) -> frozenset[str]:
    """Hidden demonstration kinds for a named condition, or a validated custom set."""
    if isinstance(condition_or_hidden, str):
        c = _BY_NAME[resolve_condition(condition_or_hidden)]
        if c.hidden is None:
            raise ValueError("zero_shot is a separate prompt, not a mask over the ICL prompt.")
        return c.hidden
    return check_kinds(condition_or_hidden)


def _queries(query_scope: str) -> Sel:
    if query_scope == "test":
        return Sel.test()
    if query_scope == "last":
        return Sel.last() | Sel.generated()
    raise ValueError(f"unknown query_scope {query_scope!r}; use 'test' or 'last'.")


def knockout_for(
    condition: str | Iterable[str],
    *,
    hide_bos: bool = False,
    query_scope: str = "test",
    layers: Iterable[int] | None = None,
    heads: Iterable[int] | None = None,
    mode: str = "scores",
) -> Knockout:
    """The knockout of a named condition (or a custom set of hidden kinds), as blocks.

    Args:
        condition: A name from :data:`PAPER_ORDER` (or an alias) other than ``zero_shot``, or an
            iterable of kinds to hide.
        hide_bos: Also hide BOS (paper Appendix B accident; a sensitivity check).
        query_scope: ``"test"`` (every test token and generated token; the paper's rule) or
            ``"last"`` (only the final prompt token and generated tokens; a diagnostic).
        layers, heads: Restrict the knockout to these layers / query heads (default: all).
        mode: ``"scores"`` or ``"pattern"``.

    Returns:
        A :class:`Knockout` (no blocks for ``icl`` without ``hide_bos``).
    """
    hidden = hidden_categories(condition)
    name = (resolve_condition(condition) if isinstance(condition, str)
            else "hide:" + "+".join(sorted(hidden)))
    keys = Sel.hidden_kinds(hidden, hide_bos=hide_bos)
    blocks: tuple[Block, ...] = ()
    if hidden or hide_bos:
        lay = None if layers is None else tuple(layers)
        hd = None if heads is None else tuple(heads)
        blocks = (Block(_queries(query_scope), keys, lay, hd),)
    return Knockout(blocks, name=name, mode=mode)


def condition_knockout(
    item: SelectionTarget, condition: str | Iterable[str], **kw: object
) -> ResolvedKnockout:
    """:func:`knockout_for` evaluated on one categorized prompt or item (for pictures, checks).

    ``condition_knockout(tp, "+template").dense()`` is the ``[q, k]`` mask (True = blocked).
    """
    return knockout_for(condition, **kw).resolve(item)  # type: ignore[arg-type]


def custom_knockout(
    *,
    hidden: Iterable[str] | None = None,
    queries: Sel | None = None,
    keys: Sel | None = None,
    hide_bos: bool = False,
    layers: Iterable[int] | None = None,
    heads: Iterable[int] | None = None,
    mode: str = "scores",
    name: str = "custom",
) -> Knockout:
    """One block: ``queries`` (default: the test example + generated tokens) may not see the keys
    hidden by the key rule for ``hidden`` kinds, OR-ed with ``keys``.

    A demonstration-internal block (queries inside the demonstrations) changes demonstration
    representations; the cached engine then caches the prefix computed under it.
    """
    key = Sel.hidden_kinds(hidden or (), hide_bos=hide_bos)
    if keys is not None:
        key = key | keys
    q = Sel.test() if queries is None else queries
    return Knockout((Block(q, key, None if layers is None else tuple(layers),
                           None if heads is None else tuple(heads)),), name=name, mode=mode)
