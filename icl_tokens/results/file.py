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
"""

from __future__ import annotations

import csv
import fcntl
import gc
import io
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import pandas as pd

__all__ = [
    "KEY",
    "ResultsCorruptError",
    "ResultsFile",
    "ResultsLockedError",
    "ResultsMismatchError",
    "lock_path",
    "sidecar_path",
]

KEY = ("seed", "example_id", "condition")
#: Columns that must hold integers (those of them present in a file's columns).
INT_COLUMNS = ("seed", "k", "correct", "valid", "label_correct", "n_tokens")
#: Columns starting with this prefix must hold finite floats.
SCORE_PREFIX = "score_"

Key = tuple[str, str, str]


class ResultsMismatchError(ValueError):
    """The output file belongs to a run with different arguments (or its sidecar is unusable)."""


class ResultsCorruptError(ValueError):
    """The output file holds something resuming cannot repair (e.g. a key twice)."""


class ResultsLockedError(RuntimeError):
    """Another open :class:`ResultsFile` (this or another process) is writing the file."""


def sidecar_path(path: Path) -> Path:
    """``results/F.csv`` → ``results/F.csv.meta.json``."""
    return path.with_name(path.name + ".meta.json")


def lock_path(path: Path) -> Path:
    """``results/F.csv`` → ``results/F.csv.lock``."""
    return path.with_name(path.name + ".lock")


# --- the dialect: csv's default writer (comma, minimal "-quoting, doubled quotes, \r\n) --------

_QUOTED = rb'"[^"]*(?:""[^"]*)*"'
_PLAIN = rb'[^,"\r\n]*'
_FIELD = rb"(?:" + _QUOTED + rb"|" + _PLAIN + rb")"
_RECORD = re.compile(_FIELD + rb"(?:," + _FIELD + rb")*(?:\r\n|\n)")
_PARTIAL = re.compile(_FIELD + rb"(?:," + _FIELD + rb")*")
_OPEN_QUOTE = re.compile(rb'"[^"]*(?:""[^"]*)*\Z')
_INT = re.compile(r"-?[0-9]+\Z")


@dataclass
class _Record:
    start: int  # byte offset of the record
    end: int  # byte offset just past its terminator (or of the damage's end)
    line: int  # 1-based physical line the record starts on
    fields: list[str] | None  # None when the bytes are not a well-formed record
    problem: str | None  # why the record is not a valid row (None: valid)


def _parse_at(raw: bytes, pos: int) -> tuple[int, list[str]] | str:
    """A well-formed, terminated record at ``pos`` as ``(end, fields)``, else why not."""
    m = _RECORD.match(raw, pos)
    if m is None:
        return _diagnose(raw, pos)
    try:
        text = raw[pos:m.end()].decode("utf-8")
    except UnicodeDecodeError:
        return "not valid UTF-8"
    return m.end(), next(csv.reader(io.StringIO(text, newline="")), [])


def _diagnose(raw: bytes, pos: int) -> str:
    """Why the bytes at ``pos`` are not a terminated record."""
    e = _PARTIAL.match(raw, pos).end()  # type: ignore[union-attr]  # matches the empty string
    if e == len(raw):
        return "ends without a line break (torn write)"
    if raw[e:e + 1] == b'"' and (e == pos or raw[e - 1:e] == b","):
        if _OPEN_QUOTE.match(raw, e):
            return "ends inside a quoted field (torn write)"
    return f"malformed quoting at byte {e}"


def _short(value: str, n: int = 30) -> str:
    return repr(value if len(value) <= n else value[:n] + "…")


class ResultsFile:
    """Append-only CSV of result rows keyed by ``(seed, example_id, condition)``.

    Opening locks the file, checks the sidecar's identity, and scans and repairs the rows (see
    the module docstring). Use it as a context manager, or call :meth:`close`.

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
        self._lock_fd: int | None = None
        self._lock_pid = os.getpid()
        self._closed = False
        self.path = Path(path)
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
        self._key_idx = [self.columns.index(k) for k in KEY]
        self._int_idx = [(i, c) for i, c in enumerate(self.columns) if c in INT_COLUMNS]
        self._score_idx = [(i, c) for i, c in enumerate(self.columns)
                           if c.startswith(SCORE_PREFIX)]
        self._created = False  # this object created the CSV
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
        self._release_lock()

    def discard_if_empty(self) -> bool:
        """Delete the CSV, sidecar and lock if this object created them and wrote no row.

        For a failed start (call it in an ``except``/``finally`` path). Returns whether the
        files were deleted; the object is then closed.
        """
        if self._closed or not self._created or self._written:
            return False
        for p in (self.path, sidecar_path(self.path)):
            p.unlink(missing_ok=True)
        self.close()
        return True

    # --- opening -----------------------------------------------------------------------------

    def _open(self) -> None:
        self._check_path()
        self._acquire_lock()
        try:
            self._open_locked()
        except BaseException:
            self.close()
            raise

    def _check_path(self) -> None:
        p = self.path
        fix = "choose another --out"
        if p.is_dir():
            raise ValueError(f"{p} is a directory; give a CSV file path (e.g. {p / 'run.csv'}).")
        for parent in p.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise ValueError(f"cannot write {p}: {parent} is a file, not a folder; {fix}.")
                break
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"cannot create the folder of {p}: {e.strerror or e}; {fix}.") from e
        if not os.access(p.parent, os.W_OK | os.X_OK):
            raise ValueError(f"cannot write {p}: folder {p.parent} is not writable; {fix}.")

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
        _atomic_write(sidecar_path(self.path),
                      json.dumps(doc, indent=2, default=str).encode("utf-8"))
        _atomic_write(self.path, self._header_bytes())
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
        for rec in self._scan(raw, header_end):
            (bad if rec.problem else good).append(rec)
        seen: dict[Key, int] = {}
        for rec in good:
            key = self._key(rec.fields)  # type: ignore[arg-type]
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

    def _scan(self, raw: bytes, pos: int) -> Iterator[_Record]:
        """Records from ``pos`` on; after damage, resynchronise at the next valid record."""
        line = raw.count(b"\n", 0, pos) + 1
        n = len(raw)
        while pos < n:
            rec = self._record_at(raw, pos, line)
            if rec.problem is None:
                yield rec
            else:  # damaged: it extends to the next line start where a valid row begins
                q, nxt = pos, None
                while (nl := raw.find(b"\n", q)) != -1 and nl + 1 < n:
                    cand = self._record_at(raw, nl + 1, 0)
                    if cand.problem is None:
                        nxt = nl + 1
                        break
                    q = nl + 1
                rec.end = n if nxt is None else nxt
                yield rec
            line += raw.count(b"\n", pos, rec.end)
            pos = rec.end

    def _record_at(self, raw: bytes, pos: int, line: int) -> _Record:
        parsed = _parse_at(raw, pos)
        if isinstance(parsed, str):
            return _Record(pos, len(raw), line, None, parsed)
        end, fields = parsed
        return _Record(pos, end, line, fields, self._invalid(fields))

    def _invalid(self, fields: list[str]) -> str | None:
        """Why ``fields`` is not a valid row (None if it is)."""
        if len(fields) != len(self.columns):
            if not any(fields):
                return "blank line"
            return f"{len(fields)} fields, expected {len(self.columns)}"
        for i in self._key_idx:
            if not fields[i]:
                return f"empty {self.columns[i]}"
        for i, c in self._int_idx:
            if not _INT.match(fields[i]):
                return f"{c}={_short(fields[i])} is not an integer"
        for i, c in self._score_idx:
            try:
                ok = math.isfinite(float(fields[i]))
            except ValueError:
                ok = False
            if not ok:
                return f"{c}={_short(fields[i])} is not a finite number"
        return None

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

    # --- lock --------------------------------------------------------------------------------

    def _acquire_lock(self) -> None:
        lock = lock_path(self.path)
        for attempt in range(20):
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise ValueError(f"cannot create the lock file {lock}: {e.strerror or e}; "
                                 "choose another --out.") from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
                os.close(fd)
                if holder == str(os.getpid()) and attempt == 0:
                    gc.collect()  # an unreachable ResultsFile of this process may hold it
                    continue
                who = f"pid {holder}" if holder else "pid unknown"
                mine = " (this process)" if holder == str(os.getpid()) else ""
                raise ResultsLockedError(
                    f"another run ({who}{mine}) is writing {self.path}; wait for it to finish "
                    "or choose another --out."
                ) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock))
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed the lock file as we opened it: retry
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            self._lock_fd, self._lock_pid = fd, os.getpid()
            return
        raise ResultsLockedError(f"could not lock {lock} (it keeps being replaced); "
                                 "choose another --out.")

    def _release_lock(self) -> None:
        """Remove the lock file, then unlock (an opener checks it locked the current file)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        try:
            if os.getpid() == self._lock_pid:  # a forked child must not remove its parent's lock
                lock_path(self.path).unlink(missing_ok=True)
        finally:
            os.close(fd)  # closing releases the flock (once no forked copy holds it)

    # --- rows --------------------------------------------------------------------------------

    def _key(self, fields: Sequence[str]) -> Key:
        return tuple(fields[i] for i in self._key_idx)  # type: ignore[return-value]

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
            key = self._key(fields)
            if key in seen:
                raise ValueError(f"{_fmt_key(key)} is given twice in one append to {self.path}")
            seen.add(key)
            if key in self.done:
                continue
            if self.expected_keys is not None and key not in self.expected_keys:
                raise ValueError(f"{_fmt_key(key)} is not a row of this run; refusing to write "
                                 f"it to {self.path}")
            problem = self._invalid(fields)
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

    def read(self) -> pd.DataFrame:
        """The whole file as a DataFrame (example ids and text kept as strings)."""
        return pd.read_csv(self.path, dtype={"example_id": str, "gold": str, "prediction": str,
                                             "label_prediction": str, "continuation": str},
                           keep_default_na=False, encoding="utf-8")


def _cell(value: Any) -> str:
    """A value as the csv writer would render it."""
    return "" if value is None else str(value)


def _fmt_key(key: Key) -> str:
    return "(" + ", ".join(f"{k}={v!r}" for k, v in zip(KEY, key)) + ")"


def _append_once(path: Path, data: bytes) -> None:
    """Append ``data`` with one write and fsync; on failure truncate back to the old end."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except BaseException:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass  # the next open drops the torn tail
            raise
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` via a fsynced temp file in the same folder."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
