"""Tests for icl_tokens.episodes: seeded demonstrations and the fixed evaluated subset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from icl_tokens.data import TaskData, load_task_data
from icl_tokens.episodes import (
    EVAL_SUBSET_MAX,
    EVAL_SUBSET_SEED,
    Episode,
    eval_subset,
    sample_episode,
    sample_episodes,
)
from icl_tokens.tasks import Example

FIX = Path(__file__).parent / "fixtures" / "data"


def make_data(n_pool: int = 20, n_eval: int = 700, task: str = "toy") -> TaskData:
    pool = tuple(Example(f"train:{i}", {"text": f"pool {i}"}, str(i % 2)) for i in range(n_pool))
    ev = tuple(Example(f"test:{i}", {"text": f"eval {i}"}, str(i % 2)) for i in range(n_eval))
    return TaskData(task, pool, ev, "dir", "memory", "synthetic")


def ids(examples) -> list[str]:
    return [e.id for e in examples]


# ------------------------------------------------------------------------------ demonstrations
def test_demos_follow_the_documented_rule() -> None:
    data = make_data()
    for seed in (0, 3, 14):
        ep = sample_episode(data, seed, k=4)
        expected = np.random.default_rng(seed).permutation(20)[:4]
        assert ids(ep.demos) == [f"train:{i}" for i in expected]


def test_golden_seed_0() -> None:
    """Same seed, same episode on every machine (numpy PCG64); pinned values catch a change."""
    data = make_data(n_pool=20, n_eval=10)
    ep = sample_episode(data, 0, k=4)
    assert ids(ep.demos) == ["train:4", "train:19", "train:6", "train:2"]
    assert ids(ep.tests) == [f"test:{i}" for i in (1, 3, 2, 4, 8, 0, 9, 6, 7, 5)]


def test_same_seed_same_episode_and_seeds_differ() -> None:
    data = make_data()
    assert sample_episode(data, 7) == sample_episode(data, 7)
    draws = {tuple(ids(sample_episode(data, s).demos)) for s in range(15)}
    assert len(draws) == 15
    assert ids(sample_episode(data, 0).demos) != ids(sample_episode(data, 1).demos)


def test_demos_without_replacement_and_not_balanced() -> None:
    data = make_data(n_pool=20)
    for seed in range(15):
        demo_ids = ids(sample_episode(data, seed, k=20).demos)
        assert sorted(demo_ids) == sorted(ids(data.pool))  # a permutation: no repeats
    labels = {tuple(e.label for e in sample_episode(data, s).demos) for s in range(15)}
    assert any(ls.count("0") != 2 for ls in labels)  # a balanced draw would always be 2/2


def test_k1_is_first_demo_of_k4_and_k0_is_zero_shot() -> None:
    data = make_data()
    for seed in range(15):
        four = sample_episode(data, seed, k=4)
        assert sample_episode(data, seed, k=1).demos == four.demos[:1]
        assert sample_episode(data, seed, k=2).demos == four.demos[:2]
    zero = sample_episode(data, 0, k=0)
    assert zero.demos == () and zero.k == 0 and len(zero.tests) == EVAL_SUBSET_MAX


# --------------------------------------------------------------------------------- test subset
def test_eval_subset_rule_and_shared_across_seeds() -> None:
    data = make_data(n_eval=700)
    order = np.random.default_rng(EVAL_SUBSET_SEED).permutation(700)[:500]
    sub = eval_subset(data)
    assert ids(sub) == [f"test:{i}" for i in order]
    assert len(sub) == 500 and len(set(ids(sub))) == 500
    eps = sample_episodes(data, range(15))
    assert all(ep.tests == sub for ep in eps)
    assert [ep.seed for ep in eps] == list(range(15))


def test_n_test_is_a_prefix() -> None:
    data = make_data(n_eval=700)
    full = eval_subset(data)
    assert eval_subset(data, 50) == full[:50]
    assert sample_episode(data, 3, n_test=50).tests == full[:50]
    assert eval_subset(data, 500) == full


def test_small_eval_set_is_used_whole() -> None:
    data = make_data(n_eval=56)
    sub = eval_subset(data)
    assert len(sub) == 56 and sorted(ids(sub)) == sorted(ids(data.eval))
    # The order is still the fixed permutation (not source order).
    order = np.random.default_rng(EVAL_SUBSET_SEED).permutation(56)
    assert ids(sub) == [f"test:{i}" for i in order]


def test_max_size() -> None:
    data = make_data(n_eval=700)
    assert eval_subset(data, max_size=100) == eval_subset(data)[:100]


# -------------------------------------------------------------------------------------- errors
def test_errors() -> None:
    data = make_data(n_pool=3, n_eval=56)
    with pytest.raises(ValueError, match=r"k=4 demonstrations.*has only 3 rows; use k <= 3"):
        sample_episode(data, 0, k=4)
    with pytest.raises(ValueError, match="k must be >= 0"):
        sample_episode(data, 0, k=-1)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        sample_episode(data, -1, k=1)
    with pytest.raises(ValueError, match="n_test must be >= 1"):
        sample_episode(data, 0, k=1, n_test=0)
    with pytest.raises(ValueError, match=r"n_test=57 but only 56 evaluation examples"):
        sample_episode(data, 0, k=1, n_test=57)
    with pytest.raises(ValueError, match=r"only 10 evaluation examples"):
        eval_subset(data, 11, max_size=10)
    with pytest.raises(TypeError, match="seed must be an integer"):
        sample_episode(data, 1.5, k=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="k must be an integer"):
        sample_episode(data, 0, k=True)  # type: ignore[arg-type]


def test_numpy_integers_accepted() -> None:
    data = make_data()
    assert sample_episode(data, np.int64(2), k=np.int32(3)) == sample_episode(data, 2, k=3)


# ---------------------------------------------------------------------------------- to_dict
def test_to_dict_ids_only() -> None:
    ep = sample_episode(make_data(), 5, k=4, n_test=3)
    d = ep.to_dict()
    assert d == {
        "task": "toy", "seed": 5, "k": 4, "n_test": 3,
        "demo_ids": ids(ep.demos), "test_ids": ids(ep.tests),
    }
    json.dumps(d)
    assert isinstance(ep, Episode)


def test_with_fixture_data() -> None:
    data = load_task_data("trec", data_dir=FIX)
    ep = sample_episode(data, 0, k=4)
    assert ep.task == "trec" and len(ep.demos) == 4 and len(ep.tests) == 3
    assert set(ids(ep.demos)) <= set(ids(data.pool))
    assert set(ids(ep.tests)) == set(ids(data.eval))
