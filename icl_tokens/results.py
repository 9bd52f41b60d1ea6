"""On-disk results: a tidy CSV written incrementally, with a JSON sidecar holding the arguments.

Rerunning the same command completes an interrupted file: rows already written are kept, a
partial last line left by a killed process is dropped (and reported), and only missing
``(seed, example_id, condition)`` rows are computed. A file written with other arguments is
refused rather than mixed.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

__all__ = ["ResultsFile", "ResultsMismatchError", "sidecar_path"]

KEY = ("seed", "example_id", "condition")


class ResultsMismatchError(ValueError):
    """The output file was written by a run with different arguments."""


def sidecar_path(path: Path) -> Path:
    """``results/F.csv`` → ``results/F.csv.meta.json``."""
    return path.with_name(path.name + ".meta.json")


class ResultsFile:
    """Append-only CSV of result rows keyed by ``(seed, example_id, condition)``.

    Args:
        path: The CSV path.
        columns: Column names (fixed for the file).
        identity: The arguments that define the run; must match to resume.
        meta: Extra provenance written to the sidecar (versions, model info); not compared.
    """

    def __init__(self, path: str | Path, columns: Sequence[str], identity: Mapping[str, Any],
                 meta: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        self.identity = json.loads(json.dumps(dict(identity)))
        self.meta = dict(meta or {})
        self.done: set[tuple[str, str, str]] = set()
        self.notes: list[str] = []
        self._open()

    def _open(self) -> None:
        side = sidecar_path(self.path)
        if self.path.exists() or side.exists():
            self._check_identity(side)
            self._load_existing()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = side.with_name(side.name + ".tmp")
            tmp.write_text(json.dumps({"identity": self.identity, "columns": self.columns,
                                       "meta": self.meta}, indent=2, default=str))
            os.replace(tmp, side)
            with self.path.open("w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerow(self.columns)

    def _check_identity(self, side: Path) -> None:
        if not side.exists():
            raise ResultsMismatchError(
                f"{self.path} exists but has no sidecar {side.name}, so its arguments are "
                "unknown; choose another --out or delete the file."
            )
        stored = json.loads(side.read_text())
        old = stored.get("identity", {})
        keys = sorted(set(old) | set(self.identity))
        diff = {k: (old.get(k), self.identity.get(k))
                for k in keys if old.get(k) != self.identity.get(k)}
        if diff or stored.get("columns") != self.columns:
            detail = ", ".join(f"{k}: file has {a!r}, this run {b!r}" for k, (a, b) in diff.items())
            raise ResultsMismatchError(
                f"{self.path} was written with different arguments ({detail or 'columns differ'}); "
                "rerun with the original arguments to resume, or choose another --out."
            )

    def _load_existing(self) -> None:
        raw = self.path.read_bytes() if self.path.exists() else b""
        if raw and not raw.endswith(b"\n"):
            cut = raw.rfind(b"\n") + 1
            self.notes.append(
                f"dropped a partial last line ({len(raw) - cut} bytes) left by an interrupted run"
            )
            with self.path.open("r+b") as f:
                f.truncate(cut)
        if not self.path.exists() or self.path.stat().st_size == 0:
            with self.path.open("w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerow(self.columns)
            return
        with self.path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != self.columns:
                raise ResultsMismatchError(
                    f"{self.path} has columns {reader.fieldnames}, expected {self.columns}."
                )
            for row in reader:
                self.done.add(tuple(str(row[k]) for k in KEY))  # type: ignore[arg-type]

    def update_meta(self, extra: Mapping[str, Any]) -> None:
        """Add provenance to the sidecar (never to the identity that resuming checks)."""
        side = sidecar_path(self.path)
        stored = json.loads(side.read_text())
        stored.setdefault("meta", {}).update(json.loads(json.dumps(dict(extra), default=str)))
        tmp = side.with_name(side.name + ".tmp")
        tmp.write_text(json.dumps(stored, indent=2, default=str))
        os.replace(tmp, side)

    def is_done(self, seed: int, example_id: str, condition: str) -> bool:
        return (str(seed), example_id, condition) in self.done

    def append(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append rows (skipping keys already present); flushed and fsynced. Returns the count."""
        n = 0
        with self.path.open("a", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=self.columns, extrasaction="raise")
            for row in rows:
                key = tuple(str(row[k]) for k in KEY)
                if key in self.done:
                    continue
                w.writerow(row)
                self.done.add(key)  # type: ignore[arg-type]
                n += 1
            f.flush()
            os.fsync(f.fileno())
        return n

    def read(self) -> pd.DataFrame:
        """The whole file as a DataFrame (example ids kept as strings)."""
        return pd.read_csv(self.path, dtype={"example_id": str, "gold": str, "prediction": str,
                                             "label_prediction": str, "continuation": str},
                           keep_default_na=False)
