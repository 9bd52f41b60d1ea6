"""Inference on the crossed seeds x examples design: simulation tests with known truth, the
degenerate cases (exact bounds, n/a seed tests), contrasts over tidy rows, `compare` and the
planner."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from icl_tokens.analysis.compare import compare
from icl_tokens.analysis.inference import (
    cell_estimate,
    contrast_effect,
    contrast_matrix,
    crossed_mean,
    pool_tasks,
    seed_ttest,
    variance_components,
)
from icl_tokens.analysis.power import default_pairs, detectable_effect, pilot_components, plan
from icl_tokens.analysis.simulate import check_method, gauss_difference
from icl_tokens.cli import main

N_SIM = 1000
DESIGNS = [(2, 12), (5, 50), (15, 24)]


@pytest.mark.parametrize("kind", ["binary", "gauss"])
@pytest.mark.parametrize("design", DESIGNS, ids=[f"{s}x{e}" for s, e in DESIGNS])
def test_coverage_and_false_positive_rate_on_crossed_data(kind, design):
    """1000 simulated runs per design and setting: the 95% interval of a paired difference
    covers the truth 92-98% of the time, with and without an effect, and the test rejects a
    true null at most 7% of the time."""
    s, e = design
    delta = 0.8 if kind == "binary" else 0.1
    cov_null, fpr = check_method(kind, s, e, 0.0, n_sim=N_SIM, seed=1)
    cov_eff, _ = check_method(kind, s, e, delta, n_sim=N_SIM, seed=2)
    assert 0.92 <= cov_null <= 0.98, (kind, design, cov_null)
    assert 0.92 <= cov_eff <= 0.98, (kind, design, cov_eff)
    assert fpr <= 0.07, (kind, design, fpr)


def test_nested_bootstrap_style_independence_would_undercover():
    """The reason for the crossed method: treating the S x E rows as independent undercovers when
    examples vary (a check that the simulation can tell methods apart)."""
    rng = np.random.default_rng(3)
    cover = 0
    for _ in range(400):
        d = gauss_difference(rng, 5, 50, 0.0)
        se = d.std(ddof=1) / math.sqrt(d.size)
        cover += abs(d.mean()) <= 1.96 * se
    assert cover / 400 < 0.85


def test_variance_components_recover_known_values():
    rng = np.random.default_rng(0)
    s, e = 60, 400
    m = rng.normal(0, 2, (s, 1)) + rng.normal(0, 1, (1, e)) + rng.normal(0, 0.5, (s, e))
    c = variance_components(m)
    assert c.seed == pytest.approx(4, rel=0.3)
    assert c.example == pytest.approx(1, rel=0.2)
    assert c.residual == pytest.approx(0.25, rel=0.05)


def test_identical_seed_differences_give_na_not_a_p_value():
    st = seed_ttest([5.0, 5.0])
    assert math.isnan(st.p) and st.note.startswith("n/a")
    st = seed_ttest([5.0, 5.0, 5.0])
    assert math.isnan(st.p) and "same difference" in st.note
    st = seed_ttest([1.0, 2.0])
    assert math.isnan(st.p) and "3" in st.note
    assert not math.isnan(seed_ttest([1.0, 2.0, 4.0]).p)


def test_zero_cell_gets_an_interval_from_its_distinct_examples():
    est = cell_estimate(np.zeros((2, 12)), scale=100)
    assert est.ci_low == 0 and est.ci_high == pytest.approx(24.25, abs=0.1)  # Wilson, n = 12
    full = cell_estimate(np.ones((3, 12)), scale=100)
    assert full.ci_high == 100 and full.ci_low == pytest.approx(75.75, abs=0.1)


def test_no_discordant_row_gets_the_exact_bound_and_p_one():
    est = crossed_mean(np.zeros((2, 12)), difference_of_binary=True, scale=100)
    q = 0.025 ** (1 / 12)
    assert est.ci_low == pytest.approx(-(1 - q) * 100) and est.ci_high == pytest.approx(
        (1 - q) * 100)
    assert est.p == 1.0
    up = crossed_mean(np.ones((2, 12)), difference_of_binary=True, scale=100)
    assert up.ci_low == pytest.approx((2 * q - 1) * 100) and up.ci_high == 100
    assert up.p == pytest.approx(2 * 0.5 ** 12)
    one = crossed_mean(np.ones((1, 1)), difference_of_binary=True)
    assert one.ci_low < 0 < one.ci_high and one.p == 1.0  # one example proves nothing


def test_zero_shot_repeated_over_seeds_counts_once():
    """A condition with no seed dependence, repeated per seed, gives the same interval however
    many seeds repeat it (its E values count once)."""
    rng = np.random.default_rng(5)
    row = (rng.random(30) < 0.4).astype(float)
    a = cell_estimate(np.tile(row, (2, 1)))
    b = cell_estimate(np.tile(row, (10, 1)))
    assert (a.ci_low, a.ci_high) == pytest.approx((b.ci_low, b.ci_high))


def _tidy(n_seeds: int = 4, n_ex: int = 30, effect: float = 0.3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    hard = rng.normal(0, 1, n_ex)
    for s in range(n_seeds):
        shift = rng.normal(0, 0.3)
        for cond, d in (("icl", 0.0), ("icl-content", -effect), ("zero_shot", -1.0)):
            for e in range(n_ex):
                x = 1.0 + hard[e] + d + (shift if cond != "zero_shot" else 0.0)
                y = int(rng.random() < expit(x)) if cond != "zero_shot" else int(hard[e] > 0)
                rows.append({"model": "m", "task": "sst2", "seed": s, "example_id": f"e{e}",
                             "condition": cond, "correct": y,
                             "margin": float(x + rng.normal(0, 0.5)),
                             "score_Positive": -1.0, "score_Negative": -2.0, "gold": "Positive"})
    return pd.DataFrame(rows)


def test_contrast_matrix_is_seed_by_example_and_refuses_holes():
    df = _tidy()
    m, seeds, ex = contrast_matrix(df, {"icl-content": 1, "icl": -1}, "margin")
    assert m.shape == (4, 30) and seeds == [0, 1, 2, 3] and ex[0] == "e0"
    with pytest.raises(ValueError, match="missing"):
        contrast_matrix(df.drop(index=5), {"icl": 1}, "margin")
    with pytest.raises(ValueError, match="duplicated"):
        contrast_matrix(pd.concat([df, df.iloc[[0]]]), {"icl": 1}, "margin")
    with pytest.raises(ValueError, match="lack the condition"):
        contrast_matrix(df, {"nope": 1}, "margin")


def test_pool_tasks_averages_effects_and_adds_variances():
    df = _tidy()
    e1, _ = contrast_effect(df, {"icl-content": 1, "icl": -1}, "margin")
    e2, _ = contrast_effect(df.assign(task="agnews"), {"icl-content": 1, "icl": -1}, "margin")
    pooled = pool_tasks([e1, e2])
    assert pooled.mean == pytest.approx(e1.mean)
    assert pooled.se == pytest.approx(e1.se / math.sqrt(2))


def test_compare_function_and_cli_json(tmp_path, capsys):
    df = _tidy()
    res = compare(df, "icl", "icl-content", "margin")
    assert res.effect < 0 and res.n_seeds == 4 and res.n_examples == 30
    path = tmp_path / "run.csv"
    df.to_csv(path, index=False)
    assert main(["compare", str(path), "--conditions", "icl,icl-content", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("effect", "ci_low", "ci_high", "p", "n_seeds", "n_examples", "method",
                "seed_ttest"):
        assert key in out
    assert set(out["seed_ttest"]) >= {"t", "p", "note"}
    acc = compare(df, "icl", "icl-content")  # acc_gen, in points
    assert out["effect"] == pytest.approx(acc.effect) and out["unit"] == "points"
    assert out["ci_low"] == pytest.approx(acc.estimate.ci_low)
    assert main(["compare", str(path), "--conditions", "icl,icl-content"]) == 0
    assert "reading:" in capsys.readouterr().out


def test_compare_errors_are_one_line_exit_2(tmp_path, capsys):
    df = _tidy()
    path = tmp_path / "run.csv"
    df[df.condition != "icl-content"].to_csv(path, index=False)
    assert main(["compare", str(path), "--conditions", "icl,icl-content"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "icl-content" in err and "\n" not in err
    other = df.copy()
    other.loc[other.condition == "icl-content", "seed"] += 100
    other.to_csv(path, index=False)
    assert main(["compare", str(path), "--conditions", "icl,icl-content"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no (seed, example) rows in common" in err and "\n" not in err
    path.write_text("model,task\n1,2,3\n")
    assert main(["compare", str(path), "--conditions", "icl,icl-content"]) == 2
    assert str(path) in capsys.readouterr().err


def test_planner_finds_more_seeds_for_seed_variance():
    rows = _tidy(n_seeds=5, n_ex=60)
    comps = pilot_components(rows, [("icl-content", "icl")], "correct")
    assert {"var_seed", "var_example", "var_residual"} <= set(comps.columns)
    r = comps.iloc[0]
    mde_small = detectable_effect(r, 3, 40)
    mde_big = detectable_effect(r, 10, 200)
    assert mde_big < mde_small
    table = plan(comps, effect=10.0, seeds=(3, 10))
    assert list(table["seeds"]) == [3, 10]
    seed_heavy = {"var_seed": 400.0, "var_example": 0.0, "var_residual": 100.0}
    assert math.isinf(detectable_effect(seed_heavy, 1, 500))
    needed = plan(pd.DataFrame([{**seed_heavy, "model": "m", "task": "t", "a": "x", "b": "y"}]),
                  effect=5.0, seeds=(3, 30), max_examples=500)
    assert math.isnan(needed["examples_every_pair"].iloc[0])  # 3 seeds: no E is enough
    assert default_pairs(["icl", "icl-content", "zero_shot", "+template"]) == [
        ("icl-content", "icl"), ("+template", "zero_shot")]


def test_power_cli_prints_a_plan(tmp_path, capsys):
    path = tmp_path / "pilot.csv"
    _tidy(n_seeds=3, n_ex=40).to_csv(path, index=False)
    assert main(["power", str(path), "--effect", "0", "--metric", "margin"]) == 2
    assert "--effect must be > 0" in capsys.readouterr().err
    assert main(["power", str(path), "--effect", "0.2", "--metric", "margin"]) == 0
    out = capsys.readouterr().out
    assert "var_seed" in out and "examples needed" in out and "per pair" in out
    assert main(["power", str(path), "--effect", "0.2", "--metric", "margin", "--seeds", "4,9",
                 "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert {"4 seeds", "9 seeds", "pair"} <= set(got["per_pair"][0])


def test_pooled_exact_bound_tasks_stay_wide():
    """Six tasks of one 0/1 row each (every difference the same) cannot support a verdict: the
    pooled interval is tens of points wide, not the bound divided by a t quantile."""
    ests = [crossed_mean(np.full((1, 1), v), difference_of_binary=True, scale=100)
            for v in (-1.0, 0.0, 0.0, 0.0, 0.0, 0.0)]
    pooled = pool_tasks(ests)
    assert pooled.ci_low < 0 < pooled.ci_high
    assert pooled.ci_high - pooled.ci_low > 60


def test_compare_on_every_tidy_file_of_the_committed_smoke_folder(capsys):
    """`compare --json` on a reproduce folder's tidy rows of every level; the folder itself is
    refused when a condition is in several of its files (one line, exit 2)."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "docs" / "results" / "smoke-gemma-3-270m"
    pairs = {"representation": "icl,icl-content", "nltk": "icl,+template",
             "token": "icl,icl-template", "parts": "temp+label,temp-colon+label",
             "variants": "original|icl,swap|icl"}
    for exp, pair in pairs.items():
        assert main(["compare", str(folder / "tidy" / f"{exp}.csv"), "--conditions", pair,
                     "--json"]) == 0, exp
        out = json.loads(capsys.readouterr().out)
        assert out["n_examples"] == 6 and out["n_seeds"] == 1  # six tasks, one example each
    assert main(["compare", str(folder), "--conditions", "icl,icl-content"]) == 2
    err = capsys.readouterr().err.strip()
    assert "in several files" in err and "\n" not in err
