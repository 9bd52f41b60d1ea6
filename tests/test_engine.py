"""Canary and equivalence tests of the knockout engine on tiny random models of four
architectures (GPT-2, Llama, Gemma-3 with a small sliding window, Qwen2), built locally."""

from __future__ import annotations

import pytest
import torch

from icl_tokens.categorize import categorize
from icl_tokens.episodes import Episode
from icl_tokens.engine.scoring import Job, make_jobs, score_jobs
from icl_tokens.ablation.hooks import attention_knockout, attn_hook_name
from icl_tokens.ablation.conditions import PAPER_ORDER, condition_knockout, custom_knockout
from icl_tokens.models import tiny_hf_model, tiny_model
from icl_tokens.prompts import build_prompt
from icl_tokens.tasks import Example, load_task

ARCHS = ["gpt2", "llama", "gemma3", "qwen2"]

DEMOS = (
    Example("train:0", {"text": "a stirring , funny and finally transporting film ."}, "1"),
    Example("train:1", {"text": "the plot is a mess of the worst kind ."}, "0"),
    Example("train:2", {"text": "one of the best films of the year , and a joy ."}, "1"),
    Example("train:3", {"text": "dull , lifeless and into nothing ."}, "0"),
)
TESTS = (
    Example("test:0", {"text": "a gorgeous , witty film ."}, "1"),
    Example("test:1", {"text": "the movie is boring and far too long , with nothing of note ."}, "0"),
    Example("test:2", {"text": "great ."}, "1"),
)


@pytest.fixture(scope="module", params=ARCHS)
def arch(request):
    return request.param


@pytest.fixture(scope="module")
def built(arch, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"tiny_{arch}")
    bridge = tiny_model(arch, d)
    hf = tiny_hf_model(d)
    return arch, bridge, hf, bridge.tokenizer


@pytest.fixture(scope="module")
def task():
    return load_task("sst2")


def _tp(task, tok, test=TESTS[1], demos=DEMOS):
    return categorize(build_prompt(task, demos, test), tok)


def _episode(demos=DEMOS, tests=TESTS):
    return Episode(task="sst2", seed=0, k=len(demos), demos=demos, tests=tests)


def _ids(tp):
    return torch.tensor([tp.input_ids])


@torch.no_grad()
def test_empty_mask_leaves_logits_bit_identical(built, task):
    _, bridge, _, tok = built
    tp = _tp(task, tok)
    base = bridge(_ids(tp))
    empty = torch.zeros(1, len(tp), len(tp), dtype=torch.bool)
    with attention_knockout(bridge, empty) as ko:
        hooked = bridge(_ids(tp))
    assert ko.calls == bridge.cfg.n_layers
    assert torch.equal(base, hooked)


@torch.no_grad()
def test_mask_zeroes_attention_everywhere_and_changes_logits(built, task):
    _, bridge, _, tok = built
    tp = _tp(task, tok)
    ko_spec = condition_knockout(tp, "none")
    mask = ko_spec.dense()[None]
    assert mask.any()
    patterns = {}

    def save(t, hook):
        patterns[hook.name] = t.detach().clone()
        return t

    base = bridge(_ids(tp))
    names = [attn_hook_name(layer, "pattern") for layer in range(bridge.cfg.n_layers)]
    with attention_knockout(bridge, mask) as ko:
        with bridge.hooks(fwd_hooks=[(n, save) for n in names]):
            out = bridge(_ids(tp))
    assert ko.calls == bridge.cfg.n_layers
    assert len(patterns) == bridge.cfg.n_layers
    m = mask[:, None].expand_as(patterns[names[0]])
    for name, p in patterns.items():
        assert p.shape[1] == bridge.cfg.n_heads
        assert torch.all(p[m] == 0), name  # exactly zero, every layer and head
        torch.testing.assert_close(p.sum(-1), torch.ones_like(p.sum(-1)))  # renormalised
    assert not torch.allclose(out, base)


@torch.no_grad()
def test_pattern_mode_does_not_renormalise(built, task):
    _, bridge, _, tok = built
    tp = _tp(task, tok)
    mask = condition_knockout(tp, "none").dense()[None]
    seen = {}

    def save(t, hook):
        seen[hook.name] = t.detach().clone()
        return t

    name = attn_hook_name(0, "pattern")
    with bridge.hooks(fwd_hooks=[(name, save)]):
        bridge(_ids(tp))
    base = seen[name]
    # A later hook on the same point sees the zeroed pattern.
    with attention_knockout(bridge, mask, mode="pattern", layers=[0]):
        with bridge.hooks(fwd_hooks=[(name, save)]):
            bridge(_ids(tp))
    p = seen[name]
    m = mask[:, None].expand_as(p)
    assert torch.all(p[m] == 0)
    # Not renormalised: the pattern is the baseline with the masked entries set to zero,
    # so rows lose exactly the mass they had on the masked keys.
    torch.testing.assert_close(p, base.masked_fill(m, 0.0))
    lost = base.masked_fill(~m, 0.0).sum(-1)
    assert lost.max() > 1e-3
    torch.testing.assert_close(p.sum(-1), 1 - lost)


