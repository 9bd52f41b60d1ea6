"""Continuous metrics from tidy rows: margins by hand, mixed tasks, paired tests, and the columns
of a real run (tiny model through the runner)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from icl_tokens.analysis.metrics import (
    CONTINUOUS_COLUMNS,
    add_continuous_metrics,
    cell_summary,
    continuous_table,
    paired_metric_tests,
)


def _row(task, cond, seed, ex, gold, **scores):
    return {"model": "m", "task": task, "seed": seed, "example_id": ex, "condition": cond,
            "gold": gold, **{f"score_{k}": v for k, v in scores.items()}}


def test_margin_gold_prob_and_pred_score_by_hand():
    df = pd.DataFrame([
        _row("sst2", "icl", 0, "a", "positive", positive=-0.5, negative=-2.0),
        _row("sst2", "icl", 0, "b", "negative", positive=-0.1, negative=-3.0),
        _row("trec", "icl", 0, "c", "loc", loc=-1.0, num=-0.2, hum=-4.0),
    ])
    out = add_continuous_metrics(df)
    assert out.margin.tolist() == pytest.approx([1.5, -2.9, -0.8])
    assert out.gold_score.tolist() == pytest.approx([-0.5, -3.0, -1.0])
    assert out.best_other_score.tolist() == pytest.approx([-2.0, -0.1, -0.2])
    assert out.pred_score.tolist() == pytest.approx([-0.5, -0.1, -0.2])
    z = math.exp(-1.0) + math.exp(-0.2) + math.exp(-4.0)
    assert out.gold_prob.iloc[2] == pytest.approx(math.exp(-1.0) / z)
    assert out.gold_prob.iloc[0] == pytest.approx(1 / (1 + math.exp(-1.5)))
    assert list(df.columns) == list(out.columns[: len(df.columns)])  # a copy, columns added
    # a repeated index (frames concatenated without ignore_index) gives the same columns
    dup = add_continuous_metrics(pd.concat([df.iloc[:2], df.iloc[2:]]).set_axis([0, 0, 0]))
    assert dup.margin.tolist() == pytest.approx(out.margin.tolist())


def test_bad_rows_are_refused():
    df = pd.DataFrame([_row("sst2", "icl", 0, "a", "neutral", positive=-0.5, negative=-2.0)])
    with pytest.raises(ValueError, match="no score column"):
        add_continuous_metrics(df)
    with pytest.raises(ValueError, match="no score_<label> columns"):
        add_continuous_metrics(df.drop(columns=["score_positive", "score_negative"]))
    df = pd.DataFrame([_row("sst2", "icl", 0, "a", "positive", positive=-0.5, negative=-2.0),
                       _row("sst2", "icl", 0, "b", "positive", positive=-0.5)])
    with pytest.raises(ValueError, match="lack a score"):
        add_continuous_metrics(df)


def test_paired_metric_tests_over_examples_and_seeds():
    rng = np.random.default_rng(0)
    rows = []
    for s in range(4):
        for e in range(30):
            base = rng.normal(-1, 0.5)
            for cond, shift in (("+template", 0.0), ("+content", -1.0)):
                rows.append(_row("sst2", cond, s, str(e), "positive",
                                 positive=base + shift + rng.normal(0, 0.3), negative=-1.0))
    df = pd.DataFrame(rows)
    res = paired_metric_tests(df, [("+template", "+content")]).iloc[0]
    m = add_continuous_metrics(df)
    w = m.pivot_table(index=["seed", "example_id"], columns="condition", values="margin")
    d = w["+template"] - w["+content"]
    assert res["diff"] == pytest.approx(d.mean())
    seed_d = d.groupby(level="seed").mean()
    assert res.p_seeds == pytest.approx(sps.ttest_1samp(seed_d, 0).pvalue)
    assert res.lo < 1.0 < res.hi and res.p < 0.01 and res.n_examples == 30
    tab = continuous_table(df).set_index("condition")
    assert tab.loc["+template", "mean"] > tab.loc["+content", "mean"]


def test_columns_of_a_real_run_on_a_tiny_model(tiny_dir, data_dir, tmp_path):
    from icl_tokens.experiments import AblationConfig, run_ablation

    cfg = AblationConfig(model=str(tiny_dir), task="sst2", seeds=(0, 1), k=2, n_test=4,
                         scoring="label", conditions=("icl", "+template", "zero_shot"))
    df = run_ablation(cfg, out=tmp_path / "r.csv", progress=False)
    out = add_continuous_metrics(df)
    assert set(CONTINUOUS_COLUMNS) <= set(out.columns)
    assert np.isfinite(out.margin).all()
    # margin > 0 exactly where the label-restricted prediction is right (no ties here)
    assert ((out.margin > 0).astype(int) == out.label_correct).all()
    tab = continuous_table(out, "gold_prob")
    assert len(tab) == 3 and ((tab["lo"] >= 0) & (tab["hi"] <= 1)).all()
    summary = cell_summary(df)
    assert list(summary.condition) == ["icl", "+template", "zero_shot"]
    acc = df.groupby("condition")["correct"].mean() * 100
    for _, r in summary.iterrows():
        assert r.correct == pytest.approx(acc[r.condition])
        assert r.correct_lo <= r.correct <= r.correct_hi
        assert r.margin_lo <= r.margin <= r.margin_hi
