"""Tests for icl_tokens.categorize: the token taxonomy of paper-spec §2.2.

The golden tables below were derived BY HAND from the §2.2 rules (not copied from
``categorize``'s output). Only the token *boundaries* come from the tokenizers; every category
list was reasoned out from the rules:

* a token takes the roles of the non-whitespace characters it covers; a whitespace-only token
  takes the roles of every character it covers (rule 3);
* template characters -> ``template``; template newlines -> ``template`` + ``stopword``;
* demonstration input -> ``stopword`` on whole-word, case-insensitive matches of the task's
  Table 12 list (punctuation by character, ``\\n`` if listed), otherwise ``content``;
* labels -> ``label``; instruction (including its ``\\n\\n`` suffix) -> ``instruction``;
  the tokenizer's BOS -> ``bos``; every test-example token -> ``test`` + its sub-kind.
"""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from icl_tokens.categorize import (
    BITS,
    CATEGORIES,
    FLAG_COLON,
    FLAG_NEWLINE,
    categorize,
    category_names,
    label_token_ids,
    stopword_matches,
)
from icl_tokens.models import gpt2_tokenizer, load_tokenizer
from icl_tokens.prompts import build_prompt
from icl_tokens.tasks import PAPER_TASKS, Example, load_task, nltk_stopwords

TOKENIZERS = ("gemma", "smol", "gpt2")


@pytest.fixture(scope="module")
def toks() -> dict[str, Any]:
    return {
        "gemma": load_tokenizer("gemma-3-270m"),
        "smol": load_tokenizer("smollm2-135m"),
        "gpt2": gpt2_tokenizer(),
    }


# ----------------------------------------------------------------------------- category shorthands
BOS = ["bos"]
I = ["instruction"]
T = ["template"]
TS = ["template", "stopword"]
S = ["stopword"]
C = ["content"]
L = ["label"]
XT = ["template", "test"]
XTS = ["template", "stopword", "test"]
XS = ["stopword", "test"]
XC = ["content", "test"]


def instr(*texts: str) -> list[tuple[str, list[str]]]:
    """Instruction tokens: every one is instruction-only (the instruction is never split up)."""
    return [(t, I) for t in texts]


def E(i: str, label: str, **inputs: str) -> Example:
    return Example(i, inputs, label)


def observed(tp) -> list[tuple[str, tuple[str, ...]]]:
    out = []
    for i, (s, e) in enumerate(tp.offsets):
        text = tp.prompt.text[s:e] if e > s else tp.tokens[i]
        out.append((text, tuple(sorted(tp.categories(i)))))
    return out


def norm(expected) -> list[tuple[str, tuple[str, ...]]]:
    return [(t, tuple(sorted(c))) for t, c in expected]


def assert_golden(tp, expected) -> None:
    got, want = observed(tp), norm(expected)
    assert [t for t, _ in got] == [t for t, _ in want], "tokenization changed; re-derive golden"
    diffs = [(i, t, g, w) for i, ((t, g), (_, w)) in enumerate(zip(got, want)) if g != w]
    assert not diffs, "category mismatches (pos, token, got, expected):\n" + "\n".join(
        map(repr, diffs)
    )


# ================================================================================ SST-2
# Stopwords: the, into, of, and, ".", "\n"  (no ","!).  k = 2.
# demo 2's input ends with "\n": on Gemma that newline merges with the template's "\n" into
# ONE whitespace-only token "\n\n" (d_in stopword + template/stopword = template+stopword); on
# the byte-level tokenizers they stay apart and the input's "\n" is a stopword only.
SST2 = ("sst2",
        [E("d1", "1", text="The theater, of course."), E("d2", "0", text="Into the void\n")],
        E("t", "0", text="the plot."))

_SST2_INSTR = ("Class", "ify", " the", " reviews", " into", " the", " categories", " of",
               " Positive", " and", " Negative", ".")

