"""The paper's conditions, declared once as :class:`~.condition.Condition` objects in the one
registry (:data:`REGISTRY`), and the views every table, command and plot derives from it.

Representation level (paper Tables 2 and 3; paper-spec §6 E1). Every name works as a bare
command-line argument (``--conditions icl-template``); the paper-like spellings (``-template``,
``minus_temp``, ``only_temp``, Table 15's ``cont_stop``, ...) are aliases.

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
``+colon``        all but the template colons and label words   Table 10 Zero-shot + ":"
================  ============================================  =====================

A kind-based condition hides, from the test example and every generated token, the keys of the
paper's key rule (:func:`~icl_tokens.ablation.selection.key_rule`: a key is hidden iff every one
of its template/stopword/content kinds is hidden and it is not BOS, instruction, label or test).
The token level (``token`` namespace, Table 4) drops the same kinds' tokens instead
(:mod:`icl_tokens.ablation.removal`); the template parts (``template-parts`` namespace, Tables 5
and 6) show the test example only some template tokens. Compose your own in a line::

    >>> from icl_tokens.ablation import Block, Knockout, Sel, knockout_for
    >>> inside = Block(Sel.part("demo"), Sel.category("content"))
    >>> ko = knockout_for("+template") | Knockout((inside,))
    >>> [b.queries.describe() for b in ko.blocks]
    ['(part(test) | generated())', 'part(demo)']
"""

from __future__ import annotations

from typing import Iterable, Sequence

from .condition import Condition, Options
from .knockout import Block, Knockout, ResolvedKnockout
from .registry import ConditionRegistry
from .selection import KINDS, Sel, SelectionTarget, check_kinds

__all__ = [
    "Condition", "Options", "REGISTRY", "register_condition", "get_condition", "CONDITIONS",
    "PAPER_ORDER", "ZERO_SHOT", "COLON_ONLY", "ALIASES", "SPEC_NAMES", "CONDITION_LABELS",
    "TABLE2_CONDITIONS", "TOKEN_CONDITIONS", "PART_CONDITIONS", "resolve_condition",
    "parse_conditions", "hidden_categories", "knockout_for", "condition_knockout",
    "custom_knockout", "part_knockout",
]

ZERO_SHOT = "zero_shot"
#: Table 10's "Zero-shot + ':'": only the template colons and the label words visible.
COLON_ONLY = "+colon"
_T, _S, _C = "template", "stopword", "content"
_K = frozenset

#: The one registry of conditions.
REGISTRY = ConditionRegistry()


def register_condition(condition: Condition, namespace: str = "representation", *,
                       replace: bool = False) -> Condition:
    """Register a user's condition: every command, table and the explorer can then use it by
    name (``namespace``: ``representation``, ``token`` or ``template-parts``)."""
    return REGISTRY.register(condition, namespace, replace=replace)


def get_condition(name: str, namespace: str = "representation") -> Condition:
    """The registered condition ``name`` (or an alias) of ``namespace``."""
    return REGISTRY.get(name, namespace)


