"""Command line: ``python -m icl_tokens {categorize,ablate,quickstart,tasks,models}``."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .ablation.conditions import PAPER_ORDER

__all__ = ["main", "build_parser", "categorize_records"]


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


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return v


def _non_negative(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
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
    p.add_argument("--k", type=_non_negative, default=4,
                   help="demonstrations per prompt (default 4)")
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
                   help="'all' or a comma list of " + ",".join(PAPER_ORDER) + " (aliases: "
                        "-template, minus_temp, only_temp, ...; write --conditions=-template "
                        "for a name that starts with '-')")
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
    log: Any = None,
) -> list[dict[str, Any]]:
    """The ``categorize --json`` records (the schema is a contract; ``roles`` was added to each
    token after ``categories``)."""
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
    if log is not None:
        log(f"data: {data.source} ({data.location}); {data.notes}")
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
    out = _output_path(args.out) if args.out else None
    recs = categorize_records(args.model, args.task, args.seed, args.k, args.n_test,
                              args.stopword_variant, args.data_source,
                              log=lambda s: print(s, file=sys.stderr))
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
    if out is not None:
        out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _output_path(text: str) -> Path:
    """An output file path whose folder is created; a clear error if it cannot be written."""
    path = Path(text)
    if path.is_dir():
        raise ValueError(f"output path {path} is a directory; give a file name, e.g. "
                         f"{path / 'out.csv'}.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"cannot create the folder of {path}: a parent is a file; choose "
                         "another path.") from None
    except PermissionError:
        raise ValueError(f"cannot create the folder of {path}: permission denied.") from None
    return path


def _cmd_ablate(args: argparse.Namespace) -> int:
    from .analysis.tables import accuracy_table, format_accuracy_table
    from .experiments import AblationConfig, run_ablation

    out = _output_path(args.out)
    cfg = AblationConfig(
        model=args.model, task=args.task, seeds=tuple(args.seeds), k=args.k, n_test=args.n_test,
        conditions=tuple(args.conditions.split(",")), scoring=args.scoring, engine=args.engine,
        stopword_variant=args.stopword_variant, hide_bos=args.hide_bos,
        query_scope=args.query_scope, data_source=args.data_source, batch_size=args.batch_size,
        layers=args.layers, heads=args.heads, mode=args.mode,
        dtype=args.dtype, device=args.device,
    )
    df = run_ablation(cfg, out=out, progress=not args.no_progress)
    print(f"accuracy (%, {args.scoring}), mean ± std over {len(cfg.seeds)} seed(s):")
    print(format_accuracy_table(accuracy_table(df), data_note=df.attrs.get("data")))
    print(f"rows: {out}")
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from .analysis.tables import accuracy_by_seed, accuracy_table, format_accuracy_table
    from .experiments import AblationConfig, run_ablation
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
    note = df.attrs.get("data")
    print(format_accuracy_table(table, paper, paper_label="paper Llama-7B", data_note=note))
    label_table = accuracy_table(df, metric="label_correct")
    print("\nlabel-restricted scoring (acc_label, secondary):")
    print(format_accuracy_table(label_table, data_note=note))
    fig = accuracy_bar(accuracy_by_seed(df), paper, name=f"{cfg.model} (acc_gen)",
                       paper_name="paper Llama-7B", title="SST-2: accuracy by condition")
    paths = save_figure(fig, out_dir / "quickstart")
    print(f"\nrows: {csv_path}\nfigure: {', '.join(str(p) for p in paths)}")
    print(f"quickstart took {time.time() - t0:.0f} s")
    return 0


def _join_dash_values(argv: list[str]) -> list[str]:
    """``--conditions -template`` → ``--conditions=-template``: argparse would take a value that
    starts with ``-`` for an option; every part must be a known condition name."""
    from .ablation.conditions import ALIASES, PAPER_ORDER

    names = set(PAPER_ORDER) | set(ALIASES) | {"all"}
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if (a == "--conditions" and nxt is not None and nxt.startswith("-")
                and all(p.strip() in names for p in nxt.split(",") if p.strip())):
            out.append(f"{a}={nxt}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (errors print one clear line, exit 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(_join_dash_values(argv))
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
    except (ValueError, RuntimeError, KeyError, TypeError, ModuleNotFoundError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
    return 1
