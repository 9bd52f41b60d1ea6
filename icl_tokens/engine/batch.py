"""Batches: rows run together, their padding and positions, and the per-layer knockout masks.

The naive engine runs whole prompts, left-padded (a 2-D attention mask gives the bridge the right
position ids), and reruns everything at every generation step. The cached engine runs only the
part after a shared prefix, right-padded, so every real token keeps column = position (which
sliding-window layers rely on); logits are gathered at each row's own last positions, and
generation continues in groups of rows whose suffixes have the same length
(:meth:`Batch.lockstep_groups`).

Masks are built per forward from each row's
:class:`~icl_tokens.ablation.knockout.ResolvedKnockout` at absolute query and key positions
(-1 = padding), one ``Bool[batch, q, k]`` (or ``[batch, heads, q, k]``) per layer.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from ..ablation.hooks import layered_knockout
from ..ablation.knockout import ResolvedKnockout
from .items import Item

__all__ = ["Batch", "stack_layer_masks"]

Prefix = tuple[int, list[tuple[Tensor, Tensor]]]


def stack_layer_masks(
    kos: Sequence[ResolvedKnockout | None], q_cols: Sequence[np.ndarray],
    k_cols: Sequence[np.ndarray], n_layers: int, n_heads: int,
) -> dict[int, Tensor]:
    """Per-layer masks ``{layer: Bool[batch, (heads,) q, k]}`` for rows with the given absolute
    query/key positions (-1 = padding). Layers where no row blocks anything are left out."""
    per_row = [
        {} if ko is None or ko.is_empty else ko.masks(q, k, n_layers, n_heads)
        for ko, q, k in zip(kos, q_cols, k_cols)
    ]
    layers = sorted({layer for m in per_row for layer in m})
    out: dict[int, Tensor] = {}
    shared: dict[tuple[int, ...], Tensor] = {}  # layers whose rows share arrays share a tensor
    b = len(per_row)
    for layer in layers:
        rows = [m.get(layer) for m in per_row]
        key = tuple(0 if r is None else id(r) for r in rows)
        if key in shared:
            out[layer] = shared[key]
            continue
        heads = any(r is not None and r.ndim == 3 for r in rows)
        q, k = len(q_cols[0]), len(k_cols[0])
        full = np.zeros((b, n_heads, q, k) if heads else (b, q, k), dtype=bool)
        for i, r in enumerate(rows):
            if r is None:
                continue
            full[i] = r if (r.ndim == 3 or not heads) else r[None]
        out[layer] = shared[key] = torch.from_numpy(full)
    return out


class Batch:
    """Rows run together, plus tokens appended in lock-step (generated or teacher-forced).

    Args:
        model: The bridge.
        items: The rows.
        kos: Each row's resolved knockout (or None).
        pad_id: Token id for padding (masked out by the 2-D attention mask).
        prefix: ``(length, per-layer (keys, values))`` of a cached prefix, or None.
        cached: The cached engine (KV cache, right padding, logits only where scored).
        mode: The knockout mode of every row (``scores`` or ``pattern``).
    """

    def __init__(self, model: Any, items: Sequence[Item], kos: Sequence[ResolvedKnockout | None],
                 *, pad_id: int, prefix: Prefix | None, cached: bool, mode: str = "scores"
                 ) -> None:
        self.model = model
        self.items = list(items)
        self.kos = list(kos)
        self.pad_id = pad_id
        self.cached = cached
        self.mode = mode
        self.prefix = prefix
        self.lp = prefix[0] if prefix else 0
        self.appended: list[list[int]] = [[] for _ in items]
        self.cache: Any = None
        self.attn: Tensor | None = None
        self.device = torch.device(model.cfg.device)
        self.n_layers = int(model.cfg.n_layers)
        self.n_heads = int(model.cfg.n_heads)
        self.hook_calls = 0

    def _run_len(self, r: int) -> int:
        return len(self.items[r]) - self.lp + len(self.appended[r])

    def _layout(self) -> tuple[list[int], list[int]]:
        """Left and right padding of every row's run part."""
        lens = [self._run_len(r) for r in range(len(self.items))]
        pads = [max(lens) - n for n in lens]
        zero = [0] * len(lens)
        return (zero, pads) if self.cached else (pads, zero)

    def _positions(self, r: int, left: int, right: int) -> tuple[np.ndarray, np.ndarray]:
        """Absolute positions of every key column and of the run columns (-1 = pad)."""
        total = len(self.items[r]) + len(self.appended[r])
        run = np.concatenate([np.full(left, -1), np.arange(self.lp, total), np.full(right, -1)])
        return np.concatenate([np.arange(self.lp), run]), run

    def _forward(self, ids: Tensor, q_cols: list[np.ndarray], k_cols: list[np.ndarray],
                 keep_cols: list[list[int]]) -> Tensor:
        """Run ``ids``; return logits ``[batch, keep, vocab]`` at each row's ``keep_cols``."""
        masks = stack_layer_masks(self.kos, q_cols, k_cols, self.n_layers, self.n_heads)
        kwargs: dict[str, Any] = {"attention_mask": self.attn}
        cols = torch.tensor(keep_cols, device=self.device)  # [batch, keep] input columns
        if self.cached:
            # Only the scored positions go through the unembedding (262k-word vocabulary for
            # Gemma-3); the naive engine is a plain full forward, logits at every position.
            uniq = torch.unique(cols)
            kwargs["logits_to_keep"] = uniq
            kwargs["past_key_values"] = self.cache
            cols = torch.searchsorted(uniq, cols)  # positions within the kept logits
        if not masks:
            logits = self.model(ids, **kwargs)
        else:
            with layered_knockout(self.model, masks, mode=self.mode) as ko:
                logits = self.model(ids, **kwargs)
            if ko.calls != len(masks):
                raise RuntimeError(f"knockout hooks fired {ko.calls} times for {len(masks)} "
                                   "masked layers: the intervention was (partly) a no-op.")
            self.hook_calls += ko.calls
        rows = torch.arange(len(self.items), device=self.device)[:, None]
        return logits[rows, cols]

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        if self.prefix is None:
            return DynamicCache()
        b = len(self.items)
        return DynamicCache(ddp_cache_data=[
            (k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)) for k, v in self.prefix[1]
        ])

    def start(self, forced: Sequence[Sequence[int]] | None = None, keep: int = 1) -> Tensor:
        """First forward: the run part (+ ``forced`` tokens); logits ``[batch, keep, vocab]``
        at each row's last ``keep`` real positions."""
        if forced is not None:
            if len({len(f) for f in forced}) != 1:
                raise ValueError("teacher-forced continuations in one batch must share a length.")
            self.appended = [list(f) for f in forced]
        left, right = self._layout()
        rows, attn_rows, q_cols, k_cols, keep_cols = [], [], [], [], []
        for r, item in enumerate(self.items):
            part = list(item.input_ids[self.lp :]) + self.appended[r]
            rows.append([self.pad_id] * left[r] + part + [self.pad_id] * right[r])
            attn_rows.append([1] * self.lp + [0] * left[r] + [1] * len(part) + [0] * right[r])
            k, q = self._positions(r, left[r], right[r])
            k_cols.append(k)
            q_cols.append(q)
            end = left[r] + len(part)
            keep_cols.append(list(range(end - keep, end)))
        ids = torch.tensor(rows, dtype=torch.long, device=self.device)
        self.attn = torch.tensor(attn_rows, dtype=torch.long, device=self.device)
        self.cache = self._new_cache() if self.cached else None
        return self._forward(ids, q_cols, k_cols, keep_cols)

    def lockstep_groups(self) -> list[tuple[list[int], "Batch"]]:
        """Row groups that can append tokens in lock-step, each as its own batch.

        Naive batches are left-padded, so all rows go together. A cached batch is split by
        run length; each group gets the rows of the cache, cut back to its own length.
        """
        lens = [self._run_len(r) for r in range(len(self.items))]
        if not self.cached or len(set(lens)) == 1:
            return [(list(range(len(self.items))), self)]
        from transformers import DynamicCache

        groups: list[tuple[list[int], Batch]] = []
        for n in sorted(set(lens)):
            rows = [r for r, x in enumerate(lens) if x == n]
            sub = Batch(self.model, [self.items[r] for r in rows], [self.kos[r] for r in rows],
                        pad_id=self.pad_id, prefix=self.prefix, cached=True, mode=self.mode)
            sub.appended = [list(self.appended[r]) for r in rows]
            idx = torch.tensor(rows, device=self.device)
            sub.cache = DynamicCache(ddp_cache_data=[
                (layer.keys[idx, :, : self.lp + n], layer.values[idx, :, : self.lp + n])
                for layer in self.cache.layers
            ])
            sub.attn = torch.ones(len(rows), self.lp + n, dtype=torch.long, device=self.device)
            groups.append((rows, sub))
        return groups

    def extend(self, tokens: Sequence[int]) -> Tensor:
        """Append one token per row and return the next logits ``[batch, vocab]``."""
        for r, t in enumerate(tokens):
            self.appended[r].append(int(t))
        if not self.cached:  # naive: rerun everything
            return self.start(forced=None, keep=1)[:, -1]
        assert self.attn is not None
        if len({self._run_len(r) for r in range(len(self.items))}) != 1:
            raise RuntimeError("extend() needs rows of equal length; use lockstep_groups().")
        ids = torch.tensor([[int(t)] for t in tokens], dtype=torch.long, device=self.device)
        ones = torch.ones(len(tokens), 1, dtype=torch.long, device=self.device)
        self.attn = torch.cat([self.attn, ones], 1)
        q_cols, k_cols = [], []
        for r in range(len(self.items)):
            k, run = self._positions(r, 0, 0)
            q_cols.append(run[-1:])
            k_cols.append(k)
        return self._forward(ids, q_cols, k_cols, [[0]] * len(self.items))[:, -1]
