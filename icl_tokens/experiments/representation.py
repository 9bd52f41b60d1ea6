"""Experiments: a config dataclass → tidy per-example results and accuracy tables.

E1 (paper §4.2.1, Tables 2 and 3; paper-spec §6): representation-level knockout of the test
example's attention to template / stopword / content tokens of the demonstrations.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..data import load_task_data
from ..episodes import sample_episode
from ..engine.scoring import ENGINES, SCORINGS, RowResult, make_jobs, score_jobs
from ..ablation.hooks import MODES, check_layers
from ..ablation.conditions import PAPER_ORDER, parse_conditions
from ..results import ResultsFile
from ..tasks import STOPWORD_VARIANTS, TaskSpec, load_task

__all__ = [
    "AblationConfig",
    "run_ablation",
    "result_columns",
    "accuracy_by_seed",
    "accuracy_table",
    "format_accuracy_table",
    "CONDITION_LABELS",
    "TABLE2_CONDITIONS",
    "paper_layout",
    "task_means",
    "paired_se",
    "pattern_checks",
]

#: Paper row names for our conditions.
CONDITION_LABELS: dict[str, str] = {
    "zero_shot": "Zero-shot", "+content": "+ CONT", "+stopword": "+ STOP",
    "+template": "+ TEMP", "icl": "Standard ICL", "-content": "- CONT",
    "-stopword": "- STOP", "-template": "- TEMP", "none": "all hidden (labels only)",
}


@dataclass
class AblationConfig:
    """Arguments of a representation-level ablation run (everything that defines its rows)."""

    model: str = "gemma-3-270m"
    task: str = "sst2"
    seeds: tuple[int, ...] = (0,)
    k: int = 4
    n_test: int | None = None
    conditions: tuple[str, ...] = tuple(PAPER_ORDER)
    scoring: str = "generate"
    engine: str = "cached"
    stopword_variant: str = "paper"
    hide_bos: bool = False
    query_scope: str = "test"
    data_source: str | None = None
    layers: tuple[int, ...] | None = None
    heads: tuple[int, ...] | None = None
    mode: str = "scores"
    batch_size: int = 16
    chunk_examples: int = 8
    dtype: str = "float32"
    device: str | None = None

    def __post_init__(self) -> None:
        self.seeds = tuple(int(s) for s in self.seeds)
        self.conditions = tuple(parse_conditions(list(self.conditions)))
        if self.scoring not in SCORINGS:
            raise ValueError(f"unknown scoring {self.scoring!r}; use one of {SCORINGS}.")
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; use one of {ENGINES}.")
        if self.stopword_variant not in STOPWORD_VARIANTS:
            raise ValueError(f"unknown stopword variant {self.stopword_variant!r}; use one of "
                             f"{STOPWORD_VARIANTS}.")
        if not self.seeds:
            raise ValueError("give at least one seed.")
        if self.batch_size < 1 or self.chunk_examples < 1:
            raise ValueError("batch_size and chunk_examples must be >= 1.")
        if self.mode not in MODES:
            raise ValueError(f"unknown knockout mode {self.mode!r}; use one of {MODES}.")
        for name in ("layers", "heads"):
            value = getattr(self, name)
            if value is not None:
                if not value:
                    raise ValueError(f"{name} is empty; pass None for all {name}.")
                setattr(self, name, tuple(int(v) for v in value))

    def identity(self) -> dict[str, Any]:
        """The arguments that determine the rows (engine/batching excluded: same answers)."""
        d = dataclasses.asdict(self)
        for k in ("batch_size", "chunk_examples", "device", "engine"):
            d.pop(k)
        d["seeds"] = list(self.seeds)
        for name in ("layers", "heads"):
            d[name] = None if d[name] is None else list(d[name])
        d["conditions"] = list(self.conditions)
        return d


def result_columns(task: TaskSpec) -> list[str]:
    """CSV columns: one row per (model, task, seed, example_id, condition)."""
    return (["model", "task", "seed", "k", "example_id", "condition", "gold", "prediction",
             "correct", "valid", "continuation", "label_prediction", "label_correct"]
            + [f"score_{w}" for w in task.label_words] + ["n_tokens"])


def _row(cfg: AblationConfig, task: TaskSpec, seed: int, r: RowResult) -> dict[str, Any]:
    pred = r.prediction(cfg.scoring)
    row: dict[str, Any] = {
        "model": cfg.model, "task": task.name, "seed": seed, "k": cfg.k,
        "example_id": r.example_id, "condition": r.condition, "gold": r.gold,
        "prediction": pred, "correct": int(pred == r.gold),
        "valid": int(pred in task.label_words),
        "continuation": (r.continuation or "") if cfg.scoring == "generate" else "",
        "label_prediction": r.label_prediction, "label_correct": int(r.label_correct),
        "n_tokens": r.n_tokens,
    }
    for w in task.label_words:
        row[f"score_{w}"] = f"{r.label_scores[w]:.6f}"
    return row


def run_ablation(
    cfg: AblationConfig,
    *,
    model: Any = None,
    tokenizer: Any = None,
    out: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
    meta: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Run (or resume) a representation-level ablation and return its tidy rows.

    Args:
        cfg: The run's arguments.
        model, tokenizer: A loaded bridge and its tokenizer (loaded from ``cfg.model`` if None).
        out: CSV path; rows are appended as they are computed and a rerun resumes.
        progress: Show a tqdm progress bar.
        log: Where to write notes (data source, resume state).
        meta: Extra provenance for the sidecar.
    """
    task = load_task(cfg.task)
    data = load_task_data(task, source=cfg.data_source)
    log(f"data: {data.source} ({data.location}); {data.notes}")
    episodes = [sample_episode(data, s, k=cfg.k, n_test=cfg.n_test) for s in cfg.seeds]
    columns = result_columns(task)
    identity = {**cfg.identity(), "resolved_data_source": data.source,
                "data_location": data.location}
    from ..models import library_versions

    meta = {**(meta or {}), "versions": library_versions(), "config": dataclasses.asdict(cfg)}
    store = ResultsFile(out, columns, identity, meta) if out is not None else None
    total = sum(len(e.tests) for e in episodes) * len(cfg.conditions)
    todo = [(e, t) for e in episodes for t in e.tests
            if store is None or not all(store.is_done(e.seed, t.id, c) for c in cfg.conditions)]
    if store is not None:
        for n in store.notes:
            log(f"{store.path}: {n}")
        if len(store.done):
            log(f"{store.path}: resuming, {len(store.done)} of {total} rows already done")
        if not todo:
            return store.read()
    if model is None or tokenizer is None:
        import torch

        from ..models import load_model, load_tokenizer, model_info

        model = load_model(cfg.model, device=cfg.device, dtype=getattr(torch, cfg.dtype))
        tokenizer = load_tokenizer(cfg.model)
        if store is not None:
            store.update_meta({"model_info": model_info(model)})
    if cfg.layers is not None:
        check_layers(int(model.cfg.n_layers), cfg.layers)  # fail before any work
    rows: list[dict[str, Any]] = []
    window = _sliding_window(model)
    long_prompts = 0
    bar = _progress(total, len(store.done) if store else 0, progress)
    try:
        for ep in episodes:
            tests = [t for e, t in todo if e is ep]
            prefix_cache: dict[Any, Any] = {}
            for s in range(0, len(tests), cfg.chunk_examples):
                chunk = dataclasses.replace(ep, tests=tuple(tests[s : s + cfg.chunk_examples]))
                jobs = make_jobs(task, tokenizer, chunk, cfg.conditions,
                                 stopword_variant=cfg.stopword_variant, hide_bos=cfg.hide_bos,
                                 query_scope=cfg.query_scope)
                if window is not None:
                    long_prompts += sum(j.n > window for j in jobs)
                if store is not None:
                    jobs = [j for j in jobs
                            if not store.is_done(ep.seed, j.tp.prompt.test.id, j.condition)]
                res = score_jobs(model, tokenizer, jobs, scoring=cfg.scoring, engine=cfg.engine,
                                 batch_size=cfg.batch_size, prefix_cache=prefix_cache,
                                 layers=cfg.layers, heads=cfg.heads, mode=cfg.mode,
                                 progress=bar.update if bar else None)
                new = [_row(cfg, task, ep.seed, r) for r in res]
                if store is not None:
                    store.append(new)
                rows.extend(new)
    finally:
        if bar:
            bar.close()
    if long_prompts:
        log(f"note: {long_prompts} scored prompts are longer than the model's sliding window "
            f"({window} tokens): its local-attention layers already hide the farthest keys "
            "(see the n_tokens column).")
    if store is not None:
        return store.read()
    return pd.DataFrame(rows, columns=columns)


