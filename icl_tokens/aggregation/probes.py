"""Linear probes (decodable evidence for aggregation): is a demonstration's label readable from
the residual stream at its template, stopword and label tokens?

Above all at the output-template tokens *before* the label word (``Sentiment``, ``:``): there
the label can only be known from the demonstration's content, so a probe that decodes it there
says content information has been aggregated into those representations. The test example's last
token is probed for the model's own answer.

**Data.** An ordinary episode shares one demonstration set across all its test examples, and a
demonstration's representations do not depend on what follows it (causal attention), so it would
give only ``k`` distinct points per seed. A probe needs many demonstrations, so every probe
prompt draws its own (:func:`probe_episodes`): prompt ``j`` of seed ``s`` is the ``j``-th test
example of the fixed subset with the next ``k`` demonstrations of a seeded permutation of the
pool (no demonstration repeats within a seed while the pool lasts).

**Folds** are never split by token (:func:`prompt_groups`, :func:`group_folds`): every point of a
prompt is in its prompt's group, and prompts that share any input text (a demonstration text, or
the test text, which repeats across seeds) are one group, so no prompt and no demonstration text
is in both the training and the test side of any fold.

**Probe** (:func:`fit_probe`): ``StandardScaler`` + L2 logistic regression (scikit-learn),
``C`` chosen by an inner group k-fold on the training side only; accuracy on the held-out folds.
Each cell also reports the majority baseline (the training side's most frequent label) and a
control task (Hewitt & Liang 2019; :func:`control_labels`): the labels reassigned at random per
input text, keeping the label distribution; ``selectivity = accuracy - control``. With text-
disjoint folds a control label cannot be memorised, so ``control`` stays near the baseline
unless something leaks.

    df = run_probes(model, tok, task, data, seeds=(0, 1), n_test=50)          # no knockout
    df_agg = run_probes(model, tok, task, data, seeds=(0, 1), n_test=50,
                        knockout=aggregation_knockout())                      # under the block
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from jaxtyping import Float, Int

from ..ablation.knockout import Knockout
from ..ablation.selection import Sel
from ..categorize import categorize
from ..data import TaskData
from ..engine.capture import iter_captures, resid_names
from ..engine.items import Item, LabelSet
from ..episodes import Episode, eval_subset
from ..prompts import build_prompt
from ..tasks import Example, TaskSpec

__all__ = ["ProbePosition", "PROBE_POSITIONS", "DEFAULT_CS", "PROBE_COLUMNS", "ProbeData",
           "ProbeFit", "fit_probes", "fit_probe", "probe_episodes", "probe_items",
           "prompt_groups", "group_folds", "control_labels", "collect_probe_data", "probe_table",
           "run_probes", "model_answers"]

#: Regularisation strengths the inner cross-validation chooses from.
DEFAULT_CS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0)
#: Columns of :func:`probe_table` / :func:`run_probes` (a stable contract).
PROBE_COLUMNS: tuple[str, ...] = (
    "seed", "position", "layer", "knockout", "target", "accuracy", "majority", "control",
    "selectivity", "n", "n_groups", "n_classes", "C_median", "folds")


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


# ------------------------------------------------------------------ folds, control, probe
def group_folds(groups: Int[np.ndarray, "n"], n_splits: int, seed: int = 0
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, test)`` index pairs of a shuffled group k-fold: each group on one side only.

    Groups are assigned to folds at random (``seed``), balanced by size.
    """
    groups = np.asarray(groups)
    uniq = np.unique(groups)
    if n_splits < 2:
        raise ValueError(f"need at least 2 folds, got {n_splits}.")
    if len(uniq) < n_splits:
        raise ValueError(f"only {len(uniq)} independent groups (prompts that share no text) for "
                         f"{n_splits} folds; use more test examples or seeds, or fewer folds.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(uniq)
    sizes = {g: int((groups == g).sum()) for g in uniq}
    load = np.zeros(n_splits)
    fold_of: dict[Any, int] = {}
    for g in sorted(order, key=lambda g: -sizes[g]):  # stable: ties keep the random order
        f = int(np.argmin(load))
        fold_of[g] = f
        load[f] += sizes[g]
    f = np.array([fold_of[g] for g in groups])
    return [(np.flatnonzero(f != i), np.flatnonzero(f == i)) for i in range(n_splits)]


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


@dataclass
class ProbeFit:
    """Held-out result of one probe: accuracy, majority baseline, chosen C per outer fold."""

    accuracy: float
    majority: float
    Cs: list[float] = field(default_factory=list)
    predictions: np.ndarray | None = None


def _fit_predict(Z_tr: np.ndarray, y_tr: np.ndarray, Z_te: np.ndarray, C: float,
                 clf: Any = None) -> tuple[np.ndarray, Any]:
    """Fit L2 logistic regression on (standardised) rows and predict; a single training class
    predicts that class. ``clf`` is warm-started (a path over increasing C)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y_tr)) < 2:
        return np.full(len(Z_te), y_tr[0]), None
    if clf is None:
        clf = LogisticRegression(C=C, max_iter=500, warm_start=True)
    clf.set_params(C=C)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(Z_tr, y_tr)
    return clf.predict(Z_te), clf


def _choose_C(Z: np.ndarray, y: np.ndarray, groups: np.ndarray, Cs: Sequence[float],
              inner_folds: int, seed: int) -> float:
    """The C with the best inner group-k-fold accuracy (ties: the smallest C)."""
    if len(Cs) == 1:
        return float(Cs[0])
    n_inner = min(inner_folds, len(np.unique(groups)))
    if n_inner < 2:
        return float(min(Cs))
    score = np.zeros(len(Cs))
    order = np.argsort(Cs)
    for tr, te in group_folds(groups, n_inner, seed):
        clf = None
        for j in order:  # warm start along increasing C
            pred, clf = _fit_predict(Z[tr], y[tr], Z[te], float(Cs[j]), clf)
            score[j] += (pred == y[te]).sum()
    best = score.max()
    return float(min(c for c, s in zip(Cs, score) if s == best))


def _training_basis(X_tr: np.ndarray, X_te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise on the training rows, then express both sides in the span of the training
    rows (``Z = X V``, ``V`` their right singular vectors).

    An L2-regularised linear model's weights lie in the span of its training rows (representer
    theorem) and ``V`` is orthonormal, so logistic regression on ``Z`` is the same model as on
    the standardised ``X`` -- for any subset of the training rows too (the inner folds) -- with
    at most ``n_train`` instead of ``d_model`` features.
    """
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X_tr)
    A, B = scaler.transform(X_tr), scaler.transform(X_te)
    _, S, Vt = np.linalg.svd(A, full_matrices=False)
    keep = S > S[0] * 1e-10 if len(S) and S[0] > 0 else np.zeros(len(S), dtype=bool)
    if not keep.any():  # constant features: nothing to learn; one zero feature
        return np.zeros((len(A), 1)), np.zeros((len(B), 1))
    V = Vt[keep].T
    return A @ V, B @ V


