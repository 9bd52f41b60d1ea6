"""Where the command line's notes go: stderr, so stdout holds only a command's results (tables,
JSON) and can be piped. In Python the runner prints its notes as ordinary output instead."""

from __future__ import annotations

import sys

__all__ = ["note"]


def note(text: str) -> None:
    """Print one note line to stderr."""
    print(text, file=sys.stderr)