GOLDEN_SST2 = {
    "gemma": [
        ("<bos>", BOS),
        *instr(*_SST2_INSTR, "\n\n"),
        # demo 1
        ("Review", T), (":", T),
        (" The", S),          # case-insensitive "the"; leading space is template (whitespace)
        (" theater", C),      # whole-word: "the" inside "theater" is not a stopword
        (",", C),             # "," is NOT on the SST-2 list
        (" of", S), (" course", C), (".", S),
        ("\n", TS),
        ("Sentiment", T), (":", T),
        (" Positive", L),     # leading space from the template, label only
        ("\n\n", TS),
        # demo 2
        ("Review", T), (":", T), (" Into", S), (" the", S), (" void", C),
        ("\n\n", TS),         # d_in "\n" (stopword) + T_in "\n" (template+stopword)
        ("Sentiment", T), (":", T), (" Negative", L), ("\n\n", TS),
        # test
        ("Review", XT), (":", XT), (" the", XS), (" plot", XC), (".", XS), ("\n", XTS),
        ("Sentiment", XT), (":", XT),
    ],
    "smol": [
        *instr(*_SST2_INSTR, "\n", "\n"),
        ("Review", T), (":", T), (" The", S), (" theater", C), (",", C), (" of", S),
        (" course", C), (".", S), ("\n", TS),
        ("Sent", T), ("iment", T), (":", T), (" Positive", L), ("\n", TS), ("\n", TS),
        ("Review", T), (":", T), (" Into", S), (" the", S), (" void", C),
        ("\n", S),            # the input's own newline: stopword, NOT template
        ("\n", TS),           # the template's newline
        ("Sent", T), ("iment", T), (":", T), (" Negative", L), ("\n", TS), ("\n", TS),
        ("Review", XT), (":", XT), (" the", XS), (" plot", XC), (".", XS), ("\n", XTS),
        ("Sent", XT), ("iment", XT), (":", XT),
    ],
}
GOLDEN_SST2["gpt2"] = list(GOLDEN_SST2["smol"])  # same byte-level split for this text

# ================================================================================ AG News
# Stopwords: the, into, of, and, ",", ".", "\n".  k = 1.
AGNEWS = ("agnews", [E("d1", "1", text="The theater of war, and more.")],
          E("t", "3", text="Stocks rise into the close."))

_AG_INSTR = ("Class", "ify", " the", " news", " articles", " into", " the", " categories", " of",
             " World", ",", " Sports", ",", " Business", ",", " and", " Technology", ".")
_AG_DEMO = [
    ("Article", T), (":", T), (" The", S), (" theater", C), (" of", S), (" war", C),
    (",", S),                 # "," IS on the AG News list
    (" and", S), (" more", C), (".", S), ("\n", TS), ("Answer", T), (":", T), (" World", L),
]
GOLDEN_AGNEWS = {
    "gemma": [
        ("<bos>", BOS), *instr(*_AG_INSTR, "\n\n"), *_AG_DEMO, ("\n\n", TS),
        ("Article", XT), (":", XT), (" Stocks", XC), (" rise", XC), (" into", XS), (" the", XS),
        (" close", XC), (".", XS), ("\n", XTS), ("Answer", XT), (":", XT),
    ],
    "smol": [
        *instr(*_AG_INSTR, "\n", "\n"), *_AG_DEMO, ("\n", TS), ("\n", TS),
        ("Article", XT), (":", XT), (" St", XC), ("ocks", XC), (" rise", XC), (" into", XS),
        (" the", XS), (" close", XC), (".", XS), ("\n", XTS), ("Answer", XT), (":", XT),
    ],
}
GOLDEN_AGNEWS["gpt2"] = list(GOLDEN_AGNEWS["smol"])

# ================================================================================ TREC
# Stopwords: the, based, on, whether, their, is, a, ",", or, ".", "\n"  ("?" is NOT listed).
# k = 2; demo 2's label "Abbreviation" is several tokens, all label-only.
TREC = ("trec", [E("d1", "DESC", text="What is a theory?"),
                 E("d2", "ABBR", text="Which is based on Their data, or not?")],
        E("t", "LOC", text="What is the capital?"))