def fit_probes(X: Float[np.ndarray, "n d"], targets: dict[str, Int[np.ndarray, "n"]],
               groups: Int[np.ndarray, "n"], *, folds: int = 5, inner_folds: int = 3,
               Cs: Sequence[float] = DEFAULT_CS, seed: int = 0) -> dict[str, ProbeFit]:
    """Nested group-k-fold logistic-regression probes of several targets on the same points
    (e.g. the task and its control), sharing folds and standardisation.

    Args:
        X: Features, one row per point.
        targets: Name → integer labels per point.
        groups: Group per point; a group is never split across train and test
            (:func:`group_folds`), in the outer and in the inner folds.
        folds: Outer folds (held-out accuracy).
        inner_folds: Inner folds on each training side (choose ``C``).
        Cs: Candidate inverse regularisation strengths (scikit-learn's ``C``).
        seed: Fold assignment.

    Each outer training side is standardised (``StandardScaler``; its inner folds reuse that
    scaling, as a scaler in a pipeline before ``LogisticRegressionCV`` would) and the fit runs
    in the span of its rows (:func:`_training_basis`, an exact reformulation, for speed).

    Returns:
        Per target: held-out accuracy (every point predicted once), the majority baseline (each
        test fold predicted as its training side's most frequent label), the chosen ``C`` per
        fold, the held-out predictions.
    """
    X = np.asarray(X, dtype=np.float64)
    groups = np.asarray(groups)
    ys = {k: np.asarray(v) for k, v in targets.items()}
    if X.ndim != 2 or len(X) != len(groups) or any(len(v) != len(X) for v in ys.values()):
        raise ValueError(f"X {X.shape}, groups {groups.shape} and targets "
                         f"{ {k: v.shape for k, v in ys.items()} } must have one row per point.")
    if not Cs:
        raise ValueError("give at least one C.")
    pred = {k: np.empty_like(v) for k, v in ys.items()}
    base = {k: np.empty_like(v) for k, v in ys.items()}
    chosen: dict[str, list[float]] = {k: [] for k in ys}
    for i, (tr, te) in enumerate(group_folds(groups, folds, seed)):
        Z_tr, Z_te = _training_basis(X[tr], X[te])
        for k, y in ys.items():
            C = _choose_C(Z_tr, y[tr], groups[tr], Cs, inner_folds, seed + 1 + i)
            chosen[k].append(C)
            pred[k][te], _ = _fit_predict(Z_tr, y[tr], Z_te, C)
            vals, counts = np.unique(y[tr], return_counts=True)
            base[k][te] = vals[np.argmax(counts)]
    return {k: ProbeFit(float((pred[k] == y).mean()), float((base[k] == y).mean()), chosen[k],
                        pred[k]) for k, y in ys.items()}


