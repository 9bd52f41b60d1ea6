"""Tests for icl_tokens.ablation.conditions: E1 conditions (spec §6), the key rule (§2.2 rule 6).

The knockout machinery itself (selections, blocks, per-layer masks, prefix signatures) is tested on
synthetic items in ``tests/test_knockout.py``; this file checks the named conditions on real
categorized prompts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from icl_tokens.ablation import (
    ALIASES,
    ALWAYS_VISIBLE,
    CONDITION_LABELS,
    CONDITIONS,
    KINDS,
    PAPER_ORDER,
    SPEC_NAMES,
    TABLE2_CONDITIONS,
    ZERO_SHOT,
    Block,
    Knockout,
    Sel,
    condition_knockout,
    custom_knockout,
    hidden_categories,
    key_rule,
    knockout_for,
    parse_conditions,
    resolve_condition,
)
from icl_tokens.categorize import BITS, categorize
from icl_tokens.models import gpt2_tokenizer, load_tokenizer
from icl_tokens.prompts import build_prompt
from icl_tokens.tasks import Example, load_task
from icl_tokens.testing.tokenizers import cl100k_style_tokenizer


@pytest.fixture(scope="module")
def gemma():
    return load_tokenizer("gemma-3-270m")


@pytest.fixture(scope="module")
def gpt2():
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def cl100k():
    return cl100k_style_tokenizer()


def sst2_prompt():
    demos = [Example("d1", {"text": "The theater, of course."}, "1"),
             Example("d2", {"text": "Into the void\n"}, "0")]
    return build_prompt(load_task("sst2"), demos, Example("t", {"text": "the plot."}, "0"))


def straddle_prompt():
    """SST-2 with "Review:{text}": the token ":," is template + content (demo) ."""
    spec = load_task("sst2").with_templates(input_template="Review:{text}\n")
    return build_prompt(spec, [Example("d", {"text": ", the end."}, "1")],
                        Example("t", {"text": ",ok."}, "1"))


@pytest.fixture(scope="module", params=["gemma", "gpt2", "cl100k"])
def tp(request, gemma, gpt2, cl100k):
    tok = {"gemma": gemma, "gpt2": gpt2, "cl100k": cl100k}[request.param]
    return categorize(sst2_prompt(), tok)


# ------------------------------------------------------------------ conditions (paper-spec §6 E1)
# Visibility to the test example, columns as in the E1 table:
#   CONT, STOP (stopwords in D_in), TEMP (template words and ":"), "\n" (template+stopword), D_out
V, H = True, False
E1_TABLE = {
    "icl":          {"cont": V, "stop": V, "temp": V, "nl": V, "label": V},
    "icl-content":  {"cont": H, "stop": V, "temp": V, "nl": V, "label": V},
    "icl-stopword": {"cont": V, "stop": H, "temp": V, "nl": V, "label": V},
    "icl-template": {"cont": V, "stop": V, "temp": H, "nl": V, "label": V},
    "+content":     {"cont": V, "stop": H, "temp": H, "nl": H, "label": V},
    "+stopword":    {"cont": H, "stop": V, "temp": H, "nl": V, "label": V},
    "+template":    {"cont": H, "stop": H, "temp": V, "nl": V, "label": V},
    "none":         {"cont": H, "stop": H, "temp": H, "nl": H, "label": V},
}
HIDDEN_KINDS = {
    "icl": set(), "icl-content": {"content"}, "icl-stopword": {"stopword"},
    "icl-template": {"template"}, "+content": {"template", "stopword"},
    "+stopword": {"template", "content"}, "+template": {"stopword", "content"},
    "none": {"template", "stopword", "content"},
}
#: The paper-spec code names (and the old spellings) of the same conditions.
SPEC = {"icl": "standard", "icl-content": "minus_cont", "icl-stopword": "minus_stop",
        "icl-template": "minus_temp", "+content": "only_cont", "+stopword": "only_stop",
        "+template": "only_temp", "none": "only_label"}
OLD = {"icl-content": "-content", "icl-stopword": "-stopword", "icl-template": "-template"}
COLUMN = {("content",): "cont", ("stopword",): "stop", ("template",): "temp",
          ("stopword", "template"): "nl", ("label",): "label"}


@pytest.mark.parametrize("cond", list(E1_TABLE))
def test_named_condition_hidden_kinds(cond: str) -> None:
    assert hidden_categories(cond) == HIDDEN_KINDS[cond]
    assert CONDITIONS[resolve_condition(cond)] == HIDDEN_KINDS[cond]
    assert hidden_categories(SPEC[cond]) == HIDDEN_KINDS[cond]
    assert SPEC_NAMES[cond] == SPEC[cond]
    if cond in OLD:
        assert hidden_categories(OLD[cond]) == HIDDEN_KINDS[cond]


def test_registry_tables() -> None:
    assert set(CONDITIONS) == set(E1_TABLE)
    assert set(CONDITION_LABELS) == set(PAPER_ORDER) == set(SPEC_NAMES)
    assert set(TABLE2_CONDITIONS) == {"zero_shot", "+content", "+stopword", "+template", "none"}
    assert CONDITION_LABELS["icl"] == "Standard ICL"
    assert CONDITION_LABELS["zero_shot"] == "Zero-shot"


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
    ko.validate()
    if cond == "icl":  # nothing hidden: no block, so no restricted query either
        assert ko.is_empty and not ko.query.any() and not ko.query_generated
    else:  # queries are exactly the test tokens, and every generated token
        assert not ko.is_empty
        assert np.array_equal(ko.query, tp.has("test"))
        assert ko.query_generated
    assert ko.name == cond
    # the spec name and the old spelling resolve to the same mask and the canonical name
    for other in (SPEC[cond], OLD.get(cond, cond)):
        same = condition_knockout(tp, other)
        assert same.name == cond
        assert np.array_equal(same.key, ko.key) and np.array_equal(same.query, ko.query)


def test_knockout_for_blocks() -> None:
    """Each masked condition is one block: test + generated queries, the key rule's keys."""
    for cond in E1_TABLE:
        ko = knockout_for(cond)
        assert ko.name == cond and ko.mode == "scores"
        if cond == "icl":
            assert ko.blocks == ()
            continue
        (b,) = ko.blocks
        assert b.queries == Sel.test()
        assert b.keys == Sel.hidden_kinds(HIDDEN_KINDS[cond])
        assert b.layers is None and b.heads is None
    # hide_bos gives Standard ICL a block (BOS only)
    (b,) = knockout_for("icl", hide_bos=True).blocks
    assert b.keys == Sel.hidden_kinds((), hide_bos=True)
    # layers, heads and mode are passed to the block
    ko = knockout_for("icl-content", layers=[0, -1], heads=range(2), mode="pattern")
    assert ko.mode == "pattern"
    assert ko.blocks[0].layers == (0, -1) and ko.blocks[0].heads == (0, 1)
    assert knockout_for("icl", layers=[0]).blocks == ()
    with pytest.raises(ValueError, match="unknown knockout mode"):
        knockout_for("icl-content", mode="zero")


