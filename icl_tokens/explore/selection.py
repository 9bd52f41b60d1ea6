"""The explorer's selection: what the user has hidden, as data, and the knockout it stands for.

A :class:`Selection` is what the explorer's controls hold (hidden kinds, extra categories,
roles, demonstrations, clicked tokens, a layer window, heads, the query scope, the E9
aggregation block). :meth:`Selection.knockout` turns it into the
:class:`~icl_tokens.ablation.Knockout` it stands for, built only from public blocks, so the same
knockout can be written by hand (:func:`~icl_tokens.explore.code.knockout_source` prints it):

    >>> sel = Selection(kinds=frozenset({"stopword", "content"}))
    >>> from icl_tokens.ablation import knockout_for
    >>> sel.knockout() == knockout_for({"stopword", "content"})
    True
    >>> Selection(demos=(1,), layers=(0, 1)).knockout().blocks[0].describe()
    '(part(test) | generated()) -/-> demo(1) (layers [0, 1])'

``demos`` are **0-based** demonstration indices, as in :meth:`~icl_tokens.ablation.Sel.demo`:
``demos=(1,)`` hides the second demonstration, whose roles are ``demo_2.*``.

Rules: the hidden kinds follow the paper's key rule (a newline stays visible while template or
stopword is); ``label``, ``instruction`` and ``bos`` are hidden outright when chosen; the test
example's own tokens are never keys (a token of the test example in ``tokens`` or matched by a
role is an error, see :meth:`Selection.knockout`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from ..ablation.conditions import knockout_for
from ..ablation.knockout import Block, Knockout
from ..ablation.selection import KINDS, Sel, check_role_pattern
from ..aggregation.block import BLOCK_QUERIES, aggregation_knockout

__all__ = ["Selection", "EXTRA_CATEGORIES", "QUERY_SCOPES", "query_sel"]

#: Categories outside the paper's kinds that the explorer can hide outright.
EXTRA_CATEGORIES: tuple[str, ...] = ("label", "instruction", "bos")
#: Query scopes: which tokens the knockout restricts (as in ``knockout_for(query_scope=...)``).
QUERY_SCOPES: dict[str, str] = {
    "test": "every test-example token and every generated token (the paper's rule)",
    "last": "only the final prompt token and the generated tokens (a diagnostic)",
}


def query_sel(scope: str) -> Sel:
    """The query selection of a scope of :data:`QUERY_SCOPES`."""
    if scope == "test":
        return Sel.test()
    if scope == "last":
        return Sel.last() | Sel.generated()
    raise ValueError(f"unknown query scope {scope!r}; choose one of {sorted(QUERY_SCOPES)}.")


def _ints(what: str, values: Iterable[int] | None) -> tuple[int, ...] | None:
    if values is None:
        return None
    out = tuple(sorted(dict.fromkeys(int(v) for v in values)))
    if not out:
        raise ValueError(f"empty {what} selection; pass None for all {what}.")
    return out


@dataclass(frozen=True)
class Selection:
    """What the explorer hides from whom (every field empty: Standard ICL, no knockout).

    Attributes:
        kinds: Hidden demonstration kinds (``template``, ``stopword``, ``content``), by the
            paper's key rule (:func:`~icl_tokens.ablation.selection.key_rule`).
        categories: Extra categories hidden outright: any of :data:`EXTRA_CATEGORIES`
            (``bos`` uses the key rule's ``hide_bos``).
        roles: Glob patterns of roles hidden outright, e.g. ``("demo_*.t_out.colon",)``; a
            pattern no role name can match is an error.
        demos: Demonstrations hidden entirely, by **0-based** index (``0`` is the first
            demonstration, roles ``demo_1.*``). An index beyond the prompt's demonstrations is
            an error when the knockout is resolved on the prompt.
        tokens: Clicked prompt positions hidden.
        layers: Layers where the knockout applies (``None``: all).
        heads: Query heads where it applies (``None``: all).
        queries: A key of :data:`QUERY_SCOPES`.
        aggregation: ``None`` or a key of
            :data:`~icl_tokens.aggregation.block.BLOCK_QUERIES`: also block demonstration
            template/stopword/label tokens from reading demonstration content (paper-spec E9),
            in the same layers. It changes the demonstrations' representations, so the explorer
            computes (and caches) a prefix for it.
        mode: ``"scores"`` (the paper's) or ``"pattern"``.
    """

    kinds: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    roles: tuple[str, ...] = ()
    demos: tuple[int, ...] = ()
    tokens: tuple[int, ...] = ()
    layers: tuple[int, ...] | None = None
    heads: tuple[int, ...] | None = None
    queries: str = "test"
    aggregation: str | None = None
    mode: str = field(default="scores")

    def __post_init__(self) -> None:
        kinds = frozenset(self.kinds)
        bad = sorted(kinds - set(KINDS))
        if bad:
            raise ValueError(f"unknown kinds {bad}; kinds are {list(KINDS)} (hide label, "
                             f"instruction or bos with categories=...).")
        cats = frozenset(self.categories)
        bad = sorted(cats - set(EXTRA_CATEGORIES))
        if bad:
            raise ValueError(f"cannot hide categories {bad} outright; choose from "
                             f"{list(EXTRA_CATEGORIES)} (template/stopword/content go in kinds).")
        object.__setattr__(self, "kinds", kinds)
        object.__setattr__(self, "categories", cats)
        roles = tuple(dict.fromkeys(check_role_pattern(r) for r in self.roles))
        object.__setattr__(self, "roles", roles)
        demos = tuple(sorted(set(self.demos)))
        object.__setattr__(self, "demos", Sel.demo(*demos).args[0] if demos else ())
        object.__setattr__(self, "tokens", tuple(sorted({int(t) for t in self.tokens})))
        object.__setattr__(self, "layers", _ints("layers", self.layers))
        object.__setattr__(self, "heads", _ints("heads", self.heads))
        query_sel(self.queries)
        if self.aggregation is not None and self.aggregation not in BLOCK_QUERIES:
            raise ValueError(f"unknown aggregation block {self.aggregation!r}; choose None or one "
                             f"of {sorted(BLOCK_QUERIES)}.")
        if self.mode not in ("scores", "pattern"):
            raise ValueError(f"unknown knockout mode {self.mode!r}; use 'scores' or 'pattern'.")

    @property
    def hides_keys(self) -> bool:
        """Whether the test-example block hides anything."""
        return bool(self.kinds or self.categories or self.roles or self.demos or self.tokens)

    def keys(self) -> Sel | None:
        """The hidden keys of the test-example block (``None``: nothing hidden)."""
        parts: list[Sel] = []
        if self.kinds or "bos" in self.categories:
            parts.append(Sel.hidden_kinds(self.kinds, hide_bos="bos" in self.categories))
        extra = [c for c in EXTRA_CATEGORIES if c in self.categories and c != "bos"]
        if extra:
            parts.append(Sel.category(*extra))
        if self.roles:
            parts.append(Sel.role(*self.roles))
        if self.demos:
            parts.append(Sel.demo(*self.demos))
        if self.tokens:
            parts.append(Sel.positions(list(self.tokens)))
        if not parts:
            return None
        out = parts[0]
        for p in parts[1:]:
            out = out | p
        return out

    @property
    def name(self) -> str:
        """A short readable name, e.g. ``hide:content+stopword|demo[1]|L0+1`` (``demo[1]``: the
        0-based demonstration 1, roles ``demo_2.*``)."""
        bits = []
        if self.kinds:
            bits.append("hide:" + "+".join(sorted(self.kinds)))
        bits += [f"hide:{c}" for c in EXTRA_CATEGORIES if c in self.categories]
        bits += [f"role:{r}" for r in self.roles]
        bits += [f"demo[{d}]" for d in self.demos]
        if self.tokens:
            bits.append("tok:" + ",".join(str(t) for t in self.tokens))
        if self.aggregation is not None:
            bits.append("agg" if self.aggregation == "all" else f"agg[{self.aggregation}]")
        if self.layers is not None:
            bits.append("L" + "+".join(str(x) for x in self.layers))
        if self.heads is not None:
            bits.append("H" + "+".join(str(x) for x in self.heads))
        if self.queries != "test":
            bits.append(f"q:{self.queries}")
        return "|".join(bits) or "icl"

    def knockout(self) -> Knockout | None:
        """The knockout this selection stands for (``None`` when it hides nothing).

        Only kinds (and ``bos``) selected: exactly :func:`~icl_tokens.ablation.knockout_for`
        of those kinds with the same layers, heads, query scope and mode. Otherwise one block
        (queries → the union of the hidden keys), plus the aggregation block when chosen.
        Errors about keys that are also queries (a clicked test token) come from
        :meth:`~icl_tokens.ablation.Knockout.resolve`, which the explorer calls on its item.
        """
        blocks: tuple[Block, ...] = ()
        simple = not (self.roles or self.demos or self.tokens
                      or set(self.categories) - {"bos"})
        if self.hides_keys and simple:
            ko = knockout_for(self.kinds, hide_bos="bos" in self.categories,
                              query_scope=self.queries, layers=self.layers, heads=self.heads,
                              mode=self.mode)
            if self.aggregation is None:
                return ko.with_name(self.name)
            blocks = ko.blocks
        elif self.hides_keys:
            keys = self.keys()
            assert keys is not None
            blocks = (Block(query_sel(self.queries), keys, self.layers, self.heads),)
        if self.aggregation is not None:
            if self.heads is not None:
                raise ValueError("the aggregation block applies to every head; clear the head "
                                 "selection or turn the aggregation block off.")
            blocks += aggregation_knockout(self.aggregation, layers=self.layers).blocks
        if not blocks:
            return None
        return Knockout(blocks, name=self.name, mode=self.mode)
