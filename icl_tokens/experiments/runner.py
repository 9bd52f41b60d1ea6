"""The experiment runner every experiment (and the CLI) goes through.

:func:`run_experiment` takes a config, a function that turns one episode into scoring items,
and an output path. It validates everything before it creates any output (task, data, device,
model, layers and heads), opens the resumable :class:`~icl_tokens.results.ResultsFile` (locked,
keyed by the run's full identity: arguments, the task definition's content hash, the data
source, device and dtype), skips the rows already written, scores the rest on the chosen engine
in chunks, and appends tidy rows as they are computed. The sidecar records the model info and
package versions of every run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from ..data import TaskData, load_task_data
from ..engine.items import Item, LabelSet
from ..engine.prefix_cache import PrefixCache
from ..engine.scoring import BatchSize, RowResult, score_items
from ..episodes import Episode, sample_episode
from ..models.load import sliding_window
from ..results import ResultsFile
from ..results.tidy import read_rows
from ..tasks import TaskSpec, load_task

__all__ = ["RunContext", "run_experiment", "run_config", "result_columns", "task_hash",
           "sliding_window", "result_row", "data_note", "run_identity", "print_note",
           "test_chunks", "score_chunk"]

BASE_COLUMNS = ("model", "task", "seed", "k", "example_id", "condition", "gold", "prediction",
                "correct", "valid", "continuation", "label_prediction", "label_correct")


@dataclass
class RunContext:
    """What an item builder gets: the task, its data, the tokenizer and the shared label ids."""

    task: TaskSpec
    data: TaskData
    tokenizer: Any
    labels: LabelSet
    model: Any


def result_columns(task: TaskSpec, extra: Sequence[str] = ()) -> list[str]:
    """CSV columns: one row per (model, task, seed, example_id, condition)."""
    return (list(BASE_COLUMNS) + [f"score_{w}" for w in task.label_words] + ["n_tokens"]
            + list(extra))


def task_hash(task: TaskSpec) -> str:
    """sha256 of the task definition's content (so an edited task file is a different run)."""
    blob = json.dumps(task.to_dict(), sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()


def data_note(data: TaskData, model: str | None = None, seeds: Sequence[int] = (),
              n_test: int | None = None) -> str:
    """One line naming the data a table ran on (and the model, seeds, examples)."""
    parts = [f"{data.task} from {data.source} ({data.location})"]
    if data.source == "staicc" and data.task == "sst2":
        parts.append("StaICC SST-2 is GLUE phrase-level train data, not the paper's sentence-level "
                     "test set")
    if model:
        parts.append(f"model {model}")
    if seeds:
        parts.append(f"seeds {','.join(str(s) for s in seeds)}")
    if n_test:
        parts.append(f"{n_test} examples per seed")
    return "; ".join(parts)


def result_row(cfg: Any, task: TaskSpec, r: RowResult, extra: Sequence[str] = ()
               ) -> dict[str, Any]:
    """One tidy row from a scored item (``item.meta`` supplies seed and the extra columns)."""
    pred = r.prediction(cfg.scoring)
    meta = r.item.meta
    row: dict[str, Any] = {
        "model": cfg.model, "task": task.name, "seed": meta["seed"], "k": meta.get("k", cfg.k),
        "example_id": r.example_id, "condition": r.condition, "gold": r.gold,
        "prediction": pred, "correct": int(pred == r.gold),
        "valid": int(pred in task.label_words),
        "continuation": (r.continuation or "") if cfg.scoring == "generate" else "",
        "label_prediction": r.label_prediction, "label_correct": int(r.label_correct),
        "n_tokens": r.n_tokens,
    }
    for w in task.label_words:
        row[f"score_{w}"] = f"{r.label_scores[w]:.6f}"
    for c in extra:
        row[c] = meta[c]
    return row


def _progress(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="rows", unit="row", file=sys.stderr)


def run_identity(cfg: Any, task: TaskSpec, data: TaskData, device: str) -> dict[str, Any]:
    """What a resumed run must match: the config's identity, the task definition's hash, the
    data source and the device."""
    return {**cfg.identity(), "task_sha256": task_hash(task),
            "resolved_data_source": data.source, "data_location": data.location,
            "device": device}


def print_note(text: str) -> None:
    """The default ``log``: one line of ordinary output (stdout), so a notebook shows a note as
    text rather than as an error; the command line passes a ``log`` that writes to stderr."""
    print(text, file=sys.stdout, flush=True)


def model_for(cfg: Any, model: Any = None, tokenizer: Any = None) -> tuple[Any, Any]:
    """The bridge and tokenizer of ``cfg`` (its model, device or device map, dtype), unless
    both are given."""
    if model is not None and tokenizer is not None:
        return model, tokenizer
    import torch

    from ..models import load_model, load_tokenizer

    placement = {"device_map": cfg.device_map} if getattr(cfg, "device_map", None) else {}
    model = load_model(cfg.model, device=cfg.device, dtype=getattr(torch, cfg.dtype),
                       **placement)
    return model, load_tokenizer(cfg.model)


def run_experiment(
    cfg: Any,
    build_items: Callable[[RunContext, Episode], list[Item]],
    conditions: Sequence[str],
    *,
    model: Any = None,
    tokenizer: Any = None,
    out: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    meta: dict[str, Any] | None = None,
    extra_columns: Sequence[str] = (),
    validate_model: Callable[[Any], None] | None = None,
    executor: Any = None,
) -> pd.DataFrame:
    """Run (or resume) an experiment and return its tidy rows.

    Args:
        cfg: The experiment's config dataclass: ``model``, ``task``, ``seeds``, ``k``,
            ``n_test``, ``scoring``, ``engine``, ``batch_size``, ``chunk_examples``, ``dtype``,
            ``device``, ``data_source`` and an ``identity()`` method.
        build_items: One episode (a chunk of its test examples) → items, each with
            ``meta["seed"]`` and a ``condition`` from ``conditions``.
        conditions: Every condition a test example gets (the expected rows).
        model, tokenizer: A loaded bridge and its tokenizer (loaded from ``cfg.model`` if None).
        out: CSV path; rows are appended as they are computed and a rerun resumes.
        progress: Show a tqdm progress bar.
        log: Where notes go (data source, resume state); ``None``: :func:`print_note` (stdout).
        meta: Extra provenance for the sidecar.
        extra_columns: Columns taken from ``item.meta`` (e.g. removed-token counts).
        validate_model: Extra checks against the loaded model (e.g. layers/heads in range),
            run before any output is created.
        executor: ``None``: score here; a
            :class:`~icl_tokens.executors.ray_executor.RayExecutor`: score the work units on its
            workers, which load ``cfg`` 's model themselves (so ``model`` must be None); the rows
            are the same.
    """

    from ..models import library_versions

    log = print_note if log is None else log
    conditions = list(conditions)
    task, data, episodes, shard_plan = _plan(cfg, conditions, log)
    expected = {(str(e.seed), t.id, c) for e in episodes for t in e.tests for c in conditions}
    columns = result_columns(task, extra_columns)
    device, facts = _device(cfg, model, executor)
    identity = run_identity(cfg, task, data, device)
    sidecar_meta = {**(meta or {}), "versions": library_versions(),
                    "config": dataclasses.asdict(cfg),
                    **({"shard_plan": shard_plan} if shard_plan is not None else {})}
    note = data_note(data, cfg.model, cfg.seeds, cfg.n_test)
    store: ResultsFile | None = None
    if out is not None and Path(out).exists():  # resume: nothing is created
        store = ResultsFile(out, columns, identity, sidecar_meta, expected_keys=expected)
        for n in store.notes:
            log(f"{store.path}: {n}")
        if expected <= store.done:
            log(f"{store.path}: complete ({len(store.done)} rows); nothing to do")
            store.close()
            return _with_note(read_rows(out), note)
    try:
        model, tokenizer, info = _model(cfg, model, tokenizer, executor, validate_model, facts)
        if out is not None and store is None:
            store = ResultsFile(out, columns, identity, sidecar_meta, expected_keys=expected)
        if store is not None:
            store.update_meta({"model_info": info})
            if store.done:
                log(f"{store.path}: resuming, {len(store.done)} of {len(expected)} rows done")
        if executor is None:
            rows = _score_all(cfg, task, data, episodes, conditions, model, tokenizer,
                              build_items, store, progress, log, extra_columns, len(expected))
        else:
            rows = _score_remote(executor, cfg, task, data, episodes, conditions, build_items,
                                 store, progress, log, extra_columns)
        if store is not None:  # a resumed or repaired file: the rows of an uninterrupted run
            store.canonicalize([(e.seed, t.id, c) for e in episodes for t in e.tests
                                for c in conditions])
    except BaseException:
        if store is not None:
            store.discard_if_empty()
        raise
    finally:
        if store is not None:
            store.close()
    return _with_note(read_rows(out) if out is not None else pd.DataFrame(rows, columns=columns),
                      note)


def _with_note(df: pd.DataFrame, note: str) -> pd.DataFrame:
    df.attrs["data"] = note
    return df


def _plan(cfg: Any, conditions: list[str], log: Callable[[str], None]
          ) -> tuple[TaskSpec, TaskData, list[Episode], Any]:
    """The task, its data, the run's episodes (only this shard's work units when sharded) and
    the shard plan."""
    task = load_task(cfg.task)
    data = load_task_data(task, source=cfg.data_source)
    log(f"data: {data.source} ({data.location}); {data.notes}")
    episodes = [sample_episode(data, s, k=cfg.k, n_test=cfg.n_test) for s in cfg.seeds]
    shard_plan = None
    if getattr(cfg, "shard", None) is not None:
        from ..results.shard import run_plan, shard_episodes

        shard_plan = run_plan(episodes, conditions, cfg.chunk_examples)
        episodes = shard_episodes(episodes, cfg.shard, cfg.chunk_examples)
    return task, data, episodes, shard_plan


def _device(cfg: Any, model: Any, executor: Any) -> tuple[str, dict[str, Any]]:
    """Where the rows are computed (in the identity), and an executor's facts."""
    from ..models import check_device

    if executor is not None:
        if model is not None:
            raise ValueError("a remote executor's workers load the model from cfg.model; pass "
                             "model=None (and tokenizer=None) with executor=.")
        facts = executor.start(cfg)
        return facts["device"], facts
    if model is not None:
        return str(next(model.parameters()).device), {}
    return check_device(cfg.device), {}


def _model(cfg: Any, model: Any, tokenizer: Any, executor: Any,
           validate_model: Callable[[Any], None] | None, facts: dict[str, Any]
           ) -> tuple[Any, Any, dict[str, Any]]:
    """The model and tokenizer here (none with an executor), checked, and the model info."""
    from ..models import model_info

    if executor is not None:
        if validate_model is not None:
            executor.call(model_check, validate_model)
        return None, None, facts["model_info"]
    model, tokenizer = model_for(cfg, model, tokenizer)
    if validate_model is not None:
        validate_model(model)
    return model, tokenizer, model_info(model)


def run_config(cfg: Any, *, model: Any = None, tokenizer: Any = None,
               out: str | Path | None = None, progress: bool = True,
               log: Callable[[str], None] | None = None, meta: dict[str, Any] | None = None,
               executor: Any = None) -> pd.DataFrame:
    """Run (or resume) the experiment a config declares and return its tidy rows.

    The config supplies everything: its conditions (``cfg.conditions``), how an episode becomes
    items (``cfg.build_items``), the columns its rows add (``cfg.extra_columns()``), checks
    before any output (``cfg.prepare()``, ``cfg.check_model``) and sidecar provenance
    (``cfg.sidecar_meta()``). Arguments as in :func:`run_experiment`.
    """
    cfg.prepare()
    return run_experiment(cfg, cfg.build_items, cfg.condition_names(), model=model,
                          tokenizer=tokenizer, out=out, progress=progress, log=log,
                          meta={**(meta or {}), **cfg.sidecar_meta()},
                          extra_columns=cfg.extra_columns(), validate_model=cfg.check_model,
                          executor=executor)


def test_chunks(cfg: Any, episodes: Sequence[Episode], conditions: Sequence[str],
                store: ResultsFile | None) -> list[Episode]:
    """The run's work units in order: per episode, blocks of ``cfg.chunk_examples`` of the test
    examples that still lack a row (each a copy of the episode holding only that block)."""
    out = []
    for ep in episodes:
        tests = [t for t in ep.tests if store is None
                 or not all(store.is_done(ep.seed, t.id, c) for c in conditions)]
        for s in range(0, len(tests), cfg.chunk_examples):
            out.append(dataclasses.replace(ep, tests=tuple(tests[s : s + cfg.chunk_examples])))
    return out


def score_chunk(cfg: Any, ctx: RunContext, chunk: Episode,
                build_items: Callable[[RunContext, Episode], list[Item]],
                is_done: Callable[[int, str, str], bool], sizer: BatchSize,
                prefix_cache: PrefixCache, extra: Sequence[str] = (),
                progress: Callable[[int], Any] | None = None) -> tuple[list[dict[str, Any]], int]:
    """The tidy rows of one work unit (rows ``is_done`` names are skipped) and how many of its
    prompts are longer than the model's sliding window; the same code locally and on a worker."""
    items = build_items(ctx, chunk)
    window = sliding_window(ctx.model)
    long_prompts = sum(len(it) > window for it in items) if window is not None else 0
    items = [it for it in items if not is_done(chunk.seed, it.example_id, it.condition)]
    res = score_items(ctx.model, ctx.tokenizer, items, scoring=cfg.scoring, engine=cfg.engine,
                      batch_size=sizer, prefix_cache=prefix_cache, progress=progress)
    return [result_row(cfg, ctx.task, r, extra) for r in res], long_prompts


def log_scoring_notes(notes: Sequence[str], long_prompts: int, window: int | None,
                      log: Callable[[str], None]) -> None:
    """The notes of a run's scoring: batch halvings and prompts past the sliding window."""
    for note in notes:
        log(f"note: {note}")
    if long_prompts:
        log(f"note: {long_prompts} scored prompts are longer than the model's sliding window "
            f"({window} tokens): its local-attention layers already hide the farthest keys "
            "(see the n_tokens column).")


def _score_all(cfg: Any, task: TaskSpec, data: TaskData, episodes: list[Episode],
               conditions: list[str], model: Any, tokenizer: Any,
               build_items: Callable[[RunContext, Episode], list[Item]],
               store: ResultsFile | None, progress: bool, log: Callable[[str], None],
               extra: Sequence[str], total: int) -> list[dict[str, Any]]:
    ctx = RunContext(task, data, tokenizer, LabelSet.for_task(task, tokenizer), model)
    sizer = BatchSize.of(cfg.batch_size)  # one per run: a size halved on out-of-memory stays
    is_done = store.is_done if store is not None else (lambda *key: False)
    long_prompts = 0
    rows: list[dict[str, Any]] = []
    cache, cache_seed = PrefixCache(), None  # one per episode
    bar = _progress(total, len(store.done) if store else 0, progress)
    try:
        for chunk in test_chunks(cfg, episodes, conditions, store):
            if chunk.seed != cache_seed:
                cache, cache_seed = PrefixCache(), chunk.seed
            new, n_long = score_chunk(cfg, ctx, chunk, build_items, is_done, sizer, cache,
                                      extra, bar.update if bar else None)
            long_prompts += n_long
            if store is not None:
                store.append(new)
            rows.extend(new)
    finally:
        if bar:
            bar.close()
    log_scoring_notes(sizer.notes, long_prompts, sliding_window(model), log)
    return rows


def on_model(executor: Any, model: Any, tokenizer: Any, fn: Callable[..., Any],
             *args: Any) -> Any:
    """``fn(model, tokenizer, *args)`` where the run's model is: here (``executor`` None) or on
    the first worker of a started remote executor (``fn`` module-level, ``args`` picklable)."""
    return fn(model, tokenizer, *args) if executor is None else executor.call(fn, *args)


def model_check(model: Any, tokenizer: Any, check: Callable[[Any], None]) -> None:
    """``check(model)`` (for :func:`on_model`: a config's ``check_model`` on a worker)."""
    check(model)


def layer_count(model: Any, tokenizer: Any) -> int:
    """The model's layer count (for :func:`on_model`)."""
    return int(model.cfg.n_layers)


def _score_remote(executor: Any, cfg: Any, task: TaskSpec, data: TaskData,
                  episodes: list[Episode], conditions: list[str],
                  build_items: Callable[[RunContext, Episode], list[Item]],
                  store: ResultsFile | None, progress: bool, log: Callable[[str], None],
                  extra: Sequence[str]) -> list[dict[str, Any]]:
    """Score the run's units on ``executor`` 's workers; each unit's rows are appended to
    ``store`` (here, on the driver) as it completes. Returns the rows in the run's order."""
    chunks = test_chunks(cfg, episodes, conditions, store)
    dones = [frozenset((t.id, c) for t in ch.tests for c in conditions
                       if store is not None and store.is_done(ch.seed, t.id, c))
             for ch in chunks]
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    long_prompts = 0

    def on_result(res: Any) -> None:
        nonlocal long_prompts
        if store is not None:
            store.append(res.rows)
        rows.extend(res.rows)
        notes.extend(res.notes)
        long_prompts += res.long_prompts

    executor.score_units(cfg, build_items, task, data, extra, chunks, dones, on_result,
                         progress)
    window = executor.call(_window) if long_prompts else None
    log_scoring_notes(notes, long_prompts, window, log)
    order = {(str(e.seed), t.id, c): i for i, (e, t, c) in enumerate(
        (e, t, c) for e in episodes for t in e.tests for c in conditions)}
    return sorted(rows, key=lambda r: order[(str(r["seed"]), r["example_id"], r["condition"])])


def _window(model: Any, tokenizer: Any) -> int | None:
    return sliding_window(model)
