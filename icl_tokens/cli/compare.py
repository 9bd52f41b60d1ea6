"""``compare`` and ``power``: inference on tidy rows (no model).

    python -m icl_tokens compare results/run.csv --conditions icl,icl-content [--json]
    python -m icl_tokens power results/pilot --effect 5 --metric acc_gen
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

__all__ = ["add_compare_parsers", "cmd_compare", "cmd_power", "read_rows"]


def read_rows(paths: Sequence[str]) -> pd.DataFrame:
    """The tidy rows of CSV files and/or results folders (a folder: its ``tidy/*.csv[.gz]`` or,
    failing that, its ``*.csv``), with a ``source`` column naming each row's file."""
    from ..results.tidy import read_tidy

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("tidy/*.csv")) + sorted(p.glob("tidy/*.csv.gz")) or \
                sorted(p.glob("*.csv"))
            if not found:
                raise ValueError(f"{p}: a folder with no tidy/*.csv and no *.csv; pass the CSV "
                                 "an ablate run wrote, or a reproduce folder.")
            files += found
        else:
            files.append(p)
    return pd.concat([read_tidy(f).assign(source=str(f)) for f in files], ignore_index=True)


def _pair(text: str) -> tuple[str, str]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"--conditions takes two names A,B; got {text!r}.")
    return parts[0], parts[1]


def add_compare_parsers(sub: argparse._SubParsersAction, int_list: Any) -> None:
    """Register ``compare`` and ``power`` (``int_list``: the parser's list type, passed in by
    :func:`~icl_tokens.cli.parser.build_parser`)."""

    def seed_counts(text: str) -> list[int]:
        vals = int_list(text, allow_negative=False, what="--seeds")
        if not vals or min(vals) < 2:
            raise argparse.ArgumentTypeError(f"seed counts must be >= 2; got {text!r}.")
        return vals

    metrics = ["acc_gen", "acc_label", "calibrated", "margin"]
    c = sub.add_parser("compare", help="is a difference real? the paired effect B − A of two "
                       "conditions, with its interval on the crossed seeds x examples design")
    c.add_argument("results", nargs="+", help="tidy CSVs (ablate, any level) or reproduce "
                   "folders")
    c.add_argument("--conditions", type=_pair, required=True, metavar="A,B",
                   help="the baseline A and the condition B; the effect is B − A")
    c.add_argument("--metric", default="acc_gen", choices=metrics)
    c.add_argument("--json", action="store_true", help="one JSON object")
    c.set_defaults(handler="icl_tokens.cli.compare:cmd_compare")

    p = sub.add_parser("power", help="budget planner: seeds x examples that detect a paired "
                       "effect with 80%% power, from a pilot run's variance components")
    p.add_argument("pilot", nargs="+", help="a pilot run's tidy CSVs or reproduce folder")
    p.add_argument("--effect", type=float, required=True,
                   help="the paired difference to detect (points for accuracies, nats for the "
                        "margin)")
    p.add_argument("--metric", default="acc_gen", choices=metrics)
    p.add_argument("--conditions", type=_pair, default=None, metavar="A,B",
                   help="plan for this pair only (default: the pairs the tables test)")
    p.add_argument("--power", type=float, default=0.8)
    p.add_argument("--seeds", type=seed_counts, default=[3, 5, 8, 10, 15, 20, 30],
                   help="the numbers of seeds to plan for, e.g. 5,10,15")
    p.add_argument("--max-examples", type=int, default=500)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler="icl_tokens.cli.compare:cmd_power")


def cmd_compare(args: argparse.Namespace) -> int:
    from ..analysis.compare import compare

    rows = read_rows(args.results)
    a, b = args.conditions
    res = compare(rows, a, b, args.metric)
    print(json.dumps(res.to_dict(), indent=2, default=float) if args.json else res.text())
    return 0


def cmd_power(args: argparse.Namespace) -> int:
    from ..analysis.compare import prepare_rows
    from ..analysis.power import default_pairs, pilot_components, plan_pairs, summarize_plan

    if not 0 < args.power < 1:
        raise ValueError(f"--power must be in (0, 1), got {args.power}.")
    rows, col = prepare_rows(read_rows(args.pilot), args.metric)
    conds = list(dict.fromkeys(rows["condition"]))
    pairs = [args.conditions] if args.conditions else default_pairs(conds)
    if not pairs:
        raise ValueError(f"no pair to plan for among the conditions {conds}; pass "
                         "--conditions A,B.")
    comps = pilot_components(rows, pairs, col)
    per_pair = plan_pairs(comps, args.effect, power=args.power, max_examples=args.max_examples,
                          seeds=args.seeds)
    table = summarize_plan(per_pair)
    if args.json:
        print(json.dumps({"components": comps.to_dict("records"),
                          "plan": table.to_dict("records"),
                          "per_pair": per_pair.to_dict("records")}, indent=2, default=float))
        return 0
    unit = "points" if col in ("correct", "label_correct", "calibrated_correct") else "nats"
    print(f"pilot variance components of each paired difference ({unit}², {col}):")
    show = comps.assign(pair=comps["a"] + " − " + comps["b"])[
        ["model", "task", "pair", "diff", "var_seed", "var_example", "var_residual",
         "pilot_seeds", "pilot_examples"]]
    print(show.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    print(f"\nexamples needed to detect {args.effect:g} {unit} with {args.power:.0%} power "
          "(two-sided, 5%), per number of seeds (blank: not reachable with at most "
          f"{args.max_examples} examples):")
    print(table.to_string(index=False, na_rep="", float_format=lambda x: f"{x:.0f}"))
    print("\nper pair (examples needed; blank: not reachable):")
    print(per_pair.to_string(index=False, na_rep="", float_format=lambda x: f"{x:.0f}"))
    print("\nnote: pilot variances from few seeds are noisy; rerun the planner on the larger run.",
          file=sys.stdout)
    return 0
