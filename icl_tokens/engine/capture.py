"""Activation capture: chosen hook activations at chosen positions, batched, moved to the CPU.

For probes and attention-mass views. Each batch is one right-padded full forward (under the
items' knockouts unless ``apply_knockouts=False``); hooks copy only the selected positions of
only the named hook points to the CPU, so memory is bounded by the batch and the selection,
never by a whole-sweep ``run_with_cache``.

    caps = capture_activations(model, items, ["blocks.3.hook_resid_post"],
                               positions=Sel.role("demo_*.t_out.colon"))
    caps[0].acts["blocks.3.hook_resid_post"]        # Float[n_selected, d_model], on the CPU

Position axes: ``hook_pattern`` / ``hook_attn_scores`` are ``[batch, heads, q, k]``; the selected
query rows are kept, with the keys cut to the item's own length (``[n_sel, heads, k]``). Every
other hook is taken as ``[batch, pos, ...]`` and gives ``[n_sel, ...]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor

from ..ablation.hooks import layered_knockout
from ..ablation.selection import Sel
from .batch import stack_layer_masks
from .items import Item
from .scoring import _pad_id, resolve_knockouts

__all__ = ["Capture", "capture_activations", "iter_captures", "resid_names"]

Positions = Sel | Callable[[Item], np.ndarray] | None


@dataclass
class Capture:
    """The captured activations of one item.

    Attributes:
        item: The item.
        positions: Int ``[n_sel]`` absolute positions that were captured.
        acts: Hook name → tensor on the CPU, first axis = ``positions``.
    """

    item: Item
    positions: Int[np.ndarray, "n_sel"]
    acts: dict[str, Tensor]


def resid_names(n_layers: int, kind: str = "resid_post") -> list[str]:
    """``blocks.{l}.hook_{kind}`` for every layer."""
    return [f"blocks.{layer}.hook_{kind}" for layer in range(n_layers)]


def _select(item: Item, positions: Positions) -> np.ndarray:
    if positions is None:
        return np.arange(len(item))
    if isinstance(positions, Sel):
        return np.flatnonzero(positions.mask(item))
    sel = np.asarray(positions(item))
    if sel.dtype == bool:
        if sel.shape != (len(item),):
            raise ValueError(f"position mask has shape {sel.shape}; item has {len(item)} tokens.")
        return np.flatnonzero(sel)
    return sel.astype(np.int64)


def _is_attention(name: str) -> bool:
    return name.endswith("hook_pattern") or name.endswith("hook_attn_scores")


def _save(t: Tensor, hook: Any, *, name: str, rows: list[np.ndarray], lens: list[int],
          out: list[dict[str, Tensor]], dtype: torch.dtype | None) -> Tensor:
    for b, (sel, n) in enumerate(zip(rows, lens)):
        idx = torch.as_tensor(sel, device=t.device, dtype=torch.long)
        if _is_attention(name):
            a = t[b][:, idx, :n].permute(1, 0, 2)  # [n_sel, heads, k]
        else:
            a = t[b, idx]
        a = a.detach().to("cpu")
        out[b][name] = a if dtype is None else a.to(dtype)
    return t


def _check_names(model: Any, names: Sequence[str]) -> list[str]:
    """The hook names, refused when empty or not hook points of ``model``."""
    names = list(names)
    if not names:
        raise ValueError("give at least one hook name, e.g. 'blocks.0.hook_resid_post'.")
    hook_dict = getattr(model, "hook_dict", {})
    missing = [n for n in names if n not in hook_dict]
    if missing:
        raise KeyError(f"model has no hook points {missing[:3]}; e.g. 'blocks.0.hook_resid_post', "
                       "'blocks.0.attn.hook_pattern'.")
    return names


def _right_padded(chunk: Sequence[Item], pad_id: int, device: torch.device
                  ) -> tuple[Tensor, Tensor, list[np.ndarray]]:
    """Token ids ``[batch, width]`` padded on the right, their attention mask, and each row's
    column → prompt position (-1 for padding)."""
    width = max(len(it) for it in chunk)
    ids = torch.full((len(chunk), width), pad_id, dtype=torch.long, device=device)
    attn = torch.zeros((len(chunk), width), dtype=torch.long, device=device)
    cols = []
    for r, it in enumerate(chunk):
        ids[r, : len(it)] = torch.tensor(it.input_ids, device=device)
        attn[r, : len(it)] = 1
        cols.append(np.concatenate([np.arange(len(it)), np.full(width - len(it), -1)]))
    return ids, attn, cols


def iter_captures(
    model: Any,
    tokenizer: Any,
    items: Sequence[Item],
    names: Sequence[str],
    *,
    positions: Positions = None,
    batch_size: int = 8,
    apply_knockouts: bool = True,
    dtype: torch.dtype | None = None,
) -> Iterator[list[Capture]]:
    """Yield the :class:`Capture` s of each batch of items, in item order.

    Args:
        model: A ``TransformerBridge``.
        tokenizer: Its tokenizer (for the pad id).
        items: What to run.
        names: Exact hook names (checked against ``model.hook_dict``).
        positions: Which positions to keep per item: a :class:`~icl_tokens.ablation.Sel`, a
            function of the item returning indices or a Bool mask, or ``None`` (all).
        batch_size: Items per forward.
        apply_knockouts: Run under each item's knockout (default) or without.
        dtype: Cast captured tensors (e.g. ``torch.float16`` to halve memory).
    """
    names = _check_names(model, names)
    pad_id = _pad_id(tokenizer)
    device = torch.device(model.cfg.device)
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    kos = resolve_knockouts(model, items) if apply_knockouts else [None] * len(items)
    modes = {it.knockout.mode for it, ko in zip(items, kos) if ko is not None}
    if len(modes) > 1:
        raise ValueError("items mix knockout modes; capture them in separate calls.")
    mode = modes.pop() if modes else "scores"
    with torch.no_grad():
        for s in range(0, len(items), batch_size):
            chunk = list(items[s : s + batch_size])
            ckos = kos[s : s + batch_size]
            ids, attn, cols = _right_padded(chunk, pad_id, device)
            rows = [_select(it, positions) for it in chunk]
            for it, sel in zip(chunk, rows):
                if len(sel) and (sel.min() < 0 or sel.max() >= len(it)):
                    raise ValueError(f"capture positions out of range for item {it.example_id}.")
            out: list[dict[str, Tensor]] = [{} for _ in chunk]
            hooks = [(n, partial(_save, name=n, rows=rows, lens=[len(it) for it in chunk],
                                 out=out, dtype=dtype)) for n in names]
            masks = stack_layer_masks(ckos, cols, cols, n_layers, n_heads)
            # The knockout's hooks are installed first, so captures see the edited tensors.
            with layered_knockout(model, masks, mode=mode), model.hooks(fwd_hooks=hooks):
                model(ids, attention_mask=attn)
            yield [Capture(it, sel, acts) for it, sel, acts in zip(chunk, rows, out)]


def capture_activations(model: Any, tokenizer: Any, items: Sequence[Item],
                        names: Sequence[str], **kw: Any) -> list[Capture]:
    """All captures of :func:`iter_captures` as one list (see its arguments)."""
    return [c for batch in iter_captures(model, tokenizer, items, names, **kw) for c in batch]
