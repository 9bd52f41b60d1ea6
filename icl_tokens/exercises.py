"""Checkers for the notebooks' exercises (ARENA style): write a small function, pass it here.

Each ``check_*`` runs the reader's function on a set of prompts (several tasks, including the
two-input RTE format, and several tokenizers, including one that merges ``.\\n`` into a single
token), compares it with what ``icl_tokens`` computes, and either prints one ✓ line or raises an
``AssertionError`` that names the first prompt and the first tokens where the answers differ.
No model is needed (the attention-mass checker uses random attention patterns).

======================================  ========  ================================================
checker                                 notebook  the reader writes
======================================  ========  ================================================
:func:`check_demo_counts`               01        demonstration tokens per category
:func:`check_label_colons`              01        the ``:`` right before each demonstration's label
:func:`check_key_rule`                  02        the paper's key rule (which keys a kind hides)
:func:`check_knockout_mask`             02        the ``[query, key]`` mask of a named condition
:func:`check_no_colon_knockout`         02        a composed knockout (``+template``, colons hidden)
:func:`check_removal_mask`              03        the token-level removal rule
:func:`check_template_part_knockout`    03        a template-part knockout (Tables 5 and 6)
:func:`check_aggregation_mask`          04        the E9 aggregation block's mask
:func:`check_category_mass`             04        attention mass per key category
:func:`check_randomfixed_prompt`        05        a Randomfixed prompt (paper-spec §6.1)
======================================  ========  ================================================
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import numpy as np

from .ablation.conditions import CONDITIONS, condition_knockout, knockout_for
from .ablation.knockout import Block, Knockout
from .ablation.selection import KINDS, Sel, key_rule
from .aggregation.attention_mass import category_mass
from .aggregation.block import aggregation_knockout
from .categorize import TokenizedPrompt, categorize
from .engine.items import Item, LabelSet
from .experiments.template_parts import PART_CONDITIONS, part_knockout
from .prompts import build_prompt
from .prompts.removal import removed_positions
from .tasks import Example, TaskSpec, load_task

__all__ = ["check_aggregation_mask", "check_category_mass", "check_colon_only_knockout",
           "check_demo_counts",
           "check_key_rule", "check_knockout_mask", "check_label_colons",
           "check_no_colon_knockout", "check_randomfixed_prompt", "check_removal_mask",
           "check_template_part_knockout", "exercise_prompts"]

_DEMOS = {
    "sst2": [Example("d0", {"text": "the story of a warm and funny film ."}, "1"),
             Example("d1", {"text": "a mess.\nthe worst kind of sequel, and dull"}, "0"),
             Example("d2", {"text": "tender : bright , clever ."}, "1")],
    "agnews": [Example("d0", {"text": "Acme Corp.'s stocks fall into the red. Oil rises"}, "3"),
               Example("d1", {"text": "The Yankees win the title of the year."}, "2")],
    "rte": [Example("d0", {"hypothesis": "The cat sat.", "premise": "A cat sat on the mat."},
                    "entailment"),
            Example("d1", {"hypothesis": "Paris is in Spain.",
                           "premise": "Paris is the capital of France."}, "not_entailment")],
}
_TESTS = {
    "sst2": Example("t", {"text": "dull and flat ."}, "0"),
    "agnews": Example("t", {"text": "New phone released."}, "4"),
    "rte": Example("t", {"hypothesis": "It rains.", "premise": "The sky is clear."},
                   "not_entailment"),
}


def _tokenizers() -> dict[str, Any]:
    from .models import gpt2_tokenizer
    from .testing.tokenizers import cl100k_style_tokenizer

    toks = {"gpt2": gpt2_tokenizer(), "cl100k-style": cl100k_style_tokenizer()}
    try:
        from .models import load_tokenizer

        toks["gemma-3"] = load_tokenizer("gemma-3-270m")
    except (ImportError, OSError, FileNotFoundError):
        pass  # Gemma-3's tokenizer ships in an optional package; the others cover the rules
    return toks


@functools.lru_cache(maxsize=1)
def exercise_prompts() -> tuple[tuple[str, TokenizedPrompt], ...]:
    """The prompts every checker runs on: ``(name, categorized prompt)`` per task and
    tokenizer (built once; no data files or model needed)."""
    out = []
    for tname, tok in _tokenizers().items():
        for task_name, demos in _DEMOS.items():
            task = load_task(task_name)
            tp = categorize(build_prompt(task, demos, _TESTS[task_name]), tok)
            out.append((f"{task_name} / {tname}", tp))
    return tuple(out)


def _labels(tp: TokenizedPrompt) -> Item:
    """The prompt as an item (the label ids are irrelevant to masks)."""
    labels = LabelSet((tp.prompt.gold,), {tp.prompt.gold: (0,)})
    return Item.from_prompt(tp, labels)


def _text(tp: TokenizedPrompt, i: int) -> str:
    s, e = tp.offsets[i]
    return repr(tp.prompt.text[s:e] if e > s else tp.tokens[i])


def _bool_vector(name: str, got: Any, n: int, what: str) -> np.ndarray:
    arr = np.asarray(got.detach().cpu().numpy() if hasattr(got, "detach") else got)
    if arr.shape != (n,):
        raise AssertionError(f"{name}: your {what} has shape {arr.shape}; expected ({n},), one "
                             "entry per token.")
    if arr.dtype != bool:
        raise AssertionError(f"{name}: your {what} has dtype {arr.dtype}; return a bool array.")
    return arr


def _bool_matrix(name: str, got: Any, n: int) -> np.ndarray:
    arr = np.asarray(got.detach().cpu().numpy() if hasattr(got, "detach") else got)
    if arr.shape != (n, n):
        raise AssertionError(f"{name}: your mask has shape {arr.shape}; expected ({n}, {n}) = "
                             "[query, key] over every prompt position.")
    if arr.dtype != bool:
        raise AssertionError(f"{name}: your mask has dtype {arr.dtype}; return bools "
                             "(True = blocked).")
    return arr


def _diff_vector(name: str, tp: TokenizedPrompt, got: np.ndarray, want: np.ndarray,
                 what: str) -> None:
    bad = np.flatnonzero(got != want)
    if len(bad):
        rows = "; ".join(f"#{i} {_text(tp, i)} ({', '.join(tp.categories(i))}): yours "
                         f"{bool(got[i])}, expected {bool(want[i])}" for i in bad[:4])
        raise AssertionError(f"{name}: {len(bad)} tokens differ in {what}. First: {rows}")


def _diff_matrix(name: str, tp: TokenizedPrompt, got: np.ndarray, want: np.ndarray) -> None:
    bad = np.argwhere(got != want)
    if len(bad):
        q, k = (int(x) for x in bad[0])
        raise AssertionError(
            f"{name}: {len(bad)} (query, key) pairs differ. First: query #{q} {_text(tp, q)} "
            f"({', '.join(tp.categories(q))}) → key #{k} {_text(tp, k)} "
            f"({', '.join(tp.categories(k))}): yours {'blocked' if got[q, k] else 'allowed'}, "
            f"expected {'blocked' if want[q, k] else 'allowed'}.")


def _checker(check: Callable[..., bool]) -> Callable[..., bool]:
    """A checker that reports an exercise not written yet (its stub raises
    ``NotImplementedError``) instead of stopping the notebook, and returns ``False``."""

    @functools.wraps(check)
    def run(fn: Any) -> bool:
        try:
            return check(fn)
        except NotImplementedError:
            print(f"✗ {check.__name__}: not written yet (the stub raises NotImplementedError); "
                  "write it, or open the solution folded above.")
            return False

    return run


def _ok(checker: str, n: int, what: str) -> bool:
    print(f"✓ {checker}: {n} cases agree with icl_tokens ({what}).")
    return True


def _dense(ko: Knockout, tp: TokenizedPrompt, generated: int = 0) -> np.ndarray:
    """The ``[query, key]`` mask over the prompt (plus ``generated`` generated-token rows)."""
    return ko.resolve(_labels(tp)).dense(len(tp) + generated).numpy()


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
    from .experiments.variants import colon_knockout

    return _same_blocked_pairs(fn, colon_knockout(), "check_colon_only_knockout")
