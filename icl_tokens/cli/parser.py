"""The command-line parser: sub-commands, options and argument types that refuse bad input.

Index lists (``--layers``, ``--heads``, ``--seeds``) never silently drop or reorder anything: a
backwards range or a repeated index is an error.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..ablation.conditions import PAPER_ORDER
from ..ablation.registry import NAMESPACES
from .options import (
    _add_common,
    _add_executor_options,
    _batch_size,
    _int_list,
    _non_negative,
    _positive,
    _seeds,
    _shard,
    executor_from_args,
)

__all__ = ["build_parser", "executor_from_args"]


def _add_aggregation_options(a: argparse.ArgumentParser) -> None:
    """``ablate --aggregation``: the demonstration-internal block (paper-spec E9)."""
    a.add_argument("--aggregation", nargs="?", const="all", default=None,
                   choices=["all", "t_out", "label", "last_colon"], metavar="QUERIES",
                   help="also block demonstration template/stopword/label tokens (and not "
                        "content) from attending to demonstration content tokens, in the prefix; "
                        "QUERIES restricts the blocked queries: all (default), t_out, label, "
                        "last_colon. Rows gain an 'aggregation' column")
    a.add_argument("--agg-scope", default="all", choices=["all", "own"],
                   help="with --aggregation: content keys of every demonstration up to the query "
                        "(all) or only of the query's own demonstration (own)")
    a.add_argument("--agg-layers", type=_int_list, default=None,
                   help="with --aggregation: block only in these layers (default: all)")
    a.add_argument("--compare", action="store_true",
                   help="with --aggregation: also run the same conditions without the block "
                        "(rows in F.noblock.csv) and print both side by side")


def _add_run_options(p: argparse.ArgumentParser, out_example: str) -> None:
    """Scoring, engine, batching, device and output options of a sweep sub-command."""
    p.add_argument("--scoring", default="label", choices=["generate", "label"])
    p.add_argument("--engine", default="cached", choices=["cached", "naive"])
    p.add_argument("--batch-size", type=_positive, default=16)
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--out", required=True,
                   help=f"CSV path (resumable), e.g. {out_example}; a .meta.json sidecar is "
                        "written")
    p.add_argument("--no-progress", action="store_true")


def _add_aggregation_commands(sub: Any) -> None:
    """``windows`` (layer-window sweeps) and ``control`` (count-matched random control)."""
    w = sub.add_parser("windows", help="layer-window sweeps: where the test example reads the "
                       "kinds (--target test) or where demonstrations aggregate (--target block)")
    _add_common(w, many_seeds=True)
    w.add_argument("--conditions", default="+template,+stopword,icl-template",
                   help="representation-level conditions (not zero_shot)")
    w.add_argument("--target", default="test", choices=["test", "block"])
    w.add_argument("--width", type=_positive, default=None,
                   help="window width in layers (default n_layers // 4)")
    w.add_argument("--agg-queries", default="all", choices=["all", "t_out", "label", "last_colon"])
    w.add_argument("--agg-scope", default="all", choices=["all", "own"])
    _add_run_options(w, "windows.csv")
    _add_executor_options(w)
    w.set_defaults(handler="icl_tokens.cli.aggregation:cmd_windows")

    c = sub.add_parser("control", help="count-matched random control: hide as many random "
                       "demonstration tokens as each category condition hides")
    _add_common(c, many_seeds=True)
    c.add_argument("--conditions",
                   default="+template,+stopword,+content,icl-template,icl-stopword,icl-content")
    c.add_argument("--draws", type=_positive, default=5, help="random draws per seed")
    _add_run_options(c, "control.csv")
    _add_executor_options(c)
    c.set_defaults(handler="icl_tokens.cli.aggregation:cmd_control")


def _add_template_option(p: argparse.ArgumentParser) -> None:
    """``--template V``: build the prompts from a template variant (paper §5.2, Tables 8-10)."""
    p.add_argument("--template", default="original", metavar="V",
                   help="template variant: original (default), swap, randomfixed:N or "
                        "randomnonfixed:N (N in 1..5; paper Appendix D), or your own from "
                        "data/variants/")


def _add_variants_command(sub: Any) -> None:
    """``variants``: Tables 8-10 (lexical meaning, repetition, structural cues)."""
    v = sub.add_parser("variants", help="template variants: Tables 8 (swap, randomfixed), 9 "
                       "(randomnonfixed) and 10 (one-shot randomfixed, +TEMP, +':')")
    _add_common(v, many_seeds=True)
    v.add_argument("--tables", default="8,9,10",
                   help="comma list of 8, 9, 10 (default all three)")
    v.add_argument("--numbers", type=_int_list, default=None,
                   help="random-string templates to run, e.g. 1-5 (default: all)")
    v.add_argument("--conditions", default="",
                   help="beyond the paper: also run every variant under these "
                        "representation-level conditions ('all' or a comma list)")
    v.add_argument("--paper-model", default="Llama-7B",
                   help="the paper's model printed beside our numbers (default Llama-7B)")
    v.add_argument("--scoring", default="generate", choices=["generate", "label"])
    v.add_argument("--engine", default="cached", choices=["cached", "naive"])
    v.add_argument("--batch-size", type=_positive, default=16)
    v.add_argument("--device", default=None)
    v.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    v.add_argument("--out", required=True,
                   help="CSV path (resumable), e.g. variants.csv; a .meta.json sidecar is written")
    v.add_argument("--no-progress", action="store_true")
    _add_executor_options(v)
    v.set_defaults(handler="icl_tokens.cli.variants:cmd_variants")


def _add_reproduce_commands(sub: Any) -> None:
    """``reproduce`` and ``report`` (tables from results folders, no model)."""
    r = sub.add_parser("reproduce", help="every experiment behind the paper's tables into one "
                       "results folder (tidy data, tables beside the paper's, report, provenance)")
    r.add_argument("--tables", default="all",
                   help="'all' or a comma list of 2,3,4,5,6,8,9,10,14,15")
    r.add_argument("--model", default="gemma-3-270m")
    r.add_argument("--tasks", default=None,
                   help="comma list (default: the paper's six: agnews,sst2,trec,dbpedia,rte,cb)")
    r.add_argument("--budget", default="smoke",
                   choices=["smoke", "small", "pilot", "planned", "paper"],
                   help="smoke: 1 seed x 1 example, template #1 (CI); small: 2 seeds x 12; "
                        "pilot: 3 x 40 (for the planner, `power`); planned: 10 x 80 (the "
                        "planner's budget for Tables 2, 3, 15); paper: 15 seeds x 500, k = 4")
    r.add_argument("--out-dir", default=None,
                   help="results folder (default results/reproduce-<model>-<budget>); a rerun "
                        "resumes it")
    r.add_argument("--scoring", default="generate", choices=["generate", "label"])
    r.add_argument("--paper-model", default="Llama-7B")
    r.add_argument("--batch-size", type=_positive, default=16)
    r.add_argument("--device", default=None)
    r.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    r.add_argument("--data-source", default=None, choices=["dir", "staicc", "hf"])
    r.add_argument("--no-progress", action="store_true")
    _add_executor_options(r)
    r.set_defaults(handler="icl_tokens.cli.reproduce:cmd_reproduce")

    p = sub.add_parser("report", help="rewrite the tables and reports of results folders (no "
                       "model); --doc writes a combined page such as docs/results.md")
    p.add_argument("folders", nargs="+", help="results folders made by reproduce")
    p.add_argument("--doc", default=None, help="also write this markdown page")
    p.add_argument("--note", default=None,
                   help="with --doc: a paragraph put under the page's title (e.g. which budget "
                        "and why)")
    p.add_argument("--note-file", default=None,
                   help="with --doc: read that paragraph from this (committed) file instead")
    p.set_defaults(handler="icl_tokens.cli.reproduce:cmd_report")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (sub-commands)."""
    parser = argparse.ArgumentParser(
        prog="python -m icl_tokens",
        description="icl_tokens: performance-critical tokens in ICL (Bai et al., 2401.11323)")
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("categorize", help="per-token categories of each test prompt")
    _add_common(c, many_seeds=False)
    c.add_argument("--json", action="store_true", help="JSON lines, one per test example")
    c.add_argument("--out", default=None, help="write to this file instead of stdout")
    c.add_argument("--removal", default=None,
                   help="show the prompt a token-level condition keeps (icl-content, "
                        "icl-stopword, icl-template, icl-template+last; aliases -content, ...): "
                        "'tokens' lists only the kept tokens; adds 'condition' and 'n_tokens'")
    c.add_argument("--scope", default="all", choices=["all", "demos"],
                   help="with --removal: remove in demonstrations and test (all) or demos only")
    c.add_argument("--restore-in-demos", action="store_true",
                   help="with --removal icl-template+last: also keep each demonstration's colon")
    _add_template_option(c)
    c.set_defaults(handler="icl_tokens.cli.commands:cmd_categorize")

    a = sub.add_parser("ablate", help="knockouts and removals: --level representation (paper "
                       "Tables 2, 3), token (Table 4), template-parts (Tables 5, 6)")
    _add_common(a, many_seeds=True)
    a.add_argument("--level", default="representation", choices=list(NAMESPACES),
                   help="representation: hide the test example's attention to kinds of "
                        "demonstration tokens; token: remove tokens from the prompt "
                        "(conditions icl, icl-content, icl-stopword, icl-template, "
                        "icl-template+last); template-parts: only parts of the template visible "
                        "(temp/t_out/t_in, -colon, +label/-label)")
    a.add_argument("--scope", default="all", choices=["all", "demos"],
                   help="token level: remove in the demonstrations and the test example (all, "
                        "the paper's) or only in the demonstrations")
    a.add_argument("--restore-in-demos", action="store_true",
                   help="token level, icl-template+last: also keep each demonstration's colon")
    a.add_argument("--paper-model", default="Llama-7B",
                   help="the paper's model printed beside our numbers (default Llama-7B)")
    a.add_argument("--conditions", default="all",
                   help="'all' or a comma list of " + ",".join(PAPER_ORDER) + " (aliases: "
                        "-template, minus_temp, only_temp, ...; write --conditions=-template "
                        "for a name that starts with '-')")
    a.add_argument("--scoring", default="generate", choices=["generate", "label"])
    a.add_argument("--engine", default="cached", choices=["cached", "naive"])
    a.add_argument("--batch-size", type=_batch_size, default=16,
                   help="rows per forward (default 16), or 'auto'; on CUDA out-of-memory the "
                        "batch is halved and retried")
    a.add_argument("--hide-bos", action="store_true", help="also hide BOS (Appendix B accident)")
    a.add_argument("--query-scope", default="test", choices=["test", "last"])
    a.add_argument("--layers", type=_int_list, default=None,
                   help="knock out only these layers, e.g. 0-8 or 0,4,-1 (default: all)")
    a.add_argument("--heads", type=_int_list, default=None,
                   help="knock out only these query heads (default: all)")
    a.add_argument("--mode", default="scores", choices=["scores", "pattern"],
                   help="scores: -inf before softmax (renormalised; the paper's); pattern: zero "
                        "after softmax, not renormalised")
    _add_template_option(a)
    _add_aggregation_options(a)
    a.add_argument("--device", default=None)
    a.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    a.add_argument("--device-map", default=None,
                   choices=["auto", "balanced", "balanced_low_0", "sequential"],
                   help="spread a model larger than one GPU over the visible GPUs (accelerate, "
                        "through the bridge); instead of --device")
    a.add_argument("--out", required=True,
                   help="CSV path (resumable); a .meta.json sidecar is written")
    a.add_argument("--shard", type=_shard, default=None, metavar="K/N",
                   help="score only shard K of N of the run's (seed, block of examples) units, "
                        "into its own resumable --out; join them with 'merge' (docs/scale.md)")
    a.add_argument("--no-progress", action="store_true")
    _add_executor_options(a)
    a.set_defaults(handler="icl_tokens.cli.commands:cmd_ablate")

    _add_aggregation_commands(sub)
    _add_reproduce_commands(sub)

    _add_variants_command(sub)

    q = sub.add_parser("quickstart",
                       help="Gemma-3-270M, SST-2, 2 seeds x 50 examples, all conditions")
    q.add_argument("--out-dir", default="results")
    q.add_argument("--n-test", type=_positive, default=50)
    q.add_argument("--seeds", type=_seeds, default=[0, 1])
    q.add_argument("--model", default="gemma-3-270m")
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(handler="icl_tokens.cli.commands:cmd_quickstart")

    m = sub.add_parser("merge", help="merge the --shard K/N CSVs of one run into one CSV equal "
                       "to the unsharded run")
    m.add_argument("out", help="the merged CSV (must not exist)")
    m.add_argument("shards", nargs="+", help="every shard CSV of the run (1/N ... N/N)")
    m.set_defaults(handler="icl_tokens.cli.merge:cmd_merge")

    from .compare import add_compare_parsers  # ``compare`` and ``power`` (no model)

    add_compare_parsers(sub, _int_list)

    from .probe import add_probe_parsers  # ``probe`` and ``attention``

    add_probe_parsers(sub, _add_common, _int_list, _positive, _non_negative)

    from .atlas import add_atlas_parsers  # ``atlas`` and ``atlas-report``

    add_atlas_parsers(sub)

    sub.add_parser("tasks", help="list the shipped task definitions").set_defaults(
        handler="icl_tokens.cli.commands:cmd_tasks")
    sub.add_parser("models", help="list the offline model names").set_defaults(
        handler="icl_tokens.cli.commands:cmd_models")
    return parser
