"""Scoring a run's work units on a Ray cluster.

:class:`RayExecutor` starts one actor per worker (:class:`~icl_tokens.executors.worker.ModelWorker`,
``num_cpus`` / ``num_gpus`` each), which loads the model once and scores units with the local
run's code. The driver hands each actor at most ``in_flight`` units at a time, appends each unit's
rows to the run's results file as the unit completes (the file has one writer: the driver), and
the runner puts the rows in canonical order at the end, so the file equals a local run's row for
row.

Faults: an actor whose process dies is restarted (``max_restarts``) and the unit it held is
recomputed (``max_task_retries``); the driver appends a unit's rows only when the unit has
completed, so nothing is lost or written twice. A unit that raises (bad input) is not retried:
the run stops with that error. A driver that is interrupted leaves the rows of every completed
unit in its CSV, and the same command resumes from them.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .worker import ModelSpec, ModelWorker, UnitResult, model_spec

__all__ = ["RayExecutor", "WorkerStats", "require_ray"]

#: Environment variables a worker inherits from the driver (data, caches, offline switches).
ENV_PREFIXES = ("ICL_TOKENS_", "HF_", "TRANSFORMERS_", "TRANSFORMERLENS_")


def require_ray() -> Any:
    """The ``ray`` module, or a one-line error naming the install command."""
    try:
        import ray
    except ModuleNotFoundError:
        raise ModuleNotFoundError("--executor ray needs Ray: pip install 'icl_tokens[ray]' (or "
                                  "pip install ray); or use --executor local.") from None
    return ray


@dataclass
class WorkerStats:
    """Where one worker's time went: units, rows, seconds scoring, its processes and hosts."""

    units: int = 0
    rows: int = 0
    seconds: float = 0.0
    pids: set[int] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)


class RayExecutor:
    """Score work units on Ray actors that each hold the model (see the module docstring).

    Args:
        address: ``None`` starts a local cluster on this machine (unless Ray is initialized
            already); ``"auto"`` or ``"HOST:PORT"`` joins a running one.
        workers: Actors to start (default: as many as the cluster's CPUs, or GPUs when each
            worker takes a GPU, allow).
        num_cpus, num_gpus: Resources each worker asks for (``num_gpus`` defaults to 1 for a
            ``cuda`` run, else 0).
        max_restarts: How often a dead worker is restarted (and its unit retried).
        in_flight: Units queued on each worker at a time.
        on_unit: Called on the driver with each :class:`UnitResult` after its rows are written.
        log: Where the per-worker summary goes.
    """

    def __init__(self, address: str | None = None, *, workers: int | None = None,
                 num_cpus: float = 1.0, num_gpus: float | None = None, max_restarts: int = 3,
                 in_flight: int = 2, on_unit: Callable[[UnitResult], None] | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}.")
        if in_flight < 1 or max_restarts < 0:
            raise ValueError("in_flight must be >= 1 and max_restarts >= 0.")
        self.address, self.workers = address, workers
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.max_restarts, self.in_flight = max_restarts, in_flight
        self.on_unit = on_unit
        self.log = log or (lambda s: print(s, flush=True))
        self.runs: list[dict[str, Any]] = []  # per scored run: wall, units, rows, workers
        self._spec: ModelSpec | None = None
        self._facts: dict[str, Any] = {}
        self._actors: list[Any] = []
        self._owns_ray = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- the pool ---------------------------------------------------------------------------

    def start(self, cfg: Any) -> dict[str, Any]:
        """Start the workers for ``cfg`` 's model (once; a later run must use the same model,
        device and dtype) and return the first worker's ``device`` and ``model_info``."""
        spec = model_spec(cfg)
        if self._actors:
            if spec != self._spec:
                raise ValueError(f"this Ray executor's workers hold {self._spec}; a run of "
                                 f"{spec} needs its own executor.")
            return self._facts
        ray = require_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
            self._owns_ray = True
        gpus = self.num_gpus if self.num_gpus is not None else float(
            str(spec.device or "").startswith("cuda"))
        actor = ray.remote(ModelWorker).options(
            num_cpus=self.num_cpus, num_gpus=gpus, max_restarts=self.max_restarts,
            max_task_retries=self.max_restarts, runtime_env={"env_vars": _env()})
        self._spec = spec
        n = self.workers or _capacity(ray, self.num_cpus, gpus)
        _check_fits(ray, n, self.num_cpus, gpus, self.log)
        self._actors = [actor.remote(spec) for _ in range(n)]
        facts = self._get([a.facts.remote() for a in self._actors])
        devices = sorted({f["device"] for f in facts})
        if len(devices) > 1:
            self.close()
            raise ValueError(f"the Ray workers put the model on different devices {devices}; "
                             "give --device so every worker uses the same kind.")
        self._facts = facts[0]
        self.log(f"ray: {len(facts)} worker(s) loaded {spec.model} on {devices[0]} "
                 f"({max(f['load_s'] for f in facts):.1f} s at most)")
        return self._facts

    def close(self) -> None:
        """Stop the workers (and the local cluster this executor started)."""
        if not self._actors and not self._owns_ray:
            return
        ray = require_ray()
        for a in self._actors:
            ray.kill(a, no_restart=True)
        self._actors, self._spec, self._facts = [], None, {}
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(model, tokenizer, *args)`` on the first worker (e.g. model checks), with the
        driver's current data and cache variables."""
        return self._get([self._actors[0].call.remote(fn, _env(), *args)])[0]

    def _get(self, refs: list[Any]) -> list[Any]:
        ray = require_ray()
        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError as e:
            self.close()
            raise _cause(e) from None
        except ray.exceptions.RayActorError as e:
            self.close()
            raise RuntimeError(f"a Ray worker died and was not restarted (max_restarts="
                               f"{self.max_restarts}): {_first_line(e)}") from None

    # --- units ------------------------------------------------------------------------------

    def score_units(self, cfg: Any, build_items: Callable[..., Any], task: Any, data: Any,
                    extra: Sequence[str], chunks: Sequence[Any],
                    dones: Sequence[frozenset[tuple[str, str]]],
                    on_result: Callable[[UnitResult], None], progress: bool = False) -> None:
        """Score every chunk on the workers; ``on_result`` gets each unit's result on the driver
        as it completes (in completion order)."""
        ray = require_ray()
        run_id = uuid.uuid4().hex
        shared = [ray.put(cfg), ray.put(build_items), ray.put((task, data)), list(extra)]
        self._drive(len(chunks), lambda actor, i: actor.score.remote(
            run_id, i, *shared, chunks[i], dones[i]), on_result, progress, "units")

    def map_units(self, calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]],
                  on_result: Callable[[UnitResult], None], *, progress: bool = False,
                  desc: str = "units") -> None:
        """Run units given as ``(fn, args)`` (:class:`~icl_tokens.aggregation.loop.Unit`
        ``.remote``) on the workers: ``fn(UnitContext, *args)``; ``on_result`` gets each
        :class:`UnitResult` (``index`` = position in ``calls``) as it completes."""
        run_id = uuid.uuid4().hex
        self._drive(len(calls), lambda actor, i: actor.run_unit.remote(
            run_id, i, calls[i][0], calls[i][1]), on_result, progress, desc)

    def _drive(self, n: int, submit_to: Callable[[Any, int], Any],
               on_result: Callable[[UnitResult], None], progress: bool, desc: str) -> None:
        """Keep ``in_flight`` units queued on each worker until all ``n`` are done."""
        if not self._actors:
            raise RuntimeError("the Ray executor has no workers; call start(cfg) first.")
        ray = require_ray()
        queue, pending = deque(range(n)), {}
        stats = [WorkerStats() for _ in self._actors]
        t0, rows = time.perf_counter(), 0
        bar = _bar(n, progress, desc)

        def submit(a: int) -> None:
            pending[submit_to(self._actors[a], queue.popleft())] = a

        try:
            for a in range(len(self._actors)):
                for _ in range(self.in_flight):
                    if queue:
                        submit(a)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                a = pending.pop(ready[0])
                res = self._get(ready)[0]
                on_result(res)
                rows += len(res.rows)
                _count(stats[a], res)
                if self.on_unit is not None:
                    self.on_unit(res)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"{rows / (time.perf_counter() - t0):.1f} rows/s")
                if queue:
                    submit(a)
        finally:
            if bar is not None:
                bar.close()
        self._summary(n, rows, time.perf_counter() - t0, stats)

    def _summary(self, units: int, rows: int, wall: float, stats: list[WorkerStats]) -> None:
        busy = sum(s.seconds for s in stats)
        self.runs.append({"units": units, "rows": rows, "wall_s": wall, "busy_s": busy,
                          "workers": [vars(s) for s in stats]})
        if not units:
            return
        self.log(f"ray: {units} unit(s), {rows} rows in {wall:.1f} s ({rows / wall:.1f} rows/s); "
                 f"workers busy {busy:.1f} s of {wall * len(stats):.1f} s")
        for i, s in enumerate(stats):
            where = ", ".join(f"pid {p}" for p in sorted(s.pids)) or "idle"
            self.log(f"ray worker {i + 1} ({where} on {', '.join(sorted(s.hosts)) or '-'}): "
                     f"{s.units} unit(s), {s.rows} rows, {s.seconds:.1f} s scoring")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}


