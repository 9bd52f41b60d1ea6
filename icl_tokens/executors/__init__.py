"""Where a run's work units are scored: in this process (``local``, the default) or on the
workers of a Ray cluster (``ray``; :class:`~icl_tokens.executors.ray_executor.RayExecutor`).

A work unit is one seed and one block of ``chunk_examples`` test examples (the runner's chunks,
:func:`~icl_tokens.experiments.runner.test_chunks`). Either way the rows land in the driver's
resumable results file, written by the driver alone, so a run's output does not depend on where
its units ran.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["EXECUTORS", "make_executor", "check_executor_options"]

#: The executors the command line offers.
EXECUTORS = ("local", "ray")


def check_executor_options(executor: str, address: str | None = None,
                           workers: int | None = None) -> None:
    """Refuse Ray options given without ``--executor ray`` (they would do nothing)."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; use one of {list(EXECUTORS)}.")
    if executor != "ray" and (address is not None or workers is not None):
        raise ValueError("--ray-address and --ray-workers need --executor ray.")


def make_executor(executor: str = "local", *, address: str | None = None,
                  workers: int | None = None, num_cpus: float = 1.0,
                  num_gpus: float | None = None, log: Callable[[str], None] | None = None
                  ) -> Any:
    """``None`` for ``local`` (the runner's own loop), else a
    :class:`~icl_tokens.executors.ray_executor.RayExecutor` (use it as a context manager)."""
    check_executor_options(executor, address, workers)
    if executor == "local":
        return None
    from .ray_executor import RayExecutor

    return RayExecutor(address=address, workers=workers, num_cpus=num_cpus, num_gpus=num_gpus,
                       log=log)
