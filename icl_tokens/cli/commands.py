"""The sub-commands: ``categorize``, ``ablate`` (all levels), ``quickstart``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["categorize_records", "cmd_categorize", "cmd_ablate", "cmd_quickstart"]

_PAPER_TASKS = ("agnews", "sst2", "trec", "dbpedia", "rte", "cb")


def categorize_records(
    model: str, task_name: str, seed: int, k: int, n_test: int | None,
    stopword_variant: str = "paper", data_source: str | None = None, tokenizer: Any = None,
    log: Any = None, removal: Any = None, template: str = "original",
) -> list[dict[str, Any]]:
    """The ``categorize --json`` records (the schema is a contract; ``roles`` was added to each
    token after ``categories``).

    With ``removal`` (a :class:`~icl_tokens.prompts.removal.TokenRemoval`), ``tokens`` lists only
    the kept tokens (their original offsets, categories and roles), and the record gains
    ``condition`` and ``n_tokens`` (the kept length, as in the token-level CSV).

    With a variant ``template`` (``swap``, ``randomfixed:N``, ...; see
    :mod:`icl_tokens.prompts.variants`) the prompts are built from it and the record gains
    ``template`` (its canonical spec)."""
    from ..categorize import categorize, label_token_ids
    from ..data import load_task_data
    from ..episodes import sample_episode
    from ..prompts.variants import ORIGINAL, variant_templates
    from ..tasks import load_task

    task = load_task(task_name)
    variant = variant_templates(task, template)  # a bad spec fails before any tokenizer loads
    if tokenizer is None:
        from ..models import load_tokenizer

        tokenizer = load_tokenizer(model)
    data = load_task_data(task, source=data_source)
    if log is not None:
        log(f"data: {data.source} ({data.location}); {data.notes}")
    ep = sample_episode(data, seed, k=k, n_test=n_test)
    out = []
    for test in ep.tests:
        tp = categorize(variant.build(ep.demos, test), tokenizer,
                        stopword_variant=stopword_variant)
        rec = {
            "model": model, "task": task.name, "seed": seed, "k": k, "example_id": test.id,
            "gold": tp.prompt.gold, "prompt": tp.prompt.text, "tokens": tp.table(),
            "labels": label_token_ids(variant.task, tokenizer, tp.prompt.text),
        }
        if variant.spec != ORIGINAL:
            rec["template"] = variant.spec
        if removal is not None:
            drop = removal.drop(tp)
            rec["tokens"] = [t for t, d in zip(rec["tokens"], drop) if not d]
            rec["condition"] = removal.condition
            rec["n_tokens"] = len(rec["tokens"])
        out.append(rec)
    return out


def cmd_categorize(args: argparse.Namespace) -> int:
    out = _output_path(args.out, "out.jsonl") if args.out else None
    removal = None
    if args.removal is not None:
        from ..prompts.removal import TokenRemoval

        removal = TokenRemoval(args.removal, scope=args.scope,
                               restore_in_demos=args.restore_in_demos)
    elif args.scope != "all" or args.restore_in_demos:
        raise ValueError("--scope and --restore-in-demos need --removal CONDITION.")
    recs = categorize_records(args.model, args.task, args.seed, args.k, args.n_test,
                              args.stopword_variant, args.data_source,
                              log=lambda s: print(s, file=sys.stderr), removal=removal,
                              template=args.template)
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


def _output_path(text: str, example: str) -> Path:
    """An output file path whose folder is created; a clear error if it cannot be written."""
    from ..results import check_output_path

    path = Path(text)
    check_output_path(path, example)
    return path


def _ablate_config(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """The config, run function and paper cells of ``ablate --level``."""
    common = dict(model=args.model, task=args.task, seeds=tuple(args.seeds), k=args.k,
                  n_test=args.n_test, scoring=args.scoring, engine=args.engine,
                  stopword_variant=args.stopword_variant, data_source=args.data_source,
                  batch_size=args.batch_size, dtype=args.dtype, device=args.device,
                  shard=args.shard, device_map=args.device_map)
    conds = None if args.conditions == "all" else tuple(args.conditions.split(","))
    rep_only = {"--layers": args.layers, "--heads": args.heads, "--hide-bos": args.hide_bos or None,
                "--query-scope": None if args.query_scope == "test" else args.query_scope,
                "--mode": None if args.mode == "scores" else args.mode}
    tok_only = {"--scope": None if args.scope == "all" else args.scope,
                "--restore-in-demos": args.restore_in_demos or None}
    level = args.level
    agg_only = {"--agg-scope": None if args.agg_scope == "all" else args.agg_scope,
                "--agg-layers": args.agg_layers, "--compare": args.compare or None}
    if args.aggregation is not None and level != "representation":
        raise ValueError(f"--aggregation is a representation-level knockout; drop --level {level}.")
    lonely = [k for k, v in agg_only.items() if v is not None]
    if lonely and args.aggregation is None:
        raise ValueError(f"{', '.join(lonely)} need(s) --aggregation.")
    wrong = [k for k, v in {**(rep_only if level != "representation" else {}),
                            **(tok_only if level != "token" else {})}.items() if v is not None]
    if wrong:
        raise ValueError(f"{', '.join(wrong)} do(es) not apply to --level {level}.")
    if args.template != "original" and (level != "representation"
                                        or getattr(args, "aggregation", None) is not None):
        raise ValueError("--template applies to --level representation without --aggregation "
                         "(for Tables 8-10 run the 'variants' sub-command).")
    if level == "token":
        from ..experiments.token_level import (
            TABLE4_ROWS,
            TokenAblationConfig,
            run_token_ablation,
        )

        cfg = TokenAblationConfig(**common, scope=args.scope,
                                  restore_in_demos=args.restore_in_demos,
                                  **({} if conds is None else {"conditions": conds}))
        return cfg, run_token_ablation, {k: (4, v, "") for k, v in TABLE4_ROWS.items()}
    if level == "template-parts":
        from ..experiments.template_parts import PAPER_CELLS, PartsConfig, run_template_parts

        cfg = PartsConfig(**common, **({} if conds is None else {"conditions": conds}))
        return cfg, run_template_parts, dict(PAPER_CELLS)
    from ..experiments import AblationConfig, run_ablation

    rep = dict(**common, hide_bos=args.hide_bos, query_scope=args.query_scope,
               layers=args.layers, heads=args.heads, mode=args.mode)
    if args.aggregation is not None:
        return _aggregation_config(args, rep, conds)
    cfg = AblationConfig(**rep, conditions=conds if conds is not None else ("all",),
                         template=args.template)
    return cfg, run_ablation, {}


def _aggregation_config(args: argparse.Namespace, rep: dict[str, Any],
                        conds: tuple[str, ...] | None) -> tuple[Any, Any, dict[str, Any]]:
    """``ablate --aggregation``: the block rows (and with ``--compare`` the rows without it)."""
    from ..aggregation.experiment import AGGREGATION_CONDITIONS, AggregationConfig, run_aggregation

    cfg = AggregationConfig(**rep, conditions=conds or AGGREGATION_CONDITIONS,
                            block_queries=args.aggregation, block_scope=args.agg_scope,
                            block_layers=args.agg_layers)

    def run(cfg: Any, out: Path, progress: bool) -> Any:
        return run_aggregation(cfg, compare=args.compare, out=out, progress=progress)

    return cfg, run, {}


def cmd_ablate(args: argparse.Namespace) -> int:
    from ..analysis.tables import accuracy_table, format_accuracy_table
    from ..reference import paper_cells_table, paper_condition_table

    out = _output_path(args.out, "run.csv")
    cfg, run, cells = _ablate_config(args)
    df = run(cfg, out=out, progress=not args.no_progress)
    if args.aggregation is not None:
        return _print_aggregation(args, cfg, df, out)
    tasks = [t for t in dict.fromkeys(df["task"]) if t in _PAPER_TASKS]
    paper = None
    if args.template != "original":
        tasks = []  # the paper's Tables 2/3 ran the original templates; Tables 8-10: `variants`
    if tasks:
        paper = (paper_condition_table(args.paper_model, tasks) if args.level == "representation"
                 else paper_cells_table(cells, args.paper_model, tasks) if cells else None)
    print(f"accuracy (%, {args.scoring}), mean ± std over {len(cfg.seeds)} seed(s), "
          f"level {args.level}" + (f", template {args.template}" if paper is None
                                   and args.template != "original" else "") + ":")
    print(format_accuracy_table(accuracy_table(df), paper, paper_label=f"paper {args.paper_model}",
                                data_note=df.attrs.get("data"), order=list(cfg.conditions)))
    if args.scoring == "generate":
        print("\nlabel-restricted scoring (acc_label, secondary):")
        print(format_accuracy_table(accuracy_table(df, metric="label_correct"),
                                    order=list(cfg.conditions)))
    print(f"rows: {out}")
    if cfg.shard is not None:
        print(f"this is shard {cfg.shard} of the run (the table above covers only its rows); "
              "join all of them with: python -m icl_tokens merge OUT.csv SHARD.csv ...")
    return 0


def _print_aggregation(args: argparse.Namespace, cfg: Any, df: Any, out: Path) -> int:
    """The block rows' accuracy table (the paper has no numbers for this experiment), and with
    ``--compare`` the side-by-side table with paired differences."""
    from ..aggregation.experiment import baseline_path, compare_table
    from ..analysis.tables import accuracy_table, format_accuracy_table

    metrics = ["correct"] + (["label_correct"] if args.scoring == "generate" else [])
    name = cfg.block().name
    for metric in metrics:
        what = "acc_gen" if metric == "correct" and args.scoring == "generate" else (
            "acc_label" if metric == "label_correct" else args.scoring)
        if args.compare:
            print(f"accuracy (%, {what}) without and with the block {name}, "
                  f"{len(cfg.seeds)} seed(s); Δ = block − none, paired SE over examples:")
            print(compare_table(df, metric).round(1).to_string())
        else:
            block = df[df["aggregation"] != "none"]
            print(f"accuracy (%, {what}) with the aggregation block {name}, mean ± std over "
                  f"{len(cfg.seeds)} seed(s):")
            print(format_accuracy_table(accuracy_table(block, metric=metric),
                                        data_note=df.attrs.get("data"),
                                        order=list(cfg.conditions)))
    print(f"rows: {out}" + (f" (without the block: {baseline_path(out)})" if args.compare else ""))
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from ..analysis.tables import accuracy_by_seed, accuracy_table, format_accuracy_table
    from ..experiments import AblationConfig, run_ablation
    from ..plotting import accuracy_bar, save_figure
    from ..reference import paper_condition_table

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
