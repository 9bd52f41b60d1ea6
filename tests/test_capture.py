"""Activation capture: chosen hooks at chosen positions equal the plain forward's activations,
batched equals one by one, knockouts apply, and only what was asked for is kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from icl_tokens.ablation import Sel, knockout_for
from icl_tokens.engine import LabelSet, capture_activations, iter_captures, resid_names
from icl_tokens.episodes import Episode
from icl_tokens.experiments.representation import representation_items
from icl_tokens.tasks import Example, load_task
from icl_tokens.testing.tiny import tiny_model

DEMOS = (Example("d0", {"text": "a warm and funny film ."}, "1"),
         Example("d1", {"text": "the plot is a mess of the worst kind ."}, "0"))
TESTS = (Example("t0", {"text": "great ."}, "1"),
         Example("t1", {"text": "a dull , lifeless and far too long story ."}, "0"))


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def setup(request, tmp_path_factory):
    bridge = tiny_model(request.param, tmp_path_factory.mktemp(f"cap_{request.param}"))
    tok = bridge.tokenizer
    task = load_task("sst2")
    ep = Episode("sst2", 0, 2, DEMOS, TESTS)
    items = representation_items(task, tok, LabelSet.for_task(task, tok), ep,
                                 ["icl", "+template"], knockout_for)
    return bridge, tok, items


NAMES = ["blocks.0.hook_resid_post", "blocks.1.attn.hook_pattern"]


@torch.no_grad()
def _reference(bridge, item, positions):
    """The plain forward of one item, hooks read by hand."""
    seen = {}

    def saver(name):
        def save(t, hook):
            seen[name] = t.detach().clone()  # hook.name is the canonical name of an alias
            return t
        return save

    knock = item.knockout.resolve(item) if item.knockout is not None else None
    from icl_tokens.ablation import attention_knockout

    ids = torch.tensor([list(item.input_ids)])
    ctx = (attention_knockout(bridge, knock.dense()) if knock is not None and not knock.is_empty
           else torch.no_grad())
    with ctx, bridge.hooks(fwd_hooks=[(n, saver(n)) for n in NAMES]):
        bridge(ids)
    return {NAMES[0]: seen[NAMES[0]][0, positions],
            NAMES[1]: seen[NAMES[1]][0][:, positions].permute(1, 0, 2)}


def test_capture_equals_the_plain_forward_at_the_chosen_positions(setup):
    bridge, tok, items = setup
    sel = Sel.category("template") & Sel.part("demo")
    caps = capture_activations(bridge, tok, items, NAMES, positions=sel, batch_size=3)
    assert [c.item for c in caps] == items
    for cap in caps:
        want = np.flatnonzero(sel.mask(cap.item))
        assert np.array_equal(cap.positions, want) and len(want) > 0
        ref = _reference(bridge, cap.item, torch.as_tensor(want))
        for name in NAMES:
            got = cap.acts[name]
            assert got.device.type == "cpu"
            torch.testing.assert_close(got, ref[name], atol=1e-5, rtol=0)
        assert cap.acts[NAMES[1]].shape == (len(want), bridge.cfg.n_heads, len(cap.item))


def test_capture_applies_the_knockout(setup):
    bridge, tok, items = setup
    knocked = [it for it in items if it.condition == "+template"]
    caps = capture_activations(bridge, tok, knocked, ["blocks.0.attn.hook_pattern"],
                               positions=Sel.part("test"))
    bare = capture_activations(bridge, tok, knocked, ["blocks.0.attn.hook_pattern"],
                               positions=Sel.part("test"), apply_knockouts=False)
    for c, b in zip(caps, bare):
        hidden = c.item.knockout.resolve(c.item).key
        p = c.acts["blocks.0.attn.hook_pattern"]            # [n_test, heads, k]
        assert torch.all(p[:, :, torch.from_numpy(hidden)] == 0)
        assert b.acts["blocks.0.attn.hook_pattern"][:, :, torch.from_numpy(hidden)].sum() > 0


def test_batched_equals_one_by_one_and_batches_stream(setup):
    bridge, tok, items = setup
    names = resid_names(bridge.cfg.n_layers)
    one = capture_activations(bridge, tok, items, names, batch_size=1)
    many = capture_activations(bridge, tok, items, names, batch_size=len(items))
    for a, b in zip(one, many):
        for n in names:
            torch.testing.assert_close(a.acts[n], b.acts[n], atol=1e-5, rtol=0)
    batches = list(iter_captures(bridge, tok, items, names[:1], batch_size=2))
    assert [len(b) for b in batches] == [2] * (len(items) // 2) + [len(items) % 2] * (
        len(items) % 2)


def test_only_what_was_asked_is_kept(setup):
    bridge, tok, items = setup
    caps = capture_activations(bridge, tok, items[:2], NAMES[:1], positions=Sel.last(),
                               dtype=torch.float16)
    for c in caps:
        assert set(c.acts) == {NAMES[0]}
        assert c.acts[NAMES[0]].shape == (1, bridge.cfg.d_model)
        assert c.acts[NAMES[0]].dtype == torch.float16
    fn = capture_activations(bridge, tok, items[:1], NAMES[:1],
                             positions=lambda it: [0, len(it) - 1])
    assert fn[0].positions.tolist() == [0, len(items[0]) - 1]


def test_bad_names_and_positions(setup):
    bridge, tok, items = setup
    with pytest.raises(KeyError, match="no hook points"):
        capture_activations(bridge, tok, items[:1], ["blocks.0.hook_nothing"])
    with pytest.raises(ValueError, match="at least one hook name"):
        capture_activations(bridge, tok, items[:1], [])
    with pytest.raises(ValueError, match="out of range"):
        capture_activations(bridge, tok, items[:1], NAMES[:1], positions=lambda it: [10_000])
