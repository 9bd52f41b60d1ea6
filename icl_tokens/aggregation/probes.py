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

**Probe** (:func:`fit_probe`): ``StandardScaler`` + L2 logistic regression (scikit-learn's
``LogisticRegression`` model, solved for many label vectors at once by :func:`_fit_predict_many`),
``C`` chosen by an inner group k-fold on the training side only; accuracy on the held-out folds.
Each cell also reports the majority baseline (the training side's most frequent label).

**Permutation null** (:func:`permute_groups`, :func:`null_pvalues`): the labels are shuffled
across prompt groups (a group's points take over the labels of another group of the same size,
so labels that go together in a prompt stay together) and the whole probe is refitted -- the
same folds, standardisation and inner choice of ``C`` as the real fit -- ``permutations`` times
(the same shuffles for every layer). Per cell: the null's mean and 95th percentile, the
empirical p-value ``(1 + #null >= observed) / (1 + n_perm)``, and a p-value corrected for
picking the best layer (the max-statistic: each shuffle's best null accuracy over the layers of
the same position and knockout; ``(1 + #max_null >= observed) / (1 + n_perm)``).

**Control task** (Hewitt & Liang 2019; :func:`control_labels`): the labels reassigned at random
per input text. It can only be learnt for texts seen in training, and the group folds never put
one text on both sides, so with :func:`prompt_groups` folds the control cannot be learnt and
``accuracy - control`` would just be accuracy minus chance. ``control`` and ``selectivity``
are therefore computed only when some held-out point's text also occurs on its fold's training
side (``control_seen > 0``); otherwise they are NaN and ``control_note`` says why. Whether the
probe beats chance is the permutation null's question.

    df = run_probes(model, tok, task, data, seeds=(0, 1), n_test=50)          # no knockout
    df_agg = run_probes(model, tok, task, data, seeds=(0, 1), n_test=50,
                        knockout=aggregation_knockout())                      # under the block
"""

from __future__ import annotations

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

__all__ = ["ProbePosition", "PROBE_POSITIONS", "DEFAULT_CS", "DEFAULT_PERMUTATIONS",
           "PROBE_COLUMNS", "UNLEARNABLE", "ProbeData", "ProbeFit", "fit_probes", "fit_probe",
           "probe_episodes", "probe_items", "prompt_groups", "group_folds", "control_labels",
           "control_seen", "permute_groups", "permuted_labels", "null_pvalues",
           "collect_probe_data", "probe_table", "run_probes", "model_answers"]

#: Regularisation strengths the inner cross-validation chooses from.
DEFAULT_CS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0)
#: Label shuffles of the permutation null by default (p-values no smaller than 1/21).
DEFAULT_PERMUTATIONS: int = 20
#: ``control_note`` of a cell whose control task cannot be learnt.
UNLEARNABLE = "unlearnable: folds share no text"
#: Columns of :func:`probe_table` / :func:`run_probes` (a stable contract; new columns are
#: appended). ``control`` and ``selectivity`` are NaN unless ``control_seen > 0``; the null
#: columns are NaN when ``permutations`` is 0.
PROBE_COLUMNS: tuple[str, ...] = (
    "seed", "position", "layer", "knockout", "target", "accuracy", "majority", "control",
    "selectivity", "n", "n_groups", "n_classes", "C_median", "folds", "control_seen",
    "control_note", "permutations", "null_mean", "null_q95", "p_perm", "max_null_q95", "p_max")


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


def control_seen(texts: Sequence[str], splits: Sequence[tuple[np.ndarray, np.ndarray]]
                 ) -> float:
    """Share of held-out points whose text (the control task's key) also occurs on the
    training side of their fold: the only points on which a per-text control can be learnt.

    It is 0 for :func:`prompt_groups` folds (a text never lies on both sides).
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


@dataclass
class ProbeFit:
    """Held-out result of one probe: accuracy, majority baseline, chosen C per outer fold."""

    accuracy: float
    majority: float
    Cs: list[float] = field(default_factory=list)
    predictions: np.ndarray | None = None


# The solver: L2 logistic regression as scikit-learn's ``LogisticRegression(solver="lbfgs")``
# defines it (mean log-loss + ||coef||^2 / (2 C n), intercept unpenalised; sigmoid for two
# classes, softmax for more; stop at max |gradient| <= 1e-4 or 500 iterations), solved for many
# label vectors of the same rows at once (the task, its control, the null's shuffles).
_TOL, _MAX_ITER, _HISTORY = 1e-4, 500, 10
_FTOL = 64 * np.finfo(float).eps


def _lbfgs(fg: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
           W0: Float[np.ndarray, "t p"]) -> Float[np.ndarray, "t p"]:
    """Minimise ``t`` independent smooth convex objectives with one L-BFGS per row, vectorised.

    ``fg(W, rows)`` gives the objectives and gradients of the rows ``rows`` of the batch at
    ``W`` (``[len(rows), p]``). Each row keeps its own history (the last 10 pairs), line search
    (Armijo backtracking from the unit step) and stopping rule; finished rows leave the batch.
    """
    out = np.array(W0, dtype=np.float64)
    rows = np.arange(len(out))
    W = out.copy()
    f, G = fg(W, rows)
    S = np.zeros((_HISTORY, *W.shape))  # [pair, t, p]
    Y = np.zeros_like(S)
    rho = np.zeros((_HISTORY, len(W)))
    k = 0
    for _ in range(_MAX_ITER):
        keep = np.abs(G).max(axis=1) > _TOL
        if not keep.all():
            out[rows[~keep]] = W[~keep]
            rows, W, f, G = rows[keep], W[keep], f[keep], G[keep]
            S, Y, rho = S[:, keep], Y[:, keep], rho[:, keep]
        if not len(rows):
            return out
        D = -_two_loop(G, S, Y, rho, k)
        slope = np.einsum("tp,tp->t", G, D)
        step = np.ones(len(rows))
        W_new = W + D
        f_new, G_new = fg(W_new, rows)
        bad = ~(f_new <= f + 1e-4 * slope)
        for _ in range(50):  # backtracking, only for the rows that need it
            if not bad.any():
                break
            b = np.flatnonzero(bad)
            step[b] *= 0.5
            W_new[b] = W[b] + step[b, None] * D[b]
            f_new[b], G_new[b] = fg(W_new[b], rows[b])
            bad[b] = ~(f_new[b] <= f[b] + 1e-4 * step[b] * slope[b])
        stuck = bad | (f - f_new <= _FTOL * np.maximum(np.maximum(abs(f), abs(f_new)), 1.0))
        s, y = W_new - W, G_new - G
        sy = np.einsum("tp,tp->t", s, y)
        ok = ~bad & (sy > 1e-12 * np.einsum("tp,tp->t", y, y))
        i = k % _HISTORY
        S[i], Y[i] = np.where(ok[:, None], s, 0.0), np.where(ok[:, None], y, 0.0)
        rho[i] = np.where(ok, 1.0 / np.where(ok, sy, 1.0), 0.0)
        k += 1
        W = np.where(bad[:, None], W, W_new)
        f, G = np.where(bad, f, f_new), np.where(bad[:, None], G, G_new)
        if stuck.any():  # no progress left (as scipy's ftol): finished
            out[rows[stuck]] = W[stuck]
            keep = ~stuck
            rows, W, f, G = rows[keep], W[keep], f[keep], G[keep]
            S, Y, rho = S[:, keep], Y[:, keep], rho[:, keep]
    out[rows] = W
    return out


def _two_loop(G: np.ndarray, S: np.ndarray, Y: np.ndarray, rho: np.ndarray, k: int
              ) -> np.ndarray:
    """L-BFGS inverse-Hessian times ``G`` per row (the two-loop recursion; a unit-length
    gradient step before any pair is stored)."""
    h = min(k, _HISTORY)
    if h == 0:
        return G / np.maximum(np.linalg.norm(G, axis=1), 1e-300)[:, None]
    order = [(k - h + j) % _HISTORY for j in range(h)]  # oldest first
    q = G.copy()
    alpha = []
    for i in reversed(order):
        a = rho[i] * np.einsum("tp,tp->t", S[i], q)
        q -= a[:, None] * Y[i]
        alpha.append(a)
    last = order[-1]
    yy = np.einsum("tp,tp->t", Y[last], Y[last])
    gamma = np.where((rho[last] > 0) & (yy > 0), 1.0 / np.maximum(rho[last] * yy, 1e-300), 1.0)
    q *= gamma[:, None]
    for i, a in zip(order, reversed(alpha)):
        q += (a - rho[i] * np.einsum("tp,tp->t", Y[i], q))[:, None] * S[i]
    return q


def _objective(Z1: Float[np.ndarray, "n p"], codes: Int[np.ndarray, "t n"],
               present: np.ndarray, l2: Float[np.ndarray, "t"], binary: bool
               ) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``fg(W, rows)`` of :func:`_lbfgs`: the scaled L2 log-loss per label vector.

    ``W`` rows are ``[1, p]`` (binary: the logit of class 1) or ``[K, p]`` (softmax over the
    classes ``present`` in that row's training labels; the others have no logit) flattened;
    the last feature of ``Z1`` is the (unpenalised) intercept's 1.
    """
    n, p = Z1.shape
    onehot = np.eye(present.shape[1])[codes] if not binary else None  # [t, n, K]
    y1 = (codes == 1).T.astype(np.float64) if binary else None  # [n, t]

    def fg(W: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lam = l2[rows]
        if binary:
            assert y1 is not None
            z = Z1 @ W.T  # [n, t]
            yr = y1[:, rows]
            loss = (np.logaddexp(0.0, z) - yr * z).mean(axis=0)
            G = (((0.5 + 0.5 * np.tanh(0.5 * z)) - yr) / n).T @ Z1  # [t, p]
            coef = W[:, :-1]
        else:
            assert onehot is not None
            t, K = len(rows), present.shape[1]
            z = (Z1 @ W.reshape(t * K, p).T).reshape(n, t, K)
            z = np.where(present[rows][None], z, -np.inf)
            top = z.max(axis=2, keepdims=True)
            lse = top + np.log(np.exp(z - top).sum(axis=2, keepdims=True))
            oh = onehot[rows].transpose(1, 0, 2)  # [n, t, K]
            loss = (lse[..., 0] - np.where(oh > 0, z, 0.0).sum(axis=2)).mean(axis=0)
            R = (np.exp(z - lse) - oh) / n
            G = (R.reshape(n, t * K).T @ Z1).reshape(t, K * p)
            coef = W.reshape(t, K, p)[..., :-1]
            G = G.reshape(t, K, p)
            G[..., :-1] += lam[:, None, None] * coef
            G = G.reshape(t, K * p)
            return loss + 0.5 * lam * (coef * coef).sum(axis=(1, 2)), G
        G[:, :-1] += lam[:, None] * coef
        return loss + 0.5 * lam * (coef * coef).sum(axis=1), G

    return fg


def _fit_predict_many(Z_tr: Float[np.ndarray, "n r"], codes: Int[np.ndarray, "t n"],
                      Z_te: Float[np.ndarray, "m r"], C: Float[np.ndarray, "t"], n_classes: int,
                      W0: np.ndarray | None = None) -> tuple[Int[np.ndarray, "t m"], np.ndarray]:
    """Fit one L2 logistic regression per row of ``codes`` (class indices ``0..n_classes-1``)
    on the same rows, with its own ``C``; predict ``Z_te``.

    As scikit-learn: only a row's training classes are predicted; one training class predicts
    that class; two classes are a binary (sigmoid) model (in a task of more classes, the softmax
    over the two with ``C/2``, the same model). ``W0`` warm-starts (a path over increasing C);
    returns the predictions and the weights ``[t, K', r+1]`` (``K' = 1`` for a binary task).
    """
    t, n = codes.shape
    binary = n_classes <= 2
    K = 1 if binary else n_classes
    Z1 = np.hstack([Z_tr, np.ones((n, 1))])
    Zt1 = np.hstack([Z_te, np.ones((len(Z_te), 1))])
    present = np.zeros((t, max(n_classes, 2)), dtype=bool)
    present[np.repeat(np.arange(t), n), codes.ravel()] = True
    n_present = present.sum(axis=1)
    l2 = 1.0 / (np.asarray(C, dtype=np.float64) * n) * np.where(
        (not binary) & (n_present == 2), 2.0, 1.0)
    W = np.zeros((t, K, Z1.shape[1])) if W0 is None else np.array(W0, dtype=np.float64)
    fit = np.flatnonzero(n_present >= 2)
    if len(fit):
        fg = _objective(Z1, codes[fit], present[fit], l2[fit], binary)
        W[fit] = _lbfgs(fg, W[fit].reshape(len(fit), -1)).reshape(len(fit), K, -1)
    z = np.einsum("mp,tkp->tmk", Zt1, W)
    if binary:
        pred = (z[..., 0] > 0).astype(np.int64)
    else:
        pred = np.where(present[:, None, :], z, -np.inf).argmax(axis=2)
    single = n_present == 1
    pred[single] = codes[single, :1]  # one training class: predict it
    return pred, W


def _fit_predict(Z_tr: np.ndarray, y_tr: np.ndarray, Z_te: np.ndarray, C: float,
                 W0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One target of :func:`_fit_predict_many` with its own labels (any integers)."""
    labels, codes = np.unique(np.asarray(y_tr), return_inverse=True)
    pred, W = _fit_predict_many(Z_tr, codes[None], Z_te, np.array([C]), len(labels), W0)
    return labels[pred[0]], W


def _choose_C(Z: Float[np.ndarray, "n r"], codes: Int[np.ndarray, "t n"],
              inner: Sequence[tuple[np.ndarray, np.ndarray]], Cs: Sequence[float],
              n_classes: int) -> Float[np.ndarray, "t"]:
    """Per label vector, the C with the best accuracy over the ``inner`` group folds (ties:
    the smallest C)."""
    if len(Cs) == 1 or not inner:
        return np.full(len(codes), float(Cs[0]) if len(Cs) == 1 else float(min(Cs)))
    order = np.argsort(Cs)
    grid = np.asarray(Cs, dtype=np.float64)[order]  # increasing
    score = np.zeros((len(codes), len(grid)))
    for tr, te in inner:
        W = None
        for j, C in enumerate(grid):  # warm start along increasing C
            pred, W = _fit_predict_many(Z[tr], codes[:, tr], Z[te], np.full(len(codes), C),
                                        n_classes, W)
            score[:, j] += (pred == codes[:, te]).sum(axis=1)
    return grid[np.argmax(score, axis=1)]  # the first maximum: the smallest C


def _inner_folds(groups: np.ndarray, inner_folds: int, seed: int
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The inner group folds of one training side (none when it has under 2 groups)."""
    n_inner = min(inner_folds, len(np.unique(groups)))
    return group_folds(groups, n_inner, seed) if n_inner >= 2 else []


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
               Cs: Sequence[float] = DEFAULT_CS, seed: int = 0, batch: Sequence[str] = ()
               ) -> dict[str, ProbeFit]:
    """Nested group-k-fold logistic-regression probes of several targets on the same points
    (e.g. the task, its control and the permutation null's shuffles), sharing folds and
    standardisation.

    Args:
        X: Features, one row per point.
        targets: Name → integer labels per point.
        groups: Group per point; a group is never split across train and test
            (:func:`group_folds`), in the outer and in the inner folds.
        folds: Outer folds (held-out accuracy).
        inner_folds: Inner folds on each training side (choose ``C``).
        Cs: Candidate inverse regularisation strengths (scikit-learn's ``C``).
        seed: Fold assignment.
        batch: Names of targets solved together (vectorised: the null's shuffles). Every other
            target is solved on its own, so its result never depends on what else is fitted
            (a batch's rounding can depend on its size).

    Each outer training side is standardised (``StandardScaler``; its inner folds reuse that
    scaling, as a scaler in a pipeline before ``LogisticRegressionCV`` would) and the fit runs
    in the span of its rows (:func:`_training_basis`, an exact reformulation, for speed). None
    of this depends on the labels, so it is computed once per fold for all targets; each
    target then gets its own inner choice of ``C`` and its own fit. The fits are scikit-learn's
    ``LogisticRegression`` model (lbfgs: the same objective, tolerance and iteration cap),
    solved by :func:`_fit_predict_many`.

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
    names = list(ys)
    if set(batch) - set(names):
        raise ValueError(f"batch names {sorted(set(batch) - set(names))} are not targets.")
    solves = [np.array([j]) for j, k in enumerate(names) if k not in set(batch)]
    solves += [np.array([names.index(k) for k in batch])] if len(batch) else []
    labels, inv = np.unique(np.stack([ys[k] for k in names]), return_inverse=True)
    codes = inv.reshape(len(names), len(X))  # [target, n]: class indices
    pred = np.empty_like(codes)
    base = np.empty_like(codes)
    chosen = np.empty((len(names), 0))
    for i, (tr, te) in enumerate(group_folds(groups, folds, seed)):
        Z_tr, Z_te = _training_basis(X[tr], X[te])
        inner = _inner_folds(groups[tr], inner_folds, seed + 1 + i)
        C = np.empty(len(names))
        for idx in solves:
            C[idx] = _choose_C(Z_tr, codes[idx][:, tr], inner, Cs, len(labels))
            pred[np.ix_(idx, te)], _ = _fit_predict_many(Z_tr, codes[idx][:, tr], Z_te, C[idx],
                                                         len(labels))
        chosen = np.hstack([chosen, C[:, None]])
        counts = np.stack([np.bincount(c, minlength=len(labels)) for c in codes[:, tr]])
        base[:, te] = np.argmax(counts, axis=1)[:, None]
    return {k: ProbeFit(float((pred[j] == codes[j]).mean()), float((base[j] == codes[j]).mean()),
                        chosen[j].tolist(), labels[pred[j]].astype(ys[k].dtype))
            for j, k in enumerate(names)}


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
                per_seed: bool = False, permutations: int = DEFAULT_PERMUTATIONS,
                progress: bool = False, on_row: Callable[[dict[str, Any]], None] | None = None,
                skip: Callable[[int, int], bool] | None = None) -> pd.DataFrame:
    """Probe every layer of one position: accuracy, baseline, permutation null, control.

    Args:
        data: :func:`collect_probe_data` output for one position.
        knockout: Name for the rows' ``knockout`` column (``icl``: none, or the knockout's name).
        folds, inner_folds, Cs, seed: See :func:`fit_probe` (``seed`` also draws the control
            and the shuffles).
        per_seed: One probe per seed (rows carry that seed); ``False`` (default): one probe on
            the pooled points of every seed (``seed`` = -1 in the rows).
        permutations: Group shuffles of the permutation null (0: none; the null columns are
            NaN). Each refits the whole probe on every layer.
        progress: A tqdm bar over the shuffles' fits.
        on_row: Called with each row once its family (all layers of one seed) is computed
            (e.g. to append it to a results file).
        skip: ``(seed, layer) -> bool``: cells already computed (not returned; with
            ``permutations`` their shuffles are still fitted, for the best-layer correction).

    Returns:
        Rows with :data:`PROBE_COLUMNS`. ``p_max`` corrects for the best of the layers in
        ``data`` (the family is this position and knockout).
    """
    rows = []
    seeds = sorted(set(data.seeds.tolist())) if per_seed else [-1]
    for s in seeds:
        sel = data.seeds == s if per_seed else np.ones(len(data.y), dtype=bool)
        y, g = data.y[sel], data.groups[sel]
        texts = [t for t, m in zip(data.texts, sel) if m]
        seen = control_seen(texts, group_folds(g, folds, seed))
        yc = control_labels(texts, y, seed) if seen > 0 else None
        shuffles = permuted_labels(y, g, permutations, seed=_null_seed(seed, s))
        todo = [skip is None or not skip(s, layer) for layer in data.layers]
        if not any(todo):
            continue
        real: dict[int, dict[str, ProbeFit]] = {}
        null = np.full((permutations, len(data.layers)), np.nan)
        bar = _bar(permutations * len(data.layers), f"{data.position} {knockout} null",
                   progress and permutations > 0)
        for li in range(len(data.layers)):
            if not todo[li] and not permutations:
                continue
            targets = {f"perm{b}": shuffles[b] for b in range(permutations)}
            if todo[li]:
                targets = {"task": y, **({} if yc is None else {"control": yc}), **targets}
            fits = fit_probes(data.X[sel, li], targets, g, folds=folds,
                              inner_folds=inner_folds, Cs=Cs, seed=seed,
                              batch=[f"perm{b}" for b in range(permutations)])
            null[:, li] = [fits[f"perm{b}"].accuracy for b in range(permutations)]
            if todo[li]:
                real[li] = fits
            if bar is not None:
                bar.update(permutations)
        if bar is not None:
            bar.close()
        observed = np.array([real[li]["task"].accuracy if li in real else np.nan
                             for li in range(len(data.layers))])
        stats = null_pvalues(observed, null)
        for li in sorted(real):
            row = _row(data, s, li, knockout, folds, real[li], seen, permutations,
                       {k: float(v[li]) for k, v in stats.items()}, y, g)
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return pd.DataFrame(rows, columns=list(PROBE_COLUMNS))


def _null_seed(seed: int, data_seed: int) -> list[int]:
    """The shuffles' seed: the probe seed, the pooled (-1) or per-seed subset, a domain tag."""
    return [int(seed), int(data_seed) + 1, 0x6E75]


def _bar(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="fit", file=sys.stderr)


def _row(data: ProbeData, seed: int, li: int, knockout: str, folds: int,
         fits: dict[str, ProbeFit], seen: float, permutations: int, stats: dict[str, float],
         y: np.ndarray, g: np.ndarray) -> dict[str, Any]:
    """One table row: the real fit, the control where it can be learnt, the null."""
    real = fits["task"]
    ctrl = fits.get("control")
    note = (UNLEARNABLE if ctrl is None
            else f"learnable: {seen:.0%} of held-out points have their text in training")
    return {"seed": seed, "position": data.position, "layer": data.layers[li],
            "knockout": knockout, "target": data.target,
            "accuracy": real.accuracy, "majority": real.majority,
            "control": np.nan if ctrl is None else ctrl.accuracy,
            "selectivity": np.nan if ctrl is None else real.accuracy - ctrl.accuracy,
            "n": int(len(y)), "n_groups": int(len(np.unique(g))),
            "n_classes": int(len(np.unique(y))), "C_median": float(np.median(real.Cs)),
            "folds": folds, "control_seen": float(seen), "control_note": note,
            "permutations": int(permutations), **stats}


def run_probes(
    model: Any, tokenizer: Any, task: TaskSpec, data: TaskData, *, seeds: Sequence[int] = (0,),
    n_test: int | None = 50, k: int = 4, positions: Sequence[str] = tuple(PROBE_POSITIONS),
    layers: Sequence[int] | None = None, knockout: Knockout | None = None,
    stopword_variant: str = "paper", batch_size: int = 8, folds: int = 5, inner_folds: int = 3,
    Cs: Sequence[float] = DEFAULT_CS, seed: int = 0, per_seed: bool = False,
    permutations: int = DEFAULT_PERMUTATIONS, progress: bool = True,
) -> pd.DataFrame:
    """Probes at every position and layer of a task's probe prompts (optionally under a
    knockout applied to every prompt), each with its permutation null (``permutations``
    group shuffles, :func:`probe_table`); rows with :data:`PROBE_COLUMNS`."""
    labels = LabelSet.for_task(task, tokenizer)
    items = probe_items(task, tokenizer, labels,
                        probe_episodes(data, seeds, k=k, n_test=n_test),
                        stopword_variant=stopword_variant)
    name = "icl" if knockout is None else (knockout.name or "knockout")
    collected = collect_probe_data(model, tokenizer, items, positions=positions, layers=layers,
                                   knockout=knockout, batch_size=batch_size)
    return pd.concat([probe_table(d, knockout=name, folds=folds, inner_folds=inner_folds,
                                  Cs=Cs, seed=seed, per_seed=per_seed,
                                  permutations=permutations, progress=progress)
                      for d in collected.values()], ignore_index=True)
