"""Checkers of notebook 07: the single-key knockout behind every atlas row, and the share of
the effect per category."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from ..ablation.knockout import Knockout
from ..atlas.items import token_knockout
from ..atlas.rollups import effect_shares
from ..categorize import TokenizedPrompt
from .common import _checker, _dense, _diff_matrix, _labels, _ok, exercise_prompts


@_checker
def check_token_knockout(fn: Callable[[int], Knockout]) -> bool:
    """``fn(i)`` → the :class:`~icl_tokens.ablation.Knockout` of one atlas row: the test
    example's tokens (and every generated token) may not attend to the key at position ``i``,
    in all layers; nothing else changes. Compared by the (query, key) pairs it blocks with
    :func:`~icl_tokens.atlas.items.token_knockout` on every exercise prompt, for the first, a
    middle and the last demonstration token."""
    cases = exercise_prompts()
    n = 0
    for name, tp in cases:
        demo = np.flatnonzero(np.asarray(tp.demo) >= 0)
        for i in (int(demo[0]), int(demo[len(demo) // 2]), int(demo[-1])):
            ko = fn(i)
            if not isinstance(ko, Knockout):
                raise AssertionError(f"fn({i}) returned {type(ko).__name__}; return a Knockout "
                                     "(Knockout((Block(queries, keys),))).")
            label = f"{name}, key #{i}"
            got, want = _dense(ko, tp, 2), _dense(token_knockout(i), tp, 2)
            _diff_matrix(label, tp, got[: len(tp)], want[: len(tp)])
            if (got != want).any():
                raise AssertionError(f"{label}: the generated tokens' rows differ; they belong "
                                     "to the test example: use Sel.test() as the queries.")
            resolved = ko.resolve(_labels(tp))
            if any(b.layers is not None or b.heads is not None for b in resolved.blocks):
                raise AssertionError(f"{label}: your knockout is limited to some layers or "
                                     "heads; the atlas's default removes the key in all of them.")
            if ko.mode != "scores":
                raise AssertionError(f"{label}: mode {ko.mode!r}; the atlas removes the key "
                                     "before the softmax (mode 'scores', the default).")
            n += 1
    return _ok("check_token_knockout", n, "prompts × key positions")


def _example_frame(tp: TokenizedPrompt, seed: int) -> pd.DataFrame:
    """An atlas-shaped table of one example: random effects on the prompt's demonstration
    tokens (heavy-tailed, as real atlases are; a few exact zeros)."""
    rng = np.random.default_rng(seed)
    demo = np.flatnonzero(np.asarray(tp.demo) >= 0)
    delta = rng.standard_t(2, size=len(demo)) * 0.1
    delta[rng.random(len(demo)) < 0.1] = 0.0
    return pd.DataFrame({"model": "m", "task": "t", "seed": 0, "example_id": "t",
                         "position": demo, "token": [tp.table()[i]["text"] for i in demo],
                         "categories": ["|".join(tp.categories(int(i))) for i in demo],
                         "roles": ["|".join(tp.roles[int(i)]) for i in demo],
                         "delta_margin": delta})


@_checker
def check_effect_shares(fn: Callable[[pd.DataFrame], dict[str, float]]) -> bool:
    """``fn(rows)`` → ``{categories: share}``: for the atlas rows of one example (columns
    ``categories``, a token's categories joined with ``|``, and ``delta_margin``), each
    category set's share of the example's total ``|delta_margin|`` (compared with
    :func:`~icl_tokens.atlas.rollups.effect_shares`)."""
    cases = exercise_prompts()
    for j, (name, tp) in enumerate(cases):
        rows = _example_frame(tp, j)
        got = {str(k): float(v) for k, v in dict(fn(rows.copy())).items()}
        want = effect_shares(rows, "categories", n_boot=10).set_index("group")["share"]
        missing = sorted(set(want.index) - set(got))
        if missing:
            raise AssertionError(f"{name}: no share for {missing}; give every category set of "
                                 "the rows (a token's exact set, e.g. 'template|stopword').")
        for g, v in want.items():
            if not np.isclose(got[g], v, atol=1e-9):
                raise AssertionError(f"{name}: {g!r} yours {got[g]:.6f}, expected {v:.6f}. "
                                     "Divide the group's summed |delta_margin| by the total "
                                     "|delta_margin| of the example.")
    return _ok("check_effect_shares", len(cases), "examples")
