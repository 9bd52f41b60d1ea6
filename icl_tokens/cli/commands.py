"""The sub-commands: ``categorize``, ``ablate`` (all levels), ``quickstart``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..tasks import PAPER_TASKS
from .notes import note

__all__ = ["categorize_records", "cmd_categorize", "cmd_ablate", "cmd_quickstart", "cmd_tasks",
           "cmd_models"]



def categorize_records(
    model: str, task_name: str, seed: int, k: int, n_test: int | None,
    stopword_variant: str = "paper", data_source: str | None = None, tokenizer: Any = None,
    log: Any = None, removal: Any = None, template: str = "original",
) -> list[dict[str, Any]]:
    """The ``categorize --json`` records (the schema is a contract; ``roles`` was added to each
    token after ``categories``).

    With ``removal`` (a :class:`~icl_tokens.ablation.removal.TokenRemoval`), ``tokens`` lists only
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
        from ..ablation.removal import TokenRemoval

        removal = TokenRemoval(args.removal, scope=args.scope,
                               restore_in_demos=args.restore_in_demos)
    elif args.scope != "all" or args.restore_in_demos:
        raise ValueError("--scope and --restore-in-demos need --removal CONDITION.")
    recs = categorize_records(args.model, args.task, args.seed, args.k, args.n_test,
                              args.stopword_variant, args.data_source,
                              log=note, removal=removal,
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
        from ..results import make_parents

        make_parents(out)
        out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _output_path(text: str, example: str, option: str = "--out") -> Path:
    """An output file path that can be written (nothing is created yet); a clear error naming
    ``option`` if it cannot."""
    from ..results import check_output_path

    path = Path(text)
    check_output_path(path, example, option=option)
    return path


#: ``ablate`` options that set a config field → (field, the option's default). An option given
#: with a level whose config lacks the field is an error (it would do nothing).
_LEVEL_OPTIONS: dict[str, tuple[str, Any]] = {
    "--layers": ("layers", None), "--heads": ("heads", None), "--hide-bos": ("hide_bos", False),
    "--query-scope": ("query_scope", "test"), "--mode": ("mode", "scores"),
    "--scope": ("scope", "all"), "--restore-in-demos": ("restore_in_demos", False),
    "--template": ("template", "original"),
}
_AGG_OPTIONS = {"--agg-scope": ("agg_scope", "all"), "--agg-layers": ("agg_layers", None),
                "--compare": ("compare", False)}


def _given(args: argparse.Namespace, options: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """The options among ``options`` given with a non-default value: flag → value."""
    out = {}
    for flag, (field, default) in options.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value != default:
            out[flag] = (field, value)
    return out


def _ablate_config(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """The config, run function and paper cells of ``ablate --level`` (the level's declared
    experiment; its config's fields decide which options apply)."""
    import dataclasses

    from ..experiments.registry import ABLATE_LEVELS
    from ..experiments.runner import run_config

    exp = ABLATE_LEVELS[args.level]
    common = dict(model=args.model, task=args.task, seeds=tuple(args.seeds), k=args.k,
                  n_test=args.n_test, scoring=args.scoring, engine=args.engine,
                  stopword_variant=args.stopword_variant, data_source=args.data_source,
                  batch_size=args.batch_size, dtype=args.dtype, device=args.device,
                  shard=args.shard, device_map=args.device_map,
                  conditions=tuple(args.conditions.split(",")))
    fields = {f.name for f in dataclasses.fields(exp.config)}
    given = _given(args, _LEVEL_OPTIONS)
    wrong = [flag for flag, (field, _) in given.items() if field not in fields]
    if wrong == ["--template"]:
        raise ValueError("--template applies to --level representation without --aggregation "
                         "(for Tables 8-10 run the 'variants' sub-command).")
    if wrong:
        raise ValueError(f"{', '.join(wrong)} do(es) not apply to --level {args.level}.")
    lonely = list(_given(args, _AGG_OPTIONS))
    if args.aggregation is not None:
        if args.level != "representation":
            raise ValueError(f"--aggregation is a representation-level knockout; drop --level "
                             f"{args.level}.")
        if "--template" in given:
            raise ValueError("--template applies to --level representation without "
                             "--aggregation (for Tables 8-10 run the 'variants' sub-command).")
        return _aggregation_config(args, {**common, **{f: v for f, v in given.values()}})
    if lonely:
        raise ValueError(f"{', '.join(lonely)} need(s) --aggregation.")
    cfg = exp.config(**common, **{field: value for field, value in given.values()})
    cells = {c.name: (c.table, c.label, c.spec) for c in cfg.condition_objects()
             if c.table and c.label}

    def run(cfg: Any, out: Path, progress: bool) -> Any:
        from .options import with_executor

        return with_executor(args, lambda ex: run_config(cfg, out=out, progress=progress,
                                                         log=note, executor=ex), log=note)

    return cfg, run, cells


def _aggregation_config(args: argparse.Namespace, rep: dict[str, Any]
                        ) -> tuple[Any, Any, dict[str, Any]]:
    """``ablate --aggregation``: the block rows (and with ``--compare`` the rows without it)."""
    from ..aggregation.experiment import AGGREGATION_CONDITIONS, AggregationConfig, run_aggregation

    if rep["conditions"] == ("all",):
        rep["conditions"] = AGGREGATION_CONDITIONS
    cfg = AggregationConfig(**rep, block_queries=args.aggregation, block_scope=args.agg_scope,
                            block_layers=args.agg_layers)

    def run(cfg: Any, out: Path, progress: bool) -> Any:
        from .options import with_executor

        return with_executor(args, lambda ex: run_aggregation(
            cfg, compare=args.compare, out=out, progress=progress, log=note, executor=ex),
            log=note)

    return cfg, run, {}


def cmd_ablate(args: argparse.Namespace) -> int:
    from ..analysis.tables import accuracy_table, format_accuracy_table
    from ..reference import paper_cells_table, paper_condition_table

    out = _output_path(args.out, "run.csv")
    cfg, run, cells = _ablate_config(args)
    df = run(cfg, out=out, progress=not args.no_progress)
    if args.aggregation is not None:
        return _print_aggregation(args, cfg, df, out)
    tasks = [t for t in dict.fromkeys(df["task"]) if t in PAPER_TASKS]
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
    df = run_ablation(cfg, out=csv_path, progress=not args.no_progress, log=note)
    table = accuracy_table(df)
    paper = paper_condition_table(model="Llama-7B", tasks=["sst2"])
    print(f"\nSST-2, {len(cfg.seeds)} seeds x {args.n_test} examples, k=4, greedy generation "
          f"(acc_gen), model {cfg.model}:")
    data = df.attrs.get("data")
    print(format_accuracy_table(table, paper, paper_label="paper Llama-7B", data_note=data))
    label_table = accuracy_table(df, metric="label_correct")
    print("\nlabel-restricted scoring (acc_label, secondary):")
    print(format_accuracy_table(label_table, data_note=data))
    fig = accuracy_bar(accuracy_by_seed(df), paper, name=f"{cfg.model} (acc_gen)",
                       paper_name="paper Llama-7B", title="SST-2: accuracy by condition")
    paths = save_figure(fig, out_dir / "quickstart")
    print(f"\nrows: {csv_path}\nfigure: {', '.join(str(p) for p in paths)}")
    print(f"quickstart took {time.time() - t0:.0f} s")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from ..tasks import list_tasks, load_task

    for name in list_tasks():
        print(f"{name:10} {load_task(name).description}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from ..models import KNOWN_MODELS

    for name, desc in KNOWN_MODELS.items():
        print(f"{name:16} {desc}")
    return 0
