"""Tests for icl_tokens.ablation.conditions: E1 conditions (paper-spec §6) and the key rule (§2.2 rule 6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from icl_tokens.categorize import BITS, categorize
from icl_tokens.ablation.conditions import (
    ALIASES,
    ALWAYS_VISIBLE,
    CONDITIONS,
    KINDS,
    PAPER_ORDER,
    ZERO_SHOT,
    Knockout,
    condition_knockout,
    custom_knockout,
    hidden_categories,
    key_hidden,
    parse_conditions,
    resolve_condition,
)
from icl_tokens.models import gpt2_tokenizer, load_tokenizer
from icl_tokens.prompts import build_prompt
from icl_tokens.tasks import Example, load_task


@pytest.fixture(scope="module")
def gemma():
    return load_tokenizer("gemma-3-270m")


@pytest.fixture(scope="module")
def gpt2():
    return gpt2_tokenizer()


def sst2_prompt():
    demos = [Example("d1", {"text": "The theater, of course."}, "1"),
             Example("d2", {"text": "Into the void\n"}, "0")]
    return build_prompt(load_task("sst2"), demos, Example("t", {"text": "the plot."}, "0"))


def straddle_prompt():
    """SST-2 with "Review:{text}": the token ":," is template + content (demo) ."""
    spec = load_task("sst2").with_templates(input_template="Review:{text}\n")
    return build_prompt(spec, [Example("d", {"text": ", the end."}, "1")],
                        Example("t", {"text": ",ok."}, "1"))


@pytest.fixture(scope="module", params=["gemma", "gpt2"])
def tp(request, gemma, gpt2):
    return categorize(sst2_prompt(), gemma if request.param == "gemma" else gpt2)


# ------------------------------------------------------------------ conditions (paper-spec §6 E1)
# Visibility to the test example, columns as in the E1 table:
#   CONT, STOP (stopwords in D_in), TEMP (template words and ":"), "\n" (template+stopword), D_out
V, H = True, False
E1_TABLE = {
    "standard":   {"cont": V, "stop": V, "temp": V, "nl": V, "label": V},
    "minus_cont": {"cont": H, "stop": V, "temp": V, "nl": V, "label": V},
    "minus_stop": {"cont": V, "stop": H, "temp": V, "nl": V, "label": V},
    "minus_temp": {"cont": V, "stop": V, "temp": H, "nl": V, "label": V},
    "only_cont":  {"cont": V, "stop": H, "temp": H, "nl": H, "label": V},
    "only_stop":  {"cont": H, "stop": V, "temp": H, "nl": V, "label": V},
    "only_temp":  {"cont": H, "stop": H, "temp": V, "nl": V, "label": V},
    "only_label": {"cont": H, "stop": H, "temp": H, "nl": H, "label": V},
}
HIDDEN_KINDS = {
    "standard": set(), "minus_cont": {"content"}, "minus_stop": {"stopword"},
    "minus_temp": {"template"}, "only_cont": {"template", "stopword"},
    "only_stop": {"template", "content"}, "only_temp": {"stopword", "content"},
    "only_label": {"template", "stopword", "content"},
}
COLUMN = {("content",): "cont", ("stopword",): "stop", ("template",): "temp",
          ("stopword", "template"): "nl", ("label",): "label"}


@pytest.mark.parametrize("cond", list(E1_TABLE))
def test_named_condition_hidden_kinds(cond: str) -> None:
    assert hidden_categories(cond) == HIDDEN_KINDS[cond]
    assert CONDITIONS[resolve_condition(cond)] == HIDDEN_KINDS[cond]


@pytest.mark.parametrize("cond", list(E1_TABLE))
def test_named_condition_key_visibility(cond: str, tp) -> None:
    ko = condition_knockout(tp, cond)
    row = E1_TABLE[cond]
    seen_cols = set()
    for i in range(len(tp)):
        cats = tuple(sorted(tp.categories(i)))
        if tp.demo[i] >= 0:
            col = COLUMN[cats]
            seen_cols.add(col)
            assert ko.key[i] == (not row[col]), (i, cats, cond)
        else:  # bos, instruction, test: never hidden
            assert not ko.key[i], (i, cats, cond)
    assert seen_cols == {"cont", "stop", "temp", "nl", "label"}
    # queries are exactly the test tokens
    assert np.array_equal(ko.query, tp.has("test"))
    assert ko.query_generated
    ko.validate()
    assert ko.is_empty == (cond == "standard")


def test_newline_rule_explicit(gemma) -> None:
    """A template newline (template+stopword) is hidden only if BOTH kinds are hidden."""
    tp = categorize(sst2_prompt(), gemma)
    nl = [i for i in range(len(tp)) if tp.demo[i] >= 0
          and tp.categories(i) == ["template", "stopword"]]
    assert nl
    for hidden in ([], ["template"], ["stopword"], ["content"], ["template", "content"],
                   ["stopword", "content"]):
        assert not condition_knockout(tp, hidden).key[nl].any(), hidden
    for hidden in (["template", "stopword"], ["template", "stopword", "content"]):
        assert condition_knockout(tp, hidden).key[nl].all(), hidden


def test_input_newline_is_a_plain_stopword(gpt2) -> None:
    """Byte-level BPE: the input's own "\\n" is its own token, stopword only: hidden by -STOP."""
    tp = categorize(sst2_prompt(), gpt2)
    i = [j for j in range(len(tp)) if tp.demo[j] == 1 and tp.categories(j) == ["stopword"]
         and tp.prompt.text[tp.offsets[j][0]:tp.offsets[j][1]] == "\n"]
    assert len(i) == 1
    assert condition_knockout(tp, "-stopword").key[i[0]]
    assert not condition_knockout(tp, "-template").key[i[0]]


