"""Argument types that refuse bad input and the option groups several sub-commands share.

Index lists (``--layers``, ``--heads``, ``--seeds``) never silently drop or reorder anything: a
backwards range or a repeated index is an error.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, Callable, TypeVar

T = TypeVar("T")

__all__ = ["executor_from_args", "with_executor"]


def _seeds(text: str) -> list[int]:
    """``"0,1,2"`` → ``[0, 1, 2]``; ranges ``0-4`` allowed; duplicates and negatives refused."""
    seeds = _int_list(text, allow_negative=False, what="--seeds")
    return seeds


def _int_list(text: str, *, allow_negative: bool = True, what: str = "index list") -> list[int]:
    """``"0-3,8"`` → ``[0, 1, 2, 3, 8]``; a single negative index (``"-1"``) counts from the end.

    A backwards range (``8-2``) or an index given twice (``0-3,2-1``) is an error, never
    silently reordered or dropped.
    """
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        m = re.fullmatch(r"(-?\d+)(?:-(\d+))?", part)
        if m is None:
            raise argparse.ArgumentTypeError(
                f"{what}: expected integers or ranges like '0-5,8', got {part!r} in {text!r}")
        lo = int(m.group(1))
        if m.group(2) is not None:
            hi = int(m.group(2))
            if lo < 0:
                raise argparse.ArgumentTypeError(
                    f"{what}: ranges take non-negative ends, got {part!r}; list negative "
                    "indices one by one (e.g. -2,-1)")
            if hi < lo:
                raise argparse.ArgumentTypeError(
                    f"{what}: the range {part!r} runs backwards; write {hi}-{lo}")
            values = list(range(lo, hi + 1))
        else:
            values = [lo]
        if not allow_negative and min(values) < 0:
            raise argparse.ArgumentTypeError(f"{what}: negative value in {text!r}")
        twice = sorted(set(values) & set(out))
        if twice:
            raise argparse.ArgumentTypeError(
                f"{what}: {twice} given more than once in {text!r}; give each index once")
        out.extend(values)
    if not out:
        raise argparse.ArgumentTypeError(f"{what}: empty list {text!r}")
    return out


def _int_at_least(text: str, low: int, what: str) -> int:
    """``text`` as an integer >= ``low``, or an argparse error saying ``expected <what>``."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
    return v


def _positive(text: str) -> int:
    return _int_at_least(text, 1, "a positive integer")


def _non_negative(text: str) -> int:
    return _int_at_least(text, 0, "an integer >= 0")


def _shard(text: str) -> str:
    """``--shard K/N`` (1 <= K <= N), checked here so a bad spec fails before anything runs."""
    from ..results.shard import parse_shard

    try:
        return str(parse_shard(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _batch_size(text: str) -> int | str:
    """A positive integer, or ``auto`` (start large, halve on CUDA out-of-memory)."""
    return "auto" if text == "auto" else _positive(text)


def _non_negative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return v


def _add_executor_options(p: argparse.ArgumentParser) -> None:
    """``--executor local|ray`` and the Ray cluster options (docs/scale.md)."""
    p.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="where the run's work units (e.g. a seed and a block of examples) are "
                        "computed: here (local, default) or on Ray workers that each load the "
                        "model once (pip install 'icl_tokens[ray]'); the rows are the same")
    p.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT",
                   help="with --executor ray: join this cluster (default: start a local one)")
    p.add_argument("--ray-workers", type=_positive, default=None,
                   help="with --executor ray: workers to start (default: as many as the "
                        "cluster's CPUs, or GPUs with --device cuda, allow)")
    p.add_argument("--ray-cpus", type=_non_negative_float, default=1.0,
                   help="with --executor ray: CPUs each worker asks for (default 1)")
    p.add_argument("--ray-gpus", type=_non_negative_float, default=None,
                   help="with --executor ray: GPUs each worker asks for (default 1 with "
                        "--device cuda, else 0)")


def _add_common(p: argparse.ArgumentParser, *, many_seeds: bool) -> None:
    p.add_argument("--model", default="gemma-3-270m",
                   help="gemma-3-270m (default, offline), smollm2-135m, a local HF folder "
                        "or a hub id")
    p.add_argument("--task", default="sst2",
                   help="sst2, agnews, trec, dbpedia, rte, cb or a task .json")
    if many_seeds:
        p.add_argument("--seeds", type=_seeds, default=[0], help="comma-separated, e.g. 0,1,2")
    else:
        p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=_non_negative, default=4,
                   help="demonstrations per prompt (default 4)")
    p.add_argument("--n-test", type=_positive, default=None,
                   help="test examples per seed (default: the fixed 500-example subset)")
    p.add_argument("--stopword-variant", default="paper", choices=["paper", "nltk"])
    p.add_argument("--data-source", default=None, choices=["dir", "staicc", "hf"],
                   help="force a data source (default: $ICL_TOKENS_DATA_DIR, then StaICC, then HF)")


def executor_from_args(args: argparse.Namespace, log: Any = None) -> Any:
    """The executor the options name: ``None`` for local, else a Ray executor (a context
    manager); Ray options without ``--executor ray`` are an error."""
    from ..executors import make_executor

    if args.executor != "ray" and (args.ray_cpus != 1.0 or args.ray_gpus is not None):
        raise ValueError("--ray-cpus and --ray-gpus need --executor ray.")
    return make_executor(args.executor, address=args.ray_address, workers=args.ray_workers,
                         num_cpus=args.ray_cpus, num_gpus=args.ray_gpus, log=log)


def with_executor(args: argparse.Namespace, run: Callable[[Any], T], log: Any = None) -> T:
    """``run(executor)`` with the executor the options name (``None`` for local), closed after
    (its workers stopped) however ``run`` ends."""
    executor = executor_from_args(args, log=log)
    if executor is None:
        return run(None)
    with executor:
        return run(executor)
