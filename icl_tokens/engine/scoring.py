"""Scoring under knockouts, with two engines that give the same answers.

* ``engine="naive"``: every forward is a plain full forward of the whole prompt (and, when
  generating, the whole prompt plus the tokens generated so far), logits at every position:
  the reference implementation, what one would write by hand.
* ``engine="cached"``: the demonstration prefix (BOS + instruction + demonstrations) runs once;
  its key/value cache (a ``transformers`` ``DynamicCache`` fed back through the bridge's
  ``past_key_values``) serves every test example and condition; only the test suffix runs, and
  logits are computed only where they are scored. Valid only while the demonstration
  representations are unchanged: masks whose restricted queries include demonstration tokens
  are refused.

The naive engine batches prompts of any lengths with left padding (a 2-D attention mask gives
the bridge the right position ids), so every row's last column is its last real token and
generation appends in lock-step. The cached engine right-pads suffixes of different lengths
(padding between the cached prefix and a suffix would shift the column distances that
sliding-window layers measure), gathers logits at each row's own last position, and continues
generation in groups of rows with equal suffix lengths.

Scoring (paper-spec §5):

* ``generate`` (primary): greedy decoding with the same knockout on every generated token; the
  first word of the continuation up to the first newline, stripped of surrounding ASCII
  punctuation, must equal the gold label word (case-sensitive).
* ``label`` (secondary): argmax over label words of the teacher-forced log-probability of
  ``separator + label`` (all of its tokens) after the prompt.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from ..categorize import TokenizedPrompt, categorize, label_token_ids
from ..episodes import Episode
from ..ablation.hooks import attention_knockout
from ..ablation.conditions import ZERO_SHOT, Knockout, condition_knockout, resolve_condition
from ..prompts import build_prompt
from ..tasks import TaskSpec

__all__ = [
    "Job",
    "RowResult",
    "ENGINES",
    "SCORINGS",
    "parse_prediction",
    "score_jobs",
    "make_jobs",
    "evaluate_episode",
    "greedy_generate",
]

ENGINES = ("cached", "naive")
SCORINGS = ("generate", "label")


@dataclass
class Job:
    """One (prompt, knockout) pair to score."""

    tp: TokenizedPrompt
    knockout: Knockout | None
    condition: str
    labels: dict[str, list[int]]

    @property
    def n(self) -> int:
        return len(self.tp)


@dataclass
class RowResult:
    """The outcome of one job."""

    example_id: str
    condition: str
    gold: str
    label_scores: dict[str, float]
    label_prediction: str
    continuation: str | None = None
    generated_ids: list[int] = field(default_factory=list)
    gen_prediction: str | None = None
    n_tokens: int = 0

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

    def correct(self, scoring: str) -> bool:
        return self.gen_correct if scoring == "generate" else self.label_correct


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


# --------------------------------------------------------------------------------------- batches
def _row_mask(
    ko: Knockout | None, q_pos: np.ndarray, k_pos: np.ndarray, total: int
) -> np.ndarray:
    """Mask rows for absolute query positions ``q_pos`` over key columns ``k_pos`` (-1 = pad)."""
    out = np.zeros((len(q_pos), len(k_pos)), dtype=bool)
    if ko is None or ko.is_empty:
        return out
    vq = q_pos >= 0
    vk = k_pos >= 0
    if not vq.any():
        return out
    rows = ko.rows(q_pos[vq], total).numpy()  # [q_valid, total]
    out[np.ix_(vq, vk)] = rows[:, k_pos[vk]]
    return out


class _Batch:
    """Rows run together, plus tokens appended in lock-step (generated or teacher-forced).

    The naive engine runs whole prompts, left-padded, and reruns everything at every step. The
    cached engine runs only the suffix after a shared demonstration prefix, right-padded (every
    real token keeps its column = its position, which sliding-window layers rely on); logits
    are gathered at each row's own last positions, and generation continues in groups of rows
    whose suffixes have the same length (:meth:`lockstep_groups`).

    Args:
        model: The bridge.
        jobs: The rows.
        pad_id: Token id for padding (masked out by the 2-D attention mask).
        prefix: ``(length, per-layer (keys, values))`` of a cached demonstration prefix, or None.
        cached: The cached engine (KV cache, right padding, logits only where scored).
        knockout_kw: ``layers``/``heads``/``mode`` for :func:`attention_knockout`.
    """

    def __init__(
        self,
        model: Any,
        jobs: Sequence[Job],
        *,
        pad_id: int,
        prefix: tuple[int, list[tuple[Tensor, Tensor]]] | None,
        cached: bool,
        knockout_kw: dict[str, Any],
    ) -> None:
        self.model = model
        self.jobs = list(jobs)
        self.pad_id = pad_id
        self.kw = knockout_kw
        self.cached = cached
        self.prefix = prefix
        self.lp = prefix[0] if prefix else 0
        self.appended: list[list[int]] = [[] for _ in jobs]
        self.cache: Any = None
        self.attn: Tensor | None = None
        self.device = torch.device(model.cfg.device)

    def _run_len(self, r: int) -> int:
        return self.jobs[r].n - self.lp + len(self.appended[r])

    def _layout(self) -> tuple[list[int], list[int]]:
        """Left and right padding of every row's run part."""
        lens = [self._run_len(r) for r in range(len(self.jobs))]
        pads = [max(lens) - n for n in lens]
        zero = [0] * len(lens)
        return (zero, pads) if self.cached else (pads, zero)

    def _positions(self, r: int, left: int, right: int) -> tuple[np.ndarray, np.ndarray]:
        """Absolute prompt positions of every key column and of the run columns (-1 = pad)."""
        total = self.jobs[r].n + len(self.appended[r])
        run = np.concatenate([np.full(left, -1), np.arange(self.lp, total), np.full(right, -1)])
        return np.concatenate([np.arange(self.lp), run]), run

    def _forward(self, ids: Tensor, q_cols: list[np.ndarray], k_cols: list[np.ndarray],
                 keep_cols: list[list[int]]) -> Tensor:
        """Run ``ids``; return logits ``[batch, keep, vocab]`` at each row's ``keep_cols``."""
        mask = torch.from_numpy(np.stack([
            _row_mask(job.knockout, q_cols[r], k_cols[r], job.n + len(self.appended[r]))
            for r, job in enumerate(self.jobs)
        ]))
        kwargs: dict[str, Any] = {"attention_mask": self.attn}
        cols = torch.tensor(keep_cols, device=self.device)  # [batch, keep] input columns
        if self.cached:
            # Only the scored positions go through the unembedding (262k-word vocabulary for
            # Gemma-3); the naive engine is a plain full forward, logits at every position.
            uniq = torch.unique(cols)
            kwargs["logits_to_keep"] = uniq
            kwargs["past_key_values"] = self.cache
            cols = torch.searchsorted(uniq, cols)  # positions within the kept logits
        if not bool(mask.any()):
            logits = self.model(ids, **kwargs)
        else:
            with attention_knockout(self.model, mask, **self.kw) as ko:
                logits = self.model(ids, **kwargs)
            if ko.calls == 0:
                raise RuntimeError("knockout hooks never fired: the intervention was a no-op.")
        rows = torch.arange(len(self.jobs), device=self.device)[:, None]
        return logits[rows, cols]

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        if self.prefix is None:
            return DynamicCache()
        b = len(self.jobs)
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
        for r, job in enumerate(self.jobs):
            part = job.tp.input_ids[self.lp :] + self.appended[r]
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

    def lockstep_groups(self) -> list[tuple[list[int], "_Batch"]]:
        """Row groups that can append tokens in lock-step, each as its own batch.

        Naive batches are left-padded, so all rows go together. A cached batch is split by
        run length; each group gets the rows of the cache, cut back to its own length.
        """
        lens = [self._run_len(r) for r in range(len(self.jobs))]
        if not self.cached or len(set(lens)) == 1:
            return [(list(range(len(self.jobs))), self)]
        from transformers import DynamicCache

        groups: list[tuple[list[int], _Batch]] = []
        for n in sorted(set(lens)):
            rows = [r for r, x in enumerate(lens) if x == n]
            sub = _Batch(self.model, [self.jobs[r] for r in rows], pad_id=self.pad_id,
                         prefix=self.prefix, cached=True, knockout_kw=self.kw)
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
        if len({self._run_len(r) for r in range(len(self.jobs))}) != 1:
            raise RuntimeError("extend() needs rows of equal length; use lockstep_groups().")
        ids = torch.tensor([[int(t)] for t in tokens], dtype=torch.long, device=self.device)
        ones = torch.ones(len(tokens), 1, dtype=torch.long, device=self.device)
        self.attn = torch.cat([self.attn, ones], 1)
        q_cols, k_cols = [], []
        for r in range(len(self.jobs)):
            k, run = self._positions(r, 0, 0)
            q_cols.append(run[-1:])
            k_cols.append(k)
        return self._forward(ids, q_cols, k_cols, [[0]] * len(self.jobs))[:, -1]