def _capacity(ray: Any, num_cpus: float, num_gpus: float) -> int:
    """How many workers the cluster's resources hold (at least one)."""
    res = ray.cluster_resources()
    n = res.get("GPU", 0) / num_gpus if num_gpus else res.get("CPU", 1) / max(num_cpus, 1e-9)
    return max(1, int(n))


def _check_fits(ray: Any, n: int, num_cpus: float, num_gpus: float,
                log: Callable[[str], None]) -> None:
    """Refuse workers the whole cluster cannot hold (they would wait forever); note when they
    must wait for resources other work holds now."""
    total, free = ray.cluster_resources(), ray.available_resources()
    for what, each in (("CPU", num_cpus), ("GPU", num_gpus)):
        if each and n * each > total.get(what, 0) + 1e-9:
            raise ValueError(f"{n} Ray worker(s) x {each:g} {what} do not fit the cluster's "
                             f"{total.get(what, 0):g} {what}; give fewer --ray-workers or less "
                             f"--ray-{what.lower()}s.")
        if each and n * each > free.get(what, 0) + 1e-9:
            log(f"ray: {n} worker(s) x {each:g} {what} wait for {what}s that other work holds "
                f"({free.get(what, 0):g} free)")


def _count(s: WorkerStats, res: UnitResult) -> None:
    s.units += 1
    s.rows += len(res.rows)
    s.seconds += res.seconds
    s.pids.add(res.pid)
    s.hosts.add(res.host)


def _bar(total: int, enabled: bool, desc: str = "units") -> Any:
    if not enabled or not total:
        return None
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="unit", file=sys.stderr)


def _cause(e: Any) -> BaseException:
    """The exception a unit raised on its worker (a ValueError stays a ValueError with its
    one-line message), not Ray's wrapper with the remote traceback."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException):
        return cause
    return RuntimeError(_first_line(e))


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__
