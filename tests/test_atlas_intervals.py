"""Atlas intervals fit the design (seeds x test examples, crossed): the crossed t interval for
means and (linearized) ratios, the pigeonhole bootstrap where cells are undefined, and a
labelled example bootstrap for one seed; a
simulation shows that an example-only bootstrap undercovers when seeds matter and these do not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icl_tokens.analysis.inference import crossed_mean
from icl_tokens.atlas.crosscheck import cross_check
from icl_tokens.atlas.intervals import (
    design_note,
    example_bootstrap,
    layout_of,
    mean_interval,
    ratio_interval,
)
from icl_tokens.atlas.rollups import additivity, effect_shares


def _per(m: np.ndarray, examples: list[str] | None = None) -> pd.DataFrame:
    s, e = m.shape
    ex = examples or [f"test:{j}" for j in range(e)]
    return pd.DataFrame([{"seed": i, "example_id": ex[j], "v": m[i, j]}
                         for i in range(s) for j in range(e)])


def _crossed(rng: np.random.Generator, s: int, e: int, sd_seed: float = 1.0,
             sd_ex: float = 1.0, sd_res: float = 1.0) -> np.ndarray:
    return (rng.normal(0, sd_seed, (s, 1)) + rng.normal(0, sd_ex, (1, e))
            + rng.normal(0, sd_res, (s, e)))


def test_layouts_and_their_methods():
    rng = np.random.default_rng(0)
    per = _per(_crossed(rng, 3, 5))
    lay = layout_of(per)
    assert lay.crossed and (lay.n_seeds, lay.n_examples) == (3, 5)
    assert design_note(lay) == "crossed t, 3 seeds x 5 examples"
    one = layout_of(per[per["seed"] == 0])
    assert not one.crossed and design_note(one) == "bootstrap over 5 examples (1 seed)"
    apart = per.assign(example_id=[f"{s}-{e}" for s, e in zip(per["seed"], per["example_id"])])
    assert "seeds scored different examples" in design_note(layout_of(apart))


def test_mean_interval_is_the_crossed_estimate_on_a_complete_matrix():
    m = _crossed(np.random.default_rng(1), 4, 12)
    est = crossed_mean(m)
    assert mean_interval(_per(m), "v") == pytest.approx((est.mean, est.ci_low, est.ci_high))
    # one seed: a bootstrap over the examples (the same as example_bootstrap of those values)
    v = m[0]
    mean, lo, hi = mean_interval(_per(m[:1]), "v", n_boot=300)
    assert mean == pytest.approx(v.mean()) and lo < mean < hi
    assert (mean, lo, hi) == pytest.approx(example_bootstrap(12, lambda i: float(v[i].mean()),
                                                             n_boot=300))


def test_a_seed_effect_widens_the_interval():
    """The same examples under seeds that differ a lot: the crossed interval is far wider than
    a bootstrap that treats the 60 rows as independent examples."""
    rng = np.random.default_rng(2)
    m = _crossed(rng, 3, 20, sd_seed=2.0, sd_ex=0.3, sd_res=0.3)
    _, lo, hi = mean_interval(_per(m), "v")
    per_rows = _per(m).assign(example_id=lambda d: d["seed"].astype(str) + d["example_id"])
    _, blo, bhi = mean_interval(per_rows, "v")
    assert hi - lo > 4 * (bhi - blo)


@pytest.mark.parametrize("ratio", [False, True])
def test_coverage_under_crossed_random_effects(ratio):
    """200 simulated 5 x 20 designs with seed, example and residual variance 1 each: the design
    interval covers the true mean (0; for the ratio, sum(x d)/sum(d), also 0) in at least
    88 % of them, the examples-only bootstrap in far fewer."""
    rng = np.random.default_rng(3)
    cover = naive = 0
    reps = 200
    for _ in range(reps):
        m = _crossed(rng, 5, 20)
        per = _per(m)
        if ratio:
            den = rng.uniform(0.5, 1.5, len(per))  # a ratio of sums whose true value is 0
            _, lo, hi = ratio_interval(per, per["v"].to_numpy() * den, den)
        else:
            _, lo, hi = mean_interval(per, "v")
        cover += lo <= 0 <= hi
        v = per["v"].to_numpy()
        _, blo, bhi = example_bootstrap(len(v), lambda i: float(v[i].mean()), n_boot=300)
        naive += blo <= 0 <= bhi
    assert cover / reps >= 0.88
    assert naive / reps <= 0.6


def _atlas(seeds: int, examples: int, seed: int = 0) -> pd.DataFrame:
    """A synthetic atlas: 6 tokens per example, template tokens with a seed-dependent effect."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(seeds):
        shift = rng.normal(0, 0.5)
        for e in range(examples):
            for p in range(6):
                tmpl = p < 2
                d = (1.0 + shift if tmpl else 0.1) * rng.uniform(0.5, 1.5)
                rows.append({"model": "m", "task": "t", "seed": s, "example_id": f"test:{e}",
                             "position": p, "categories": "template" if tmpl else "content",
                             "roles": f"demo_1.{'t_out.colon' if tmpl else 'd_in.text'}",
                             "delta_margin": -d, "attribution": -d + rng.normal(0, 0.05),
                             "attribution_atp": -d, "exact_s": 2.0, "attribution_s": 0.1,
                             "in_icl-template": int(tmpl), "group_icl-template": -3.0 - shift})
    return pd.DataFrame(rows)


