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

**Points** (:func:`collect_probe_data`): ``hook_resid_post`` of the chosen layers at each
position, one point per demonstration (or per prompt for ``test.last``), as :class:`ProbeData`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
from jaxtyping import Int

from ..ablation.knockout import Knockout
from ..ablation.selection import Sel
from ..categorize import categorize
from ..data import TaskData
from ..engine.capture import iter_captures, resid_names
from ..engine.items import Item, LabelSet
from ..episodes import Episode, eval_subset
from ..prompts import build_prompt
from ..tasks import Example, TaskSpec

__all__ = ["ProbePosition", "PROBE_POSITIONS", "ProbeData", "probe_episodes", "prompt_groups",
           "probe_items", "model_answers", "collect_probe_data"]


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



# ------------------------------------------------------------------ capture
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


def model_answers(model: Any, tokenizer: Any, items: Sequence[Item], *,
                  batch_size: int = 8) -> list[str]:
    """The model's answer per item: the label word with the highest label score (the engine's
    ``label_prediction``, ``scoring="label"``), under each item's knockout."""
    from ..engine.scoring import score_items

    res = score_items(model, tokenizer, items, scoring="label", engine="naive",
                      batch_size=batch_size)
    return [r.label_prediction for r in res]


_UNEMBED_IN = "unembed.hook_in"


def _answer_from_final(model: Any, resid: Any, labels: LabelSet) -> str:
    """The label word whose (single) token has the highest logit, from the last layer's
    ``hook_resid_post`` at the last token (``unembed(ln_final(resid))``): the engine's label
    prediction when every label is one token (the softmax is monotone)."""
    import torch

    with torch.no_grad():
        x = resid[None, None].to(next(model.parameters()).device)
        logits = model.unembed(model.ln_final(x))[0, 0]
    ids = [labels.ids[w][0] for w in labels.words]
    return labels.words[int(torch.argmax(logits[ids]))]


def _last_column(t: Any, hook: Any) -> Any:
    """Unembed only the batch's last column: capture reads no logits (speed only)."""
    return t[:, -1:]


def _check_positions(positions: Iterable[str]) -> list[str]:
    positions = list(positions)
    bad = [p for p in positions if p not in PROBE_POSITIONS]
    if bad or not positions:
        raise ValueError(f"unknown probe positions {bad or positions}; choose from "
                         f"{list(PROBE_POSITIONS)}.")
    if len(set(positions)) != len(positions):
        raise ValueError(f"probe positions {positions} repeat a name.")
    return positions


def collect_probe_data(
    model: Any, tokenizer: Any, items: Sequence[Item], *,
    positions: Sequence[str] = tuple(PROBE_POSITIONS), layers: Sequence[int] | None = None,
    knockout: Knockout | None = None, batch_size: int = 8,
    answers: Sequence[str] | None = None,
) -> dict[str, ProbeData]:
    """Capture ``hook_resid_post`` of the chosen layers at every probe position.

    Args:
        model, tokenizer: A ``TransformerBridge`` and its tokenizer.
        items: :func:`probe_items` (their ``meta`` holds the targets and groups).
        positions: Names of :data:`PROBE_POSITIONS`.
        layers: Layers to read (default all).
        knockout: Applied to every item during capture (and for the model's answers); ``None``:
            the plain forward.
        batch_size: Items per forward.
        answers: The model's answers per item for ``test.last`` (default:
            :func:`model_answers` under the same knockout).

    A demonstration in which a position has no token (e.g. no stopword in its text) gives no
    point there; ``n`` in the table says how many points each position has.
    """
    positions = _check_positions(positions)
    n_layers = int(model.cfg.n_layers)
    layers = _probe_layers(n_layers, layers)
    _check_probe_items(items)
    items = [it.with_knockout(knockout, "icl" if knockout is None else knockout.name or "ko")
             for it in items]
    classes = tuple(items[0].labels.words)
    cls_index = {w: i for i, w in enumerate(classes)}
    # The answers: from the capture pass itself when every label is one token (the last
    # layer's residual at the last token, unembedded), else one scoring pass.
    from_final = ("test.last" in positions and answers is None
                  and items[0].labels.max_len == 1)
    if "test.last" in positions and answers is None and not from_final:
        answers = model_answers(model, tokenizer, items, batch_size=batch_size)
    names = [resid_names(n_layers)[layer] for layer in layers]
    final = resid_names(n_layers)[-1]
    extra = [final] if from_final and final not in names else []
    # The forward's logits are never read: unembed one column only (most of a small model's
    # forward is its unembedding of every position).
    skip_logits = ([(_UNEMBED_IN, _last_column)] if _UNEMBED_IN in getattr(model, "hook_dict", {})
                   else [])
    union = Sel.nothing()
    for p in positions:
        union = union | PROBE_POSITIONS[p].sel
    acc: dict[str, dict[str, list[Any]]] = {
        p: {"X": [], "y": [], "g": [], "t": [], "s": []} for p in positions}
    index = {id(it): i for i, it in enumerate(items)}

    def answer_of(cap: Any) -> str | None:
        if from_final:
            last = int(np.flatnonzero(cap.positions == len(cap.item) - 1)[0])
            return _answer_from_final(model, cap.acts[final][last], cap.item.labels)
        return None if answers is None else answers[index[id(cap.item)]]

    with model.hooks(fwd_hooks=skip_logits):
        for batch in iter_captures(model, tokenizer, items, names + extra, positions=union,
                                   batch_size=batch_size):
            for cap in batch:
                _add_points(cap, positions, names, cls_index, answer_of(cap), acc)
    return _stack_points(acc, classes, layers)


