"""Episodes: the k demonstrations of a seed and the fixed evaluated test subset (paper-spec §4).

* **Demonstrations.** ``numpy.random.default_rng(seed).permutation(len(pool))[:k]``: uniform,
  without replacement, not class-balanced, kept in draw order. So the k = 1 episode of a seed is
  the first demonstration of its k = 4 episode. One set per seed, shared by every test example.
* **Test set.** One fixed random subset of the evaluation set, shared by every seed, condition and
  model: the first ``min(max_size, len(eval))`` (``max_size`` = 500) indices of
  ``default_rng(EVAL_SUBSET_SEED).permutation(len(eval))``, in that order. ``n_test`` takes a
  prefix of it, so the 50-example subset lies inside the 500-example one.

Only numpy's PCG64 generator is used, so a seed gives the same episode on every machine.

    >>> from icl_tokens.data import TaskData
    >>> from icl_tokens.tasks import Example
    >>> ex = lambda s, i: Example(f"{s}:{i}", {"text": f"row {i}"}, "1")
    >>> data = TaskData("toy", tuple(ex("train", i) for i in range(10)),
    ...                 tuple(ex("test", i) for i in range(8)), "dir", "-", "")
    >>> ep = sample_episode(data, seed=0, k=4, n_test=3)
    >>> len(ep.demos), len(ep.tests)
    (4, 3)
    >>> sample_episode(data, seed=0, k=1).demos == ep.demos[:1]
    True
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .data import TaskData
from .tasks import Example

__all__ = [
    "Episode",
    "EVAL_SUBSET_SEED",
    "EVAL_SUBSET_MAX",
    "eval_subset",
    "demo_indices",
    "sample_episode",
    "sample_episodes",
]

#: Seed of the permutation that fixes the evaluated test subset (shared by all seeds).
EVAL_SUBSET_SEED = 20240121
#: Size of the evaluated subset in the paper ("500 randomly selected test examples").
EVAL_SUBSET_MAX = 500


@dataclass(frozen=True)
class Episode:
    """The demonstrations of one seed and the evaluated test examples.

    Attributes:
        task: Task name.
        seed: The demonstration seed.
        k: Number of demonstrations.
        demos: The ``k`` demonstrations, in draw order (shared by every test example).
        tests: The evaluated examples (the fixed subset, in its fixed order).
    """

    task: str
    seed: int
    k: int
    demos: tuple[Example, ...]
    tests: tuple[Example, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary for logs (ids only)."""
        return {
            "task": self.task,
            "seed": self.seed,
            "k": self.k,
            "n_test": len(self.tests),
            "demo_ids": [d.id for d in self.demos],
            "test_ids": [t.id for t in self.tests],
        }


def _check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an ``int`` >= ``minimum`` (bools and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def eval_subset(
    data: TaskData, n: int | None = None, *, max_size: int = EVAL_SUBSET_MAX
) -> tuple[Example, ...]:
    """The fixed evaluated subset of ``data.eval`` (or its first ``n`` examples).

    Args:
        data: The task data.
        n: How many to take (a prefix of the fixed order); ``None`` for all of it.
        max_size: Size of the fixed subset; the whole eval set when it is smaller.

    Returns:
        The examples in the fixed random order.
    """
    max_size = _check_int("max_size", max_size, 1)
    order = np.random.default_rng(EVAL_SUBSET_SEED).permutation(len(data.eval))
    order = order[: min(max_size, len(data.eval))]
    if n is not None:
        n = _check_int("n_test", n, 1)
        if n > len(order):
            raise ValueError(
                f"n_test={n} but only {len(order)} evaluation examples are available for task "
                f"{data.task!r} (eval set {len(data.eval)}, subset limit {max_size}); use "
                f"n_test <= {len(order)} or None for all of them."
            )
        order = order[:n]
    return tuple(data.eval[int(i)] for i in order)


def demo_indices(pool_size: int, seed: int, k: int) -> list[int]:
    """Pool indices of the seed's ``k`` demonstrations, in draw order."""
    return [int(i) for i in np.random.default_rng(seed).permutation(pool_size)[:k]]


def _check_k(data: TaskData, k: Any) -> int:
    k = _check_int("k", k, 0)
    if k > len(data.pool):
        raise ValueError(
            f"k={k} demonstrations requested, but the demonstration pool of task {data.task!r} "
            f"has only {len(data.pool)} rows; use k <= {len(data.pool)} or a larger pool."
        )
    return k


def sample_episode(
    data: TaskData, seed: int, k: int = 4, n_test: int | None = None
) -> Episode:
    """The episode of ``seed``: ``k`` demonstrations and the fixed test subset.

    Args:
        data: The task data.
        seed: Non-negative demonstration seed (the paper uses 15 seeds, 0-14).
        k: Number of demonstrations (0 for zero-shot).
        n_test: Number of evaluated examples (a prefix of the fixed subset); ``None`` for all.

    Raises:
        ValueError: Negative seed or k, k larger than the pool, n_test out of range.
    """
    seed = _check_int("seed", seed, 0)
    k = _check_k(data, k)
    tests = eval_subset(data, n_test)
    demos = tuple(data.pool[i] for i in demo_indices(len(data.pool), seed, k))
    return Episode(data.task, seed, k, demos, tests)


def sample_episodes(
    data: TaskData, seeds: Sequence[int], k: int = 4, n_test: int | None = None
) -> list[Episode]:
    """:func:`sample_episode` for each seed; all share the same test examples."""
    return [sample_episode(data, s, k, n_test) for s in seeds]
