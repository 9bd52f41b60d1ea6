"""Shared pieces of the exercise checkers: the prompts they run on and how they report."""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from ..ablation.knockout import Knockout
from ..categorize import TokenizedPrompt, categorize
from ..engine.items import Item, LabelSet
from ..prompts import build_prompt
from ..tasks import Example, load_task

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
    from ..models import gpt2_tokenizer
    from ..testing.tokenizers import cl100k_style_tokenizer

    toks = {"gpt2": gpt2_tokenizer(), "cl100k-style": cl100k_style_tokenizer()}
    try:
        from ..models import load_tokenizer

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
