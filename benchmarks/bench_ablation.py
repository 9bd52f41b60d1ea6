"""Throughput of the experiment runner (the path ``python -m icl_tokens ablate`` runs): naive vs
cached engine, a demonstration-internal sweep, and the hook overhead.

Prints (does not assert), all measured in this one run on the same episode, through
:func:`icl_tokens.experiments.run_experiment` with a results CSV, exactly as the CLI does:

1. the 8 mask conditions of Tables 2/3, cached vs naive (target >= 8x and >= 0.9 x the bound);
2. the aggregation sweep: 5 variants of the aggregation block (prefix-side interventions inside
   the demonstrations: all carriers, T_out, labels, the final ':', own demonstration only) x the
   8 conditions, cached (one prefix per variant) vs naive (target >= 6x);
3. the hook overhead: the cached run of (1) vs the same cached forwards without knockouts
   (target <= 10%);
4. token-level ablation (Table 4's conditions, one prefix per condition and seed), cached vs
   naive (``--token-level``);
5. beside each ratio, the token-count bound: (tokens run + logit positions) of the naive engine
   divided by those of the cached engine, counted from the scored rows;
6. the largest score difference between the engines (they must agree).

Usage::

    ICL_TOKENS_DATA_DIR=../shared/data python benchmarks/bench_ablation.py   # Gemma-3-270M, CPU
    python benchmarks/bench_ablation.py --scoring generate
    python benchmarks/bench_ablation.py --random-llama 7b --device cuda --dtype bfloat16
    python benchmarks/bench_ablation.py --random-llama tiny    # the same code path, on a CPU

``--random-llama 7b`` builds a randomly initialised Llama-2-7B-shaped model from a config (no
weights; GPT-2 byte-level vocabulary of 50,257 tokens instead of Llama's 32,000).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from icl_tokens.aggregation.block import aggregation_knockout
from icl_tokens.engine.items import Item
from icl_tokens.experiments import AblationConfig, RunContext, run_ablation, run_experiment
from icl_tokens.experiments.representation import representation_items

CONDITIONS = ("icl", "icl-template", "icl-stopword", "icl-content", "+template", "+stopword",
              "+content", "none")
#: The aggregation sweep: block variants inside the demonstrations (prefix-side
#: interventions, one prefix each), the block of :mod:`icl_tokens.aggregation.block`.
def variants(k: int) -> dict[str, Any]:
    """The block variants for prompts of ``k`` demonstrations."""
    return {
        "agg": aggregation_knockout(),
        "agg[t_out]": aggregation_knockout("t_out"),
        "agg[label]": aggregation_knockout("label"),
        "agg[last_colon]": aggregation_knockout("last_colon"),
        "agg[own]": aggregation_knockout(scope="own", k=k),
    }

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
    bridge.icl_tokens_model_name = f"random-llama-{size}"
    return bridge, tok


def timed(fn, device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


class Recorder:
    """Wraps an item builder: keeps the items so the token-count bound can be computed."""

    def __init__(self, build):
        self.build, self.items = build, []

    def __call__(self, ctx: RunContext, ep: Any) -> list[Item]:
        items = self.build(ctx, ep)
        self.items.extend(items)
        return items


def bound(items: list[Item], gen_lens: list[int], n_layers: int, n_heads: int
          ) -> tuple[float, int, int]:
    """(naive tokens + logit positions) / (cached ones), with the two totals.

    Naive: every step is a full forward of prompt + tokens so far, logits at every position.
    Cached: each distinct (prefix ids, prefix-side intervention) once with 1 logit position, then
    per row the suffix and each generated token, one logit position each.
    """
    naive = cached = 0
    prefixes = set()
    for it, g in zip(items, gen_lens):
        steps = max(g, 1)
        for t in range(steps):
            naive += 2 * (len(it) + t)
        sig = None if it.knockout is None else it.knockout.resolve(
            it, n_layers, n_heads).prefix_signature(it.prefix_len, n_layers, n_heads)
        lp = it.prefix_len
        if lp and (it.input_ids[:lp], sig) not in prefixes:
            prefixes.add((it.input_ids[:lp], sig))
            cached += lp + 1
        cached += (len(it) - lp) + (steps - 1) + steps
    return naive / cached, naive, cached


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
    p.add_argument("--skip-sweep", action="store_true", help="skip the demonstration sweep")
    p.add_argument("--token-level", action="store_true",
                   help="also time the token-level ablation (5 conditions)")
    args = p.parse_args(argv)
    VARIANTS = variants(args.k)
    dtype = getattr(torch, args.dtype)
    torch.set_grad_enabled(False)

    tmp = tempfile.TemporaryDirectory()
    work = Path(tmp.name)
    if args.random_llama:
        model, tok = random_llama(args.random_llama, args.device, dtype, work / "model")
        name = f"random Llama-2-{args.random_llama}-shaped"
    else:
        from icl_tokens.models import load_model, load_tokenizer

        model = load_model(args.model, device=args.device, dtype=dtype)
        tok = load_tokenizer(args.model)
        name = args.model
    logs: list[str] = []
    runs = {"n": 0}

    def cfg(engine: str) -> AblationConfig:
        return AblationConfig(model=name, task=args.task, seeds=(args.seed,), k=args.k,
                              n_test=args.n_test, conditions=CONDITIONS, scoring=args.scoring,
                              engine=engine, batch_size=args.batch_size, dtype=args.dtype,
                              device=args.device)

    def csv() -> Path:
        runs["n"] += 1
        return work / f"run{runs['n']}.csv"

    def ablate(engine: str):
        return run_ablation(cfg(engine), model=model, tokenizer=tok, out=csv(), progress=False,
                            log=logs.append)

    def custom(engine: str, knockout_of):
        """The 8 conditions with each item's knockout replaced by ``knockout_of(item)``."""
        c = cfg(engine)

        def build(ctx, ep):
            items = representation_items(ctx.task, ctx.tokenizer, ctx.labels, ep,
                                         c.conditions, c.knockout)
            return [knockout_of(it) for it in items]
        rec = Recorder(build)
        df = run_experiment(c, rec, c.conditions, model=model, tokenizer=tok, out=csv(),
                            progress=False, log=logs.append)
        return df, rec.items

    def sweep(engine: str):
        def build(ctx, ep):
            base = representation_items(ctx.task, ctx.tokenizer, ctx.labels, ep, CONDITIONS,
                                        cfg(engine).knockout)
            return [it.with_knockout(v if it.knockout is None else it.knockout | v,
                                     f"{vname}|{it.condition}")
                    for vname, v in VARIANTS.items() for it in base]
        conds = [f"{v}|{c}" for v in VARIANTS for c in CONDITIONS]
        rec = Recorder(build)
        df = run_experiment(cfg(engine), rec, conds, model=model, tokenizer=tok, out=csv(),
                            progress=False, log=logs.append)
        return df, rec.items

    def token(engine: str):
        from icl_tokens.experiments.token_level import (
            TOKEN_COLUMNS,
            TokenAblationConfig,
            token_items,
        )

        c = TokenAblationConfig(model=name, task=args.task, seeds=(args.seed,), k=args.k,
                                n_test=args.n_test, scoring=args.scoring, engine=engine,
                                batch_size=args.batch_size, dtype=args.dtype,
                                device=args.device)
        removals = [c.removal(x) for x in c.conditions]
        rec = Recorder(lambda ctx, ep: token_items(ctx.task, ctx.tokenizer, ctx.labels, ep,
                                                   removals))
        df = run_experiment(c, rec, c.conditions, model=model, tokenizer=tok, out=csv(),
                            progress=False, log=logs.append,
                            extra_columns=TOKEN_COLUMNS)
        return df, rec.items

    ablate("cached")  # warm-up (allocator, kernels, data loading)
    print(f"model: {name} on {args.device} ({args.dtype}); torch threads "
          f"{torch.get_num_threads()}")
    print(logs[0] if logs else "")
    best: dict[str, float] = {}
    out: dict[str, Any] = {}

    def measure(label: str, fn, repeats: int = 1):
        for _ in range(repeats):
            res, dt = timed(fn, args.device)
            out[label] = res
            best[label] = min(best.get(label, float("inf")), dt)

    measure("naive", lambda: custom("naive", lambda it: it))
    for _ in range(args.repeats):  # alternate, so drift on the machine hits both alike
        measure("cached", lambda: custom("cached", lambda it: it))
        measure("cached_no_hooks", lambda: custom("cached", lambda it: it.with_knockout(
            None, it.condition)))
    if not args.skip_sweep:
        measure("sweep_naive", lambda: sweep("naive"))
        measure("sweep_cached", lambda: sweep("cached"), args.repeats)
    if args.token_level:
        measure("token_naive", lambda: token("naive"))
        measure("token_cached", lambda: token("cached"), args.repeats)

    df_n, items = out["naive"]
    df_c, _ = out["cached"]
    gen = _gen_lens(df_c, tok, items, args.scoring)
    rows = len(items)
    lens = sorted({len(it) for it in items})
    print(f"{rows} rows ({args.n_test} examples x {len(CONDITIONS)} conditions), prompt "
          f"lengths {lens[0]}..{lens[-1]} tokens, prefix {items[0].prefix_len} tokens, scoring "
          f"{args.scoring}, batch size {args.batch_size}")
    for label, t in best.items():
        n = (rows * len(VARIANTS) if label.startswith("sweep") else
             len(out[label][1]) if label.startswith("token") else rows)
        print(f"  {label:16s} {t:8.2f} s   {n / t:8.2f} rows/s")
    L, H = int(model.cfg.n_layers), int(model.cfg.n_heads)
    b, bn, bc = bound(items, gen, L, H)
    r = best["naive"] / best["cached"]
    print(f"1. 8 conditions: cached / naive = {r:.1f}x; token-count bound {b:.1f}x "
          f"({bn} / {bc}); ratio / bound = {r / b:.2f} (targets >= 8x and >= 0.9)")
    if not args.skip_sweep:
        sdf_c, sitems = out["sweep_cached"]
        sgen = _gen_lens(sdf_c, tok, sitems, args.scoring)
        sb, sbn, sbc = bound(sitems, sgen, L, H)
        sr = best["sweep_naive"] / best["sweep_cached"]
        print(f"2. aggregation sweep ({len(VARIANTS)} block variants x 8 "
              f"conditions): cached / naive = {sr:.1f}x; token-count bound {sb:.1f}x "
              f"({sbn} / {sbc}) (target >= 6x)")
        _agree("sweep", out["sweep_naive"][0], sdf_c, tok)
    if args.token_level:
        tdf_c, titems = out["token_cached"]
        tb, tbn, tbc = bound(titems, _gen_lens(tdf_c, tok, titems, args.scoring), L, H)
        tr = best["token_naive"] / best["token_cached"]
        print(f"4. token level ({len(titems)} rows, one prefix per condition): cached / naive = "
              f"{tr:.1f}x; token-count bound {tb:.1f}x ({tbn} / {tbc})")
        _agree("token level", out["token_naive"][0], tdf_c, tok)
    overhead = best["cached"] / best["cached_no_hooks"] - 1
    note = (" (no-hook rows decode other tokens, so their work differs; use --scoring label)"
            if args.scoring == "generate" else "")
    print(f"3. hook overhead (cached with knockouts vs the same forwards without): "
          f"{100 * overhead:+.1f}% (target <= 10%){note}")
    _agree("8 conditions", df_n, df_c, tok)
    tmp.cleanup()
    return 0


def _gen_lens(df, tok, items, scoring: str) -> list[int]:
    if scoring != "generate":
        return [1] * len(items)
    key = df.set_index(["example_id", "condition"]).continuation
    return [max(1, len(tok(key.loc[(it.example_id, it.condition)],
                           add_special_tokens=False)["input_ids"])) for it in items]


def _agree(what: str, a, b, tok) -> None:
    cols = [c for c in a.columns if c.startswith("score_")]
    key = ["seed", "example_id", "condition"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    diff = float((a[cols].astype(float) - b[cols].astype(float)).abs().to_numpy().max())
    same = bool((a.prediction == b.prediction).all())
    print(f"   engines agree ({what}): max |score diff| = {diff:.2e}, identical predictions: "
          f"{same}")


if __name__ == "__main__":
    sys.exit(main())
