"""Statistics: Table 15's t-tests equal scipy's on the same CSV, Holm by hand, bootstrap
intervals on synthetic data (known answers, coverage, determinism), paired differences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from icl_tokens.analysis.stats import (
    TABLE15_PAIRS,
    baseline_ttests,
    bootstrap_ci,
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


def test_bootstrap_known_answers_and_determinism():
    df = _rows(n_seeds=3, n_ex=20)
    # a constant column: every replicate equals it, so the interval is a point
    df["const"] = 2.5
    ci = bootstrap_ci(df, "const", n_boot=200)
    assert (ci["lo"] == 2.5).all() and (ci["hi"] == 2.5).all() and (ci["mean"] == 2.5).all()
    a = bootstrap_ci(df, n_boot=300, seed=1)
    b = bootstrap_ci(df, n_boot=300, seed=1)
    pd.testing.assert_frame_equal(a, b)
    # a cell's interval does not depend on the other cells present
    one = bootstrap_ci(df[df.condition == "icl"], n_boot=300, seed=1)
    pd.testing.assert_frame_equal(one.reset_index(drop=True),
                                  a[a.condition == "icl"].reset_index(drop=True))
    means = per_seed(df).groupby("condition")["value"].mean()
    for _, r in a.iterrows():
        assert r["mean"] == pytest.approx(means[r.condition])
        assert r.lo <= r["mean"] <= r.hi
    assert not a.equals(bootstrap_ci(df, n_boot=300, seed=2))


def test_bootstrap_covers_the_true_mean_at_about_the_nominal_rate():
    """Two-level normal model: seed effects sd 1, example noise sd 2, true mean 0."""
    hits, trials = 0, 150
    rng = np.random.default_rng(7)
    for t in range(trials):
        rows = []
        for s in range(10):
            mu = rng.normal(0, 1)
            for e, v in enumerate(rng.normal(mu, 2, 30)):
                rows.append({"model": "m", "task": "t", "seed": s, "example_id": str(e),
                             "condition": "c", "x": v})
        r = bootstrap_ci(pd.DataFrame(rows), "x", n_boot=400, seed=t).iloc[0]
        hits += r.lo <= 0 <= r.hi
    # percentile bootstrap with 10 seeds under-covers a little; 95% nominal
    assert 0.82 <= hits / trials <= 0.99


def test_bootstrap_ci_width_shrinks_with_more_seeds():
    narrow = bootstrap_ci(_rows(n_seeds=12, n_ex=40, seed=3), n_boot=500)
    wide = bootstrap_ci(_rows(n_seeds=3, n_ex=40, seed=3), n_boot=500)
    assert (narrow.hi - narrow.lo).mean() < (wide.hi - wide.lo).mean()


def test_paired_differences_effect_sizes_and_tests():
    df = _rows()
    res = paired_differences(df, [("+template", "+content")], metric="margin", n_boot=300)
    r = res.iloc[0]
    w = df.pivot_table(index=["seed", "example_id"], columns="condition", values="margin")
    d = (w["+template"] - w["+content"])
    seed_d = d.groupby(level="seed").mean().to_numpy()
    assert r["diff"] == pytest.approx(seed_d.mean())
    assert r.dz_seeds == pytest.approx(seed_d.mean() / seed_d.std(ddof=1))
    assert r.dz_examples == pytest.approx(d.mean() / d.std(ddof=1))
    assert r.p_examples == pytest.approx(sps.ttest_rel(w["+template"], w["+content"]).pvalue)
    assert r.p_seeds == pytest.approx(sps.ttest_1samp(seed_d, 0).pvalue)
    assert r.p_wilcoxon == pytest.approx(sps.wilcoxon(d.to_numpy()).pvalue)
    same = paired_differences(df, [("icl", "icl")], metric="margin", n_boot=10).iloc[0]
    assert same["diff"] == 0 and np.isnan(same.p_wilcoxon)
    assert r.lo < r["diff"] < r.hi
    assert r.comparison == "+template − +content"
    with pytest.raises(ValueError, match="only one of"):
        paired_differences(df[~((df.condition == "+content") & (df.example_id == "x3"))],
                           [("+template", "+content")])


def test_table15_layout_beside_the_paper():
    res = pairwise_ttests(pd.concat([_rows(task="sst2"), _rows(task="trec", seed=1)]))
    lay = table15_layout(res, "Llama-7B")
    assert len(lay) == 12 and lay.paper_p.notna().all()
    r = lay[(lay.task == "trec") & (lay.comparison == "temp ↔ cont")].iloc[0]
    assert r.paper_p == pytest.approx(0.0000020)
    assert r.agree == (r.significant == r.paper_significant)
    # one seed: scipy gives no p-value, so there is no agreement either way
    one = table15_layout(pairwise_ttests(_rows(n_seeds=1)), "Llama-7B")
    assert one.p.isna().all() and one.agree.isna().all()
    text = format_table15(lay)
    assert "temp_cont ↔ temp_stop" in text and "0.0000020" in text
    assert text.count("\n") == 1 + 6
