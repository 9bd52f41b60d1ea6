"""Contextual calibration (Zhao et al., 2021, "Calibrate Before Use") of tidy result rows.

A model's label probabilities carry a bias that depends on the prompt (the demonstrations, their
order, the template) and, here, on the knockout condition. Contextual calibration estimates it
by putting **content-free inputs** (``N/A`` and ``[MASK]``; every input field set to the
string) in place of the test example, under each condition with each seed's demonstrations and
the same knockouts, through the engine (:func:`content_free_rows`). The bias ``p_cf`` of a
(model, task, seed, condition) is the mean over the content-free inputs of the label
probabilities renormalised over the label set; the calibrated probabilities are
``q ∝ p / p_cf`` (``W = diag(p_cf)^-1``, ``b = 0``), and the calibrated prediction is their
argmax (:func:`calibrate`, ``calibrated_correct``).

Label probabilities come from the rows' ``score_<label>`` columns (teacher-forced
log-probabilities of ``" " + label``), so every experiment gets calibrated accuracy; it is a
calibration of the label-restricted score (``acc_label``), not of free generation.

Zhao et al. also use the empty string; the prompt builder refuses an empty input field (it would
leave a template slot with no tokens to categorise), so it is not among :data:`CONTENT_FREE` and
is refused by :func:`content_free_examples`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from jaxtyping import Float

from .scores import label_scores
from .tables import accuracy_table

__all__ = ["CONTENT_FREE", "content_free_examples", "item_builder", "content_free_rows",
           "label_probs", "contextual_calibration", "estimate_bias", "calibrate",
           "calibrated_accuracy_table"]

#: Zhao et al.'s content-free inputs (less the empty string; see the module doc).
CONTENT_FREE: tuple[str, ...] = ("N/A", "[MASK]")
_BIAS_KEY = ["model", "task", "seed", "condition"]


def content_free_examples(task: Any, strings: Sequence[str] = CONTENT_FREE) -> tuple[Any, ...]:
    """One example per content-free string, every input field set to it (ids
    ``content-free:0`` ...; the label is the task's first, and is not used)."""
    from ..tasks import Example

    if not strings:
        raise ValueError("give at least one content-free string.")
    if any(not s.strip() for s in strings):
        raise ValueError("an empty content-free string leaves an input slot with no tokens, "
                         "which the prompt builder refuses; use e.g. 'N/A' or '[MASK]'.")
    if len(set(strings)) != len(strings):
        raise ValueError(f"content-free strings {list(strings)} repeat one.")
    raw = next(iter(task.label_map))
    return tuple(Example(f"content-free:{i}", {f: s for f in task.input_fields}, raw)
                 for i, s in enumerate(strings))


def item_builder(cfg: Any) -> Callable[[Any, Any], list[Any]]:
    """The item builder of ``cfg``'s experiment, as its runner builds them:
    ``(RunContext, Episode) -> items`` (every experiment config declares ``build_items``)."""
    build = getattr(cfg, "build_items", None)
    if build is None:
        raise ValueError(f"{type(cfg).__name__} declares no build_items; pass build_items=... "
                         "to content_free_rows.")
    return build


def content_free_rows(
    cfg: Any, *, model: Any, tokenizer: Any, strings: Sequence[str] = CONTENT_FREE,
    build_items: Callable[[Any, Any], list[Any]] | None = None,
) -> pd.DataFrame:
    """Tidy rows of the content-free inputs in place of the test example, for every seed and
    condition of ``cfg`` (its demonstrations, knockouts and removals), scored by the engine
    (label scores; ``example_id`` ``content-free:i``, ``content_free`` the string)."""
    from ..data import load_task_data
    from ..engine.items import LabelSet
    from ..engine.scoring import score_items
    from ..episodes import sample_episode
    from ..experiments.runner import RunContext, result_row
    from ..tasks import load_task

    task = load_task(cfg.task)
    data = load_task_data(task, source=cfg.data_source)
    build = build_items or item_builder(cfg)
    cf = content_free_examples(task, strings)
    ctx = RunContext(task, data, tokenizer, LabelSet.for_task(task, tokenizer), model)
    label_cfg = dataclasses.replace(cfg, scoring="label")
    rows = []
    for seed in cfg.seeds:
        ep = dataclasses.replace(sample_episode(data, seed, k=cfg.k, n_test=1), tests=cf)
        items = build(ctx, ep)
        res = score_items(model, tokenizer, items, scoring="label", engine=cfg.engine,
                          batch_size=cfg.batch_size)
        for r in res:
            row = result_row(label_cfg, task, r)
            row["content_free"] = strings[int(r.example_id.split(":")[1])]
            rows.append(row)
    df = pd.DataFrame(rows)
    for c in df.columns:
        if c.startswith("score_"):
            df[c] = df[c].astype(float)
    return df


def label_probs(rows: pd.DataFrame) -> tuple[list[str], Float[np.ndarray, "n labels"]]:
    """Label probabilities renormalised over the label set (softmax of the label scores) of one
    task's rows."""
    words, s = label_scores(rows)
    z = np.exp(s - s.max(axis=1, keepdims=True))
    return words, z / z.sum(axis=1, keepdims=True)


def contextual_calibration(probs: Float[np.ndarray, "n labels"],
                           p_cf: Float[np.ndarray, "*n labels"]) -> Float[np.ndarray, "n labels"]:
    """Zhao et al.'s correction: ``q ∝ probs / p_cf`` (rows renormalised); ``p_cf`` is one
    bias for every row or one per row."""
    p_cf = np.asarray(p_cf, dtype=float)
    if (p_cf <= 0).any() or not np.isfinite(p_cf).all():
        raise ValueError(f"content-free probabilities must be positive and finite, got {p_cf}.")
    q = np.asarray(probs, dtype=float) / p_cf
    return q / q.sum(axis=-1, keepdims=True)


def estimate_bias(cf_rows: pd.DataFrame) -> pd.DataFrame:
    """``p_cf`` per (model, task, seed, condition): the mean over the content-free inputs of the
    renormalised label probabilities; columns ``p_cf_<label>``."""
    out = []
    for _, rows in cf_rows.groupby("task", sort=False):
        words, p = label_probs(rows)
        frame = rows[_BIAS_KEY].copy()
        for j, w in enumerate(words):
            frame[f"p_cf_{w}"] = p[:, j]
        out.append(frame.groupby(_BIAS_KEY, sort=False).mean().reset_index())
    return pd.concat(out, ignore_index=True)


def calibrate(rows: pd.DataFrame, cf_rows: pd.DataFrame) -> pd.DataFrame:
    """A copy of the tidy rows with ``calibrated_prediction``, ``calibrated_correct`` (0/1) and
    ``calibrated_gold_prob``, each row corrected by the bias of its (model, task, seed,
    condition).

    Raises:
        ValueError: a row whose (model, task, seed, condition) has no content-free rows.
    """
    bias = estimate_bias(cf_rows)
    out = rows.copy()
    pred = np.full(len(rows), "", dtype=object)
    correct = np.zeros(len(rows), dtype=int)
    gold_p = np.full(len(rows), np.nan)
    for task, pos in rows.groupby("task", sort=False).indices.items():  # positions
        part = rows.iloc[pos]
        words, p = label_probs(part)
        b = bias[bias.task == task]
        keyed = part[_BIAS_KEY].merge(b, on=_BIAS_KEY, how="left")
        cols = [f"p_cf_{w}" for w in words]
        if keyed[cols].isna().any().any():
            miss = keyed[keyed[cols].isna().any(axis=1)][_BIAS_KEY].drop_duplicates()
            raise ValueError(f"no content-free rows for {len(miss)} (model, task, seed, "
                             f"condition) cell(s), e.g. {miss.iloc[0].to_dict()}; run "
                             "content_free_rows with the same config.")
        gold = part["gold"].astype(str).to_numpy()
        unknown = sorted(set(gold) - set(words))
        if unknown:
            raise ValueError(f"{task}: gold label(s) {unknown} have no score column ({words}).")
        q = contextual_calibration(p, keyed[cols].to_numpy(float))
        labels = np.array(words, dtype=object)[q.argmax(axis=1)]
        gi = np.array([words.index(g) for g in gold])
        pred[pos] = labels
        correct[pos] = (labels == gold).astype(int)
        gold_p[pos] = q[np.arange(len(part)), gi]
    out["calibrated_prediction"] = pred
    out["calibrated_correct"] = correct
    out["calibrated_gold_prob"] = gold_p
    return out


def calibrated_accuracy_table(rows: pd.DataFrame, cf_rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds of calibrated accuracy (%) per (model, task, condition), in the
    layout of :func:`~icl_tokens.analysis.tables.accuracy_table`."""
    return accuracy_table(calibrate(rows, cf_rows), metric="calibrated_correct")