def fit_probe(X: Float[np.ndarray, "n d"], y: Int[np.ndarray, "n"], groups: Int[np.ndarray, "n"],
              **kw: Any) -> ProbeFit:
    """One target of :func:`fit_probes` (same arguments)."""
    return fit_probes(X, {"y": y}, groups, **kw)["y"]


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
    layers = tuple(range(n_layers)) if layers is None else tuple(int(x) % n_layers
                                                                 for x in layers)
    if not layers or len(set(layers)) != len(layers):
        raise ValueError(f"probe layers {list(layers)} are empty or repeat a layer.")
    for it in items:
        if "demo_gold" not in it.meta:
            raise ValueError(f"item {it.example_id!r} is not a probe item; build items with "
                             "probe_items().")
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

    out = {}
    for p in positions:
        a = acc[p]
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


# ------------------------------------------------------------------ tables
def probe_table(data: ProbeData, *, knockout: str = "icl", folds: int = 5,
                inner_folds: int = 3, Cs: Sequence[float] = DEFAULT_CS, seed: int = 0,
                per_seed: bool = False, on_row: Callable[[dict[str, Any]], None] | None = None,
                skip: Callable[[int, int], bool] | None = None) -> pd.DataFrame:
    """Probe every layer of one position: accuracy, baseline, control, selectivity.

    Args:
        data: :func:`collect_probe_data` output for one position.
        knockout: Name for the rows' ``knockout`` column (``icl``: none, or the knockout's name).
        folds, inner_folds, Cs, seed: See :func:`fit_probe` (``seed`` also draws the control).
        per_seed: One probe per seed (rows carry that seed); ``False`` (default): one probe on
            the pooled points of every seed (``seed`` = -1 in the rows).
        on_row: Called with each row as it is computed (e.g. to append it to a results file).
        skip: ``(seed, layer) -> bool``: cells already computed (not recomputed, not returned).

    Returns:
        Rows with :data:`PROBE_COLUMNS`.
    """
    rows = []
    seeds = sorted(set(data.seeds.tolist())) if per_seed else [-1]
    for s in seeds:
        sel = data.seeds == s if per_seed else np.ones(len(data.y), dtype=bool)
        y, g = data.y[sel], data.groups[sel]
        texts = [t for t, m in zip(data.texts, sel) if m]
        yc = control_labels(texts, y, seed)
        for li, layer in enumerate(data.layers):
            if skip is not None and skip(s, layer):
                continue
            X = data.X[sel, li]
            fits = fit_probes(X, {"task": y, "control": yc}, g, folds=folds,
                              inner_folds=inner_folds, Cs=Cs, seed=seed)
            real, ctrl = fits["task"], fits["control"]
            row = {"seed": s, "position": data.position, "layer": layer,
                   "knockout": knockout, "target": data.target,
                   "accuracy": real.accuracy, "majority": real.majority,
                   "control": ctrl.accuracy, "selectivity": real.accuracy - ctrl.accuracy,
                   "n": int(len(y)), "n_groups": int(len(np.unique(g))),
                   "n_classes": int(len(np.unique(y))), "C_median": float(np.median(real.Cs)),
                   "folds": folds}
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return pd.DataFrame(rows, columns=list(PROBE_COLUMNS))


def run_probes(
    model: Any, tokenizer: Any, task: TaskSpec, data: TaskData, *, seeds: Sequence[int] = (0,),
    n_test: int | None = 50, k: int = 4, positions: Sequence[str] = tuple(PROBE_POSITIONS),
    layers: Sequence[int] | None = None, knockout: Knockout | None = None,
    stopword_variant: str = "paper", batch_size: int = 8, folds: int = 5, inner_folds: int = 3,
    Cs: Sequence[float] = DEFAULT_CS, seed: int = 0, per_seed: bool = False,
) -> pd.DataFrame:
    """Probes at every position and layer of a task's probe prompts (optionally under a
    knockout applied to every prompt); rows with :data:`PROBE_COLUMNS`."""
    labels = LabelSet.for_task(task, tokenizer)
    items = probe_items(task, tokenizer, labels,
                        probe_episodes(data, seeds, k=k, n_test=n_test),
                        stopword_variant=stopword_variant)
    name = "icl" if knockout is None else (knockout.name or "knockout")
    collected = collect_probe_data(model, tokenizer, items, positions=positions, layers=layers,
                                   knockout=knockout, batch_size=batch_size)
    return pd.concat([probe_table(d, knockout=name, folds=folds, inner_folds=inner_folds,
                                  Cs=Cs, seed=seed, per_seed=per_seed)
                      for d in collected.values()], ignore_index=True)
