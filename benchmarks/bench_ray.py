"""Wall time of a run scored locally vs on a local Ray cluster (``--executor ray``), and the
per-unit overhead of the Ray path.

Prints (does not assert), all in one process on this machine:

1. local: model load, then the run (``run_config`` with a results CSV, as ``ablate`` does),
   twice: the first run pays one-time costs (imports, first forwards), the second is warm;
2. Ray with ``--workers`` workers: cluster start, workers start (each loads the model), the run;
3. Ray with one worker: the run; ``(its wall - the local run's wall) / units`` is the per-unit
   overhead of the Ray path against the warm local run (scheduling, shipping the unit and its
   rows, the driver's append), next to the workers' own busy time per unit;
4. whether the Ray rows equal the local rows (largest score difference).

A Ray worker asks for ``--cpus`` CPUs and Ray gives its torch that many threads, while the local
run uses torch's default; the thread counts are printed.

Usage::

    ICL_TOKENS_DATA_DIR=../shared/data python benchmarks/bench_ray.py              # tiny model
    ICL_TOKENS_DATA_DIR=../shared/data python benchmarks/bench_ray.py --model gemma-3-270m \\
        --n-test 4 --conditions icl,zero_shot,-template,-content
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from icl_tokens.experiments.registry import ABLATE_LEVELS
from icl_tokens.experiments.runner import model_for, run_config
from icl_tokens.results.tidy import read_rows


def _cfg(args: argparse.Namespace, model: str):
    return ABLATE_LEVELS["representation"].config(
        model=model, task=args.task, seeds=tuple(args.seeds), k=args.k, n_test=args.n_test,
        scoring=args.scoring, chunk_examples=args.chunk_examples,
        conditions=tuple(args.conditions.split(",")))


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny", help="'tiny' (the test Llama) or a model name")
    p.add_argument("--task", default="sst2")
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1])
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--n-test", type=int, default=16)
    p.add_argument("--chunk-examples", type=int, default=4)
    p.add_argument("--scoring", default="label", choices=["label", "generate"])
    p.add_argument("--conditions", default="icl,zero_shot,-template,-stopword,-content,"
                   "+template,+stopword,+content")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cpus", type=float, default=1.0, help="CPUs per Ray worker")
    p.add_argument("--local-threads", type=int, default=None,
                   help="torch threads of the local run (default: torch's choice)")
    args = p.parse_args()
    if args.local_threads is not None:
        torch.set_num_threads(args.local_threads)

    import ray

    from icl_tokens.executors.ray_executor import RayExecutor

    tmp = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    model = args.model
    if model == "tiny":
        from icl_tokens.testing.tiny import build_tiny_model_dir

        model = str(build_tiny_model_dir("llama", tmp / "tiny"))
    cfg = _cfg(args, model)
    (bridge, tok), load_s = _timed(lambda: model_for(cfg))
    _, first_s = _timed(lambda: run_config(_cfg(args, model), model=bridge, tokenizer=tok,
                                           out=tmp / "first.csv", progress=False,
                                           log=lambda s: None))
    _, local_s = _timed(lambda: run_config(_cfg(args, model), model=bridge, tokenizer=tok,
                                           out=tmp / "local.csv", progress=False,
                                           log=lambda s: None))
    local = read_rows(tmp / "local.csv")
    del bridge, tok
    print(f"model {args.model}, {args.task}, seeds {args.seeds}, {args.n_test} examples, "
          f"{len(cfg.conditions)} conditions, units of {args.chunk_examples} examples; "
          f"{len(local)} rows; load average {os.getloadavg()[0]:.2f}; "
          f"local torch threads {torch.get_num_threads()}")
    print(f"local:      load {load_s:6.1f} s, first run {first_s:6.1f} s, warm run "
          f"{local_s:6.1f} s ({len(local) / local_s:.1f} rows/s), total (load + first run) "
          f"{load_s + first_s:6.1f} s")

    _, init_s = _timed(lambda: ray.init(num_cpus=max(2, args.workers), include_dashboard=False,
                                        log_to_driver=False))
    try:
        for n in (args.workers, 1):
            ex = RayExecutor(workers=n, num_cpus=args.cpus, log=lambda s: None)
            _, start_s = _timed(lambda: ex.start(cfg))
            threads = ex.call(lambda m, t: torch.get_num_threads())
            out = tmp / f"ray{n}.csv"
            _, run_s = _timed(lambda: run_config(_cfg(args, model), out=out, progress=False,
                                                 log=lambda s: None, executor=ex))
            stats = ex.runs[-1]
            ex.close()
            rows = read_rows(out)
            diff = max((rows[c].astype(float) - local[c].astype(float)).abs().max()
                       for c in rows.columns if c.startswith("score_"))
            same = rows.drop(columns=[c for c in rows.columns if c.startswith("score_")]).equals(
                local.drop(columns=[c for c in local.columns if c.startswith("score_")]))
            units = stats["units"]
            print(f"ray x{n}:     init {init_s if n == args.workers else 0:6.1f} s, workers "
                  f"start {start_s:6.1f} s, run {run_s:6.1f} s ({len(rows) / run_s:.1f} rows/s, "
                  f"{units} units, worker torch threads {threads}), total "
                  f"{(init_s if n == args.workers else 0) + start_s + run_s:6.1f} s; "
                  f"workers busy {stats['busy_s']:.1f} s; rows equal {same}, "
                  f"max |score diff| {diff:.2e}")
            if n == 1:
                print(f"per-unit overhead (1 worker): {(run_s - local_s) / units:+.3f} s per "
                      f"unit vs local (run {run_s:.1f} s vs {local_s:.1f} s); driver-side "
                      f"{(run_s - stats['busy_s']) / units:+.3f} s per unit beyond the worker's "
                      f"busy time ({stats['busy_s'] / units:.3f} s per unit)")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
