"""Attention-knockout hooks on TransformerLens hook points, installed by context managers.

``mode="scores"`` (the paper's representation-level ablation) fills ``-inf`` into
``blocks.{l}.attn.hook_attn_scores`` so every row of the softmax renormalises over the keys that
stay visible. ``mode="pattern"`` zeroes ``blocks.{l}.attn.hook_pattern`` *without*
renormalising: a different intervention, named explicitly.

    with attention_knockout(model, mask) as ko:      # mask: Bool[batch, q, k], True = blocked
        logits = model(tokens)
    assert ko.calls == model.cfg.n_layers            # the hook really fired

:func:`layered_knockout` takes one mask per layer (``Bool[batch, q, k]`` or, for head-restricted
blocks, ``Bool[batch, heads, q, k]``): what the engine builds from a
:class:`~icl_tokens.ablation.knockout.Knockout`. Hooks are installed through ``model.hooks(...)``,
which removes them on exit, also after an exception.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Iterable, Iterator, Mapping, Sequence

import torch
from jaxtyping import Bool
from torch import Tensor

from .knockout import MODES, check_index_list

__all__ = ["attention_knockout", "layered_knockout", "attn_hook_name", "KnockoutHandle",
           "MODES", "check_layers"]


def attn_hook_name(layer: int, kind: str = "attn_scores") -> str:
    """``blocks.{layer}.attn.hook_{kind}`` (``kind``: ``attn_scores`` or ``pattern``)."""
    return f"blocks.{layer}.attn.hook_{kind}"


def check_layers(n_layers: int, layers: Iterable[int] | None) -> list[int]:
    """Validate a layer selection (``None`` = all layers; negative indices count from the end)."""
    out = check_index_list("layer", layers, n_layers)
    return list(range(n_layers)) if out is None else list(out)


@dataclass
class KnockoutHandle:
    """What the knockout context managers yield: call counts for canary checks."""

    layers: list[int]
    heads: list[int] | None
    mode: str
    calls: int = 0
    per_layer: dict[int, int] = field(default_factory=dict)


def _hook(t: Tensor, hook: Any, *, mask: Tensor, layer: int, mode: str,
          handle: KnockoutHandle) -> Tensor:
    b, h, q, k = t.shape
    want = (b, q, k) if mask.ndim == 3 else (b, h, q, k)
    if tuple(mask.shape) != want:
        raise ValueError(
            f"{hook.name}: knockout mask has shape {tuple(mask.shape)} but the attention "
            f"{'scores' if mode == 'scores' else 'pattern'} are [batch={b}, heads={h}, q={q}, "
            f"k={k}]; build the mask for exactly the positions of this forward (after padding "
            "and any cached prefix).")
    m = mask.to(t.device)
    if m.ndim == 3:
        m = m[:, None]
    handle.calls += 1
    handle.per_layer[layer] = handle.per_layer.get(layer, 0) + 1
    return t.masked_fill(m, float("-inf") if mode == "scores" else 0.0)


@contextmanager
def layered_knockout(
    model: Any, masks: Mapping[int, Tensor], *, mode: str = "scores"
) -> Iterator[KnockoutHandle]:
    """Block attention with one mask per layer.

    Args:
        model: A ``TransformerBridge`` (anything with ``hooks``, ``cfg`` and ``hook_dict``).
        masks: ``{layer: Bool[batch, q, k] | Bool[batch, heads, q, k]}``, True = blocked, for
            exactly the positions of the forward run inside the context. Layers not listed are
            left alone.
        mode: ``"scores"`` or ``"pattern"``.

    Yields:
        A :class:`KnockoutHandle` (``calls`` counts hook invocations, ``per_layer`` per layer).
    """
    if mode not in MODES:
        raise ValueError(f"unknown knockout mode {mode!r}; use one of {MODES}.")
    n_layers = int(model.cfg.n_layers)
    layers = check_layers(n_layers, list(masks)) if masks else []
    kind = "attn_scores" if mode == "scores" else "pattern"
    hook_dict = getattr(model, "hook_dict", None)
    handle = KnockoutHandle(layers=layers, heads=None, mode=mode)
    hooks = []
    for layer, m in masks.items():
        if m.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor (True = blocked), got {m.dtype}.")
        if m.ndim not in (3, 4):
            raise ValueError(f"layer {layer}: mask must be [batch, q, k] or [batch, heads, q, k], "
                             f"got shape {tuple(m.shape)}.")
        name = attn_hook_name(int(layer) % n_layers, kind)
        if hook_dict is not None and name not in hook_dict:
            raise KeyError(f"model has no hook point {name!r}; cannot apply the knockout.")
        hooks.append((name, partial(_hook, mask=m, layer=int(layer) % n_layers, mode=mode,
                                    handle=handle)))
    with model.hooks(fwd_hooks=hooks):
        yield handle


@contextmanager
def attention_knockout(
    model: Any,
    mask: Bool[Tensor, "batch q k"] | Bool[Tensor, "q k"],
    *,
    layers: Iterable[int] | None = None,
    heads: Sequence[int] | None = None,
    mode: str = "scores",
) -> Iterator[KnockoutHandle]:
    """Block attention from queries to keys wherever ``mask`` is True (the same in every layer).

    Args:
        model: A TransformerLens ``TransformerBridge`` (anything with ``hooks`` and ``cfg``).
        mask: Bool ``[batch, q, k]`` (or ``[q, k]`` for batch 1), True = blocked, for exactly
            the query and key positions of the forward run inside the context.
        layers: Layers to knock out (default: all).
        heads: Query heads to knock out (default: all; negative indices count from the end).
        mode: ``"scores"`` (-inf before softmax, renormalised) or ``"pattern"`` (zero after
            softmax, not renormalised).

    Yields:
        A :class:`KnockoutHandle` whose ``calls`` counts hook invocations.
    """
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = blocked), got {mask.dtype}.")
    if mask.ndim == 2:
        mask = mask[None]
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    layer_list = check_layers(n_layers, layers)
    head_list = check_index_list("head", heads, n_heads)
    if head_list is not None:
        sel = torch.zeros(n_heads, dtype=torch.bool, device=mask.device)
        sel[list(head_list)] = True
        mask = mask[:, None] & sel[None, :, None, None]
    with layered_knockout(model, {layer: mask for layer in layer_list}, mode=mode) as handle:
        handle.heads = None if head_list is None else list(head_list)
        yield handle
