"""Sub-commands of the aggregation experiments: ``windows`` (layer-window sweeps) and
``control`` (the count-matched random control). ``ablate --aggregation`` lives in
:mod:`~icl_tokens.cli.commands`."""

from __future__ import annotations

import argparse
from typing import Any

from .commands import _output_path
from .notes import note
from .options import with_executor

__all__ = ["cmd_windows", "cmd_control"]


def _common(args: argparse.Namespace) -> dict[str, Any]:
    return dict(model=args.model, task=args.task, seeds=tuple(args.seeds), k=args.k,
                n_test=args.n_test, scoring=args.scoring, engine=args.engine,
                stopword_variant=args.stopword_variant, data_source=args.data_source,
                batch_size=args.batch_size, dtype=args.dtype, device=args.device)


def _conditions(text: str) -> tuple[str, ...]:
    conds = tuple(c.strip() for c in text.split(",") if c.strip())
    if not conds:
        raise ValueError("--conditions is empty; give a comma list such as +template,+stopword.")
    return conds


def _given(args: argparse.Namespace, flag: str) -> bool:
    """Whether the command line names ``flag`` (``--flag V``, ``--flag=V`` or an unambiguous
    prefix argparse accepted), so an option left at its default can be told from one given."""
    for arg in getattr(args, "argv", None) or ():
        name = arg.split("=", 1)[0]
        if name.startswith("--") and len(name) > len("--agg-") and flag.startswith(name):
            return True
    return False


def _check_block_options(args: argparse.Namespace) -> None:
    """``--agg-queries``/``--agg-scope`` shape the block only ``--target block`` places."""
    given = [f for f in ("--agg-queries", "--agg-scope") if _given(args, f)]
    if given and args.target != "block":
        raise ValueError(f"{' and '.join(given)} shape the aggregation block, which only "
                         f"--target block places in the window (this is --target "
                         f"{args.target}); drop {' and '.join(given)} or use --target block.")


def cmd_windows(args: argparse.Namespace) -> int:
    """Layer-window sweep; prints accuracy per window start for each condition."""
    from ..aggregation.windows import WindowConfig, run_layer_windows, window_curve

    _check_block_options(args)
    out = _output_path(args.out, "windows.csv")
    cfg = WindowConfig(**_common(args), conditions=_conditions(args.conditions),
                       target=args.target, width=args.width, block_queries=args.agg_queries,
                       block_scope=args.agg_scope)
    df = with_executor(args, lambda ex: run_layer_windows(
        cfg, out=out, progress=not args.no_progress, log=note, executor=ex), log=note)
    metric = "correct"
    print(f"accuracy (%, {args.scoring}) per layer window (target {args.target}); "
          f"{df.attrs.get('data')}:")
    print(window_curve(df, metric).round(1).to_string())
    print(f"rows: {out}")
    return 0


def cmd_control(args: argparse.Namespace) -> int:
    """Count-matched random control; prints each condition beside its random draws."""
    from ..experiments.random_control import (
        RandomControlConfig,
        control_table,
        run_random_control,
    )

    out = _output_path(args.out, "control.csv")
    cfg = RandomControlConfig(**_common(args), conditions=_conditions(args.conditions),
                              draws=args.draws)
    df = with_executor(args, lambda ex: run_random_control(
        cfg, out=out, progress=not args.no_progress, log=note, executor=ex), log=note)
    print(f"accuracy (%, {args.scoring}): each condition beside {args.draws} random draws that "
          f"hide as many demonstration tokens; {df.attrs.get('data')}:")
    print(control_table(df).round(1).to_string())
    print(f"rows: {out}")
    return 0
