"""Scoring items under knockouts, with two engines that give the same answers.

* ``engine="naive"``: every forward is a plain full forward of the whole prompt (and, when
  generating, the whole prompt plus the tokens generated so far), logits at every position:
  the reference implementation, what one would write by hand.
* ``engine="cached"``: each item's prefix (:attr:`~icl_tokens.engine.items.Item.prefix_len`
  tokens: BOS, instruction, demonstrations) runs once, under the item knockout's prefix-side
  rows, and is cached keyed by its ids and that intervention
  (:class:`~icl_tokens.engine.prefix_cache.PrefixCache`); only the rest runs per item, and
  logits are computed only where they are scored. Demonstration-internal knockouts and
  token-removed prompts use it too.

Scoring (paper-spec §5):

* ``generate`` (primary): greedy decoding with the same knockout on every generated token; the
  first word of the continuation up to the first newline, stripped of surrounding ASCII
  punctuation, must equal the gold label word (case-sensitive).
* ``label`` (secondary): argmax over label words of the teacher-forced log-probability of
  ``separator + label`` (all of its tokens) after the prompt.

Label scores are always computed; a NaN or infinite score fails the run (:class:`NumericsError`).
"""

from __future__ import annotations

import math
import numbers
import string
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from ..ablation.knockout import ResolvedKnockout
from .batch import Batch
from .items import Item
from .prefix_cache import Prefix, PrefixCache

__all__ = ["RowResult", "ENGINES", "SCORINGS", "NumericsError", "parse_prediction",
           "score_items", "resolve_knockouts", "BatchSize", "AUTO_BATCH_START"]

ENGINES = ("cached", "naive")
SCORINGS = ("generate", "label")


class NumericsError(RuntimeError):
    """Scores became NaN or infinite (typically a dtype with too little range, e.g. float16)."""


#: Where ``batch_size="auto"`` starts (then halves on out-of-memory).
AUTO_BATCH_START = 64


@dataclass
class BatchSize:
    """Rows per forward, halved and remembered when a batch runs out of GPU memory.

    Pass one object to every :func:`score_items` call of a run so a size learned once is kept;
    ``notes`` records each halving. ``BatchSize.of("auto")`` starts at :data:`AUTO_BATCH_START`.
    """

    size: int
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, batch_size: int | str | BatchSize) -> BatchSize:
        if isinstance(batch_size, BatchSize):
            return batch_size
        if batch_size == "auto":
            return cls(AUTO_BATCH_START)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1 or 'auto', got {batch_size!r}.")
        return cls(batch_size)

    def halve(self, failed: int) -> int:
        """After a batch of ``failed`` rows ran out of memory: the new (smaller) size."""
        new = max(1, failed // 2)
        if new < self.size:
            self.notes.append(f"out of memory with {failed} rows per batch; continuing with {new}")
            self.size = new
        return self.size


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError)


def _free_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass
class RowResult:
    """The outcome of one item."""

    item: Item
    label_scores: dict[str, float]
    label_prediction: str
    continuation: str | None = None
    generated_ids: list[int] = field(default_factory=list)
    gen_prediction: str | None = None

    @property
    def example_id(self) -> str:
        return self.item.example_id

    @property
    def condition(self) -> str:
        return self.item.condition

    @property
    def gold(self) -> str:
        return self.item.gold

    @property
    def n_tokens(self) -> int:
        return len(self.item)

    @property
    def label_correct(self) -> bool:
        return self.label_prediction == self.gold

    @property
    def gen_correct(self) -> bool:
        return self.gen_prediction == self.gold

    def prediction(self, scoring: str) -> str:
        if scoring == "generate":
            return self.gen_prediction or ""
        return self.label_prediction


def parse_prediction(continuation: str) -> str:
    """First word of ``continuation`` up to the first newline, ASCII punctuation stripped.

    >>> parse_prediction(" Positive.\\n\\nReview:")
    'Positive'
    >>> parse_prediction("\\nPositive")
    ''
    """
    line = continuation.split("\n", 1)[0].strip()
    if not line:
        return ""
    return line.split()[0].strip(string.punctuation)


def resolve_knockouts(model: Any, items: Sequence[Item]) -> list[ResolvedKnockout | None]:
    """Each item's knockout evaluated on it (layers and heads checked against the model)."""
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    out: list[ResolvedKnockout | None] = []
    for it in items:
        ko = None if it.knockout is None else it.knockout.resolve(it, n_layers, n_heads)
        out.append(None if ko is None or ko.is_empty else ko)
    return out


def _chunks(idx: Sequence[int], size: int | Callable[[], int]) -> Iterable[list[int]]:
    """Consecutive chunks; a callable size is read at every chunk (it may shrink meanwhile)."""
    s = 0
    while s < len(idx):
        n = size() if callable(size) else size
        yield list(idx[s : s + n])
        s += n