def test_condition_layers_and_heads(tp) -> None:
    """A layer/head-restricted condition: the same pairs, only in those layers and heads."""
    n = len(tp)
    pos = np.arange(n)
    full = condition_knockout(tp, "+template")
    ko = knockout_for("+template", layers=[-1], heads=[1]).resolve(tp, n_layers=3, n_heads=2)
    masks = ko.masks(pos, pos, 3, 2)
    assert list(masks) == [2]
    assert masks[2].shape == (2, n, n)
    assert not masks[2][0].any()
    assert np.array_equal(masks[2][1], full.dense().numpy())


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


def test_merged_newline_token_follows_the_newline_rule(cl100k) -> None:
    """cl100k-style BPE merges the input's final "." with T_in's "\\n": stopword + template,
    so the merged token is hidden only when both kinds are hidden (rule 6)."""
    tp = categorize(sst2_prompt(), cl100k)
    (i,) = [j for j in range(len(tp)) if tp.demo[j] >= 0
            and tp.prompt.text[tp.offsets[j][0]:tp.offsets[j][1]] == ".\n"]
    assert tp.categories(i) == ["template", "stopword"]
    for cond in ("icl", "icl-template", "icl-stopword", "icl-content", "+template",
                 "+stopword"):
        assert not condition_knockout(tp, cond).key[i], cond
    for cond in ("+content", "none"):
        assert condition_knockout(tp, cond).key[i], cond


