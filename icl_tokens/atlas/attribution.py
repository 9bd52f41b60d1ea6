"""One-pass attention-edge attribution: every key's first-order effect on the label margin.

Put a gate ``g_k`` on the attention from the atlas queries (the test example's tokens and every
generated or teacher-forced token) to key ``k`` in a layer, renormalising each row (``g_k = 0``
is the single-key knockout; :func:`~icl_tokens.atlas.gates.score_gates`). From one forward and
one backward per example (the pattern ``A`` of those rows and the gradient ``G`` of the margin
with respect to it, per layer, head and query row):

* ``grad``: the gradient estimate ``-dM/dg_k`` at ``g = 1``, per row
  ``A_k (S - G_k)`` with ``S = sum_j A_j G_j`` (the derivative of the renormalised row);
* ``atp``: the AtP*-style estimate (Kramár et al. 2024): each layer's pattern change from
  removing key ``k`` is computed exactly, ``A_j A_k / (1 - A_k)`` for the others and ``-A_k``
  for ``k``, and only its effect through the later layers is linearised: per row
  ``A_k (mean of G over the other keys, weighted by A - G_k)``.

Both are summed over heads and query rows, kept per layer (a layer window is a sum over its
layers), and estimate ``delta_margin`` (knocked-out margin minus unablated). The cost does not
depend on the number of keys. With multi-token labels the gold label and the best other label
each need their own teacher-forced forward (one backward over both).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..ablation.knockout import check_index_list
from ..engine.batch import Batch
from ..engine.items import Item
from ..engine.prefix_cache import PrefixCache
from ..engine.scoring import ENGINES, score_items
from .exact import best_other, label_margin
from .gates import PatternProbe, pattern_probe, score_gates

__all__ = ["Attribution", "attribute", "row_effects", "gated_margin", "METHODS"]

#: The attribution methods (columns ``attribution`` and ``attribution_atp``).
METHODS: tuple[str, ...] = ("grad", "atp")


@dataclass
class Attribution:
    """The attribution of one test example.

    Attributes:
        item: The unablated item.
        grad, atp: Float ``[n_layers, len(item)]`` per-layer estimates of each key's
            ``delta_margin`` (NaN in ``atp`` where a query attends to the key alone, in the
            model's precision, so the renormalised row is undefined).
        margin: The unablated margin.
        other: The best other label at the unablated point.
        seconds: Wall time (forward and backward).
    """

    item: Item
    grad: np.ndarray
    atp: np.ndarray
    margin: float
    other: str
    seconds: float = float("nan")

    def estimate(self, method: str = "grad", layers: Sequence[int] | None = None) -> np.ndarray:
        """Float ``[len(item)]``: the estimate of removing each key in ``layers`` (all: None)."""
        if method not in METHODS:
            raise ValueError(f"unknown attribution method {method!r}; use one of {METHODS}.")
        per_layer = self.grad if method == "grad" else self.atp
        chosen = check_index_list("layer", layers, per_layer.shape[0])
        return per_layer[list(chosen) if chosen is not None else slice(None)].sum(0)


def row_effects(a: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-key estimates from the pattern ``a`` and its gradient ``g`` (``[..., rows, keys]``),
    summed over everything but the key axis: ``(grad, atp)``."""
    a = np.asarray(a, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    s = (a * g).sum(-1, keepdims=True)
    grad = a * (s - g)
    rest = 1.0 - a  # sum of the other keys' attention, exact where no key dominates the row
    top = a.argmax(-1)[..., None]
    others = a.copy()
    np.put_along_axis(others, top, 0.0, -1)
    np.put_along_axis(rest, top, others.sum(-1, keepdims=True), -1)  # no cancellation
    weighted = s - a * g  # sum over the other keys of A_j G_j
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_other = weighted / rest
    atp = np.where(a > 0, a * (mean_other - g), 0.0)
    axes = tuple(range(a.ndim - 1))
    return grad.sum(axes), atp.sum(axes)


def _scores(logits: torch.Tensor, ids: Sequence[int]) -> torch.Tensor:
    """Sum of log-probs of ``ids`` from logits ``[keep, vocab]`` at the scored positions."""
    wide = torch.float64 if logits.dtype == torch.float64 else torch.float32
    lp = torch.log_softmax(logits.to(wide), dim=-1)
    return sum(lp[t, tok] for t, tok in enumerate(ids))  # type: ignore[return-value]


def _forward(model: Any, item: Item, forced: tuple[int, ...], engine: str, pad_id: int,
             cache: PrefixCache) -> tuple[torch.Tensor, PatternProbe]:
    """Logits ``[len(forced) + 1, vocab]`` at the scored positions, under the probe."""
    cached = engine == "cached" and item.prefix_len > 0
    prefix = (cache.get(model, tuple(item.input_ids[: item.prefix_len]), None, None, "scores")
              if cached else None)
    batch = Batch(model, [item], [None], pad_id=pad_id, prefix=prefix, cached=engine == "cached")
    with pattern_probe(model, item) as probe:
        logits = batch.start(forced=[list(forced)] if forced else None, keep=len(forced) + 1)
    return logits[0], probe


def _base_scores(model: Any, tokenizer: Any, item: Item, engine: str,
                 cache: PrefixCache) -> dict[str, float]:
    return score_items(model, tokenizer, [item], scoring="label", engine=engine,
                       batch_size=1, prefix_cache=cache)[0].label_scores


def attribute(model: Any, tokenizer: Any, item: Item, *, engine: str = "cached",
              prefix_cache: PrefixCache | None = None,
              base_scores: Mapping[str, float] | None = None) -> Attribution:
    """Both estimates for every key of ``item`` from one forward and backward.

    Args:
        model, tokenizer: A bridge and its tokenizer.
        item: The unablated item of one test example.
        engine: ``cached`` (the demonstration prefix from ``prefix_cache``, constant: the
            gates touch the test rows only) or ``naive`` (a full forward).
        base_scores: The unablated label scores, if known (needed only to pick the best other
            label when some label has several tokens; otherwise they are computed).
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; use one of {ENGINES}.")
    if item.knockout is not None:
        raise ValueError("attribute the unablated item (it has a knockout).")
    cache = PrefixCache() if prefix_cache is None else prefix_cache
    gold = item.gold
    start = time.perf_counter()
    single = item.labels.max_len == 1
    if not single and base_scores is None:
        base_scores = _base_scores(model, tokenizer, item, engine, cache)
    other = None if single else best_other(dict(base_scores or {}), gold)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with torch.enable_grad():
        margin, other, probes = _margin_graph(model, item, engine, int(pad), cache, other)
        leaves = [p.leaves[la] for p in probes for la in sorted(p.leaves)]
        grads = torch.autograd.grad(margin, leaves, allow_unused=True)
    n_layers, n = int(model.cfg.n_layers), len(item)
    grad, atp = np.zeros((n_layers, n)), np.zeros((n_layers, n))
    it = iter(grads)
    for p in probes:
        for layer in sorted(p.leaves):
            g = next(it)
            if g is None:
                continue
            eg, ea = row_effects(p.patterns[layer].double().cpu().numpy(),
                                 g.double().cpu().numpy())
            grad[layer] += eg[:n]  # keys past the prompt (forced tokens) are never removed
            atp[layer] += ea[:n]
    return Attribution(item, grad, atp, float(margin.detach()), other,
                       time.perf_counter() - start)


def _margin_graph(model: Any, item: Item, engine: str, pad: int, cache: PrefixCache,
                  other: str | None) -> tuple[torch.Tensor, str, list[PatternProbe]]:
    """The margin (with its graph) and the probes of the forwards it needed."""
    labels, gold = item.labels, item.gold
    if other is None:  # every label is one token: one forward scores them all
        logits, probe = _forward(model, item, (), engine, pad, cache)
        scores = {w: _scores(logits, labels.ids[w]) for w in labels.words}
        other = best_other({w: float(v.detach()) for w, v in scores.items()}, gold)
        return scores[gold] - scores[other], other, [probe]
    runs: dict[tuple[int, ...], tuple[torch.Tensor, PatternProbe]] = {}
    total: torch.Tensor | None = None
    for word, sign in ((gold, 1.0), (other, -1.0)):
        forced = tuple(labels.ids[word][:-1])
        if forced not in runs:
            runs[forced] = _forward(model, item, forced, engine, pad, cache)
        term = sign * _scores(runs[forced][0], labels.ids[word])
        total = term if total is None else total + term
    assert total is not None
    return total, other, [p for _, p in runs.values()]


@torch.no_grad()
def gated_margin(model: Any, tokenizer: Any, item: Item, gates: Mapping[int, np.ndarray]
                 ) -> float:
    """The margin with the atlas queries' attention gated (:func:`~.gates.score_gates`), from
    plain full forwards (a reference for finite differences of the estimates)."""
    labels = item.labels
    scores: dict[str, float] = {}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for word in labels.words:
        forced = list(labels.ids[word][:-1])
        batch = Batch(model, [item], [None], pad_id=int(pad), prefix=None, cached=False)
        with score_gates(model, item, gates):
            logits = batch.start(forced=[forced] if forced else None, keep=len(forced) + 1)
        scores[word] = float(_scores(logits[0], labels.ids[word]))
    return label_margin(scores, item.gold)
