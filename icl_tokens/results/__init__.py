"""On-disk results: a tidy CSV written incrementally, with a JSON sidecar holding the arguments.

``F.csv`` holds one row per ``(seed, example_id, condition)``; ``F.csv.meta.json`` is
``{"identity": {...}, "columns": [...], "meta": {...}}``. Rerunning the same command completes
an interrupted file: rows already written are kept and only missing keys are computed. A file
written with other arguments is refused rather than mixed.

Guarantees:

* **Damage is repaired, never built on.** Opening scans the whole file with a parser for the
  exact dialect the writer uses (comma, ``"`` quoting with doubled quotes, a record ends at a
  line break outside quotes) and validates every record (field count, non-empty key, integer
  and finite-score columns, terminated). A torn or damaged row anywhere is dropped, so it is
  recomputed, and :attr:`ResultsFile.notes` says so; a bad tail is truncated, damage in the
  middle rewrites the file atomically with the good rows only.
* **Torn writes are tails.** :meth:`ResultsFile.append` formats its rows first and writes them
  with one ``write()`` followed by ``fsync``; a failed write is truncated back.
* **No duplicates, no strangers.** A file holding a key twice is refused
  (:class:`ResultsCorruptError`); with ``expected_keys`` a row outside the run is refused on
  append and a file holding one fails to open (:class:`ResultsMismatchError`).
* **One writer.** An exclusive ``flock`` on ``F.csv.lock`` is held from opening to
  :meth:`ResultsFile.close`; a second opener gets :class:`ResultsLockedError`.
* **No empty leftovers.** Callers should validate their arguments *before* opening, and call
  :meth:`ResultsFile.discard_if_empty` when a run fails (``with ResultsFile(...)`` does so on an
  exception), so a failed start leaves no header-only file behind. A file that holds no rows
  and was written with other arguments is replaced, with a note.

Modules:

* :mod:`.records` -- the key and typed columns, the CSV dialect scanner and row validation,
  cell/key formatting, the one-``write()`` append and the atomic replace;
* :mod:`.lock` -- the ``flock``-based single-writer lock (:class:`~.lock.ResultsLock`);
* :mod:`.errors` -- :class:`ResultsMismatchError`, :class:`ResultsCorruptError`,
  :class:`ResultsLockedError`;
* :mod:`.file` -- :class:`ResultsFile`.
"""

from __future__ import annotations

import os  # noqa: F401  (tests patch ``results.os.write``)

from .errors import ResultsCorruptError, ResultsLockedError, ResultsMismatchError
from .file import ResultsFile
from .lock import ResultsLock, lock_path
from .records import (
    _FIELD,
    _INT,
    _OPEN_QUOTE,
    _PARTIAL,
    _PLAIN,
    _QUOTED,
    _RECORD,
    INT_COLUMNS,
    KEY,
    SCORE_PREFIX,
    Key,
    _append_once,
    _atomic_write,
    _cell,
    _diagnose,
    _fmt_key,
    _parse_at,
    _Record,
    _Schema,
    _short,
    check_output_path,
    sidecar_path,
)

__all__ = [
    "INT_COLUMNS",
    "KEY",
    "SCORE_PREFIX",
    "ResultsCorruptError",
    "ResultsFile",
    "ResultsLock",
    "ResultsLockedError",
    "ResultsMismatchError",
    "check_output_path",
    "lock_path",
    "sidecar_path",
]

# Private names stay importable from here for old callers. Monkeypatch them where they are
# looked up (``records._atomic_write``, ``file._append_once``), not on this package.
_PRIVATE = (Key, _Record, _Schema, _append_once, _atomic_write, _cell, _diagnose,
            _fmt_key, _parse_at, _short, _FIELD, _INT, _OPEN_QUOTE, _PARTIAL, _PLAIN,
            _QUOTED, _RECORD)