def test_input_newline_is_a_plain_stopword(gpt2) -> None:
    """Byte-level BPE: the input's own "\\n" is its own token, stopword only: hidden by -STOP."""
    tp = categorize(sst2_prompt(), gpt2)
    i = [j for j in range(len(tp)) if tp.demo[j] == 1 and tp.categories(j) == ["stopword"]
         and tp.prompt.text[tp.offsets[j][0]:tp.offsets[j][1]] == "\n"]
    assert len(i) == 1
    for name in ("icl-stopword", "-stopword", "minus_stop"):
        assert condition_knockout(tp, name).key[i[0]], name
    for name in ("icl-template", "-template", "minus_temp"):
        assert not condition_knockout(tp, name).key[i[0]], name


@pytest.mark.parametrize("tok", ["gemma", "gpt2"])
def test_straddle_token_visible_if_any_kind_visible(tok, gemma, gpt2) -> None:
    tp = categorize(straddle_prompt(), gemma if tok == "gemma" else gpt2)
    (i,) = [j for j in range(len(tp)) if tp.demo[j] == 0
            and tp.prompt.text[tp.offsets[j][0]:tp.offsets[j][1]] == ":,"]
    assert tp.categories(i) == ["template", "content"]
    expect_hidden = {"icl": False, "icl-template": False, "icl-content": False,
                     "icl-stopword": False, "+template": False, "+content": False,
                     "+stopword": True, "none": True}
    for cond, hid in expect_hidden.items():
        assert bool(condition_knockout(tp, cond).key[i]) == hid, cond


def test_always_visible_categories() -> None:
    assert set(ALWAYS_VISIBLE) == {"bos", "instruction", "label", "test"}
    assert KINDS == ("template", "stopword", "content")
    all_kinds = frozenset(KINDS)
    for cat in ALWAYS_VISIBLE:
        for kind in KINDS:
            code = np.array([BITS[cat] | BITS[kind], BITS[cat]])
            assert not key_rule(code, all_kinds).any(), (cat, kind)


def test_key_rule_synthetic() -> None:
    b = BITS
    codes = np.array([
        b["bos"], b["instruction"], b["template"], b["stopword"], b["content"], b["label"],
        b["template"] | b["stopword"], b["template"] | b["content"], b["stopword"] | b["test"],
        0,
    ])
    got = key_rule(codes, frozenset({"template", "stopword"}))
    assert got.tolist() == [False, False, True, True, False, False, True, False, False, False]
    got = key_rule(codes, frozenset({"template", "stopword"}), hide_bos=True)
    assert got.tolist() == [True, False, True, True, False, False, True, False, False, False]
    assert not key_rule(codes, frozenset()).any()
    assert key_rule(codes, (), hide_bos=True).tolist() == [True] + [False] * 9


def test_hide_bos(gemma, gpt2) -> None:
    tp = categorize(sst2_prompt(), gemma)
    assert tp.categories(0) == ["bos"]
    for cond in ("icl", "icl-content", "+template", "none"):
        plain = condition_knockout(tp, cond)
        acc = condition_knockout(tp, cond, hide_bos=True)
        assert not plain.key[0] and acc.key[0]
        assert np.array_equal(plain.key[1:], acc.key[1:])
        acc.validate()  # the test tokens still see themselves
    # no BOS on GPT-2: hide_bos changes nothing
    tp2 = categorize(sst2_prompt(), gpt2)
    assert np.array_equal(condition_knockout(tp2, "none", hide_bos=True).key,
                          condition_knockout(tp2, "none").key)
    assert condition_knockout(tp2, "icl", hide_bos=True).is_empty