def _sliding_window(model: Any) -> int | None:
    """The sliding-window size of a model with local-attention layers (Gemma-3), else None."""
    config = getattr(getattr(model, "original_model", None), "config", None)
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None) or []
    return int(window) if window and "sliding_attention" in layer_types else None


def _progress(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="rows", unit="row", file=sys.stderr)


def accuracy_by_seed(df: pd.DataFrame, metric: str = "correct") -> pd.DataFrame:
    """Accuracy (%) per (model, task, condition, seed)."""
    g = df.groupby(["model", "task", "condition", "seed"], sort=False)[metric]
    out = g.mean().mul(100).rename("accuracy").reset_index()
    out["n"] = g.size().values
    return out


def accuracy_table(df: pd.DataFrame, metric: str = "correct") -> pd.DataFrame:
    """Mean and std (over seeds) of accuracy per (model, task, condition), paper row order."""
    per_seed = accuracy_by_seed(df, metric)
    g = per_seed.groupby(["model", "task", "condition"], sort=False)["accuracy"]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1).fillna(0.0),
                        "n_seeds": g.size()}).reset_index()
    order = {c: i for i, c in enumerate(PAPER_ORDER)}
    task_order = {t: i for i, t in enumerate(dict.fromkeys(df["task"]))}  # as first seen
    out["_o"] = out["condition"].map(lambda c: order.get(c, len(order)))
    out["_t"] = out["task"].map(task_order)
    return (out.sort_values(["model", "_t", "_o"], kind="stable").drop(columns=["_o", "_t"])
            .reset_index(drop=True))