def _probe_layers(n_layers: int, layers: Sequence[int] | None) -> tuple[int, ...]:
    """The layers to read (default all; negative indices count from the end), checked."""
    layers = tuple(range(n_layers)) if layers is None else tuple(int(x) % n_layers
                                                                 for x in layers)
    if not layers or len(set(layers)) != len(layers):
        raise ValueError(f"probe layers {list(layers)} are empty or repeat a layer.")
    return layers


def _check_probe_items(items: Sequence[Item]) -> None:
    """Refuse items not built by :func:`probe_items` (their ``meta`` lacks the targets)."""
    for it in items:
        if "demo_gold" not in it.meta:
            raise ValueError(f"item {it.example_id!r} is not a probe item; build items with "
                             "probe_items().")


def _stack_points(acc: dict[str, dict[str, list[Any]]], classes: tuple[str, ...],
                  layers: tuple[int, ...]) -> dict[str, ProbeData]:
    """One :class:`ProbeData` per position (in ``acc``'s order) from its collected points."""
    out = {}
    for p, a in acc.items():
        if not a["X"]:
            raise ValueError(f"probe position {p!r} matches no token in these prompts; drop it "
                             "from positions.")
        out[p] = ProbeData(p, np.stack(a["X"]).astype(np.float32), np.array(a["y"]), classes,
                           np.array(a["g"]), a["t"], np.array(a["s"]), layers,
                           "answer" if PROBE_POSITIONS[p].where == "test" else "gold")
    return out


def _add_points(cap: Any, positions: Sequence[str], names: Sequence[str],
                cls_index: dict[str, int], answer: str | None,
                acc: dict[str, dict[str, list[Any]]]) -> None:
    """Append one capture's points (one per demonstration, or the prompt's) to ``acc``."""
    it = cap.item
    feats = np.stack([cap.acts[n].float().numpy() for n in names], axis=1)  # [sel, layer, d]
    where = {int(p): i for i, p in enumerate(cap.positions)}
    for p in positions:
        pos = PROBE_POSITIONS[p]
        mask = pos.sel.mask(it)
        if pos.where == "test":
            points = [(int(np.flatnonzero(mask)[-1]), answer, it.meta["test_text"])]
        else:
            points = []
            for d in range(it.meta["k"]):
                idx = np.flatnonzero(mask & (it.demo == d))
                if len(idx):
                    points.append((int(idx[-1]), it.meta["demo_gold"][d], it.meta["demo_text"][d]))
        for at, label, text in points:
            a = acc[p]
            a["X"].append(feats[where[at]])
            a["y"].append(cls_index[label])
            a["g"].append(it.meta["group"])
            a["t"].append(text)
            a["s"].append(it.meta["seed"])