def test_query_scope(tp) -> None:
    ko = condition_knockout(tp, "icl-template", query_scope="last")
    assert ko.query.sum() == 1 and ko.query[-1]
    assert ko.query_generated
    assert ko.first_query() == len(tp) - 1
    assert np.array_equal(ko.key, condition_knockout(tp, "icl-template").key)
    with pytest.raises(ValueError, match="unknown query_scope 'all'"):
        condition_knockout(tp, "icl-template", query_scope="all")


# ------------------------------------------------------------------------------ dense / masks
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
    # test queries without generated tokens: generated rows unrestricted
    ko2 = Knockout((Block(Sel.test(generated=False), Sel.hidden_kinds({"stopword", "content"})),)
                   ).resolve(tp)
    assert not ko2.query_generated
    assert torch.equal(ko2.dense(), m)
    assert not ko2.dense(n + 2)[n:].any()
    with pytest.raises(ValueError, match="asked for only"):
        ko.dense(n - 1)


def test_masks_consistent_with_dense(tp) -> None:
    """Unrestricted layers/heads: every layer's mask is the dense mask's rows and columns."""
    n = len(tp)
    n_layers, n_heads = 3, 2
    kos = [condition_knockout(tp, c) for c in ("icl", "icl-content", "+stopword", "none")]
    kos.append(custom_knockout(queries=Sel.category("content"), keys=Sel.category("label"))
               .resolve(tp))
    # one (query, key) pair set: the last prompt token may not see positions 1 and 2
    kos.append(Knockout((Block(Sel.last(), Sel.positions([1, 2])),)).resolve(tp))
    kos.append(Knockout((Block(Sel.test(generated=False), Sel.hidden_kinds({"template"})),))
               .resolve(tp))
    total = n + 4
    every = np.arange(total)
    some_q = np.array([n + 2, 0, n - 1, 3, -1])  # -1: padding
    some_k = np.array([-1, n - 1, 2, 1, n + 1, 0])
    for ko in kos:
        dense = ko.dense(total).numpy()
        for q, k in ((every, every), (some_q, some_k)):
            masks = ko.masks(q, k, n_layers, n_heads)
            want = np.zeros((len(q), len(k)), dtype=bool)
            ok_q, ok_k = q >= 0, k >= 0
            want[np.ix_(ok_q, ok_k)] = dense[np.ix_(q[ok_q], k[ok_k])]
            if not want.any():
                assert masks == {}, ko.name
                continue
            assert sorted(masks) == list(range(n_layers)), ko.name
            for m in masks.values():
                assert np.array_equal(m, want), ko.name
    assert kos[0].is_empty and kos[0].masks(every, every, n_layers, n_heads) == {}
    # the single pair set: only the last prompt row, never the generated rows
    assert kos[5].first_query() == n - 1
    assert kos[5].dense(total).numpy().sum() == 2
    assert not kos[5].dense(n + 2)[n:].any()


def test_validate(tp) -> None:
    n = len(tp)
    with pytest.raises(ValueError, match="blocks query .* from itself"):
        Knockout((Block(Sel.last(), Sel.last()),)).resolve(tp)
    with pytest.raises(ValueError, match="blocks query .* from itself"):
        Knockout((Block(Sel.positions([n - 1]), Sel.positions([-1])),)).resolve(tp)
    # a query may lose every other key: its own position keeps its softmax row non-empty
    ko = Knockout((Block(Sel.positions([5]), Sel.positions(range(5))),)).resolve(tp)
    row = ko.dense().numpy()[5]
    assert row[:5].all() and not row[5:].any()
    # all named conditions are valid on a real prompt, with and without BOS hidden
    for c in CONDITIONS:
        assert condition_knockout(tp, c).validate() is not None
        assert condition_knockout(tp, c, hide_bos=True).validate() is not None


