"""Capturing the probes' points: ``hook_resid_post`` of the chosen layers at every probe
position, one point per demonstration (or per prompt for ``test.last``, whose target is the model's
own answer).

:func:`collect_probe_data` gives one :class:`~icl_tokens.aggregation.probe_data.ProbeData` per
position; :func:`capture_points` gives the same points as plain arrays (with each point's prompt
index, possibly empty for a batch), which the probe run stores per batch and
:func:`points_to_data` turns into :class:`ProbeData`. Features with inf or NaN (a model whose
activations overflow float16) are refused.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..ablation.knockout import Knockout
from ..ablation.selection import Sel
from ..engine.capture import iter_captures, resid_names
from ..engine.items import Item, LabelSet
from .probe_data import PROBE_POSITIONS, ProbeData, check_positions

__all__ = ["POINT_FIELDS", "model_answers", "collect_probe_data", "capture_points",
           "points_to_data", "probe_layers"]


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
    layers = probe_layers(int(model.cfg.n_layers), layers)
    points = capture_points(model, tokenizer, items, positions=positions, layers=layers,
                            knockout=knockout, batch_size=batch_size, answers=answers)
    return points_to_data(points, tuple(items[0].labels.words), layers)


#: The arrays of one position's points (:func:`capture_points`).
POINT_FIELDS = ("X", "y", "g", "t", "s", "prompt")


def capture_points(
    model: Any, tokenizer: Any, items: Sequence[Item], *, positions: Sequence[str],
    layers: Sequence[int] | None, knockout: Knockout | None = None, batch_size: int = 8,
    answers: Sequence[str] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """The points of every position as arrays (:data:`POINT_FIELDS`: features
    ``[n, layer, d_model]`` float32, class index, group, text, seed, prompt index), which may be
    empty; :func:`points_to_data` turns them into :class:`ProbeData`. Arguments as
    :func:`collect_probe_data`; non-finite features (a float16 overflow) are refused."""
    positions = check_positions(positions)
    n_layers = int(model.cfg.n_layers)
    layers = probe_layers(n_layers, layers)
    _check_probe_items(items)
    items = [it.with_knockout(knockout, "icl" if knockout is None else knockout.name or "ko")
             for it in items]
    cls_index = {w: i for i, w in enumerate(items[0].labels.words)}
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
    acc: dict[str, dict[str, list[Any]]] = {p: {f: [] for f in POINT_FIELDS} for p in positions}
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
                _add_points(cap, positions, names, layers, cls_index, answer_of(cap), acc)
    d_model = int(model.cfg.d_model)
    return {p: _point_arrays(a, (len(layers), d_model)) for p, a in acc.items()}


def _point_arrays(a: dict[str, list[Any]], shape: tuple[int, int]) -> dict[str, np.ndarray]:
    X = np.stack(a["X"]).astype(np.float32) if a["X"] else np.zeros((0, *shape), np.float32)
    return {"X": X, "y": np.array(a["y"], dtype=np.int64), "g": np.array(a["g"], dtype=np.int64),
            "t": np.array(a["t"], dtype=str), "s": np.array(a["s"], dtype=np.int64),
            "prompt": np.array(a["prompt"], dtype=np.int64)}


def points_to_data(points: dict[str, dict[str, np.ndarray]], classes: tuple[str, ...],
                   layers: Sequence[int]) -> dict[str, ProbeData]:
    """One :class:`ProbeData` per position (in ``points`` ' order); a position without points
    is refused."""
    out = {}
    for p, a in points.items():
        if not len(a["y"]):
            raise ValueError(f"probe position {p!r} matches no token in these prompts; drop it "
                             "from positions.")
        out[p] = ProbeData(p, a["X"].astype(np.float32), a["y"], classes, a["g"],
                           [str(t) for t in a["t"]], a["s"], tuple(layers),
                           "answer" if PROBE_POSITIONS[p].where == "test" else "gold")
    return out


def probe_layers(n_layers: int, layers: Sequence[int] | None) -> tuple[int, ...]:
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


def _add_points(cap: Any, positions: Sequence[str], names: Sequence[str],
                layers: Sequence[int], cls_index: dict[str, int], answer: str | None,
                acc: dict[str, dict[str, list[Any]]]) -> None:
    """Append one capture's points (one per demonstration, or the prompt's) to ``acc``."""
    it = cap.item
    feats = np.stack([cap.acts[n].float().numpy() for n in names], axis=1)  # [sel, layer, d]
    _check_finite(feats, layers, it, cap.acts[names[0]].dtype)
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
            a["prompt"].append(it.meta["prompt"])


def _check_finite(feats: np.ndarray, layers: Sequence[int], item: Item, dtype: Any) -> None:
    """Refuse features with inf or NaN (activations that overflow a float16 model)."""
    bad = ~np.isfinite(feats).all(axis=(0, 2))
    if bad.any():
        layer = layers[int(np.flatnonzero(bad)[0])]
        raise ValueError(f"the residual stream of prompt {item.example_id!r} (seed "
                         f"{item.meta['seed']}) holds inf or NaN at layer {layer} in "
                         f"{str(dtype).replace('torch.', '')}: the model's activations overflow "
                         "that dtype; rerun with --dtype float32 (or bfloat16).")
