"""Tests for icl_tokens.categorize: the token taxonomy of paper-spec §2.2.

The golden tables below were derived BY HAND from the §2.2 rules (not copied from
``categorize``'s output). Only the token *boundaries* come from the tokenizers; every category
list was reasoned out from the rules:

* a token takes the roles of the non-whitespace AND newline characters it covers (a newline is
  a template/stopword carrier, never mere whitespace, so a BPE token ``.\\n`` spanning D_in and
  T_in is stopword+template, rule 6); a token of other whitespace only takes the roles of every
  character it covers (rule 3);
* template characters -> ``template``; template newlines -> ``template`` + ``stopword``;
* demonstration input -> ``stopword`` on whole-word, case-insensitive matches of the task's
  Table 12 list (punctuation by character, ``\\n`` if listed), otherwise ``content``;
* labels -> ``label``; instruction (including its ``\\n\\n`` suffix) -> ``instruction``;
  the tokenizer's BOS -> ``bos``; every test-example token -> ``test`` + its sub-kind.

Role goldens (``tp.roles``) were derived the same way from the span each character lies in:
``demo_{i}.t_in|t_out.{word|colon|newline|separator}``, ``demo_{i}.d_in.{field}``,
``demo_{i}.d_out``, ``test.t_in|x|t_out...``, ``instruction``, ``bos``.

Changing the rule from "non-whitespace characters" to "non-whitespace + newline characters"
changed NO golden of Gemma, SmolLM2 or GPT-2: none of them merges punctuation with a template
newline in these prompts (nor in 3 seeds x 5 test prompts of every paper task on the real data).
The tiktoken-style fixture (``cl100k_style_tokenizer``) does, and has its own goldens below.
"""

from __future__ import annotations

import os
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from icl_tokens.ablation.selection import key_rule
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
from icl_tokens.testing.tokenizers import cl100k_style_tokenizer

TOKENIZERS = ("gemma", "smol", "gpt2")


@pytest.fixture(scope="module")
def toks() -> dict[str, Any]:
    from tests.conftest import Tokenizers

    return Tokenizers(gemma=load_tokenizer("gemma-3-270m"), gpt2=gpt2_tokenizer(),
                      cl100k=cl100k_style_tokenizer())


# ----------------------------------------------------------------------------- category shorthands
BOS = ["bos"]
I = ["instruction"]  # noqa: E741
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


def test_straddle_token_roles(toks) -> None:
    spec = load_task("agnews").with_templates(input_template="Article:{text}\n")
    p = build_prompt(spec, [E("d", "1", text=", x.")], E("t", "1", text="y."))
    tp = categorize(p, toks["gpt2"])
    rows = [(r["text"], r["roles"]) for r in tp.table() if r["text"] == ":,"]
    # the template colon comes first in the token, then the input's comma
    assert rows == [(":,", ["demo_1.t_in.colon", "demo_1.d_in.text"])]


# ================================================================================ roles
# Hand-derived role goldens for full prompts (same token boundaries as the category goldens).
IN = ("instruction",)


def d(i: int, what: str) -> tuple[str, ...]:
    return (f"demo_{i}.{what}",)


def x(what: str) -> tuple[str, ...]:
    return (f"test.{what}",)


def _sst2_roles(sent: tuple[str, ...], instr_nl: tuple[str, ...], nl2: tuple[str, ...],
                demo2_nl: list) -> list:
    return [
        *[(t, IN) for t in (*_SST2_INSTR, *instr_nl)],
        ("Review", d(1, "t_in.word")), (":", d(1, "t_in.colon")),
        *[(t, d(1, "d_in.text")) for t in (" The", " theater", ",", " of", " course", ".")],
        ("\n", d(1, "t_in.newline")),
        *[(t, d(1, "t_out.word")) for t in sent], (":", d(1, "t_out.colon")),
        (" Positive", d(1, "d_out")),             # the label's leading space is not a role
        *[(t, d(1, "t_out.newline")) for t in nl2],
        ("Review", d(2, "t_in.word")), (":", d(2, "t_in.colon")),
        *[(t, d(2, "d_in.text")) for t in (" Into", " the", " void")],
        *demo2_nl,
        *[(t, d(2, "t_out.word")) for t in sent], (":", d(2, "t_out.colon")),
        (" Negative", d(2, "d_out")), *[(t, d(2, "t_out.newline")) for t in nl2],
        ("Review", x("t_in.word")), (":", x("t_in.colon")),
        *[(t, x("x.text")) for t in (" the", " plot", ".")], ("\n", x("t_in.newline")),
        *[(t, x("t_out.word")) for t in sent],   # prefix(T_out): segment t_out_prefix
        (":", x("t_out.colon")),
    ]


