"""The on-disk format: key columns, the CSV dialect scanner, row validation, safe writes.

The dialect is csv's default writer (comma, minimal ``"``-quoting with doubled quotes, ``\r\n``);
:func:`_parse_at` accepts exactly a well-formed, terminated record of it and :func:`_diagnose` says
why other bytes are not one. :class:`_Schema` validates rows of a file's columns and scans a file
into :class:`_Record` s, resynchronising after damage. :func:`_append_once` appends with one
``write()`` + ``fsync`` (truncating back on failure); :func:`_atomic_write` replaces a file via a
fsynced temp file.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, NoReturn, Sequence

__all__ = ["BINARY_COLUMNS", "INT_COLUMNS", "KEY", "SCORE_PREFIX", "Key", "check_output_path",
           "make_parents", "remove_empty", "sidecar_path"]

KEY = ("seed", "example_id", "condition")
#: Columns that must hold integers (those of them present in a file's columns).
INT_COLUMNS = ("seed", "k", "correct", "valid", "label_correct", "n_tokens")
#: Indicator columns (a subset of :data:`INT_COLUMNS`): each cell is exactly ``0`` or ``1``.
BINARY_COLUMNS = ("correct", "valid", "label_correct")
#: Columns starting with this prefix must hold finite floats.
SCORE_PREFIX = "score_"

Key = tuple[str, str, str]


def sidecar_path(path: Path) -> Path:
    """``results/F.csv`` → ``results/F.csv.meta.json``."""
    return path.with_name(path.name + ".meta.json")


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


class _Schema:
    """A file's columns and how a row of them is validated (``invalid``) and scanned (``scan``)."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self.key_idx = [columns.index(k) for k in KEY]
        self.int_idx = [(i, c) for i, c in enumerate(columns) if c in INT_COLUMNS]
        self.score_idx = [(i, c) for i, c in enumerate(columns) if c.startswith(SCORE_PREFIX)]

    def key(self, fields: Sequence[str]) -> Key:
        return tuple(fields[i] for i in self.key_idx)  # type: ignore[return-value]

    def scan(self, raw: bytes, pos: int) -> Iterator[_Record]:
        """Records from ``pos`` on; after damage, resynchronise at the next valid record."""
        line = raw.count(b"\n", 0, pos) + 1
        n = len(raw)
        while pos < n:
            rec = self.record_at(raw, pos, line)
            if rec.problem is None:
                yield rec
            else:  # damaged: it extends to the next line start where a valid row begins
                q, nxt = pos, None
                while (nl := raw.find(b"\n", q)) != -1 and nl + 1 < n:
                    cand = self.record_at(raw, nl + 1, 0)
                    if cand.problem is None:
                        nxt = nl + 1
                        break
                    q = nl + 1
                rec.end = n if nxt is None else nxt
                yield rec
            line += raw.count(b"\n", pos, rec.end)
            pos = rec.end

    def record_at(self, raw: bytes, pos: int, line: int) -> _Record:
        parsed = _parse_at(raw, pos)
        if isinstance(parsed, str):
            return _Record(pos, len(raw), line, None, parsed)
        end, fields = parsed
        return _Record(pos, end, line, fields, self.invalid(fields))

    def invalid(self, fields: list[str]) -> str | None:
        """Why ``fields`` is not a valid row (None if it is)."""
        if len(fields) != len(self.columns):
            if not any(fields):
                return "blank line"
            return f"{len(fields)} fields, expected {len(self.columns)}"
        for i in self.key_idx:
            if not fields[i]:
                return f"empty {self.columns[i]}"
        for i, c in self.int_idx:
            if not _INT.match(fields[i]):
                return f"{c}={_short(fields[i])} is not an integer"
            if c in BINARY_COLUMNS and fields[i] not in ("0", "1"):
                return f"{c}={_short(fields[i])} is not 0 or 1"
        for i, c in self.score_idx:
            try:
                ok = math.isfinite(float(fields[i]))
            except ValueError:
                ok = False
            if not ok:
                return f"{c}={_short(fields[i])} is not a finite number"
        return None


def check_output_path(p: Path, example: str = "run.csv", option: str = "--out") -> None:
    """Refuse a path that cannot be written as an output file, creating nothing.

    The path must not be a directory, and its nearest existing ancestor must be a writable
    directory (the writer creates the missing folders when it writes: :func:`make_parents`).
    Raises ``ValueError`` naming the path, the ``option`` it came from and the fix. Shared by
    the results CSV and every CLI output.
    """
    fix = f"choose another {option}"
    if p.is_dir():
        raise ValueError(f"{option} {p} is a directory; give a file path (e.g. {p / example}).")
    for parent in p.parents:
        if not parent.exists():
            continue
        if not parent.is_dir():
            raise ValueError(f"cannot write {option} {p}: a parent is a file ({parent}), not a "
                             f"folder; {fix}.")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"cannot write {option} {p}: folder {parent} is not writable; "
                             f"{fix}.")
        return
    raise ValueError(f"cannot write {option} {p}: none of its folders exists; {fix}.")


def make_parents(p: Path) -> list[Path]:
    """Create the missing folders above ``p``; returns those created, outermost first.

    Raises ``OSError`` naming the folder; on failure the folders created so far are removed.
    """
    missing = [d for d in reversed(p.parents) if not d.exists()]
    made: list[Path] = []
    try:
        for d in missing:
            try:
                d.mkdir()
            except FileExistsError:
                continue
            made.append(d)
    except OSError as e:
        remove_empty(made)
        _raise_named(e, p.parent)
    return made


def remove_empty(folders: Sequence[Path]) -> None:
    """Remove those of ``folders`` that are empty, innermost first (others are kept)."""
    for d in reversed(folders):
        try:
            d.rmdir()
        except OSError:
            pass


def _raise_named(e: OSError, path: Any) -> NoReturn:
    """Raise ``e``, or if it names no file, an ``OSError`` of its kind naming ``path``."""
    if e.filename is not None:
        raise e
    raise OSError(e.errno, e.strerror or str(e), str(path)) from e  # the errno's subclass


def _cell(value: Any) -> str:
    """A value as the csv writer would render it."""
    return "" if value is None else str(value)


def _fmt_key(key: Key) -> str:
    return "(" + ", ".join(f"{k}={v!r}" for k, v in zip(KEY, key)) + ")"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _append_once(path: Path, data: bytes) -> None:
    """Append ``data`` with one write and fsync; on failure truncate back to the old end.

    Raises ``OSError`` naming ``path``.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except OSError as e:
        _raise_named(e, path)
    try:
        size = os.fstat(fd).st_size
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except BaseException:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass  # the next open drops the torn tail
            raise
    except OSError as e:
        _raise_named(e, path)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` via a fsynced temp file in the same folder.

    Raises ``OSError`` naming ``path`` (the temp file is removed).
    """
    try:
        _replace(path, data)
    except OSError as e:
        _raise_named(e, path)
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _replace(path: Path, data: bytes) -> None:
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, mode)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
