"""Hooks on the test queries' attention rows: a probe that records the pattern and its gradient,
and a gate that scales one key's attention and renormalises the row.

A forward of batch 1 covers absolute positions ``0 .. total-1``; its query rows are the last
``q`` of them (all of them in a full forward, the part after the cached prefix otherwise), so
every hook maps its rows back to absolute positions and acts on the atlas queries only (the test
example's tokens and every generated or teacher-forced token).

The gate ``g`` of key ``k`` multiplies the post-softmax column ``k`` of those rows by ``g`` and
renormalises them, which is adding ``log g`` to the attention score: ``g = 0`` is the single-key
knockout, ``g = 1`` the unablated model.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import Tensor

from ..ablation.hooks import attn_hook_name
from ..engine.items import Item
from .items import atlas_queries

__all__ = ["query_rows", "PatternProbe", "pattern_probe", "score_gates"]


def query_rows(item: Item, total: int, q: int) -> np.ndarray:
    """Row indices (of a forward's last ``q`` of ``total`` positions) that are atlas queries."""
    test = atlas_queries().mask(item)
    absolute = np.arange(total - q, total)
    inside = absolute < len(item)
    rows = np.ones(q, dtype=bool)  # positions past the prompt: generated or forced tokens
    rows[inside] = test[absolute[inside]]
    return np.flatnonzero(rows)


def _rows(item: Item, t: Tensor) -> Tensor:
    b, _, q, k = t.shape
    if b != 1:
        raise ValueError(f"atlas hooks run one prompt per forward, got a batch of {b}.")
    return torch.from_numpy(query_rows(item, k, q)).to(t.device)


@dataclass
class PatternProbe:
    """What :func:`pattern_probe` recorded in one forward: per layer, the atlas queries'
    pattern (``Float[1, heads, rows, keys]``, detached) and the zero tensor added to it (a leaf
    whose gradient is the gradient of the output with respect to the pattern)."""

    patterns: dict[int, Tensor] = field(default_factory=dict)
    leaves: dict[int, Tensor] = field(default_factory=dict)


def _probe_hook(t: Tensor, hook: Any, *, layer: int, item: Item, probe: PatternProbe) -> Tensor:
    rows = _rows(item, t)
    leaf = torch.zeros(t.shape[0], t.shape[1], len(rows), t.shape[3], dtype=t.dtype,
                       device=t.device, requires_grad=True)
    probe.patterns[layer] = t.detach()[:, :, rows]
    probe.leaves[layer] = leaf
    return t.index_add(2, rows, leaf)


@contextmanager
def pattern_probe(model: Any, item: Item) -> Iterator[PatternProbe]:
    """Record the atlas queries' attention pattern in every layer, differentiably."""
    probe = PatternProbe()
    n_layers = int(model.cfg.n_layers)
    hooks = [(attn_hook_name(layer, "pattern"),
              partial(_probe_hook, layer=layer, item=item, probe=probe))
             for layer in range(n_layers)]
    with model.hooks(fwd_hooks=hooks):
        yield probe
    missing = sorted(set(range(n_layers)) - set(probe.patterns))
    if missing:
        raise RuntimeError(f"the pattern hooks did not fire in layers {missing}; the model's "
                           "attention does not go through hook_pattern.")


def _gate_hook(t: Tensor, hook: Any, *, log_gate: Tensor, item: Item) -> Tensor:
    rows = _rows(item, t)
    k = t.shape[3]
    add = torch.zeros(k, dtype=t.dtype, device=t.device)
    n = min(k, log_gate.shape[0])
    add[:n] = log_gate[:n].to(t.dtype)
    out = t.clone()
    out[:, :, rows] = out[:, :, rows] + add
    return out


@contextmanager
def score_gates(model: Any, item: Item, gates: Mapping[int, np.ndarray]) -> Iterator[None]:
    """Scale each key's attention from the atlas queries by a gate and renormalise.

    Args:
        gates: ``{layer: Float[len(item)]}``, one gate >= 0 per prompt key (1: untouched, 0:
            the key knocked out); layers not listed are left alone.
    """
    n_layers = int(model.cfg.n_layers)
    hooks = []
    for layer, g in gates.items():
        g = np.asarray(g, dtype=np.float64)
        if g.shape != (len(item),) or (g < 0).any() or not np.isfinite(g).all():
            raise ValueError(f"layer {layer}: gates must be {len(item)} finite values >= 0 (one "
                             f"per prompt key), got shape {g.shape}.")
        with np.errstate(divide="ignore"):
            log_gate = torch.from_numpy(np.log(g))
        hooks.append((attn_hook_name(int(layer) % n_layers),
                      partial(_gate_hook, log_gate=log_gate, item=item)))
    with model.hooks(fwd_hooks=hooks):
        yield