# --------------------------------------------------------------------------- names & parsing
def test_resolve_condition_aliases() -> None:
    want = {"standard": "icl", "minus_temp": "icl-template", "minus_stop": "icl-stopword",
            "minus_cont": "icl-content", "-template": "icl-template",
            "-stopword": "icl-stopword", "-content": "icl-content", "only_temp": "+template",
            "only_stop": "+stopword", "only_cont": "+content", "only_label": "none",
            "zero-shot": ZERO_SHOT, "zeroshot": ZERO_SHOT, "temp": "+template",
            "stop": "+stopword", "cont": "+content", "temp_cont": "icl-stopword",
            "cont_stop": "icl-template", "temp_stop": "icl-content"}
    for alias, canon in want.items():
        assert resolve_condition(alias) == canon, alias
    for c in PAPER_ORDER:
        assert resolve_condition(c) == c
        assert resolve_condition(SPEC_NAMES[c]) == c
    assert set(ALIASES) <= set(want)
    assert not set(ALIASES) & set(PAPER_ORDER)


def test_unknown_condition() -> None:
    with pytest.raises(ValueError) as ei:
        resolve_condition("minus_label")
    msg = str(ei.value)
    assert "unknown condition 'minus_label'" in msg
    assert "'icl-template'" in msg and "minus_temp" in msg and "-template" in msg


def test_parse_conditions() -> None:
    assert parse_conditions("all") == [
        "zero_shot", "+content", "+stopword", "+template",
        "icl", "icl-content", "icl-stopword", "icl-template", "none"]
    assert parse_conditions(" all ") == list(PAPER_ORDER)
    assert parse_conditions(["all"]) == list(PAPER_ORDER)
    assert len(PAPER_ORDER) == 9
    assert parse_conditions("standard, minus_temp,icl,-template,icl-template") == [
        "icl", "icl-template"]
    assert parse_conditions(["only_temp", "zero_shot", "+template"]) == ["+template", "zero_shot"]
    assert parse_conditions("cont_stop,temp_stop,temp_cont") == [
        "icl-template", "icl-content", "icl-stopword"]
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
        knockout_for(bad)
    with pytest.raises(ValueError, match=r"cannot hide categories"):
        custom_knockout(hidden=bad)
    with pytest.raises(ValueError, match=r"cannot hide categories"):
        Sel.hidden_kinds(bad)


def test_zero_shot_is_not_a_mask(tp) -> None:
    with pytest.raises(ValueError, match="separate prompt"):
        hidden_categories("zero_shot")
    with pytest.raises(ValueError, match="separate prompt"):
        condition_knockout(tp, "zero-shot")
    with pytest.raises(ValueError, match="separate prompt"):
        knockout_for(ZERO_SHOT)


def test_custom_set_name(tp) -> None:
    ko = condition_knockout(tp, ["stopword", "template"])
    assert ko.name == "hide:stopword+template"
    assert np.array_equal(ko.key, condition_knockout(tp, "+content").key)
    assert condition_knockout(tp, "+content").name == "+content"
    assert knockout_for(frozenset()).name == "hide:"
    assert knockout_for(frozenset()).blocks == ()


