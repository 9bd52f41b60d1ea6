"""Position selections: which tokens of a scored item a knockout block restricts or hides.

A :class:`Sel` is a small expression evaluated against an item (anything with per-token
``codes``, ``demo`` and ``roles``, see :class:`icl_tokens.engine.items.Item`); selections compose
with ``&``, ``|`` and ``~``. ``repr`` gives the constructor source (``eval`` gives it back)::

    >>> from icl_tokens.ablation.selection import Sel
    >>> demo_template = Sel.category("template") & Sel.part("demo")
    >>> colons = Sel.role("demo_*.t_out.colon")
    >>> (demo_template & ~colons).describe()
    '((category(template) & part(demo)) & ~role(demo_*.t_out.colon))'
    >>> demo_template
    (Sel.category('template') & Sel.part('demo'))

Demonstration indices: **``Sel.demo(i)`` is 0-based** (``Item.demo``, the explorer's ``demos``)
while role names count from 1: ``Sel.demo(0)`` selects the ``demo_1.*`` roles.

Selections cover the item's prompt positions; :meth:`Sel.generated` also selects the tokens that
greedy decoding appends (they belong to the test example). Only query selections may include
generated tokens: a knockout never hides a generated key.
"""

from __future__ import annotations

import fnmatch
import operator
import re
import string
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, NamedTuple, Protocol, Sequence

import numpy as np
from jaxtyping import Bool

from ..categorize import BITS, CATEGORIES, TEMPLATE_PIECES

__all__ = ["Sel", "SelectionTarget", "KINDS", "ALWAYS_VISIBLE", "PARTS", "ROLE_SHAPES",
           "kind_rule", "key_rule", "check_kinds", "check_role_pattern", "demo_count"]

KINDS: tuple[str, ...] = ("template", "stopword", "content")
ALWAYS_VISIBLE: tuple[str, ...] = ("bos", "instruction", "label", "test")
PARTS: tuple[str, ...] = ("bos", "instruction", "demo", "test")


class SelectionTarget(Protocol):
    """What a selection is evaluated on (an :class:`~icl_tokens.engine.items.Item`)."""

    codes: np.ndarray
    demo: np.ndarray
    roles: Sequence[Sequence[str]]

    def __len__(self) -> int: ...


def _bits(names: Iterable[str]) -> int:
    return sum(BITS[c] for c in set(names))


def kind_rule(codes: np.ndarray, hidden_kinds: Iterable[str], *,
              protected: Iterable[str] = ()) -> Bool[np.ndarray, "pos"]:
    """Which tokens a set of hidden (or removed) kinds takes away.

    A token is selected iff it carries at least one of template/stopword/content, all its kinds
    are in ``hidden_kinds``, and it carries none of the ``protected`` categories. So a newline
    (template + stopword) stays while either kind stays. The key rule (:func:`key_rule`) and
    token-level removal both use it, each with its own protected categories.
    """
    hidden, protected = check_kinds(hidden_kinds), frozenset(protected)
    if bad := sorted(protected - set(CATEGORIES)):
        raise ValueError(f"unknown protected categories {bad}; choose from {list(CATEGORIES)}.")
    codes, kinds = np.asarray(codes), _bits(KINDS)
    all_hidden = (codes & kinds & ~_bits(hidden)) == 0
    return ((codes & kinds) != 0) & all_hidden & ((codes & _bits(protected)) == 0)


def key_rule(codes: np.ndarray, hidden: Iterable[str], *, hide_bos: bool = False) -> np.ndarray:
    """The paper's key rule (paper-spec §6 E1): the keys hidden when ``hidden`` kinds are
    hidden, i.e. :func:`kind_rule` protecting BOS, instruction, label and test (``hide_bos``:
    BOS hidden outright)."""
    protected = [c for c in ALWAYS_VISIBLE if not (c == "bos" and hide_bos)]
    out = kind_rule(codes, hidden, protected=protected)
    if hide_bos:
        out |= (np.asarray(codes) & BITS["bos"]) != 0
    return out


def check_kinds(kinds: Iterable[str]) -> frozenset[str]:
    """Validate a set of hidden kinds (only template, stopword, content may be hidden)."""
    kinds = frozenset(kinds)
    if bad := sorted(kinds - set(KINDS)):
        hint = " (always visible)" if set(bad) & set(ALWAYS_VISIBLE) else ""
        raise ValueError(
            f"cannot hide categories {bad}{hint}; a hidden set takes only {list(KINDS)}. "
            f"Known categories: {list(CATEGORIES)}. Use hide_bos=True to hide BOS.")
    return kinds


