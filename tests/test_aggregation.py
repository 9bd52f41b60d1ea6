"""The aggregation block, layer windows and the count-matched random control: selections
written out by hand, prefix-forward canaries on tiny models, cached ≡ naive, the runner and the
CLI."""

from __future__ import annotations

import fnmatch

import numpy as np
import pandas as pd
import pytest
import torch

from icl_tokens.ablation import attn_hook_name, knockout_for
from icl_tokens.aggregation.block import AggregationBlock, aggregation_knockout
from icl_tokens.aggregation.experiment import (
    AggregationConfig,
    baseline_path,
    compare_table,
    run_aggregation,
)
from icl_tokens.aggregation.windows import (
    WindowConfig,
    head_knockout,
    random_heads,
    run_layer_windows,
    top_heads,
    window_conditions,
    window_curve,
    windows,
)
from icl_tokens.categorize import categorize
from icl_tokens.cli import main
from icl_tokens.engine import Item, LabelSet, PrefixCache, score_items
from icl_tokens.episodes import Episode
from icl_tokens.experiments.random_control import (
    RandomControlConfig,
    control_names,
    control_table,
    hideable,
    matched_positions,
    run_random_control,
)
from icl_tokens.experiments.representation import representation_items
from icl_tokens.models import gpt2_tokenizer, load_model, load_tokenizer
from icl_tokens.prompts import build_prompt
from icl_tokens.tasks import Example, load_task
from icl_tokens.testing.tiny import tiny_model

DEMOS = (
    Example("train:0", {"text": "a stirring , funny and finally transporting film ."}, "1"),
    Example("train:1", {"text": "the plot is a mess of the worst kind ."}, "0"),
    Example("train:2", {"text": "one of the best films of the year , and a joy ."}, "1"),
)
TESTS = (Example("test:0", {"text": "a gorgeous , witty film ."}, "1"),
         Example("test:1", {"text": "dull and far too long ."}, "0"))


@pytest.fixture(scope="module")
def task():
    return load_task("sst2")


@pytest.fixture(scope="module", params=["gemma", "gpt2"])
def item(request, task):
    tok = load_tokenizer("gemma-3-270m") if request.param == "gemma" else gpt2_tokenizer()
    tp = categorize(build_prompt(task, DEMOS, TESTS[0]), tok)
    return Item.from_prompt(tp, LabelSet.for_task(task, tok))


def _has(item, i, cat):
    return bool(item.has(cat)[i])


# ------------------------------------------------------------------ the selections, by hand
def _expected_pairs(item, queries="all", scope="all"):
    """Blocked (query, key) pairs written out from the block's definition."""
    n = len(item)
    carriers = ("template", "stopword", "label")
    out = set()
    for q in range(n):
        if item.demo[q] < 0 or _has(item, q, "content"):
            continue
        if not any(_has(item, q, c) for c in carriers):
            continue
        roles = item.roles[q]
        if queries == "t_out" and not any(fnmatch.fnmatch(r, "demo_*.t_out.*") for r in roles):
            continue
        if queries == "label" and not _has(item, q, "label"):
            continue
        if queries == "last_colon" and not any(fnmatch.fnmatch(r, "demo_*.t_out.colon")
                                               for r in roles):
            continue
        for k in range(q):
            if item.demo[k] < 0 or not _has(item, k, "content"):
                continue
            if any(_has(item, k, c) for c in carriers):
                continue
            if scope == "own" and item.demo[k] != item.demo[q]:
                continue
            out.add((q, k))
    return out


@pytest.mark.parametrize("queries", ["all", "t_out", "label", "last_colon"])
@pytest.mark.parametrize("scope", ["all", "own"])
def test_block_pairs_match_the_definition(item, queries, scope):
    ko = AggregationBlock(queries, scope, k=len(DEMOS)).knockout()
    dense = np.asarray(ko.resolve(item).dense())
    got = {(int(q), int(k)) for q, k in zip(*np.nonzero(np.tril(dense, -1)))}
    want = _expected_pairs(item, queries, scope)
    assert want, "the prompt has blocked pairs"
    assert got == want
    # Only demonstration queries; the test example and the generated tokens are untouched.
    assert not dense[item.demo < 0].any()
    if queries == "all" and scope == "all":
        assert got > _expected_pairs(item, "t_out", "all") > _expected_pairs(item, "last_colon")


