"""Position selections: which tokens of a scored item a knockout block restricts or hides.

A :class:`Sel` is a small expression evaluated against an item (anything with per-token
``codes``, ``demo`` and ``roles``, see :class:`icl_tokens.engine.items.Item`); selections compose
with ``&``, ``|`` and ``~``::

    >>> from icl_tokens.ablation.selection import Sel
    >>> demo_template = Sel.category("template") & Sel.part("demo")
    >>> colons = Sel.role("demo_*.t_out.colon")
    >>> (demo_template & ~colons).describe()
    '((category(template) & part(demo)) & ~role(demo_*.t_out.colon))'

Selections cover the item's prompt positions; :meth:`Sel.generated` also selects the tokens that
greedy decoding appends (they belong to the test example). Only query selections may include
generated tokens: a knockout never hides a generated key.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Iterable, Protocol, Sequence

import numpy as np
from jaxtyping import Bool

from ..categorize import BITS, CATEGORIES

__all__ = ["Sel", "SelectionTarget", "KINDS", "ALWAYS_VISIBLE", "PARTS", "key_rule", "check_kinds"]

KINDS: tuple[str, ...] = ("template", "stopword", "content")
ALWAYS_VISIBLE: tuple[str, ...] = ("bos", "instruction", "label", "test")
PARTS: tuple[str, ...] = ("bos", "instruction", "demo", "test")


class SelectionTarget(Protocol):
    """What a selection is evaluated on (an :class:`~icl_tokens.engine.items.Item`)."""

    codes: np.ndarray
    demo: np.ndarray
    roles: Sequence[Sequence[str]]

    def __len__(self) -> int: ...


def key_rule(codes: np.ndarray, hidden: Iterable[str], *, hide_bos: bool = False) -> np.ndarray:
    """The paper's key rule (paper-spec §6 E1): which positions are hidden when ``hidden`` kinds
    are hidden.

    A position is hidden iff it carries at least one of template/stopword/content, every one of
    its kinds is hidden, and it is none of BOS, instruction, label or test (BOS too with
    ``hide_bos``). So a newline (template + stopword) stays visible while either kind is.
    """
    hidden = frozenset(hidden)
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


def check_kinds(kinds: Iterable[str]) -> frozenset[str]:
    """Validate a set of hidden kinds (only template, stopword, content may be hidden)."""
    kinds = frozenset(kinds)
    bad = sorted(kinds - set(KINDS))
    if bad:
        hint = " (always visible)" if set(bad) & set(ALWAYS_VISIBLE) else ""
        raise ValueError(
            f"cannot hide categories {bad}{hint}; a hidden set takes only {list(KINDS)}. "
            f"Known categories: {list(CATEGORIES)}. Use hide_bos=True to hide BOS."
        )
    return kinds


@dataclass(frozen=True)
class Sel:
    """A selection of item positions (an expression; evaluate with :meth:`mask`).

    Build selections with the class methods, combine them with ``&``, ``|``, ``~``.
    """

    op: str
    args: tuple[Any, ...] = ()

    # ------------------------------------------------------------------ constructors
    @classmethod
    def everything(cls) -> "Sel":
        """Every prompt position."""
        return cls("all")

    @classmethod
    def nothing(cls) -> "Sel":
        """No position."""
        return cls("none")

    @classmethod
    def category(cls, *names: str) -> "Sel":
        """Tokens carrying any of the categories ``names`` (see ``categorize.CATEGORIES``)."""
        if not names:
            raise ValueError(f"Sel.category needs at least one of {list(CATEGORIES)}.")
        bad = sorted(set(names) - set(CATEGORIES))
        if bad:
            raise ValueError(f"unknown categories {bad}; known: {list(CATEGORIES)}.")
        return cls("cat", (tuple(names),))

    @classmethod
    def role(cls, *patterns: str) -> "Sel":
        """Tokens with a role matching any glob pattern, e.g. ``"demo_*.t_out.colon"``.

        Roles look like ``instruction``, ``demo_2.t_in.word``, ``demo_2.d_in.text``,
        ``demo_2.d_out``, ``test.t_out.colon`` (see :mod:`icl_tokens.categorize`).
        """
        if not patterns:
            raise ValueError("Sel.role needs at least one pattern, e.g. 'demo_*.t_out.colon'.")
        return cls("role", (tuple(patterns),))

    @classmethod
    def demo(cls, *indices: int) -> "Sel":
        """Tokens of the demonstrations with these 0-based indices."""
        if not indices:
            raise ValueError("Sel.demo needs at least one demonstration index.")
        return cls("demo", (tuple(int(i) for i in indices),))

    @classmethod
    def part(cls, name: str) -> "Sel":
        """Tokens of one part of the prompt: ``bos``, ``instruction``, ``demo`` or ``test``."""
        if name not in PARTS:
            raise ValueError(f"unknown part {name!r}; choose one of {list(PARTS)}.")
        return cls("part", (name,))

    @classmethod
    def positions(cls, positions: Iterable[int] | np.ndarray) -> "Sel":
        """Explicit positions: a list of indices or a Bool ``[pos]`` array."""
        arr = np.asarray(list(positions) if not isinstance(positions, np.ndarray) else positions)
        if arr.size and arr.dtype != bool:
            if not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"positions must be integer indices or a bool mask, got dtype "
                                 f"{arr.dtype}.")
            arr = arr.astype(np.int64)
        return cls("pos", (arr.tobytes(), arr.dtype.str, arr.shape))

    @classmethod
    def last(cls) -> "Sel":
        """The final prompt token (the query of the ``query_scope="last"`` diagnostic)."""
        return cls("last")

    @classmethod
    def generated(cls) -> "Sel":
        """Tokens appended by greedy decoding (queries only)."""
        return cls("gen")

    @classmethod
    def test(cls, *, generated: bool = True) -> "Sel":
        """The test example's tokens, and by default every generated token (the paper's rule)."""
        sel = cls.part("test")
        return sel | cls.generated() if generated else sel

    @classmethod
    def hidden_kinds(cls, kinds: Iterable[str], *, hide_bos: bool = False) -> "Sel":
        """Positions hidden by the paper's key rule when ``kinds`` are hidden (:func:`key_rule`)."""
        return cls("hidden", (tuple(sorted(check_kinds(kinds))), bool(hide_bos)))

    # ------------------------------------------------------------------ algebra
    def __and__(self, other: "Sel") -> "Sel":
        return Sel("and", (self, _sel(other)))

    def __or__(self, other: "Sel") -> "Sel":
        return Sel("or", (self, _sel(other)))

    def __invert__(self) -> "Sel":
        return Sel("not", (self,))

    # ------------------------------------------------------------------ evaluation
    def mask(self, item: SelectionTarget) -> Bool[np.ndarray, "pos"]:
        """Bool ``[len(item)]``: which prompt positions are selected."""
        n = len(item)
        op, a = self.op, self.args
        if op == "all":
            return np.ones(n, dtype=bool)
        if op in ("none", "gen"):
            return np.zeros(n, dtype=bool)
        if op == "cat":
            bits = sum(BITS[c] for c in a[0])
            return (np.asarray(item.codes) & bits) != 0
        if op == "hidden":
            return key_rule(np.asarray(item.codes), a[0], hide_bos=a[1])
        if op == "role":
            if len(item.roles) != n or (n and not any(item.roles)):
                raise ValueError("this item has no token roles (e.g. a hand-written prompt "
                                 "without pieces); select by position or category instead.")
            pats = a[0]
            return np.array([any(fnmatch.fnmatchcase(r, p) for r in roles for p in pats)
                             for roles in item.roles], dtype=bool).reshape(n)
        if op == "demo":
            return np.isin(np.asarray(item.demo), np.asarray(a[0]))
        if op == "part":
            return _part(item, a[0])
        if op == "last":
            out = np.zeros(n, dtype=bool)
            if n:
                out[-1] = True
            return out
        if op == "pos":
            arr = np.frombuffer(a[0], dtype=np.dtype(a[1])).reshape(a[2])
            if arr.dtype == bool:
                if arr.shape != (n,):
                    raise ValueError(f"position selection has shape {arr.shape}; this item has "
                                     f"{n} positions.")
                return arr.copy()
            out = np.zeros(n, dtype=bool)
            if arr.size:
                if arr.min() < -n or arr.max() >= n:
                    raise ValueError(f"positions {arr.tolist()} out of range for an item of {n} "
                                     "tokens.")
                out[arr] = True
            return out
        if op == "and":
            return a[0].mask(item) & a[1].mask(item)
        if op == "or":
            return a[0].mask(item) | a[1].mask(item)
        if op == "not":
            return ~a[0].mask(item)
        raise ValueError(f"unknown selection op {op!r}")

    def includes_generated(self) -> bool:
        """Whether generated tokens are selected."""
        op, a = self.op, self.args
        if op in ("gen", "all"):
            return op == "gen"
        if op == "and":
            return a[0].includes_generated() and a[1].includes_generated()
        if op == "or":
            return a[0].includes_generated() or a[1].includes_generated()
        if op == "not":
            return not a[0].includes_generated()
        return False

    def describe(self) -> str:
        """A readable form, e.g. ``(category(template) & part(demo))``."""
        op, a = self.op, self.args
        if op in ("and", "or"):
            sym = "&" if op == "and" else "|"
            return f"({a[0].describe()} {sym} {a[1].describe()})"
        if op == "not":
            return f"~{a[0].describe()}"
        if op == "pos":
            return f"positions({np.frombuffer(a[0], dtype=np.dtype(a[1])).tolist()})"
        if op == "hidden":
            return f"hidden_kinds({','.join(a[0])}{', hide_bos' if a[1] else ''})"
        names = {"all": "everything", "none": "nothing", "gen": "generated", "last": "last",
                 "cat": "category", "role": "role", "demo": "demo", "part": "part"}
        inner = a[0] if op == "part" else ",".join(str(x) for x in a[0]) if a else ""
        if op in ("cat", "role", "demo", "part"):
            return f"{names[op]}({inner})"
        return f"{names[op]}()"

    def __repr__(self) -> str:
        return f"Sel<{self.describe()}>"


def _sel(x: Any) -> Sel:
    if not isinstance(x, Sel):
        raise TypeError(f"cannot combine a selection with {type(x).__name__}; use Sel.* objects.")
    return x


def _part(item: SelectionTarget, name: str) -> np.ndarray:
    codes = np.asarray(item.codes)
    if name == "demo":
        return np.asarray(item.demo) >= 0
    if name == "test":
        return (codes & BITS["test"]) != 0
    return (codes & BITS[name]) != 0