# --------------------------------------------------------------------------------------- engines
def _prefix_kv(model: Any, ids: list[int]) -> list[tuple[Tensor, Tensor]]:
    """Run the demonstration prefix once (batch 1) and return its per-layer keys/values."""
    from transformers import DynamicCache

    cache = DynamicCache()
    x = torch.tensor([ids], dtype=torch.long, device=torch.device(model.cfg.device))
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


def _group_cached(jobs: Sequence[Job]) -> dict[tuple[int, ...], list[int]]:
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, job in enumerate(jobs):
        tp = job.tp
        lp = tp.prefix_len
        if not tp.clean_prefix_boundary:
            raise ValueError(
                f"example {tp.prompt.test.id}: a token straddles the start of the test example, "
                "so the demonstration prefix cannot be cached; use engine='naive'."
            )
        if job.knockout is not None:
            fq = job.knockout.first_query
            if fq is not None and fq < lp:
                raise ValueError(
                    f"condition {job.condition!r} restricts queries inside the demonstrations "
                    f"(position {fq} < prefix length {lp}): it changes demonstration "
                    "representations, so engine='cached' cannot reuse the prefix cache; use "
                    "engine='naive'."
                )
        groups.setdefault(tuple(tp.input_ids[:lp]), []).append(i)
    return groups


