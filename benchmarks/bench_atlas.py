"""Wall time of the per-token atlas through the runner users call (``run_atlas``, what
``python -m icl_tokens atlas`` runs): the exact atlas on the cached engine vs naive, with the
token-count bound beside the ratio, and the one-pass attribution vs the exact atlas per example.

For each task, two atlas runs of the same examples (``--engine cached`` and ``--engine naive``,
each into its own CSV in a temporary folder, with the default category groups). Prints (does not
assert), all measured in this one run:

1. exact atlas, cached vs naive: mean ``exact_s`` per example (the runner's own clock around each
   example's knockouts; the cached run's shared prefix is computed before that clock starts) and
   their ratio, beside the token-count bound for the same work: tokens the naive engine runs
   (every knockout's whole prompt, with logits at every position) over those the cached engine
   runs (each knockout's test-example suffix and the scored label positions), counted from the
   scored items (target: ratio >= 0.9 x the bound);
2. attribution vs exact (cached run): mean ``attribution_s`` and ``exact_s`` per example and
   their ratio;
3. each run's whole wall time (model already loaded), and the largest ``delta_margin``
   difference between the engines' CSVs (they must agree).

Usage::

    ICL_TOKENS_DATA_DIR=../shared/data python benchmarks/bench_atlas.py       # Gemma-3-270M
    python benchmarks/bench_atlas.py --tasks sst2,agnews --n-test 4 --device cuda
    python benchmarks/bench_atlas.py --model /path/to/tiny --n-test 2         # the code path
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from icl_tokens.atlas.items import atlas_items
from icl_tokens.atlas.run import AtlasConfig, atlas_prompts, run_atlas
from icl_tokens.data import load_task_data
from icl_tokens.engine.items import Item, LabelSet
from icl_tokens.episodes import sample_episode
from icl_tokens.models import load_model, load_tokenizer
from icl_tokens.tasks import load_task


def token_bound(items: list[Item], label_len: int) -> float:
    """Naive work (every knockout's prompt run, logits at every position) over cached work
    (each knockout's suffix after the shared prefix, logits only where scored)."""
    naive = sum(2 * len(it) for it in items)
    cached = sum(len(it) - it.prefix_len + label_len for it in items)
    return naive / cached


def _bounds(model: Any, tok: Any, cfg: AtlasConfig) -> list[float]:
    """The token bound of each example's atlas items (as the runner builds them)."""
    task = load_task(cfg.task)
    labels = LabelSet.for_task(task, tok)
    out = []
    for seed in cfg.seeds:
        ep = sample_episode(load_task_data(task), seed, k=cfg.k, n_test=cfg.n_test)
        for _, item in atlas_prompts(task, tok, labels, ep):
            out.append(token_bound(atlas_items(item, cfg.layers, cfg.groups),
                                   item.labels.max_len))
    return out


def bench_task(model: Any, tok: Any, task: str, args: argparse.Namespace, folder: Path) -> None:
    runs, wall = {}, {}
    for engine in ("cached", "naive"):
        cfg = AtlasConfig(model=args.model, task=task, seeds=(args.seed,), k=args.k,
                          n_test=args.n_test, engine=engine, batch_size=args.batch_size,
                          device=args.device, dtype=args.dtype)
        start = time.perf_counter()
        runs[engine] = run_atlas(cfg, model=model, tokenizer=tok,
                                 out=folder / f"{task}-{engine}.csv", progress=False,
                                 log=lambda s: None)
        wall[engine] = time.perf_counter() - start
    per = {e: df.groupby("example_id", sort=False)[["exact_s", "attribution_s"]].first()
           for e, df in runs.items()}
    n = len(per["cached"])
    exact = {e: float(p["exact_s"].mean()) for e, p in per.items()}
    attr = float(per["cached"]["attribution_s"].mean())
    bound = float(np.mean(_bounds(model, tok, cfg)))
    keys = len(runs["cached"]) / n
    diff = float(np.abs(runs["cached"]["delta_margin"].to_numpy()
                        - runs["naive"]["delta_margin"].to_numpy()).max())
    ratio = exact["naive"] / exact["cached"]
    print(f"\n{task}: {n} examples (seed {args.seed}), {keys:.0f} demonstration tokens per "
          "example on average")
    print(f"  exact atlas  naive {exact['naive']:8.2f} s/example   cached {exact['cached']:8.2f}"
          f" s/example   ratio {ratio:5.2f}x   token bound {bound:5.2f}x   "
          f"ratio / bound {ratio / bound:4.2f}")
    print(f"  attribution  {attr:8.3f} s/example   exact (cached) {exact['cached']:8.2f} "
          f"s/example   ratio {exact['cached'] / attr:6.1f}x")
    print(f"  whole runs (model loaded): cached {wall['cached']:.1f} s, naive "
          f"{wall['naive']:.1f} s")
    print(f"  max |delta_margin| difference cached vs naive: {diff:.2e}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gemma-3-270m")
    p.add_argument("--tasks", default="sst2,agnews")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--n-test", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="float32")
    args = p.parse_args()
    model = load_model(args.model, device=args.device, dtype=getattr(torch, args.dtype))
    tok = load_tokenizer(args.model)
    print(f"model {args.model} on {next(model.parameters()).device}, k={args.k}, batch "
          f"{args.batch_size}, torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks.split(","):
            bench_task(model, tok, task.strip(), args, Path(tmp))


if __name__ == "__main__":
    main()