@pytest.mark.parametrize("tok", ["gemma", "gpt2"])
def test_straddle_token_visible_if_any_kind_visible(tok, gemma, gpt2) -> None:
    tp = categorize(straddle_prompt(), gemma if tok == "gemma" else gpt2)
    (i,) = [j for j in range(len(tp)) if tp.demo[j] == 0
            and tp.prompt.text[tp.offsets[j][0]:tp.offsets[j][1]] == ":,"]
    assert tp.categories(i) == ["template", "content"]
    expect_hidden = {"icl": False, "-template": False, "-content": False, "-stopword": False,
                     "+template": False, "+content": False, "+stopword": True, "none": True}
    for cond, hid in expect_hidden.items():
        assert bool(condition_knockout(tp, cond).key[i]) == hid, cond


def test_always_visible_categories() -> None:
    assert set(ALWAYS_VISIBLE) == {"bos", "instruction", "label", "test"}
    assert KINDS == ("template", "stopword", "content")
    all_kinds = frozenset(KINDS)
    for cat in ALWAYS_VISIBLE:
        for kind in KINDS:
            code = np.array([BITS[cat] | BITS[kind], BITS[cat]])
            assert not key_hidden(code, all_kinds).any(), (cat, kind)


def test_key_hidden_synthetic() -> None:
    b = BITS
    codes = np.array([
        b["bos"], b["instruction"], b["template"], b["stopword"], b["content"], b["label"],
        b["template"] | b["stopword"], b["template"] | b["content"], b["stopword"] | b["test"],
        0,
    ])
    got = key_hidden(codes, frozenset({"template", "stopword"}))
    assert got.tolist() == [False, False, True, True, False, False, True, False, False, False]
    got = key_hidden(codes, frozenset({"template", "stopword"}), hide_bos=True)
    assert got.tolist() == [True, False, True, True, False, False, True, False, False, False]
    assert not key_hidden(codes, frozenset()).any()


def test_hide_bos(gemma, gpt2) -> None:
    tp = categorize(sst2_prompt(), gemma)
    assert tp.categories(0) == ["bos"]
    for cond in ("icl", "-content", "+template", "none"):
        plain = condition_knockout(tp, cond)
        acc = condition_knockout(tp, cond, hide_bos=True)
        assert not plain.key[0] and acc.key[0]
        assert np.array_equal(plain.key[1:], acc.key[1:])
        acc.validate()  # the test tokens still see themselves
    # no BOS on GPT-2: hide_bos changes nothing
    tp2 = categorize(sst2_prompt(), gpt2)
    assert np.array_equal(condition_knockout(tp2, "none", hide_bos=True).key,
                          condition_knockout(tp2, "none").key)


def test_query_scope(tp) -> None:
    ko = condition_knockout(tp, "-template", query_scope="last")
    assert ko.query.sum() == 1 and ko.query[-1]
    assert ko.first_query == len(tp) - 1
    with pytest.raises(ValueError, match="unknown query_scope 'all'"):
        condition_knockout(tp, "-template", query_scope="all")


