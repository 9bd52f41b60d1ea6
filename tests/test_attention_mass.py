"""Attention mass: shares per key group match a hand computation, a partition sums to 1 per
(layer, head, query), multi-category tokens count toward each group, and the batched capture
path equals the pure function on the full pattern of tiny models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from icl_tokens.ablation import Block, Knockout, Sel
from icl_tokens.aggregation.attention_mass import (
    MASS_COLUMNS,
    attention_mass,
    category_mass,
    key_groups,
    mass_from_rows,
    pattern_names,
    summarize_mass,
)
from icl_tokens.categorize import BITS
from icl_tokens.engine import LabelSet
from icl_tokens.engine.items import Item
from icl_tokens.episodes import Episode
from icl_tokens.experiments.items import prompt_item
from icl_tokens.tasks import Example, load_task
from icl_tokens.testing.tiny import tiny_model

B = BITS
# A hand-made 8-token item: bos, instruction, demo template, demo content, demo "\n"
# (template + stopword), demo label, test content, test template (the last token).
CODES = [B["bos"], B["instruction"], B["template"], B["content"],
         B["template"] | B["stopword"], B["label"], B["test"] | B["content"],
         B["test"] | B["template"]]
DEMO = [-1, -1, 0, 0, 0, 0, -1, -1]


def _item(codes=CODES) -> Item:
    labels = LabelSet(("yes", "no"), {"yes": (1,), "no": (2,)})
    n = len(codes)
    return Item(tuple(range(10, 10 + n)), np.array(codes), np.array(DEMO[:n]),
                tuple(("x",) for _ in range(n)), 0, "e0", "yes", labels)


def _causal_pattern(n_layers: int, n_heads: int, n: int, seed: int = 0) -> np.ndarray:
    """Random causal attention rows that sum to 1: [layer, head, q, k]."""
    rng = np.random.default_rng(seed)
    p = rng.random((n_layers, n_heads, n, n)) * np.tril(np.ones((n, n)))
    return p / p.sum(-1, keepdims=True)


def test_hand_computation_on_the_last_token():
    item = _item()
    p = _causal_pattern(2, 3, 8)
    df = category_mass(p, item, Sel.last())
    assert list(df.columns) == list(MASS_COLUMNS)
    row = p[1, 2, 7]  # layer 1, head 2, the last query
    got = df.set_index(["layer", "head", "category"])
    # each: "\n" (position 4) counts toward template AND stopword
    assert got.loc[(1, 2, "template"), "mass"] == pytest.approx(row[2] + row[4])
    assert got.loc[(1, 2, "stopword"), "mass"] == pytest.approx(row[4])
    assert got.loc[(1, 2, "content"), "mass"] == pytest.approx(row[3])  # not the test's
    assert got.loc[(1, 2, "test"), "mass"] == pytest.approx(row[6] + row[7])
    assert got.loc[(1, 2, "bos"), "mass"] == pytest.approx(row[0])
    assert got.loc[(1, 2, "template"), "n_keys"] == 2
    assert got.loc[(1, 2, "template"), "mass_per_token"] == pytest.approx((row[2] + row[4]) / 2)
    assert set(got.loc[(1, 2)].index) == {"bos", "instruction", "template", "stopword",
                                           "content", "label", "test"}
    assert (df["n_queries"] == 1).all()
    assert len(df) == 2 * 3 * 7


def test_several_queries_average_with_causal_key_counts():
    item = _item()
    p = _causal_pattern(1, 1, 8, seed=3)
    queries = np.zeros(8, dtype=bool)
    queries[[6, 7]] = True  # the test example's two tokens
    got = category_mass(p, item, queries).set_index("category")
    r6, r7 = p[0, 0, 6], p[0, 0, 7]
    assert got.loc["test", "mass"] == pytest.approx((r6[6] + (r7[6] + r7[7])) / 2)
    assert got.loc["test", "n_keys"] == pytest.approx(1.5)  # query 6 sees 1 test key, 7 sees 2
    assert got.loc["test", "mass_per_token"] == pytest.approx((r6[6] / 1 + (r7[6] + r7[7]) / 2)
                                                              / 2)
    assert got.loc["label", "mass"] == pytest.approx((r6[5] + r7[5]) / 2)


def test_exact_groups_are_a_partition_and_sum_to_one():
    item = _item()
    groups = key_groups(item, "exact")
    stacked = np.stack(list(groups.values()))
    assert (stacked.sum(0) == 1).all()  # every key in exactly one group
    assert "template+stopword" in groups and groups["template+stopword"][4]
    p = _causal_pattern(2, 2, 8, seed=1)
    df = category_mass(p, item, Sel.everything(), count="exact")
    sums = df.groupby(["layer", "head"])["mass"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-12)
    # and per single query too
    for q in range(8):
        mask = np.zeros(8, dtype=bool)
        mask[q] = True
        one = category_mass(p, item, mask, count="exact")
        np.testing.assert_allclose(one.groupby(["layer", "head"])["mass"].sum(), 1.0, atol=1e-12)


def test_each_groups_overlap_only_by_multi_category_tokens():
    item = _item()
    p = _causal_pattern(1, 2, 8, seed=2)
    each = category_mass(p, item, Sel.last()).groupby(["layer", "head"])["mass"].sum()
    extra = p[:, :, 7, 4].ravel()  # the "\n" is counted twice (template and stopword)
    np.testing.assert_allclose(each.to_numpy(), 1.0 + extra, atol=1e-12)


def test_unknown_tokens_get_their_own_group():
    codes = list(CODES)
    codes[3] = 0
    groups = key_groups(_item(codes))
    assert groups["unknown"].tolist() == [i == 3 for i in range(8)]


def test_bad_input_is_refused_with_a_reason():
    item = _item()
    p = _causal_pattern(1, 1, 8)
    with pytest.raises(ValueError, match="expected \\[layer, head, 8, 8\\]"):
        category_mass(p[:, :, :7], item, Sel.last())
    with pytest.raises(ValueError, match="matches no position"):
        category_mass(p, item, Sel.nothing())
    with pytest.raises(ValueError, match="Bool mask of shape"):
        category_mass(p, item, np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match="unknown count"):
        category_mass(p, item, Sel.last(), count="some")
    with pytest.raises(ValueError, match="3 queries"):
        mass_from_rows(p[:, :, :2], item, [5, 6, 7])


def test_torch_input_equals_numpy():
    item = _item()
    p = _causal_pattern(2, 2, 8)
    a = category_mass(p, item, Sel.last())
    b = category_mass(torch.tensor(p, dtype=torch.float32), item, Sel.last())
    np.testing.assert_allclose(a["mass"], b["mass"], atol=1e-6)


# ------------------------------------------------------------------ tiny models

DEMOS = (Example("d0", {"text": "a warm and funny film ."}, "1"),
         Example("d1", {"text": "the plot is a mess of the worst kind ."}, "0"))
TESTS = (Example("t0", {"text": "great ."}, "1"),
         Example("t1", {"text": "a dull , lifeless and far too long story ."}, "0"),
         Example("t2", {"text": "fine ."}, "1"))


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def setup(request, tmp_path_factory):
    bridge = tiny_model(request.param, tmp_path_factory.mktemp(f"mass_{request.param}"))
    tok = bridge.tokenizer
    task = load_task("sst2")
    ep = Episode("sst2", 0, 2, DEMOS, TESTS)
    labels = LabelSet.for_task(task, tok)
    items = [prompt_item(task, tok, labels, ep, t) for t in TESTS]
    return bridge, tok, items


@torch.no_grad()
def _full_pattern(bridge, item) -> np.ndarray:
    """[layer, head, q, k] of one unbatched forward, read by hand."""
    names = pattern_names(int(bridge.cfg.n_layers))
    seen = {}

    def save(name):
        def hook(t, hook):
            seen[name] = t[0].detach().clone()
            return t
        return hook

    with bridge.hooks(fwd_hooks=[(n, save(n)) for n in names]):
        bridge(torch.tensor([list(item.input_ids)]))
    return torch.stack([seen[n] for n in names]).numpy()


def test_batched_capture_equals_the_pure_function(setup):
    bridge, tok, items = setup
    df = attention_mass(bridge, tok, items, batch_size=2)  # padded batches of different lengths
    assert set(df["scope"]) == {"test", "last"}
    for item in items:
        full = _full_pattern(bridge, item)
        for scope, sel in (("test", Sel.test(generated=False)), ("last", Sel.last())):
            ref = category_mass(full, item, sel)
            got = df[(df.example_id == item.example_id) & (df.scope == scope)]
            np.testing.assert_allclose(got["mass"].to_numpy(), ref["mass"].to_numpy(),
                                       atol=1e-5)
            np.testing.assert_allclose(got["n_keys"].to_numpy(), ref["n_keys"].to_numpy())


def test_real_attention_sums_to_one_over_the_partition(setup):
    bridge, tok, items = setup
    df = attention_mass(bridge, tok, items, count="exact", scopes=("last",))
    sums = df.groupby(["example_id", "layer", "head"])["mass"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-5)
    assert len(sums) == len(items) * int(bridge.cfg.n_layers) * int(bridge.cfg.n_heads)


def test_a_knockout_moves_the_mass_to_zero(setup):
    bridge, tok, items = setup
    ko = Knockout((Block(Sel.test(), Sel.part("demo") & Sel.category("content")),))
    df = attention_mass(bridge, tok, items, knockout=ko, scopes=("test",))
    content = df[df.category == "content"]["mass"]
    assert content.abs().max() < 1e-7
    plain = attention_mass(bridge, tok, items, scopes=("test",))
    assert plain[plain.category == "content"]["mass"].min() > 0


def test_summary_and_bad_scopes(setup):
    bridge, tok, items = setup
    df = attention_mass(bridge, tok, items[:1], scopes=("last",))
    s = summarize_mass(df, by=("layer", "category"))
    assert isinstance(s, pd.DataFrame) and len(s) == int(bridge.cfg.n_layers) * 7
    with pytest.raises(ValueError, match="unknown query scopes"):
        attention_mass(bridge, tok, items, scopes=("first",))
    with pytest.raises(ValueError, match="not in the table"):
        summarize_mass(df, by=("nope",))


# ------------------------------------------------------------------ CLI


def _cli(tiny_dir, out, *extra):
    from icl_tokens.cli import main

    return main(["attention", "--model", str(tiny_dir), "--task", "sst2", "--seeds", "0,1",
                 "--n-test", "3", "--k", "2", "--no-progress", "--out", str(out), *extra])


def test_attention_command_writes_resumes_and_refuses_bad_input(tiny_dir, data_dir, tmp_path,
                                                                capsys):
    out = tmp_path / "a.csv"
    assert _cli(tiny_dir, out, "--aggregation", "--count", "exact") == 0
    df = pd.read_csv(out)
    assert set(df.knockout) == {"icl", "agg"} and set(df.scope) == {"test", "last"}
    sums = df.groupby(["seed", "example_id", "knockout", "scope", "layer", "head"])["mass"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-5)  # exact groups: a partition
    assert len(sums) == 2 * 3 * 2 * 2 * 2 * 4  # seeds x examples x knockouts x scopes x L x H
    assert "queries = last" in capsys.readouterr().out
    n = len(df)
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:-30]) + "\n")  # an interrupted run
    assert _cli(tiny_dir, out, "--aggregation", "--count", "exact") == 0
    again = pd.read_csv(out)
    assert len(again) == n and not again.duplicated("condition").all()
    key = ["seed", "example_id", "condition"]
    pd.testing.assert_frame_equal(again.sort_values(key).reset_index(drop=True),
                                  df.sort_values(key).reset_index(drop=True), atol=1e-6)
    assert _cli(tiny_dir, out, "--count", "each") == 2  # other arguments
    assert "different arguments" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    assert _cli(tiny_dir, bad, "--scopes", "first") == 2
    assert "unknown attention scopes" in capsys.readouterr().err
    assert not bad.exists()
    assert _cli(tiny_dir, bad, "--k", "0") == 2
    assert "--k >= 1" in capsys.readouterr().err


@pytest.mark.integration
def test_gemma_attention_mass_is_a_partition_and_matches_the_pure_function():
    """Gemma-3-270M (sliding-window layers included), SST-2 seed 0, 2 test examples: batched
    capture equals category_mass on one unbatched forward, and exact groups sum to 1."""
    from icl_tokens.data import load_task_data
    from icl_tokens.episodes import sample_episode
    from icl_tokens.models import load_model, load_tokenizer

    torch.set_grad_enabled(False)
    model, tok = load_model(), load_tokenizer()
    task = load_task("sst2")
    ep = sample_episode(load_task_data(task), 0, k=4, n_test=2)
    labels = LabelSet.for_task(task, tok)
    items = [prompt_item(task, tok, labels, ep, t) for t in ep.tests]
    df = attention_mass(model, tok, items, count="exact", batch_size=2)
    sums = df.groupby(["example_id", "scope", "layer", "head"])["mass"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-4)
    ref = category_mass(_full_pattern(model, items[1]), items[1], Sel.last(), count="exact")
    got = df[(df.example_id == items[1].example_id) & (df.scope == "last")]
    np.testing.assert_allclose(got["mass"].to_numpy(), ref["mass"].to_numpy(), atol=1e-4)


def test_mass_heatmap_shows_the_layer_by_category_means():
    from icl_tokens.plotting import mass_heatmap, mass_table

    rows = []
    for ex in ("a", "b"):
        for layer in range(3):
            for head in range(2):
                for c, m in (("template", 0.1 * layer + head), ("content", 0.05 + (ex == "b"))):
                    rows.append({"example_id": ex, "knockout": "icl", "scope": "last",
                                 "layer": layer, "head": head, "category": c, "mass": m,
                                 "mass_per_token": m / 2})
    df = pd.DataFrame(rows)
    t = mass_table(df)
    assert list(t.columns) == ["template", "content"]
    assert t.loc[2, "template"] == pytest.approx(0.2 + 0.5)  # mean over heads 0 and 1
    assert t.loc[0, "content"] == pytest.approx(0.55)  # mean over the two examples
    fig = mass_heatmap(df, value="mass_per_token")
    np.testing.assert_allclose(np.array(fig.data[0].z), mass_table(df, value="mass_per_token"))
    np.testing.assert_allclose(mass_table(df, head=1)["template"], [1.0, 1.1, 1.2])
    with pytest.raises(ValueError, match="scope 'test' is not in the table"):
        mass_table(df, scope="test")
    with pytest.raises(ValueError, match="knockout 'agg' is not in the table"):
        mass_table(df, knockout="agg")
