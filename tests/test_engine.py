"""Canary and equivalence tests of the knockout engine on tiny random models of four
architectures (GPT-2, Llama, Gemma-3 with a small sliding window, Qwen2), built locally."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from icl_tokens.ablation import (
    PAPER_ORDER,
    Block,
    Knockout,
    Sel,
    attention_knockout,
    attn_hook_name,
    condition_knockout,
    knockout_for,
)
from icl_tokens.categorize import categorize
from icl_tokens.engine import Item, LabelSet, NumericsError, PrefixCache, score_items
from icl_tokens.episodes import Episode
from icl_tokens.experiments.representation import representation_items
from icl_tokens.prompts import build_prompt
from icl_tokens.tasks import Example, load_task
from icl_tokens.testing.tiny import tiny_hf_model, tiny_model

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


def make_items(task, tok, episode, conditions):
    labels = LabelSet.for_task(task, tok)
    return representation_items(task, tok, labels, episode, conditions, knockout_for)


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
    mask = condition_knockout(tp, "icl-template").dense()
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
    items = make_items(task, tok, _episode(), list(PAPER_ORDER))
    assert max(len(j) for j in items) > 16  # longer than the tiny Gemma's sliding window
    naive = score_items(bridge, tok, items, engine="naive", batch_size=4)
    cached = score_items(bridge, tok, items, engine="cached", batch_size=4)
    _compare(naive, cached)
    assert any(r.generated_ids for r in cached)


def test_batched_equals_one_by_one(built, task):
    _, bridge, _, tok = built
    items = make_items(task, tok, _episode(), ["icl", "icl-template", "+content", "zero_shot"])
    assert len({len(j) for j in items}) > 1  # mixed lengths => padding is exercised
    for engine in ("naive", "cached"):
        single = score_items(bridge, tok, items, engine=engine, batch_size=1)
        batched = score_items(bridge, tok, items, engine=engine, batch_size=16)
        _compare(single, batched, atol=1e-4)


def test_multi_token_labels_teacher_forced(built):
    """TREC's label words are several GPT-2 tokens: cached and naive sums must agree."""
    _, bridge, _, tok = built
    trec = load_task("trec")
    demos = (Example("d0", {"text": "How far is it to Denver?"}, "NUM"),
             Example("d1", {"text": "What does NASA stand for?"}, "ABBR"))
    tests = (Example("t0", {"text": "Who wrote Hamlet?"}, "HUM"),)
    ep = Episode(task="trec", seed=0, k=2, demos=demos, tests=tests)
    items = make_items(trec, tok, ep, ["icl", "icl-content"])
    assert any(len(v) > 1 for v in items[0].labels.ids.values())
    _compare(score_items(bridge, tok, items, engine="naive", scoring="label"),
             score_items(bridge, tok, items, engine="cached", scoring="label"))
    # The sum really covers every label token: recompute one by hand.
    item = items[0]
    word = next(w for w, t in item.labels.ids.items() if len(t) > 1)
    ids = torch.tensor([list(item.input_ids) + list(item.labels.ids[word])])
    with torch.no_grad():
        logp = torch.log_softmax(bridge(ids)[0].float(), -1)
    n = len(item)
    manual = sum(float(logp[n - 1 + i, t]) for i, t in enumerate(item.labels.ids[word]))
    got = score_items(bridge, tok, [item], scoring="label")[0]
    assert abs(got.label_scores[word] - manual) < 1e-4


@torch.no_grad()
def test_greedy_equals_hf_greedy(built, task):
    _, bridge, hf, tok = built
    items = make_items(task, tok, _episode(), ["icl", "zero_shot"])
    res = score_items(bridge, tok, items, engine="cached", max_new_tokens=6)
    for item, r in zip(items, res):
        ids = torch.tensor([list(item.input_ids)])
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                          max_new_tokens=6, pad_token_id=tok.eos_token_id)
        ref = out[0, ids.shape[1]:].tolist()
        assert r.generated_ids == ref[: len(r.generated_ids)]
        assert len(r.generated_ids) == 6 or "\n" in tok.decode(r.generated_ids) or \
            r.generated_ids[-1] == tok.eos_token_id


