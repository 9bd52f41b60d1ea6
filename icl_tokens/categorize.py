"""Token categorization: prompt spans + fast-tokenizer offsets → a set of categories per token.

The rules are paper-spec §2.2 (the contract):

* a token takes the roles of the **non-whitespace** characters it covers; a whitespace-only
  token takes the roles of the characters it covers;
* template pieces → ``template``; newline characters in templates → ``template`` + ``stopword``;
* demonstration inputs are split into words and punctuation (``\\w+|[^\\w\\s]``); a word whose
  lowercase form is on the task's stopword list, or a listed punctuation mark, is a stopword
  match (whole words only); characters of a match → ``stopword``, other characters →
  ``content`` (a newline inside an input is a stopword when ``"\\n"`` is listed);
* label words → ``label``; the instruction → ``instruction``; the tokenizer's BOS → ``bos``;
* every test-example token gets ``test`` plus its sub-kind (``template``/``stopword``/``content``).

Categories are stored as bit masks (:data:`BITS`) so masks can be built with vector operations.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
from jaxtyping import Int

from .prompts import Prompt
from .tasks import TaskSpec

__all__ = [
    "CATEGORIES",
    "BITS",
    "FLAG_COLON",
    "FLAG_NEWLINE",
    "TokenizedPrompt",
    "categorize",
    "stopword_matches",
    "category_names",
    "label_token_ids",
]

CATEGORIES: tuple[str, ...] = (
    "bos", "instruction", "template", "stopword", "content", "label", "test",
)
BITS: dict[str, int] = {name: 1 << i for i, name in enumerate(CATEGORIES)}
#: Extra flags (not categories): a template colon / a newline character.
FLAG_COLON = 1 << 7
FLAG_NEWLINE = 1 << 8
_CATEGORY_MASK = (1 << len(CATEGORIES)) - 1
_WORD = re.compile(r"\w+|[^\w\s]")


def category_names(code: int) -> list[str]:
    """Category names of a bit code, in the canonical order of :data:`CATEGORIES`."""
    return [name for name in CATEGORIES if code & BITS[name]]


def stopword_matches(text: str, stopwords: Iterable[str]) -> list[tuple[int, int]]:
    """Character spans of stopword matches in ``text`` (whole words, case-insensitive).

    >>> stopword_matches("The theater , and\\nof", ["the", ",", "of", "\\n"])
    [(0, 3), (12, 13), (17, 18), (18, 20)]
    """
    stopwords = tuple(stopwords)
    words = {w.lower() for w in stopwords if w != "\n"}
    spans = [
        (m.start(), m.end())
        for m in _WORD.finditer(text)
        if m.group().lower() in words
    ]
    if "\n" in stopwords:
        spans += [(m.start(), m.end()) for m in re.finditer("\n", text)]
    return sorted(spans)


def _char_codes(prompt: Prompt, stopwords: Sequence[str]) -> Int[np.ndarray, "chars"]:
    """Category bits of every character of ``prompt.text``."""
    codes = np.zeros(len(prompt.text), dtype=np.int64)
    text = prompt.text
    for seg in prompt.segments:
        if seg.end <= seg.start:
            continue
        sl = slice(seg.start, seg.end)
        test_bit = BITS["test"] if seg.part == "test" else 0
        if seg.role == "instruction":
            codes[sl] = BITS["instruction"]
        elif seg.role in ("t_in", "t_out", "t_out_prefix"):
            codes[sl] = BITS["template"] | test_bit
            for i in range(seg.start, seg.end):
                if text[i] == "\n":
                    codes[i] |= BITS["stopword"] | FLAG_NEWLINE
                elif text[i] == ":":
                    codes[i] |= FLAG_COLON
        elif seg.role == "d_out":
            codes[sl] = BITS["label"]
        elif seg.role in ("d_in", "x"):
            codes[sl] = BITS["content"] | test_bit
            for s, e in stopword_matches(text[sl], stopwords):
                codes[seg.start + s : seg.start + e] = BITS["stopword"] | test_bit
            for i in range(seg.start, seg.end):
                if text[i] == "\n":
                    codes[i] |= FLAG_NEWLINE
        else:
            raise ValueError(f"segment role {seg.role!r} cannot be categorised")
    return codes


@dataclass
class TokenizedPrompt:
    """A prompt tokenised once, with per-token categories.

    Attributes:
        prompt: The assembled prompt.
        input_ids: Token ids (including the tokenizer's BOS, if it adds one).
        offsets: ``(start, end)`` character offsets per token (``(0, 0)`` for BOS).
        codes: Category bits per token (see :data:`BITS`, :data:`FLAG_COLON`).
        demo: 0-based demonstration index per token (-1 outside demonstrations).
        tokens: Token strings (``convert_ids_to_tokens``).
        stopword_variant: Which stopword list was used.
    """

    prompt: Prompt
    input_ids: list[int]
    offsets: list[tuple[int, int]]
    codes: Int[np.ndarray, "pos"]
    demo: Int[np.ndarray, "pos"]
    tokens: list[str]
    stopword_variant: str = "paper"
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.input_ids)

    def categories(self, i: int) -> list[str]:
        """Category names of token ``i``."""
        return category_names(int(self.codes[i]))

    def has(self, category: str) -> np.ndarray:
        """Boolean vector: which tokens carry ``category``."""
        return (self.codes & BITS[category]) != 0

    @property
    def is_test(self) -> np.ndarray:
        return self.has("test")

    @property
    def prefix_len(self) -> int:
        """Number of tokens before the first test-example token (the demo prefix)."""
        test = np.flatnonzero(self.is_test)
        return int(test[0]) if len(test) else len(self.input_ids)

    @property
    def clean_prefix_boundary(self) -> bool:
        """Whether a token boundary falls exactly where the test example begins."""
        p = self.prefix_len
        return p < len(self.offsets) and self.offsets[p][0] >= self.prompt.test_start

    def counts(self) -> dict[str, int]:
        """Number of tokens per category (a token counts once in each of its categories)."""
        c: Counter[str] = Counter()
        for code in self.codes:
            c.update(category_names(int(code)))
        return {name: c.get(name, 0) for name in CATEGORIES}

    def demo_counts(self) -> dict[str, int]:
        """Counts over demonstration tokens only (the tokens a knockout can hide)."""
        c: Counter[str] = Counter()
        for code, d in zip(self.codes, self.demo):
            if d >= 0:
                c.update(category_names(int(code)))
        return {name: c.get(name, 0) for name in ("template", "stopword", "content", "label")}

    def table(self) -> list[dict[str, Any]]:
        """One dict per token: id, text, start, end, categories (the CLI JSON schema)."""
        return [
            {"id": int(t), "text": self.prompt.text[s:e] if e > s else tok, "start": int(s),
             "end": int(e), "categories": self.categories(i)}
            for i, (t, (s, e), tok) in enumerate(zip(self.input_ids, self.offsets, self.tokens))
        ]


def _token_code(char_codes: np.ndarray, text: str, start: int, end: int) -> int:
    span = range(start, end)
    non_ws = [i for i in span if not text[i].isspace()]
    chosen = non_ws if non_ws else list(span)
    code = 0
    for i in chosen:
        code |= int(char_codes[i])
    # Flags follow every covered character (a ".\n" token is still a newline carrier).
    for i in span:
        code |= int(char_codes[i]) & (FLAG_NEWLINE | FLAG_COLON)
    return code


def categorize(
    prompt: Prompt,
    tokenizer: Any,
    *,
    stopword_variant: str = "paper",
) -> TokenizedPrompt:
    """Tokenise ``prompt`` once with a fast tokenizer and categorise every token.

    Args:
        prompt: From :func:`icl_tokens.prompts.build_prompt`.
        tokenizer: A Hugging Face *fast* tokenizer (it must return offset mappings).
        stopword_variant: ``"paper"`` (Table 12) or ``"nltk"`` (Appendix B).

    Returns:
        The :class:`TokenizedPrompt`.

    Raises:
        ValueError: A slow tokenizer, a special token other than a leading BOS, or a token with
            no category (which would mean the spans do not cover the text).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            "categorize needs a fast tokenizer (offset mappings); load it with use_fast=True."
        )
    stopwords = prompt.task.stopword_list(stopword_variant)
    enc = tokenizer(
        prompt.text, return_offsets_mapping=True, return_special_tokens_mask=True,
        add_special_tokens=True,
    )
    ids: list[int] = list(enc["input_ids"])
    offsets = [tuple(map(int, o)) for o in enc["offset_mapping"]]
    special = list(enc["special_tokens_mask"])
    char_codes = _char_codes(prompt, stopwords)
    seg_demo = np.full(len(prompt.text), -1, dtype=np.int64)
    for seg in prompt.segments:
        if seg.part == "demo" and seg.end > seg.start:
            seg_demo[seg.start : seg.end] = seg.demo  # type: ignore[assignment]
    text = prompt.text
    codes = np.zeros(len(ids), dtype=np.int64)
    demo = np.full(len(ids), -1, dtype=np.int64)
    for i, ((s, e), sp) in enumerate(zip(offsets, special)):
        if sp:
            if i != 0 or tokenizer.convert_ids_to_tokens(ids[i]) != tokenizer.bos_token:
                raise ValueError(
                    f"tokenizer added special token {tokenizer.convert_ids_to_tokens(ids[i])!r} "
                    f"at position {i}; only a leading BOS is supported. Configure the tokenizer "
                    "not to add it."
                )
            codes[i] = BITS["bos"]
            continue
        if e <= s:
            # Zero-width non-special token (some SentencePiece prefixes): it belongs to the
            # character that follows it.
            s, e = (s, s + 1) if s < len(text) else (len(text) - 1, len(text))
        codes[i] = _token_code(char_codes, text, s, e)
        covered = seg_demo[s:e]
        demo[i] = int(covered.max()) if len(covered) else -1
        if codes[i] & _CATEGORY_MASK == 0:
            raise ValueError(f"token {i} ({text[s:e]!r}) received no category; this is a bug.")
    result = TokenizedPrompt(
        prompt=prompt,
        input_ids=ids,
        offsets=offsets,  # type: ignore[arg-type]
        codes=codes,
        demo=demo,
        tokens=tokenizer.convert_ids_to_tokens(ids),
        stopword_variant=stopword_variant,
    )
    return result


def label_token_ids(
    task: TaskSpec, tokenizer: Any, context: str
) -> dict[str, list[int]]:
    """Token ids of each label word as it follows ``context`` (which ends with ``prefix(T_out)``).

    The label is tokenised *in context* (``context + separator + label``) and the tokens after
    ``len(context)`` are taken, so merges with the separator are exactly what the model sees.

    Raises:
        ValueError: If a token straddles the end of ``context`` (the label cannot be separated).
    """
    out: dict[str, list[int]] = {}
    for word in task.label_words:
        full = context + task.label_separator + word
        enc = tokenizer(full, return_offsets_mapping=True, add_special_tokens=True)
        ids, offs = enc["input_ids"], enc["offset_mapping"]
        cut = len(context)
        straddle = [i for i, (s, e) in enumerate(offs) if s < cut < e]
        if straddle:
            raise ValueError(
                f"label {word!r}: token {straddle[0]} straddles the end of the prompt, so the "
                "label's tokens cannot be separated from the prompt's."
            )
        out[word] = [int(t) for t, (s, e) in zip(ids, offs) if s >= cut and e > s]
        if not out[word]:
            raise ValueError(f"label {word!r} produced no tokens after the prompt.")
    return out