def _rte_roles(hyp: tuple[str, ...], nl2: tuple[str, ...]) -> list:
    return [
        *[(t, IN) for t in (*_RTE_INSTR, *nl2)],
        *[(t, d(1, "t_in.word")) for t in hyp], (":", d(1, "t_in.colon")),
        *[(t, d(1, "d_in.hypothesis")) for t in (" It", " rains", ".")],
        ("\n", d(1, "t_in.newline")),
        # " Prem": its space is the template's separator, but a token with letters takes the
        # roles of its non-whitespace characters only -> word
        (" Prem", d(1, "t_in.word")), ("ise", d(1, "t_in.word")), (":", d(1, "t_in.colon")),
        *[(t, d(1, "d_in.premise")) for t in (" The", " sky", " is", " dark", " and", " wet", ".")],
        ("\n", d(1, "t_in.newline")),
        ("Answer", d(1, "t_out.word")), (":", d(1, "t_out.colon")), (" True", d(1, "d_out")),
        *[(t, d(1, "t_out.newline")) for t in nl2],
        *[(t, x("t_in.word")) for t in hyp], (":", x("t_in.colon")),
        *[(t, x("x.hypothesis")) for t in (" Cats", " pur", "r", ".")],
        ("\n", x("t_in.newline")),
        (" Prem", x("t_in.word")), ("ise", x("t_in.word")), (":", x("t_in.colon")),
        *[(t, x("x.premise")) for t in (" Cats", " are", " into", " the", " sun", ".")],
        ("\n", x("t_in.newline")),
        ("Answer", x("t_out.word")), (":", x("t_out.colon")),
    ]


ROLE_GOLDENS = {
    ("sst2", "gemma"): [
        ("<bos>", ("bos",)),
        # demo 2: the input's "\n" and the template's "\n" are ONE token: both roles, in order
        *_sst2_roles(("Sentiment",), ("\n\n",), ("\n\n",),
                     [("\n\n", ("demo_2.d_in.text", "demo_2.t_in.newline"))]),
    ],
    ("sst2", "smol"): _sst2_roles(("Sent", "iment"), ("\n", "\n"), ("\n", "\n"),
                                  [("\n", d(2, "d_in.text")), ("\n", d(2, "t_in.newline"))]),
    ("rte", "gemma"): [("<bos>", ("bos",)), *_rte_roles(("Hyp", "othesis"), ("\n\n",))],
    ("rte", "smol"): _rte_roles(("Hyp", "othesis"), ("\n", "\n")),
    ("rte", "gpt2"): _rte_roles(("Hyp", "ot", "hesis"), ("\n", "\n")),
}
ROLE_GOLDENS[("sst2", "gpt2")] = list(ROLE_GOLDENS[("sst2", "smol")])


def assert_role_golden(tp, expected) -> None:
    got = [(r["text"], tuple(r["roles"])) for r in tp.table()]
    assert [t for t, _ in got] == [t for t, _ in expected], "tokenization changed"
    diffs = [(i, t, g, w) for i, ((t, g), (_, w)) in enumerate(zip(got, expected)) if g != w]
    assert not diffs, "role mismatches (pos, token, got, expected):\n" + "\n".join(
        map(repr, diffs))


@pytest.mark.parametrize("task,tok_name", list(ROLE_GOLDENS))
def test_golden_roles(task: str, tok_name: str, toks) -> None:
    case, _ = GOLDENS[task]
    tp = categorize(build(case), toks[tok_name])
    assert_role_golden(tp, ROLE_GOLDENS[(task, tok_name)])
    assert tp.roles == tuple(tuple(r) for _, r in ROLE_GOLDENS[(task, tok_name)])