def test_empty_kv_cache_is_caught(built, task, monkeypatch):
    """The transformers-5.24 failure mode: the bridge's cache stays empty."""
    from transformers import cache_utils

    _, bridge, _, tok = built
    items = make_items(task, tok, _episode(tests=TESTS[:1]), ["icl"])

    def no_store(self, key_states, value_states, *a, **k):
        return key_states, value_states

    monkeypatch.setattr(cache_utils.DynamicLayer, "update", no_store)
    with pytest.raises(RuntimeError, match="did not fill"):
        score_items(bridge, tok, items, engine="cached")


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


# ------------------------------------------------------------------ composed knockouts
#: Demonstration-internal aggregation block: template/stopword/label tokens of the
#: demonstrations may not read pure-content demonstration tokens.
AGG = Knockout((Block(Sel.part("demo") & Sel.category("template", "stopword", "label"),
                      Sel.part("demo") & Sel.category("content")
                      & ~Sel.category("template", "stopword", "label")),), name="agg")
#: Only the colon tokens of the demonstrations, in layer 1, heads 0 and 2.
COLON = Knockout((Block(Sel.role("demo_*.t_out.colon") | Sel.category("label"),
                        Sel.part("demo") & Sel.category("content"), layers=(1,),
                        heads=(0, 2)),), name="colon")


def _composed_items(task, tok):
    base = make_items(task, tok, _episode(), ["icl"])
    items = []
    for it in base:
        for cond in ("+template", "icl-content", "none"):
            ko = knockout_for(cond)
            items.append(it.with_knockout(ko | AGG, f"{cond}|agg"))
            items.append(it.with_knockout(knockout_for(cond, layers=[0], heads=[1]) | COLON,
                                          f"{cond}|colon"))
        items.append(it.with_knockout(AGG, "agg"))
    return items


def test_composed_cached_equals_naive(built, task):
    _, bridge, _, tok = built
    items = _composed_items(task, tok)
    naive = score_items(bridge, tok, items, engine="naive", batch_size=4)
    cache = PrefixCache()
    cached = score_items(bridge, tok, items, engine="cached", batch_size=4, prefix_cache=cache)
    _compare(naive, cached)
    # One prefix per distinct prefix-side intervention: agg, agg-in-the-colon-variant, ...
    # the +template/icl-content/none blocks add nothing inside the prefix.
    assert len(cache) == 2
    plain = score_items(bridge, tok, make_items(task, tok, _episode(), ["+template"]))
    # The demonstration-internal block really changes the scores.
    agg = [r for r in cached if r.condition == "+template|agg"]
    assert any(abs(a.label_scores[w] - b.label_scores[w]) > 1e-6
               for a, b in zip(agg, plain) for w in a.label_scores)


def test_composed_batched_equals_one_by_one(built, task):
    _, bridge, _, tok = built
    items = _composed_items(task, tok)[:8]
    for engine in ("naive", "cached"):
        _compare(score_items(bridge, tok, items, engine=engine, batch_size=1),
                 score_items(bridge, tok, items, engine=engine, batch_size=8))