_TREC_INSTR = ("Class", "ify", " the", " questions", " based", " on", " whether", " their",
               " answer", " type", " is", " a", " Number", ",", " Location", ",", " Person", ",",
               " Description", ",", " Entity", ",", " or")


def _trec(abbr: tuple[str, ...], nl2: list) -> list:
    return [
        *instr(*_TREC_INSTR, *abbr, "."), *[(t, I) for t, _ in nl2],
        ("Question", T), (":", T), (" What", C), (" is", S), (" a", S),
        (" theory", C),       # not "the"
        ("?", C),             # "?" not on the list
        ("\n", TS), ("Answer", T), (" Type", T), (":", T), (" Description", L),
        *[(t, TS) for t, _ in nl2],
        ("Question", T), (":", T), (" Which", C), (" is", S), (" based", S), (" on", S),
        (" Their", S), (" data", C), (",", S), (" or", S), (" not", C), ("?", C), ("\n", TS),
        ("Answer", T), (" Type", T), (":", T), *[(t, L) for t in abbr],
        *[(t, TS) for t, _ in nl2],
        ("Question", XT), (":", XT), (" What", XC), (" is", XS), (" the", XS), (" capital", XC),
        ("?", XC), ("\n", XTS), ("Answer", XT), (" Type", XT), (":", XT),
    ]


GOLDEN_TREC = {
    "gemma": [("<bos>", BOS), *_trec((" Ab", "breviation"), [("\n\n", None)])],
    "smol": _trec((" Ab", "brev", "iation"), [("\n", None), ("\n", None)]),
    "gpt2": _trec((" Ab", "bre", "viation"), [("\n", None), ("\n", None)]),
}

# ================================================================================ RTE
# Stopwords: the, of, into, and, into, ".", "\n"  ("is"/"are" are NOT listed).  k = 1.
# The template "\n Premise: " has its leading space: " Prem" is template.
RTE = ("rte", [E("d1", "entailment", hypothesis="It rains.", premise="The sky is dark and wet.")],
       E("t", "not_entailment", hypothesis="Cats purr.", premise="Cats are into the sun."))

_RTE_INSTR = ("Class", "ify", " the", " entail", "ment", " of", " the", " hypothesis", " and",
              " the", " premise", " into", " the", " categories", " of", " True", " and", " False",
              ".")


def _rte(hyp: tuple[str, ...], nl2: tuple[str, ...]) -> list:
    return [
        *instr(*_RTE_INSTR, *nl2),
        *[(t, T) for t in hyp], (":", T), (" It", C), (" rains", C), (".", S), ("\n", TS),
        (" Prem", T), ("ise", T), (":", T),
        (" The", S),          # space belongs to " Premise: " (template), "The" to the premise
        (" sky", C), (" is", C), (" dark", C), (" and", S), (" wet", C), (".", S), ("\n", TS),
        ("Answer", T), (":", T), (" True", L), *[(t, TS) for t in nl2],
        *[(t, XT) for t in hyp], (":", XT), (" Cats", XC), (" pur", XC), ("r", XC), (".", XS),
        ("\n", XTS), (" Prem", XT), ("ise", XT), (":", XT), (" Cats", XC), (" are", XC),
        (" into", XS), (" the", XS), (" sun", XC), (".", XS), ("\n", XTS),
        ("Answer", XT), (":", XT),
    ]


GOLDEN_RTE = {
    "gemma": [("<bos>", BOS), *_rte(("Hyp", "othesis"), ("\n\n",))],
    "smol": _rte(("Hyp", "othesis"), ("\n", "\n")),
    "gpt2": _rte(("Hyp", "ot", "hesis"), ("\n", "\n")),
}

GOLDENS = {"sst2": (SST2, GOLDEN_SST2), "agnews": (AGNEWS, GOLDEN_AGNEWS),
           "trec": (TREC, GOLDEN_TREC), "rte": (RTE, GOLDEN_RTE)}


def build(case):
    task, demos, test = case
    return build_prompt(load_task(task), demos, test)


