"""``reproduce`` (every experiment behind the paper's tables, one results folder) and
``report`` (tables and reports from results folders, e.g. docs/results.md; no model)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from .notes import note
from .options import executor_from_args

__all__ = ["cmd_reproduce", "cmd_report"]


#: Options that say where a folder was computed, not what it holds (left out of the command).
_WHERE = ("--out-dir", "--executor", "--ray-address", "--ray-workers", "--ray-cpus",
          "--ray-gpus")


def _command(argv: list[str]) -> str:
    """The command recorded in the provenance: what was run, not where (``--out-dir``,
    ``--no-progress``, ``--executor`` and the Ray options left out, so a folder regenerated
    elsewhere, or on a Ray cluster, is byte-identical)."""
    kept: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in _WHERE:
            skip = True
            continue
        if a.split("=", 1)[0] in _WHERE or a == "--no-progress":
            continue
        kept.append(a)
    return "python -m icl_tokens " + " ".join(shlex.quote(a) for a in kept)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from ..reproduce import parse_tables, reproduce

    tables = parse_tables(args.tables)
    tasks = args.tasks  # None (not given): the paper's six; "" or "," is an error
    command = _command(args.argv or [])
    executor = executor_from_args(args, log=note)
    try:
        out = reproduce(tables, model=args.model, tasks=tasks, budget=args.budget,
                        out_dir=args.out_dir, scoring=args.scoring,
                        paper_model=args.paper_model, batch_size=args.batch_size,
                        device=args.device, dtype=args.dtype, data_source=args.data_source,
                        progress=not args.no_progress, log=note, command=command.strip(),
                        executor=executor)
    finally:
        if executor is not None:
            executor.close()
    report = (out / "report.md").read_text(encoding="utf-8")
    print(report.split("## Provenance")[0].rstrip())
    print(f"\nresults folder: {out} (report.md, report.html, tables/, tidy/, runs/)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..analysis.report import write_report
    from ..analysis.results_page import results_doc

    note = args.note
    if args.note_file is not None:
        if note is not None:
            raise ValueError("pass --note or --note-file, not both.")
        note = Path(args.note_file).read_text(encoding="utf-8").strip()
    for f in args.folders:
        write_report(f)
    if args.doc:
        command = "python -m icl_tokens " + " ".join(shlex.quote(a) for a in args.argv or [])
        Path(args.doc).parent.mkdir(parents=True, exist_ok=True)
        Path(args.doc).write_text(results_doc(args.folders, command.strip(), note),
                                  encoding="utf-8")
        print(f"wrote {args.doc}")
    for f in args.folders:
        print(f"{f}: report.md, report.html, tables/ rewritten")
    return 0