# ------------------------------------------------------------------------------ dense / rows
def test_dense_extends_to_generated_tokens(tp) -> None:
    ko = condition_knockout(tp, "+template")
    n = len(tp)
    m = ko.dense()
    assert m.shape == (n, n) and m.dtype == torch.bool
    assert torch.equal(m, torch.from_numpy(np.outer(ko.query, ko.key)))
    big = ko.dense(n + 3)
    assert big.shape == (n + 3, n + 3)
    assert torch.equal(big[:n, :n], m)
    for g in range(n, n + 3):  # generated rows: restricted queries with the same hidden keys
        assert torch.equal(big[g, :n], torch.from_numpy(ko.key))
    assert not big[:, n:].any()  # generated tokens are never hidden keys
    # query_generated=False: generated rows unrestricted
    ko2 = Knockout(query=ko.query, key=ko.key, query_generated=False)
    assert not ko2.dense(n + 2)[n:].any()
    with pytest.raises(ValueError, match="asked for only"):
        ko.dense(n - 1)


def test_rows_consistent_with_dense(tp) -> None:
    n = len(tp)
    kos = [condition_knockout(tp, c) for c in ("icl", "-content", "+stopword", "none")]
    kos.append(custom_knockout(tp, queries=["content"], keys=["label"]))
    pairs = np.zeros((n, n), dtype=bool)
    pairs[n - 1, 1:3] = True
    kos.append(Knockout(query=np.zeros(n, bool), key=np.zeros(n, bool), pairs=pairs))
    kos.append(Knockout(query=kos[2].query, key=kos[2].key, query_generated=False))
    for ko in kos:
        total = n + 4
        dense = ko.dense(total)
        q = np.arange(total)
        assert torch.equal(ko.rows(q, total), dense)
        some = [n + 2, 0, n - 1, 3]
        assert torch.equal(ko.rows(some, total), dense[some])
    # pairs: overrides query/key and never extends to generated rows
    assert kos[5].first_query == n - 1
    assert not kos[5].dense(n + 2)[n:].any()


def test_validate(tp) -> None:
    n = len(tp)
    q = np.zeros(n, bool)
    k = np.zeros(n, bool)
    q[n - 1] = k[n - 1] = True
    with pytest.raises(ValueError, match="blocks query .* from itself"):
        Knockout(query=q, key=k).validate()
    # a fully masked row (every causal key of query 5 hidden) is refused too
    pairs = np.zeros((n, n), dtype=bool)
    pairs[5, :6] = True
    with pytest.raises(ValueError):
        Knockout(query=q, key=np.zeros(n, bool), pairs=pairs).validate()
    # all named conditions are valid on a real prompt
    for c in CONDITIONS:
        assert condition_knockout(tp, c).validate() is not None


# --------------------------------------------------------------------------- names & parsing
def test_resolve_condition_aliases() -> None:
    want = {"standard": "icl", "minus_temp": "-template", "minus_stop": "-stopword",
            "minus_cont": "-content", "only_temp": "+template", "only_stop": "+stopword",
            "only_cont": "+content", "only_label": "none", "zero-shot": ZERO_SHOT,
            "zero_shot": ZERO_SHOT, "temp": "+template", "stop": "+stopword",
            "cont": "+content", "temp_cont": "-stopword", "cont_stop": "-template",
            "temp_stop": "-content"}
    for alias, canon in want.items():
        assert resolve_condition(alias) == canon
    for c in PAPER_ORDER:
        assert resolve_condition(c) == c
    assert set(ALIASES) <= set(want)


def test_unknown_condition() -> None:
    with pytest.raises(ValueError) as ei:
        resolve_condition("minus_label")
    msg = str(ei.value)
    assert "unknown condition 'minus_label'" in msg
    assert "'-template'" in msg and "minus_temp" in msg


def test_parse_conditions() -> None:
    assert parse_conditions("all") == [
        "zero_shot", "+content", "+stopword", "+template",
        "icl", "-content", "-stopword", "-template", "none"]
    assert parse_conditions(" all ") == list(PAPER_ORDER)
    assert len(PAPER_ORDER) == 9
    assert parse_conditions("standard, minus_temp,icl,-template") == ["icl", "-template"]
    assert parse_conditions(["only_temp", "zero_shot"]) == ["+template", "zero_shot"]
    with pytest.raises(ValueError, match="no conditions given"):
        parse_conditions(" , ")
    with pytest.raises(ValueError, match="unknown condition 'bogus'"):
        parse_conditions("icl,bogus")


@pytest.mark.parametrize("bad,extra", [(["label"], "always visible"), (["foo"], "foo"),
                                       (["template", "test"], "always visible"),
                                       (["bos"], "hide_bos")])
def test_hidden_set_unknown_category(bad, extra, tp) -> None:
    with pytest.raises(ValueError, match=r"cannot hide categories") as ei:
        hidden_categories(bad)
    assert extra in str(ei.value)
    with pytest.raises(ValueError, match=r"cannot hide categories"):
        condition_knockout(tp, bad)
    with pytest.raises(ValueError, match=r"cannot hide categories"):
        custom_knockout(tp, hidden=bad)


