"""Integration tests on the real default model (Gemma-3-270M, converted offline once)."""

from __future__ import annotations

import json

import pytest
import torch

from icl_tokens.ablation import PAPER_ORDER, Block, Knockout, Sel, knockout_for
from icl_tokens.data import load_task_data
from icl_tokens.engine import LabelSet, PrefixCache, score_items
from icl_tokens.episodes import sample_episode
from icl_tokens.experiments.representation import representation_items
from icl_tokens.tasks import load_task

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gemma():
    from icl_tokens.models import load_model, load_tokenizer

    torch.set_grad_enabled(False)
    return load_model("gemma-3-270m"), load_tokenizer("gemma-3-270m")


def make_jobs(task, tok, ep, conditions):
    return representation_items(task, tok, LabelSet.for_task(task, tok), ep, conditions,
                                knockout_for)


@pytest.fixture(scope="module")
def sst2():
    return load_task("sst2"), load_task_data("sst2")


def test_knockout_visibly_works_on_the_real_model(gemma, sst2):
    """Standard ICL must beat the all-demonstration-tokens-hidden condition by a wide margin."""
    model, tok = gemma
    task, data = sst2
    accs = {}
    for seed in (0, 1):
        ep = sample_episode(data, seed, k=4, n_test=24)
        res = score_items(model, tok, make_jobs(task, tok, ep, ["icl", "none"]),
                         scoring="generate", engine="cached")
        for r in res:
            accs.setdefault(r.condition, []).append(r.gen_correct)
    icl = 100 * sum(accs["icl"]) / len(accs["icl"])
    none = 100 * sum(accs["none"]) / len(accs["none"])
    assert icl >= 70, icl
    assert icl - none >= 15, (icl, none)


def test_cached_equals_naive_on_gemma(gemma, sst2):
    model, tok = gemma
    task, data = sst2
    ep = sample_episode(data, 0, k=4, n_test=2)
    jobs = make_jobs(task, tok, ep, list(PAPER_ORDER))
    naive = score_items(model, tok, jobs, engine="naive", batch_size=9)
    cached = score_items(model, tok, jobs, engine="cached", batch_size=9)
    for a, b in zip(naive, cached):
        assert a.condition == b.condition and a.example_id == b.example_id
        assert max(abs(a.label_scores[w] - b.label_scores[w]) for w in a.label_scores) < 1e-4
        assert a.generated_ids == b.generated_ids
        assert a.label_prediction == b.label_prediction


def test_greedy_equals_hf_greedy_on_gemma(gemma, sst2):
    from transformers import AutoModelForCausalLM

    from icl_tokens.models import ensure_model_dir

    model, tok = gemma
    task, data = sst2
    hf = AutoModelForCausalLM.from_pretrained(ensure_model_dir("gemma-3-270m"),
                                              attn_implementation="eager").eval()
    ep = sample_episode(data, 0, k=4, n_test=2)
    jobs = make_jobs(task, tok, ep, ["icl", "zero_shot"])
    res = score_items(model, tok, jobs, engine="cached", max_new_tokens=5)
    for job, r in zip(jobs, res):
        ids = torch.tensor([list(job.input_ids)])
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                          max_new_tokens=5)
        assert r.generated_ids == out[0, ids.shape[1]:].tolist()[: len(r.generated_ids)]


def test_label_words_single_token_on_gemma_for_sst2(gemma, sst2):
    _, tok = gemma
    task, data = sst2
    ep = sample_episode(data, 0, k=4, n_test=1)
    job = make_jobs(task, tok, ep, ["icl"])[0]
    assert all(len(v) == 1 for v in job.labels.ids.values())
    assert job.input_ids[0] == tok.bos_token_id


def test_categorize_json_is_deterministic_on_gemma(tmp_path):
    from icl_tokens.cli import main

    outs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.jsonl"
        assert main(["categorize", "--model", "gemma-3-270m", "--task", "agnews", "--seed", "2",
                     "--n-test", "3", "--json", "--out", str(out)]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    first = json.loads(outs[0].decode().splitlines()[0])
    assert first["tokens"][0] == {"id": 2, "text": "<bos>", "start": 0, "end": 0,
                                  "categories": ["bos"], "roles": ["bos"]}
    assert first["prompt"].endswith("\nAnswer:")
    assert set(first["labels"]) == {"World", "Sports", "Business", "Technology"}


def test_demonstration_internal_block_cached_equals_naive_on_gemma(gemma, sst2):
    """A composed knockout (aggregation block inside the demonstrations + a test condition) on
    the real model: the cached engine computes the prefix under the block and agrees."""
    model, tok = gemma
    task, data = sst2
    ep = sample_episode(data, 0, k=4, n_test=2)
    agg = Knockout((Block(Sel.part("demo") & Sel.category("template", "stopword", "label"),
                          Sel.part("demo") & Sel.category("content")
                          & ~Sel.category("template", "stopword", "label")),), name="agg")
    items = [it.with_knockout(agg if it.knockout is None else it.knockout | agg,
                              f"agg|{it.condition}")
             for it in make_jobs(task, tok, ep, ["icl", "+template", "icl-content"])]
    cache = PrefixCache()
    cached = score_items(model, tok, items, engine="cached", prefix_cache=cache)
    naive = score_items(model, tok, items, engine="naive", batch_size=6)
    assert len(cache) == 1
    for a, b in zip(naive, cached):
        assert max(abs(a.label_scores[w] - b.label_scores[w]) for w in a.label_scores) < 1e-4
        assert a.generated_ids == b.generated_ids


def test_float16_gemma_fails_with_a_dtype_hint(tmp_path, capsys):
    """Gemma-3 overflows in float16 (NaN logits): the run stops with a clear message, exit 2."""
    from icl_tokens.cli import main

    out = tmp_path / "fp16.csv"
    code = main(["ablate", "--model", "gemma-3-270m", "--task", "sst2", "--seeds", "0",
                 "--n-test", "1", "--conditions", "icl", "--scoring", "label", "--dtype",
                 "float16", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "float16" in err and "dtype" in err
    assert not out.exists()
