"""The resumable loop of the ``probe``, ``attention`` and ``atlas`` runs.

A run is a list of :class:`Unit` s, each a piece of work that writes a known set of rows keyed by
``(seed, example_id, condition)``. :func:`run_units` skips the units whose rows are already in the
store, computes the others, checks their rows and appends them (one ``write()`` per unit), and
calls ``on_unit`` after each, so a killed run rerun with the same arguments computes only what
is missing.

A unit computes either here (``compute``) or, given an executor, on a remote worker that holds
the model: then it names a module-level function and plain-data arguments (``remote``), called
as ``fn(UnitContext, *args)`` there; the rows still land in this process's store, in completion
order, and the run puts them in canonical order at the end.

:func:`prepare_run` validates the task, data and device and builds the run's identity before any
output exists; :func:`open_store` opens (or resumes) the
:class:`~icl_tokens.results.ResultsFile`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from ..data import TaskData
from ..results import ResultsFile, check_output_path
from ..tasks import TaskSpec

__all__ = ["RunSetup", "Unit", "UnitContext", "prepare_run", "open_store", "run_units",
           "check_paths", "chunks", "stderr_log", "knockout_set"]

Key = tuple[str, str, str]
Log = Callable[[str], None]


def stderr_log(text: str) -> None:
    """The default ``log``: one line on stderr."""
    print(text, file=sys.stderr)


@dataclass
class RunSetup:
    """What a run validated before any output: the task, its data, the device, the identity
    (what a resumed file must match), the sidecar's provenance, and with an executor the facts
    its workers reported (``device``, ``model_info``)."""

    task: TaskSpec
    data: TaskData
    device: str
    identity: dict[str, Any]
    sidecar: dict[str, Any]
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)

    def model_info(self, model: Any) -> dict[str, Any]:
        """The run's model info: the workers' (with an executor), else ``model`` 's."""
        from ..models import model_info

        return dict(self.facts["model_info"]) if self.facts else model_info(model)

    def model_here(self, cfg: Any, model: Any, tokenizer: Any) -> tuple[Any, Any]:
        """The model and tokenizer in this process: both loaded (or given) for a local run; with
        an executor no model (the workers hold it) and the tokenizer only."""
        if not self.facts:
            from ..experiments.runner import model_for

            return model_for(cfg, model, tokenizer)
        from ..models import load_tokenizer

        return None, tokenizer if tokenizer is not None else load_tokenizer(cfg.model)