@torch.no_grad()
def test_knockout_equals_hf_4d_additive_mask(built, task):
    arch, bridge, hf, tok = built
    tp = _tp(task, tok)
    n = len(tp)
    mask = condition_knockout(tp, "-template").dense()
    assert mask.any()
    with attention_knockout(bridge, mask[None]):
        ours = bridge(_ids(tp))
    causal = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)

    def additive(blocked):
        return torch.zeros(1, 1, n, n).masked_fill(blocked | mask, float("-inf"))

    window = getattr(hf.config, "sliding_window", None)
    if arch == "gemma3":
        # Gemma-3 takes one 4-D mask per layer type; sliding layers see keys with q - k < window.
        assert window is not None and n > window
        q = torch.arange(n)[:, None]
        k = torch.arange(n)[None, :]
        attn = {"full_attention": additive(causal),
                "sliding_attention": additive(causal | (q - k >= window))}
    else:
        attn = additive(causal)
    ref = hf(_ids(tp), attention_mask=attn).logits
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


@torch.no_grad()
def test_hooks_removed_after_exception(built, task):
    _, bridge, _, tok = built
    tp = _tp(task, tok)
    base = bridge(_ids(tp))
    mask = condition_knockout(tp, "none").dense()[None]
    with pytest.raises(RuntimeError, match="boom"):
        with attention_knockout(bridge, mask):
            bridge(_ids(tp))
            raise RuntimeError("boom")
    assert torch.equal(bridge(_ids(tp)), base)
    wrong = torch.zeros(1, 3, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="mask has shape"):
        with attention_knockout(bridge, wrong):
            bridge(_ids(tp))
    assert torch.equal(bridge(_ids(tp)), base)


def _compare(a, b, atol=1e-4):
    assert [(r.example_id, r.condition) for r in a] == [(r.example_id, r.condition) for r in b]
    for x, y in zip(a, b):
        for w in x.label_scores:
            assert abs(x.label_scores[w] - y.label_scores[w]) <= atol, (x.condition, w)
        assert x.label_prediction == y.label_prediction
        assert x.generated_ids == y.generated_ids, (x.example_id, x.condition)


def test_cached_equals_naive_all_conditions(built, task):
    _, bridge, _, tok = built
    jobs = make_jobs(task, tok, _episode(), list(PAPER_ORDER))
    assert max(j.n for j in jobs) > 16  # longer than the tiny Gemma's sliding window
    naive = score_jobs(bridge, tok, jobs, engine="naive", batch_size=4)
    cached = score_jobs(bridge, tok, jobs, engine="cached", batch_size=4)
    _compare(naive, cached)
    assert any(r.generated_ids for r in cached)


def test_batched_equals_one_by_one(built, task):
    _, bridge, _, tok = built
    jobs = make_jobs(task, tok, _episode(), ["icl", "-template", "+content", "zero_shot"])
    assert len({j.n for j in jobs}) > 1  # mixed lengths => padding is exercised
    for engine in ("naive", "cached"):
        single = score_jobs(bridge, tok, jobs, engine=engine, batch_size=1)
        batched = score_jobs(bridge, tok, jobs, engine=engine, batch_size=16)
        _compare(single, batched, atol=1e-4)


def test_multi_token_labels_teacher_forced(built):
    """TREC's label words are several GPT-2 tokens: cached and naive sums must agree."""
    _, bridge, _, tok = built
    trec = load_task("trec")
    demos = (Example("d0", {"text": "How far is it to Denver?"}, "NUM"),
             Example("d1", {"text": "What does NASA stand for?"}, "ABBR"))
    tests = (Example("t0", {"text": "Who wrote Hamlet?"}, "HUM"),)
    ep = Episode(task="trec", seed=0, k=2, demos=demos, tests=tests)
    jobs = make_jobs(trec, tok, ep, ["icl", "-content"])
    assert any(len(v) > 1 for v in jobs[0].labels.values())
    _compare(score_jobs(bridge, tok, jobs, engine="naive", scoring="label"),
             score_jobs(bridge, tok, jobs, engine="cached", scoring="label"))
    # The sum really covers every label token: recompute one by hand.
    job = jobs[0]
    word = next(w for w, t in job.labels.items() if len(t) > 1)
    ids = torch.tensor([job.tp.input_ids + job.labels[word]])
    with torch.no_grad():
        logp = torch.log_softmax(bridge(ids)[0].float(), -1)
    n = len(job.tp.input_ids)
    manual = sum(float(logp[n - 1 + i, t]) for i, t in enumerate(job.labels[word]))
    got = score_jobs(bridge, tok, [Job(job.tp, None, "icl", job.labels)], scoring="label")[0]
    assert abs(got.label_scores[word] - manual) < 1e-4