@pytest.mark.parametrize("tok_name", TOKENIZERS)
@pytest.mark.parametrize("task", list(GOLDENS))
def test_golden(task: str, tok_name: str, toks) -> None:
    case, golden = GOLDENS[task]
    tp = categorize(build(case), toks[tok_name])
    assert_golden(tp, golden[tok_name])


@pytest.mark.parametrize("tok_name", TOKENIZERS)
@pytest.mark.parametrize("task", list(GOLDENS))
def test_golden_flags_and_demo_index(task: str, tok_name: str, toks) -> None:
    case, _ = GOLDENS[task]
    tp = categorize(build(case), toks[tok_name])
    text = tp.prompt.text
    for i, (s, e) in enumerate(tp.offsets):
        piece = text[s:e]
        code = int(tp.codes[i])
        # newline flag on template and input newlines (the instruction's "\n\n" is not flagged)
        want_nl = "\n" in piece and not tp.has("instruction")[i]
        assert bool(code & FLAG_NEWLINE) == want_nl, (i, piece)
        # a colon flag only for template colons (all colons of these prompts are template ones)
        is_template_colon = ":" in piece and tp.has("template")[i]
        assert bool(code & FLAG_COLON) == is_template_colon, (i, piece)
        # demo index: the demonstration the token's characters belong to
        segs = [g for g in tp.prompt.segments if g.start <= s < g.end]
        want = segs[0].demo if segs and segs[0].part == "demo" else -1
        assert tp.demo[i] == want, (i, piece)
    # demo_counts counts only demonstration tokens
    dc = tp.demo_counts()
    assert dc["label"] == sum(1 for i in range(len(tp)) if tp.has("label")[i])
    assert set(dc) == {"template", "stopword", "content", "label"}


# ------------------------------------------------------------------ straddling / multi-category
# With the paper templates none of the three tokenizers merges non-whitespace characters across
# a D_in / template boundary (templates meet inputs only at "\n" or ": "; Gemma and the
# byte-level BPEs never merge punctuation with "\n"). So a template variant without the space
# after the colon is used: ":" (template) + "," (input) is ONE token ":," on all three.
# AG News lists "," -> template+stopword; SST-2 does not -> template+content.
@pytest.mark.parametrize("tok_name", TOKENIZERS)
@pytest.mark.parametrize(
    "task,tmpl,demo_comma,test_comma",
    [("agnews", "Article:{text}\n", TS, XTS), ("sst2", "Review:{text}\n", ["template", "content"],
                                                ["template", "content", "test"])],
)
def test_golden_straddle_token(task, tmpl, demo_comma, test_comma, tok_name, toks) -> None:
    spec = load_task(task).with_templates(input_template=tmpl)
    lab = next(iter(spec.label_map))
    word = spec.label_map[lab]
    p = build_prompt(spec, [E("d", lab, text=", the end.")], E("t", lab, text=",ok."))
    tp = categorize(p, toks[tok_name])
    head = tmpl.split(":")[0]
    # output-prefix word tokens: byte-level BPEs split "Sentiment" into "Sent" + "iment"
    out_t = ["Sent", "iment"] if (task == "sst2" and tok_name != "gemma") else [
        spec.output_prefix[:-1]]
    nl2 = ["\n\n"] if tok_name == "gemma" else ["\n", "\n"]
    expected = [
        (head, T), (":,", demo_comma), (" the", S), (" end", C), (".", S), ("\n", TS),
        *[(t, T) for t in out_t], (":", T), (" " + word, L), *[(t, TS) for t in nl2],
        (head, XT), (":,", test_comma), ("ok", XC), (".", XS), ("\n", XTS),
        *[(t, XT) for t in out_t], (":", XT),
    ]
    start = len(spec.instruction + spec.instruction_suffix)
    tail = [i for i, (s, e) in enumerate(tp.offsets) if e > s >= start]
    got = [(p.text[tp.offsets[i][0]:tp.offsets[i][1]], tuple(sorted(tp.categories(i))))
           for i in tail]
    assert got == norm(expected)
    # the straddling token carries the colon flag (its ":" is a template colon)
    i = tail[1]
    assert tp.codes[i] & FLAG_COLON
    assert tp.offsets[i][0] < p.spans(part="demo", role="d_in")[0].start < tp.offsets[i][1]