def _mode(items: Sequence[Item], i: int) -> str:
    ko = items[i].knockout
    return "scores" if ko is None else ko.mode


def _batches(
    model: Any, items: Sequence[Item], kos: Sequence[ResolvedKnockout | None], engine: str,
    batch_size: int | Callable[[], int], cache: PrefixCache,
) -> Iterable[tuple[list[int], bool, Prefix | None, str]]:
    """Yield (item indices, cached?, prefix, mode); rows sorted by length within a group."""
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, it in enumerate(items):
        mode = _mode(items, i)
        if engine == "naive":
            groups.setdefault(("naive", mode), []).append(i)
            continue
        lp = it.prefix_len
        ko = kos[i]
        sig = None if ko is None or lp == 0 else ko.prefix_signature(lp, n_layers, n_heads)
        groups.setdefault((it.input_ids[:lp], sig, mode), []).append(i)
    for key, members in groups.items():
        order = sorted(members, key=lambda i: len(items[i]))
        if engine == "naive":
            for idx in _chunks(order, batch_size):
                yield idx, False, None, key[1]
            continue
        ids, sig, mode = key
        prefix = cache.get(model, ids, kos[members[0]], sig, mode) if ids else None
        for idx in _chunks(order, batch_size):
            yield idx, True, prefix, mode


def _label_scores(
    items: Sequence[Item], idx: list[int], first: Float[Tensor, "b vocab"],
    factory: Callable[[list[int]], Batch],
) -> list[dict[str, float]]:
    """Sum of log-probs of every label's tokens; multi-token labels need a forced pass."""
    logp = torch.log_softmax(first.float(), dim=-1)
    scores: list[dict[str, float]] = []
    multi: dict[int, list[tuple[int, str]]] = {}
    for r, i in enumerate(idx):
        s = {}
        for word in items[i].labels.words:
            toks = items[i].labels.ids[word]
            s[word] = float(logp[r, toks[0]])
            if len(toks) > 1:
                multi.setdefault(len(toks), []).append((r, word))
        scores.append(s)
    for m, pairs in multi.items():
        batch = factory([idx[r] for r, _ in pairs])
        forced = [list(items[idx[r]].labels.ids[w][:-1]) for r, w in pairs]
        logits = batch.start(forced=forced, keep=m)  # positions n-1 .. n+m-2
        lp = torch.log_softmax(logits.float(), dim=-1)
        for b, (r, w) in enumerate(pairs):
            toks = items[idx[r]].labels.ids[w]
            scores[r][w] = float(sum(lp[b, t, toks[t]] for t in range(m)))
    return scores


def _check_finite(model: Any, items: Sequence[Item], idx: list[int],
                  scores: list[dict[str, float]]) -> None:
    for r, i in enumerate(idx):
        bad = [w for w, v in scores[r].items() if not math.isfinite(v)]
        if bad:
            dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
            raise NumericsError(
                f"example {items[i].example_id} ({items[i].condition}): label scores for {bad} "
                f"are not finite (NaN or inf) with the model in {dtype}. The likely cause is the "
                "dtype: float16 overflows in Gemma-3 and other models; rerun with --dtype "
                "float32 (CPU) or bfloat16 (GPU).")


def _check_context(model: Any, items: Sequence[Item], max_new: int) -> None:
    n_ctx = getattr(model.cfg, "n_ctx", None)
    for it in items:
        if n_ctx and len(it) + max_new > n_ctx:
            raise ValueError(
                f"example {it.example_id}: prompt of {len(it)} tokens + {max_new} new tokens "
                f"exceeds the model's context of {n_ctx}; use fewer or shorter demonstrations "
                "(k) — nothing is truncated.")


def _check_max_new(max_new_tokens: int | None) -> None:
    """``max_new_tokens`` is ``None`` (the default) or an int >= 1."""
    if max_new_tokens is None:
        return
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral):
        raise TypeError(
            f"max_new_tokens must be an int >= 1 or None, got {type(max_new_tokens).__name__} "
            f"{max_new_tokens!r}."
        )
    if max_new_tokens < 1:
        raise ValueError(
            f"max_new_tokens must be >= 1 (the label is generated), got {max_new_tokens}; "
            "leave it None for the default (longest label + 2)."
        )


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    return int(pad)


