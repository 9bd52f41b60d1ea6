"""The probe run's extracted features, kept per batch so that extraction resumes.

A probe run captures its points in fixed batches of prompts (one forward each). Each batch's
points (:func:`~icl_tokens.aggregation.probe_capture.capture_points`) go to one ``.npz`` blob,
written atomically, and then one index row per prompt is appended to ``index.csv``, a
:class:`~icl_tokens.results.ResultsFile` keyed by ``(seed, example_id, knockout)`` with the blob's
name. A killed run therefore leaves whole batches only; a rerun captures the batches whose prompts
are not all indexed and loads the rest from disk. Without a folder (an in-memory run) the blobs
stay in memory.

    <out>.features/index.csv (+ .meta.json)   one row per (seed, prompt, knockout)
    <out>.features/<knockout>-p<first>-<last>.npz
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from ..engine.items import Item
from ..results import ResultsFile
from .loop import stderr_log
from .probe_capture import POINT_FIELDS, points_to_data
from .probe_data import ProbeData

__all__ = ["FEATURE_COLUMNS", "FeatureStore", "features_folder", "feature_key"]

#: Columns of the features index.
FEATURE_COLUMNS = ("seed", "example_id", "condition", "prompt", "blob")

Key = tuple[str, str, str]
Points = dict[str, dict[str, np.ndarray]]


def features_folder(out: Path) -> Path:
    """``results/p.csv`` → ``results/p.csv.features`` (the folder of its features)."""
    return out.with_name(out.name + ".features")


def feature_key(item: Item, knockout: str) -> Key:
    """The index key of one prompt's features under one knockout."""
    return (str(item.meta["seed"]), item.example_id, knockout)


class FeatureStore:
    """Blobs of captured points and their index (on disk, or in memory without a folder)."""

    def __init__(self, folder: Path | None, index: ResultsFile | None) -> None:
        self.folder = folder
        self.index = index
        self._memory: dict[str, Points] = {}
        self._rows: dict[Key, dict[str, Any]] = {}

    @classmethod
    @contextlib.contextmanager
    def open(cls, folder: Path | None, identity: Mapping[str, Any],
             sidecar: Mapping[str, Any], expected: set[Key],
             log: Callable[[str], None] = stderr_log) -> Iterator[FeatureStore]:
        """The store of ``folder`` (``None``: in memory), its index locked until the block
        ends; a block that fails before any batch was indexed leaves no folder behind."""
        if folder is None:
            yield cls(None, None)
            return
        existed = folder.exists()
        try:
            with ResultsFile(folder / "index.csv", FEATURE_COLUMNS,
                             {**identity, "part": "probe features"}, sidecar,
                             expected_keys=expected) as index:
                for note in index.notes:
                    log(f"{index.path}: {note}")
                if index.done:
                    log(f"{folder}: {len(index.done)} of {len(expected)} prompts' features "
                        "already captured")
                yield cls(folder, index)
        finally:
            if not existed and folder.exists() and not (folder / "index.csv").exists():
                shutil.rmtree(folder, ignore_errors=True)

    def is_done(self, key: Key) -> bool:
        if self.index is not None:
            return key in self.index.done
        return key in self._rows

    def save(self, knockout: str, items: Sequence[Item], points: Points) -> list[dict[str, Any]]:
        """Write one batch's points (a blob) and return its index rows (append them after)."""
        prompts = [int(it.meta["prompt"]) for it in items]
        name = f"{knockout}-p{min(prompts)}-{max(prompts)}.npz"
        arrays = {f"{p}__{f}": a[f] for p, a in points.items() for f in POINT_FIELDS}
        if self.folder is None:
            self._memory[name] = points
        else:
            _atomic_npz(self.folder / name, arrays)
        rows = [{"seed": key[0], "example_id": key[1], "condition": key[2],
                 "prompt": int(it.meta["prompt"]), "blob": name}
                for it in items for key in [feature_key(it, knockout)]]
        if self.folder is None:
            self._rows.update({(r["seed"], r["example_id"], r["condition"]): r for r in rows})
        return rows

    def load(self, knockout: str, items: Sequence[Item], positions: Sequence[str],
             layers: Sequence[int]) -> dict[str, ProbeData]:
        """Every prompt's points under ``knockout``, in prompt order, as :class:`ProbeData`."""
        blob_of = self._blob_names(knockout, items)
        wanted: dict[str, set[int]] = {}
        for it in items:
            wanted.setdefault(blob_of[int(it.meta["prompt"])], set()).add(int(it.meta["prompt"]))
        parts = [_select(self._read(name), prompts, positions)
                 for name, prompts in sorted(wanted.items())]
        merged = {p: _concat([part[p] for part in parts]) for p in positions}
        return points_to_data(merged, tuple(items[0].labels.words), layers)

    def _blob_names(self, knockout: str, items: Sequence[Item]) -> dict[int, str]:
        rows = self._index_rows()
        out = {}
        for it in items:
            row = rows.get(feature_key(it, knockout))
            if row is None:
                raise RuntimeError(f"the features of prompt {it.example_id!r} (seed "
                                   f"{it.meta['seed']}, {knockout}) were never captured.")
            out[int(it.meta["prompt"])] = str(row["blob"])
        return out

    def _index_rows(self) -> dict[Key, Mapping[str, Any]]:
        if self.index is None:
            return self._rows
        df = self.index.read()
        return {(str(r.seed), str(r.example_id), str(r.condition)): {"blob": r.blob}
                for r in df.itertuples()}

    def _read(self, name: str) -> Points:
        if self.folder is None:
            return self._memory[name]
        path = self.folder / name
        try:
            with np.load(path, allow_pickle=False) as z:
                flat = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read the features blob {path} ({e}); delete "
                             f"{self.folder} and rerun the same command to capture them "
                             "again.") from e
        out: Points = {}
        for k, v in flat.items():
            p, f = k.rsplit("__", 1)
            out.setdefault(p, {})[f] = v
        return out

    def remove(self) -> None:
        """Delete the folder (call it once the probe CSV is complete and the index closed)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _select(points: Points, prompts: set[int], positions: Sequence[str]) -> Points:
    """The points of ``prompts`` only (a blob may hold prompts indexed to a newer blob)."""
    out: Points = {}
    for p in positions:
        a = points[p]
        keep = np.isin(a["prompt"], sorted(prompts))
        out[p] = {f: a[f][keep] for f in POINT_FIELDS}
    return out


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Points of several blobs, ordered by prompt (stable: a prompt's points keep their order)."""
    cat = {f: np.concatenate([p[f] for p in parts]) for f in POINT_FIELDS}
    order = np.argsort(cat["prompt"], kind="stable")
    return {f: v[order] for f, v in cat.items()}


def _atomic_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write an ``.npz`` via a fsynced temporary file in the same folder, then rename it."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
