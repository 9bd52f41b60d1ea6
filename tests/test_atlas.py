"""The per-token atlas on tiny random models of four architectures: single-key knockouts are
exact (zero attention, cached = naive, batched = one by one), the attribution's gradient and
AtP* estimates match finite differences of the gate, the CSV contract, resuming, the CLI, and
the cross-check and roll-up arithmetic."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from icl_tokens.ablation import attn_hook_name
from icl_tokens.analysis.metrics import add_continuous_metrics
from icl_tokens.atlas import (
    AtlasConfig,
    atlas_items,
    attribute,
    cross_check,
    demo_positions,
    exact_atlas,
    gated_margin,
    read_atlas,
    run_atlas,
    token_knockout,
)
from icl_tokens.atlas.crosscheck import false_negatives, spearman, top_k_overlap
from icl_tokens.atlas.gates import query_rows
from icl_tokens.atlas.rollups import additivity, concentration, effect_shares, role_kind
from icl_tokens.categorize import categorize
from icl_tokens.engine import Item, LabelSet, score_items
from icl_tokens.prompts import build_prompt
from icl_tokens.tasks import Example, load_task
from icl_tokens.testing.tiny import tiny_model

ARCHS = ["gpt2", "llama", "gemma3", "qwen2"]
DEMOS = (Example("d0", {"text": "a stirring , funny film ."}, "1"),
         Example("d1", {"text": "the plot is a mess ."}, "0"))
TEST = Example("t0", {"text": "a gorgeous , witty film ."}, "1")
TREC_DEMOS = (Example("d0", {"text": "How far is it to Denver?"}, "NUM"),
              Example("d1", {"text": "What does NASA stand for?"}, "ABBR"))
TREC_TEST = Example("t0", {"text": "Who wrote Hamlet?"}, "HUM")


@pytest.fixture(scope="module", params=ARCHS)
def model64(request, tmp_path_factory):
    """A tiny model in float64 (finite differences need the precision)."""
    return tiny_model(request.param, tmp_path_factory.mktemp(f"atlas_{request.param}"),
                      dtype=torch.float64)


def _item(model, task="sst2", demos=DEMOS, test=TEST) -> Item:
    spec = load_task(task)
    tok = model.tokenizer
    return Item.from_prompt(categorize(build_prompt(spec, demos, test), tok),
                            LabelSet.for_task(spec, tok))


def test_single_key_knockout_zeroes_attention_in_selected_layers(model64):
    item = _item(model64)
    p = int(demo_positions(item)[-3])
    seen: dict[str, list[torch.Tensor]] = {}

    def save(t, hook):
        seen.setdefault(hook.name, []).append(t.detach().clone())
        return t

    n_layers = model64.cfg.n_layers
    names = [attn_hook_name(la, "pattern") for la in range(n_layers)]
    for layers in (None, [1]):
        seen.clear()
        ko_item = item.with_knockout(token_knockout(p, layers))
        with model64.hooks(fwd_hooks=[(n, save) for n in names]):
            score_items(model64, model64.tokenizer, [ko_item], scoring="label", engine="cached")
        for la, name in enumerate(names):
            suffix = seen[name][-1][0]  # [heads, q, k]: the test rows after the cached prefix
            rows = query_rows(item, suffix.shape[-1], suffix.shape[-2])
            assert len(rows) == suffix.shape[-2]  # every suffix row is a test query
            col = suffix[:, rows, p]
            if layers is None or la in layers:
                assert torch.all(col == 0), name
                torch.testing.assert_close(suffix.sum(-1), torch.ones_like(suffix.sum(-1)))
            elif model64.cfg.n_layers > 1 and la == 0:
                assert (col > 0).any(), name  # outside the window the key stays visible


def test_exact_cached_equals_naive_and_batched_equals_one_by_one(model64):
    item = _item(model64)
    tok = model64.tokenizer
    cached = exact_atlas(model64, tok, item, groups=("icl-template",), batch_size=64)
    naive = exact_atlas(model64, tok, item, groups=("icl-template",), engine="naive",
                        batch_size=64)
    single = exact_atlas(model64, tok, item, groups=("icl-template",), batch_size=1)
    np.testing.assert_allclose(cached.delta_margin(), naive.delta_margin(), atol=1e-5)
    np.testing.assert_allclose(cached.delta_margin(), single.delta_margin(), atol=1e-5)
    assert cached.group_delta("icl-template") == pytest.approx(
        naive.group_delta("icl-template"), abs=1e-5)
    assert np.abs(cached.delta_margin()).max() > 0


def test_gate_at_zero_is_the_knockout_and_gradient_matches_finite_differences(model64):
    item = _item(model64)
    tok = model64.tokenizer
    ex = exact_atlas(model64, tok, item)
    at = attribute(model64, tok, item)
    naive = attribute(model64, tok, item, engine="naive")
    np.testing.assert_allclose(at.grad, naive.grad, atol=1e-9)
    np.testing.assert_allclose(at.atp, naive.atp, atol=1e-9)
    assert at.margin == pytest.approx(ex.base_margin, abs=1e-5)
    n, positions = len(item), ex.positions.tolist()
    for layers in (None, [1]):
        chosen = range(model64.cfg.n_layers) if layers is None else layers
        est = at.estimate("grad", layers)
        for p in (positions[0], positions[len(positions) // 2], positions[-1]):
            def margin(g: float, p: int = p) -> float:
                gate = np.ones(n)
                gate[p] = g
                return gated_margin(model64, tok, item, {la: gate for la in chosen})

            eps = 1e-2
            fd = (margin(1 + eps) - margin(1 - eps)) / (2 * eps)
            # the attention softmax runs in float32 even in a float64 model: ~1e-7 noise / eps
            assert est[p] == pytest.approx(-fd, rel=1e-2, abs=1e-5), (layers, p)
            if layers is None:
                exact = ex.delta_margin()[positions.index(p)]
                assert margin(0.0) - ex.base_margin == pytest.approx(exact, abs=1e-5)


def test_atp_is_the_derivative_along_the_exact_pattern_change(model64):
    """Per layer, AtP* = gradient . (the exact renormalised pattern change of removing k)."""
    item = _item(model64)
    tok = model64.tokenizer
    at = attribute(model64, tok, item)
    p = int(demo_positions(item)[-1])
    n = len(item)
    ids = torch.tensor([item.input_ids])
    rows = torch.from_numpy(query_rows(item, n, n))
    words = item.labels.words
    gold = item.gold
    for layer in range(model64.cfg.n_layers):
        def margin(eps: float, layer: int = layer) -> float:
            def hook(t, hook):
                a = t[:, :, rows]
                new = a.clone()
                new[..., p] = 0
                new = new / new.sum(-1, keepdim=True)
                out = t.clone()
                out[:, :, rows] = a + eps * (new - a)
                return out

            with torch.no_grad(), model64.hooks(fwd_hooks=[(attn_hook_name(layer, "pattern"),
                                                            hook)]):
                lp = torch.log_softmax(model64(ids)[0, -1].double(), -1)
            s = {w: float(lp[item.labels.ids[w][0]]) for w in words}
            return s[gold] - max(v for w, v in s.items() if w != gold)

        eps = 1e-2
        fd = (margin(eps) - margin(-eps)) / (2 * eps)
        assert at.atp[layer, p] == pytest.approx(fd, rel=1e-2, abs=1e-5), layer


@pytest.mark.parametrize("arch", ["llama"])
def test_multi_token_labels_attribution_matches_finite_differences(arch, tmp_path):
    model = tiny_model(arch, tmp_path / arch, dtype=torch.float64)
    tok = model.tokenizer
    item = _item(model, "trec", TREC_DEMOS, TREC_TEST)
    assert item.labels.max_len > 1
    ex = exact_atlas(model, tok, item)
    at = attribute(model, tok, item, base_scores=ex.base.label_scores)
    assert at.margin == pytest.approx(ex.base_margin, abs=1e-5)
    p = int(ex.positions[-2])
    gate = np.ones(len(item))

    def margin(g: float) -> float:
        gate[p] = g
        return gated_margin(model, tok, item, {la: gate.copy() for la in range(2)})

    fd = (margin(1.01) - margin(0.99)) / 0.02
    assert at.estimate("grad")[p] == pytest.approx(-fd, rel=1e-2, abs=1e-5)


def test_atlas_items_and_bad_input(model64):
    item = _item(model64)
    items = atlas_items(item, groups=("icl-content",))
    pos = demo_positions(item)
    assert [it.condition for it in items] == (["icl"] + [f"pos={p}" for p in pos]
                                              + ["group=icl-content"])
    assert pos.size == int((item.demo >= 0).sum())
    with pytest.raises(ValueError, match="already has a knockout"):
        atlas_items(items[1])
    with pytest.raises(ValueError, match="unknown"):
        AtlasConfig(task="sst2", groups=("icl-nothing",))
    with pytest.raises(ValueError, match="k >= 1"):
        AtlasConfig(task="sst2", k=0)
    with pytest.raises(ValueError, match="hides nothing"):
        AtlasConfig(task="sst2", groups=("icl",))


# ------------------------------------------------------------------ the run and its CSV
@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    model = tiny_model("llama", tmp_path_factory.mktemp("atlas_run_llama"))
    return model, model.tokenizer


def _cfg(**kw):
    return AtlasConfig(**{"model": "tiny", "task": "sst2", "seeds": (0, 1), "k": 2,
                          "n_test": 2, **kw})


def _quiet(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["exact_s", "attribution_s"])


def test_run_writes_the_csv_contract_and_resumes(llama, data_dir, tmp_path):
    from icl_tokens.cli.commands import categorize_records

    model, tok = llama
    out = tmp_path / "atlas.csv"
    df = run_atlas(_cfg(), model=model, tokenizer=tok, out=out, progress=False,
                   log=lambda s: None)
    for seed in (0, 1):
        recs = categorize_records("tiny", "sst2", seed, 2, 2, tokenizer=tok)
        for rec in recs:
            rows = df[(df["seed"] == seed) & (df["example_id"] == rec["example_id"])]
            demo = [i for i, t in enumerate(rec["tokens"])
                    if any(r.startswith("demo_") for r in t["roles"])]
            assert rows["position"].tolist() == demo
            for _, r in rows.iterrows():
                t = rec["tokens"][r["position"]]
                assert (r["token"], r["categories"], r["roles"]) == (
                    t["text"], "|".join(t["categories"]), "|".join(t["roles"]))
    # delta_margin: the analysis margin of the knocked-out row minus that of the plain prompt
    spec = load_task("sst2")
    labels = LabelSet.for_task(spec, tok)
    first = df.iloc[[0, len(df) // 2]]
    for _, r in first.iterrows():
        ep_item = _episode_item(r, tok, labels)
        res = score_items(model, tok, [ep_item, ep_item.with_knockout(
            token_knockout(int(r["position"])))], scoring="label", engine="naive")
        tidy = pd.DataFrame([{"task": "sst2", "gold": x.gold,
                              **{f"score_{w}": x.label_scores[w] for w in spec.label_words}}
                             for x in res])
        m = add_continuous_metrics(tidy)["margin"].to_numpy()
        assert r["delta_margin"] == pytest.approx(m[1] - m[0], abs=1e-4)
    assert set(df["flipped"]) <= {0, 1}
    # additivity columns: the group's hidden tokens and its measured effect
    assert df["in_icl-content"].sum() > 0
    # a rerun computes nothing; a lost example is recomputed
    calls: list[str] = []
    again = run_atlas(_cfg(), model=model, tokenizer=tok, out=out, progress=False,
                      log=lambda s: None, on_unit=calls.append)
    assert calls == []
    pd.testing.assert_frame_equal(_quiet(again), _quiet(df))
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    n_last = int(((df["seed"] == df["seed"].iloc[-1])
                  & (df["example_id"] == df["example_id"].iloc[-1])).sum())
    out.write_text("".join(lines[: len(lines) - n_last // 2]), encoding="utf-8")
    resumed = run_atlas(_cfg(), model=model, tokenizer=tok, out=out, progress=False,
                        log=lambda s: None, on_unit=calls.append)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(_quiet(resumed), _quiet(df), atol=2e-6)


def _episode_item(row: pd.Series, tok, labels) -> Item:
    from icl_tokens.data import load_task_data
    from icl_tokens.episodes import sample_episode

    spec = load_task("sst2")
    ep = sample_episode(load_task_data(spec), int(row["seed"]), k=2, n_test=2)
    test = next(t for t in ep.tests if t.id == row["example_id"])
    return Item.from_prompt(categorize(build_prompt(spec, ep.demos, test), tok), labels)


def test_cli_atlas_and_report(tiny_dir, data_dir, tmp_path, capsys):
    from icl_tokens.cli import _resolve
    from icl_tokens.cli.atlas import add_atlas_parsers

    parser = argparse.ArgumentParser()
    add_atlas_parsers(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "a.csv"
    args = parser.parse_args(["atlas", "--model", str(tiny_dir), "--task", "sst2", "--seeds",
                              "0", "--k", "2", "--n-test", "2", "--layers", "0",
                              "--groups", "icl-template", "--out", str(out), "--no-progress"])
    assert _resolve(args.handler)(args) == 0
    text = capsys.readouterr().out
    assert "cross-check" in text and "additivity" in text and "spearman" in text
    df = read_atlas(out)
    assert {"group_icl-template", "in_icl-template"} <= set(df.columns)
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["identity"]["layers"] == [0]
    args = parser.parse_args(["atlas-report", str(out), "--threshold", "0.0"])
    assert _resolve(args.handler)(args) == 0
    assert "share of total" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["atlas", "--layers", "3-1", "--out", str(out)])


# ------------------------------------------------------------------ cross-check and roll-ups
def _frame() -> pd.DataFrame:
    rows = []
    for ex, scale in (("a", 1.0), ("b", 2.0)):
        for i, (cat, role, d) in enumerate([("template", "demo_1.t_out.colon", 0.5),
                                            ("content", "demo_1.d_in.text", -0.05),
                                            ("content", "demo_2.d_in.text", 0.2),
                                            ("label", "demo_2.d_out", 0.25)]):
            rows.append({"model": "m", "task": "t", "seed": 0, "example_id": ex,
                         "position": i, "categories": cat, "roles": role,
                         "delta_margin": d * scale, "attribution": d * scale * 0.9,
                         "attribution_atp": -d, "exact_s": 2.0, "attribution_s": 0.5,
                         "in_icl-content": int(cat == "content"),
                         "group_icl-content": 0.3 * scale})
    return pd.DataFrame(rows)


def test_ranking_measures():
    x = np.array([3.0, -2.0, 1.0, 0.0])
    assert spearman(x, 2 * x) == pytest.approx(1.0)
    assert np.isnan(spearman(x, np.ones(4)))
    assert top_k_overlap(x, np.array([0.0, 5.0, 0.0, 4.0]), 2) == 0.5  # {0,1} vs {1,3}
    assert false_negatives(x, np.array([0.0, 5.0, 0.0, 4.0]), 2, 1.5) == (2, 1)


def test_cross_check_and_rollups_on_a_known_frame():
    df = _frame()
    cc = cross_check(df, ks=(2,), threshold=0.3, n_boot=200).set_index("method")
    assert cc.loc["attribution", "spearman"] == pytest.approx(1.0)
    assert cc.loc["attribution_atp", "spearman"] == pytest.approx(-1.0)
    assert cc.loc["attribution", "fnr2"] == pytest.approx(0.25)  # b's 0.4 is third
    assert cc.loc["attribution", "n_above"] == 4  # 0.5 in a; 1.0, 0.4 and 0.5 in b
    assert cc.loc["attribution", "speedup"] == pytest.approx(4.0)
    sh = effect_shares(df, "categories", n_boot=100).set_index("group")
    assert sh["share"].sum() == pytest.approx(1.0)
    assert sh.loc["template", "share"] == pytest.approx(0.5)
    assert sh.loc["content", "token_share"] == pytest.approx(0.5)
    roles = effect_shares(df, "role", n_boot=100)
    assert set(roles["group"]) == {"t_out.colon", "d_in.text", "d_out"}
    conc = concentration(df, "categories", 0.8, n_boot=100).set_index("group")
    assert conc.loc["content", "carriers"] == 1.0  # 0.2 of 0.25 is 80 %
    add = additivity(df, n_boot=100).iloc[0]
    assert add["summed"] == pytest.approx(0.15 * 1.5)
    assert add["measured"] == pytest.approx(0.45)
    assert add["interaction"] == pytest.approx(0.45 - 0.225)
    assert role_kind("demo_12.d_in.text|demo_12.t_in.newline") == "d_in.text|t_in.newline"
    with pytest.raises(ValueError, match="no group_"):
        additivity(df.drop(columns=["group_icl-content"]))