@torch.no_grad()
def score_items(
    model: Any,
    tokenizer: Any,
    items: Sequence[Item],
    *,
    scoring: str = "generate",
    engine: str = "cached",
    batch_size: int | str | BatchSize = 16,
    max_new_tokens: int | None = None,
    progress: Callable[[int], None] | None = None,
    prefix_cache: PrefixCache | None = None,
    early_stop: bool = True,
) -> list[RowResult]:
    """Score every item (label scores always; greedy generation when ``scoring="generate"``).

    Args:
        model: A ``TransformerBridge``.
        tokenizer: Its HF fast tokenizer (for decoding and the pad id).
        items: The :class:`~icl_tokens.engine.items.Item` s, each with its knockout.
        scoring: ``"generate"`` or ``"label"``.
        engine: ``"cached"`` or ``"naive"``.
        batch_size: Rows per forward, ``"auto"`` (start at :data:`AUTO_BATCH_START`), or a
            :class:`BatchSize` shared across calls. A batch that raises
            ``torch.cuda.OutOfMemoryError`` is split in halves and retried, and later batches
            use the smaller size; one row out of memory is an error.
        max_new_tokens: At least 1; default: longest label (tokens, in context) + 2.
        progress: Called with the number of rows finished after each batch.
        prefix_cache: Reuse prefix caches across calls (only for the cached engine, and only
            while the model and its weights are unchanged).
        early_stop: Stop generating once every row of a batch produced a newline or EOS (the
            prediction only reads the first line). ``False`` always generates
            ``max_new_tokens`` (fixed work, e.g. for timing); predictions are the same.

    Returns:
        One :class:`RowResult` per item, in order.
    """
    if scoring not in SCORINGS:
        raise ValueError(f"unknown scoring {scoring!r}; use one of {SCORINGS}.")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; use one of {ENGINES}.")
    _check_max_new(max_new_tokens)
    if not items:
        return []
    sizer = BatchSize.of(batch_size)
    pad_id = _pad_id(tokenizer)
    if max_new_tokens is None:
        max_new_tokens = max(it.labels.max_len for it in items) + 2
    _check_context(model, items, max_new_tokens)
    kos = resolve_knockouts(model, items)
    cache = PrefixCache() if prefix_cache is None else prefix_cache
    eos = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    results: list[RowResult | None] = [None] * len(items)

    def run(idx: list[int], cached: bool, prefix: Any, mode: str) -> None:
        def make(sub: list[int], cached: bool = cached, prefix: Any = prefix,
                 mode: str = mode) -> Batch:
            return Batch(model, [items[i] for i in sub], [kos[i] for i in sub], pad_id=pad_id,
                         prefix=prefix, cached=cached, mode=mode)
        batch = make(idx)
        first = batch.start()[:, -1]
        label_scores = _label_scores(items, idx, first, make)
        _check_finite(model, items, idx, label_scores)
        gens: list[list[int]] = [[] for _ in idx]
        if scoring == "generate":
            for rows, sub in batch.lockstep_groups():
                gen = _greedy(sub, first[rows], max_new_tokens, tokenizer, eos, early_stop)
                for r, g in zip(rows, gen):
                    gens[r] = g
        for r, i in enumerate(idx):
            s = label_scores[r]
            res = RowResult(item=items[i], label_scores=s,
                            label_prediction=max(s, key=lambda w: s[w]))
            if scoring == "generate":
                text = tokenizer.decode(gens[r], skip_special_tokens=True)
                res.continuation = text
                res.generated_ids = gens[r]
                res.gen_prediction = parse_prediction(text)
            results[i] = res
        if progress is not None:
            progress(len(idx))

    for idx, cached, prefix, mode in _batches(model, items, kos, engine, lambda: sizer.size,
                                              cache):
        todo = [idx]
        while todo:
            part = todo.pop(0)
            try:
                run(part, cached, prefix, mode)
                continue
            except Exception as err:  # noqa: BLE001 (only out-of-memory is retried)
                if not _is_oom(err):
                    raise
                if len(part) == 1:
                    raise RuntimeError(
                        f"out of GPU memory scoring a single row ({len(items[part[0]])} tokens, "
                        f"example {items[part[0]].example_id}): use --dtype bfloat16, a smaller "
                        "model, or load it across GPUs (device_map, docs/scale.md).") from err
            half = sizer.halve(len(part))  # outside the except: the failed batch is freed
            _free_memory()
            todo[:0] = [part[s : s + half] for s in range(0, len(part), half)]
    return [r for r in results if r is not None]


def _greedy(
    batch: Batch, first: Tensor, max_new: int, tokenizer: Any, eos: set[int],
    early_stop: bool = True,
) -> list[list[int]]:
    """Greedy decoding in lock-step. A row's tokens end at its first newline or EOS; with
    ``early_stop`` decoding stops once every row got there."""
    b = first.shape[0]
    out: list[list[int]] = [[] for _ in range(b)]
    done = [False] * b
    logits = first
    for step in range(max_new):
        nxt = logits.argmax(-1).tolist()
        for r, t in enumerate(nxt):
            if not done[r]:
                out[r].append(int(t))
                if t in eos or "\n" in tokenizer.decode([t]):
                    done[r] = True
        if (early_stop and all(done)) or step == max_new - 1:
            break
        logits = batch.extend(nxt)
    return out