def format_accuracy_table(
    table: pd.DataFrame, paper: pd.DataFrame | None = None, paper_label: str = "paper"
) -> str:
    """Paper-layout text table: rows = conditions, columns = tasks, cells ``mean ± std``.

    Args:
        table: From :func:`accuracy_table` (one model).
        paper: Optional conditions × tasks reference values shown in extra columns.
    """
    tasks = list(dict.fromkeys(table["task"]))
    conds = [c for c in PAPER_ORDER if c in set(table["condition"])]
    header = ["condition"] + [f"{t} (ours)" for t in tasks]
    if paper is not None:
        header += [f"{t} ({paper_label})" for t in tasks if t in paper.columns]
    lines = [header]
    for c in conds:
        cells = [CONDITION_LABELS.get(c, c)]
        for t in tasks:
            r = table[(table.task == t) & (table.condition == c)]
            cells.append("" if r.empty else f"{r['mean'].iloc[0]:5.1f} ± {r['std'].iloc[0]:4.1f}")
        if paper is not None:
            for t in tasks:
                if t in paper.columns:
                    v = paper.loc[c, t] if c in paper.index else np.nan
                    cells.append("" if pd.isna(v) else f"{v:5.1f}")
        lines.append(cells)
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(header))]
    fmt = lambda row: "  ".join(str(x).ljust(w) for x, w in zip(row, widths))  # noqa: E731
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(lines[0]), rule] + [fmt(r) for r in lines[1:]])


#: Table 2 rows (and the diagnostic): their Δ is taken against Zero-shot; the others' against
#: Standard ICL.
TABLE2_CONDITIONS: tuple[str, ...] = ("zero_shot", "+content", "+stopword", "+template", "none")