def test_multi_category_token_visible_in_table(toks) -> None:
    spec = load_task("agnews").with_templates(input_template="Article:{text}\n")
    p = build_prompt(spec, [E("d", "1", text=", x.")], E("t", "1", text="y."))
    tp = categorize(p, toks["gpt2"])
    rows = {r["text"]: r["categories"] for r in tp.table() if r["text"] == ":,"}
    assert rows == {":,": ["template", "stopword"]}


# ================================================================================ invariants
def _check_invariants(tp, tok, is_gemma: bool) -> None:
    n = len(tp)
    text = tp.prompt.text
    assert len(tp.input_ids) == len(tp.offsets) == len(tp.codes) == len(tp.demo) == len(tp.tokens)
    cat_mask = sum(BITS.values())
    # every token has >= 1 category
    assert all(int(c) & cat_mask for c in tp.codes)
    # BOS only at position 0, only on Gemma
    bos = np.flatnonzero(tp.has("bos"))
    assert list(bos) == ([0] if is_gemma else [])
    if is_gemma:
        assert int(tp.codes[0]) == BITS["bos"] and tp.offsets[0] == (0, 0)
    # test tokens are a contiguous suffix
    test = tp.has("test")
    first = tp.prefix_len
    assert test[first:].all() and not test[:first].any()
    assert first < n
    assert tp.clean_prefix_boundary
    assert tp.offsets[first][0] >= tp.prompt.test_start
    # test tokens carry exactly one more sub-kind; no instruction/label/bos in the test part
    for i in range(first, n):
        cats = set(tp.categories(i))
        assert "test" in cats and cats & {"template", "stopword", "content"}
        assert not cats & {"bos", "instruction", "label"}
    # counts consistent
    counts = tp.counts()
    assert set(counts) == set(CATEGORIES)
    assert sum(counts.values()) == sum(len(tp.categories(i)) for i in range(n))
    for name in CATEGORIES:
        assert counts[name] == int(tp.has(name).sum())
    assert counts["test"] == n - first
    demo_tokens = tp.demo >= 0
    dc = tp.demo_counts()
    for name in ("template", "stopword", "content", "label"):
        assert dc[name] == int((tp.has(name) & demo_tokens).sum())
    assert dc["label"] == counts["label"]
    # offsets from ONE tokenization of the full text: contiguous spans rebuild the prompt.
    # (Byte-level BPEs split a multi-byte character into several tokens whose character
    # spans repeat or overlap, e.g. "Ł" or CJK; so: no gaps, never going back, full cover.)
    spans = [(s, e) for (s, e), bit in zip(tp.offsets, tp.has("bos")) if not bit]
    pos, prev_start, pieces = 0, 0, []
    for s, e in spans:
        assert prev_start <= s <= pos and e > s, (s, e, pos)
        pieces.append(text[max(s, pos):e])
        pos, prev_start = max(pos, e), s
    assert pos == len(text)
    assert "".join(pieces) == text
    if not any(ord(ch) > 127 for ch in text):
        assert all(spans[j][1] == spans[j + 1][0] for j in range(len(spans) - 1))
    enc = tok(text, add_special_tokens=True)
    assert tp.input_ids == list(enc["input_ids"])
    assert tp.tokens == tok.convert_ids_to_tokens(tp.input_ids)


class _CountingTokenizer:
    """Wraps a fast tokenizer and records every encode call."""

    def __init__(self, tok) -> None:
        self._tok = tok
        self.calls: list[Any] = []

    def __call__(self, *args, **kw):
        self.calls.append((args, kw))
        return self._tok(*args, **kw)

    def __getattr__(self, name):
        return getattr(self._tok, name)


def _data_dir() -> Path | None:
    d = os.environ.get("ICL_TOKENS_DATA_DIR") or "/work/shared/data"
    return Path(d) if Path(d).is_dir() else None


