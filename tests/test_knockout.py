"""Tests for icl_tokens.ablation.selection and .knockout on a small synthetic item (pure numpy).

Selections (:class:`Sel`), blocks with layers and heads, knockout unions, per-layer masks,
prefix signatures, generated-token queries and validation. The named conditions on real prompts
are in ``tests/test_masks.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from icl_tokens.ablation.knockout import MODES, Block, Knockout, check_index_list
from icl_tokens.ablation.selection import KINDS, Sel, check_kinds, key_rule
from icl_tokens.categorize import BITS

B = BITS
T, S, C, L = B["template"], B["stopword"], B["content"], B["label"]
NL = T | S
TEST = B["test"]

# (codes, demo, roles) per position: BOS, instruction, two demonstrations, the test example.
_ROWS = [
    (B["bos"], -1, ("bos",)),                              # 0
    (B["instruction"], -1, ("instruction",)),              # 1
    (T, 0, ("demo_1.t_in.word",)),                         # 2
    (T, 0, ("demo_1.t_in.colon",)),                        # 3
    (C, 0, ("demo_1.d_in.text",)),                         # 4
    (S, 0, ("demo_1.d_in.text",)),                         # 5
    (NL, 0, ("demo_1.d_in.text", "demo_1.t_in.newline")),  # 6  a merged ".\n"
    (T, 0, ("demo_1.t_out.colon",)),                       # 7
    (L, 0, ("demo_1.d_out",)),                             # 8
    (NL, 0, ("demo_1.t_out.newline",)),                    # 9
    (T, 1, ("demo_2.t_in.word",)),                         # 10
    (T | C, 1, ("demo_2.t_in.colon", "demo_2.d_in.text")),  # 11 a straddling ":,"
    (C, 1, ("demo_2.d_in.text",)),                         # 12
    (L, 1, ("demo_2.d_out",)),                             # 13
    (NL, 1, ("demo_2.t_out.newline",)),                    # 14
    (T | TEST, -1, ("test.t_in.word",)),                   # 15
    (C | TEST, -1, ("test.x.text",)),                      # 16
    (NL | TEST, -1, ("test.t_in.newline",)),               # 17
    (T | TEST, -1, ("test.t_out.colon",)),                 # 18
]
N = len(_ROWS)
PREFIX = 15  # first test token
N_LAYERS, N_HEADS = 3, 4


@dataclass
class Item:
    codes: np.ndarray
    demo: np.ndarray
    roles: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return len(self.codes)


@pytest.fixture()
def item() -> Item:
    return Item(np.array([r[0] for r in _ROWS], dtype=np.int64),
                np.array([r[1] for r in _ROWS], dtype=np.int64),
                tuple(r[2] for r in _ROWS))


def idx(sel: Sel, item: Item) -> list[int]:
    m = sel.mask(item)
    assert m.dtype == bool and m.shape == (N,)
    return np.flatnonzero(m).tolist()


def onehot(*positions: int) -> np.ndarray:
    out = np.zeros(N, dtype=bool)
    out[list(positions)] = True
    return out


ALL = np.arange(N)


# ===================================================================== selections: constructors
def test_everything_nothing(item) -> None:
    assert idx(Sel.everything(), item) == list(range(N))
    assert idx(Sel.nothing(), item) == []


def test_category(item) -> None:
    assert idx(Sel.category("template"), item) == [2, 3, 6, 7, 9, 10, 11, 14, 15, 17, 18]
    assert idx(Sel.category("content"), item) == [4, 11, 12, 16]
    assert idx(Sel.category("label"), item) == [8, 13]
    assert idx(Sel.category("test"), item) == [15, 16, 17, 18]
    assert idx(Sel.category("bos", "instruction"), item) == [0, 1]
    assert idx(Sel.category("label", "content"), item) == [4, 8, 11, 12, 13, 16]
    with pytest.raises(ValueError, match=r"unknown categories \['tmpl'\]"):
        Sel.category("tmpl")
    with pytest.raises(ValueError, match="needs at least one"):
        Sel.category()


def test_role(item) -> None:
    assert idx(Sel.role("demo_*.t_in.colon"), item) == [3, 11]
    assert idx(Sel.role("demo_*.t_out.colon"), item) == [7]
    assert idx(Sel.role("test.*"), item) == [15, 16, 17, 18]
    assert idx(Sel.role("demo_2.d_in.*"), item) == [11, 12]  # any of a token's roles matches
    assert idx(Sel.role("*newline"), item) == [6, 9, 14, 17]
    assert idx(Sel.role("bos", "instruction"), item) == [0, 1]
    assert idx(Sel.role("demo_3.*"), item) == []
    with pytest.raises(ValueError, match="can match no token role"):  # whole-string match
        Sel.role("demo_1.d_in")
    with pytest.raises(ValueError, match="at least one pattern"):
        Sel.role()


def test_demo(item) -> None:
    assert idx(Sel.demo(0), item) == list(range(2, 10))
    assert idx(Sel.demo(1), item) == list(range(10, 15))
    assert idx(Sel.demo(0, 1), item) == list(range(2, 15))
    with pytest.raises(ValueError, match="out of range"):
        Sel.demo(7).mask(item)
    with pytest.raises(ValueError, match="at least one demonstration index"):
        Sel.demo()


def test_part(item) -> None:
    assert idx(Sel.part("bos"), item) == [0]
    assert idx(Sel.part("instruction"), item) == [1]
    assert idx(Sel.part("demo"), item) == list(range(2, 15))
    assert idx(Sel.part("test"), item) == list(range(15, N))
    with pytest.raises(ValueError, match="unknown part 'label'"):
        Sel.part("label")


def test_positions_indices(item) -> None:
    assert idx(Sel.positions([3, 1]), item) == [1, 3]
    assert idx(Sel.positions([-1, 0]), item) == [0, N - 1]
    assert idx(Sel.positions([-N]), item) == [0]
    assert idx(Sel.positions(range(2, 5)), item) == [2, 3, 4]
    assert idx(Sel.positions(np.array([4, 4, 2])), item) == [2, 4]
    assert idx(Sel.positions([]), item) == []
    assert Sel.positions([1, 3]) == Sel.positions(np.array([1, 3]))
    for bad in ([N], [-N - 1], [0, 100]):
        with pytest.raises(ValueError, match="out of range"):
            Sel.positions(bad).mask(item)


def test_positions_bool(item) -> None:
    m = onehot(2, 16)
    assert idx(Sel.positions(m), item) == [2, 16]
    assert idx(Sel.positions(m.tolist()), item) == [2, 16]  # a Bool list is a Bool array
    assert idx(Sel.positions(np.zeros(N, bool)), item) == []
    for shape in (N - 1, N + 1):
        with pytest.raises(ValueError, match="has shape"):
            Sel.positions(np.zeros(shape, bool)).mask(item)
    with pytest.raises(ValueError, match="has shape"):
        Sel.positions(np.zeros((1, N), bool)).mask(item)


def test_last_generated_test(item) -> None:
    assert idx(Sel.last(), item) == [N - 1]
    assert idx(Sel.generated(), item) == []  # no prompt position is generated
    assert idx(Sel.test(), item) == list(range(15, N))
    assert idx(Sel.test(generated=False), item) == list(range(15, N))
    assert Sel.test() == Sel.part("test") | Sel.generated()
    assert Sel.test(generated=False) == Sel.part("test")
    empty = Item(np.zeros(0, np.int64), np.zeros(0, np.int64), ())
    assert Sel.last().mask(empty).shape == (0,)


def test_hidden_kinds_is_the_key_rule(item) -> None:
    for kinds in ([], ["template"], ["stopword"], ["content"], ["template", "stopword"],
                  ["template", "content"], ["stopword", "content"], list(KINDS)):
        for hide_bos in (False, True):
            got = Sel.hidden_kinds(kinds, hide_bos=hide_bos).mask(item)
            assert np.array_equal(got, key_rule(item.codes, kinds, hide_bos=hide_bos))
    # the newline rule and straddling tokens on this item
    assert idx(Sel.hidden_kinds(["template"]), item) == [2, 3, 7, 10]
    assert idx(Sel.hidden_kinds(["template", "stopword"]), item) == [2, 3, 5, 6, 7, 9, 10, 14]
    assert idx(Sel.hidden_kinds(["template", "content"]), item) == [2, 3, 4, 7, 10, 11, 12]
    assert idx(Sel.hidden_kinds(KINDS, hide_bos=True), item) == [0] + list(range(2, 8)) + [
        9, 10, 11, 12, 14]
    # order and duplicates do not matter
    assert Sel.hidden_kinds(["content", "template"]) == Sel.hidden_kinds(("template", "content"))
    assert Sel.hidden_kinds(["content", "content"]) == Sel.hidden_kinds(["content"])
    for bad in (["label"], ["bos"], ["test"], ["foo"]):
        with pytest.raises(ValueError, match="cannot hide categories"):
            Sel.hidden_kinds(bad)
    assert check_kinds(["content"]) == frozenset({"content"})


# ===================================================================== selections: algebra
def test_and_or_not(item) -> None:
    tmpl, demo, colon = Sel.category("template"), Sel.part("demo"), Sel.role("*.colon")
    tm, dm, cm = tmpl.mask(item), demo.mask(item), colon.mask(item)
    assert np.array_equal((tmpl & demo).mask(item), tm & dm)
    assert np.array_equal((tmpl | colon).mask(item), tm | cm)
    assert np.array_equal((~tmpl).mask(item), ~tm)
    assert np.array_equal((tmpl & demo & ~colon).mask(item), tm & dm & ~cm)
    assert idx(tmpl & demo & ~colon, item) == [2, 6, 9, 10, 14]
    assert np.array_equal((~(tmpl | demo)).mask(item), ~tm & ~dm)  # De Morgan
    assert idx(~Sel.everything(), item) == []
    assert idx(~Sel.nothing(), item) == list(range(N))
    # selections are values: equal expressions compare and hash equal
    assert (tmpl & demo) == (Sel.category("template") & Sel.part("demo"))
    assert len({tmpl & demo, Sel.category("template") & Sel.part("demo")}) == 1
    for bad in (1, np.ones(N, bool), "template"):
        with pytest.raises(TypeError, match="cannot combine a selection"):
            tmpl & bad  # type: ignore[operator]
        with pytest.raises(TypeError, match="cannot combine a selection"):
            tmpl | bad  # type: ignore[operator]


def test_includes_generated() -> None:
    gen = Sel.generated()
    cat = Sel.category("content")
    assert gen.includes_generated()
    for sel in (Sel.everything(), Sel.nothing(), cat, Sel.role("test.*"), Sel.demo(0),
                Sel.part("test"), Sel.positions([1]), Sel.last(), Sel.hidden_kinds(KINDS),
                Sel.test(generated=False)):
        assert not sel.includes_generated(), sel
    assert Sel.test().includes_generated()
    assert (Sel.last() | gen).includes_generated()
    assert (cat | gen).includes_generated() and (gen | cat).includes_generated()
    assert not (cat & gen).includes_generated() and not (gen & cat).includes_generated()
    assert (Sel.test() & gen).includes_generated()
    assert not (~gen).includes_generated()
    assert not (Sel.test() & ~gen).includes_generated()
    # a complement covers everything its operand does not, generated tokens included
    assert (~cat).includes_generated()
    assert not (~Sel.test()).includes_generated()


def test_describe() -> None:
    assert Sel.everything().describe() == "everything()"
    assert Sel.nothing().describe() == "nothing()"
    assert Sel.generated().describe() == "generated()"
    assert Sel.last().describe() == "last()"
    assert Sel.category("template", "label").describe() == "category(template,label)"
    assert Sel.role("demo_*.t_out.colon").describe() == "role(demo_*.t_out.colon)"
    assert Sel.demo(0, 2).describe() == "demo(0,2)"
    assert Sel.part("demo").describe() == "part(demo)"
    assert Sel.positions([3, -1]).describe() == "positions([3, -1])"
    assert Sel.positions(np.array([True, False])).describe() == "positions([True, False])"
    assert Sel.hidden_kinds(["template", "content"]).describe() == "hidden_kinds(content,template)"
    assert Sel.hidden_kinds([], hide_bos=True).describe() == "hidden_kinds(, hide_bos)"
    assert Sel.test().describe() == "(part(test) | generated())"
    assert ((Sel.category("template") & Sel.part("demo")) & ~Sel.role("demo_*.t_out.colon")
            ).describe() == "((category(template) & part(demo)) & ~role(demo_*.t_out.colon))"
    assert repr(Sel.last()) == "Sel.last()"


# ===================================================================== blocks and knockouts
def ko_of(*blocks: Block, name: str = "custom", mode: str = "scores") -> Knockout:
    return Knockout(blocks, name=name, mode=mode)


def test_block_construction() -> None:
    b = Block(Sel.test(), Sel.category("label"), layers=[2, -1], heads=range(2))
    assert b.layers == (2, -1) and b.heads == (0, 1)
    assert Block(Sel.test(), Sel.category("label")).layers is None
    for kw in ({"layers": []}, {"heads": ()}):
        with pytest.raises(ValueError, match="is empty"):
            Block(Sel.test(), Sel.category("label"), **kw)
    assert "layers [2, -1], heads [0, 1]" in b.describe()
    assert Block(Sel.last(), Sel.category("label")).describe() == \
        "last() -/-> category(label) (all layers)"


def test_keys_with_generated_are_prompt_positions_only(item) -> None:
    """A key selection that would include generated tokens (e.g. a complement) is allowed; keys
    are evaluated on prompt positions only, so a generated token is never a hidden key."""
    for keys in (Sel.generated(), Sel.category("label") | Sel.generated(),
                 ~Sel.category("test")):
        r = ko_of(Block(Sel.test(), keys)).resolve(item)
        assert not r.dense(N + 2).numpy()[:, N:].any()
    r = ko_of(Block(Sel.part("test"), ~Sel.category("test"))).resolve(item)
    assert np.array_equal(r.key, ~Sel.category("test").mask(item))


def test_generated_keys_never_hidden(item) -> None:
    ko = ko_of(Block(Sel.test(), Sel.everything() & ~Sel.part("test"))).resolve(item)
    total = N + 3
    dense = ko.dense(total).numpy()
    assert not dense[:, N:].any()
    pos = np.arange(total)
    for m in ko.masks(pos, pos, N_LAYERS, N_HEADS).values():
        assert not m[:, N:].any()


def test_generated_queries(item) -> None:
    """Rows of generated tokens (q_pos >= n) are restricted iff the queries include them."""
    keys = Sel.category("label")
    gen_q = np.array([N, N + 1, N + 5])
    for queries, restricted in ((Sel.test(), True), (Sel.part("test"), False),
                                (Sel.generated(), True), (Sel.last(), False),
                                (Sel.last() | Sel.generated(), True),
                                (Sel.part("demo") & ~Sel.category("label"), False),
                                (~Sel.category("label"), True)):
        ko = ko_of(Block(queries, keys)).resolve(item)
        assert ko.query_generated == restricted, queries
        masks = ko.masks(gen_q, ALL, N_LAYERS, N_HEADS)
        if restricted:
            assert sorted(masks) == list(range(N_LAYERS))
            for m in masks.values():
                assert (m == onehot(8, 13)[None]).all()
        else:
            assert masks == {}, queries
        rows = ko.dense(N + 2).numpy()[N:]
        assert rows.any() == restricted
    # only generated tokens restricted: no prompt query, but not empty
    ko = ko_of(Block(Sel.generated(), keys)).resolve(item)
    assert not ko.query.any() and ko.query_generated and not ko.is_empty
    assert ko.first_query() is None


def test_self_block_raises(item) -> None:
    with pytest.raises(ValueError, match=r"blocks query 15 from itself"):
        ko_of(Block(Sel.test(), Sel.category("template"))).resolve(item)
    with pytest.raises(ValueError, match=r"blocks query 3 from itself"):
        ko_of(Block(Sel.positions([3, 4]), Sel.positions([1, 3])), name="mine").resolve(item)
    # a union is checked block by block: query 4 restricted in one block, key 4 in another
    ok = ko_of(Block(Sel.positions([4]), Sel.positions([2])),
               Block(Sel.positions([6]), Sel.positions([4]))).resolve(item)
    assert not np.diag(ok.dense().numpy()).any()
    # the same with layers restricted still raises
    with pytest.raises(ValueError, match="from itself"):
        ko_of(Block(Sel.last(), Sel.last(), layers=[0], heads=[1])).resolve(item, 2, 2)


def test_resolved_unions(item) -> None:
    b1 = Block(Sel.test(), Sel.category("label"))
    b2 = Block(Sel.positions([9]), Sel.positions([4, 5]), layers=[1])
    ko = ko_of(b1, b2).resolve(item)
    assert ko.n == N and len(ko.blocks) == 2
    assert np.array_equal(ko.key, onehot(4, 5, 8, 13))
    assert np.array_equal(ko.query, onehot(9, 15, 16, 17, 18))
    assert ko.query_generated
    assert ko.first_query() == 9
    layers = ko.layer_blocks(N_LAYERS)
    assert sorted(layers) == [0, 1, 2] and len(layers[1]) == 2 and len(layers[0]) == 1
    # empty blocks are dropped
    empty = ko_of(Block(Sel.test(), Sel.nothing()), Block(Sel.nothing(), Sel.category("label")),
                  b1).resolve(item)
    assert len(empty.blocks) == 1
    assert ko_of().resolve(item).is_empty
    assert ko_of(Block(Sel.part("test"), Sel.nothing())).resolve(item).is_empty


def test_layer_restricted_block(item) -> None:
    """A block with layers=[1] appears only in layer 1."""
    ko = ko_of(Block(Sel.test(), Sel.category("content") & Sel.part("demo"), layers=[1]))
    r = ko.resolve(item, N_LAYERS, N_HEADS)
    masks = r.masks(ALL, ALL, N_LAYERS, N_HEADS)
    assert list(masks) == [1]
    assert masks[1].shape == (N, N)
    assert np.array_equal(masks[1], r.dense().numpy())
    assert np.array_equal(masks[1], np.outer(Sel.test().mask(item), onehot(4, 11, 12)))
    # negative layers count from the end
    r = ko_of(Block(Sel.test(), Sel.category("label"), layers=[-1, 0])).resolve(item, 3, 2)
    assert r.blocks[0].layers == (0, 2)
    assert sorted(r.masks(ALL, ALL, 3, 2)) == [0, 2]
    with pytest.raises(ValueError, match="layer 3 is out of range"):
        ko_of(Block(Sel.test(), Sel.category("label"), layers=[3])).resolve(item, 3, 2)
    with pytest.raises(ValueError, match="head -3 is out of range"):
        ko_of(Block(Sel.test(), Sel.category("label"), heads=[-3])).resolve(item, 3, 2)


def test_head_restricted_block(item) -> None:
    """Head-restricted blocks give [heads, q, k] arrays with only those heads set."""
    ko = ko_of(Block(Sel.test(), Sel.category("label"), heads=[0, 2]))
    r = ko.resolve(item, N_LAYERS, N_HEADS)
    pair = np.outer(Sel.test().mask(item), onehot(8, 13))
    masks = r.masks(ALL, ALL, N_LAYERS, N_HEADS)
    assert sorted(masks) == [0, 1, 2]
    for m in masks.values():
        assert m.shape == (N_HEADS, N, N)
        for h in range(N_HEADS):
            assert np.array_equal(m[h], pair if h in (0, 2) else np.zeros_like(pair)), h
    # dense is the union over layers and heads
    assert np.array_equal(r.dense().numpy(), pair)


def test_union_of_blocks_ors_per_layer_and_head(item) -> None:
    a = Block(Sel.test(), Sel.category("label"))                      # all layers, all heads
    b = Block(Sel.test(), Sel.positions([4]), layers=[1], heads=[2])  # layer 1, head 2
    c = Block(Sel.positions([9]), Sel.positions([2]), layers=[2])     # layer 2, all heads
    r = ko_of(a, b, c).resolve(item, N_LAYERS, N_HEADS)
    test = Sel.test().mask(item)
    pa = np.outer(test, onehot(8, 13))
    pb = np.outer(test, onehot(4))
    pc = np.outer(onehot(9), onehot(2))
    masks = r.masks(ALL, ALL, N_LAYERS, N_HEADS)
    assert masks[0].shape == (N, N) and np.array_equal(masks[0], pa)
    assert masks[1].shape == (N_HEADS, N, N)
    for h in range(N_HEADS):
        assert np.array_equal(masks[1][h], pa | pb if h == 2 else pa), h
    assert masks[2].shape == (N, N) and np.array_equal(masks[2], pa | pc)
    assert np.array_equal(r.dense().numpy(), pa | pb | pc)
    # the same through Knockout | Knockout
    r2 = (ko_of(a) | ko_of(b) | ko_of(c)).resolve(item, N_LAYERS, N_HEADS)
    masks2 = r2.masks(ALL, ALL, N_LAYERS, N_HEADS)
    assert sorted(masks2) == sorted(masks)
    for layer in masks:
        assert np.array_equal(masks2[layer], masks[layer])


def test_masks_rows_and_padding(item) -> None:
    """masks() takes any absolute rows/columns; -1 is padding (never blocked)."""
    r = ko_of(Block(Sel.test(), Sel.category("label"), heads=[1])).resolve(item, 2, 2)
    q = np.array([-1, 16, 3, N + 1])
    k = np.array([8, -1, 13, 0, N])
    dense = r.dense(N + 2).numpy()
    want = np.zeros((len(q), len(k)), bool)
    for i, qq in enumerate(q):
        for j, kk in enumerate(k):
            want[i, j] = qq >= 0 and kk >= 0 and dense[qq, kk]
    masks = r.masks(q, k, 2, 2)
    assert sorted(masks) == [0, 1]
    for m in masks.values():
        assert m.shape == (2, len(q), len(k))
        assert not m[0].any() and np.array_equal(m[1], want)
    # nothing blocked in these rows: no layer
    assert r.masks(np.array([0, 3, -1]), ALL, 2, 2) == {}


def test_knockout_or_and_modes() -> None:
    a = ko_of(Block(Sel.test(), Sel.category("label")), name="a")
    b = ko_of(Block(Sel.last(), Sel.category("content")), name="b")
    ab = a | b
    assert ab.blocks == a.blocks + b.blocks
    assert ab.name == "a|b" and ab.mode == "scores"
    assert (a | None) is a
    pa = ko_of(*a.blocks, name="pa", mode="pattern")
    pb = ko_of(*b.blocks, name="pb", mode="pattern")
    assert (pa | pb).mode == "pattern"
    with pytest.raises(ValueError, match="cannot combine a 'scores' knockout with a 'pattern'"):
        a | pb
    with pytest.raises(ValueError, match="unknown knockout mode 'zero'"):
        Knockout((), mode="zero")
    assert MODES == ("scores", "pattern")
    with pytest.raises(TypeError, match="must be Block objects"):
        Knockout((Sel.test(),))  # type: ignore[arg-type]
    assert a.with_name("z").name == "z" and a.with_name("z").blocks == a.blocks
    assert Knockout([*a.blocks]).blocks == a.blocks  # a list is stored as a tuple
    assert ab.describe().startswith("a|b [scores]: ")
    assert ab.describe().count("-/->") == 2


def test_check_index_list() -> None:
    assert check_index_list("layer", None, 4) is None
    assert check_index_list("layer", [-1], 4) == (3,)
    assert check_index_list("layer", [-4, 3], 4) == (0, 3)
    assert check_index_list("head", [2, 2, -2, 0], 4) == (0, 2)  # de-duplicated and sorted
    assert check_index_list("head", range(4), 4) == (0, 1, 2, 3)
    assert check_index_list("head", np.array([1, 0]), 4) == (0, 1)
    for bad in ([4], [-5], [0, 7]):
        with pytest.raises(ValueError, match="out of range for a model with 4 layers"):
            check_index_list("layer", bad, 4)
    with pytest.raises(ValueError, match="empty head selection"):
        check_index_list("head", [], 4)


# ===================================================================== prefix signatures
def sig(ko: Knockout, item: Item, prefix: int = PREFIX, n_layers: int = N_LAYERS,
        n_heads: int = N_HEADS) -> str | None:
    return ko.resolve(item, n_layers, n_heads).prefix_signature(prefix, n_layers, n_heads)


def test_prefix_signature_none_for_test_queries(item) -> None:
    for queries in (Sel.test(), Sel.part("test"), Sel.last(), Sel.generated(),
                    Sel.last() | Sel.generated()):
        ko = ko_of(Block(queries, Sel.hidden_kinds(KINDS, hide_bos=True)))
        assert sig(ko, item) is None, queries
    assert sig(ko_of(), item) is None
    # a demonstration query in a restricted layer is a prefix change
    assert sig(ko_of(Block(Sel.positions([9]), Sel.positions([4]), layers=[2])), item)
    # ... unless the prefix ends before it
    assert sig(ko_of(Block(Sel.positions([9]), Sel.positions([4]))), item, prefix=9) is None
    assert sig(ko_of(Block(Sel.positions([9]), Sel.positions([4]))), item, prefix=10)


def test_prefix_signature_equal_for_the_same_prefix_pairs(item) -> None:
    """Same blocked prefix pairs, in the same layers and heads, expressed differently."""
    test_part = Block(Sel.test(), Sel.hidden_kinds(["content"]))
    a = ko_of(Block(Sel.part("demo") & Sel.category("label"), Sel.category("content") &
                    Sel.part("demo")))
    b = ko_of(Block(Sel.positions([8, 13]), Sel.positions([4, 11, 12]),
                    layers=range(N_LAYERS), heads=list(range(N_HEADS))))
    c = ko_of(Block(Sel.positions([8]), Sel.positions([4, 11, 12])),
              Block(Sel.positions([13]), Sel.positions([4, 11, 12]), layers=[0, 1]),
              Block(Sel.positions([13]), Sel.positions([4, 11, 12]), layers=[-1]),
              test_part, name="other")  # a test-query block changes no prefix pair
    d = ko_of(*[Block(Sel.role("demo_*.d_out"), Sel.category("content") & ~Sel.part("test"),
                      heads=[h]) for h in range(N_HEADS)])
    sa = sig(a, item)
    assert sa is not None
    assert sig(b, item) == sa
    assert sig(c, item) == sa
    assert sig(d, item) == sa
    assert sig(a | ko_of(test_part), item) == sa
    # signatures are cached per prefix length, and stable across resolves
    r = a.resolve(item, N_LAYERS, N_HEADS)
    assert r.prefix_signature(PREFIX, N_LAYERS, N_HEADS) is r.prefix_signature(
        PREFIX, N_LAYERS, N_HEADS)
    assert sig(a, item) == sa


def test_prefix_signature_differs_when_prefix_pairs_differ(item) -> None:
    base = Block(Sel.positions([8, 13]), Sel.positions([4, 11, 12]))
    ref = sig(ko_of(base), item)
    others = {
        "keys": ko_of(Block(Sel.positions([8, 13]), Sel.positions([4, 11]))),
        "queries": ko_of(Block(Sel.positions([8, 14]), Sel.positions([4, 11, 12]))),
        "layers": ko_of(Block(base.queries, base.keys, layers=[0, 1])),
        "heads": ko_of(Block(base.queries, base.keys, heads=[0, 1, 2])),
        "extra pair": ko_of(base, Block(Sel.positions([9]), Sel.positions([2]))),
        "mode": ko_of(base, mode="pattern"),
    }
    sigs = {name: sig(ko, item) for name, ko in others.items()}
    for name, s in sigs.items():
        assert s is not None and s != ref, name
    assert len(set(sigs.values())) == len(sigs)
    # same pairs inside a shorter prefix: 13 is outside prefix 13, so only query 8 counts
    assert sig(ko_of(base), item, prefix=13) == sig(
        ko_of(Block(Sel.positions([8]), Sel.positions([4, 11, 12]))), item, prefix=13)
    assert sig(ko_of(base), item, prefix=13) != ref


def test_prefix_signature_cache_respects_model_size(item) -> None:
    r = ko_of(Block(Sel.positions([9]), Sel.positions([4]))).resolve(item)
    first = r.prefix_signature(PREFIX, 2, 2)
    fresh = ko_of(Block(Sel.positions([9]), Sel.positions([4]))).resolve(item)
    assert first != fresh.prefix_signature(PREFIX, 4, 2)  # 4 layers blocked, not 2
    assert r.prefix_signature(PREFIX, 4, 2) == fresh.prefix_signature(PREFIX, 4, 2)


def test_masks_refuse_out_of_range_layers_when_resolved_without_sizes(item) -> None:
    r = ko_of(Block(Sel.test(), Sel.category("label"), layers=[5])).resolve(item)
    with pytest.raises(ValueError, match="out of range"):
        r.masks(ALL, ALL, 3, 2)


# ===================================================================== dense
def test_dense(item) -> None:
    r = ko_of(Block(Sel.test(), Sel.category("label")),
              Block(Sel.positions([9]), Sel.positions([2]), layers=[0], heads=[1])).resolve(item)
    d = r.dense()
    assert d.dtype == torch.bool and d.shape == (N, N)
    want = np.outer(Sel.test().mask(item), onehot(8, 13)) | np.outer(onehot(9), onehot(2))
    assert np.array_equal(d.numpy(), want)
    big = r.dense(N + 2).numpy()
    assert np.array_equal(big[:N, :N], want)
    assert np.array_equal(big[N], onehot(8, 13).tolist() + [False, False])
    assert not big[:, N:].any()
    with pytest.raises(ValueError, match="asked for only"):
        r.dense(N - 1)
