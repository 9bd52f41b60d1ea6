"""ResultsFile: open (lock, check the sidecar, scan and repair the rows), append, read.

See :mod:`icl_tokens.results` for the guarantees.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from .errors import ResultsCorruptError, ResultsMismatchError
from .lock import ResultsLock
from .records import (
    KEY,
    Key,
    _append_once,
    _atomic_write,
    _cell,
    _fmt_key,
    _parse_at,
    _Record,
    _Schema,
    check_output_path,
    make_parents,
    remove_empty,
    sidecar_path,
)
from .tidy import read_rows

__all__ = ["ResultsFile"]


def _reordered(raw: bytes, schema: _Schema, rank: Mapping[Key, int], path: Path) -> bytes:
    """``raw``'s header, then its rows sorted by ``rank`` (unranked rows last, in file order)."""
    head = _parse_at(raw, 0)
    if isinstance(head, str):
        raise ResultsCorruptError(f"{path}: the first line is not a CSV header ({head}); "
                                  "rerun the same command to repair it.")
    rows: list[tuple[int, int, bytes]] = []
    for n, rec in enumerate(schema.scan(raw, head[0])):
        if rec.problem is not None:
            raise ResultsCorruptError(f"{path}: line {rec.line} was damaged after opening "
                                      f"({rec.problem}); rerun the same command to repair it.")
        key = schema.key(rec.fields)  # type: ignore[arg-type]
        rows.append((rank.get(key, len(rank)), n, raw[rec.start:rec.end]))
    rows.sort(key=lambda r: (r[0], r[1]))
    return raw[:head[0]] + b"".join(r[2] for r in rows)