@pytest.fixture(scope="module")
def real_episodes():
    root = _data_dir()
    if root is None:
        pytest.skip("no real data (set ICL_TOKENS_DATA_DIR)")
    from icl_tokens.data import load_task_data
    from icl_tokens.episodes import sample_episode

    out = {}
    for task in PAPER_TASKS:
        if not (root / task).is_dir():
            continue
        data = load_task_data(task, source="dir", data_dir=root)
        out[task] = sample_episode(data, 0, k=4, n_test=5)
    if not out:
        pytest.skip(f"{root} holds none of the paper tasks")
    return out


@pytest.mark.parametrize("tok_name", TOKENIZERS)
@pytest.mark.parametrize("task", PAPER_TASKS)
def test_invariants_on_real_data(task: str, tok_name: str, toks, real_episodes) -> None:
    if task not in real_episodes:
        pytest.skip(f"no {task} data")
    ep = real_episodes[task]
    spec = load_task(task)
    tok = toks[tok_name]
    for test in ep.tests:
        p = build_prompt(spec, ep.demos, test)
        counting = _CountingTokenizer(tok)
        tp = categorize(p, counting)
        # tokenised exactly once, on the whole prompt
        assert len(counting.calls) == 1
        args, kw = counting.calls[0]
        assert (args[0] if args else kw.get("text")) == p.text
        assert kw.get("return_offsets_mapping") is True
        _check_invariants(tp, tok, tok_name == "gemma")
        # every demonstration has its label tokens, and labels are label-only
        for d in range(ep.k):
            in_demo = tp.demo == d
            assert (tp.has("label") & in_demo).any()
            assert (tp.has("content") & in_demo).any() or (tp.has("stopword") & in_demo).any()
        for i in np.flatnonzero(tp.has("label")):
            assert tp.categories(int(i)) == ["label"]
        # NLTK variant: same tokens, at least as many stopwords
        tpn = categorize(p, tok, stopword_variant="nltk")
        assert tpn.input_ids == tp.input_ids
        assert tpn.stopword_variant == "nltk"
        assert tpn.counts()["stopword"] >= tp.counts()["stopword"]
        _check_invariants(tpn, tok, tok_name == "gemma")


# ------------------------------------------------------------------------------- label tokens
#: Label words that are more than one token after the output prefix (with the leading space).
#: Gemma/SmolLM2 rows as in paper-spec §2.2; GPT-2 checked here (Album is one token there).
MULTI_TOKEN_LABELS = {
    "gemma": {"trec": {"Abbreviation": 2}, "dbpedia": {"Politician": 2}},
    "smol": {"trec": {"Abbreviation": 3},
             "dbpedia": {"Athlete": 2, "Politician": 2, "Album": 2}},
    "gpt2": {"trec": {"Abbreviation": 3}, "dbpedia": {"Athlete": 2, "Politician": 2}},
}


@pytest.mark.parametrize("tok_name", TOKENIZERS)
@pytest.mark.parametrize("task", PAPER_TASKS)
def test_label_token_ids(task: str, tok_name: str, toks) -> None:
    spec = load_task(task)
    tok = toks[tok_name]
    fields = {f: "Some text here." for f in spec.input_fields}
    lab = next(iter(spec.label_map))
    p = build_prompt(spec, [Example("d", fields, lab)], Example("t", fields, lab))
    ids = label_token_ids(spec, tok, p.text)
    assert list(ids) == list(spec.label_words)
    # first tokens are unique per task (single-token scoring of the first token is possible)
    firsts = [v[0] for v in ids.values()]
    assert len(set(firsts)) == len(firsts)
    multi = {w: len(v) for w, v in ids.items() if len(v) > 1}
    assert multi == MULTI_TOKEN_LABELS[tok_name].get(task, {})
    # in context: prompt tokens + label tokens == tokenization of prompt + " " + label
    tp = categorize(p, tok)
    for w, v in ids.items():
        full = tok(p.text + spec.label_separator + w)["input_ids"]
        assert list(full) == tp.input_ids + v
        # the label tokens decode back to " " + word
        assert tok.decode(v) == " " + w
    # the demonstration's label tokens are exactly the in-context ids of its label word
    demo_label = [tp.input_ids[i] for i in np.flatnonzero(tp.has("label"))]
    assert demo_label == ids[spec.label_word(lab)]