def test_atlas_summaries_name_their_design():
    three = _atlas(3, 8)
    cc = cross_check(three, n_boot=200)
    assert set(cc["interval"]) == {"crossed t, 3 seeds x 8 examples"}
    assert (cc["n_seeds"] == 3).all() and (cc["n_examples"] == 24).all()
    assert (cc["fnr5_lo"] <= cc["fnr5"]).all() and (cc["fnr5"] <= cc["fnr5_hi"]).all()
    shares = effect_shares(three, n_boot=200)
    assert set(shares["interval"]) == {"crossed t, 3 seeds x 8 examples"}
    add = additivity(three, n_boot=200)
    assert add.loc[0, "n_seeds"] == 3 and add.loc[0, "interval"].startswith("crossed t")
    lo, hi = add.loc[0, "interaction_share_lo"], add.loc[0, "interaction_share_hi"]
    assert lo <= add.loc[0, "interaction_share"] <= hi
    one = cross_check(_atlas(1, 8), n_boot=200)
    assert set(one["interval"]) == {"bootstrap over 8 examples (1 seed)"}


def test_pigeonhole_where_cells_are_undefined():
    m = _crossed(np.random.default_rng(4), 3, 10)
    m[1, 2] = np.nan
    mean, lo, hi = mean_interval(_per(m), "v", n_boot=400)
    assert mean == pytest.approx(np.nanmean(m)) and lo < mean < hi
    r, rlo, rhi = ratio_interval(_per(m), _per(m)["v"].to_numpy(), np.ones(30), n_boot=400)
    assert r == pytest.approx(np.nanmean(m)) and rlo < r < rhi


def test_intervals_stay_inside_the_statistics_range():
    """Three seeds that disagree widely: the t half-width exceeds the distance to 0 and 1, and
    the reported interval is cut to the range a share or a correlation can take."""
    rng = np.random.default_rng(5)
    m = np.clip(0.5 + _crossed(rng, 3, 6, sd_seed=0.4, sd_ex=0.05, sd_res=0.05), 0, 1)
    raw = mean_interval(_per(m), "v")
    cut = mean_interval(_per(m), "v", bounds=(0.0, 1.0))
    assert raw[1] < 0 or raw[2] > 1
    assert 0.0 <= cut[1] <= cut[0] <= cut[2] <= 1.0
    shares = effect_shares(_atlas(3, 6, seed=1), n_boot=200)
    assert (shares["share_lo"] >= 0).all() and (shares["share_hi"] <= 1).all()
    cc = cross_check(_atlas(3, 6, seed=1), n_boot=200)
    assert (cc["spearman_hi"] <= 1).all() and (cc["fnr10_lo"] >= 0).all()
