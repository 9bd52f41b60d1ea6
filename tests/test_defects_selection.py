"""Selections: one operation table (``repr`` is the constructor source), role patterns that can
match nothing, out-of-range demonstrations (0-based), the shared kind rule, and the explorer's
errors for bad input. Pure numpy, no model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from icl_tokens.ablation import Block, Knockout
from icl_tokens.ablation.removal import removed_positions
from icl_tokens.ablation.selection import (
    _OPS,
    ALWAYS_VISIBLE,
    KINDS,
    ROLE_SHAPES,
    Sel,
    check_role_pattern,
    demo_count,
    key_rule,
    kind_rule,
)
from icl_tokens.categorize import BITS
from icl_tokens.explore import ExplorerState, Selection, knockout_source

FIX = Path(__file__).parent / "fixtures" / "data"
T, S, C, L, TEST = (BITS[k] for k in ("template", "stopword", "content", "label", "test"))

_ROWS = [  # (codes, demo, roles): BOS, instruction, two demonstrations, the test example
    (BITS["bos"], -1, ("bos",)), (BITS["instruction"], -1, ("instruction",)),
    (T, 0, ("demo_1.t_in.word",)), (T, 0, ("demo_1.t_in.colon",)), (C, 0, ("demo_1.d_in.text",)),
    (T | S, 0, ("demo_1.t_in.newline",)), (L, 0, ("demo_1.d_out",)),
    (T, 1, ("demo_2.t_in.word",)), (C, 1, ("demo_2.d_in.text",)), (L, 1, ("demo_2.d_out",)),
    (T | TEST, -1, ("test.t_in.word",)), (C | TEST, -1, ("test.x.text",)),
    (T | TEST, -1, ("test.t_out.colon",)),
]


@dataclass
class Item:
    codes: np.ndarray
    demo: np.ndarray
    roles: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return len(self.codes)


@pytest.fixture()
def item() -> Item:
    return Item(np.array([r[0] for r in _ROWS]), np.array([r[1] for r in _ROWS]),
                tuple(r[2] for r in _ROWS))


# ---------------------------------------------------------------------- one operation table
ROUND_TRIP = [
    Sel.everything(), Sel.nothing(), Sel.generated(), Sel.last(),
    Sel.category("template", "label"), Sel.role("demo_*.t_out.colon", "test.*"),
    Sel.demo(0, 1), Sel.part("demo"), Sel.positions([3, -1]), Sel.positions([]),
    Sel.positions(np.array([True, False, True])), Sel.hidden_kinds(["template", "content"]),
    Sel.hidden_kinds([], hide_bos=True), Sel.test(), Sel.category("content") & Sel.part("demo"),
    ~Sel.role("demo_*.t_in.colon"), ~(Sel.demo(1) | Sel.last()) & Sel.everything(),
]


@pytest.mark.parametrize("sel", ROUND_TRIP, ids=repr)
def test_repr_is_the_constructor_source(sel):
    back = eval(repr(sel), {"Sel": Sel, "np": np})  # noqa: S307 - the source repr prints
    assert back == sel and repr(back) == repr(sel)
    assert back.describe() == sel.describe()


def test_every_operation_round_trips():
    def ops(sel: Sel) -> set[str]:
        return {sel.op}.union(*(ops(a) for a in sel.args if isinstance(a, Sel)))

    assert set().union(*(ops(s) for s in ROUND_TRIP)) == set(_OPS)


def test_repr_reads_as_code():
    assert repr(Sel.category("template") & Sel.part("demo")) == \
        "(Sel.category('template') & Sel.part('demo'))"
    assert repr(Sel.positions(np.array([True, False]))) == \
        "Sel.positions(np.array([True, False], dtype=bool))"
    assert repr(~Sel.demo(0, 2)) == "~Sel.demo(0, 2)"


def test_knockout_source_uses_the_repr():
    ko = Knockout((Block(Sel.test(), Sel.positions(np.array([True, False])) | Sel.demo(1)),))
    src = knockout_source(ko)
    assert "import numpy as np" in src and repr(ko.blocks[0].keys) in src
    scope: dict = {}
    exec(src, scope)  # noqa: S102
    assert scope["knockout"] == ko
    import icl_tokens.explore as explore_pkg
    assert not hasattr(explore_pkg, "sel_source")


def test_describe_unchanged():
    assert Sel.demo(0, 2).describe() == "demo(0,2)"
    assert Sel.hidden_kinds([], hide_bos=True).describe() == "hidden_kinds(, hide_bos)"
    assert (Sel.test() & ~Sel.role("*.colon")).describe() == \
        "((part(test) | generated()) & ~role(*.colon))"


def test_positions_must_be_one_dimensional(item):
    with pytest.raises(ValueError, match=r"has shape \(2, 1\); give a 1-D list"):
        Sel.positions(np.array([[1], [2]]))
    assert Sel.positions([]).args[1] == np.dtype(np.int64).str
    with pytest.raises(ValueError, match="unknown selection op"):
        Sel("bogus")


# ---------------------------------------------------------------------- role patterns
@pytest.mark.parametrize("pattern", [
    "demo_*.t_out.colon", "demo_*.t_in.*", "test.*", "*", "*newline", "bos", "instruction",
    "demo_2.d_in.*", "demo_3.*", "demo_*.d_out", "*.d_in.text", "demo_1[0-9].d_out",
    "demo_?.d_in.premise", "test.x.[a-z]*", "demo_*.t_*.colon", "[!x]os"])
def test_role_patterns_that_can_match(pattern):
    assert check_role_pattern(pattern) == pattern
    assert Sel.role(pattern).args == ((pattern,),)


@pytest.mark.parametrize("pattern", [
    "demo_*.t_ot.colon", "demo_1.d_in", "demo_0.*", "demo_01.d_out", "Demo_*", "test.d_in.*",
    "*.t_out.comma", "instruction.*", "demo_*.d_out.*", "test.x", "demo_*.t_in.colon ", "",
    "demo_*.t_in.colon?", "[bos"])
def test_role_patterns_that_match_nothing_are_refused(pattern):
    with pytest.raises(ValueError, match="can match no token role") as err:
        Sel.role("demo_*.t_out.colon", pattern)
    assert all(shape in str(err.value) for shape in ROLE_SHAPES)
    assert "1-based demonstration" in str(err.value)
    with pytest.raises(ValueError, match="can match no token role"):
        Selection(roles=(pattern,))


# ---------------------------------------------------------------------- demonstration indices
def test_demo_beyond_the_prompt_is_an_error(item):
    assert demo_count(item) == 2
    assert np.flatnonzero(Sel.demo(1).mask(item)).tolist() == [7, 8, 9]
    for sel in (Sel.demo(2), Sel.demo(0, 99), ~Sel.demo(5)):
        with pytest.raises(ValueError, match=r"0-based demonstration index \[\d+\] is out of "
                           r"range; this prompt has 2 demonstrations \(0-based indices 0\.\.1, "
                           r"roles demo_1\.\.demo_2\)"):
            sel.mask(item)
    none = Item(item.codes[:2], np.array([-1, -1]), item.roles[:2])
    with pytest.raises(ValueError, match="has 0 demonstrations"):
        Sel.demo(0).mask(none)


def test_demo_indices_are_checked_at_construction():
    with pytest.raises(ValueError, match="0-based demonstration indices >= 0"):
        Sel.demo(-1)
    with pytest.raises(TypeError):
        Sel.demo(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="0-based demonstration indices >= 0"):
        Selection(demos=(-1,))


def test_selection_demos_beyond_the_prompt(item):
    ko = Selection(demos=(99,)).knockout()
    with pytest.raises(ValueError, match=r"index \[99\] is out of range.*2 demonstrations"):
        ko.resolve(item)
    assert Selection(demos=(1,)).name == "demo[1]"
    assert not hasattr(Selection, "with_")


# ---------------------------------------------------------------------- the kind rule
def test_kind_rule():
    codes = np.array([T, S, C, T | S, T | C, L, T | L, BITS["bos"], T | TEST, 0])
    assert kind_rule(codes, {"template"}).tolist() == [
        True, False, False, False, False, False, True, False, True, False]
    got = kind_rule(codes, {"template", "stopword"}, protected=("label", "test"))
    assert got.tolist() == [True, True, False, True, False, False, False, False, False, False]
    with pytest.raises(ValueError, match="cannot hide categories"):
        kind_rule(codes, {"label"})
    with pytest.raises(ValueError, match="unknown protected categories"):
        kind_rule(codes, {"template"}, protected=("labels",))


@pytest.mark.parametrize("hide_bos", [False, True])
def test_key_rule_is_the_kind_rule(hide_bos):
    codes = np.array([a | b for a in BITS.values() for b in BITS.values()])
    for kinds in ({"template"}, {"stopword", "content"}, set(KINDS)):
        protected = [c for c in ALWAYS_VISIBLE if not (hide_bos and c == "bos")]
        want = kind_rule(codes, kinds, protected=protected)
        if hide_bos:
            want |= (codes & BITS["bos"]) != 0
        assert np.array_equal(key_rule(codes, kinds, hide_bos=hide_bos), want)
    with pytest.raises(ValueError, match="cannot hide categories"):
        key_rule(codes, {"label"})


def test_removal_is_the_kind_rule_with_its_protected_set():
    codes = np.array([a | b for a in BITS.values() for b in BITS.values()])
    n = len(codes)
    for kinds in ({"template"}, {"stopword"}, {"content"}, {"template", "stopword"}):
        want = kind_rule(codes, kinds, protected=("bos", "instruction", "label"))
        got = removed_positions(codes, np.zeros(n, int), [()] * n, kinds)
        assert np.array_equal(got, want), kinds


# ---------------------------------------------------------------------- explorer input
MODEL = SimpleNamespace(cfg=SimpleNamespace(n_layers=1, n_heads=1))


def test_explore_without_a_model():
    from icl_tokens.explore import explore

    with pytest.raises(TypeError, match=r"needs a loaded model, got NoneType.*load_model\(\)"):
        explore(None, object())
    with pytest.raises(TypeError, match=r"needs a loaded model.*load_model"):
        ExplorerState.from_examples(None, object(), "sst2", [], None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"tokenizer, got None.*load_tokenizer"):
        explore(MODEL, None)


def test_explore_example_out_of_range(monkeypatch):
    from icl_tokens.explore import explore

    monkeypatch.setenv("ICL_TOKENS_DATA_DIR", str(FIX))
    for example in (10**6, 3, -1):
        with pytest.raises(ValueError, match=rf"example {example} is out of range: task 'sst2' "
                           r"has 3 evaluation examples; pass a 0-based example in 0\.\.2"):
            explore(MODEL, object(), "sst2", example=example)