def demo_count(item: SelectionTarget) -> int:
    """How many demonstrations ``item`` has (its largest 0-based demonstration index + 1)."""
    demo = np.asarray(item.demo)
    return int(demo.max()) + 1 if demo.size and demo.max() >= 0 else 0


#: Token role names (:mod:`icl_tokens.categorize`): ``i`` is the **1-based** demonstration,
#: ``piece`` one of ``TEMPLATE_PIECES``, ``field`` an input field (``text``, ``premise``, ...).
ROLE_SHAPES: tuple[str, ...] = (
    "bos", "instruction", "demo_{i}.t_in.{piece}", "demo_{i}.d_in.{field}",
    "demo_{i}.t_out.{piece}", "demo_{i}.d_out", "test.t_in.{piece}", "test.x.{field}",
    "test.t_out.{piece}")
_Atom = tuple[frozenset[str] | None, bool]  # (characters it takes, None: any; repeats 0+ times)
_IDENT = frozenset(string.ascii_letters + string.digits + "_")
_SLOTS: dict[str, list[_Atom]] = {
    "{i}": [(frozenset("123456789"), False), (frozenset(string.digits), True)],
    "{field}": [(_IDENT - set(string.digits), False), (_IDENT, True)]}
_GRAMMAR: list[list[_Atom]] = [  # one atom list per shape and template piece
    [a for part in re.split(r"(\{\w+\})", s) for a in _SLOTS.get(part, [(frozenset(c), False)
                                                                      for c in part])]
    for shape in ROLE_SHAPES
    for s in dict.fromkeys(shape.replace("{piece}", p) for p in TEMPLATE_PIECES)]


def _glob_atoms(pattern: str) -> list[_Atom]:
    """An fnmatch pattern as atoms (``*``, ``?``, ``[...]``, literal characters)."""
    atoms: list[_Atom] = []
    i = 0
    while i < len(pattern):
        c, j = pattern[i], i + 1
        if c == "[":  # as fnmatch: a class may start with "!" and then "]"
            j += pattern[j:j + 1] == "!"
            j += pattern[j:j + 1] == "]"
            j = pattern.find("]", j) + 1 or i + 1
        cls = frozenset(ch for ch in _IDENT | {"."} if fnmatch.fnmatchcase(ch, pattern[i:j]))
        atoms.append((None, c == "*") if c in "*?" else (cls, False))
        i = j
    return atoms


@lru_cache(maxsize=512)
def _can_match_a_role(pattern: str) -> bool:
    """Whether some role name of :data:`ROLE_SHAPES` matches ``pattern``: a search of the
    product of the pattern's and the grammar's automata (state: atom of each)."""
    glob = _glob_atoms(pattern)
    todo = [(0, a, 0) for a in range(len(_GRAMMAR))]
    seen = set(todo)
    while todo:
        g, a, k = todo.pop()
        alt = _GRAMMAR[a]
        if g == len(glob) and k == len(alt):
            return True
        nxt = [(g + 1, a, k)] if g < len(glob) and glob[g][1] else []  # "*" matches nothing
        nxt += [(g, a, k + 1)] if k < len(alt) and alt[k][1] else []  # a repeat ends
        if g < len(glob) and k < len(alt) and (glob[g][0] is None or glob[g][0] & alt[k][0]):
            nxt.append((g + (not glob[g][1]), a, k + (not alt[k][1])))  # one common character
        todo += [s for s in nxt if s not in seen]
        seen.update(nxt)
    return False


def check_role_pattern(pattern: str) -> str:
    """``pattern`` if some role name can match it, else a ValueError listing the role shapes."""
    if not isinstance(pattern, str) or not _can_match_a_role(pattern):
        raise ValueError(f"role pattern {pattern!r} can match no token role; roles look like "
                         f"{', '.join(ROLE_SHAPES)} (i: 1-based demonstration, piece: "
                         f"{'/'.join(TEMPLATE_PIECES)}), e.g. 'demo_*.t_out.colon'.")
    return pattern