def test_has_role(toks) -> None:
    tp = categorize(build(RTE), toks["gemma"])
    text = [tp.prompt.text[s:e] if e > s else tp.tokens[i] for i, (s, e) in enumerate(tp.offsets)]
    sel = lambda pat: [text[i] for i in np.flatnonzero(tp.has_role(pat))]  # noqa: E731
    assert sel("demo_*.t_out.colon") == [":"]
    assert sel("*.t_out.*") == ["Answer", ":", "\n\n", "Answer", ":"]
    assert sel("demo_1.d_out") == [" True"]
    assert sel("bos") == ["<bos>"]
    assert sel("test.x.premise") == [" Cats", " are", " into", " the", " sun", "."]
    assert sel("*.t_in.separator") == []       # the space before "Premise" merged into " Prem"
    assert sel("nothing*") == []
    assert (tp.has_role("test.*") == tp.is_test).all()
    assert (tp.has_role("instruction") == tp.has("instruction")).all()
    assert tp.has_role("*").all() and tp.has_role("*").dtype == bool
    bare = categorize(build(RTE), toks["gemma"])
    bare.roles = ()
    with pytest.raises(ValueError, match="no roles"):
        bare.has_role("*")


def test_table_schema(toks) -> None:
    tp = categorize(build(SST2), toks["gemma"])
    rows = tp.table()
    # the CLI JSON contract: existing keys unchanged in name and order, roles appended
    assert all(list(r) == ["id", "text", "start", "end", "categories", "roles"] for r in rows)
    assert rows[0] == {"id": tp.input_ids[0], "text": "<bos>", "start": 0, "end": 0,
                       "categories": ["bos"], "roles": ["bos"]}
    assert all(isinstance(r["roles"], list) and r["roles"] for r in rows)


# ====================================================== tiktoken-style BPE: merged ".\n" tokens
# cl100k's pre-tokenizer keeps punctuation with the newlines after it (" ?[^\s\p{L}\p{N}]+
# [\r\n]*"), so an input's final "." and T_in's "\n" are ONE token. Rule 6: STOP + TEMP (the
# "." is a stopword match, the "\n" a template newline). Before the newline rule, only the "."
# counted and the token was stopword-only: hidden under -STOP and under +TEMP.
_SST2_INSTR_CL = ("Classify", *_SST2_INSTR[2:-1], ".\n\n")
_RTE_INSTR_CL = ("Classify", *_RTE_INSTR[2:3], " entailment", *_RTE_INSTR[5:-1], ".\n\n")
SST2_CL = ("sst2", [E("d1", "1", text="The film is a great one."),
                    E("d2", "0", text="Dull, of course .")],
           E("t", "0", text="the plot."))
GOLDEN_SST2_CL100K = [
    *instr(*_SST2_INSTR_CL),            # the instruction's "." + "\n\n": instruction only
    ("Review", T), (":", T), (" The", S), (" film", C), (" is", C), (" a", C), (" great", C),
    (" one", C),
    (".\n", TS),              # d_in "." (stopword) + T_in "\n" (template + stopword)
    ("Sentiment", T), (":", T), (" Positive", L), ("\n\n", TS),
    ("Review", T), (":", T),
    (" ", T),                 # a lone template space (the BPE has no " D"): whitespace-only
    ("D", C), ("ull", C), (",", C), (" of", S), (" c", C), ("o", C), ("u", C), ("r", C),
    ("se", C),
    (" .\n", TS),             # the input's space, its ".", and the template "\n"
    ("Sentiment", T), (":", T), (" Negative", L), ("\n\n", TS),
    ("Review", XT), (":", XT), (" the", XS), (" plot", XC),
    (".\n", XTS),             # in the test example too
    ("Sentiment", XT), (":", XT),
]
ROLES_SST2_CL100K = [
    *[(t, IN) for t in _SST2_INSTR_CL],
    ("Review", d(1, "t_in.word")), (":", d(1, "t_in.colon")),
    *[(t, d(1, "d_in.text")) for t in (" The", " film", " is", " a", " great", " one")],
    (".\n", ("demo_1.d_in.text", "demo_1.t_in.newline")),
    ("Sentiment", d(1, "t_out.word")), (":", d(1, "t_out.colon")), (" Positive", d(1, "d_out")),
    ("\n\n", d(1, "t_out.newline")),
    ("Review", d(2, "t_in.word")), (":", d(2, "t_in.colon")),
    (" ", d(2, "t_in.separator")),
    *[(t, d(2, "d_in.text")) for t in ("D", "ull", ",", " of", " c", "o", "u", "r", "se")],
    (" .\n", ("demo_2.d_in.text", "demo_2.t_in.newline")),   # the space is no role carrier
    ("Sentiment", d(2, "t_out.word")), (":", d(2, "t_out.colon")), (" Negative", d(2, "d_out")),
    ("\n\n", d(2, "t_out.newline")),
    ("Review", x("t_in.word")), (":", x("t_in.colon")), (" the", x("x.text")),
    (" plot", x("x.text")), (".\n", ("test.x.text", "test.t_in.newline")),
    ("Sentiment", x("t_out.word")), (":", x("t_out.colon")),
]