def _chunks(idx: Sequence[int], size: int) -> Iterable[list[int]]:
    for s in range(0, len(idx), size):
        yield list(idx[s : s + size])


def _make_batches(
    model: Any, jobs: Sequence[Job], engine: str, batch_size: int,
    prefix_cache: dict[tuple[int, ...], Any],
) -> Iterable[tuple[list[int], bool, tuple[int, list[tuple[Tensor, Tensor]]] | None]]:
    """Yield (job indices, cached?, prefix) triples; rows sorted by length."""
    if engine == "naive":
        order = sorted(range(len(jobs)), key=lambda i: jobs[i].n)
        for idx in _chunks(order, batch_size):
            yield idx, False, None
        return
    if engine != "cached":
        raise ValueError(f"unknown engine {engine!r}; use one of {ENGINES}.")
    for prefix_ids, members in _group_cached(jobs).items():
        prefix = None
        if prefix_ids:
            if prefix_ids not in prefix_cache:
                prefix_cache[prefix_ids] = (len(prefix_ids), _prefix_kv(model, list(prefix_ids)))
            prefix = prefix_cache[prefix_ids]
        order = sorted(members, key=lambda i: jobs[i].n)
        for idx in _chunks(order, batch_size):
            yield idx, True, prefix


def _label_scores(
    model: Any, jobs: Sequence[Job], idx: list[int], first: Float[Tensor, "b vocab"],
    factory: Callable[[list[int]], _Batch],
) -> list[dict[str, float]]:
    """Sum of log-probs of every label's tokens; multi-token labels need a forced pass."""
    logp = torch.log_softmax(first.float(), dim=-1)
    scores: list[dict[str, float]] = []
    multi: dict[int, list[tuple[int, str]]] = {}
    for r, i in enumerate(idx):
        s = {}
        for word, toks in jobs[i].labels.items():
            s[word] = float(logp[r, toks[0]])
            if len(toks) > 1:
                multi.setdefault(len(toks), []).append((r, word))
        scores.append(s)
    for m, pairs in multi.items():
        batch = factory([idx[r] for r, _ in pairs])
        forced = [jobs[idx[r]].labels[w][:-1] for r, w in pairs]
        logits = batch.start(forced=forced, keep=m)  # positions n-1 .. n+m-2
        lp = torch.log_softmax(logits.float(), dim=-1)
        for b, (r, w) in enumerate(pairs):
            toks = jobs[idx[r]].labels[w]
            scores[r][w] = float(sum(lp[b, t, toks[t]] for t in range(m)))
    return scores


