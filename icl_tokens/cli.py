"""Command line: ``python -m icl_tokens {categorize,ablate,quickstart,tasks,models}``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main", "build_parser", "categorize_records"]


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes comma-separated integers, got {text!r}")
    if not seeds:
        raise argparse.ArgumentTypeError("--seeds is empty")
    return seeds


def _int_list(text: str) -> list[int]:
    """``"0-3,8"`` → ``[0, 1, 2, 3, 8]`` (negative single indices allowed: ``"-1"``)."""
    out: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            lo, sep, hi = part.partition("-") if not part.startswith("-") else (part, "", "")
            out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected e.g. '0-5,8', got {text!r}")
    if not out:
        raise argparse.ArgumentTypeError(f"empty index list {text!r}")
    return out


def _positive(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return v


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
    p.add_argument("--k", type=int, default=4, help="demonstrations per prompt (default 4)")
    p.add_argument("--n-test", type=_positive, default=None,
                   help="test examples per seed (default: the fixed 500-example subset)")
    p.add_argument("--stopword-variant", default="paper", choices=["paper", "nltk"])
    p.add_argument("--data-source", default=None, choices=["dir", "staicc", "hf"],
                   help="force a data source (default: $ICL_TOKENS_DATA_DIR, then StaICC, then HF)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (sub-commands)."""
    parser = argparse.ArgumentParser(prog="python -m icl_tokens", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("categorize", help="per-token categories of each test prompt")
    _add_common(c, many_seeds=False)
    c.add_argument("--json", action="store_true", help="JSON lines, one per test example")
    c.add_argument("--out", default=None, help="write to this file instead of stdout")

    a = sub.add_parser("ablate", help="representation-level knockout (paper Tables 2 and 3)")
    _add_common(a, many_seeds=True)
    a.add_argument("--conditions", default="all",
                   help="'all' or a comma list of zero_shot,+content,+stopword,+template,icl,"
                        "-content,-stopword,-template,none")
    a.add_argument("--scoring", default="generate", choices=["generate", "label"])
    a.add_argument("--engine", default="cached", choices=["cached", "naive"])
    a.add_argument("--batch-size", type=_positive, default=16)
    a.add_argument("--hide-bos", action="store_true", help="also hide BOS (Appendix B accident)")
    a.add_argument("--query-scope", default="test", choices=["test", "last"])
    a.add_argument("--layers", type=_int_list, default=None,
                   help="knock out only these layers, e.g. 0-8 or 0,4,-1 (default: all)")
    a.add_argument("--heads", type=_int_list, default=None,
                   help="knock out only these query heads (default: all)")
    a.add_argument("--mode", default="scores", choices=["scores", "pattern"],
                   help="scores: -inf before softmax (renormalised; the paper's); pattern: zero "
                        "after softmax, not renormalised")
    a.add_argument("--device", default=None)
    a.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    a.add_argument("--out", required=True,
                   help="CSV path (resumable); a .meta.json sidecar is written")
    a.add_argument("--no-progress", action="store_true")

    q = sub.add_parser("quickstart",
                       help="Gemma-3-270M, SST-2, 2 seeds x 50 examples, all conditions")
    q.add_argument("--out-dir", default="results")
    q.add_argument("--n-test", type=_positive, default=50)
    q.add_argument("--seeds", type=_seeds, default=[0, 1])
    q.add_argument("--model", default="gemma-3-270m")
    q.add_argument("--no-progress", action="store_true")

    sub.add_parser("tasks", help="list the shipped task definitions")
    sub.add_parser("models", help="list the offline model names")
    return parser


def categorize_records(
    model: str, task_name: str, seed: int, k: int, n_test: int | None,
    stopword_variant: str = "paper", data_source: str | None = None, tokenizer: Any = None,
) -> list[dict[str, Any]]:
    """The ``categorize --json`` records (the schema is a contract)."""
    from .categorize import categorize, label_token_ids
    from .data import load_task_data
    from .episodes import sample_episode
    from .prompts import build_prompt
    from .tasks import load_task

    task = load_task(task_name)
    if tokenizer is None:
        from .models import load_tokenizer

        tokenizer = load_tokenizer(model)
    data = load_task_data(task, source=data_source)
    ep = sample_episode(data, seed, k=k, n_test=n_test)
    out = []
    for test in ep.tests:
        tp = categorize(build_prompt(task, ep.demos, test), tokenizer,
                        stopword_variant=stopword_variant)
        out.append({
            "model": model, "task": task.name, "seed": seed, "k": k, "example_id": test.id,
            "gold": tp.prompt.gold, "prompt": tp.prompt.text, "tokens": tp.table(),
            "labels": label_token_ids(task, tokenizer, tp.prompt.text),
        })
    return out


def _cmd_categorize(args: argparse.Namespace) -> int:
    recs = categorize_records(args.model, args.task, args.seed, args.k, args.n_test,
                              args.stopword_variant, args.data_source)
    if args.json:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)
    else:
        lines = []
        for r in recs:
            lines.append(f"# {r['example_id']} (gold {r['gold']})")
            for t in r["tokens"]:
                cats = ",".join(t["categories"])
                lines.append(f"{t['start']:6d} {t['end']:6d}  {t['text']!r:24}  {cats}")
        text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _cmd_ablate(args: argparse.Namespace) -> int:
    from .experiments import AblationConfig, accuracy_table, format_accuracy_table, run_ablation

    cfg = AblationConfig(
        model=args.model, task=args.task, seeds=tuple(args.seeds), k=args.k, n_test=args.n_test,
        conditions=tuple(args.conditions.split(",")), scoring=args.scoring, engine=args.engine,
        stopword_variant=args.stopword_variant, hide_bos=args.hide_bos,
        query_scope=args.query_scope, data_source=args.data_source, batch_size=args.batch_size,
        layers=args.layers, heads=args.heads, mode=args.mode,
        dtype=args.dtype, device=args.device,
    )
    df = run_ablation(cfg, out=args.out, progress=not args.no_progress)
    print(f"accuracy (%, {args.scoring}), mean ± std over {len(cfg.seeds)} seed(s):")
    print(format_accuracy_table(accuracy_table(df)))
    print(f"rows: {args.out}")
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from .experiments import (
        AblationConfig,
        accuracy_by_seed,
        accuracy_table,
        format_accuracy_table,
        run_ablation,
    )
    from .plotting import accuracy_bar, save_figure
    from .reference import paper_condition_table

    t0 = time.time()
    out_dir = Path(args.out_dir)
    cfg = AblationConfig(model=args.model, task="sst2", seeds=tuple(args.seeds), k=4,
                         n_test=args.n_test, scoring="generate", engine="cached")
    csv_path = out_dir / "quickstart.csv"
    df = run_ablation(cfg, out=csv_path, progress=not args.no_progress)
    table = accuracy_table(df)
    paper = paper_condition_table(model="Llama-7B", tasks=["sst2"])
    print(f"\nSST-2, {len(cfg.seeds)} seeds x {args.n_test} examples, k=4, greedy generation "
          f"(acc_gen), model {cfg.model}:")
    print(format_accuracy_table(table, paper, paper_label="paper Llama-7B"))
    label_table = accuracy_table(df, metric="label_correct")
    print("\nlabel-restricted scoring (acc_label, secondary):")
    print(format_accuracy_table(label_table))
    fig = accuracy_bar(accuracy_by_seed(df), paper, name=f"{cfg.model} (acc_gen)",
                       paper_name="paper Llama-7B", title="SST-2: accuracy by condition")
    paths = save_figure(fig, out_dir / "quickstart")
    print(f"\nrows: {csv_path}\nfigure: {', '.join(str(p) for p in paths)}")
    print(f"quickstart took {time.time() - t0:.0f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (errors print one clear line, exit 2)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "categorize":
            return _cmd_categorize(args)
        if args.command == "ablate":
            return _cmd_ablate(args)
        if args.command == "quickstart":
            return _cmd_quickstart(args)
        if args.command == "tasks":
            from .tasks import list_tasks, load_task

            for name in list_tasks():
                print(f"{name:10} {load_task(name).description}")
            return 0
        if args.command == "models":
            from .models import KNOWN_MODELS

            for name, desc in KNOWN_MODELS.items():
                print(f"{name:16} {desc}")
            return 0
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume.", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1