def _declare_representation(reg: ConditionRegistry) -> None:
    """Paper Tables 2 and 3 (Table 2's rows, then Table 3's, then the diagnostic)."""
    for c in (
        Condition(ZERO_SHOT, shots=0, label="Zero-shot", table=2, spec="zero_shot",
                  aliases=("zero-shot", "zeroshot")),
        Condition("+content", hidden=_K({_T, _S}), label="+ CONT", table=2, spec="only_cont",
                  aliases=("only_cont", "cont")),
        Condition("+stopword", hidden=_K({_T, _C}), label="+ STOP", table=2, spec="only_stop",
                  aliases=("only_stop", "stop")),
        Condition("+template", hidden=_K({_S, _C}), label="+ TEMP", table=2, spec="only_temp",
                  aliases=("only_temp", "temp")),
        Condition("icl", hidden=_K(), label="Standard ICL", table=3, spec="standard",
                  aliases=("standard",)),
        Condition("icl-content", hidden=_K({_C}), label="- CONT", table=3, spec="minus_cont",
                  aliases=("-content", "minus_cont", "temp_stop")),
        Condition("icl-stopword", hidden=_K({_S}), label="- STOP", table=3, spec="minus_stop",
                  aliases=("-stopword", "minus_stop", "temp_cont")),
        Condition("icl-template", hidden=_K({_T}), label="- TEMP", table=3, spec="minus_temp",
                  aliases=("-template", "minus_temp", "cont_stop")),
        Condition("none", hidden=_K(KINDS), label="all hidden (labels only)", table=0,
                  spec="only_label", aliases=("only_label",)),
    ):
        reg.register(c, "representation", default=True)
    visible = Sel.role("demo_*.t_in.colon", "demo_*.t_out.colon") | Sel.category("label")
    reg.register(Condition(COLON_ONLY, knockout=Knockout(
        (Block(Sel.test(), Sel.part("demo") & ~visible),), name=COLON_ONLY),
        label='Zero-shot + ":"', table=10,
        doc="only the template colons and the label words of the demonstrations visible"),
        "representation")


def _declare_token(reg: ConditionRegistry) -> None:
    """Paper Table 4: the kinds' tokens dropped from the prompt."""
    for name, kinds, last, label, aliases in (
        ("icl", (), False, "Standard ICL", ("standard",)),
        ("icl-content", (_C,), False, "− CONT", ("-content", "minus_cont")),
        ("icl-stopword", (_S,), False, "− STOP", ("-stopword", "minus_stop")),
        ("icl-template", (_T,), False, "", ("-template", "minus_temp")),
        ("icl-template+last", (_T,), True, "", ("-template+last",)),
    ):
        reg.register(Condition(name, removal=_K(kinds), keep_last=last, label=label,
                               table=4 if label else 0, aliases=aliases), "token", default=True)


_PARTS = {"temp": Sel.category("template") & Sel.part("demo"),
          "t_out": Sel.category("template") & Sel.role("demo_*.t_out.*"),
          "t_in": Sel.category("template") & Sel.role("demo_*.t_in.*")}
_COLON = Sel.role("demo_*.t_in.colon", "demo_*.t_out.colon")
_ROW = {"temp": ("TEMP+D_out", "TEMP w/o D_out"), "t_out": ("−T_in", "−T_in"),
        "t_in": ("−T_out", "−T_out")}


def _declare_parts(reg: ConditionRegistry) -> None:
    """Paper Tables 5 and 6: the test example sees only some demonstration template tokens."""
    for part in ("temp", "t_out", "t_in"):
        for label in (True, False):
            for colon in (True, False):
                name = f"{part}{'' if colon else '-colon'}{'+label' if label else '-label'}"
                visible = _PARTS[part] if colon else _PARTS[part] & ~_COLON
                if label:
                    visible = visible | Sel.category("label")
                ko = Knockout((Block(Sel.test(), Sel.part("demo") & ~visible),), name=name)
                reg.register(Condition(
                    name, knockout=ko, table=5 if label else 6,
                    label=_ROW[part][0 if label else 1],
                    spec="with_colon" if colon else "without_colon",
                    meta=()), "template-parts", default=True)


_declare_representation(REGISTRY)
_declare_token(REGISTRY)
_declare_parts(REGISTRY)

#: Paper layout of the representation level: Table 2 rows, then Table 3 rows, the diagnostic.
PAPER_ORDER: tuple[str, ...] = REGISTRY.defaults("representation")
_REP = REGISTRY.conditions(PAPER_ORDER)
#: Masked representation conditions → hidden kinds.
CONDITIONS: dict[str, frozenset[str]] = {c.name: c.hidden for c in _REP if c.hidden is not None}
#: Alias → canonical name (representation level).
ALIASES: dict[str, str] = REGISTRY.aliases("representation")
#: Canonical name → paper-spec code name.
SPEC_NAMES: dict[str, str] = {c.name: c.spec for c in _REP}
#: Canonical name → the paper's row label.
CONDITION_LABELS: dict[str, str] = {c.name: c.label for c in _REP}
#: Rows whose Δ is taken against Zero-shot (Table 2 and the diagnostic).
TABLE2_CONDITIONS: tuple[str, ...] = tuple(c.name for c in _REP if c.table in (0, 2))
#: Token-level conditions: name → (removed kinds, keep the last prompt token).
TOKEN_CONDITIONS: dict[str, tuple[frozenset[str], bool]] = {
    c.name: (c.removal or frozenset(), c.keep_last)
    for c in REGISTRY.conditions(REGISTRY.defaults("token"), "token")}