@dataclass(frozen=True)
class Sel:
    """A selection of item positions (an expression; evaluate with :meth:`mask`).

    Build selections with the class methods, combine them with ``&``, ``|``, ``~``. Every
    operation is declared once, in ``_OPS`` (evaluation, description, source).
    """

    op: str
    args: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"unknown selection op {self.op!r}; use the Sel.* class methods.")

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
        ``demo_2.d_out``, ``test.t_out.colon`` (demonstrations count from 1 in role names; see
        :data:`ROLE_SHAPES`). A pattern that no role name can match is an error.
        """
        if not patterns:
            raise ValueError("Sel.role needs at least one pattern, e.g. 'demo_*.t_out.colon'.")
        for p in patterns:
            check_role_pattern(p)
        return cls("role", (tuple(patterns),))

    @classmethod
    def demo(cls, *indices: int) -> "Sel":
        """Tokens of the demonstrations with these **0-based** indices (``Sel.demo(0)`` is the
        first demonstration, whose roles are ``demo_1.*``)."""
        if not indices:
            raise ValueError("Sel.demo needs at least one demonstration index (0-based).")
        out = tuple(operator.index(i) for i in indices)
        if min(out) < 0:
            raise ValueError(f"Sel.demo takes 0-based demonstration indices >= 0, got "
                             f"{list(out)}; Sel.demo(0) is the first demonstration (demo_1.*).")
        return cls("demo", (out,))

    @classmethod
    def part(cls, name: str) -> "Sel":
        """Tokens of one part of the prompt: ``bos``, ``instruction``, ``demo`` or ``test``."""
        if name not in PARTS:
            raise ValueError(f"unknown part {name!r}; choose one of {list(PARTS)}.")
        return cls("part", (name,))

    @classmethod
    def positions(cls, positions: Iterable[int] | np.ndarray) -> "Sel":
        """Explicit positions: a 1-D list of indices or a Bool ``[pos]`` array."""
        arr = np.asarray(positions if isinstance(positions, np.ndarray) else list(positions))
        if arr.ndim != 1:
            raise ValueError(f"position selection has shape {arr.shape}; give a 1-D list of "
                             "indices or a Bool [pos] mask (flatten it first).")
        if arr.size and arr.dtype != bool and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"positions must be integer indices or a bool mask, got dtype "
                             f"{arr.dtype}.")
        arr = arr if arr.size and arr.dtype == bool else arr.astype(np.int64)
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
        """Positions hidden by the paper's key rule when ``kinds`` are hidden (``key_rule``)."""
        return cls("hidden", (tuple(sorted(check_kinds(kinds))), bool(hide_bos)))

    def __and__(self, other: "Sel") -> "Sel":
        return Sel("and", (self, _sel(other)))

    def __or__(self, other: "Sel") -> "Sel":
        return Sel("or", (self, _sel(other)))

    def __invert__(self) -> "Sel":
        return Sel("not", (self,))

    # ------------------------------------------------------------------ evaluation
    def mask(self, item: SelectionTarget) -> Bool[np.ndarray, "pos"]:
        """Bool ``[len(item)]``: which prompt positions are selected."""
        return _OPS[self.op].mask(self.args, item, len(item))

    def includes_generated(self) -> bool:
        """Whether generated tokens are selected."""
        return _OPS[self.op].generated(self.args)

    def describe(self) -> str:
        """A readable form, e.g. ``(category(template) & part(demo))``."""
        return _OPS[self.op].describe(self.args)

    def __repr__(self) -> str:
        """The constructor source, e.g. ``Sel.category('template')`` (needs ``np`` for masks)."""
        return _OPS[self.op].source(self.args)


def _sel(x: Any) -> Sel:
    if not isinstance(x, Sel):
        raise TypeError(f"cannot combine a selection with {type(x).__name__}; use Sel.* objects.")
    return x


class _Op(NamedTuple):
    """One selection operation: ``mask(args, item, n)``, ``describe(args)``, ``source(args)``
    and ``generated(args)`` (whether it selects generated tokens)."""

    mask: Callable[[tuple, SelectionTarget, int], np.ndarray]
    describe: Callable[[tuple], str]
    source: Callable[[tuple], str]
    generated: Callable[[tuple], bool] = lambda a: False


def _fixed(fill: bool, name: str, generated: bool = False) -> _Op:
    return _Op(lambda a, item, n: np.full(n, fill, dtype=bool), lambda a: f"{name}()",
               lambda a: f"Sel.{name}()", lambda a: generated)