def test_label_token_ids_straddle_error(toks) -> None:
    # no separator and a label that merges with the prefix: "Answer" + "s" -> "Answers"
    from icl_tokens.tasks import TaskSpec

    spec = TaskSpec(name="merge", instruction="Pick.", input_template="Q: {text}\n",
                    output_template="Answer{label}\n\n", label_words=("s", "ing"),
                    label_map={"0": "s", "1": "ing"}, stopwords=("\n",))
    assert spec.label_separator == ""
    gpt2 = toks["gpt2"]
    assert gpt2.convert_ids_to_tokens(gpt2("x\nAnswers")["input_ids"])[-1] == "swers"
    with pytest.raises(ValueError, match="straddles"):
        label_token_ids(spec, toks["gpt2"], "x\nAnswer")


# ============================================================================ stopword_matches
def test_stopword_matches_docstring_example() -> None:
    assert stopword_matches("The theater , and\nof", ["the", ",", "of", "\n"]) == [
        (0, 3), (12, 13), (17, 18), (18, 20)]


@pytest.mark.parametrize(
    "text,words,expected",
    [
        ("the theater", ["the"], [(0, 3)]),                  # whole words only
        ("THE The tHe", ["the"], [(0, 3), (4, 7), (8, 11)]),  # case-insensitive
        ("x", ["X"], [(0, 1)]),                              # list entries lower-cased too
        ("bathe then other", ["the"], []),                   # never inside a word
        ("a,b.c", [",", "."], [(1, 2), (3, 4)]),              # punctuation by character
        ("a, b", ["a"], [(0, 1)]),
        ("a\nb\n", ["\n"], [(1, 2), (3, 4)]),
        ("a\nb", ["a"], [(0, 1)]),                           # "\n" only if listed
        ("don't", ["don", "'", "t"], [(0, 3), (3, 4), (4, 5)]),
        ("the_end the-end", ["the"], [(8, 11)]),             # "_" is a word character
        ("...", ["."], [(0, 1), (1, 2), (2, 3)]),
        ("", ["the"], []),
        ("the", [], []),
        ("Über the", ["über"], [(0, 4)]),                    # unicode words
    ],
)
def test_stopword_matches_cases(text, words, expected) -> None:
    assert stopword_matches(text, words) == expected


def test_stopword_matches_accepts_any_iterable() -> None:
    """The signature takes ``Iterable[str]``: a one-shot iterator must work like a list.

    BUG (icl_tokens/categorize.py, stopword_matches): the set comprehension consumes the
    iterator, so the later ``"\\n" in stopwords`` test sees an exhausted iterator and newline
    matches are silently dropped.
    """
    words = ["the", "\n"]
    assert stopword_matches("the\nx", iter(words)) == stopword_matches("the\nx", words)
    assert stopword_matches("the\nx", (w for w in words)) == [(0, 3), (3, 4)]


def test_stopword_matches_with_table12_lists() -> None:
    trec = load_task("trec").stopwords
    text = "Is their answer based on a theory, or on Theirs?"
    got = [text[s:e] for s, e in stopword_matches(text, trec)]
    assert got == ["Is", "their", "based", "on", "a", ",", "or", "on"]
    sst2 = load_task("sst2").stopwords
    t2 = "a , b . c"
    assert [t2[s:e] for s, e in stopword_matches(t2, sst2)] == ["."]


# ============================================================================ NLTK variant
_NLTK_TEXT = """
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she
her hers herself it its itself they them their theirs themselves what which who whom this that
these those am is are was were be been being have has had having do does did doing a an the and
but if or because as until while of at by for with about against between into through during
before after above below to from up down in out on off over under again further then once here
there when where why how all any both each few more most other some such no nor not only own
same so than too very s t can will just don should now
"""
NLTK_WORDS = _NLTK_TEXT.split()


