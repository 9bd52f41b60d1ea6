"""Command line: ``python -m icl_tokens {categorize,ablate,quickstart,tasks,models}``.

Modules: :mod:`~icl_tokens.cli.parser` (options and argument types),
:mod:`~icl_tokens.cli.commands` (what each sub-command does). Errors print one line,
``error: ...``, and exit 2.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Sequence

from .commands import categorize_records, cmd_ablate, cmd_categorize, cmd_quickstart
from .parser import _int_list, build_parser

__all__ = ["main", "build_parser", "categorize_records", "_int_list"]


def _condition_names() -> set[str]:
    """Every condition name and alias of every level (for :func:`_join_dash_values`)."""
    from ..ablation.conditions import ALIASES, PAPER_ORDER
    from ..experiments.template_parts import PART_CONDITIONS
    from ..prompts.removal import _ALIASES as TOKEN_ALIASES
    from ..prompts.removal import TOKEN_CONDITIONS

    return (set(PAPER_ORDER) | set(ALIASES) | {"all"} | set(TOKEN_CONDITIONS)
            | set(TOKEN_ALIASES) | set(PART_CONDITIONS))


def _join_dash_values(argv: list[str]) -> list[str]:
    """``--conditions -template`` → ``--conditions=-template`` (also ``--removal``): argparse
    would take a value that starts with ``-`` for an option; every part must be a known
    condition name. The names are loaded only when such a value is present."""
    names: set[str] | None = None
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if a in ("--conditions", "--removal") and nxt is not None and nxt.startswith("-"):
            names = _condition_names() if names is None else names
            if all(p.strip() in names for p in nxt.split(",") if p.strip()):
                out.append(f"{a}={nxt}")
                i += 2
                continue
        out.append(a)
        i += 1
    return out


def _resolve(handler: str) -> Callable[[Any], int]:
    """``"icl_tokens.cli.probe:cmd_probe"`` → the function (imported only when it runs).

    A sub-command registers itself in :func:`~icl_tokens.cli.parser.build_parser` with
    ``p.set_defaults(handler="module:function")``, so ``--help`` never imports experiment code."""
    module, _, name = handler.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (errors print one clear line, exit 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(_join_dash_values(argv))
    try:
        handler = getattr(args, "handler", None)
        if handler is not None:
            args.argv = argv
            return _resolve(handler)(args)
        if args.command == "categorize":
            return cmd_categorize(args)
        if args.command == "ablate":
            return cmd_ablate(args)
        if args.command == "quickstart":
            return cmd_quickstart(args)
        if args.command == "tasks":
            from ..tasks import list_tasks, load_task

            for name in list_tasks():
                print(f"{name:10} {load_task(name).description}")
            return 0
        if args.command == "models":
            from ..models import KNOWN_MODELS

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
