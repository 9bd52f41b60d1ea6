"""Contextual calibration: a synthetic biased scorer (bias removed, accuracy restored), the
correction by hand, refusals, and one real run through the runner and engine (tiny model)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icl_tokens.analysis.calibration import (
    CONTENT_FREE,
    calibrate,
    calibrated_accuracy_table,
    content_free_examples,
    content_free_rows,
    contextual_calibration,
    estimate_bias,
    label_probs,
)
from icl_tokens.tasks import load_task

WORDS = ["World", "Sports", "Business", "Tech"]


def _scored(kind: str, seed: int, i: int, gold: str, probs: np.ndarray, cond: str = "icl"):
    return {"model": "m", "task": "agnews", "seed": seed, "example_id": f"{kind}{i}",
            "condition": cond, "gold": gold,
            **{f"score_{w}": float(np.log(p)) for w, p in zip(WORDS, probs)}}


def _biased(n: int = 200, seed: int = 0):
    """A scorer that knows the answer (gold gets 2x the others) under a strong label bias
    (World x20, Tech x0.2), plus its content-free rows (uniform evidence, same bias)."""
    rng = np.random.default_rng(seed)
    bias = np.array([20.0, 1.0, 1.0, 0.2])
    rows, cf = [], []
    for s in (0, 1):
        for i in range(n):
            g = int(rng.integers(4))
            evidence = np.ones(4) + rng.random(4) * 0.2
            evidence[g] *= 2.0
            p = evidence * bias
            rows.append(_scored("x", s, i, WORDS[g], p / p.sum()))
        for i in range(3):
            p = bias * (1 + 0.01 * i)
            cf.append(_scored("content-free:", s, i, WORDS[0], p / p.sum()))
    return pd.DataFrame(rows), pd.DataFrame(cf)


def test_synthetic_biased_scorer_bias_removed_accuracy_restored():
    rows, cf = _biased()
    words, p = label_probs(rows)
    raw_acc = (np.array(words)[p.argmax(1)] == rows.gold).mean()
    assert raw_acc < 0.35  # the bias wins: nearly always "World"
    out = calibrate(rows, cf)
    assert out.calibrated_correct.mean() == 1.0
    # predictions are spread over the labels again
    assert out.calibrated_prediction.value_counts().min() > 30
    table = calibrated_accuracy_table(rows, cf)
    assert table["mean"].tolist() == [100.0]
    # positions, not index labels: a repeated index gives the same answer
    again = calibrate(rows.set_axis([0] * len(rows)), cf)
    assert again.calibrated_prediction.tolist() == out.calibrated_prediction.tolist()


def test_correction_by_hand_and_bias_estimate():
    p = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2]])
    q = contextual_calibration(p, np.array([0.5, 0.25, 0.25]))
    expect = np.array([[1.4, 0.8, 0.4], [1.0, 1.2, 0.8]])
    assert q == pytest.approx(expect / expect.sum(1, keepdims=True))
    with pytest.raises(ValueError, match="positive and finite"):
        contextual_calibration(p, np.array([0.5, 0.0, 0.5]))
    _, cf = _biased()
    b = estimate_bias(cf)
    assert len(b) == 2 and set(b.seed) == {0, 1}
    _, pc = label_probs(cf[cf.seed == 0])
    assert b[b.seed == 0][[f"p_cf_{w}" for w in WORDS]].to_numpy()[0] == pytest.approx(
        pc.mean(0))


def test_rows_without_a_bias_are_refused():
    rows, cf = _biased()
    with pytest.raises(ValueError, match="no content-free rows"):
        calibrate(rows, cf[cf.seed == 0])


def test_content_free_examples_fill_every_field():
    rte = load_task("rte")
    ex = content_free_examples(rte)
    assert [e.inputs for e in ex] == [{f: s for f in rte.input_fields} for s in CONTENT_FREE]
    assert [e.id for e in ex] == ["content-free:0", "content-free:1"]
    with pytest.raises(ValueError, match="repeat"):
        content_free_examples(rte, ["N/A", "N/A"])
    with pytest.raises(ValueError, match="empty content-free string"):
        content_free_examples(rte, ["N/A", ""])


def test_real_run_through_the_runner_and_engine(tiny_dir, data_dir, tmp_path):
    from icl_tokens.experiments import AblationConfig, run_ablation
    from icl_tokens.models import load_model, load_tokenizer

    model, tok = load_model(str(tiny_dir), device="cpu"), load_tokenizer(str(tiny_dir))
    conds = ("icl", "icl-template", "+template", "zero_shot")
    cfg = AblationConfig(model=str(tiny_dir), task="sst2", seeds=(0, 1), k=2, n_test=5,
                         scoring="label", conditions=conds)
    rows = run_ablation(cfg, model=model, tokenizer=tok, out=tmp_path / "r.csv", progress=False)
    cf = content_free_rows(cfg, model=model, tokenizer=tok)
    assert len(cf) == 2 * len(conds) * len(CONTENT_FREE)
    assert set(cf.content_free) == set(CONTENT_FREE)
    assert set(map(tuple, cf[["seed", "condition"]].drop_duplicates().to_numpy())) == {
        (s, c) for s in (0, 1) for c in conds}
    # the knockout applies to the content-free input: icl and icl-template differ
    a = cf[(cf.condition == "icl") & (cf.seed == 0)].score_Positive.to_numpy()
    b = cf[(cf.condition == "icl-template") & (cf.seed == 0)].score_Positive.to_numpy()
    assert not np.allclose(a, b)
    # the demonstrations are the seed's: the two seeds' icl scores differ, zero-shot's do not
    zs = cf[cf.condition == "zero_shot"].sort_values(["seed", "example_id"])
    assert np.allclose(zs[zs.seed == 0].score_Positive, zs[zs.seed == 1].score_Positive)
    icl = cf[cf.condition == "icl"].sort_values(["seed", "example_id"])
    assert not np.allclose(icl[icl.seed == 0].score_Positive, icl[icl.seed == 1].score_Positive)
    out = calibrate(rows, cf)
    assert set(out.calibrated_correct) <= {0, 1} and len(out) == len(rows)
    from icl_tokens.analysis.metrics import cell_summary

    summary = cell_summary(rows, cf).set_index("condition")
    acc = out.groupby("condition")["calibrated_correct"].mean() * 100
    assert summary.calibrated_correct.to_dict() == pytest.approx(acc.to_dict())
    assert out.calibrated_gold_prob.between(0, 1).all()
    # calibrating the content-free rows themselves makes their mean prediction uniform-ish:
    # the bias of each cell, applied to its own mean, gives equal label probabilities
    bias = estimate_bias(cf)
    words = ["Negative", "Positive"]
    for _, r in bias.iterrows():
        p = np.array([r[f"p_cf_{w}"] for w in words])
        assert contextual_calibration(p[None], p)[0] == pytest.approx([0.5, 0.5])
