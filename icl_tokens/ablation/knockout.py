"""Composable knockouts: a knockout is a union of blocks; a block is (queries, keys, layers, heads).

Every intervention of the paper, and of its extensions, is a set of (query, key) pairs that may
not attend, in some layers and heads:

    >>> from icl_tokens.ablation.knockout import Block, Knockout
    >>> from icl_tokens.ablation.selection import Sel
    >>> test_sees_no_content = Block(Sel.test(), Sel.hidden_kinds({"content"}))
    >>> demo_aggregation = Block(Sel.part("demo") & ~Sel.category("content"),
    ...                          Sel.part("demo") & Sel.category("content") &
    ...                          ~Sel.category("template", "stopword", "label"))
    >>> ko = Knockout((test_sees_no_content,), name="icl-content") | Knockout((demo_aggregation,))
    >>> len(ko.blocks), ko.name
    (2, 'icl-content|custom')

A :class:`Knockout` is a description; :meth:`Knockout.resolve` evaluates it on one item into a
:class:`ResolvedKnockout` of boolean position arrays, which builds the mask rows of any forward
(full prompt, cached prefix, suffix, one generated token) and a signature of its prefix-side part
(what the prefix cache is keyed by). ``True`` means blocked. A block may never block a query from
itself, so no softmax row is ever left empty.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch
from jaxtyping import Bool

from .selection import Sel, SelectionTarget

__all__ = ["Block", "Knockout", "ResolvedKnockout", "ResolvedBlock", "MODES", "check_index_list"]

MODES: tuple[str, ...] = ("scores", "pattern")


def check_index_list(what: str, values: Iterable[int] | None, size: int) -> tuple[int, ...] | None:
    """Validate layer or head indices against ``size`` (negative ones count from the end).

    Returns the sorted, de-duplicated non-negative indices, or ``None`` for "all".
    """
    if values is None:
        return None
    out: list[int] = []
    for v in values:
        i = int(v)
        if not -size <= i < size:
            raise ValueError(f"{what} {v} is out of range for a model with {size} {what}s "
                             f"(valid: 0..{size - 1} or -{size}..-1).")
        i %= size
        if i not in out:
            out.append(i)
    if not out:
        raise ValueError(f"empty {what} selection; pass None for all {what}s.")
    return tuple(sorted(out))


@dataclass(frozen=True)
class Block:
    """Queries selected by ``queries`` may not attend to keys selected by ``keys``.

    Attributes:
        queries: The restricted query positions (may include generated tokens).
        keys: The hidden key positions. Keys are always prompt positions: a generated token is
            never hidden (so ``~Sel.category("test")`` as keys means the non-test prompt tokens).
        layers: Layers where the block applies (``None``: all; negatives count from the end).
        heads: Query heads where it applies (``None``: all).
    """

    queries: Sel
    keys: Sel
    layers: tuple[int, ...] | None = None
    heads: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("layers", "heads"):
            v = getattr(self, name)
            if v is not None:
                v = tuple(int(x) for x in v)
                if not v:
                    raise ValueError(f"Block {name} is empty; pass None for all {name}.")
                object.__setattr__(self, name, v)

    def describe(self) -> str:
        lay = "all layers" if self.layers is None else f"layers {list(self.layers)}"
        hd = "" if self.heads is None else f", heads {list(self.heads)}"
        return f"{self.queries.describe()} -/-> {self.keys.describe()} ({lay}{hd})"


@dataclass(frozen=True)
class Knockout:
    """A union of :class:`Block` s, with a name for logs and the intervention mode.

    Attributes:
        blocks: The blocks; a (query, key) pair is blocked in a layer and head if any block
            covers it there.
        name: For logs and result rows.
        mode: ``"scores"`` (-inf before the softmax, rows renormalise; the paper's) or
            ``"pattern"`` (zero after the softmax, no renormalisation; a different intervention).
    """

    blocks: tuple[Block, ...]
    name: str = "custom"
    mode: str = "scores"

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if self.mode not in MODES:
            raise ValueError(f"unknown knockout mode {self.mode!r}; use one of {MODES}.")
        for b in self.blocks:
            if not isinstance(b, Block):
                raise TypeError(f"Knockout blocks must be Block objects, got {type(b).__name__}.")

    def __or__(self, other: "Knockout | None") -> "Knockout":
        if other is None:
            return self
        if self.mode != other.mode:
            raise ValueError(f"cannot combine a {self.mode!r} knockout with a {other.mode!r} one.")
        return Knockout(self.blocks + other.blocks, name=f"{self.name}|{other.name}",
                        mode=self.mode)

    def with_name(self, name: str) -> "Knockout":
        return Knockout(self.blocks, name=name, mode=self.mode)

    def describe(self) -> str:
        return f"{self.name} [{self.mode}]: " + "; ".join(b.describe() for b in self.blocks)

    def resolve(self, item: SelectionTarget, n_layers: int | None = None,
                n_heads: int | None = None) -> "ResolvedKnockout":
        """Evaluate the selections on ``item`` (and check layers/heads if sizes are given)."""
        blocks = []
        for b in self.blocks:
            q = b.queries.mask(item)
            k = b.keys.mask(item)
            layers = b.layers if n_layers is None else check_index_list("layer", b.layers,
                                                                       n_layers)
            heads = b.heads if n_heads is None else check_index_list("head", b.heads, n_heads)
            blocks.append(ResolvedBlock(q, b.queries.includes_generated(), k, layers, heads))
        return ResolvedKnockout(tuple(blocks), len(item), self.name, self.mode).validate()


@dataclass(frozen=True)
class ResolvedBlock:
    """A block evaluated on one item: Bool ``[n]`` query and key positions."""

    query: Bool[np.ndarray, "n"]
    query_generated: bool
    key: Bool[np.ndarray, "n"]
    layers: tuple[int, ...] | None
    heads: tuple[int, ...] | None

    @property
    def is_empty(self) -> bool:
        return not self.key.any() or not (self.query.any() or self.query_generated)

    def query_rows(self, q_pos: np.ndarray, n: int) -> np.ndarray:
        """Bool per absolute query position (-1 = padding, >= n = generated)."""
        out = np.zeros(len(q_pos), dtype=bool)
        inside = (q_pos >= 0) & (q_pos < n)
        out[inside] = self.query[q_pos[inside]]
        out[q_pos >= n] = self.query_generated
        return out

    def key_cols(self, k_pos: np.ndarray, n: int) -> np.ndarray:
        out = np.zeros(len(k_pos), dtype=bool)
        inside = (k_pos >= 0) & (k_pos < n)
        out[inside] = self.key[k_pos[inside]]
        return out


@dataclass(frozen=True)
class ResolvedKnockout:
    """A knockout on one item of ``n`` tokens: builds mask rows for any forward."""

    blocks: tuple[ResolvedBlock, ...]
    n: int
    name: str = "custom"
    mode: str = "scores"
    _sig: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(b for b in self.blocks if not b.is_empty))

    @property
    def is_empty(self) -> bool:
        return not self.blocks

    def validate(self) -> "ResolvedKnockout":
        """Raise if a block hides a query's own position (its softmax row could be empty)."""
        for b in self.blocks:
            both = b.query & b.key
            if both.any():
                i = int(np.flatnonzero(both)[0])
                raise ValueError(
                    f"knockout {self.name!r} blocks query {i} from itself; never hide a query's "
                    "own position (its softmax row could be left with nothing).")
        return self

    @property
    def key(self) -> Bool[np.ndarray, "n"]:
        """Keys hidden by any block (in some layer)."""
        out = np.zeros(self.n, dtype=bool)
        for b in self.blocks:
            out |= b.key
        return out

    @property
    def query(self) -> Bool[np.ndarray, "n"]:
        """Prompt queries restricted by any block."""
        out = np.zeros(self.n, dtype=bool)
        for b in self.blocks:
            out |= b.query
        return out

    @property
    def query_generated(self) -> bool:
        """Whether any block restricts generated tokens."""
        return any(b.query_generated for b in self.blocks)

    def dense(self, total: int | None = None) -> Bool[torch.Tensor, "q k"]:
        """The ``[total, total]`` mask, True where a pair is blocked in some layer and head.

        Generated positions (``>= n``) are queries as the blocks say, never hidden keys. Use it
        for pictures and for :func:`~icl_tokens.ablation.hooks.attention_knockout`; the engine
        builds exact per-layer masks instead.
        """
        total = self.n if total is None else int(total)
        if total < self.n:
            raise ValueError(f"mask for {self.n} positions asked for only {total}.")
        pos = np.arange(total)
        m = np.zeros((total, total), dtype=bool)
        for b in self.blocks:
            m |= np.outer(b.query_rows(pos, self.n), b.key_cols(pos, self.n))
        return torch.from_numpy(m)

    def query_positions(self) -> np.ndarray:
        """Prompt positions restricted by any block."""
        return np.flatnonzero(self.query)

    def first_query(self) -> int | None:
        """The earliest restricted prompt query (None if only generated tokens are restricted)."""
        firsts = [int(np.flatnonzero(b.query)[0]) for b in self.blocks if b.query.any()]
        return min(firsts) if firsts else None

    def layer_blocks(self, n_layers: int) -> dict[int, list[ResolvedBlock]]:
        """The blocks active in each layer (layers without any block are left out)."""
        out: dict[int, list[ResolvedBlock]] = {}
        for b in self.blocks:
            layers = check_index_list("layer", b.layers, n_layers)
            for layer in (range(n_layers) if layers is None else layers):
                out.setdefault(layer, []).append(b)
        return out

    def masks(self, q_pos: np.ndarray, k_pos: np.ndarray, n_layers: int, n_heads: int
              ) -> dict[int, np.ndarray]:
        """Per-layer masks for these absolute query rows and key columns (-1 = padding).

        Returns:
            ``{layer: Bool[q, k]}`` or ``{layer: Bool[heads, q, k]}`` when a block of that layer
            is restricted to some heads; layers with nothing blocked are absent.
        """
        q_pos, k_pos = np.asarray(q_pos), np.asarray(k_pos)
        out: dict[int, np.ndarray] = {}
        cache: dict[tuple[int, ...], np.ndarray] = {}
        for layer, blocks in self.layer_blocks(n_layers).items():
            key = tuple(id(b) for b in blocks)
            if key not in cache:
                cache[key] = self._combine(blocks, q_pos, k_pos, n_heads)
            m = cache[key]
            if m.any():
                out[layer] = m
        return out

    def _combine(self, blocks: Sequence[ResolvedBlock], q_pos: np.ndarray, k_pos: np.ndarray,
                 n_heads: int) -> np.ndarray:
        per_head = any(b.heads is not None for b in blocks)
        shape = (n_heads, len(q_pos), len(k_pos)) if per_head else (len(q_pos), len(k_pos))
        m = np.zeros(shape, dtype=bool)
        for b in blocks:
            pair = np.outer(b.query_rows(q_pos, self.n), b.key_cols(k_pos, self.n))
            if not per_head:
                m |= pair
            elif b.heads is None:
                m |= pair[None]
            else:
                m[list(check_index_list("head", b.heads, n_heads))] |= pair[None]
        return m

    def prefix_signature(self, prefix_len: int, n_layers: int, n_heads: int) -> str | None:
        """A digest of what the knockout does inside the first ``prefix_len`` positions.

        ``None`` when it blocks nothing there (the plain prefix cache is valid). Two knockouts
        with the same signature compute the same prefix, whatever blocks expressed them.
        """
        key = (prefix_len, n_layers, n_heads)
        if key in self._sig:
            return self._sig[key]
        pos = np.arange(prefix_len)
        masks = self.masks(pos, pos, n_layers, n_heads)
        sig = None
        if masks:
            h = hashlib.sha1(self.mode.encode())
            for layer in sorted(masks):
                m = masks[layer]
                if m.ndim == 3 and (m == m[:1]).all():
                    m = m[0]  # every head the same: the same as an all-heads mask
                h.update(f"|{layer}:{m.shape}".encode())
                h.update(np.packbits(m).tobytes())
            sig = h.hexdigest()
        self._sig[key] = sig
        return sig