def test_block_variants_names_and_errors():
    assert aggregation_knockout().name == "agg"
    assert AggregationBlock("label", "own", (0, 1, 2), k=4).name == "agg[label,own,L0-2]"
    with pytest.raises(ValueError, match="unknown aggregation queries"):
        AggregationBlock("content")
    with pytest.raises(ValueError, match="pass k"):
        AggregationBlock(scope="own")
    with pytest.raises(ValueError, match="unknown aggregation scope"):
        AggregationBlock(scope="mine")
    with pytest.raises(ValueError, match="zero_shot"):
        AggregationConfig(conditions=("zero_shot", "icl"))


# ------------------------------------------------------------------ canaries on tiny models
@pytest.fixture(scope="module", params=["llama", "gemma3"])
def bridge(request, tmp_path_factory):
    return tiny_model(request.param, tmp_path_factory.mktemp(f"agg_{request.param}"))


def _items(task, tok, conditions, knockout):
    ep = Episode(task="sst2", seed=0, k=len(DEMOS), demos=DEMOS, tests=TESTS)
    return representation_items(task, tok, LabelSet.for_task(task, tok), ep, conditions,
                                knockout)


@torch.no_grad()
def test_prefix_forward_zeroes_blocked_pairs_and_leaves_the_rest(bridge, task):
    """In the cached engine's prefix forward: every blocked pair is exactly 0 in every layer;
    rows of unblocked queries in layer 0, and every row before the first blocked query in every
    layer, are bit-identical to the forward without the block."""
    tok = bridge.tokenizer
    plain = _items(task, tok, ["icl"], knockout_for)[0]
    blocked = plain.with_knockout(aggregation_knockout(), "agg")
    n_layers = bridge.cfg.n_layers
    names = [attn_hook_name(layer, "pattern") for layer in range(n_layers)]

    def patterns(it):
        seen = {}

        def save(t, hook):
            seen.setdefault(hook.name, []).append(t.detach().clone())
            return t

        with bridge.hooks(fwd_hooks=[(n, save) for n in names]):
            score_items(bridge, tok, [it], engine="cached", scoring="label")
        return [seen[n][0][0] for n in names]  # the prefix forward, [h, q, k]

    lp = plain.prefix_len
    dense = np.asarray(blocked.knockout.resolve(blocked).dense())[:lp, :lp]
    assert dense.any()
    rows = dense.any(-1)
    first = int(np.flatnonzero(rows)[0])
    base, agg = patterns(plain), patterns(blocked)
    for layer in range(n_layers):
        assert agg[layer].shape[-1] == lp
        assert torch.all(agg[layer][:, torch.from_numpy(dense)] == 0)
        torch.testing.assert_close(agg[layer].sum(-1), torch.ones_like(agg[layer].sum(-1)))
        assert torch.equal(agg[layer][:, :first], base[layer][:, :first])
    free = torch.from_numpy(~rows)
    assert torch.equal(agg[0][:, free], base[0][:, free])
    assert not torch.equal(agg[0], base[0])


def test_block_items_cached_equal_naive_with_one_prefix(bridge, task):
    tok = bridge.tokenizer
    cfg = AggregationConfig(k=len(DEMOS), conditions=("icl", "+template", "+stopword",
                                                      "icl-content"))
    items = _items(task, tok, cfg.conditions, cfg.knockout)
    cache = PrefixCache()
    cached = score_items(bridge, tok, items, engine="cached", prefix_cache=cache)
    naive = score_items(bridge, tok, items, engine="naive")
    for a, b in zip(cached, naive):
        assert a.label_prediction == b.label_prediction
        for w in a.label_scores:
            assert abs(a.label_scores[w] - b.label_scores[w]) < 1e-4
    assert len(cache) == 1  # one prefix per (seed, block), shared by every condition
    plain = score_items(bridge, tok, _items(task, tok, cfg.conditions, knockout_for),
                        engine="cached")
    assert any(a.label_scores != b.label_scores for a, b in zip(cached, plain))


# ------------------------------------------------------------------ runner and CLI
@pytest.fixture(scope="module")
def tiny_llama(tiny_dir):
    return load_model(str(tiny_dir), device="cpu", dtype=torch.float32), \
        load_tokenizer(str(tiny_dir))


