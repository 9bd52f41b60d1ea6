"""The probes' data: where they read, which prompts they read, and the captured points.

**Positions** (:data:`PROBE_POSITIONS`): the demonstrations' template, stopword, content and
label tokens (target: the demonstration's gold label) and the test example's last token
(target: the model's own answer).

**Prompts.** An ordinary episode shares one demonstration set across all its test examples, and
a demonstration's representations do not depend on what follows it (causal attention), so it
would give only ``k`` distinct points per seed. A probe needs many demonstrations, so every probe
prompt draws its own (:func:`probe_episodes`): prompt ``j`` of seed ``s`` is the ``j``-th test
example of the fixed subset with the next ``k`` demonstrations of a seeded permutation of the
pool (no demonstration repeats within a seed while the pool lasts). Prompts that share any input
text (a demonstration text, or the test text, which repeats across seeds) are one fold group
(:func:`prompt_groups`), so a group k-fold never puts one text on both sides.

**Points** (:class:`ProbeData`, captured by :mod:`~icl_tokens.aggregation.probe_capture`):
``hook_resid_post`` of the chosen layers at each position, one point per demonstration (or per
prompt for ``test.last``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
from jaxtyping import Int

from ..ablation.selection import Sel
from ..categorize import categorize
from ..data import TaskData
from ..engine.items import Item, LabelSet
from ..episodes import Episode, eval_subset
from ..prompts import build_prompt
from ..tasks import Example, TaskSpec

__all__ = ["ProbePosition", "PROBE_POSITIONS", "ProbeData", "probe_episodes", "prompt_groups",
           "probe_items", "check_positions"]


@dataclass(frozen=True)
class ProbePosition:
    """Where a probe reads the residual stream.

    Attributes:
        name: Short name (``t_out.colon``).
        sel: The tokens (within each demonstration for ``where="demo"``).
        where: ``"demo"``: one point per demonstration (its last selected token), target its
            gold label; ``"test"``: one point per prompt (its last selected token), target the
            model's answer.
        description: What it is.
    """

    name: str
    sel: Sel
    where: str
    description: str


def _positions() -> dict[str, ProbePosition]:
    demo = Sel.part("demo")
    d_in = Sel.role("demo_*.d_in.*")
    rows = [
        ("t_in.word", Sel.role("demo_*.t_in.word"), "demo",
         "the input template word (e.g. 'Review'), before the demonstration's text"),
        ("content", demo & d_in & Sel.category("content"), "demo",
         "the last content token of the demonstration's input"),
        ("stopword", demo & d_in & Sel.category("stopword"), "demo",
         "the last stopword token of the demonstration's input"),
        ("t_in.newline", Sel.role("demo_*.t_in.newline"), "demo",
         "the newline closing the input (it may be merged with the text's last character)"),
        ("t_out.word", Sel.role("demo_*.t_out.word"), "demo",
         "the output template word (e.g. 'Sentiment'), before the label word"),
        ("t_out.colon", Sel.role("demo_*.t_out.colon"), "demo",
         "the output template's ':' right before the label word"),
        ("label", Sel.role("demo_*.d_out"), "demo",
         "the label word itself (its last token; a positive control)"),
        ("t_out.newline", Sel.role("demo_*.t_out.newline"), "demo",
         "the newline(s) after the label word"),
        ("test.last", Sel.last(), "test",
         "the test example's last token, predicting the model's answer"),
    ]
    return {n: ProbePosition(n, s, w, d) for n, s, w, d in rows}


#: The probe positions, in prompt order.
PROBE_POSITIONS: dict[str, ProbePosition] = _positions()


# ------------------------------------------------------------------ prompts and groups
def probe_episodes(data: TaskData, seeds: Sequence[int], *, k: int = 4,
                   n_test: int | None = None) -> list[Episode]:
    """One single-test episode per probe prompt, each with its own demonstrations.

    Prompt ``j`` of seed ``s`` uses the ``j``-th example of the fixed evaluated subset and the
    demonstrations ``order[j*k:(j+1)*k]``, where ``order`` concatenates permutations of the
    pool drawn by ``default_rng(s)``: within a seed no demonstration repeats until the pool is
    used up, and prompt 0 is the seed's ordinary episode prompt (see the module docstring for
    why demonstrations are not shared).
    """
    if k < 1:
        raise ValueError("probes read demonstrations: use k >= 1.")
    if k > len(data.pool):
        raise ValueError(f"k={k} but the demonstration pool of {data.task!r} has "
                         f"{len(data.pool)} rows; use a smaller k.")
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"seeds must be distinct and >= 0, got {list(seeds)}.")
    tests = eval_subset(data, n_test)
    out = []
    for s in seeds:
        rng = np.random.default_rng(int(s))
        order: list[int] = []
        for j, test in enumerate(tests):
            while len(order) < (j + 1) * k:
                order.extend(int(i) for i in rng.permutation(len(data.pool)))
            idx = order[j * k:(j + 1) * k]
            out.append(Episode(data.task, int(s), k, tuple(data.pool[i] for i in idx), (test,)))
    return out


def _text(ex: Example) -> str:
    return "\x1f".join(f"{k}={v}" for k, v in sorted(ex.inputs.items()))


def prompt_groups(episodes: Sequence[Episode]) -> Int[np.ndarray, "prompt"]:
    """Group id per prompt: prompts sharing any input text (demonstration or test) are merged
    (connected components), so a group k-fold never puts one text on both sides."""
    parent = list(range(len(episodes)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    first: dict[str, int] = {}
    for i, ep in enumerate(episodes):
        for ex in (*ep.demos, *ep.tests):
            t = _text(ex)
            if t in first:
                parent[find(i)] = find(first[t])
            else:
                first[t] = i
    roots = [find(i) for i in range(len(episodes))]
    _, ids = np.unique(roots, return_inverse=True)
    return ids.astype(np.int64)


def probe_items(task: TaskSpec, tokenizer: Any, labels: LabelSet, episodes: Sequence[Episode], *,
                stopword_variant: str = "paper") -> list[Item]:
    """One categorized prompt item per probe episode (``meta``: seed, k, prompt index, group,
    the demonstrations' gold label words and input texts)."""
    groups = prompt_groups(episodes)
    items = []
    for i, ep in enumerate(episodes):
        tp = categorize(build_prompt(task, ep.demos, ep.tests[0]), tokenizer,
                        stopword_variant=stopword_variant)
        meta = {"seed": ep.seed, "k": ep.k, "prompt": i, "group": int(groups[i]),
                "demo_gold": tuple(task.label_word(d.label) for d in ep.demos),
                "demo_text": tuple(_text(d) for d in ep.demos),
                "test_text": _text(ep.tests[0])}
        items.append(Item.from_prompt(tp, labels, condition="icl", meta=meta))
    return items


@dataclass
class ProbeData:
    """The points of one probe position.

    Attributes:
        position: The position name.
        X: Float ``[n, layer, d_model]`` residual stream (``hook_resid_post``), float32.
        y: Int ``[n]`` target index into ``classes``.
        classes: The label words.
        groups: Int ``[n]`` fold group (the prompt's :func:`prompt_groups` id).
        texts: The input text each point's control label is keyed by (the demonstration's, or
            the test example's for ``test.last``).
        seeds: Int ``[n]`` seed of each point's prompt.
        layers: The layer of each ``X[:, i]``.
        target: ``gold`` (demonstration label) or ``answer`` (the model's answer).
    """

    position: str
    X: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    groups: np.ndarray
    texts: list[str]
    seeds: np.ndarray
    layers: tuple[int, ...]
    target: str


def check_positions(positions: Iterable[str]) -> list[str]:
    """The position names, checked (known, not empty, none repeated)."""
    positions = list(positions)
    bad = [p for p in positions if p not in PROBE_POSITIONS]
    if bad or not positions:
        raise ValueError(f"unknown probe positions {bad or positions}; choose from "
                         f"{list(PROBE_POSITIONS)}.")
    if len(set(positions)) != len(positions):
        raise ValueError(f"probe positions {positions} repeat a name.")
    return positions