@torch.no_grad()
def score_jobs(
    model: Any,
    tokenizer: Any,
    jobs: Sequence[Job],
    *,
    scoring: str = "generate",
    engine: str = "cached",
    batch_size: int = 16,
    layers: Iterable[int] | None = None,
    heads: Sequence[int] | None = None,
    mode: str = "scores",
    max_new_tokens: int | None = None,
    progress: Callable[[int], None] | None = None,
    prefix_cache: dict[tuple[int, ...], Any] | None = None,
    early_stop: bool = True,
) -> list[RowResult]:
    """Score every job (label scores always; greedy generation when ``scoring="generate"``).

    Args:
        model: A ``TransformerBridge``.
        tokenizer: Its HF fast tokenizer (for decoding and the pad id).
        jobs: From :func:`make_jobs`.
        scoring: ``"generate"`` or ``"label"``.
        engine: ``"cached"`` or ``"naive"``.
        batch_size: Rows per forward.
        layers, heads, mode: Passed to :func:`icl_tokens.hooks.attention_knockout`.
        max_new_tokens: Default: longest label (tokens, in context) + 2.
        progress: Called with the number of rows finished after each batch.
        prefix_cache: Reuse demonstration-prefix caches across calls (keyed by prefix ids);
            only for the cached engine, and only while the model and its weights are unchanged.
        early_stop: Stop generating once every row of a batch produced a newline or EOS (the
            prediction only reads the first line). ``False`` always generates
            ``max_new_tokens`` (fixed work, e.g. for timing); predictions are the same.
    """
    if not jobs:
        return []
    if scoring not in SCORINGS:
        raise ValueError(f"unknown scoring {scoring!r}; use one of {SCORINGS}.")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1.")
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    kw = {"layers": layers, "heads": heads, "mode": mode}
    results: list[RowResult | None] = [None] * len(jobs)
    if max_new_tokens is None:
        max_new_tokens = max(len(t) for j in jobs for t in j.labels.values()) + 2
    n_ctx = getattr(model.cfg, "n_ctx", None)
    for j in jobs:
        if n_ctx and j.n + max_new_tokens > n_ctx:
            raise ValueError(
                f"example {j.tp.prompt.test.id}: prompt of {j.n} tokens + {max_new_tokens} new "
                f"tokens exceeds the model's context of {n_ctx}; use fewer or shorter "
                "demonstrations (k) — nothing is truncated."
            )
    eos = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    for idx, cached, prefix in _make_batches(model, jobs, engine, batch_size,
                                             {} if prefix_cache is None else prefix_cache):
        def make(sub_idx: list[int], cached: bool = cached, prefix: Any = prefix) -> _Batch:
            return _Batch(model, [jobs[i] for i in sub_idx], pad_id=pad_id, prefix=prefix,
                          cached=cached, knockout_kw=kw)
        batch = make(idx)
        first = batch.start()[:, -1]
        label_scores = _label_scores(model, jobs, idx, first, make)
        gens: list[list[int]] = [[] for _ in idx]
        if scoring == "generate":
            for rows, sub in batch.lockstep_groups():
                gen = _greedy(sub, first[rows], max_new_tokens, tokenizer, eos, early_stop)
                for r, g in zip(rows, gen):
                    gens[r] = g
        for r, i in enumerate(idx):
            s = label_scores[r]
            best = max(s, key=lambda w: s[w])
            res = RowResult(
                example_id=jobs[i].tp.prompt.test.id, condition=jobs[i].condition,
                gold=jobs[i].tp.prompt.gold, label_scores=s, label_prediction=best,
                n_tokens=jobs[i].n,
            )
            if scoring == "generate":
                text = tokenizer.decode(gens[r], skip_special_tokens=True)
                res.continuation = text
                res.generated_ids = gens[r]
                res.gen_prediction = parse_prediction(text)
            results[i] = res
        if progress is not None:
            progress(len(idx))
    return [r for r in results if r is not None]


