"""The prefix cache: a shared prefix's keys and values, computed once under its interventions.

A cached prefix is valid only for the same prefix tokens computed under the same intervention
(style guide §8). The key is therefore ``(prefix token ids, prefix-side signature, mode)``: the
signature digests every mask row of the item's knockout inside the prefix
(:meth:`~icl_tokens.ablation.knockout.ResolvedKnockout.prefix_signature`), so a condition that only
restricts the test example shares the plain prefix, while a demonstration-internal block gets
its own prefix, run with its hooks active.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..ablation.hooks import layered_knockout
from ..ablation.knockout import ResolvedKnockout

__all__ = ["PrefixCache", "prefix_kv"]

PrefixKey = tuple[tuple[int, ...], str | None, str]
Prefix = tuple[int, list[tuple[Tensor, Tensor]]]


def prefix_kv(model: Any, ids: list[int], ko: ResolvedKnockout | None = None,
              mode: str = "scores") -> list[tuple[Tensor, Tensor]]:
    """Run a prefix once (batch 1), under ``ko``'s prefix rows, and return per-layer (K, V)."""
    from transformers import DynamicCache

    cache = DynamicCache()
    x = torch.tensor([ids], dtype=torch.long, device=torch.device(model.cfg.device))
    masks: dict[int, Tensor] = {}
    if ko is not None and not ko.is_empty:
        pos = np.arange(len(ids))
        masks = {layer: torch.from_numpy(m[None])
                 for layer, m in ko.masks(pos, pos, int(model.cfg.n_layers),
                                          int(model.cfg.n_heads)).items()}
    if masks:
        with layered_knockout(model, masks, mode=mode) as handle:
            model(x, past_key_values=cache, logits_to_keep=1)
        if handle.calls != len(masks):
            raise RuntimeError("prefix knockout hooks did not fire in every masked layer.")
    else:
        model(x, past_key_values=cache, logits_to_keep=1)
    kv = [(layer.keys, layer.values) for layer in cache.layers]
    if not kv or any(k is None or k.shape[-2] != len(ids) for k, _ in kv):
        got = [None if k is None else k.shape[-2] for k, _ in kv]
        raise RuntimeError(
            f"the bridge's KV cache did not fill ({got} cached positions, expected {len(ids)} per "
            "layer). This is the silent failure of transformer-lens 4.3.0 with transformers "
            "5.24.0: install transformers==5.23.0 or use engine='naive'."
        )
    return kv


class PrefixCache:
    """Prefix KV caches keyed by (ids, prefix-side intervention signature, mode).

    Reuse one across calls only while the model and its weights are unchanged. ``hits`` and
    ``misses`` count lookups (a benchmark or test can check how many prefixes were computed).
    """

    def __init__(self) -> None:
        self._store: dict[PrefixKey, Prefix] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        self._store.clear()

    def get(self, model: Any, ids: tuple[int, ...], ko: ResolvedKnockout | None,
            signature: str | None, mode: str) -> Prefix:
        """The cached prefix, computed on first use under ``ko`` (whose prefix rows have
        ``signature``)."""
        key = (ids, signature, mode if signature is not None else "scores")
        if key in self._store:
            self.hits += 1
        else:
            self.misses += 1
            self._store[key] = (len(ids), prefix_kv(model, list(ids),
                                                    ko if signature is not None else None, mode))
        return self._store[key]