def _role(a: tuple, item: SelectionTarget, n: int) -> np.ndarray:
    if len(item.roles) != n or (n and not any(item.roles)):
        raise ValueError("this item has no token roles (e.g. a hand-written prompt without "
                         "pieces); select by position or category instead.")
    return np.array([any(fnmatch.fnmatchcase(r, p) for r in roles for p in a[0])
                     for roles in item.roles], dtype=bool).reshape(n)


def _demo(a: tuple, item: SelectionTarget, n: int) -> np.ndarray:
    have = demo_count(item)
    bad = [i for i in a[0] if i >= have]
    if bad:
        valid = f"0-based indices 0..{have - 1}, roles demo_1..demo_{have}" if have else "none"
        raise ValueError(f"Sel.demo: 0-based demonstration index {bad} is out of range; this "
                         f"prompt has {have} demonstrations ({valid}). Use an index below {have}.")
    return np.isin(np.asarray(item.demo), np.asarray(a[0]))


def _pos_array(a: tuple) -> np.ndarray:
    return np.frombuffer(a[0], dtype=np.dtype(a[1])).reshape(a[2])


def _pos(a: tuple, item: SelectionTarget, n: int) -> np.ndarray:
    arr = _pos_array(a)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ValueError(f"position selection has shape {arr.shape}; this item has {n} "
                             "positions.")
        return arr.copy()
    out = np.zeros(n, dtype=bool)
    if arr.size:
        if arr.min() < -n or arr.max() >= n:
            raise ValueError(f"positions {arr.tolist()} out of range for an item of {n} tokens.")
        out[arr] = True
    return out


def _pos_source(a: tuple) -> str:
    arr = _pos_array(a)
    values = f"np.array({arr.tolist()!r}, dtype=bool)" if arr.dtype == bool else arr.tolist()
    return f"Sel.positions({values})"


def _binary(sym: str, combine: Callable[[Any, Any], Any]) -> _Op:
    return _Op(lambda a, item, n: combine(a[0].mask(item), a[1].mask(item)),
               lambda a: f"({a[0].describe()} {sym} {a[1].describe()})",
               lambda a: f"({a[0]!r} {sym} {a[1]!r})",
               lambda a: combine(a[0].includes_generated(), a[1].includes_generated()))


def _call(name: str, values: Iterable[Any]) -> str:
    return f"Sel.{name}({', '.join(repr(v) for v in values)})"


def _joined(values: Iterable[Any]) -> str:
    return ",".join(str(v) for v in values)


_OPS: dict[str, _Op] = {
    "all": _fixed(True, "everything"),
    "none": _fixed(False, "nothing"),
    "gen": _fixed(False, "generated", generated=True),
    "last": _Op(lambda a, item, n: np.arange(n) == n - 1, lambda a: "last()",
                lambda a: "Sel.last()"),
    "cat": _Op(lambda a, item, n: (np.asarray(item.codes) & _bits(a[0])) != 0,
               lambda a: f"category({_joined(a[0])})", lambda a: _call("category", a[0])),
    "role": _Op(_role, lambda a: f"role({_joined(a[0])})", lambda a: _call("role", a[0])),
    "demo": _Op(_demo, lambda a: f"demo({_joined(a[0])})", lambda a: _call("demo", a[0])),
    "part": _Op(lambda a, item, n: (np.asarray(item.demo) >= 0 if a[0] == "demo" else
                                    (np.asarray(item.codes) & BITS[a[0]]) != 0),
                lambda a: f"part({a[0]})", lambda a: _call("part", a)),
    "pos": _Op(_pos, lambda a: f"positions({_pos_array(a).tolist()})", _pos_source),
    "hidden": _Op(lambda a, item, n: key_rule(np.asarray(item.codes), a[0], hide_bos=a[1]),
                  lambda a: f"hidden_kinds({_joined(a[0])}{', hide_bos' if a[1] else ''})",
                  lambda a: f"Sel.hidden_kinds({list(a[0])!r}"
                            f"{', hide_bos=True' if a[1] else ''})"),
    "and": _binary("&", operator.and_),
    "or": _binary("|", operator.or_),
    "not": _Op(lambda a, item, n: ~a[0].mask(item), lambda a: f"~{a[0].describe()}",
               lambda a: f"~{a[0]!r}", lambda a: not a[0].includes_generated()),
}
