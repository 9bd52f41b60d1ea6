"""Wall time of the per-token atlas: the exact atlas on the cached engine vs naive (with the
token-count bound beside the ratio), and the one-pass attribution vs the exact atlas per example.

Prints (does not assert), per task, all measured in this one run on the same examples:

1. exact atlas, cached vs naive: seconds per example and their ratio, beside the token-count
   bound: (tokens run + logit positions) of the naive engine over those of the cached engine
   (its prefix counted once per episode), counted from the scored items (target: ratio >= 0.9 x
   the bound);
2. attribution (one forward and backward, cached) vs the exact atlas (cached): seconds per
   example and the ratio;
3. the largest delta_margin difference between the engines (they must agree).

Usage::

    ICL_TOKENS_DATA_DIR=../shared/data python benchmarks/bench_atlas.py       # Gemma-3-270M
    python benchmarks/bench_atlas.py --tasks sst2,agnews --n-test 4 --device cuda
    python benchmarks/bench_atlas.py --model /path/to/tiny --n-test 2         # the code path
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from icl_tokens.atlas.attribution import attribute
from icl_tokens.atlas.exact import exact_atlas
from icl_tokens.atlas.items import atlas_items
from icl_tokens.atlas.run import atlas_prompts
from icl_tokens.data import load_task_data
from icl_tokens.engine.items import Item, LabelSet
from icl_tokens.engine.prefix_cache import PrefixCache
from icl_tokens.episodes import sample_episode
from icl_tokens.models import load_model, load_tokenizer
from icl_tokens.tasks import load_task


def token_bound(items: list[Item], label_len: int) -> float:
    """Naive work (every prompt token run, logits at every position) over cached work (the
    prefix once, then each item's suffix, logits only where scored)."""
    naive = sum(2 * len(it) for it in items)
    prefix = items[0].prefix_len
    cached = prefix + sum(len(it) - it.prefix_len + label_len for it in items)
    return naive / cached


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_task(model: Any, tok: Any, task_name: str, args: argparse.Namespace) -> None:
    task = load_task(task_name)
    ep = sample_episode(load_task_data(task), args.seed, k=args.k, n_test=args.n_test)
    labels = LabelSet.for_task(task, tok)
    prompts = atlas_prompts(task, tok, labels, ep)
    t = {"cached": 0.0, "naive": 0.0, "attr": 0.0}
    bounds, diffs = [], []
    cache = PrefixCache()
    for _, item in prompts:
        items = atlas_items(item)
        bounds.append(token_bound(items, 1))
        cached, dt = _timed(lambda: exact_atlas(model, tok, item, engine="cached",
                                                batch_size=args.batch_size,
                                                prefix_cache=PrefixCache()))
        t["cached"] += dt
        naive, dt = _timed(lambda: exact_atlas(model, tok, item, engine="naive",
                                               batch_size=args.batch_size))
        t["naive"] += dt
        diffs.append(float(np.abs(cached.delta_margin() - naive.delta_margin()).max()))
        cache.get(model, tuple(item.input_ids[: item.prefix_len]), None, None, "scores")
        warm = exact_atlas(model, tok, item, batch_size=args.batch_size, prefix_cache=cache)
        at = attribute(model, tok, item, prefix_cache=cache,
                       base_scores=warm.base.label_scores)
        t["attr"] += at.seconds
        t.setdefault("exact_warm", 0.0)
        t["exact_warm"] += warm.seconds
    n = len(prompts)
    keys = np.mean([len(atlas_items(it)) - 1 for _, it in prompts])
    print(f"\n{task_name}: {n} examples, {keys:.0f} demonstration tokens per example on average")
    print(f"  exact atlas  naive {t['naive'] / n:8.2f} s/example   cached {t['cached'] / n:8.2f}"
          f" s/example   ratio {t['naive'] / t['cached']:5.2f}x   token bound "
          f"{np.mean(bounds):5.2f}x")
    print(f"  attribution  {t['attr'] / n:8.3f} s/example   exact (cached, prefix warm) "
          f"{t['exact_warm'] / n:8.2f} s/example   ratio {t['exact_warm'] / t['attr']:6.1f}x")
    print(f"  max |delta_margin| difference cached vs naive: {max(diffs):.2e}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gemma-3-270m")
    p.add_argument("--tasks", default="sst2,agnews")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--n-test", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="float32")
    args = p.parse_args()
    model = load_model(args.model, device=args.device, dtype=getattr(torch, args.dtype))
    tok = load_tokenizer(args.model)
    print(f"model {args.model} on {next(model.parameters()).device}, k={args.k}, "
          f"batch {args.batch_size}")
    for task in args.tasks.split(","):
        bench_task(model, tok, task.strip(), args)


if __name__ == "__main__":
    main()
