"""Attention-knockout hooks on TransformerLens hook points, installed by a context manager.

``mode="scores"`` (the paper's representation-level ablation) fills ``-inf`` into
``blocks.{l}.attn.hook_attn_scores`` so every row of the softmax renormalises over the keys that
stay visible. ``mode="pattern"`` zeroes ``blocks.{l}.attn.hook_pattern`` *without*
renormalising: a different intervention, named explicitly.

    with attention_knockout(model, mask) as ko:      # mask: Bool[batch, q, k], True = blocked
        logits = model(tokens)
    assert ko.calls == model.cfg.n_layers            # the hook really fired

Hooks are installed through ``model.hooks(...)``, which removes them on exit, also after an
exception.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import torch
from jaxtyping import Bool
from torch import Tensor

__all__ = ["attention_knockout", "attn_hook_name", "KnockoutHandle", "MODES", "check_layers"]

MODES = ("scores", "pattern")


def attn_hook_name(layer: int, kind: str = "attn_scores") -> str:
    """``blocks.{layer}.attn.hook_{kind}`` (``kind``: ``attn_scores`` or ``pattern``)."""
    return f"blocks.{layer}.attn.hook_{kind}"


def check_layers(n_layers: int, layers: Iterable[int] | None) -> list[int]:
    """Validate a layer selection (``None`` = all layers; negative indices count from the end)."""
    if layers is None:
        return list(range(n_layers))
    out: list[int] = []
    for layer in layers:
        li = int(layer)
        if not -n_layers <= li < n_layers:
            raise ValueError(
                f"layer {layer} is out of range for a model with {n_layers} layers "
                f"(valid: 0..{n_layers - 1} or -{n_layers}..-1)."
            )
        li %= n_layers
        if li not in out:
            out.append(li)
    if not out:
        raise ValueError("empty layer selection; pass None for all layers.")
    return sorted(out)


@dataclass
class KnockoutHandle:
    """What :func:`attention_knockout` yields: call counts for canary checks."""

    layers: list[int]
    heads: list[int] | None
    mode: str
    calls: int = 0


def _make_hook(mask: Tensor, heads: Sequence[int] | None, mode: str, handle: KnockoutHandle):
    def hook(t: Tensor, hook: Any) -> Tensor:
        b, h, q, k = t.shape
        if mask.shape != (b, q, k):
            raise ValueError(
                f"{hook.name}: knockout mask has shape {tuple(mask.shape)} but the attention "
                f"{'scores' if mode == 'scores' else 'pattern'} are [batch={b}, q={q}, k={k}]; "
                "build the mask for exactly the positions of this forward (after padding and "
                "any cached prefix)."
            )
        m = mask.to(t.device)[:, None, :, :]
        if heads is not None:
            sel = torch.zeros(h, dtype=torch.bool, device=t.device)
            sel[list(heads)] = True
            m = m & sel[None, :, None, None]
        handle.calls += 1
        fill = float("-inf") if mode == "scores" else 0.0
        return t.masked_fill(m, fill)

    return hook


@contextmanager
def attention_knockout(
    model: Any,
    mask: Bool[Tensor, "batch q k"] | Bool[Tensor, "q k"],
    *,
    layers: Iterable[int] | None = None,
    heads: Sequence[int] | None = None,
    mode: str = "scores",
) -> Iterator[KnockoutHandle]:
    """Block attention from queries to keys wherever ``mask`` is True.

    Args:
        model: A TransformerLens ``TransformerBridge`` (anything with ``hooks`` and ``cfg``).
        mask: Bool ``[batch, q, k]`` (or ``[q, k]`` for batch 1), True = blocked, for exactly
            the query and key positions of the forward run inside the context.
        layers: Layers to knock out (default: all).
        heads: Query heads to knock out (default: all).
        mode: ``"scores"`` (-inf before softmax, renormalised) or ``"pattern"`` (zero after
            softmax, not renormalised).

    Yields:
        A :class:`KnockoutHandle` whose ``calls`` counts hook invocations.
    """
    if mode not in MODES:
        raise ValueError(f"unknown knockout mode {mode!r}; use one of {MODES}.")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = blocked), got {mask.dtype}.")
    if mask.ndim == 2:
        mask = mask[None]
    n_layers = int(model.cfg.n_layers)
    n_heads = int(model.cfg.n_heads)
    layer_list = check_layers(n_layers, layers)
    head_list = None
    if heads is not None:
        head_list = sorted({int(h) for h in heads})
        if not head_list or head_list[0] < 0 or head_list[-1] >= n_heads:
            raise ValueError(f"heads {list(heads)} out of range for {n_heads} query heads.")
    kind = "attn_scores" if mode == "scores" else "pattern"
    names = [attn_hook_name(layer, kind) for layer in layer_list]
    hook_dict = getattr(model, "hook_dict", None)
    if hook_dict is not None:
        missing = [n for n in names if n not in hook_dict]
        if missing:
            raise KeyError(f"model has no hook points {missing[:3]}; cannot apply the knockout.")
    handle = KnockoutHandle(layers=layer_list, heads=head_list, mode=mode)
    fn = _make_hook(mask, head_list, mode, handle)
    with model.hooks(fwd_hooks=[(n, fn) for n in names]):
        yield handle