# -------------------------------------------------------------------------------- custom
def test_custom_knockout_selections(tp) -> None:
    n = len(tp)
    demo = tp.demo >= 0
    # default: like the named conditions
    assert np.array_equal(custom_knockout(hidden={"content"}).resolve(tp).key,
                          condition_knockout(tp, "icl-content").key)
    dflt = custom_knockout(hidden={"content"}).resolve(tp)
    assert np.array_equal(dflt.query, tp.has("test")) and dflt.query_generated
    assert custom_knockout().resolve(tp).is_empty  # nothing hidden
    assert custom_knockout(hide_bos=True).resolve(tp).key.sum() == int(tp.has("bos").sum())
    # hide the demonstration labels (only possible via explicit keys)
    ko = custom_knockout(keys=Sel.category("label")).resolve(tp)
    assert np.array_equal(ko.key, tp.has("label"))
    # explicit keys are OR-ed with the key rule of `hidden`
    ko = custom_knockout(hidden={"content"}, keys=Sel.category("label")).resolve(tp)
    assert np.array_equal(ko.key, tp.has("label") | condition_knockout(tp, "icl-content").key)
    # category selections are not restricted to the demonstrations: select the part too
    ko = custom_knockout(keys=Sel.category("template") & Sel.part("demo")).resolve(tp)
    assert np.array_equal(ko.key, tp.has("template") & demo)
    assert not (ko.key & tp.has("test")).any()
    ko_all = custom_knockout(queries=Sel.category("label"), keys=Sel.category("template"))
    assert np.array_equal(ko_all.resolve(tp).key, tp.has("template"))
    # ... but hiding the test template from the test tokens would block queries from themselves
    with pytest.raises(ValueError, match="from itself"):
        custom_knockout(keys=Sel.category("template")).resolve(tp)
    # queries by category; several names are an OR
    ko = custom_knockout(hidden={"template"}, queries=Sel.category("label", "content")).resolve(tp)
    assert np.array_equal(ko.query, tp.has("label") | tp.has("content"))
    assert not ko.query_generated
    ko2 = custom_knockout(hidden={"template"},
                          queries=Sel.category("label") | Sel.category("content")).resolve(tp)
    assert np.array_equal(ko2.query, ko.query)
    # boolean arrays
    qsel = np.zeros(n, bool)
    qsel[-1] = True
    ksel = np.zeros(n, bool)
    ksel[2] = True
    ko = custom_knockout(queries=Sel.positions(qsel), keys=Sel.positions(ksel), name="mine",
                         mode="pattern").resolve(tp)
    assert ko.query.tolist() == qsel.tolist() and ko.key.tolist() == ksel.tolist()
    assert ko.name == "mine" and ko.mode == "pattern" and not ko.query_generated
    # layers and heads reach the block
    (b,) = custom_knockout(hidden={"content"}, layers=[1], heads=[0]).blocks
    assert b.layers == (1,) and b.heads == (0,)
    with pytest.raises(ValueError, match="has shape"):
        custom_knockout(queries=Sel.positions(np.zeros(n + 1, bool))).resolve(tp)
    with pytest.raises(ValueError, match=r"unknown categories \['tmpl'\]"):
        custom_knockout(keys=Sel.category("tmpl"))
    with pytest.raises(ValueError, match=r"unknown categories"):
        custom_knockout(queries=Sel.category("foo"))


def test_custom_knockout_bool_list_same_as_array(tp) -> None:
    """A Bool position list, a Bool array and an index list select the same keys."""
    n = len(tp)
    sel = np.zeros(n, bool)
    sel[-2] = True  # a test-example position
    # only the final token is a query, so position -2 may be hidden from it
    a = custom_knockout(queries=Sel.last(), keys=Sel.positions(sel)).resolve(tp).key
    b = custom_knockout(queries=Sel.last(),
                        keys=Sel.positions([bool(x) for x in sel])).resolve(tp).key
    c = custom_knockout(queries=Sel.last(), keys=Sel.positions([n - 2])).resolve(tp).key
    assert a[-2] and a.sum() == 1
    assert a.tolist() == b.tolist() == c.tolist()


def test_first_query(tp) -> None:
    ko = condition_knockout(tp, "icl-template")
    assert ko.first_query() == tp.prefix_len
    assert tp.has("test")[ko.first_query()] and not tp.has("test")[: ko.first_query()].any()
    # a demonstration-internal mask starts inside the demonstrations
    internal = custom_knockout(hidden={"template"}, queries=Sel.category("content")).resolve(tp)
    first_content = int(np.flatnonzero(tp.has("content"))[0])
    assert internal.first_query() == first_content
    assert internal.first_query() < tp.prefix_len
    assert tp.demo[internal.first_query()] == 0
    # no restricted prompt position
    none = Knockout((Block(Sel.generated(), Sel.everything()),)).resolve(tp)
    assert none.first_query() is None
    assert not none.is_empty  # generated tokens are still restricted
    assert Knockout((Block(Sel.nothing(), Sel.everything()),)).resolve(tp).is_empty
