"""On-disk results: a tidy CSV written incrementally, with a JSON sidecar holding the arguments.

``F.csv`` holds one row per ``(seed, example_id, condition)``; ``F.csv.meta.json`` is
``{"identity": {...}, "columns": [...], "meta": {...}}``. Rerunning the same command completes
an interrupted file: rows already written are kept and only missing keys are computed. A file
written with other arguments is refused rather than mixed.

Guarantees:

* **Damage is repaired, never built on.** Opening scans the whole file with a parser for the
  exact dialect the writer uses (comma, ``"`` quoting with doubled quotes, a record ends at a
  line break outside quotes) and validates every record (field count, non-empty key, integer
  and finite-score columns, ``0``/``1`` in the indicator columns :data:`BINARY_COLUMNS`,
  terminated). A torn or damaged row anywhere is dropped, so it is
  recomputed, and :attr:`ResultsFile.notes` says so; a bad tail is truncated, damage in the
  middle rewrites the file atomically with the good rows only.
* **Torn writes are tails.** :meth:`ResultsFile.append` formats its rows first and writes them
  with one ``write()`` followed by ``fsync``; a failed write is truncated back.
* **No duplicates, no strangers.** A file holding a key twice is refused
  (:class:`ResultsCorruptError`); with ``expected_keys`` a row outside the run is refused on
  append and a file holding one fails to open (:class:`ResultsMismatchError`).
* **Repair is exact up to rescoring.** A dropped row is recomputed with the other missing rows,
  not in its original batch, so its scores can differ from an uninterrupted run's in the 6th
  decimal (padding and batch composition change the floating-point sums). Rows are appended as
  they are computed, so a resumed file's order differs until :meth:`ResultsFile.canonicalize`
  rewrites it (atomically) in the run's order: after a completed run the row order is
  canonical.
* **One writer.** An exclusive ``flock`` on ``F.csv.lock`` is held from opening to
  :meth:`ResultsFile.close`; a second opener gets :class:`ResultsLockedError`. A ``flock`` dies
  with its process, so the lock file a killed run leaves never blocks the next run (which
  removes it on close). :class:`FolderLock` does the same for a whole output folder
  (``<folder>/.lock``), and :func:`terminate_as_interrupt` makes ``SIGTERM`` unwind like
  Ctrl-C, so a terminated run closes its files and leaves no lock file.
* **No empty leftovers.** :func:`check_output_path` checks an output path without creating
  anything; :class:`ResultsFile` creates the missing folders when it creates the file. Callers
  should validate their arguments *before* opening, and call
  :meth:`ResultsFile.discard_if_empty` when a run fails (``with ResultsFile(...)`` does so on an
  exception), so a failed start leaves no header-only file, sidecar, lock file or new folder
  behind; a failure while creating (a full disk) removes them too. A file that holds no rows
  and was written with other arguments is replaced, with a note.
* **Errors name paths.** Every ``OSError`` (or the ``ValueError`` wrapping one) names the file
  or folder involved.

Modules:

* :mod:`.records` -- the key and typed columns, the CSV dialect scanner and row validation,
  cell/key formatting, the one-``write()`` append and the atomic replace;
* :mod:`.lock` -- the ``flock``-based single-writer locks (:class:`~.lock.ResultsLock`,
  :class:`~.lock.FolderLock`) and :func:`~.lock.terminate_as_interrupt`;
* :mod:`.tidy` -- the one reader of result rows (:func:`~.tidy.read_rows`,
  :func:`~.tidy.read_tidy`);
* :mod:`.errors` -- :class:`ResultsMismatchError`, :class:`ResultsCorruptError`,
  :class:`ResultsLockedError`;
* :mod:`.file` -- :class:`ResultsFile`.
"""

from __future__ import annotations

from .errors import ResultsCorruptError, ResultsLockedError, ResultsMismatchError
from .file import ResultsFile
from .lock import FolderLock, ResultsLock, lock_path, terminate_as_interrupt
from .records import (
    BINARY_COLUMNS,
    INT_COLUMNS,
    KEY,
    SCORE_PREFIX,
    Key,
    check_output_path,
    make_parents,
    sidecar_path,
)

__all__ = [
    "BINARY_COLUMNS",
    "FolderLock",
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
    "make_parents",
    "sidecar_path",
    "terminate_as_interrupt",
    "Key",
]
