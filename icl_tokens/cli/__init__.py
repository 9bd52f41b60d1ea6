"""Command line: ``python -m icl_tokens <command>`` (``--help`` lists them).

Modules: :mod:`~icl_tokens.cli.parser` (options and argument types),
:mod:`~icl_tokens.cli.commands` (what each sub-command does). Every sub-command names its handler
(``module:function``) in the parser, imported only when it runs. Errors print one line,
``error: ...``, and exit 2; SIGTERM and Ctrl-C stop a run cleanly (its rows kept, exit 130).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Sequence

from ..plugins import load_plugins
from ..results.lock import terminate_as_interrupt
from .commands import categorize_records
from .options import _int_list
from .parser import build_parser

__all__ = ["main", "build_parser", "categorize_records", "_int_list"]


def _condition_names() -> set[str]:
    """Every condition name and alias of every level (for :func:`_join_dash_values`)."""
    from ..ablation.conditions import REGISTRY

    return REGISTRY.spellings()


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
    try:
        load_plugins()  # a user's conditions, registered before names are checked
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(_join_dash_values(argv))
    try:
        args.argv = argv
        with terminate_as_interrupt():
            return _resolve(args.handler)(args)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume.", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, KeyError, TypeError, ModuleNotFoundError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