GOLDEN_RTE_CL100K = [
    *instr(*_RTE_INSTR_CL),
    ("Hypothesis", T), (":", T), (" It", C), (" rains", C), (".\n", TS),
    (" Premise", T),          # the separator space merged with the word: template
    (":", T), (" The", S), (" sky", C), (" is", C), (" dark", C), (" and", S), (" wet", C),
    (".\n", TS), ("Answer", T), (":", T), (" True", L), ("\n\n", TS),
    ("Hypothesis", XT), (":", XT), (" Cats", XC), (" purr", XC), (".\n", XTS),
    (" Premise", XT), (":", XT), (" Cats", XC), (" are", XC), (" into", XS), (" the", XS),
    (" s", XC), ("u", XC), ("n", XC), (".\n", XTS), ("Answer", XT), (":", XT),
]
ROLES_RTE_CL100K = [
    *[(t, IN) for t in _RTE_INSTR_CL],
    ("Hypothesis", d(1, "t_in.word")), (":", d(1, "t_in.colon")),
    *[(t, d(1, "d_in.hypothesis")) for t in (" It", " rains")],
    (".\n", ("demo_1.d_in.hypothesis", "demo_1.t_in.newline")),
    (" Premise", d(1, "t_in.word")), (":", d(1, "t_in.colon")),
    *[(t, d(1, "d_in.premise")) for t in (" The", " sky", " is", " dark", " and", " wet")],
    (".\n", ("demo_1.d_in.premise", "demo_1.t_in.newline")),
    ("Answer", d(1, "t_out.word")), (":", d(1, "t_out.colon")), (" True", d(1, "d_out")),
    ("\n\n", d(1, "t_out.newline")),
    ("Hypothesis", x("t_in.word")), (":", x("t_in.colon")),
    *[(t, x("x.hypothesis")) for t in (" Cats", " purr")],
    (".\n", ("test.x.hypothesis", "test.t_in.newline")),
    (" Premise", x("t_in.word")), (":", x("t_in.colon")),
    *[(t, x("x.premise")) for t in (" Cats", " are", " into", " the", " s", "u", "n")],
    (".\n", ("test.x.premise", "test.t_in.newline")),
    ("Answer", x("t_out.word")), (":", x("t_out.colon")),
]


@pytest.mark.parametrize("case,cats,roles", [
    (SST2_CL, GOLDEN_SST2_CL100K, ROLES_SST2_CL100K),
    (RTE, GOLDEN_RTE_CL100K, ROLES_RTE_CL100K),
], ids=["sst2", "rte"])
def test_golden_cl100k(case, cats, roles, toks) -> None:
    tp = categorize(build(case), toks["cl100k"])
    assert_golden(tp, cats)
    assert_role_golden(tp, roles)


def _merged(tp) -> list[int]:
    """Positions of tokens holding an input's "." together with a template newline."""
    return [i for i, (s, e) in enumerate(tp.offsets) if tp.prompt.text[s:e].strip(" ") == ".\n"]