@dataclass
class UnitContext:
    """What a unit function gets: the model and tokenizer of the process it runs in, and a
    ``state`` dict that lives as long as the run does there (e.g. one prefix cache per seed)."""

    model: Any
    tokenizer: Any
    state: dict[Any, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Unit:
    """One piece of work: its ``label`` (for progress and ``on_unit``), the ``keys`` of the rows
    it writes, and how to compute them: ``compute()`` here, or ``remote = (fn, args)``, a
    module-level ``fn(UnitContext, *args)`` with picklable ``args`` that an executor's worker
    (or this process, given a context) can call; ``then`` (optional) turns what ``fn`` returned
    into the rows in this process (e.g. saves captured arrays and returns their index rows)."""

    label: str
    keys: frozenset[Key]
    compute: Callable[[], list[dict[str, Any]]] | None = None
    remote: tuple[Callable[..., Any], tuple[Any, ...]] | None = None
    then: Callable[[Any], list[dict[str, Any]]] | None = None

    def __post_init__(self) -> None:
        if (self.compute is None) == (self.remote is None):
            raise ValueError(f"unit {self.label}: give exactly one of compute and remote.")

    def run_here(self, ctx: UnitContext | None) -> list[dict[str, Any]]:
        """The unit's rows, computed in this process (``ctx``: for a ``remote`` unit)."""
        if self.compute is not None:
            return self.compute()
        if ctx is None:
            raise ValueError(f"unit {self.label} needs a UnitContext (a model) to run here.")
        fn, args = self.remote  # type: ignore[misc]
        return self.rows_of(fn(ctx, *args))

    def rows_of(self, result: Any) -> list[dict[str, Any]]:
        """The rows of what ``remote`` 's function returned (``then`` applied)."""
        return result if self.then is None else self.then(result)


def check_paths(paths: Mapping[str, Path | None]) -> None:
    """Refuse every output path that cannot be written (option name → path), creating nothing;
    call it before the model loads."""
    for option, path in paths.items():
        if path is not None:
            check_output_path(Path(path), "run.csv", option=option)


def prepare_run(cfg: Any, model: Any = None, log: Log = stderr_log,
                executor: Any = None) -> RunSetup:
    """Load the task and its data (logged), resolve the device (``model`` 's when given, the
    workers' with an ``executor``, which is started here), and build the identity:
    ``cfg.identity()`` plus the task's content hash, the data and device."""
    from ..data import load_task_data
    from ..experiments.runner import task_hash
    from ..models import check_device, library_versions
    from ..tasks import load_task

    if executor is not None and model is not None:
        raise ValueError("a remote executor's workers load the model from cfg.model; pass "
                         "model=None (and tokenizer=None) with executor=.")
    task = load_task(cfg.task)
    data = load_task_data(task, source=cfg.data_source)
    log(f"data: {data.source} ({data.location}); {data.notes}")
    facts = dict(executor.start(cfg)) if executor is not None else {}
    device = (facts["device"] if facts else str(next(model.parameters()).device)
              if model is not None else check_device(cfg.device))
    identity = {**cfg.identity(), "task_sha256": task_hash(task),
                "resolved_data_source": data.source, "data_location": data.location,
                "device": device}
    sidecar = {"versions": library_versions(), "config": dataclasses.asdict(cfg)}
    return RunSetup(task, data, device, identity, sidecar, facts)


@contextlib.contextmanager
def open_store(path: Path | None, columns: Sequence[str], identity: Mapping[str, Any],
               sidecar: Mapping[str, Any], expected: set[Key], info: Mapping[str, Any],
               log: Log = stderr_log) -> Iterator[ResultsFile | None]:
    """The run's :class:`~icl_tokens.results.ResultsFile` (``None`` without a path), locked
    until the block ends, with the model ``info`` (:meth:`RunSetup.model_info`) in its sidecar;
    a block that fails before any row was written leaves no file."""
    if path is None:
        yield None
        return
    with ResultsFile(path, columns, identity, sidecar, expected_keys=expected) as store:
        for note in store.notes:
            log(f"{store.path}: {note}")
        store.update_meta({"model_info": dict(info)})
        if store.done:
            log(f"{store.path}: resuming, {len(store.done)} of {len(expected)} rows done")
        yield store


def run_units(store: ResultsFile | None, units: Sequence[Unit], *,
              check: Callable[[list[dict[str, Any]]], None] | None = None,
              on_unit: Callable[[str], None] | None = None, progress: bool = False,
              desc: str = "units", ctx: UnitContext | None = None,
              executor: Any = None) -> list[dict[str, Any]]:
    """Compute the units whose rows are not all in ``store`` and append their rows.

    Args:
        store: Where rows go (``None``: every unit runs and the rows are only returned).
        units: The work, in order.
        check: Validates a unit's rows before they are written (raise to refuse them).
        on_unit: Called with a unit's label once its rows are written.
        progress: A tqdm bar over the units to compute.
        desc: The bar's label.
        ctx: The model here, for ``remote`` units run in this process.
        executor: Run the units on its workers (every unit must be ``remote``); a
            :class:`~icl_tokens.executors.ray_executor.RayExecutor` started for the run's model.

    Returns:
        The rows computed by this call, in the units' order.
    """
    todo = [u for u in units if store is None or not u.keys <= store.done]
    done: dict[int, list[dict[str, Any]]] = {}

    def accept(i: int, rows: list[dict[str, Any]]) -> None:
        unit = todo[i]
        stray = {_key(r) for r in rows} - unit.keys
        if stray:
            raise RuntimeError(f"unit {unit.label} computed rows it does not own: "
                               f"{sorted(stray)[:3]}")
        if check is not None:
            check(rows)
        if store is not None:
            store.append(rows)
        done[i] = rows
        if on_unit is not None:
            on_unit(unit.label)

    if executor is not None:
        local = [u.label for u in todo if u.remote is None]
        if local:
            raise ValueError(f"unit {local[0]} cannot run on a remote executor (it computes "
                             "with objects of this process); run it with executor=None.")
        executor.map_units([u.remote for u in todo],
                           lambda res: accept(res.index, todo[res.index].rows_of(res.rows)),
                           progress=progress, desc=desc)
    else:
        bar = _bar(len(todo), desc, progress)
        try:
            for i, unit in enumerate(todo):
                accept(i, unit.run_here(ctx))
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    return [r for i in sorted(done) for r in done[i]]


def _key(row: Mapping[str, Any]) -> Key:
    return (str(row["seed"]), str(row["example_id"]), str(row["condition"]))


def _bar(total: int, desc: str, enabled: bool) -> Any:
    if not enabled or not total:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="unit", file=sys.stderr)


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """Consecutive slices of ``size`` (the last may be shorter)."""
    return (items[s:s + size] for s in range(0, len(items), size))


def knockout_set(aggregation: bool) -> dict[str, Any]:
    """Knockout name → knockout of a probe or attention run: ``icl`` (none), and with
    ``aggregation`` the default aggregation block (``agg``)."""
    out: dict[str, Any] = {"icl": None}
    if aggregation:
        from .block import aggregation_knockout

        ko = aggregation_knockout()
        out[ko.name] = ko
    return out