def test_run_aggregation_compare_and_resume(tiny_llama, data_dir, tmp_path):
    model, tok = tiny_llama
    out = tmp_path / "agg.csv"
    cfg = AggregationConfig(model="tiny", task="sst2", seeds=(0, 1), k=2, n_test=3,
                            scoring="label")
    df = run_aggregation(cfg, model=model, tokenizer=tok, out=out, progress=False,
                         log=lambda s: None)
    assert len(df) == 2 * 2 * 3 * 4
    assert set(df["aggregation"]) == {"none", "agg"}
    assert baseline_path(out).exists() and out.exists()
    block = pd.read_csv(out, dtype={"example_id": str})
    assert set(block["aggregation"]) == {"agg"} and len(block) == 2 * 3 * 4
    table = compare_table(df)
    assert list(table.index) == ["icl", "+template", "+stopword", "icl-content"]
    assert table.loc["icl", "n"] == 6
    before = out.read_bytes()
    again = run_aggregation(cfg, model=model, tokenizer=tok, out=out, progress=False,
                            log=lambda s: None)
    assert out.read_bytes() == before and len(again) == len(df)
    # The block rows equal scoring the same knockouts by hand.
    ep_rows = block[(block.seed == 0)].set_index(["example_id", "condition"])
    assert ep_rows.index.is_unique


