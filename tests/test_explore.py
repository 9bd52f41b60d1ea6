"""The knockout explorer without a browser: selection → knockout (equal to the hand-written one,
and to its printed code), one update = the equivalent ``score_items`` call (checked against the
naive engine), the recorded attention equals a full forward's, the prefix cache rule, the widget
driven through its controls, the static HTML, and one Gemma-3 integration test."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

from icl_tokens.ablation import Block, Knockout, Sel, knockout_for
from icl_tokens.aggregation.attention_mass import attention_mass
from icl_tokens.aggregation.block import aggregation_knockout
from icl_tokens.engine import score_items
from icl_tokens.explore import (
    ExplorerState,
    Selection,
    knockout_source,
    save_view,
    static_view,
    update_view,
)
from icl_tokens.tasks import Example
from icl_tokens.testing.tiny import tiny_model

DEMOS = (Example("d0", {"text": "a warm and funny film ."}, "1"),
         Example("d1", {"text": "the plot is a mess of the worst kind ."}, "0"),
         Example("d2", {"text": "tender , bright and clever ."}, "1"))
TEST = Example("t0", {"text": "a dull and lifeless story ."}, "0")

SELECTIONS = [
    Selection(),
    Selection(kinds=frozenset({"content"})),
    Selection(kinds=frozenset({"stopword", "content"}), layers=(0,), heads=(1, 2)),
    Selection(kinds=frozenset({"template"}), queries="last"),
    Selection(categories=frozenset({"bos", "label"})),
    Selection(roles=("demo_*.t_out.colon",), demos=(1,), tokens=(3, 5)),
    Selection(kinds=frozenset({"content"}), aggregation="all"),
    Selection(aggregation="t_out", layers=(1,)),
    Selection(kinds=frozenset({"template"}), mode="pattern"),
]


def _exec(source: str) -> Knockout | None:
    scope: dict = {}
    exec(source, scope)  # noqa: S102 - the code the explorer prints
    return scope["knockout"]


# ---------------------------------------------------------------------- selection → knockout


def test_kinds_only_is_knockout_for():
    for kinds in ({"content"}, {"stopword", "content"}, {"template"}):
        sel = Selection(kinds=frozenset(kinds), layers=(0, 1), heads=(2,), queries="last")
        want = knockout_for(kinds, layers=(0, 1), heads=(2,), query_scope="last")
        assert sel.knockout().blocks == want.blocks
    assert Selection(kinds=frozenset({"content"})).knockout() == knockout_for({"content"})
    bos = Selection(kinds=frozenset({"content"}), categories=frozenset({"bos"})).knockout()
    assert bos.blocks == knockout_for({"content"}, hide_bos=True).blocks
    assert Selection().knockout() is None


def test_composite_selection_is_the_hand_written_block():
    sel = Selection(kinds=frozenset({"content"}), categories=frozenset({"label"}),
                    roles=("demo_*.t_out.colon",), demos=(2, 0), tokens=(7, 3), layers=(1,))
    keys = (Sel.hidden_kinds({"content"}) | Sel.category("label")
            | Sel.role("demo_*.t_out.colon") | Sel.demo(0, 2) | Sel.positions([3, 7]))
    assert sel.knockout().blocks == (Block(Sel.test(), keys, layers=(1,)),)
    agg = Selection(kinds=frozenset({"content"}), aggregation="all", layers=(0,)).knockout()
    assert agg.blocks == (knockout_for({"content"}, layers=(0,)).blocks
                          + aggregation_knockout("all", layers=(0,)).blocks)


@pytest.mark.parametrize("sel", SELECTIONS, ids=lambda s: s.name)
def test_as_code_round_trips(sel):
    ko = sel.knockout()
    assert _exec(knockout_source(ko)) == ko
    mask_sel = Knockout((Block(Sel.test(), Sel.positions(np.array([True, False, True]))),))
    assert _exec(knockout_source(mask_sel)) == mask_sel


def test_bad_selections_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="kinds are"):
        Selection(kinds=frozenset({"label"}))
    with pytest.raises(ValueError, match="go in kinds"):
        Selection(categories=frozenset({"content"}))
    with pytest.raises(ValueError, match="query scope"):
        Selection(queries="demo")
    with pytest.raises(ValueError, match="aggregation block"):
        Selection(aggregation="nope")
    with pytest.raises(ValueError, match="every head"):
        Selection(aggregation="all", heads=(0,)).knockout()
    with pytest.raises(ValueError, match="empty layers"):
        Selection(layers=())


# ---------------------------------------------------------------------- tiny models


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def state(request, tmp_path_factory):
    bridge = tiny_model(request.param, tmp_path_factory.mktemp(f"explore_{request.param}"))
    return ExplorerState.from_examples(bridge, bridge.tokenizer, "sst2", DEMOS, TEST)


def _assert_same_row(up, row):
    for w, v in row.label_scores.items():
        assert abs(up.label_logprobs[w] - v) < 1e-4, (w, up.label_logprobs[w], v)
    assert up.label_prediction == row.label_prediction
    assert up.continuation == row.continuation
    assert up.prediction == row.gen_prediction


def _demo_tokens(state, n=2):
    return tuple(int(i) for i in np.flatnonzero(np.asarray(state.item.demo) >= 0)[:n])


def test_update_equals_the_equivalent_python_call(state):
    model, tok = state.model, state.tokenizer
    sels = SELECTIONS[:8] + [Selection(tokens=_demo_tokens(state, 3), heads=(0,))]
    for sel in sels:
        up = state.update(sel)
        ko = sel.knockout()
        assert up.knockout == ko and state.selection == sel
        row = score_items(model, tok, [state.item.with_knockout(_exec(knockout_source(ko)))],
                          engine="naive")[0]
        _assert_same_row(up, row)
        assert sum(up.label_share.values()) == pytest.approx(1.0)


def test_prefix_computed_once_per_prefix_signature(state):
    state.cache.clear()
    assert state.update(Selection()).prefix_computed
    for sel in SELECTIONS[1:6]:  # restrict only the test example: the plain prefix serves
        assert not state.update(sel).prefix_computed
    assert state.update(Selection(aggregation="all")).prefix_computed  # demo rows change
    assert not state.update(Selection(aggregation="all", kinds=frozenset({"content"}))
                            ).prefix_computed
    assert len(state.cache) == 2


def test_recorded_attention_equals_a_full_forward(state):
    sel = Selection(kinds=frozenset({"content"}), demos=(0,))
    up = state.update(sel)
    ref = attention_mass(state.model, state.tokenizer, [state.item_with(sel)], scopes=("test",))
    got = up.mass.set_index(["layer", "head", "category"])["mass"]
    want = ref.set_index(["layer", "head", "category"])["mass"]
    assert np.allclose(got.sort_index().to_numpy(), want.sort_index().to_numpy(), atol=1e-5)


def test_hidden_keys_get_no_attention(state):
    up = state.update(Selection(kinds=frozenset({"content", "stopword"})))
    assert up.hidden.any() and (up.hidden == Sel.hidden_kinds({"content", "stopword"}).mask(
        state.item)).all()
    assert np.all(up.token_mass[up.hidden] == 0)
    assert up.token_mass.sum() == pytest.approx(1.0, abs=1e-5)  # scores mode renormalises
    pat = state.update(Selection(kinds=frozenset({"content", "stopword"}), mode="pattern"))
    assert np.all(pat.token_mass[pat.hidden] == 0)
    assert pat.token_mass.sum() < 1 - 1e-3  # pattern mode does not renormalise
    window = state.update(Selection(kinds=frozenset({"content"}), layers=(1,)))
    per_layer = window.mass[window.mass.category == "content"].groupby("layer")["mass"].sum()
    assert per_layer[1] == 0 and per_layer[0] > 0


def test_aggregation_block_hides_nothing_from_the_test_example(state):
    up = state.update(Selection(aggregation="all"))
    assert not up.hidden.any()
    assert up.knockout.blocks == aggregation_knockout("all").blocks


def test_clicked_test_token_is_a_clear_error(state):
    first_test = int(state.queries[0])
    with pytest.raises(ValueError, match="hide only prompt tokens before them"):
        state.update(Selection(tokens=(first_test + 1,)))


def test_as_code_is_runnable(state):
    sel = Selection(kinds=frozenset({"template"}), tokens=_demo_tokens(state))
    scope = {"model": state.model, "tokenizer": state.tokenizer, "item": state.item,
             "score_items": score_items}
    exec(state.as_code(sel), scope)  # noqa: S102
    assert scope["knockout"] == sel.knockout()
    _assert_same_row(state.update(sel), scope["rows"][0])


# ---------------------------------------------------------------------- the widget


def test_widget_controls_drive_the_state(state):
    from icl_tokens.explore.widget import Explorer

    ex = Explorer(state)
    assert ex.last is not None and ex.last.knockout is None  # starts at Standard ICL
    c = ex.controls
    calls = []
    update = state.update
    state.update = lambda sel: calls.append(sel) or update(sel)  # count the forwards
    try:
        c["preset"].value = "+template"
    finally:
        del state.update
    assert len(calls) == 1  # one change, one update
    assert c["kinds"].value == ("stopword", "content")
    assert ex.last.knockout.blocks == knockout_for("+template").blocks
    c["kinds"].value = ("content",)
    assert c["preset"].value == "icl-content"
    c["layers"].value = (1, 1)
    c["heads"].value = (0, 3)
    clicked = _demo_tokens(state)
    for i in clicked:
        ex.token_buttons[i].value = True
    want = Selection(kinds=frozenset({"content"}), tokens=clicked, layers=(1,), heads=(0, 3))
    assert ex.selection_from_controls() == want and ex.last.selection == want
    assert all(ex.token_buttons[i].icon == "eye-slash" for i in clicked)
    assert all(b.disabled for b, t in zip(ex.token_buttons, state.tokens) if t.is_test)
    assert ex.code.value == state.as_code(want)
    row = score_items(state.model, state.tokenizer, [state.item.with_knockout(want.knockout())],
                      engine="naive")[0]
    _assert_same_row(ex.last, row)
    c["roles"].value = "test.*"  # hiding the queries' own tokens cannot run
    assert ex.last is None and "hide only prompt tokens" in ex.error
    assert "cannot run" in ex.status.value
    c["roles"].value = ""
    ex.clear.click()
    assert ex.last is not None and ex.last.selection.tokens == ()


def test_import_icl_tokens_does_not_import_ipywidgets():
    code = ("import sys, icl_tokens; assert 'ipywidgets' not in sys.modules; "
            "import icl_tokens.explore; assert 'ipywidgets' not in sys.modules; "
            "assert callable(icl_tokens.explore); "
            "from icl_tokens.explore import ExplorerState; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


# ---------------------------------------------------------------------- the static view


class _Spans(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tokens: list[dict] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" or (tag in ("link", "img") and ("href" in a or "src" in a)):
            self.scripts += 1
        if tag == "span" and "icl-tok" in (a.get("class") or "").split() and "data-pos" in a:
            self.tokens.append(a)


def test_static_view_has_every_token_with_its_category(state, tmp_path):
    sel = Selection(kinds=frozenset({"content"}))
    up = state.update(sel)
    page = update_view(state, up, title="tiny")
    parser = _Spans()
    parser.feed(page)
    assert parser.scripts == 0  # self-contained: nothing runs, nothing is fetched
    assert [int(t["data-pos"]) for t in parser.tokens] == list(range(len(state.item)))
    for t, info in zip(parser.tokens, state.tokens):
        assert t["data-cats"].split() == list(info.categories)
        assert int(t["data-token-id"]) == info.token_id
        assert ("hidden" in t["class"].split()) == bool(up.hidden[info.position])
        assert "roles:" in t["title"] and f"id={info.token_id}" in t["title"]
    assert save_view(tmp_path / "v.html", page).read_text(encoding="utf-8") == page
    with pytest.raises(ValueError, match=".html"):
        save_view(tmp_path / "v.txt", page)
    with pytest.raises(ValueError, match="entries"):
        static_view(state.tokens, hidden=[True])


# ---------------------------------------------------------------------- Gemma-3-270M


@pytest.mark.integration
def test_gemma_update_equals_score_items():
    from icl_tokens.models import load_model, load_tokenizer

    model, tok = load_model("gemma-3-270m"), load_tokenizer("gemma-3-270m")
    with torch.no_grad():
        state = ExplorerState.from_task(model, tok, "sst2", seed=0, k=4, example=0)
        for sel in (Selection(kinds=frozenset({"stopword", "content"})),
                    Selection(kinds=frozenset({"template"}), demos=(0,), layers=tuple(range(9)))):
            up = state.update(sel)
            row = score_items(model, tok, [state.item.with_knockout(sel.knockout())],
                              engine="naive")[0]
            _assert_same_row(up, row)
            assert np.all(up.token_mass[up.hidden] == 0) or sel.layers is not None
            assert set(up.mass.category) >= {"template", "stopword", "content", "label"}
        assert state.cache.misses == 1
