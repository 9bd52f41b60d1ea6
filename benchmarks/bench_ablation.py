"""Throughput of the representation-level ablation: naive vs cached engine, and hook overhead.

Prints (does not assert), all measured in this one run on the same episodes:

* rows/s (examples x conditions per second) of ``engine="naive"`` and ``engine="cached"``
  for the 8 named mask conditions, and their ratio (target >= 8x);
* the cached run versus the same cached forwards without knockout hooks (target overhead
  <= 15 %);
* the largest score difference between the engines (they must agree).

Usage::

    python benchmarks/bench_ablation.py                       # Gemma-3-270M, SST-2, CPU
    python benchmarks/bench_ablation.py --scoring generate
    python benchmarks/bench_ablation.py --random-llama 7b --device cuda --dtype bfloat16
    python benchmarks/bench_ablation.py --random-llama tiny    # the same code path, on a CPU

``--random-llama 7b`` builds a randomly initialised Llama-2-7B-shaped model from a config (no
weights; GPT-2 byte-level vocabulary of 50,257 tokens instead of Llama's 32,000).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

from icl_tokens.data import load_task_data
from icl_tokens.episodes import sample_episode
from icl_tokens.engine.scoring import make_jobs, score_jobs
from icl_tokens.tasks import load_task

CONDITIONS = ["icl", "icl-template", "icl-stopword", "icl-content", "+template", "+stopword", "+content",
              "none"]

LLAMA_SHAPES = {
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
               num_attention_heads=32, num_key_value_heads=32),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=4),
}


def random_llama(size: str, device: str, dtype: torch.dtype, workdir: Path):
    """A randomly initialised Llama-2-shaped bridge (config only, no weights) and tokenizer."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import LlamaConfig, LlamaForCausalLM

    from icl_tokens.models import gpt2_tokenizer

    tok = gpt2_tokenizer(bos=True)
    tok.pad_token = tok.eos_token
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=4096, rms_norm_eps=1e-5,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      **LLAMA_SHAPES[size])
    cfg.save_pretrained(workdir)
    tok.save_pretrained(workdir)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(dtype).eval()
    bridge = TransformerBridge.boot_transformers(str(workdir), hf_model=model,
                                                 device=device, dtype=dtype)
    return bridge, tok


def timed(fn, device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="gemma-3-270m")
    p.add_argument("--random-llama", choices=sorted(LLAMA_SHAPES), default=None)
    p.add_argument("--task", default="sst2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--n-test", type=int, default=12)
    p.add_argument("--scoring", default="label", choices=["label", "generate"])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--repeats", type=int, default=3,
                   help="timed repetitions of the cached runs (best is kept)")
    args = p.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    torch.set_grad_enabled(False)

    tmp = tempfile.TemporaryDirectory()
    if args.random_llama:
        model, tok = random_llama(args.random_llama, args.device, dtype, Path(tmp.name))
        name = f"random Llama-2-{args.random_llama}-shaped"
    else:
        from icl_tokens.models import load_model, load_tokenizer

        model = load_model(args.model, device=args.device, dtype=dtype)
        tok = load_tokenizer(args.model)
        name = args.model
    task = load_task(args.task)
    data = load_task_data(task)
    ep = sample_episode(data, args.seed, k=args.k, n_test=args.n_test)
    jobs = make_jobs(task, tok, ep, CONDITIONS)
    bare = [dataclasses.replace(j, knockout=None) for j in jobs]
    rows = len(jobs)
    lens = sorted({j.n for j in jobs})
    print(f"model: {name} on {args.device} ({args.dtype}); torch threads {torch.get_num_threads()}")
    print(f"task {task.name}, data {data.source}, seed {args.seed}, k={args.k}, "
          f"{len(ep.tests)} examples x {len(CONDITIONS)} conditions = {rows} rows, "
          f"prompt lengths {lens[0]}..{lens[-1]} tokens, prefix {jobs[0].tp.prefix_len} tokens, "
          f"scoring {args.scoring}, batch size {args.batch_size}")

    def run(js, engine, early_stop=True):
        return score_jobs(model, tok, js, scoring=args.scoring, engine=engine,
                          batch_size=args.batch_size, early_stop=early_stop)

    run(jobs[: len(CONDITIONS)], "cached")  # warm-up (allocator, kernels)
    results = {}
    times: dict[str, list[float]] = {"naive": [], "cached": [], "cached_no_hooks": []}
    res, dt = timed(lambda: run(jobs, "naive"), args.device)
    results["naive"], times["naive"] = res, [dt]
    # The two cached variants alternate so that drift on the machine hits both alike. They
    # must do the same forwards: a knockout changes what is generated, and so when decoding
    # may stop early, so the hook-overhead pair decodes a fixed number of tokens.
    fixed = args.scoring == "generate"
    for _ in range(args.repeats):
        res, dt = timed(lambda: run(jobs, "cached"), args.device)
        results["cached"] = res
        times["cached"].append(dt)
        if fixed:
            for label, js in (("cached_fixed", jobs), ("cached_fixed_no_hooks", bare)):
                res, dt = timed(lambda: run(js, "cached", early_stop=False), args.device)
                times.setdefault(label, []).append(dt)
        else:
            res, dt = timed(lambda: run(bare, "cached"), args.device)
            times["cached_no_hooks"].append(dt)
    times = {k: v for k, v in times.items() if v}
    best = {k: min(v) for k, v in times.items()}
    for label, t in best.items():
        print(f"{label:22s} {t:8.2f} s   {rows / t:8.2f} rows/s   (best of {len(times[label])})")

    diff = max(abs(a.label_scores[w] - b.label_scores[w])
               for a, b in zip(results["naive"], results["cached"]) for w in a.label_scores)
    same = all(a.label_prediction == b.label_prediction and a.generated_ids == b.generated_ids
               for a, b in zip(results["naive"], results["cached"]))
    ratio = best["naive"] / best["cached"]
    pair = ("cached_fixed", "cached_fixed_no_hooks") if fixed else ("cached", "cached_no_hooks")
    overhead = best[pair[0]] / best[pair[1]] - 1
    print(f"cached / naive speed-up: {ratio:.1f}x (target >= 8x)")
    print(f"hook overhead ({pair[0]} with knockout vs the same forwards without hooks): "
          f"{100 * overhead:+.1f}% (target <= 15%)")
    print(f"engines agree: max |score diff| = {diff:.2e}, identical predictions: {same}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
