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

from .data import load_task_data
from .episodes import sample_episode
from .evaluate import ENGINES, SCORINGS, RowResult, make_jobs, score_jobs
from .masks import PAPER_ORDER, parse_conditions
from .results import ResultsFile
from .tasks import STOPWORD_VARIANTS, TaskSpec, load_task

__all__ = [
    "AblationConfig",
    "run_ablation",
    "result_columns",
    "accuracy_by_seed",
    "accuracy_table",
    "format_accuracy_table",
    "CONDITION_LABELS",
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

    def identity(self) -> dict[str, Any]:
        """The arguments that determine the rows (engine/batching excluded: same answers)."""
        d = dataclasses.asdict(self)
        for k in ("batch_size", "chunk_examples", "device", "engine"):
            d.pop(k)
        d["seeds"] = list(self.seeds)
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
    from .models import library_versions

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

        from .models import load_model, load_tokenizer, model_info

        model = load_model(cfg.model, device=cfg.device, dtype=getattr(torch, cfg.dtype))
        tokenizer = load_tokenizer(cfg.model)
        if store is not None:
            store.update_meta({"model_info": model_info(model)})
    rows: list[dict[str, Any]] = []
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
                if store is not None:
                    jobs = [j for j in jobs
                            if not store.is_done(ep.seed, j.tp.prompt.test.id, j.condition)]
                res = score_jobs(model, tokenizer, jobs, scoring=cfg.scoring, engine=cfg.engine,
                                 batch_size=cfg.batch_size, prefix_cache=prefix_cache,
                                 progress=bar.update if bar else None)
                new = [_row(cfg, task, ep.seed, r) for r in res]
                if store is not None:
                    store.append(new)
                rows.extend(new)
    finally:
        if bar:
            bar.close()
    if store is not None:
        return store.read()
    return pd.DataFrame(rows, columns=columns)


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
    out["_o"] = out["condition"].map(lambda c: order.get(c, len(order)))
    return out.sort_values(["model", "task", "_o"]).drop(columns="_o").reset_index(drop=True)


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
    return "\n".join([fmt(lines[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in lines[1:]])