def test_cli_contract_aggregation(tiny_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "F.csv"
    assert main(["ablate", "--task", "sst2", "--model", str(tiny_dir), "--seeds", "0",
                 "--n-test", "2", "--k", "2", "--conditions=icl,+template,+stopword",
                 "--scoring", "label", "--aggregation", "--out", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "aggregation block agg" in printed
    df = pd.read_csv(out, dtype={"example_id": str})
    assert list(dict.fromkeys(df.condition)) == ["icl", "+template", "+stopword"]
    assert set(df.aggregation) == {"agg"} and len(df) == 6
    assert not baseline_path(out).exists()
    # --compare adds the rows without the block beside; options without --aggregation refused.
    out2 = tmp_path / "G.csv"
    assert main(["ablate", "--task", "sst2", "--model", str(tiny_dir), "--seeds", "0",
                 "--n-test", "2", "--k", "2", "--conditions=icl,+template", "--scoring",
                 "label", "--aggregation", "t_out", "--agg-scope", "own", "--agg-layers", "0",
                 "--compare", "--out", str(out2), "--no-progress"]) == 0
    assert "Δ" in capsys.readouterr().out
    assert set(pd.read_csv(out2).aggregation) == {"agg[t_out,own,L0]"}
    assert set(pd.read_csv(baseline_path(out2)).condition) == {"icl", "+template"}
    for extra, msg in ((["--agg-scope", "own"], "need(s) --aggregation"),
                       (["--aggregation", "--level", "token"], "representation-level"),
                       (["--aggregation", "--agg-layers", "40"], "layer")):
        bad = tmp_path / "bad.csv"
        assert main(["ablate", "--task", "sst2", "--model", str(tiny_dir), "--seeds", "0",
                     "--n-test", "1", "--k", "2", "--out", str(bad), "--no-progress",
                     *extra]) == 2
        assert msg in capsys.readouterr().err
        assert not bad.exists()


# ------------------------------------------------------------------ layer windows
def test_windows_and_their_conditions():
    assert windows(4, 2) == [(0, 1), (1, 2), (2, 3)]
    assert windows(18, 4)[-1] == (14, 17) and len(windows(18, 4)) == 15
    with pytest.raises(ValueError, match="window width"):
        windows(4, 5)
    rows = window_conditions(["+template"], "block", [(0, 1)])
    assert [r.name for r in rows] == ["+template", "+template|agg", "+template|agg@L0-1"]
    cfg = WindowConfig(target="block", k=2)
    ko = cfg.knockout("+template", 2, 3, blocked=True)
    assert [b.layers for b in ko.blocks] == [None, (2, 3)]
    assert [b.layers for b in WindowConfig().knockout("+template", 1, 2, False).blocks] == \
        [(1, 2)]


def test_run_layer_windows_rows_and_curve(tiny_llama, data_dir, tmp_path):
    model, tok = tiny_llama
    n_layers = int(model.cfg.n_layers)
    for target in ("test", "block"):
        cfg = WindowConfig(model="tiny", task="sst2", seeds=(0,), k=2, n_test=2,
                           scoring="label", conditions=("+template",), target=target, width=1)
        df = run_layer_windows(cfg, model=model, tokenizer=tok,
                               out=tmp_path / f"w_{target}.csv", progress=False,
                               log=lambda s: None)
        per = n_layers + (1 if target == "test" else 2)
        assert len(df) == 2 * per
        curve = window_curve(df)
        assert len(curve) == per and list(curve.columns) == ["+template"]
        full = df[(df.window_start == -1) & (df.condition == "+template")]
        assert len(full) == 2


def test_head_knockout_and_top_heads():
    ko = head_knockout("+template", [(1, 0), (1, 2), (0, 3)])
    assert [(b.layers, b.heads) for b in ko.blocks] == [((0,), (3,)), ((1,), (0, 2))]
    mass = pd.DataFrame({"layer": [0, 0, 1, 1], "head": [0, 1, 0, 1],
                         "category": ["template"] * 4, "mass": [0.1, 0.5, 0.3, 0.2]})
    assert top_heads(mass, n=2) == [(0, 1), (1, 0)]
    r = random_heads(2, 2, 2, seed=0, exclude=[(0, 1), (1, 0)])
    assert sorted(r) == [(0, 0), (1, 1)]
    with pytest.raises(ValueError, match="hides nothing"):
        head_knockout("icl", [(0, 0)])


# ------------------------------------------------------------------ random control
def test_matched_positions_hide_exactly_the_count(item):
    for cond in ("+template", "+stopword", "+content", "icl-template", "icl-stopword",
                 "icl-content"):
        n = int(np.asarray(knockout_for(cond).resolve(item).dense())[-1].sum())
        pool = hideable(item.codes)
        for d in range(3):
            pos = matched_positions(item.codes, cond, seed=0, draw=d)
            assert len(pos) == n and len(set(pos.tolist())) == n
            assert pool[pos].all()
            assert (item.demo[pos] >= 0).all()
        assert not np.array_equal(matched_positions(item.codes, cond, 0, 0),
                                  matched_positions(item.codes, cond, 0, 1)) or n in (0, len(
                                      np.flatnonzero(pool)))
        # Deterministic per (seed, condition, draw).
        assert np.array_equal(matched_positions(item.codes, cond, 3, 1),
                              matched_positions(item.codes, cond, 3, 1))


def test_run_random_control(tiny_llama, data_dir, tmp_path):
    model, tok = tiny_llama
    cfg = RandomControlConfig(model="tiny", task="sst2", seeds=(0,), k=2, n_test=2,
                              scoring="label", conditions=("+template", "icl-content"), draws=2)
    df = run_random_control(cfg, model=model, tokenizer=tok, out=tmp_path / "c.csv",
                            progress=False, log=lambda s: None)
    assert list(dict.fromkeys(df.condition)) == control_names(cfg.conditions, 2)
    for c in cfg.conditions:
        sub = df[df.matched == c]
        assert sub.groupby("example_id")["n_hidden"].nunique().eq(1).all()  # matched count
    table = control_table(df)
    assert list(table.index) == ["+template", "icl-content"] and (table.draws == 2).all()
    with pytest.raises(ValueError, match="hide no category"):
        RandomControlConfig(conditions=("icl",))


def test_cli_windows_and_control(tiny_dir, data_dir, tmp_path, capsys):
    common = ["--task", "sst2", "--model", str(tiny_dir), "--seeds", "0", "--n-test", "1",
              "--k", "2", "--no-progress"]
    assert main(["windows", *common, "--conditions", "+template", "--width", "1",
                 "--out", str(tmp_path / "w.csv")]) == 0
    assert "per layer window" in capsys.readouterr().out
    assert main(["control", *common, "--conditions", "icl-content", "--draws", "2",
                 "--out", str(tmp_path / "c.csv")]) == 0
    assert "random draws" in capsys.readouterr().out
    assert main(["control", *common, "--conditions", "zero_shot", "--out",
                 str(tmp_path / "bad.csv")]) == 2
    assert not (tmp_path / "bad.csv").exists()
