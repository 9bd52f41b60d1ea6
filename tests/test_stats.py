"""Statistics: Table 15's t-tests equal scipy's on the same CSV (n/a where undefined), Holm by
hand, crossed cell intervals and paired differences on synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from icl_tokens.analysis.stats import (
    TABLE15_PAIRS,
    baseline_ttests,
    cell_intervals,
    format_table15,
    holm,
    paired_differences,
    pairwise_ttests,
    per_seed,
    table15_layout,
)

CONDS = ["zero_shot", "+content", "+stopword", "+template", "icl", "icl-content",
         "icl-stopword", "icl-template"]


def _rows(n_seeds: int = 5, n_ex: int = 40, seed: int = 0, task: str = "sst2") -> pd.DataFrame:
    """Synthetic tidy rows: each condition has its own accuracy, seeds vary."""
    rng = np.random.default_rng(seed)
    acc = dict(zip(CONDS, [0.5, 0.55, 0.6, 0.8, 0.85, 0.84, 0.83, 0.6]))
    rows = []
    for s in range(n_seeds):
        shift = rng.normal(0, 0.05)
        for c in CONDS:
            p = acc[c] if c == "zero_shot" else np.clip(acc[c] + shift, 0, 1)
            zs = np.random.default_rng(99).random(n_ex) < p  # zero-shot: same for every seed
            hits = zs if c == "zero_shot" else rng.random(n_ex) < p
            for e in range(n_ex):
                rows.append({"model": "m", "task": task, "seed": s, "example_id": f"x{e}",
                             "condition": c, "correct": int(hits[e]),
                             "margin": float(rng.normal(acc[c], 1.0))})
    return pd.DataFrame(rows)


def test_ttests_equal_scipy_on_the_same_csv(tmp_path):
    path = tmp_path / "rows.csv"
    _rows().to_csv(path, index=False)
    df = pd.read_csv(path, dtype={"example_id": str})
    res = pairwise_ttests(df)
    assert list(res.comparison) == [p[0] for p in TABLE15_PAIRS]
    acc = df.groupby(["condition", "seed"])["correct"].mean() * 100
    for _, r in res.iterrows():
        a = acc.loc[r.condition_a].sort_index().to_numpy()
        b = acc.loc[r.condition_b].sort_index().to_numpy()
        assert r.p == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-12)
        assert r.t == pytest.approx(sps.ttest_rel(a, b).statistic, rel=1e-12)
        assert r.p_welch == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-12)
        assert r["diff"] == pytest.approx((a - b).mean())


def test_holm_against_a_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert holm(p)[:4].tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert np.isnan(holm(p)[4])
    assert holm([0.6, 0.7]).tolist() == [1.0, 1.0]
    res = pairwise_ttests(_rows(), correction="holm")
    assert res.p_holm.to_numpy() == pytest.approx(holm(res.p.to_numpy()))
    assert (res.significant == (res.p_holm < 0.05)).all()


def test_ttests_refuse_missing_conditions_and_unpaired_seeds():
    df = _rows()
    with pytest.raises(ValueError, match=r"lack the condition\(s\) \['\+content'\]"):
        pairwise_ttests(df[df.condition != "+content"])
    with pytest.raises(ValueError, match="different seeds"):
        pairwise_ttests(df[~((df.condition == "+content") & (df.seed == 0))])
    with pytest.raises(ValueError, match="unknown correction"):
        pairwise_ttests(df, correction="bonferroni")


def test_baseline_tests_one_sample_against_constant_zero_shot():
    df = _rows()
    res = baseline_ttests(df).set_index("condition")
    assert set(res.index) == set(CONDS) - {"zero_shot", "icl"}
    acc = df.groupby(["condition", "seed"])["correct"].mean() * 100
    zs = acc.loc["zero_shot"]
    assert zs.nunique() == 1 and res.loc["+template", "test"] == "one-sample"
    expect = sps.ttest_1samp(acc.loc["+template"].to_numpy(), zs.iloc[0]).pvalue
    assert res.loc["+template", "p"] == pytest.approx(expect)
    expect = sps.ttest_rel(acc.loc["icl-template"], acc.loc["icl"]).pvalue
    assert res.loc["icl-template", "test"] == "paired"
    assert res.loc["icl-template", "p"] == pytest.approx(expect)


def test_seed_tests_are_na_with_a_reason_not_p_zero():
    """Two seeds with the same difference: t is infinite, so the test is n/a, never p = 0."""
    df = _rows(n_seeds=2, n_ex=10)
    for c in ("+content", "+template"):  # identical predictions in both seeds
        base = df[(df.condition == "+stopword")].copy()
        df.loc[df.condition == c, "correct"] = base["correct"].to_numpy()
    res = pairwise_ttests(df).set_index("comparison")
    assert res.p.isna().all() and res.significant.eq(False).all()
    assert res.loc["temp ↔ cont", "note"].startswith("n/a: 2 seeds")
    three = _rows(n_seeds=3, n_ex=10)
    same = three[three.condition == "+stopword"]["correct"].to_numpy()
    three.loc[three.condition == "+content", "correct"] = same
    r = pairwise_ttests(three).set_index("comparison").loc["cont ↔ stop"]
    assert np.isnan(r.p) and "zero variance" in r.note
    assert not np.isnan(r.p_crossed)  # the crossed estimate still has a p (here 1)
    b = baseline_ttests(_rows(n_seeds=2, n_ex=10))
    assert b.p.isna().all() and b.note.str.startswith("n/a").all()


def test_cell_intervals_are_crossed_and_start_from_distinct_examples():
    df = _rows(n_seeds=3, n_ex=20)
    df["const"] = 2.5
    ci = cell_intervals(df, "const")
    assert (ci["lo"] == 2.5).all() and (ci["hi"] == 2.5).all() and (ci["mean"] == 2.5).all()
    a = cell_intervals(df)
    one = cell_intervals(df[df.condition == "icl"])
    pd.testing.assert_frame_equal(one.reset_index(drop=True),
                                  a[a.condition == "icl"].reset_index(drop=True))
    means = per_seed(df).groupby("condition")["value"].mean()
    for _, r in a.iterrows():
        assert r["mean"] == pytest.approx(means[r.condition])
        assert r.lo <= r["mean"] <= r.hi
        assert r.n_examples == 20
    zero = df.copy()
    zero["correct"] = 0
    z = cell_intervals(zero)
    assert (z.lo == 0).all() and (z.hi > 10).all()  # 0/20 is not [0, 0]


def test_cell_interval_width_shrinks_with_more_seeds():
    narrow = cell_intervals(_rows(n_seeds=12, n_ex=40, seed=3))
    wide = cell_intervals(_rows(n_seeds=3, n_ex=40, seed=3))
    assert (narrow.hi - narrow.lo).mean() < (wide.hi - wide.lo).mean()


def test_paired_differences_on_the_crossed_design():
    df = _rows()
    res = paired_differences(df, [("+template", "+content")], metric="margin")
    r = res.iloc[0]
    w = df.pivot_table(index=["seed", "example_id"], columns="condition", values="margin")
    d = (w["+template"] - w["+content"])
    seed_d = d.groupby(level="seed").mean().to_numpy()
    assert r["diff"] == pytest.approx(seed_d.mean())
    assert r.p_seeds == pytest.approx(sps.ttest_1samp(seed_d, 0).pvalue)
    assert r.n_examples == df.example_id.nunique() and r.n_seeds == df.seed.nunique()
    assert r.lo < r["diff"] < r.hi and 0 <= r.p <= 1
    assert "crossed" in r.method
    same = paired_differences(df, [("icl", "icl")], metric="margin").iloc[0]
    assert same["diff"] == 0 and same.lo == 0 == same.hi
    assert r.comparison == "+template − +content"
    with pytest.raises(ValueError, match="missing"):
        paired_differences(df[~((df.condition == "+content") & (df.example_id == "x3"))],
                           [("+template", "+content")])


def test_table15_layout_beside_the_paper():
    res = pairwise_ttests(pd.concat([_rows(task="sst2"), _rows(task="trec", seed=1)]))
    lay = table15_layout(res, "Llama-7B")
    assert len(lay) == 12 and lay.paper_p.notna().all()
    r = lay[(lay.task == "trec") & (lay.comparison == "temp ↔ cont")].iloc[0]
    assert r.paper_p == pytest.approx(0.0000020)
    assert r.agree == (r.significant == r.paper_significant)
    # one seed: no seed-level test; the crossed p (over examples) still decides agreement
    one = table15_layout(pairwise_ttests(_rows(n_seeds=1)), "Llama-7B")
    assert one.p.isna().all() and one.note.str.contains("1 seed").all()
    text = format_table15(lay)
    assert "temp_cont ↔ temp_stop" in text and "<0.0001" in text
    assert text.count("\n") == 1 + 12
    assert "n/a (1)" in format_table15(one) and "(1) n/a: 1 seed" in format_table15(one)
