"""Manifests of cached folders: sizes, sha256 and cheap stamps of every file, and validation.

The manifest records, per file, its size and sha256 (computed once, at build time) and a cheap
*stamp* (``mtime_ns``). Validation compares sizes and stamps only, so a load costs a few
``stat`` calls instead of hashing ~1 GB. Any ordinary write to a file changes its ``mtime``, and
truncation changes its size, so both are still caught cheaply. When only the stamps disagree
(the folder was copied or touched, or its manifest was written by an icl_tokens without stamps)
the result says ``needs_hash_check``: :mod:`~icl_tokens.models.gguf_cache` then hashes the files
once and re-stamps the manifest in place (the format stays 1, so older readers still accept it)
or rebuilds the folder. ``check_hashes=True`` forces the full sha256 comparison.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .registry import library_versions

__all__ = [
    "MANIFEST_NAME",
    "ValidationResult",
    "validate_model_dir",
    "validate_tokenizer_dir",
    "write_manifest",
]

MANIFEST_NAME = "icl_tokens_manifest.json"
MANIFEST_FORMAT = 1  # stamps (``mtime_ns``) are an optional per-file field, see the docstring
_TMP_TAG = ".tmp-"
_STAMP_WAIT_S = 3.0  # longest wait for the file system clock to pass the files' mtimes


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        _fsync(path)


def _model_files(model_dir: Path) -> list[Path]:
    return sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)


def _write_json_atomically(target: Path, data: dict[str, Any]) -> None:
    tmp = target.with_name(f".{target.name}{_TMP_TAG}{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _save_manifest(model_dir: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest so that its own mtime is later than every recorded file stamp.

    A file written again within the same file-system clock tick as its stamp would keep its
    mtime; requiring ``stamp < manifest mtime`` (checked in validation) rules that out, as Git
    does for its index ("racy clean" files).
    """
    target = model_dir / MANIFEST_NAME
    newest = max((meta["mtime_ns"] for meta in manifest["files"].values()), default=0)
    deadline = time.monotonic() + _STAMP_WAIT_S
    while True:
        _write_json_atomically(target, manifest)
        if target.stat().st_mtime_ns > newest or time.monotonic() > deadline:
            break
        time.sleep(0.005)
    _fsync_dir(model_dir)


def write_manifest(model_dir: Path, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """Hash and stamp every file of ``model_dir`` and write :data:`MANIFEST_NAME` into it.

    Args:
        model_dir: a finished Hugging Face model (or tokenizer) folder.
        source: description of what it was built from (e.g. GGUF file name and sha256).

    Returns:
        The manifest dictionary that was written.
    """
    files = {}
    for path in _model_files(model_dir):
        _fsync(path)
        stat = path.stat()
        files[path.relative_to(model_dir).as_posix()] = {
            "size": stat.st_size,
            "sha256": _sha256_file(path),
            "mtime_ns": stat.st_mtime_ns,
        }
    manifest = {
        "format": MANIFEST_FORMAT,
        "created_unix": time.time(),
        "source": source or {},
        "versions": library_versions(),
        "files": files,
    }
    _save_manifest(Path(model_dir), manifest)
    return manifest


def _restamp_manifest(model_dir: Path) -> None:
    """Record the current stamps in the manifest. Only call after a passing hash check."""
    path = model_dir / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    for rel, meta in manifest["files"].items():
        meta["mtime_ns"] = (model_dir / rel).stat().st_mtime_ns
    manifest["restamped_unix"] = time.time()
    _save_manifest(model_dir, manifest)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of :func:`validate_model_dir`; truthy when the folder is valid.

    ``needs_hash_check`` is set when sizes agree and only the stamps do not (or are absent):
    a sha256 check can then still accept the folder.
    """

    ok: bool
    reason: str = ""
    needs_hash_check: bool = False

    def __bool__(self) -> bool:
        return self.ok


def _check_files(
    model_dir: Path, files: dict[str, Any], manifest_mtime_ns: int, check_hashes: bool
) -> ValidationResult:
    """Compare the listed files with the disk: sizes, then hashes or stamps."""
    stale = ""
    for rel, meta in files.items():
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            return ValidationResult(False, f"manifest lists a path outside the folder: {rel!r}")
        if not isinstance(meta, dict):
            return ValidationResult(False, f"manifest entry for {rel!r} is not an object")
        path = model_dir / rel
        if not path.is_file():
            return ValidationResult(False, f"missing file {rel}")
        stat = path.stat()
        if stat.st_size != meta.get("size"):
            return ValidationResult(
                False,
                f"size mismatch for {rel}: {stat.st_size} bytes on disk, "
                f"{meta.get('size')} expected",
            )
        if check_hashes:
            if _sha256_file(path) != meta.get("sha256"):
                return ValidationResult(False, f"sha256 mismatch for {rel} (file is corrupt)")
            continue
        stamp = meta.get("mtime_ns")
        if stale:
            continue
        if not isinstance(stamp, int):
            stale = "manifest has no file stamps (written by an older icl_tokens)"
        elif stat.st_mtime_ns != stamp:
            stale = f"{rel} was modified after it was built (mtime changed)"
        elif stamp >= manifest_mtime_ns:
            stale = f"{rel} has a stamp as new as the manifest"
    return ValidationResult(not stale, stale, needs_hash_check=bool(stale))


def _validate(
    folder: Path, required: tuple[str, ...], need_weights: bool, check_hashes: bool
) -> ValidationResult:
    folder = Path(folder)
    if not folder.is_dir():
        return ValidationResult(False, f"{folder} does not exist")
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        return ValidationResult(False, f"no {MANIFEST_NAME} in {folder}")
    try:
        manifest_mtime_ns = manifest_path.stat().st_mtime_ns
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as err:
        return ValidationResult(False, f"unreadable manifest: {err}")
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return ValidationResult(False, f"manifest format is not {MANIFEST_FORMAT}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return ValidationResult(False, "manifest lists no files")
    for name in required:
        if name not in files:
            return ValidationResult(False, f"manifest does not list {name}")
    if need_weights and not any(rel.endswith((".safetensors", ".bin")) for rel in files):
        return ValidationResult(False, "manifest lists no weight file")
    return _check_files(folder, files, manifest_mtime_ns, check_hashes)


def validate_model_dir(model_dir: Path, *, check_hashes: bool = False) -> ValidationResult:
    """Check a converted model folder against its manifest.

    Args:
        model_dir: folder that should hold a model and :data:`MANIFEST_NAME`.
        check_hashes: compare the sha256 of every file (slow: reads every byte) instead of the
            cheap stamps. Sizes are always compared.

    Returns:
        A :class:`ValidationResult`; ``bool(result)`` is ``True`` only for a complete folder.
    """
    return _validate(Path(model_dir), ("config.json", "tokenizer.json"), True, check_hashes)


def validate_tokenizer_dir(folder: Path, *, check_hashes: bool = False) -> ValidationResult:
    """Like :func:`validate_model_dir` for a tokenizer-only folder (needs ``tokenizer.json``)."""
    return _validate(Path(folder), ("tokenizer.json",), False, check_hashes)


Validator = Callable[..., ValidationResult]
"""``validate_model_dir`` or ``validate_tokenizer_dir``."""
