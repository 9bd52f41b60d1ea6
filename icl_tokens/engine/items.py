"""Scoring items: what the engine scores, independent of how the prompt was made.

An :class:`Item` is token ids plus, per token, its categories (bit codes), demonstration index
and roles; the cacheable prefix length; the example id and gold label; the label token ids; and
the knockout to apply. Built prompts (:meth:`Item.from_prompt`), token-removed prompts
(:meth:`Item.keep`), prompts from variant templates and prompts written by hand
(:meth:`Item.from_text`, :meth:`Item.from_pieces`) all become items, so every experiment runs
through the same engine.

    >>> from icl_tokens.models import gpt2_tokenizer
    >>> tok = gpt2_tokenizer()
    >>> labels = LabelSet.from_words(tok, ["Positive", "Negative"], context="Sentiment:")
    >>> item = Item.from_text(tok, "Review: great .\\nSentiment:", gold="Positive", labels=labels)
    >>> len(item) == len(item.input_ids), item.prefix_len
    (True, 0)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np
from jaxtyping import Bool, Int

from ..ablation.knockout import Knockout
from ..categorize import BITS, TokenizedPrompt, label_token_ids, words_token_ids
from ..tasks import TaskSpec

__all__ = ["Item", "LabelSet"]


@dataclass(frozen=True)
class LabelSet:
    """The label words of a task and the token ids each one has after the prompt.

    Computed once per task and tokenizer (:meth:`for_task`), shared by every item.

    Attributes:
        words: Label words in task order.
        ids: Word → token ids of ``separator + word`` as tokenised after the prompt.
    """

    words: tuple[str, ...]
    ids: Mapping[str, tuple[int, ...]]

    @classmethod
    def for_task(cls, task: TaskSpec, tokenizer: Any, context: str | None = None) -> "LabelSet":
        """Label ids in context ``context`` (default: the task's output prefix, e.g.
        ``"Sentiment:"``; a variant template passes its own prefix)."""
        ctx = task.output_prefix if context is None else context
        ids = label_token_ids(task, tokenizer, ctx)
        return cls(tuple(task.label_words), {w: tuple(v) for w, v in ids.items()})

    @classmethod
    def from_words(cls, tokenizer: Any, words: Sequence[str], *, context: str,
                   separator: str = " ") -> "LabelSet":
        """Label ids for any words following ``context + separator`` (hand-written prompts)."""
        if len(set(words)) != len(words):
            raise ValueError(f"label words {list(words)} are not unique.")
        ids = words_token_ids(tokenizer, words, context, separator)
        return cls(tuple(words), {w: tuple(v) for w, v in ids.items()})

    @property
    def max_len(self) -> int:
        return max(len(v) for v in self.ids.values())

    def as_lists(self) -> dict[str, list[int]]:
        return {w: list(self.ids[w]) for w in self.words}


@dataclass(frozen=True, eq=False)
class Item:
    """One thing to score: a tokenised prompt, its annotations and its knockout.

    Attributes:
        input_ids: Token ids (BOS included when the tokenizer adds one).
        codes: Int ``[pos]`` category bits (:data:`~icl_tokens.categorize.BITS`); 0 = unknown.
        demo: Int ``[pos]`` 0-based demonstration index (-1 outside demonstrations).
        roles: Role strings per token (e.g. ``("demo_1.t_out.colon",)``).
        prefix_len: Tokens before the test example: the part the cached engine may compute once
            and share (0: nothing is cached).
        example_id: Test example id.
        gold: Gold label word.
        labels: The label words and their token ids.
        knockout: The knockout (``None``: none).
        condition: Condition name for result rows.
        meta: Free provenance (seed, task, removed-token counts, ...), copied into results.
    """

    input_ids: tuple[int, ...]
    codes: Int[np.ndarray, "pos"]
    demo: Int[np.ndarray, "pos"]
    roles: tuple[tuple[str, ...], ...]
    prefix_len: int
    example_id: str
    gold: str
    labels: LabelSet
    knockout: Knockout | None = None
    condition: str = "custom"
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.input_ids)
        object.__setattr__(self, "input_ids", tuple(int(t) for t in self.input_ids))
        object.__setattr__(self, "codes", np.asarray(self.codes, dtype=np.int64))
        object.__setattr__(self, "demo", np.asarray(self.demo, dtype=np.int64))
        if n == 0:
            raise ValueError(f"item {self.example_id!r} has no tokens.")
        if self.codes.shape != (n,) or self.demo.shape != (n,) or len(self.roles) != n:
            raise ValueError(
                f"item {self.example_id!r}: {n} tokens but codes {self.codes.shape}, demo "
                f"{self.demo.shape}, {len(self.roles)} role entries; give one per token.")
        if not 0 <= self.prefix_len < n:
            raise ValueError(f"item {self.example_id!r}: prefix_len {self.prefix_len} must be in "
                             f"[0, {n - 1}] (the last token is never cached).")
        if self.gold not in self.labels.ids:
            raise ValueError(f"item {self.example_id!r}: gold {self.gold!r} is not one of the "
                             f"label words {list(self.labels.words)}.")

    def __len__(self) -> int:
        return len(self.input_ids)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_prompt(cls, tp: TokenizedPrompt, labels: LabelSet, *,
                    knockout: Knockout | None = None, condition: str = "icl",
                    meta: Mapping[str, Any] | None = None) -> "Item":
        """An item from a categorized prompt; the prefix is every token before the first
        test-example token (any token prefix is valid to cache: the model is causal)."""
        prefix = min(tp.prefix_len, len(tp) - 1)
        roles = getattr(tp, "roles", None) or tuple(() for _ in tp.input_ids)
        return cls(tuple(tp.input_ids), tp.codes, tp.demo, tuple(tuple(r) for r in roles), prefix,
                   tp.prompt.test.id, tp.prompt.gold, labels, knockout, condition,
                   dict(meta or {}))

    @classmethod
    def from_text(cls, tokenizer: Any, text: str, *, gold: str, labels: LabelSet,
                  prefix_chars: int | None = None, example_id: str = "custom",
                  knockout: Knockout | None = None, condition: str = "custom") -> "Item":
        """A hand-written prompt (no categories or roles; select positions explicitly).

        Args:
            prefix_chars: Character offset where the shareable prefix ends (e.g. where the test
                example begins); it must fall on a token boundary. ``None``: no prefix.
        """
        return cls.from_pieces(tokenizer, [(text, "")], gold=gold, labels=labels,
                               prefix_chars=prefix_chars, example_id=example_id,
                               knockout=knockout, condition=condition)

    @classmethod
    def from_pieces(cls, tokenizer: Any, pieces: Sequence[tuple[str, str]], *, gold: str,
                    labels: LabelSet, prefix_chars: int | None = None,
                    example_id: str = "custom", knockout: Knockout | None = None,
                    condition: str = "custom") -> "Item":
        """A hand-written prompt given as ``(text, role)`` pieces, e.g.
        ``[("Review: ", "demo_1.t_in.word"), ("great", "demo_1.d_in.text"), ...]``.

        Each token gets the roles of the pieces its characters fall in; categories are left
        unknown (0) except BOS, so select by role or position.
        """
        text = "".join(t for t, _ in pieces)
        char_role = []
        for t, r in pieces:
            char_role.extend([r] * len(t))
        enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True,
                        add_special_tokens=True)
        ids, offs = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
        special = list(enc["special_tokens_mask"])
        codes = np.zeros(len(ids), dtype=np.int64)
        roles: list[tuple[str, ...]] = []
        for i, ((s, e), sp) in enumerate(zip(offs, special)):
            if sp:
                codes[i] = BITS["bos"]
                roles.append(("bos",))
                continue
            rs = tuple(dict.fromkeys(r for r in char_role[s:e] if r))
            roles.append(rs)
        prefix = 0
        if prefix_chars is not None:
            starts = [s for (s, e), sp in zip(offs, special) if not sp]
            if prefix_chars not in starts:
                raise ValueError(f"prefix_chars={prefix_chars} is not a token boundary of the "
                                 "prompt; pick the start of a token.")
            prefix = next(i for i, ((s, _), sp) in enumerate(zip(offs, special))
                          if not sp and s == prefix_chars)
        return cls(tuple(ids), codes, np.full(len(ids), -1), tuple(roles), prefix, example_id,
                   gold, labels, knockout, condition)

    # ------------------------------------------------------------------ derived items
    def with_knockout(self, knockout: Knockout | None, condition: str | None = None) -> "Item":
        """The same prompt under another knockout."""
        return replace(self, knockout=knockout,
                       condition=condition if condition is not None else
                       (knockout.name if knockout is not None else self.condition))

    def keep(self, keep: Bool[np.ndarray, "pos"], *, condition: str | None = None,
             meta: Mapping[str, Any] | None = None) -> "Item":
        """The item with only the ``keep`` positions (token-level removal; never re-tokenised).

        The prefix shrinks to the kept positions before the old prefix end.
        """
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (len(self),):
            raise ValueError(f"keep has shape {keep.shape}; expected ({len(self)},).")
        if not keep.any():
            raise ValueError("keep selects no token; an item needs at least one.")
        idx = np.flatnonzero(keep)
        prefix = int(keep[: self.prefix_len].sum())
        prefix = min(prefix, len(idx) - 1)
        return replace(
            self, input_ids=tuple(self.input_ids[i] for i in idx), codes=self.codes[idx],
            demo=self.demo[idx], roles=tuple(self.roles[i] for i in idx), prefix_len=prefix,
            condition=self.condition if condition is None else condition,
            meta={**self.meta, **(meta or {})})

    def has(self, category: str) -> Bool[np.ndarray, "pos"]:
        """Which tokens carry ``category``."""
        return (self.codes & BITS[category]) != 0