class ResultsFile:
    """Append-only CSV of result rows keyed by ``(seed, example_id, condition)``.

    Opening locks the file, checks the sidecar's identity, and scans and repairs the rows (see
    :mod:`icl_tokens.results`). Use it as a context manager, or call :meth:`close`.

    Args:
        path: The CSV path.
        columns: Column names (fixed for the file); must include ``seed``, ``example_id`` and
            ``condition``.
        identity: The arguments that define the run; must match to resume.
        meta: Extra provenance written to a new file's sidecar (versions, model info); not
            compared.
        expected_keys: The ``(str(seed), example_id, condition)`` keys this run computes, if
            known: other keys are refused by :meth:`append`, and a file holding one is refused.

    Raises:
        ResultsMismatchError: Other arguments, other columns, unexpected keys, or an unusable
            sidecar.
        ResultsCorruptError: A key appears twice, or the first line is not a header.
        ResultsLockedError: Another open ResultsFile holds the lock.
        ValueError: The path cannot be written (parent is a file, is a directory, ...).
    """

    def __init__(self, path: str | Path, columns: Sequence[str], identity: Mapping[str, Any],
                 meta: Mapping[str, Any] | None = None, *,
                 expected_keys: set[Key] | None = None) -> None:
        self._closed = False
        self.path = Path(path)
        self._lock = ResultsLock(self.path)
        self.columns = list(columns)
        missing = [k for k in KEY if k not in self.columns]
        if missing or len(set(self.columns)) != len(self.columns):
            raise ValueError(f"columns for {self.path} must be unique and include {KEY}; "
                             f"got {self.columns}.")
        self.identity = json.loads(json.dumps(dict(identity)))
        self.meta = dict(meta or {})
        self.expected_keys: set[Key] | None = (
            None if expected_keys is None
            else {tuple(str(x) for x in k) for k in expected_keys}  # type: ignore[misc]
        )
        self.done: set[Key] = set()
        self.notes: list[str] = []
        self._schema = _Schema(self.columns)
        self._created = False  # this object created the CSV
        self._new: list[Path] = []  # the files this object's open created
        self._made: list[Path] = []  # the folders this object's open created
        self._written = 0  # data rows this object appended
        self._open()

    # --- context manager / lifetime --------------------------------------------------------------

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.discard_if_empty()
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release the lock (idempotent). The rows stay; :meth:`append` is refused afterwards."""
        self._closed = True
        self._lock.release()

    def discard_if_empty(self) -> bool:
        """Delete the CSV, sidecar, lock and the folders created for them if this object created
        the CSV and wrote no row.

        For a failed start (call it in an ``except``/``finally`` path). Returns whether the
        files were deleted; the object is then closed.
        """
        if self._closed or not self._created or self._written:
            return False
        for p in (self.path, sidecar_path(self.path)):
            p.unlink(missing_ok=True)
        self.close()
        remove_empty(self._made)
        return True

    # --- opening -----------------------------------------------------------------------------

    def _open(self) -> None:
        """Create the missing folders, lock, then open; a failure removes what this created."""
        check_output_path(self.path)
        try:
            self._made = make_parents(self.path)
        except OSError as e:
            raise ValueError(f"cannot create the folder {e.filename} for {self.path}: "
                             f"{e.strerror or e}; choose another --out.") from e
        try:
            self._lock.acquire()
            self._open_locked()
        except BaseException:
            for p in self._new:
                p.unlink(missing_ok=True)
            self.close()
            remove_empty(self._made)
            raise

    def _open_locked(self) -> None:
        side = sidecar_path(self.path)
        try:
            if not (self.path.exists() or side.exists()):
                self._create()
                return
            if not side.exists():
                raise ResultsMismatchError(
                    f"{self.path} exists but has no sidecar {side.name}, so its arguments are "
                    "unknown; choose another --out or delete the file."
                )
            stored = self._read_sidecar()
            problem = self._identity_problem(stored)
            if problem is not None:
                if self._has_no_rows():
                    self._create()
                    self.notes.append(f"replaced {self.path.name}: it held no rows and was "
                                      f"written with other arguments ({problem})")
                    return
                raise ResultsMismatchError(
                    f"{self.path} was written with different arguments ({problem}); rerun with "
                    "the original arguments to resume, or choose another --out."
                )
            self._load_existing()
        except OSError as e:
            raise ValueError(f"cannot use {self.path}: {e.strerror or e} "
                             f"({e.filename or self.path}); choose another --out.") from e

    def _create(self) -> None:
        """Write a new sidecar, then a header-only CSV (each atomically)."""
        doc = {"identity": self.identity, "columns": self.columns, "meta": self.meta}
        for p, data in ((sidecar_path(self.path),
                         json.dumps(doc, indent=2, default=str).encode("utf-8")),
                        (self.path, self._header_bytes())):
            self._new.append(p)
            _atomic_write(p, data)
        self.done.clear()
        self._created = True

    def _header_bytes(self) -> bytes:
        buf = io.StringIO()
        csv.writer(buf).writerow(self.columns)
        return buf.getvalue().encode("utf-8")

    def _read_sidecar(self) -> dict[str, Any]:
        side = sidecar_path(self.path)
        fix = (f"restore it, or delete {side.name} and {self.path.name} to start over "
               "(or choose another --out)")
        try:
            stored = json.loads(side.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ResultsMismatchError(f"sidecar {side} is not valid JSON ({e}); {fix}.") from e
        if (not isinstance(stored, dict) or not isinstance(stored.get("identity"), dict)
                or not isinstance(stored.get("columns"), list)):
            raise ResultsMismatchError(
                f"sidecar {side} is not a results sidecar (expected a JSON object with "
                f"'identity' and 'columns'); {fix}."
            )
        return stored

    def _identity_problem(self, stored: Mapping[str, Any]) -> str | None:
        old = stored["identity"]
        keys = sorted(set(old) | set(self.identity))
        diff = [f"{k}: file has {old.get(k)!r}, this run {self.identity.get(k)!r}"
                for k in keys if old.get(k) != self.identity.get(k)]
        if stored["columns"] != self.columns:
            diff.append("columns differ")
        return ", ".join(diff) or None

    def _has_no_rows(self) -> bool:
        if not self.path.exists():
            return True
        raw = self.path.read_bytes()
        nl = raw.find(b"\n")
        return nl < 0 or not raw[nl + 1:].strip()

    def _load_existing(self) -> None:
        """Scan, validate and repair the CSV; fill :attr:`done`."""
        raw = self.path.read_bytes() if self.path.exists() else b""
        header = self._header_bytes()
        head = _parse_at(raw, 0) if raw else "empty"
        if isinstance(head, str) or head[1] != self.columns:
            if not raw or (isinstance(head, str) and header.startswith(raw)):
                if raw:
                    self.notes.append(f"rewrote a torn header line of {self.path.name}")
                _atomic_write(self.path, header)
                self._created = True  # nothing in it was worth keeping
                return
            if isinstance(head, str):
                raise ResultsCorruptError(
                    f"{self.path}: the first line is not a CSV header ({head}); delete the file "
                    "to start over, or choose another --out."
                )
            raise ResultsMismatchError(
                f"{self.path} has columns {head[1]}, expected {self.columns}; choose another "
                "--out or delete the file."
            )
        header_end = head[0]
        good: list[_Record] = []
        bad: list[_Record] = []
        for rec in self._schema.scan(raw, header_end):
            (bad if rec.problem else good).append(rec)
        seen: dict[Key, int] = {}
        for rec in good:
            key = self._schema.key(rec.fields)  # type: ignore[arg-type]
            if key in seen:
                raise ResultsCorruptError(
                    f"{self.path} holds two rows for {_fmt_key(key)} (lines {seen[key]} and "
                    f"{rec.line}); delete the file to recompute everything, or delete the "
                    "duplicate rows."
                )
            seen[key] = rec.line
        if self.expected_keys is not None:
            stray = [k for k in seen if k not in self.expected_keys]
            if stray:
                raise ResultsMismatchError(
                    f"{self.path} holds {len(stray)} rows this run does not compute (e.g. "
                    f"{_fmt_key(stray[0])}), so it belongs to another run; choose another --out "
                    "or delete the file."
                )
        if bad:
            self._repair(raw, header_end, good, bad)
        self.done = set(seen)

    def _repair(self, raw: bytes, header_end: int, good: list[_Record],
                bad: list[_Record]) -> None:
        last_good = good[-1].end if good else header_end
        if all(r.start >= last_good for r in bad):
            with self.path.open("r+b") as f:
                f.truncate(last_good)
                f.flush()
                os.fsync(f.fileno())
            how = f"truncated {self.path.name} after line {bad[0].line - 1}"
        else:
            _atomic_write(self.path, raw[:header_end] + b"".join(raw[r.start:r.end] for r in good))
            how = f"rewrote {self.path.name} without them"
        shown = "; ".join(f"line {r.line}: {r.problem}" for r in bad[:5])
        if len(bad) > 5:
            shown += f"; and {len(bad) - 5} more"
        what = "1 damaged row" if len(bad) == 1 else f"{len(bad)} damaged rows"
        it = "it" if len(bad) == 1 else "they"
        self.notes.append(f"dropped {what} ({shown}); {it} will be recomputed ({how})")

    # --- rows --------------------------------------------------------------------------------

    def update_meta(self, extra: Mapping[str, Any]) -> None:
        """Add provenance to the sidecar (never to the identity that resuming checks)."""
        stored = self._read_sidecar()
        if not isinstance(stored.get("meta"), dict):
            stored["meta"] = {}
        stored["meta"].update(json.loads(json.dumps(dict(extra), default=str)))
        _atomic_write(sidecar_path(self.path),
                      json.dumps(stored, indent=2, default=str).encode("utf-8"))

    def is_done(self, seed: int, example_id: str, condition: str) -> bool:
        return (str(seed), example_id, condition) in self.done

    def append(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append rows, skipping keys already present; returns how many were written.

        All rows are validated and formatted first, then written with one ``write()`` and
        fsynced. Raises ValueError (writing nothing) for a row with unknown columns, an invalid
        value, a key given twice in this call, a key outside ``expected_keys``, or a failed
        write (whose partial bytes are truncated away).
        """
        if self._closed:
            raise ValueError(f"{self.path} is closed; open a new ResultsFile to append.")
        known = set(self.columns)
        seen: set[Key] = set()
        new: list[Key] = []
        buf = io.StringIO()
        writer = csv.writer(buf)
        for row in rows:
            extra = [c for c in row if c not in known]
            if extra:
                raise ValueError(f"row has columns not in {self.path}: {extra}")
            fields = [_cell(row.get(c)) for c in self.columns]
            key = self._schema.key(fields)
            if key in seen:
                raise ValueError(f"{_fmt_key(key)} is given twice in one append to {self.path}")
            seen.add(key)
            if key in self.done:
                continue
            if self.expected_keys is not None and key not in self.expected_keys:
                raise ValueError(f"{_fmt_key(key)} is not a row of this run; refusing to write "
                                 f"it to {self.path}")
            problem = self._schema.invalid(fields)
            if problem is not None:
                raise ValueError(f"refusing to write {_fmt_key(key)} to {self.path}: {problem}")
            writer.writerow(fields)
            new.append(key)
        if new:
            try:
                _append_once(self.path, buf.getvalue().encode("utf-8"))
            except OSError as e:
                raise ValueError(f"cannot append to {self.path}: {e.strerror or e}; the rows "
                                 "written before are kept: fix this and rerun the same command "
                                 "to resume.") from e
            self.done.update(new)
            self._written += len(new)
        return len(new)

    def canonicalize(self, order: Sequence[Sequence[Any]]) -> bool:
        """Rewrite the file atomically with its rows in ``order`` (the run's keys
        ``(seed, example_id, condition)``); rows not in ``order`` go last, in file order.

        Call it when a run completes: a resumed or repaired file then has the row order of an
        uninterrupted run. Returns whether the file changed. Raises ``ValueError`` when closed,
        :class:`ResultsCorruptError` if the file was damaged since it was opened, and
        ``OSError`` (naming the file) if it cannot be rewritten.
        """
        if self._closed:
            raise ValueError(f"{self.path} is closed; open a new ResultsFile to reorder it.")
        rank: dict[Key, int] = {}
        for i, k in enumerate(order):
            rank.setdefault(tuple(str(x) for x in k), i)  # type: ignore[arg-type]
        raw = self.path.read_bytes()
        data = _reordered(raw, self._schema, rank, self.path)
        if data == raw:
            return False
        _atomic_write(self.path, data)
        return True

    def read(self) -> pd.DataFrame:
        """The whole file as a DataFrame, typed like :func:`~icl_tokens.results.tidy.read_rows`
        (text columns stay text, number columns become numbers)."""
        return read_rows(self.path)