@torch.no_grad()
def test_composed_blocked_pairs_get_exactly_zero_attention(built, task):
    """Prefix and suffix forwards of the cached engine: every blocked pair is 0 in every layer
    and head the block covers; the rest of each row renormalises."""
    _, bridge, _, tok = built
    item = make_items(task, tok, _episode(tests=TESTS[1:2]), ["icl"])[0]
    item = item.with_knockout(knockout_for("+template") | AGG | COLON, "composed")
    n_layers, n_heads = bridge.cfg.n_layers, bridge.cfg.n_heads
    ko = item.knockout.resolve(item, n_layers, n_heads)
    pos = np.arange(len(item))
    want = ko.masks(pos, pos, n_layers, n_heads)  # {layer: [q, k] or [h, q, k]}
    assert want and all(m.any() for m in want.values())
    lp = item.prefix_len
    assert any(m[..., :lp, :lp].any() for m in want.values())  # prefix-side pairs exist
    seen = {}

    def save(t, hook):
        seen.setdefault(hook.name, []).append(t.detach().clone())
        return t

    names = [attn_hook_name(layer, "pattern") for layer in range(n_layers)]
    with bridge.hooks(fwd_hooks=[(n, save) for n in names]):
        score_items(bridge, tok, [item], engine="cached", scoring="label")
    for layer, name in enumerate(names):
        prefix_p, suffix_p = seen[name][0][0], seen[name][1][0]  # [h, q, k]
        assert prefix_p.shape[-2:] == (lp, lp)
        assert suffix_p.shape[-2:] == (len(item) - lp, len(item))
        full = torch.zeros(n_heads, len(item), len(item))
        full[:, :lp, :lp] = prefix_p
        full[:, lp:, :] = suffix_p
        blocked = want.get(layer)
        if blocked is None:
            continue
        blocked = torch.from_numpy(np.broadcast_to(blocked, (n_heads, len(item), len(item))))
        assert torch.all(full[blocked] == 0), name
        torch.testing.assert_close(full.sum(-1), torch.ones(n_heads, len(item)))


def test_token_removed_items_cached_equals_naive(built, task):
    _, bridge, _, tok = built
    base = make_items(task, tok, _episode(), ["icl"])
    items = []
    for it in base:
        drop = it.has("content") & (it.demo >= 0)  # the demonstrations' content tokens
        kept = it.keep(~drop, condition="demo-content-removed")
        assert len(kept) == len(it) - int(drop.sum())
        assert kept.prefix_len == it.prefix_len - int(drop[: it.prefix_len].sum())
        items += [kept, kept.with_knockout(knockout_for("+template"), "removed|+template")]
    cache = PrefixCache()
    _compare(score_items(bridge, tok, items, engine="naive"),
             score_items(bridge, tok, items, engine="cached", prefix_cache=cache))
    assert len(cache) == 1  # the three test examples share the removed prefix


def test_hand_written_item_scores(built):
    _, bridge, _, tok = built
    labels = LabelSet.from_words(tok, ["yes", "no"], context="Answer:")
    text = "Question: is the sky blue?\nAnswer: yes\n\nQuestion: is grass red?\nAnswer:"
    item = Item.from_text(tok, text, gold="no", labels=labels,
                          prefix_chars=text.index("Question: is grass"))
    assert 0 < item.prefix_len < len(item)
    ko = Knockout((Block(Sel.positions(range(item.prefix_len, len(item))) | Sel.generated(),
                         Sel.positions([1, 2, 3])),))
    hooked = item.with_knockout(ko, "hand")
    _compare(score_items(bridge, tok, [item, hooked], engine="naive"),
             score_items(bridge, tok, [item, hooked], engine="cached"))


def test_nan_scores_fail_with_a_dtype_hint(built, task):
    _, bridge, _, tok = built
    items = make_items(task, tok, _episode(tests=TESTS[:1]), ["icl"])

    def poison(t, hook):
        return torch.full_like(t, float("nan"))

    with bridge.hooks(fwd_hooks=[("blocks.0.hook_resid_post", poison)]):
        with pytest.raises(NumericsError, match="dtype"):
            score_items(bridge, tok, items, engine="naive", scoring="label")


def test_layers_and_heads_checked_against_the_model(built, task):
    _, bridge, _, tok = built
    item = make_items(task, tok, _episode(tests=TESTS[:1]), ["icl"])[0]
    for kw in ({"layers": [bridge.cfg.n_layers]}, {"heads": [bridge.cfg.n_heads]}):
        bad = item.with_knockout(knockout_for("+template", **kw), "bad")
        with pytest.raises(ValueError, match="out of range"):
            score_items(bridge, tok, [bad], scoring="label")
    ok = item.with_knockout(knockout_for("+template", layers=[-1], heads=[-1]), "ok")
    score_items(bridge, tok, [ok], scoring="label")
