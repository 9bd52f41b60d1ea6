"""The resumable loop of the ``probe`` and ``attention`` runs.

A run is a list of :class:`Unit` s, each a piece of work that writes a known set of rows keyed by
``(seed, example_id, condition)``. :func:`run_units` skips the units whose rows are already in the
store, computes the others, checks their rows and appends them (one ``write()`` per unit), and
calls ``on_unit`` after each, so a killed run rerun with the same arguments computes only what
is missing. :func:`prepare_run` validates the task, data and device and builds the run's identity
before any output exists; :func:`open_store` opens (or resumes) the
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

__all__ = ["RunSetup", "Unit", "prepare_run", "open_store", "run_units", "check_paths",
           "chunks", "stderr_log", "knockout_set"]

Key = tuple[str, str, str]
Log = Callable[[str], None]


def stderr_log(text: str) -> None:
    """The default ``log``: one line on stderr."""
    print(text, file=sys.stderr)


@dataclass
class RunSetup:
    """What a run validated before any output: the task, its data, the device, the identity
    (what a resumed file must match) and the sidecar's provenance."""

    task: TaskSpec
    data: TaskData
    device: str
    identity: dict[str, Any]
    sidecar: dict[str, Any]


@dataclass(frozen=True)
class Unit:
    """One piece of work: its ``label`` (for progress and ``on_unit``), the ``keys`` of the rows
    it writes, and ``compute`` (returns those rows)."""

    label: str
    keys: frozenset[Key]
    compute: Callable[[], list[dict[str, Any]]]


def check_paths(paths: Mapping[str, Path | None]) -> None:
    """Refuse every output path that cannot be written (option name → path), creating nothing;
    call it before the model loads."""
    for option, path in paths.items():
        if path is not None:
            check_output_path(Path(path), "run.csv", option=option)


def prepare_run(cfg: Any, model: Any = None, log: Log = stderr_log) -> RunSetup:
    """Load the task and its data (logged), resolve the device (``model`` 's when given), and
    build the identity: ``cfg.identity()`` plus the task's content hash, the data and device."""
    from ..data import load_task_data
    from ..experiments.runner import task_hash
    from ..models import check_device, library_versions
    from ..tasks import load_task

    task = load_task(cfg.task)
    data = load_task_data(task, source=cfg.data_source)
    log(f"data: {data.source} ({data.location}); {data.notes}")
    device = (str(next(model.parameters()).device) if model is not None
              else check_device(cfg.device))
    identity = {**cfg.identity(), "task_sha256": task_hash(task),
                "resolved_data_source": data.source, "data_location": data.location,
                "device": device}
    sidecar = {"versions": library_versions(), "config": dataclasses.asdict(cfg)}
    return RunSetup(task, data, device, identity, sidecar)


@contextlib.contextmanager
def open_store(path: Path | None, columns: Sequence[str], identity: Mapping[str, Any],
               sidecar: Mapping[str, Any], expected: set[Key], model: Any,
               log: Log = stderr_log) -> Iterator[ResultsFile | None]:
    """The run's :class:`~icl_tokens.results.ResultsFile` (``None`` without a path), locked
    until the block ends; a block that fails before any row was written leaves no file."""
    if path is None:
        yield None
        return
    from ..models import model_info

    with ResultsFile(path, columns, identity, sidecar, expected_keys=expected) as store:
        for note in store.notes:
            log(f"{store.path}: {note}")
        store.update_meta({"model_info": model_info(model)})
        if store.done:
            log(f"{store.path}: resuming, {len(store.done)} of {len(expected)} rows done")
        yield store


def run_units(store: ResultsFile | None, units: Sequence[Unit], *,
              check: Callable[[list[dict[str, Any]]], None] | None = None,
              on_unit: Callable[[str], None] | None = None, progress: bool = False,
              desc: str = "units") -> list[dict[str, Any]]:
    """Compute the units whose rows are not all in ``store`` and append their rows.

    Args:
        store: Where rows go (``None``: every unit runs and the rows are only returned).
        units: The work, in order.
        check: Validates a unit's rows before they are written (raise to refuse them).
        on_unit: Called with a unit's label once its rows are written.
        progress: A tqdm bar over the units to compute.
        desc: The bar's label.

    Returns:
        The rows computed by this call.
    """
    todo = [u for u in units if store is None or not u.keys <= store.done]
    bar = _bar(len(todo), desc, progress)
    out: list[dict[str, Any]] = []
    try:
        for unit in todo:
            rows = unit.compute()
            stray = {_key(r) for r in rows} - unit.keys
            if stray:
                raise RuntimeError(f"unit {unit.label} computed rows it does not own: "
                                   f"{sorted(stray)[:3]}")
            if check is not None:
                check(rows)
            if store is not None:
                store.append(rows)
            out.extend(rows)
            if bar is not None:
                bar.update(1)
            if on_unit is not None:
                on_unit(unit.label)
    finally:
        if bar is not None:
            bar.close()
    return out


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
