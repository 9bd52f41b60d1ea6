"""Checkers of notebooks 01-04: categories, the key rule, knockout and removal masks."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..ablation.conditions import CONDITIONS, condition_knockout, knockout_for
from ..ablation.knockout import Block, Knockout
from ..ablation.removal import removed_positions
from ..ablation.selection import KINDS, Sel, key_rule
from ..aggregation.block import aggregation_knockout
from ..categorize import TokenizedPrompt
from ..experiments.template_parts import PART_CONDITIONS, part_knockout
from .common import (
    _bool_matrix,
    _bool_vector,
    _checker,
    _dense,
    _diff_matrix,
    _diff_vector,
    _ok,
    _text,
    exercise_prompts,
)

# ------------------------------------------------------------------------------ notebook 01


@_checker
def check_demo_counts(fn: Callable[[TokenizedPrompt], dict[str, int]]) -> bool:
    """``fn(tp)`` → ``{"template": n, "stopword": n, "content": n, "label": n}``: how many
    *demonstration* tokens carry each category (a token counts in each of its categories)."""
    cases = exercise_prompts()
    for name, tp in cases:
        got, want = dict(fn(tp)), tp.demo_counts()
        if got != want:
            raise AssertionError(f"{name}: yours {got}, expected {want}. Count only tokens of "
                                 "the demonstrations (tp.demo >= 0), each once per category.")
    return _ok("check_demo_counts", len(cases), "category counts of demonstration tokens")


@_checker
def check_label_colons(fn: Callable[[TokenizedPrompt], Sequence[int]]) -> bool:
    """``fn(tp)`` → the positions of the ``:`` token right before each demonstration's label
    word, in order (one per demonstration)."""
    cases = exercise_prompts()
    for name, tp in cases:
        got = [int(i) for i in fn(tp)]
        want = np.flatnonzero(tp.has_role("demo_*.t_out.colon")).tolist()
        if got != want:
            raise AssertionError(
                f"{name}: yours {got} ({[_text(tp, i) for i in got if 0 <= i < len(tp)]}), "
                f"expected {want}. Not every colon qualifies: T_in has one, the test example "
                "has its own, and a demonstration's text may contain ':' too.")
    return _ok("check_label_colons", len(cases), "T_out colons")


# ------------------------------------------------------------------------------ notebook 02


def _hidden_sets() -> list[frozenset[str]]:
    return [frozenset(c) for c in ({"content"}, {"stopword"}, {"template"},
                                   {"stopword", "content"}, {"template", "content"},
                                   {"template", "stopword"}, set(KINDS))]


@_checker
def check_key_rule(fn: Callable[[TokenizedPrompt, frozenset[str]], Any]) -> bool:
    """``fn(tp, hidden)`` → Bool ``[pos]``: the keys hidden from the test example when the kinds
    ``hidden`` are hidden (paper-spec §6 E1: a token is hidden iff it carries a kind and all of
    its kinds are hidden; BOS, instruction, labels and the test example never are)."""
    cases = exercise_prompts()
    n = 0
    for name, tp in cases:
        for hidden in _hidden_sets():
            got = _bool_vector(name, fn(tp, hidden), len(tp), "hidden keys")
            _diff_vector(f"{name}, hidden={sorted(hidden)}", tp, got,
                         key_rule(tp.codes, hidden), "the hidden keys")
            n += 1
    return _ok("check_key_rule", n, "prompts × hidden sets")


@_checker
def check_knockout_mask(fn: Callable[[TokenizedPrompt, str], Any]) -> bool:
    """``fn(tp, condition)`` → Bool ``[query, key]`` over all prompt positions, True = blocked:
    the test example's tokens may not attend to the keys the condition hides (every other row
    all False). Conditions: the names of :data:`~icl_tokens.ablation.CONDITIONS`."""
    cases = exercise_prompts()
    n = 0
    for name, tp in cases:
        for cond in CONDITIONS:
            got = _bool_matrix(f"{name}, {cond}", fn(tp, cond), len(tp))
            _diff_matrix(f"{name}, {cond}", tp, got, condition_knockout(tp, cond).dense()
                         .numpy())
            n += 1
    return _ok("check_knockout_mask", n, "prompts × conditions")


def no_colon_reference() -> Knockout:
    """The reference of :func:`check_no_colon_knockout`."""
    return knockout_for("+template") | Knockout((Block(Sel.test(),
                                                       Sel.role("demo_*.t_out.colon")),))


@_checker
def check_no_colon_knockout(fn: Callable[[], Knockout] | Knockout) -> bool:
    """``fn()`` (or a knockout itself): "Zero-shot + TEMP" (``+template``), and in addition the
    test example may not see the ``:`` right before each demonstration's label. Compared by
    what it blocks on every prompt (any blocks that block the same pairs pass)."""
    return _same_blocked_pairs(fn, no_colon_reference(), "check_no_colon_knockout")


def _same_blocked_pairs(fn: Callable[[], Knockout] | Knockout, ref: Knockout,
                        checker: str) -> bool:
    """``fn()`` (or a knockout) blocks the same (query, key) pairs as ``ref`` on every exercise
    prompt, generated tokens included."""
    ko = fn() if callable(fn) and not isinstance(fn, Knockout) else fn
    if not isinstance(ko, Knockout):
        raise AssertionError(f"pass a Knockout, got {type(ko).__name__}.")
    cases = exercise_prompts()
    for name, tp in cases:
        got, want = _dense(ko, tp, 2), _dense(ref, tp, 2)  # + two generated tokens
        _diff_matrix(name, tp, got[: len(tp)], want[: len(tp)])
        if (got != want).any():
            raise AssertionError(f"{name}: (query, key) pairs differ for the generated tokens; "
                                 "they belong to the test example: use Sel.test() as the "
                                 "queries (it includes them).")
    return _ok(checker, len(cases), "blocked pairs")


# ------------------------------------------------------------------------------ notebook 03


@_checker
def check_removal_mask(fn: Callable[[TokenizedPrompt, frozenset[str]], Any]) -> bool:
    """``fn(tp, removed)`` → Bool ``[pos]``, True = the token is dropped from the prompt at the
    token level (paper-spec E4): a token goes iff it carries a kind and all of its kinds are
    removed; BOS, the instruction and the label words always stay; the test example loses the
    same kinds as the demonstrations."""
    cases = exercise_prompts()
    n = 0
    for name, tp in cases:
        for removed in _hidden_sets():
            got = _bool_vector(name, fn(tp, removed), len(tp), "drop mask")
            want = removed_positions(tp.codes, tp.demo, tp.roles, removed)
            _diff_vector(f"{name}, removed={sorted(removed)}", tp, got, want, "what is dropped")
            n += 1
    return _ok("check_removal_mask", n, "prompts × removed sets")


@_checker
def check_template_part_knockout(fn: Callable[[str, bool, bool], Knockout]) -> bool:
    """``fn(part, colon, label)`` → the knockout under which the test example sees, of the
    demonstrations, only the template tokens of ``part`` (``"temp"``: all; ``"t_out"``; ``"t_in"``),
    without the template colons unless ``colon``, plus the label words if ``label`` (Tables 5
    and 6; compared with :func:`~icl_tokens.experiments.template_parts.part_knockout`)."""
    cases = exercise_prompts()
    n = 0
    for cond, (part, colon, label) in PART_CONDITIONS.items():
        ko = fn(part, colon, label)
        if not isinstance(ko, Knockout):
            raise AssertionError(f"fn{(part, colon, label)} returned {type(ko).__name__}, not a "
                                 "Knockout.")
        ref = part_knockout(cond)
        for name, tp in cases:
            _diff_matrix(f"{name}, {cond}", tp, _dense(ko, tp), _dense(ref, tp))
            n += 1
    return _ok("check_template_part_knockout", n, "prompts × 12 template-part conditions")


# ------------------------------------------------------------------------------ notebook 04


@_checker
def check_aggregation_mask(fn: Callable[[TokenizedPrompt], Any]) -> bool:
    """``fn(tp)`` → Bool ``[query, key]``, True = blocked: inside the demonstrations, tokens that
    carry template, stopword or label (and no content) may not attend to tokens that carry
    content (and none of template, stopword, label) -- paper-spec E9's block. Compared on the
    causal pairs (key before query); what you put above the diagonal does not matter."""
    cases = exercise_prompts()
    ref = aggregation_knockout()
    for name, tp in cases:
        got = _bool_matrix(name, fn(tp), len(tp))
        causal = np.tril(np.ones((len(tp), len(tp)), dtype=bool), -1)
        _diff_matrix(name, tp, got & causal, _dense(ref, tp) & causal)
    return _ok("check_aggregation_mask", len(cases), "causal (query, key) pairs")