@torch.no_grad()
def test_greedy_equals_hf_greedy(built, task):
    _, bridge, hf, tok = built
    jobs = make_jobs(task, tok, _episode(), ["icl", "zero_shot"])
    res = score_jobs(bridge, tok, jobs, engine="cached", max_new_tokens=6)
    for job, r in zip(jobs, res):
        ids = torch.tensor([job.tp.input_ids])
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                          max_new_tokens=6, pad_token_id=tok.eos_token_id)
        ref = out[0, ids.shape[1]:].tolist()
        assert r.generated_ids == ref[: len(r.generated_ids)]
        assert len(r.generated_ids) == 6 or "\n" in tok.decode(r.generated_ids) or \
            r.generated_ids[-1] == tok.eos_token_id


def test_cached_refuses_demonstration_internal_masks(built, task):
    _, bridge, _, tok = built
    tp = _tp(task, tok)
    ko = custom_knockout(tp, queries=["template"], keys=["content"])
    assert ko.first_query is not None and ko.first_query < tp.prefix_len
    job = Job(tp, ko, "demo_internal", {"Positive": [0], "Negative": [1]})
    with pytest.raises(ValueError, match="engine='naive'"):
        score_jobs(bridge, tok, [job], engine="cached", scoring="label")
    score_jobs(bridge, tok, [job], engine="naive", scoring="label")  # the naive engine runs it


def test_empty_kv_cache_is_caught(built, task, monkeypatch):
    """The transformers-5.24 failure mode: the bridge's cache stays empty."""
    from transformers import cache_utils

    _, bridge, _, tok = built
    jobs = make_jobs(task, tok, _episode(tests=TESTS[:1]), ["icl"])

    def no_store(self, key_states, value_states, *a, **k):
        return key_states, value_states

    monkeypatch.setattr(cache_utils.DynamicLayer, "update", no_store)
    with pytest.raises(RuntimeError, match="did not fill"):
        score_jobs(bridge, tok, jobs, engine="cached")


def test_bad_layers_and_heads(built, task):
    _, bridge, _, tok = built
    tp = _tp(task, tok)
    mask = condition_knockout(tp, "none").dense()[None]
    n = bridge.cfg.n_layers
    with pytest.raises(ValueError, match="out of range"):
        with attention_knockout(bridge, mask, layers=[n]):
            pass
    with pytest.raises(ValueError, match="out of range"):
        with attention_knockout(bridge, mask, heads=[bridge.cfg.n_heads]):
            pass
    with pytest.raises(ValueError, match="unknown knockout mode"):
        with attention_knockout(bridge, mask, mode="zero"):
            pass


@torch.no_grad()
def test_layer_and_head_subsets(built, task):
    _, bridge, _, tok = built
    tp = _tp(task, tok)
    mask = condition_knockout(tp, "none").dense()[None]
    seen = {}

    def save(t, hook):
        seen[hook.name] = t.detach().clone()
        return t

    names = [attn_hook_name(layer, "pattern") for layer in range(bridge.cfg.n_layers)]
    with bridge.hooks(fwd_hooks=[(n, save) for n in names]):
        bridge(_ids(tp))
    base = dict(seen)
    with attention_knockout(bridge, mask, layers=[-1], heads=[0]) as ko:
        with bridge.hooks(fwd_hooks=[(n, save) for n in names]):
            bridge(_ids(tp))
    assert ko.calls == 1 and ko.layers == [bridge.cfg.n_layers - 1]
    last = seen[names[-1]]
    assert torch.all(last[:, 0][mask] == 0)
    assert not torch.equal(last[:, 0], base[names[-1]][:, 0])
    # Other heads of the knocked-out layer and every earlier layer are untouched.
    assert torch.equal(last[:, 1:], base[names[-1]][:, 1:])
    for n in names[:-1]:
        assert torch.equal(seen[n], base[n])