def paper_layout(table: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Conditions × (task, ours/paper) with ``avg`` and ``Δ`` columns, as in Tables 2 and 3.

    Args:
        table: From :func:`accuracy_table` (one model).
        paper: Conditions × tasks reference values
            (:func:`icl_tokens.reference.paper_condition_table`), or None.

    ``avg`` is the mean over the tasks present (the paper averages all six); ``Δ`` is the
    difference of ``avg`` from Zero-shot for the Table 2 rows and from Standard ICL otherwise.
    """
    tasks = list(dict.fromkeys(table["task"]))
    ours = table.pivot(index="condition", columns="task", values="mean")
    conds = [c for c in PAPER_ORDER if c in ours.index]
    sources = {"ours": ours.reindex(index=conds, columns=tasks)}
    if paper is not None:
        sources["paper"] = paper.reindex(index=conds, columns=tasks)
    cols: dict[tuple[str, str], pd.Series] = {}
    for t in tasks:
        for who, src in sources.items():
            cols[(t, who)] = src[t]
    avgs = {who: src.mean(axis=1, skipna=False) for who, src in sources.items()}
    for who, avg in avgs.items():
        cols[("avg", who)] = avg
    for who, avg in avgs.items():
        delta = {}
        for c in conds:
            base = "zero_shot" if c in TABLE2_CONDITIONS else "icl"
            delta[c] = (np.nan if c in ("zero_shot", "icl") or base not in avg.index
                        else avg[c] - avg[base])
        cols[("Δ", who)] = pd.Series(delta)
    out = pd.DataFrame(cols)
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    out.index = [f"{CONDITION_LABELS[c]}  [{c}]" for c in conds]
    return out


def task_means(table: pd.DataFrame) -> pd.Series:
    """Mean accuracy over tasks per condition, from :func:`accuracy_table`."""
    return table.pivot(index="condition", columns="task", values="mean").mean(axis=1)


def paired_se(results: pd.DataFrame, metric: str, a: str, b: str) -> float:
    """Standard error (points) of the mean paired difference ``a − b`` over
    (task, seed, example) rows of a results table."""
    wide = results.pivot_table(index=["task", "seed", "example_id"], columns="condition",
                               values=metric)
    d = (wide[a] - wide[b]).to_numpy() * 100
    return float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")


def pattern_checks(
    avg: pd.Series,
    results: pd.DataFrame | None = None,
    metric: str | None = None,
    tolerance: float = 2.5,
) -> dict[str, str]:
    """The paper's qualitative targets 1–2 (paper-spec §8) as 'holds'/'does not hold' lines.

    Args:
        avg: Accuracy per condition (e.g. :func:`task_means`, or the paper's per-condition means).
        results: Per-example rows, to print the paired standard error of the ``-content`` and
            ``-stopword`` differences (optional).
        metric: The results column of ``avg`` (``correct`` or ``label_correct``).
        tolerance: "Within about 2 points".
    """
    t, s, c = avg["+template"], avg["+stopword"], avg["+content"]
    drops = {x: avg[x] - avg["icl"] for x in ("-content", "-stopword", "-template")}
    largest = drops["-template"] < min(drops["-content"], drops["-stopword"])
    out = {
        "1. +template > +stopword > +content":
            f"{'holds' if t > s > c else 'does not hold'} ({t:.1f} / {s:.1f} / {c:.1f})",
        "2a. -template is the largest drop":
            f"{'holds' if largest else 'does not hold'} (Δ {drops['-template']:+.1f} vs "
            f"{drops['-content']:+.1f} / {drops['-stopword']:+.1f})",
    }
    for x, label in (("-content", "2b"), ("-stopword", "2c")):
        se = ""
        if results is not None and metric is not None:
            se = f", SE {paired_se(results, metric, x, 'icl'):.1f}"
        out[f"{label}. {x} within {tolerance} of Standard"] = (
            f"{'holds' if abs(drops[x]) <= tolerance else 'does not hold'} (Δ {drops[x]:+.1f}{se})")
    return out