def test_zero_shot_is_not_a_mask(tp) -> None:
    with pytest.raises(ValueError, match="separate prompt"):
        hidden_categories("zero_shot")
    with pytest.raises(ValueError, match="separate prompt"):
        condition_knockout(tp, "zero-shot")


def test_custom_set_name(tp) -> None:
    ko = condition_knockout(tp, ["stopword", "template"])
    assert ko.name == "hide:stopword+template"
    assert np.array_equal(ko.key, condition_knockout(tp, "+content").key)
    assert condition_knockout(tp, "+content").name == "+content"


# -------------------------------------------------------------------------------- custom
def test_custom_knockout_category_names(tp) -> None:
    n = len(tp)
    demo = tp.demo >= 0
    # default: like the named conditions
    assert np.array_equal(custom_knockout(tp, hidden={"content"}).key,
                          condition_knockout(tp, "-content").key)
    assert np.array_equal(custom_knockout(tp).query, tp.has("test"))
    # hide the demonstration labels (only possible via explicit keys)
    ko = custom_knockout(tp, keys=["label"])
    assert np.array_equal(ko.key, tp.has("label"))
    # keys by category name: demonstration tokens only (test template tokens stay visible)
    ko = custom_knockout(tp, keys=["template"])
    assert np.array_equal(ko.key, tp.has("template") & demo)
    assert not (ko.key & tp.has("test")).any()
    ko_all = custom_knockout(tp, queries=["label"], keys=["template"], demo_keys_only=False)
    assert np.array_equal(ko_all.key, tp.has("template"))
    # ... but hiding the test template from the test tokens would block queries from themselves
    with pytest.raises(ValueError, match="from itself"):
        custom_knockout(tp, keys=["template"], demo_keys_only=False)
    # queries by category name; OR of several names
    ko = custom_knockout(tp, hidden={"template"}, queries=["label", "content"])
    assert np.array_equal(ko.query, tp.has("label") | tp.has("content"))
    # boolean arrays
    qsel = np.zeros(n, bool)
    qsel[-1] = True
    ksel = np.zeros(n, bool)
    ksel[2] = True
    ko = custom_knockout(tp, queries=qsel, keys=ksel, query_generated=False, name="mine")
    assert ko.query.tolist() == qsel.tolist() and ko.key.tolist() == ksel.tolist()
    assert ko.name == "mine" and not ko.query_generated
    with pytest.raises(ValueError, match="expected"):
        custom_knockout(tp, queries=np.zeros(n + 1, bool))
    with pytest.raises(ValueError, match=r"unknown categories \['tmpl'\]"):
        custom_knockout(tp, keys=["tmpl"])
    with pytest.raises(ValueError, match=r"unknown categories"):
        custom_knockout(tp, queries=["foo"])


def test_custom_knockout_bool_list_same_as_array(tp) -> None:
    """A Bool position list and a Bool array select the same keys.

    Per the docstring only *category names* are restricted to demonstration tokens
    (``demo_keys_only``); a Bool selection is taken as given.
    """
    n = len(tp)
    sel = np.zeros(n, bool)
    sel[-2] = True  # a test-example position
    last = np.zeros(n, bool)
    last[-1] = True  # only the final token is a query, so position -2 may be hidden from it
    a = custom_knockout(tp, queries=last, keys=sel).key
    b = custom_knockout(tp, queries=last, keys=[bool(x) for x in sel]).key
    assert a[-2]
    assert a.tolist() == b.tolist()


def test_first_query(tp) -> None:
    ko = condition_knockout(tp, "-template")
    assert ko.first_query == tp.prefix_len
    assert tp.has("test")[ko.first_query] and not tp.has("test")[: ko.first_query].any()
    # a demonstration-internal mask starts inside the demonstrations
    internal = custom_knockout(tp, hidden={"template"}, queries=["content"])
    first_content = int(np.flatnonzero(tp.has("content"))[0])
    assert internal.first_query == first_content
    assert internal.first_query < tp.prefix_len
    assert tp.demo[internal.first_query] == 0
    # no restricted prompt position
    none = Knockout(query=np.zeros(len(tp), bool), key=np.ones(len(tp), bool))
    assert none.first_query is None
    assert not none.is_empty  # generated tokens are still restricted
    assert Knockout(query=np.zeros(len(tp), bool), key=np.ones(len(tp), bool),
                    query_generated=False).is_empty
