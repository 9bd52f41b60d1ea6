"""What a probe's accuracy is judged against: the permutation null and the control task.

**Permutation null** (:func:`permute_groups`, :func:`permuted_labels`, :func:`null_pvalues`):
the labels are shuffled across prompt groups (a group's points take over the labels of another
group of the same size, so labels that go together in a prompt stay together) and the whole
probe is refitted -- the same folds, standardisation and inner choice of ``C`` as the real fit
-- ``permutations`` times (the same shuffles for every layer). Per cell: the null's mean and
95th percentile, the empirical p-value ``(1 + #null >= observed) / (1 + n_perm)``, and a
p-value corrected for picking the best layer (the max-statistic: each shuffle's best null
accuracy over the layers of the same position and knockout;
``(1 + #max_null >= observed) / (1 + n_perm)``).

**Control task** (Hewitt & Liang 2019; :func:`control_labels`): the labels reassigned at random
per input text. It can only be learnt for texts seen in training, and the group folds never put
one text on both sides, so with :func:`~icl_tokens.aggregation.probe_data.prompt_groups` folds
the control cannot be learnt and ``accuracy - control`` would just be accuracy minus chance.
``control`` and ``selectivity`` are therefore computed only when some held-out point's text
also occurs on its fold's training side (:func:`control_seen` ``> 0``); otherwise they are NaN
and ``control_note`` is :data:`UNLEARNABLE`. Whether the probe beats chance is the permutation
null's question.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from jaxtyping import Float, Int

__all__ = ["DEFAULT_PERMUTATIONS", "UNLEARNABLE", "control_labels", "control_seen",
           "permute_groups", "permuted_labels", "null_pvalues"]

#: Label shuffles of the permutation null by default (p-values no smaller than 1/21).
DEFAULT_PERMUTATIONS: int = 20
#: ``control_note`` of a cell whose control task cannot be learnt.
UNLEARNABLE = "unlearnable: folds share no text"


def control_labels(texts: Sequence[str], y: Int[np.ndarray, "n"], seed: int = 0
                   ) -> Int[np.ndarray, "n"]:
    """The control task: each distinct input text gets a random label (a permutation of the
    texts' labels, so the label distribution is kept); every point of a text gets its label."""
    texts = list(texts)
    y = np.asarray(y)
    uniq, first = np.unique(np.array(texts, dtype=object), return_index=True)
    perm = np.random.default_rng(seed).permutation(y[first])
    lookup = dict(zip(uniq.tolist(), perm.tolist()))
    return np.array([lookup[t] for t in texts], dtype=y.dtype)


def control_seen(texts: Sequence[str], splits: Sequence[tuple[np.ndarray, np.ndarray]]
                 ) -> float:
    """Share of held-out points whose text (the control task's key) also occurs on the
    training side of their fold: the only points on which a per-text control can be learnt.

    It is 0 for :func:`~.probe_data.prompt_groups` folds (a text never lies on both sides).
    """
    keys = np.array(list(texts), dtype=object)
    seen = sum(int(np.isin(keys[te], keys[tr]).sum()) for tr, te in splits)
    held = sum(len(te) for _, te in splits)
    return seen / held if held else 0.0


def permute_groups(y: Int[np.ndarray, "n"], groups: Int[np.ndarray, "n"],
                   rng: np.random.Generator) -> Int[np.ndarray, "n"]:
    """One shuffle of the labels across groups, keeping each group's labels together.

    Groups with the same number of points are permuted among themselves: every point of group
    ``g`` takes the label of the matching point (same rank within its group) of one source
    group ``pi(g)``. So the labels a group holds, and which of its points share a label, move
    as a block, and the label distribution is kept. A group whose size no other group has keeps
    its labels (a conservative null for it).
    """
    y, groups = np.asarray(y), np.asarray(groups)
    _, inv, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    members = [np.flatnonzero(inv == i) for i in range(len(sizes))]
    out = y.copy()
    for size in np.unique(sizes):
        ids = np.flatnonzero(sizes == size)
        for dst, src in zip(ids, rng.permutation(ids)):
            out[members[dst]] = y[members[src]]
    return out


def permuted_labels(y: Int[np.ndarray, "n"], groups: Int[np.ndarray, "n"], permutations: int,
                    seed: int | Sequence[int] = 0) -> Int[np.ndarray, "perm n"]:
    """``permutations`` group shuffles (:func:`permute_groups`) drawn by ``default_rng(seed)``."""
    if permutations < 0:
        raise ValueError(f"permutations must be >= 0, got {permutations}.")
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    return np.stack([permute_groups(y, groups, rng) for _ in range(permutations)]
                    ) if permutations else np.empty((0, len(y)), dtype=y.dtype)


def null_pvalues(observed: Float[np.ndarray, "layer"], null: Float[np.ndarray, "perm layer"]
                 ) -> dict[str, Float[np.ndarray, "layer"]]:
    """Permutation-null summaries of one family of layers (one position and knockout).

    Args:
        observed: Held-out accuracy per layer.
        null: Held-out accuracy per shuffle (the same shuffles for every layer) and layer.

    Returns:
        Per layer: ``null_mean``, ``null_q95`` (its 95th percentile), ``p_perm``
        (``(1 + #null >= observed) / (1 + n_perm)``), ``max_null_q95`` (the 95th percentile of
        each shuffle's best layer: the threshold corrected for choosing the best layer) and
        ``p_max`` (``(1 + #max_null >= observed) / (1 + n_perm)``); NaN without shuffles.
    """
    observed = np.asarray(observed, dtype=np.float64)
    null = np.asarray(null, dtype=np.float64).reshape(-1, len(observed))
    n_perm = len(null)
    if n_perm == 0:
        nan = np.full(len(observed), np.nan)
        return {k: nan.copy() for k in ("null_mean", "null_q95", "p_perm", "max_null_q95",
                                        "p_max")}
    best = null.max(axis=1)  # [perm]: the max-statistic over the family's layers
    return {
        "null_mean": null.mean(axis=0),
        "null_q95": np.quantile(null, 0.95, axis=0),
        "p_perm": (1 + (null >= observed[None]).sum(axis=0)) / (1 + n_perm),
        "max_null_q95": np.full(len(observed), np.quantile(best, 0.95)),
        "p_max": (1 + (best[:, None] >= observed[None]).sum(axis=0)) / (1 + n_perm),
    }


def _null_seed(seed: int, data_seed: int) -> list[int]:
    """The shuffles' seed: the probe seed, the pooled (-1) or per-seed subset, a domain tag."""
    return [int(seed), int(data_seed) + 1, 0x6E75]

