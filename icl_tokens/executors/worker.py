"""The worker side of a remote executor: one process that loads the model once and scores
work units with the same code as a local run (:func:`~icl_tokens.experiments.runner.score_chunk`).

Nothing here imports Ray; :class:`ModelWorker` becomes a Ray actor in
:mod:`icl_tokens.executors.ray_executor`.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Sequence

__all__ = ["ModelSpec", "ModelWorker", "UnitResult", "model_spec"]


@dataclass(frozen=True)
class ModelSpec:
    """What a worker loads: the model name or folder, device (or device map) and dtype."""

    model: str
    device: str | None
    dtype: str
    device_map: str | None = None


def model_spec(cfg: Any) -> ModelSpec:
    """The :class:`ModelSpec` of a run config (a spec stays itself)."""
    if isinstance(cfg, ModelSpec):
        return cfg
    return ModelSpec(str(cfg.model), cfg.device, cfg.dtype, getattr(cfg, "device_map", None))


@dataclass
class UnitResult:
    """A scored unit: its rows, where and how long it ran, and its scoring notes."""

    index: int
    rows: list[dict[str, Any]]
    seconds: float
    pid: int
    host: str
    long_prompts: int
    notes: list[str]


class ModelWorker:
    """Holds one loaded model and tokenizer; scores units and runs functions against them."""

    def __init__(self, spec: ModelSpec) -> None:
        import torch

        from ..experiments.runner import model_for

        t0 = time.perf_counter()
        self.model, self.tokenizer = model_for(SimpleNamespace(**vars(spec)))
        torch.set_grad_enabled(False)
        self.load_s = time.perf_counter() - t0
        self._run: Any = None
        self._ctx: Any = None
        self._cache: tuple[Any, Any] = (None, None)
        self._sizer: Any = None
        self._unit_ctx: Any = None

    def facts(self) -> dict[str, Any]:
        """The device, model info, process id, host and model load time of this worker."""
        from ..models import model_info

        device = str(next(self.model.parameters()).device)
        return {"device": device, "model_info": model_info(self.model), "pid": os.getpid(),
                "host": socket.gethostname(), "load_s": self.load_s}

    def call(self, fn: Callable[..., Any], env: dict[str, str], *args: Any) -> Any:
        """``fn(model, tokenizer, *args)`` on this worker, with the driver's current ``env``
        (data folder, caches) set first."""
        os.environ.update(env)
        return fn(self.model, self.tokenizer, *args)

    def run_unit(self, run_id: str, index: int, fn: Callable[..., Any],
                 args: tuple[Any, ...]) -> UnitResult:
        """The rows of a unit given as a module-level ``fn(UnitContext, *args)``
        (:class:`~icl_tokens.aggregation.loop.Unit` ``.remote``); the context's ``state`` lives
        as long as the run."""
        from ..aggregation.loop import UnitContext

        t0 = time.perf_counter()
        if self._run != run_id or self._unit_ctx is None:
            self._run = run_id
            self._unit_ctx = UnitContext(self.model, self.tokenizer)
        rows = fn(self._unit_ctx, *args)
        return UnitResult(index, rows, time.perf_counter() - t0, os.getpid(),
                          socket.gethostname(), 0, [])

    def score(self, run_id: str, index: int, cfg: Any, build_items: Callable[..., Any],
              task_data: tuple[Any, Any], extra: Sequence[str], chunk: Any,
              done: frozenset[tuple[str, str]]) -> UnitResult:
        """The rows of one unit (``done``: its ``(example_id, condition)`` pairs already
        written, which are skipped)."""
        from ..engine.items import LabelSet
        from ..engine.prefix_cache import PrefixCache
        from ..engine.scoring import BatchSize
        from ..experiments.runner import RunContext, score_chunk

        t0 = time.perf_counter()
        if self._run != run_id or self._ctx is None:  # a new run: context, sizer, caches
            task, data = task_data
            self._run = run_id
            self._ctx = RunContext(task, data, self.tokenizer,
                                   LabelSet.for_task(task, self.tokenizer), self.model)
            self._sizer = BatchSize.of(cfg.batch_size)
            self._cache = (None, None)
        if self._cache[0] != chunk.seed:  # one prefix cache per episode, as in a local run
            self._cache = (chunk.seed, PrefixCache())
        rows, long_prompts = score_chunk(
            cfg, self._ctx, chunk, build_items,
            lambda seed, ex, cond: (ex, cond) in done, self._sizer, self._cache[1], extra)
        notes = list(self._sizer.notes)
        self._sizer.notes.clear()
        return UnitResult(index, rows, time.perf_counter() - t0, os.getpid(),
                          socket.gethostname(), long_prompts, notes)