def _greedy(
    batch: _Batch, first: Tensor, max_new: int, tokenizer: Any, eos: set[int],
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


@torch.no_grad()
def greedy_generate(
    model: Any, tokenizer: Any, tp: TokenizedPrompt, max_new_tokens: int,
    knockout: Knockout | None = None, engine: str = "naive",
) -> list[int]:
    """Greedy continuation of one categorized prompt (stops early at a newline or EOS)."""
    job = Job(tp, knockout, "custom", label_token_ids(tp.prompt.task, tokenizer, tp.prompt.text))
    res = score_jobs(model, tokenizer, [job], scoring="generate", engine=engine,
                     max_new_tokens=max_new_tokens)
    return res[0].generated_ids


# --------------------------------------------------------------------------------------- jobs
def make_jobs(
    task: TaskSpec,
    tokenizer: Any,
    episode: Episode,
    conditions: Sequence[str],
    *,
    stopword_variant: str = "paper",
    hide_bos: bool = False,
    query_scope: str = "test",
) -> list[Job]:
    """Build the prompts of one episode and a job per (test example, condition)."""
    conds = [resolve_condition(c) for c in conditions]
    jobs: list[Job] = []
    for test in episode.tests:
        icl_tp = None
        for cond in conds:
            if cond == ZERO_SHOT:
                tp = categorize(build_prompt(task, [], test), tokenizer,
                                stopword_variant=stopword_variant)
                ko = None
            else:
                if icl_tp is None:
                    icl_tp = categorize(build_prompt(task, episode.demos, test), tokenizer,
                                        stopword_variant=stopword_variant)
                tp = icl_tp
                ko = condition_knockout(tp, cond, hide_bos=hide_bos, query_scope=query_scope)
                if ko.is_empty:
                    ko = None
            labels = label_token_ids(task, tokenizer, tp.prompt.text)
            jobs.append(Job(tp, ko, cond, labels))
    return jobs


def evaluate_episode(
    model: Any,
    tokenizer: Any,
    task: TaskSpec,
    episode: Episode,
    conditions: Sequence[str],
    *,
    scoring: str = "generate",
    engine: str = "cached",
    batch_size: int = 16,
    stopword_variant: str = "paper",
    hide_bos: bool = False,
    query_scope: str = "test",
    layers: Iterable[int] | None = None,
    heads: Sequence[int] | None = None,
    mode: str = "scores",
) -> list[RowResult]:
    """Build and score every (test example, condition) of one episode."""
    jobs = make_jobs(task, tokenizer, episode, conditions, stopword_variant=stopword_variant,
                     hide_bos=hide_bos, query_scope=query_scope)
    return score_jobs(model, tokenizer, jobs, scoring=scoring, engine=engine,
                      batch_size=batch_size, layers=layers, heads=heads, mode=mode)
