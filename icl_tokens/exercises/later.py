"""Checkers of notebooks 04-05: attention mass, Randomfixed prompts, the colon-only knockout."""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from ..ablation.knockout import Knockout
from ..ablation.selection import Sel
from ..aggregation.attention_mass import category_mass
from ..engine.items import Item
from ..prompts import build_prompt
from ..tasks import Example, TaskSpec, load_task
from .common import _DEMOS, _TESTS, _checker, _labels, _ok, exercise_prompts
from .masks import _same_blocked_pairs


def _random_pattern(n: int, n_layers: int, n_heads: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n_layers, n_heads, n, n)) * 2
    scores[..., np.triu(np.ones((n, n), dtype=bool), 1)] = -np.inf
    p = np.exp(scores - scores.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


@_checker
def check_category_mass(fn: Callable[[np.ndarray, Item, np.ndarray], dict[str, float]]) -> bool:
    """``fn(pattern, item, queries)`` → ``{key group: mass}``: the share of attention the query
    positions give to each key group (``bos``, ``instruction``, ``template``, ``stopword``,
    ``content``, ``label`` of the demonstrations, ``test``), summed over the group's keys and
    averaged over queries, heads and layers. ``pattern`` is ``[layer, head, query, key]``
    (random here), ``queries`` a Bool ``[pos]`` mask. A token of several categories counts in
    each of its groups (compared with
    :func:`~icl_tokens.aggregation.attention_mass.category_mass`)."""
    cases = exercise_prompts()
    for j, (name, tp) in enumerate(cases):
        item = _labels(tp)
        pattern = _random_pattern(len(tp), 2, 3, seed=j)
        for scope, queries in (("test", Sel.test(generated=False)), ("last", Sel.last())):
            mask = queries.mask(item)
            got = {k: float(v) for k, v in dict(fn(pattern, item, mask)).items()}
            want = category_mass(pattern, item, mask).groupby("category")["mass"].mean()
            missing = sorted(set(want.index) - set(got))
            if missing:
                raise AssertionError(f"{name}, queries={scope}: no value for groups {missing}.")
            for g, v in want.items():
                if not np.isclose(got[g], v, atol=1e-6):
                    raise AssertionError(f"{name}, queries={scope}: group {g!r} yours "
                                         f"{got[g]:.6f}, expected {v:.6f}.")
    return _ok("check_category_mass", 2 * len(cases), "prompts × query scopes")


# ------------------------------------------------------------------------------ notebook 05

#: Test inputs of :func:`check_randomfixed_prompt` (the paper's template #1 strings; the full
#: transcription is in ``data/variants/variants.json``).
RANDOM_STRINGS = {"single": ("dsafjkldafdsajk", "reqwiorewsdafjl"),
                  "pair": ("fdafdasjklfdadf", "zcxvnmxcjkfdas", "reqwiorewsdafjl")}


def randomfixed_reference(task: TaskSpec, demos: Sequence[Example], test: Example,
                          strings: Sequence[str]) -> str:
    """The Randomfixed prompt text (paper-spec §6.1): ``"{S_in}: {D_in}\\n"`` /
    ``"{S_out}: {D_out}\\n\\n"`` (CB/RTE: ``"{S_A}: {D_inA}\\n {S_B}: {D_inB}\\n"``), the same
    strings in every demonstration and the test example; the instruction unchanged."""
    fields = list(task.input_fields)
    if len(strings) != len(fields) + 1:
        raise ValueError(f"task {task.name} has {len(fields)} input fields: give "
                         f"{len(fields) + 1} strings (one per field, then S_out).")
    t_in = "\n ".join(f"{s}: {{{f}}}" for s, f in zip(strings, fields)) + "\n"
    t_out = f"{strings[-1]}: {{label}}\n\n"
    spec = dataclasses.replace(task, input_template=t_in, output_template=t_out)
    return build_prompt(spec, list(demos), test).text


@_checker
def check_randomfixed_prompt(fn: Callable[[TaskSpec, Sequence[Example], Example,
                                           Sequence[str]], str]) -> bool:
    """``fn(task, demos, test, strings)`` → the prompt text with the template words replaced by
    random strings, the same in every demonstration and the test example (paper-spec §6.1):
    ``strings`` is ``(S_in, S_out)``, or ``(S_A, S_B, S_out)`` for RTE/CB; the instruction and
    the label words stay; the prompt ends with ``"{S_out}:"``."""
    n = 0
    for task_name, demos in _DEMOS.items():
        task = load_task(task_name)
        strings = RANDOM_STRINGS["pair" if len(task.input_fields) == 2 else "single"]
        for k in (len(demos), 1, 0):
            got = fn(task, demos[:k], _TESTS[task_name], strings)
            want = randomfixed_reference(task, demos[:k], _TESTS[task_name], strings)
            if got != want:
                i = next((j for j, (a, b) in enumerate(zip(got, want)) if a != b),
                         min(len(got), len(want)))
                raise AssertionError(
                    f"{task_name}, k={k}: the prompts differ from character {i}: yours "
                    f"…{got[max(0, i - 30): i + 30]!r}…, expected "
                    f"…{want[max(0, i - 30): i + 30]!r}….")
            n += 1
    return _ok("check_randomfixed_prompt", n, "tasks × numbers of demonstrations")


@_checker
def check_colon_only_knockout(fn: Callable[[], Knockout] | Knockout) -> bool:
    """``fn()`` (or a knockout itself): Table 10's "Zero-shot + ':'" — the test example (and
    every generated token) sees, of the demonstrations, only the template colons and the label
    words; every other demonstration token, newlines included, is hidden (paper-spec E8, §10).
    Compared by what it blocks on every prompt."""
    from ..experiments.variants import colon_knockout

    return _same_blocked_pairs(fn, colon_knockout(), "check_colon_only_knockout")
