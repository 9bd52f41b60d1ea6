"""The ``atlas`` and ``atlas-report`` sub-commands: the per-token criticality atlas.

``atlas`` runs (or resumes) :func:`~icl_tokens.atlas.run.run_atlas` into a CSV, one row per
(seed, test example, demonstration token), and prints the cross-check and roll-ups;
``atlas-report`` prints them again from CSVs (no model).
"""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from .notes import note
from .options import with_executor

__all__ = ["add_atlas_parsers", "cmd_atlas", "cmd_atlas_report", "atlas_summary"]


def add_atlas_parsers(sub: Any) -> None:
    """Register ``atlas`` and ``atlas-report`` (from
    :func:`~icl_tokens.cli.parser.build_parser`)."""
    from .options import _add_common, _add_executor_options, _batch_size, _int_list

    a = sub.add_parser("atlas", help="per-token criticality atlas: one knockout per "
                       "demonstration token (exact margin change) beside a one-pass "
                       "attention-edge attribution")
    _add_common(a, many_seeds=True)
    a.add_argument("--scoring", default="label", choices=["label", "generate"],
                   help="which prediction 'flipped' compares (the margin is always from label "
                        "scores); generate also knocks the key out for every generated token")
    a.add_argument("--layers", type=_int_list, default=None,
                   help="knock out (and attribute) only in these layers, e.g. 0-8 (default: "
                        "all)")
    a.add_argument("--groups", default="icl-template,icl-stopword,icl-content",
                   help="category knockouts measured beside the atlas for additivity (comma "
                        "list of representation-level conditions, or 'none')")
    a.add_argument("--engine", default="cached", choices=["cached", "naive"])
    a.add_argument("--batch-size", type=_batch_size, default=32,
                   help="knockouts per forward (default 32), or 'auto'")
    a.add_argument("--device", default=None)
    a.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    a.add_argument("--device-map", default=None,
                   choices=["auto", "balanced", "balanced_low_0", "sequential"],
                   help="spread a model larger than one GPU over the visible GPUs")
    _add_report_options(a)
    a.add_argument("--out", required=True,
                   help="CSV path (resumable: rerun the same command after a kill); a "
                        ".meta.json sidecar is written")
    a.add_argument("--no-progress", action="store_true")
    _add_executor_options(a)
    a.set_defaults(handler="icl_tokens.cli.atlas:cmd_atlas")

    r = sub.add_parser("atlas-report", help="cross-check and roll-ups of atlas CSVs (no model)")
    r.add_argument("csvs", nargs="+", help="atlas CSVs written by 'atlas --out'")
    _add_report_options(r)
    r.set_defaults(handler="icl_tokens.cli.atlas:cmd_atlas_report")


def _add_report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threshold", type=float, default=0.1,
                   help="exact |delta_margin| above which a token counts as critical in the "
                        "false-negative rate (default 0.1)")
    p.add_argument("--mass", type=float, default=0.8,
                   help="concentration: the share of a category's |effect| its carriers hold "
                        "(default 0.8)")


def _groups(text: str) -> tuple[str, ...]:
    if text.strip() == "none":
        return ()
    vals = tuple(v.strip() for v in text.split(",") if v.strip())
    if not vals:
        raise ValueError(f"--groups {text!r} names no condition; give a comma list such as "
                         "icl-template,icl-content, or 'none'.")
    return vals


def cmd_atlas(args: argparse.Namespace) -> int:
    """Run (or resume) the atlas; print its cross-check and roll-ups."""
    from ..atlas.run import AtlasConfig, run_atlas

    cfg = AtlasConfig(model=args.model, task=args.task, seeds=tuple(args.seeds), k=args.k,
                      n_test=args.n_test, scoring=args.scoring, engine=args.engine,
                      stopword_variant=args.stopword_variant, data_source=args.data_source,
                      batch_size=args.batch_size, dtype=args.dtype, device=args.device,
                      device_map=args.device_map,
                      layers=None if args.layers is None else tuple(args.layers),
                      groups=_groups(args.groups))
    df = with_executor(args, lambda ex: run_atlas(cfg, out=args.out,
                                                  progress=not args.no_progress, executor=ex),
                       log=note)
    print(atlas_summary(df, threshold=args.threshold, mass=args.mass))
    print(f"rows: {args.out}")
    return 0


def cmd_atlas_report(args: argparse.Namespace) -> int:
    """Print the cross-check and roll-ups of atlas CSVs."""
    from ..atlas.run import read_atlas

    df = pd.concat([read_atlas(p) for p in args.csvs], ignore_index=True)
    print(atlas_summary(df, threshold=args.threshold, mass=args.mass))
    return 0


def atlas_summary(df: pd.DataFrame, *, threshold: float = 0.1, mass: float = 0.8) -> str:
    """The cross-check, shares by category and role, concentration and additivity as text."""
    from ..atlas.crosscheck import cross_check
    from ..atlas.rollups import additivity, concentration, effect_shares

    if df.empty:
        return "atlas: no rows."
    cc = cross_check(df, threshold=threshold)
    parts = [f"atlas ({df.attrs.get('data', 'from CSV')}): {len(df)} tokens, "
             f"{df.groupby(['seed', 'example_id']).ngroups} examples",
             f"95% intervals: {_design(cc)}",
             "\ncross-check (attribution vs exact delta_margin; critical: |delta| > "
             f"{threshold}):",
             _fmt(cc, ["model", "task", "method", "n_examples", "spearman", "top5", "top10",
                       "fnr5", "fnr10", "n_above", "exact_s", "attribution_s", "speedup"]),
             "\nshare of total |delta_margin| by category:",
             _fmt(effect_shares(df, "categories"), ["task", "group", "share", "token_share"]),
             "\nshare of total |delta_margin| by role:",
             _fmt(effect_shares(df, "role"), ["task", "group", "share", "token_share"]),
             f"\nconcentration (tokens carrying {mass:.0%} of each category's |effect|):",
             _fmt(concentration(df, "categories", mass),
                  ["task", "group", "n_tokens", "carriers", "carrier_share"])]
    if any(c.startswith("group_") for c in df.columns):
        parts += ["\nadditivity (measured category knockout vs the sum of its tokens' "
                  "effects):",
                  _fmt(additivity(df), ["task", "group", "n_tokens", "measured", "summed",
                                        "interaction", "interaction_share"])]
    return "\n".join(parts)


def _design(cc: pd.DataFrame) -> str:
    """How the summary's intervals were computed (per task where tasks differ)."""
    notes = dict(zip(cc["task"], cc["interval"]))
    if len(set(notes.values())) == 1:
        what = next(iter(notes.values()))
    else:
        what = "; ".join(f"{t}: {n}" for t, n in notes.items())
    if what.startswith("crossed"):
        return (f"seeds and test examples crossed ({what[len('crossed t, '):]}): crossed "
                "random-effects t (ratios linearized)")
    return what + " — they say nothing about other demonstrations"


def _fmt(t: pd.DataFrame, cols: list[str]) -> str:
    """Columns, each measure with ``[lo, hi]`` where the table has them."""
    show = pd.DataFrame(index=t.index)
    for c in cols:
        if f"{c}_lo" in t.columns:
            show[c] = [f"{v:.3f} [{lo:.3f}, {hi:.3f}]"
                       for v, lo, hi in zip(t[c], t[f"{c}_lo"], t[f"{c}_hi"])]
        elif pd.api.types.is_float_dtype(t[c]):
            show[c] = t[c].map(lambda v: f"{v:.3f}")
        else:
            show[c] = t[c]
    return show.to_string(index=False)
