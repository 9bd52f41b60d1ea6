"""Time of the probes on all layers of one task (target <= 5 min on the
2-core CPU machine for SST-2, 2 seeds x 50 examples, Gemma-3-270M, without the null).

Measures, on the package's own path (:func:`~icl_tokens.aggregation.probes.collect_probe_data`
then :func:`~icl_tokens.aggregation.probes.probe_table` for every position, as ``probe`` does):

1. building the probe prompts (tokenisation, categorisation, groups);
2. capture: one forward per prompt with ``hook_resid_post`` of every layer at every probe
   position (and the model's answer from the same pass);
3. fitting without the permutation null (``permutations=0``): per position and layer, the task
   probe (nested group k-fold, inner-CV C), pooled over the seeds (the control task is not
   fitted: with text-disjoint folds it cannot be learnt);
4. fitting with the null (``--permutations``, default 20): the same, plus every shuffle refitted
   on every layer (folds, standardisation and basis shared; each shuffle's own inner C);

and prints the split, the null's cost as a ratio of step 4 to step 3, the total against the
target, and a short table. With ``--aggregation`` it also times the same probes under the
aggregation block. ``--positions`` / ``--layers`` / ``--n-test`` give a smaller setting.

Usage::

    ICL_TOKENS_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_probes.py
    python benchmarks/bench_probes.py --positions t_out.colon,label --layers 0,6,12 --n-test 25
    python benchmarks/bench_probes.py --aggregation --save results/probes_sst2
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from icl_tokens.aggregation.probes import (
    PROBE_POSITIONS,
    collect_probe_data,
    probe_episodes,
    probe_items,
    probe_table,
)
from icl_tokens.data import load_task_data
from icl_tokens.engine.items import LabelSet
from icl_tokens.tasks import load_task

TARGET_S = 300.0


def _timed(fn):
    """``fn()``, and its (wall, CPU) seconds."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - t0, time.process_time() - c0)


def _run(model, tok, items, knockout, name, args, positions, layers):
    """The table with the null, and (wall, CPU) seconds of the capture, of the fit without
    the null and of the fit with it."""
    data, cap = _timed(lambda: collect_probe_data(model, tok, items, positions=positions,
                                                  layers=layers, knockout=knockout,
                                                  batch_size=args.batch_size))

    def fit(n_perm):
        return pd.concat([probe_table(d, knockout=name, permutations=n_perm,
                                      progress=args.progress)
                          for d in data.values()], ignore_index=True)

    _, fit0 = _timed(lambda: fit(0))
    df, fit_null = _timed(lambda: fit(args.permutations))
    return df, cap, fit0, fit_null


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--n-test", type=int, default=50)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--positions", default="all", help="'all' or a comma list")
    ap.add_argument("--layers", default=None, help="comma list of layers (default: all)")
    ap.add_argument("--permutations", type=int, default=20,
                    help="shuffles of the permutation null (default 20)")
    ap.add_argument("--progress", action="store_true", help="tqdm bars over the shuffles")
    ap.add_argument("--aggregation", action="store_true")
    ap.add_argument("--save", default=None,
                    help="also write the table (PATH.csv) and the probe curves (PATH.html/.json)")
    args = ap.parse_args()

    from icl_tokens.models import load_model, load_tokenizer

    torch.set_grad_enabled(False)
    model = load_model(args.model)
    tok = load_tokenizer(args.model)
    seeds = [int(s) for s in args.seeds.split(",")]
    positions = (list(PROBE_POSITIONS) if args.positions == "all"
                 else [p.strip() for p in args.positions.split(",")])
    n_layers = int(model.cfg.n_layers)
    layers = (list(range(n_layers)) if args.layers is None
              else [int(x) for x in args.layers.split(",")])
    t0 = time.perf_counter()
    task = load_task(args.task)
    data = load_task_data(task)
    items = probe_items(task, tok, LabelSet.for_task(task, tok),
                        probe_episodes(data, seeds, k=args.k, n_test=args.n_test))
    t_build = time.perf_counter() - t0
    print(f"model {args.model} ({n_layers} layers, d_model {model.cfg.d_model}); task "
          f"{task.name} from {data.source} ({data.location}); seeds {seeds} x {args.n_test} "
          f"examples, k={args.k}: {len(items)} prompts of {min(map(len, items))}-"
          f"{max(map(len, items))} tokens; {len(positions)} positions x {len(layers)} "
          f"layers; {args.permutations} shuffles; torch threads {torch.get_num_threads()}")
    df, (t_cap, c_cap), (t_fit0, c_fit0), (t_fit, c_fit) = _run(
        model, tok, items, None, "icl", args, positions, layers)
    total = t_build + t_cap + t_fit0
    print("wall s (CPU s of this process; on a shared machine wall > CPU / threads):")
    print(f"build prompts {t_build:6.1f}")
    print(f"capture       {t_cap:6.1f} ({c_cap:6.1f})  {t_cap / len(items):.2f} s per prompt")
    print(f"fit, no null  {t_fit0:6.1f} ({c_fit0:6.1f})  {t_fit0 / len(df):.2f} s per position x "
          "layer (the task probe)")
    print(f"fit, null     {t_fit:6.1f} ({c_fit:6.1f})  {t_fit / len(df):.2f} s per position x "
          f"layer (the task probe + {args.permutations} shuffles)")
    print(f"null cost     x{t_fit / t_fit0:.1f} wall (x{c_fit / c_fit0:.1f} CPU) the fit "
          f"without the null; {(t_fit - t_fit0) / max(args.permutations, 1) / len(df):.3f} s "
          "per shuffle per position x layer")
    print(f"total         {total:6.1f}           (without the null) target <= {TARGET_S:.0f} s: "
          f"{'met' if total <= TARGET_S else 'NOT met'}; with the null "
          f"{total - t_fit0 + t_fit:.1f} s", flush=True)
    if args.aggregation:
        from icl_tokens.aggregation.block import aggregation_knockout

        ko = aggregation_knockout()
        agg, cap2, fit02, fit2 = _run(model, tok, items, ko, ko.name, args, positions, layers)
        print(f"with the aggregation block: capture {cap2[0]:.1f} s ({cap2[1]:.1f} CPU), fit "
              f"{fit02[0]:.1f} s without the null, {fit2[0]:.1f} s with it", flush=True)
        df = pd.concat([df, agg], ignore_index=True)
    best = (df.sort_values("accuracy").groupby(["knockout", "position"], sort=False).tail(1)
            .sort_values(["knockout", "position"]))
    print(best[["knockout", "position", "layer", "accuracy", "majority", "null_q95",
                "max_null_q95", "p_max", "n", "n_groups"]].round(3).to_string(index=False))
    if args.save:
        from pathlib import Path

        from icl_tokens.plotting import probe_curves, save_figure

        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(f"{args.save}.csv", index=False)
        paths = save_figure(probe_curves(df, title=f"{args.model}, {task.name}: probes"),
                            args.save)
        print(f"table: {args.save}.csv; figure: {', '.join(map(str, paths))}")


if __name__ == "__main__":
    main()