def test_merged_newline_token_is_stop_and_temp(toks) -> None:
    tp = categorize(build(SST2_CL), toks["cl100k"])
    merged = _merged(tp)
    assert len(merged) == 3                     # two demonstrations and the test example
    *demo, test = merged
    for i in demo:
        assert tp.categories(i) == ["template", "stopword"]          # CATEGORIES order
        assert tp.table()[i]["categories"] == ["template", "stopword"]
        assert tp.codes[i] & FLAG_NEWLINE and not tp.codes[i] & FLAG_COLON
    assert tp.categories(test) == ["template", "stopword", "test"]
    assert tp.roles[demo[0]] == ("demo_1.d_in.text", "demo_1.t_in.newline")
    assert tp.roles[test] == ("test.x.text", "test.t_in.newline")
    assert [int(tp.demo[i]) for i in merged] == [0, 1, -1]
    assert tp.has_role("*.t_in.newline")[merged].all()
    assert tp.has_role("*.d_in.text")[demo].all()


def test_merged_newline_token_visible_under_minus_stop_and_plus_temp(toks) -> None:
    tp = categorize(build(SST2_CL), toks["cl100k"])
    merged = _merged(tp)
    minus_stop = key_rule(tp.codes, {"stopword"})           # -STOP: stopwords hidden
    plus_temp = key_rule(tp.codes, {"stopword", "content"})  # +TEMP: only templates kept
    assert not minus_stop[merged].any()
    assert not plus_temp[merged].any()
    # ... while a plain stopword is hidden under both, and content under +TEMP
    text = [tp.prompt.text[s:e] if tp.demo[i] >= 0 else "" for i, (s, e) in enumerate(tp.offsets)]
    of = text.index(" of")                      # the demonstration's, not the instruction's
    film = text.index(" film")
    assert minus_stop[of] and plus_temp[of] and plus_temp[film] and not minus_stop[film]
    # the same "." as its own token (GPT-2 splits "." and "\n") IS hidden under -STOP
    tg = categorize(build(SST2_CL), toks["gpt2"])
    dots = [i for i, (s, e) in enumerate(tg.offsets)
            if tg.prompt.text[s:e] in (".", " .") and tg.demo[i] >= 0]
    assert len(dots) == 2 and key_rule(tg.codes, {"stopword"})[dots].all()


def test_merged_question_mark_newline_token(toks) -> None:
    # TREC does not list "?": the "?" of "?\n" is content, so the token is TEMP + STOP + CONT
    tp = categorize(build(TREC), toks["cl100k"])
    rows = [r for r in tp.table() if r["text"] == "?\n"]
    assert [r["categories"] for r in rows] == [
        ["template", "stopword", "content"], ["template", "stopword", "content"],
        ["template", "stopword", "content", "test"]]
    assert [r["roles"] for r in rows] == [
        ["demo_1.d_in.text", "demo_1.t_in.newline"], ["demo_2.d_in.text", "demo_2.t_in.newline"],
        ["test.x.text", "test.t_in.newline"]]
    i = tp.table().index(rows[0])
    assert not key_rule(tp.codes, {"stopword"})[i]
    assert not key_rule(tp.codes, {"content"})[i]
    assert key_rule(tp.codes, {"template", "stopword", "content"})[i]


def test_space_newline_token_keeps_newline_categories(toks) -> None:
    # an input ending in a space: " \n" is whitespace-only, but its newline decides (template +
    # stopword); its input space adds no "content" (before the newline rule it did)
    spec = load_task("sst2")
    p = build_prompt(spec, [E("d", "1", text="ok. ")], E("t", "1", text="fine"))
    tp = categorize(p, toks["cl100k"])
    pos = [i for i, (s, e) in enumerate(tp.offsets) if p.text[s:e] == " \n"]
    assert len(pos) == 1
    assert tp.categories(pos[0]) == ["template", "stopword"]
    assert tp.roles[pos[0]] == ("demo_1.t_in.newline",)
    # GPT-2 splits them: the space alone is whitespace-only -> the input's content
    tg = categorize(p, toks["gpt2"])
    rows = [(r["text"], r["categories"], r["roles"]) for i, r in enumerate(tg.table())
            if r["text"].isspace() and tg.demo[i] == 0]
    assert rows[:2] == [(" ", ["content"], ["demo_1.d_in.text"]),
                        ("\n", ["template", "stopword"], ["demo_1.t_in.newline"])]


