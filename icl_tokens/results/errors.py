"""The errors a :class:`~icl_tokens.results.ResultsFile` raises beyond ``ValueError``."""

from __future__ import annotations

__all__ = ["ResultsCorruptError", "ResultsLockedError", "ResultsMismatchError"]


class ResultsMismatchError(ValueError):
    """The output file belongs to a run with different arguments (or its sidecar is unusable)."""


class ResultsCorruptError(ValueError):
    """The output file holds something resuming cannot repair (e.g. a key twice)."""


class ResultsLockedError(RuntimeError):
    """Another open :class:`ResultsFile` (this or another process) is writing the file."""
