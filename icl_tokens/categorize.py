"""Token categorization: prompt spans + fast-tokenizer offsets → categories and roles per token.

The rules are paper-spec §2.2 (the contract):

* a token takes the categories (and roles) of the characters it covers that are **not
  whitespace, plus its newline characters** -- newlines are template/stopword carriers, never
  mere whitespace, so a BPE token ``.\\n`` spanning ``D_in`` and ``T_in`` is stopword+template
  (rule 6). A token made only of other whitespace (a bare space) takes those of every character
  it covers. So `` Business`` after ``Answer:`` is a label only: its space is template whitespace;
* template pieces → ``template``; newline characters in templates → ``template`` + ``stopword``;
* demonstration inputs are split into words and punctuation (``\\w+|[^\\w\\s]``); a word whose
  lowercase form is on the task's stopword list, or a listed punctuation mark, is a stopword
  match (whole words only); characters of a match → ``stopword``, other characters →
  ``content`` (a newline inside an input is a stopword when ``"\\n"`` is listed);
* label words → ``label``; the instruction → ``instruction``; the tokenizer's BOS → ``bos``;
* every test-example token gets ``test`` plus its sub-kind (``template``/``stopword``/``content``).

Categories are stored as bit masks (:data:`BITS`) so masks can be built with vector operations.

**Roles** say where a token's characters come from (:attr:`TokenizedPrompt.roles`, the
``roles`` column of :meth:`TokenizedPrompt.table`; select with
:meth:`TokenizedPrompt.has_role`, a glob such as ``demo_*.t_out.colon``). They are taken from
the same characters as the categories, in order of first occurrence, without duplicates.
``i`` is the 1-based demonstration index (as in ``Segment.name``):

=================================  ==========================================================
role                               characters
=================================  ==========================================================
``bos``                            the tokenizer's BOS token
``instruction``                    the instruction ``I`` with its ``\\n\\n`` suffix
``demo_{i}.t_in.{piece}``          the input template ``T_in`` of demonstration ``i``
``demo_{i}.d_in.{field}``          its input text; ``field`` as in the template: ``text``,
                                   or ``hypothesis`` / ``premise`` (RTE, CB)
``demo_{i}.t_out.{piece}``         the output template ``T_out`` of demonstration ``i``
``demo_{i}.d_out``                 its label word (without the space before it)
``test.t_in.{piece}``              the test example's ``T_in``
``test.x.{field}``                 the test input
``test.t_out.{piece}``             the final ``prefix(T_out)``, e.g. ``Answer:`` (its segment
                                   role is ``t_out_prefix``)
=================================  ==========================================================

Template ``piece`` is one of :data:`TEMPLATE_PIECES`: ``word`` (letters, digits and any other
non-space template character), ``colon`` (``:``), ``newline`` (``\\n``), ``separator`` (any
other whitespace of a template, e.g. the space of ``Answer: `` before the label or the one
before ``Premise`` in RTE/CB). Examples: `` Business`` after ``Answer:`` →
``("demo_1.d_out",)``; Gemma's ``\\n\\n`` after a label → ``("demo_1.t_out.newline",)``; a
merged ``.\\n`` → ``("demo_1.d_in.text", "demo_1.t_in.newline")``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Iterable, Sequence

import numpy as np
from jaxtyping import Bool, Int

from .prompts import Prompt
from .tasks import TaskSpec

__all__ = [
    "CATEGORIES",
    "BITS",
    "FLAG_COLON",
    "FLAG_NEWLINE",
    "TEMPLATE_PIECES",
    "TokenizedPrompt",
    "categorize",
    "stopword_matches",
    "category_names",
    "label_token_ids",
    "words_token_ids",
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
#: Kinds of template characters in roles (``demo_1.t_out.colon``, ...).
TEMPLATE_PIECES: tuple[str, ...] = ("word", "colon", "newline", "separator")


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


def _template_piece(ch: str) -> str:
    if ch == "\n":
        return "newline"
    if ch == ":":
        return "colon"
    return "separator" if ch.isspace() else "word"


def _char_roles(prompt: Prompt) -> list[str]:
    """Role string of every character of ``prompt.text`` (see the module docstring)."""
    roles = [""] * len(prompt.text)
    text = prompt.text
    for seg in prompt.segments:
        if seg.end <= seg.start:
            continue
        where = "test" if seg.part == "test" else (
            f"demo_{seg.demo + 1}" if seg.part == "demo" else "")  # type: ignore[operator]
        if seg.role == "instruction":
            names = ["instruction"] * (seg.end - seg.start)
        elif seg.role in ("t_in", "t_out", "t_out_prefix"):
            kind = "t_in" if seg.role == "t_in" else "t_out"
            names = [f"{where}.{kind}.{_template_piece(ch)}" for ch in text[seg.start : seg.end]]
        elif seg.role in ("d_in", "x"):
            names = [f"{where}.{seg.role}.{seg.field}"] * (seg.end - seg.start)
        elif seg.role == "d_out":
            names = [f"{where}.d_out"] * (seg.end - seg.start)
        else:
            raise ValueError(f"segment role {seg.role!r} cannot be categorised")
        roles[seg.start : seg.end] = names
    return roles


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
        roles: Role strings per token (see the module docstring), e.g.
            ``("demo_1.d_in.text", "demo_1.t_in.newline")`` for a merged ``.\\n``.
    """

    prompt: Prompt
    input_ids: list[int]
    offsets: list[tuple[int, int]]
    codes: Int[np.ndarray, "pos"]
    demo: Int[np.ndarray, "pos"]
    tokens: list[str]
    stopword_variant: str = "paper"
    roles: tuple[tuple[str, ...], ...] = ()

    def __len__(self) -> int:
        return len(self.input_ids)

    def categories(self, i: int) -> list[str]:
        """Category names of token ``i``."""
        return category_names(int(self.codes[i]))

    def has(self, category: str) -> np.ndarray:
        """Boolean vector: which tokens carry ``category``."""
        return (self.codes & BITS[category]) != 0

    def has_role(self, pattern: str) -> Bool[np.ndarray, "pos"]:
        """Boolean vector: which tokens have a role matching the glob ``pattern``.

        Matching is :func:`fnmatch.fnmatchcase` on each role, e.g. ``"demo_*.t_out.colon"``,
        ``"test.*"``, ``"demo_2.d_in.*"``.

        >>> from icl_tokens.prompts import build_prompt
        >>> from icl_tokens.tasks import Example, load_task
        >>> from icl_tokens.testing.tokenizers import cl100k_style_tokenizer
        >>> demo = Example("d", {"text": "a good film."}, "1")
        >>> test = Example("t", {"text": "ok"}, "0")
        >>> tp = categorize(build_prompt(load_task("sst2"), [demo], test), cl100k_style_tokenizer())
        >>> [tp.prompt.text[s:e] for s, e in np.array(tp.offsets)[tp.has_role("demo_*.t_in.*")]]
        ['Review', ':', '.\\n']
        """
        if len(self.roles) != len(self.input_ids):
            raise ValueError("this TokenizedPrompt has no roles; build it with categorize().")
        return np.array(
            [any(fnmatchcase(r, pattern) for r in rs) for rs in self.roles], dtype=bool
        ).reshape(len(self.roles))

    @property
    def is_test(self) -> np.ndarray:
        return self.has("test")

    @property
    def prefix_len(self) -> int:
        """Number of tokens before the first test-example token (the demo prefix)."""
        test = np.flatnonzero(self.is_test)
        return int(test[0]) if len(test) else len(self.input_ids)

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
        """One dict per token: id, text, start, end, categories, roles (the CLI JSON schema)."""
        return [
            {"id": int(t), "text": self.prompt.text[s:e] if e > s else tok, "start": int(s),
             "end": int(e), "categories": self.categories(i),
             "roles": list(self.roles[i]) if i < len(self.roles) else []}
            for i, (t, (s, e), tok) in enumerate(zip(self.input_ids, self.offsets, self.tokens))
        ]