def test_nltk_variant() -> None:
    words = nltk_stopwords()
    assert len(NLTK_WORDS) == 127
    assert len(words) == 160
    assert len(set(words)) == 160
    assert list(words[:127]) == NLTK_WORDS
    assert list(words[127:159]) == list(string.punctuation)
    assert words[159] == "\n"
    for task in PAPER_TASKS:
        assert load_task(task).stopword_list("nltk") == words
        assert load_task(task).stopword_list("paper") == load_task(task).stopwords


def test_nltk_variant_changes_categories(toks) -> None:
    p = build(SST2)
    tp_paper = categorize(p, toks["gpt2"])
    tp_nltk = categorize(p, toks["gpt2"], stopword_variant="nltk")
    i = next(k for k, (s, e) in enumerate(tp_paper.offsets) if p.text[s:e] == ",")
    assert tp_paper.categories(i) == ["content"]     # "," not on the SST-2 list
    assert tp_nltk.categories(i) == ["stopword"]     # but in string.punctuation
    j = next(k for k, (s, e) in enumerate(tp_paper.offsets) if p.text[s:e] == " course")
    assert tp_nltk.categories(j) == ["content"]
    # templates / labels / instruction do not depend on the list
    for k in range(len(tp_paper)):
        a = tp_paper.categories(k)
        if set(a) & {"template", "label", "instruction", "bos"}:
            assert tp_nltk.categories(k) == a


def test_unknown_stopword_variant(toks) -> None:
    p = build(SST2)
    with pytest.raises(ValueError, match=r"unknown stopword variant 'foo'.*paper.*nltk"):
        categorize(p, toks["gpt2"], stopword_variant="foo")
    with pytest.raises(ValueError, match="unknown stopword variant"):
        load_task("sst2").stopword_list("NLTK ")


# ============================================================================ tokenizer checks
def test_slow_tokenizer_rejected() -> None:
    from transformers import ByT5Tokenizer  # a pure-Python ("slow") tokenizer needing no files

    slow = ByT5Tokenizer()
    assert not slow.is_fast
    with pytest.raises(ValueError, match="fast tokenizer"):
        categorize(build(SST2), slow)

    class NoFlag:
        def __call__(self, *a, **k):  # pragma: no cover - must not be reached
            raise AssertionError("called")

    with pytest.raises(ValueError, match="fast tokenizer"):
        categorize(build(SST2), NoFlag())


def test_gpt2_with_bos_gets_bos_category() -> None:
    tok = gpt2_tokenizer(bos=True)
    tp = categorize(build(AGNEWS), tok)
    assert tp.categories(0) == ["bos"] and tp.offsets[0] == (0, 0)
    assert list(np.flatnonzero(tp.has("bos"))) == [0]
    # the rest is the same as without BOS
    tp2 = categorize(build(AGNEWS), gpt2_tokenizer())
    assert [tp.categories(i) for i in range(1, len(tp))] == [
        tp2.categories(i) for i in range(len(tp2))]


def test_trailing_special_token_rejected() -> None:
    from tokenizers import processors

    from icl_tokens.models import GPT2_EOT, GPT2_EOT_ID

    tok = gpt2_tokenizer()
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {GPT2_EOT}", special_tokens=[(GPT2_EOT, GPT2_EOT_ID)])
    with pytest.raises(ValueError, match="only a leading BOS"):
        categorize(build(AGNEWS), tok)


def test_category_names_and_bits() -> None:
    assert CATEGORIES == ("bos", "instruction", "template", "stopword", "content", "label", "test")
    assert len(set(BITS.values())) == len(CATEGORIES)
    assert category_names(BITS["template"] | BITS["stopword"] | FLAG_NEWLINE) == [
        "template", "stopword"]
    assert category_names(0) == []
    assert all(not (f & sum(BITS.values())) for f in (FLAG_COLON, FLAG_NEWLINE))