_TOK_FILE = Path(__file__).resolve().parents[1] / "icl_tokens" / "testing" / "tokenizers.py"
_BUILD_SCRIPT = f"""
import hashlib, importlib.util
spec = importlib.util.spec_from_file_location("tk", {str(_TOK_FILE)!r})
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
print(hashlib.sha256(mod._backend_json(1000).encode()).hexdigest())
"""


def test_cl100k_fixture_deterministic_quick_and_offsets() -> None:
    import hashlib

    from icl_tokens.testing import tokenizers as tk

    t0 = time.perf_counter()
    a = tk._backend_json.__wrapped__(1000)    # a fresh training, bypassing the cache
    assert time.perf_counter() - t0 < 2.0
    b = tk._backend_json.__wrapped__(1000)
    assert a == b
    # ... and in another process (other hash seeds)
    out = subprocess.run([sys.executable, "-c", _BUILD_SCRIPT], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == hashlib.sha256(a.encode()).hexdigest()
    t1, t2 = cl100k_style_tokenizer(), cl100k_style_tokenizer()
    text = "Review: a dull film .\nSentiment: Negative\n\nReview: It is the best.\nSentiment:"
    e1 = t1(text, return_offsets_mapping=True)
    assert e1["input_ids"] == t2(text)["input_ids"]
    pieces = [text[s:e] for s, e in e1["offset_mapping"]]
    assert pieces[5] == " .\n" and pieces[-3] == ".\n"       # single merged tokens
    assert "".join(pieces) == text                            # character offsets
    assert t1.decode(e1["input_ids"]) == text
    assert t1.convert_ids_to_tokens(e1["input_ids"])[5] == "Ġ.Ċ"
    # non-ASCII: byte-level pieces of "é" share its character span; nothing runs past the text
    e2 = t1("Café .\nX", return_offsets_mapping=True)
    assert max(e for _, e in e2["offset_mapping"]) == len("Café .\nX")
    assert t1.decode(e2["input_ids"]) == "Café .\nX"
    # no special token unless asked; with bos=True a leading <|endoftext|> at (0, 0)
    assert t1.bos_token == "<|endoftext|>" and t1.bos_token_id not in e1["input_ids"]
    tb = cl100k_style_tokenizer(bos=True)
    eb = tb(text, return_offsets_mapping=True)
    assert eb["input_ids"] == [tb.bos_token_id, *e1["input_ids"]]
    assert eb["offset_mapping"][0] == (0, 0)
    tp = categorize(build(SST2_CL), tb)
    assert tp.categories(0) == ["bos"] and tp.roles[0] == ("bos",)


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
    # roles: one non-empty, duplicate-free tuple per token, agreeing with the categories
    # (both come from the same characters)
    assert len(tp.roles) == n
    for i, roles in enumerate(tp.roles):
        cats = set(tp.categories(i))
        assert roles and len(set(roles)) == len(roles), (i, roles)
        kinds = {r.split(".")[1] if "." in r else r for r in roles}
        assert ("template" in cats) == bool(kinds & {"t_in", "t_out"}), (i, roles, cats)
        assert ("label" in cats) == ("d_out" in kinds), (i, roles, cats)
        assert ("instruction" in cats) == ("instruction" in kinds), (i, roles, cats)
        assert ("bos" in cats) == (roles == ("bos",)), (i, roles, cats)
        assert ("test" in cats) == any(r.startswith("test.") for r in roles), (i, roles, cats)
        if "content" in cats:
            assert kinds & {"d_in", "x"}, (i, roles, cats)
        for r in roles:
            if r.split(".")[1:2] in (["t_in"], ["t_out"]):
                assert r.rsplit(".", 1)[1] in ("word", "colon", "newline", "separator"), r
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


@pytest.mark.parametrize("tok_name", [*TOKENIZERS, "cl100k"])
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