def _deciding_chars(text: str, start: int, end: int) -> list[int]:
    """The characters of ``text[start:end]`` that decide a token's categories and roles.

    Its non-whitespace and newline characters; all of them for a token of other whitespace only.

    >>> cases = [("film .\\nX", 4, 7), ("a \\n", 1, 3), ("  ", 0, 2)]
    >>> [_deciding_chars(t, s, e) for t, s, e in cases]
    [[5, 6], [2], [0, 1]]
    """
    span = range(start, end)
    chosen = [i for i in span if text[i] == "\n" or not text[i].isspace()]
    return chosen if chosen else list(span)


def _token_code(char_codes: np.ndarray, text: str, start: int, end: int) -> int:
    span = range(start, end)
    chosen = _deciding_chars(text, start, end)
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
    codes, demo, roles = _token_categories(prompt, tokenizer, stopwords, ids, offsets, special)
    return TokenizedPrompt(prompt=prompt, input_ids=ids, offsets=offsets,  # type: ignore[arg-type]
                           codes=codes, demo=demo, tokens=tokenizer.convert_ids_to_tokens(ids),
                           stopword_variant=stopword_variant, roles=tuple(roles))


def _token_categories(prompt: Prompt, tokenizer: Any, stopwords: Any, ids: list[int],
                      offsets: list[tuple[int, int]], special: list[int]
                      ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, ...]]]:
    """Category bits, demonstration index and roles of every token, from its characters."""
    char_codes = _char_codes(prompt, stopwords)
    char_roles = _char_roles(prompt)
    seg_demo = np.full(len(prompt.text), -1, dtype=np.int64)
    for seg in prompt.segments:
        if seg.part == "demo" and seg.end > seg.start:
            seg_demo[seg.start : seg.end] = seg.demo  # type: ignore[assignment]
    text = prompt.text
    codes = np.zeros(len(ids), dtype=np.int64)
    demo = np.full(len(ids), -1, dtype=np.int64)
    roles: list[tuple[str, ...]] = []
    for i, ((s, e), sp) in enumerate(zip(offsets, special)):
        if sp:
            if i != 0 or tokenizer.convert_ids_to_tokens(ids[i]) != tokenizer.bos_token:
                raise ValueError(
                    f"tokenizer added special token {tokenizer.convert_ids_to_tokens(ids[i])!r} "
                    f"at position {i}; only a leading BOS is supported. Configure the tokenizer "
                    "not to add it."
                )
            codes[i] = BITS["bos"]
            roles.append(("bos",))
            continue
        if e <= s:
            # Zero-width non-special token (some SentencePiece prefixes): it belongs to the
            # character that follows it.
            s, e = (s, s + 1) if s < len(text) else (len(text) - 1, len(text))
        codes[i] = _token_code(char_codes, text, s, e)
        roles.append(tuple(dict.fromkeys(char_roles[j] for j in _deciding_chars(text, s, e))))
        covered = seg_demo[s:e]
        demo[i] = int(covered.max()) if len(covered) else -1
        if codes[i] & _CATEGORY_MASK == 0:
            raise ValueError(f"token {i} ({text[s:e]!r}) received no category; this is a bug.")
    return codes, demo, roles


def label_token_ids(
    task: TaskSpec, tokenizer: Any, context: str
) -> dict[str, list[int]]:
    """Token ids of each label word as it follows ``context`` (which ends with ``prefix(T_out)``).

    The label is tokenised *in context* (``context + separator + label``) and the tokens after
    ``len(context)`` are taken, so merges with the separator are exactly what the model sees.

    Raises:
        ValueError: If a token straddles the end of ``context`` (the label cannot be separated).
    """
    return words_token_ids(tokenizer, task.label_words, context, task.label_separator)


def words_token_ids(
    tokenizer: Any, words: Sequence[str], context: str, separator: str = " "
) -> dict[str, list[int]]:
    """Token ids of each of ``words`` after ``context + separator`` (see
    :func:`label_token_ids`; for words that are not a task's label words)."""
    out: dict[str, list[int]] = {}
    for word in words:
        full = context + separator + word
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
