"""The aggregation block (paper-spec E9): demonstration tokens that carry
template, stopword or label may not read demonstration content.

If the representations of performance-critical tokens carry the content's information to the
test example (the paper's aggregation claim), cutting the content → template/stopword/label flow
inside the demonstrations should cost ``+template`` and ``+stopword`` much more than it costs
standard ICL without the block, and representation-level ``icl-content`` under the block should
fall towards token-level ``icl-content`` (content removed outright).

The block is a prefix-side intervention: its queries are demonstration tokens, so the cached
engine computes one demonstration prefix per (seed, block) under the block's masks.

    >>> ko = aggregation_knockout()                       # the default block
    >>> [b.describe() for b in ko.blocks][0][:40]
    '((part(demo) & category(template,stopwor'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from ..ablation.knockout import Block, Knockout
from ..ablation.selection import Sel

__all__ = ["AggregationBlock", "aggregation_knockout", "BLOCK_QUERIES", "BLOCK_SCOPES",
           "block_queries", "block_keys"]

#: Which demonstration queries the block restricts.
BLOCK_QUERIES = {
    "all": "every demonstration token with template, stopword or label and no content",
    "t_out": "the output template of each demonstration (e.g. 'Sentiment', ':', its newlines)",
    "label": "the label words (D_out) of each demonstration",
    "last_colon": "each demonstration's final ':' (the one before its label word)",
}
#: Where the blocked content keys may be: any demonstration up to the query, or its own only.
BLOCK_SCOPES = {
    "all": "content keys in every demonstration (up to the query)",
    "own": "content keys only inside the query's own demonstration",
}
_CARRIERS = ("template", "stopword", "label")


def block_queries(queries: str = "all") -> Sel:
    """The restricted query positions of a block variant (demonstration tokens, never content)."""
    if queries not in BLOCK_QUERIES:
        known = "; ".join(f"{k}: {v}" for k, v in BLOCK_QUERIES.items())
        raise ValueError(f"unknown aggregation queries {queries!r}; choose one of "
                         f"{sorted(BLOCK_QUERIES)} ({known}).")
    base = Sel.part("demo") & Sel.category(*_CARRIERS) & ~Sel.category("content")
    if queries == "t_out":
        return base & Sel.role("demo_*.t_out.*")
    if queries == "label":
        return base & Sel.category("label")
    if queries == "last_colon":
        return base & Sel.role("demo_*.t_out.colon")
    return base


def block_keys() -> Sel:
    """Demonstration tokens that carry content and none of template, stopword, label."""
    return Sel.part("demo") & Sel.category("content") & ~Sel.category(*_CARRIERS)


@dataclass(frozen=True)
class AggregationBlock:
    """One variant of the block.

    Attributes:
        queries: A key of :data:`BLOCK_QUERIES` (default ``"all"``).
        scope: A key of :data:`BLOCK_SCOPES` (default ``"all"``); ``"own"`` needs ``k``.
        layers: Layers where the block applies (``None``: all; negatives count from the end).
        k: The number of demonstrations (only for ``scope="own"``: one block per demonstration).
    """

    queries: str = "all"
    scope: str = "all"
    layers: tuple[int, ...] | None = None
    k: int | None = None

    def __post_init__(self) -> None:
        block_queries(self.queries)  # validates
        if self.scope not in BLOCK_SCOPES:
            raise ValueError(f"unknown aggregation scope {self.scope!r}; choose one of "
                             f"{sorted(BLOCK_SCOPES)}.")
        if self.scope == "own" and (self.k is None or self.k < 1):
            raise ValueError("scope='own' builds one block per demonstration: pass k >= 1 "
                             "(the number of demonstrations).")
        if self.layers is not None:
            layers = tuple(int(x) for x in self.layers)
            if not layers:
                raise ValueError("aggregation layers is empty; pass None for all layers.")
            object.__setattr__(self, "layers", layers)

    @property
    def name(self) -> str:
        """Short name for result rows: ``agg``, ``agg[t_out]``, ``agg[own,L0-4]`` ..."""
        opts = [o for o in (self.queries if self.queries != "all" else "",
                            "own" if self.scope == "own" else "",
                            _layer_text(self.layers)) if o]
        return "agg" + (f"[{','.join(opts)}]" if opts else "")

    def knockout(self) -> Knockout:
        """The block as a :class:`~icl_tokens.ablation.knockout.Knockout`."""
        q, keys = block_queries(self.queries), block_keys()
        if self.scope == "all":
            blocks: Sequence[Block] = (Block(q, keys, layers=self.layers),)
        else:
            blocks = tuple(Block(q & Sel.demo(i), keys & Sel.demo(i), layers=self.layers)
                           for i in range(int(self.k or 0)))
        return Knockout(tuple(blocks), name=self.name)


def _layer_text(layers: Iterable[int] | None) -> str:
    if layers is None:
        return ""
    ls = list(layers)
    if ls == list(range(ls[0], ls[-1] + 1)) and len(ls) > 1:
        return f"L{ls[0]}-{ls[-1]}"
    return "L" + "+".join(str(x) for x in ls)


def aggregation_knockout(queries: str = "all", scope: str = "all",
                         layers: Iterable[int] | None = None, k: int | None = None) -> Knockout:
    """The aggregation block as a knockout (default: all demonstration
    template/stopword/label queries, content keys of every demonstration, all layers).

    Combine it with a test-example condition: ``condition_knockout(...) | aggregation_knockout()``.
    """
    return AggregationBlock(queries, scope, None if layers is None else tuple(layers), k).knockout()
