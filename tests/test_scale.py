"""GPU scale, tested on CPU.

Out-of-memory back-off: a batch that raises ``torch.cuda.OutOfMemoryError`` is halved and retried
(simulated by monkeypatching the batch), later batches keep the smaller size, the rows equal an
unpatched run at that size, and one row out of memory is a clear error. Loading with a device map
(accelerate dispatch through the bridge) scores like the plain model."""

from __future__ import annotations

import pytest
import torch

from icl_tokens.ablation import knockout_for
from icl_tokens.engine import LabelSet, score_items
from icl_tokens.engine import scoring as scoring_mod
from icl_tokens.engine.scoring import AUTO_BATCH_START, BatchSize
from icl_tokens.episodes import Episode
from icl_tokens.experiments.representation import representation_items
from icl_tokens.tasks import Example, load_task
from icl_tokens.testing.tiny import tiny_model

DEMOS = tuple(Example(f"d{i}", {"text": f"a {w} film ."}, lab) for i, (w, lab) in
              enumerate([("warm", "1"), ("dull", "0"), ("smart", "1")]))
TESTS = tuple(Example(f"t{i}", {"text": f"the {w} story , and more {w} ."}, lab)
              for i, (w, lab) in enumerate([("bright", "1"), ("flat", "0"), ("clever", "1"),
                                            ("bland", "0"), ("lovely", "1"), ("tired", "0")]))
CONDS = ["icl", "icl-template", "+template", "zero_shot"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    bridge = tiny_model("llama", tmp_path_factory.mktemp("tiny_llama"))
    task = load_task("sst2")
    tok = bridge.tokenizer
    ep = Episode(task="sst2", seed=0, k=len(DEMOS), demos=DEMOS, tests=TESTS)
    items = representation_items(task, tok, LabelSet.for_task(task, tok), ep, CONDS,
                                 knockout_for)
    return bridge, tok, items


def _fail_above(monkeypatch, limit: int) -> list[int]:
    """Batches of more than ``limit`` rows raise CUDA's out-of-memory error; returns the sizes
    of every batch started."""
    sizes: list[int] = []
    real = scoring_mod.Batch

    class Tight(real):  # type: ignore[misc, valid-type]
        def start(self, *a, **kw):
            sizes.append(len(self.items))
            if len(self.items) > limit:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
            return super().start(*a, **kw)

    monkeypatch.setattr(scoring_mod, "Batch", Tight)
    return sizes


def _rows(res):
    return [(r.example_id, r.condition, r.label_scores, r.continuation) for r in res]


def test_oom_halves_the_batch_and_gives_the_rows_of_that_size(setup, monkeypatch):
    bridge, tok, items = setup
    reference = score_items(bridge, tok, items, batch_size=2)
    sizes = _fail_above(monkeypatch, 2)
    sizer = BatchSize.of(8)
    res = score_items(bridge, tok, items, batch_size=sizer)
    assert sizer.size == 2 and sizer.notes[0].startswith("out of memory with 8 rows")
    assert _rows(res) == _rows(reference)
    assert sizes[:3] == [8, 4, 2]
    # a second call with the same BatchSize starts at the learned size: no failure
    n = len(sizes)
    score_items(bridge, tok, items[:4], batch_size=sizer)
    assert max(sizes[n:]) <= 2


def test_auto_starts_large_and_backs_off(setup, monkeypatch):
    bridge, tok, items = setup
    assert BatchSize.of("auto").size == AUTO_BATCH_START
    reference = score_items(bridge, tok, items, batch_size=1, scoring="label")
    sizes = _fail_above(monkeypatch, 3)
    sizer = BatchSize.of("auto")
    res = score_items(bridge, tok, items, batch_size=sizer, scoring="label")
    assert sizes[0] > 3 and sizer.size <= 3 and len(sizer.notes) >= 2
    assert [(r.example_id, r.condition) for r in res] == [
        (r.example_id, r.condition) for r in reference]
    for r, ref in zip(res, reference):
        assert r.label_scores == pytest.approx(ref.label_scores, abs=1e-5)


def test_one_row_out_of_memory_is_a_clear_error(setup, monkeypatch):
    bridge, tok, items = setup
    _fail_above(monkeypatch, 0)
    with pytest.raises(RuntimeError, match="out of GPU memory scoring a single row"):
        score_items(bridge, tok, items[:2], batch_size=2)


def test_other_errors_are_not_retried(setup, monkeypatch):
    bridge, tok, items = setup
    calls = []
    real = scoring_mod.Batch

    class Broken(real):  # type: ignore[misc, valid-type]
        def start(self, *a, **kw):
            calls.append(len(self.items))
            raise RuntimeError("something else")

    monkeypatch.setattr(scoring_mod, "Batch", Broken)
    with pytest.raises(RuntimeError, match="something else"):
        score_items(bridge, tok, items, batch_size=4)
    assert calls == [4]


@pytest.mark.parametrize("bad", [0, -1, "big", 2.5, True])
def test_bad_batch_sizes(bad):
    with pytest.raises(ValueError, match="batch_size must be"):
        BatchSize.of(bad)


def test_device_map_dispatched_model_scores_like_the_plain_one(tmp_path):
    """A model dispatched by accelerate (one layer offloaded to disk: the same hooks that move
    activations between GPUs) gives the rows of the plain model, knockouts and prefix cache
    included. Runs on CPU; a real multi-GPU split is untested here (docs/scale.md)."""
    from icl_tokens.models import load_model
    from icl_tokens.testing.tiny import build_tiny_model_dir

    d = build_tiny_model_dir("llama", tmp_path / "llama")
    plain = load_model(str(d), device="cpu")
    dm = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
          "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"}
    spread = load_model(str(d), device_map=dm)
    assert getattr(spread.original_model, "hf_device_map", None) == dm
    tok = plain.tokenizer
    task = load_task("sst2")
    ep = Episode(task="sst2", seed=0, k=len(DEMOS), demos=DEMOS, tests=TESTS[:3])
    items = representation_items(task, tok, LabelSet.for_task(task, tok), ep, CONDS,
                                 knockout_for)
    a = score_items(plain, tok, items, batch_size=4)
    b = score_items(spread, tok, items, batch_size=4)
    assert [r.continuation for r in a] == [r.continuation for r in b]
    for x, y in zip(a, b):
        assert x.label_scores == pytest.approx(y.label_scores, abs=1e-5)


def test_device_map_arguments_are_checked(tiny_dir):
    from icl_tokens.models import load_model

    with pytest.raises(ValueError, match="either device .* or device_map"):
        load_model(str(tiny_dir), device="cpu", device_map="auto")
    with pytest.raises(ValueError, match="max_memory only applies with device_map"):
        load_model(str(tiny_dir), max_memory={0: "1GiB"})
    with pytest.raises(ValueError, match="device_map must be"):
        load_model(str(tiny_dir), device_map=3)  # type: ignore[arg-type]


def test_cli_device_map_and_device_are_exclusive(tiny_dir, data_dir, tmp_path, capsys):
    from icl_tokens.cli import main

    rc = main(["ablate", "--model", str(tiny_dir), "--task", "sst2", "--n-test", "1",
               "--device", "cpu", "--device-map", "auto", "--out", str(tmp_path / "r.csv"),
               "--no-progress"])
    assert rc == 2 and "either a device ('cpu') or a device map ('auto')" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()