#: Template-part conditions: name → (part, with colon, labels visible).
PART_CONDITIONS: dict[str, tuple[str, bool, bool]] = {
    n: (n.split("-")[0].split("+")[0], "-colon" not in n, n.endswith("+label"))
    for n in REGISTRY.defaults("template-parts")}


def resolve_condition(name: str, namespace: str = "representation") -> str:
    """Canonical condition name (accepts the aliases); clear error if unknown."""
    return REGISTRY.resolve(name, namespace)


def parse_conditions(spec: str | Sequence[str], namespace: str = "representation") -> list[str]:
    """``"all"`` or a comma-separated list / sequence of names → canonical, de-duplicated."""
    return REGISTRY.parse(spec, namespace)


def hidden_categories(condition_or_hidden: str | Iterable[str]) -> frozenset[str]:
    """Hidden demonstration kinds for a named kind-based condition, or a validated custom set."""
    if isinstance(condition_or_hidden, str):
        c = REGISTRY.get(condition_or_hidden)
        if c.hidden is None:
            raise ValueError(f"{c.name} hides no kinds by the key rule (it is "
                             f"{'a separate prompt' if c.zero_shot else 'an explicit knockout'}).")
        return c.hidden
    return check_kinds(condition_or_hidden)


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
        condition: A representation-level name (or alias) other than ``zero_shot``, or an
            iterable of kinds to hide.
        hide_bos: Also hide BOS (paper Appendix B accident; a sensitivity check).
        query_scope: ``"test"`` (every test token and generated token; the paper's rule) or
            ``"last"`` (only the final prompt token and generated tokens; a diagnostic).
        layers, heads: Restrict kind-based knockouts to these layers / query heads.
        mode: ``"scores"`` or ``"pattern"``.

    Returns:
        A :class:`Knockout` (no blocks for ``icl`` without ``hide_bos``).
    """
    if isinstance(condition, str):
        cond = REGISTRY.get(condition)
        if cond.zero_shot:
            raise ValueError("zero_shot is a separate prompt, not a mask over the ICL prompt.")
    else:
        hidden = check_kinds(condition)
        cond = Condition("hide:" + "+".join(sorted(hidden)), hidden=hidden)
    opts = Options(hide_bos=hide_bos, query_scope=query_scope,
                   layers=None if layers is None else tuple(layers),
                   heads=None if heads is None else tuple(heads), mode=mode)
    if hide_bos and not cond.hidden and cond.knockout is None:  # BOS alone
        return Knockout((Block(Sel.test() if query_scope == "test" else
                               Sel.last() | Sel.generated(), Sel.hidden_kinds((), hide_bos=True),
                               opts.layers, opts.heads),), name=cond.name, mode=mode)
    return cond.knockout_under(opts) or Knockout((), name=cond.name, mode=mode)


def condition_knockout(
    item: SelectionTarget, condition: str | Iterable[str], **kw: object
) -> ResolvedKnockout:
    """:func:`knockout_for` evaluated on one categorized prompt or item (for pictures, checks).

    ``condition_knockout(tp, "+template").dense()`` is the ``[q, k]`` mask (True = blocked).
    """
    return knockout_for(condition, **kw).resolve(item)  # type: ignore[arg-type]


def part_knockout(condition: str) -> Knockout:
    """The knockout of one template-part condition (Tables 5 and 6)."""
    ko = REGISTRY.get(condition, "template-parts").knockout
    assert ko is not None
    return ko


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
