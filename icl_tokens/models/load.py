"""Loading models as TransformerLens bridges: the only module that imports TransformerLens.

TransformerLens is imported lazily (inside :func:`_boot`), so importing this module is cheap and
tokenizer-only users never pay its import time.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .gguf_cache import _ensure_known
from .registry import _resolve, hub_access, hub_oserror, library_versions, offline_env

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

__all__ = [
    "DTYPES", "check_device", "load_model", "model_context_length", "model_info", "quiet_weights",
    "torch_dtype",
]

#: Parameter dtypes :func:`load_model` accepts by name.
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
}


def _auto_device() -> str:
    """The device TransformerLens picks for ``device=None`` (``utilities.devices.get_device``)."""
    if torch.cuda.is_available():
        return "cuda"
    mps = torch.backends.mps
    if mps.is_available() and mps.is_built() and os.environ.get("TRANSFORMERLENS_ALLOW_MPS") == "1":
        return "mps"
    return "cpu"


def check_device(device: str | None) -> str:
    """Check that a device exists before any weights are loaded, and name it.

    Args:
        device: ``None`` (TransformerLens' choice: ``cuda`` if available, ``mps`` only with
            ``TRANSFORMERLENS_ALLOW_MPS=1``, else ``cpu``), or a torch device string such as
            ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.

    Returns:
        The resolved device string (e.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``).

    Raises:
        ValueError: for an unparseable device string, or a device this machine does not have.
    """
    if device is None:
        return _auto_device()
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(
            f"invalid device {device!r} ({err}); use e.g. 'cpu', 'cuda', 'cuda:0' or 'mps'."
        ) from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} requested but torch.cuda.is_available() is False (torch "
                f"{torch.__version__}, CUDA build {torch.version.cuda}); use device='cpu'."
            )
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(
                f"device {device!r} requested but only {count} CUDA device(s) are visible "
                f"(torch.cuda.device_count() == {count})."
            )
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(
                f"device {device!r} requested but torch.backends.mps.is_available() is False "
                f"(torch.cuda.is_available() is {torch.cuda.is_available()}); use device='cpu'."
            )
    elif parsed.type != "cpu":
        backend = getattr(torch, parsed.type, None)
        available = getattr(backend, "is_available", None)
        if not callable(available) or not available():
            raise ValueError(
                f"device {device!r} is not available here; use 'cpu' (or 'cuda' when "
                f"torch.cuda.is_available(), now {torch.cuda.is_available()})."
            )
    return str(parsed)


def torch_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """A floating-point torch dtype, or one named in :data:`DTYPES` (``"bfloat16"``), as a dtype.

    Raises:
        ValueError: an unknown name or a non-floating dtype, naming the accepted ones.
    """
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    raise ValueError(
        f"unknown dtype {dtype!r}; use one of {list(DTYPES)} or a floating-point torch dtype "
        "(e.g. torch.float32)."
    )


def _boot(source: str, device: str | None, dtype: torch.dtype, **placement: Any
          ) -> TransformerBridge:
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_transformers(source, device=device, dtype=dtype, **placement)


def _placement(device: str | None, device_map: str | dict[str, Any] | None,
               max_memory: dict[Any, Any] | None) -> dict[str, Any]:
    """``device_map``/``max_memory`` for the bridge (accelerate places the layers), checked."""
    if device_map is None:
        if max_memory is not None:
            raise ValueError("max_memory only applies with device_map (e.g. device_map='auto').")
        return {}
    if device is not None:
        raise ValueError(f"give either device ({device!r}) or device_map ({device_map!r}), not "
                         "both: a device map places every layer itself.")
    if not isinstance(device_map, (str, dict)) or not device_map:
        raise ValueError(f"device_map must be 'auto', 'balanced', 'sequential', 'cpu' or a "
                         f"{{module: device}} dict, got {device_map!r}.")
    try:
        import accelerate  # noqa: F401
    except ModuleNotFoundError:
        raise ModuleNotFoundError("device_map needs the accelerate package: pip install "
                                  "accelerate.") from None
    return {"device_map": device_map,
            **({"max_memory": max_memory} if max_memory is not None else {})}


def _tag(bridge: TransformerBridge, name: str, model_dir: Path | None) -> TransformerBridge:
    bridge.icl_tokens_model_name = name
    bridge.icl_tokens_model_dir = None if model_dir is None else str(model_dir)
    return bridge.eval()


def load_model(
    name: str = "gemma-3-270m",
    device: str | None = None,
    dtype: torch.dtype | str = torch.float32,
    *,
    verify: bool = False,
    device_map: str | dict[str, Any] | None = None,
    max_memory: dict[Any, Any] | None = None,
) -> TransformerBridge:
    """Load a model as a TransformerLens ``TransformerBridge`` in eval mode.

    Args:
        name: an offline name from :data:`KNOWN_MODELS` (converted once into the cache), a local
            directory holding a Hugging Face model, or a Hub id ``org/name`` (needs network).
        device: e.g. ``"cpu"`` or ``"cuda"``; ``None`` lets TransformerLens choose. Checked with
            :func:`check_device` before anything is converted or loaded.
        dtype: parameter dtype of the bridge: a torch dtype or ``"float32"``, ``"bfloat16"``,
            ``"float16"``.
        verify: compare the sha256 of every cached file (slow) instead of sizes and stamps.
        device_map: for a model larger than one GPU: ``"auto"`` (or ``"balanced"``,
            ``"sequential"``, a ``{module: device}`` dict) lets accelerate spread the layers over
            the visible GPUs (through ``TransformerBridge.boot_transformers``); exclusive with
            ``device``.
        max_memory: per-device budgets for the device map, e.g. ``{0: "70GiB", 1: "70GiB"}``.

    Returns:
        The bridge (eval mode), tagged with ``icl_tokens_model_name``/``icl_tokens_model_dir``.

    Raises:
        ValueError: for names of none of the accepted forms (an empty one included), an unknown
            dtype, an unavailable device, and Hub ids while offline (at once, unless cached) or
            when the hub fails.
        ModuleNotFoundError: when an offline model's GGUF package is not installed.
    """
    dtype = torch_dtype(dtype)
    check_device(device)
    placement = _placement(device, device_map, max_memory)
    kind, where = _resolve(name)
    if kind == "hub":
        cached = hub_access(name, "config.json")
        try:
            with offline_env() if cached else contextlib.nullcontext():
                bridge = _boot(str(where), device, dtype, **placement)
        except OSError as err:
            raise hub_oserror(name, err) from err
        return _tag(bridge, name, None)
    model_dir = _ensure_known(name, Path(where), verify=verify) if kind == "known" else Path(where)
    with offline_env(), quiet_weights():
        bridge = _boot(str(model_dir), device, dtype, **placement)
    return _tag(bridge, name, model_dir)


@contextlib.contextmanager
def quiet_weights() -> Iterator[None]:
    """Transformers' progress bars off while loading (a "Loading weights" bar takes a second,
    and in a notebook or a Voila app it would stay behind as a stray widget)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


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


def sliding_window(model: Any) -> int | None:
    """The sliding-window size of a model with local-attention layers (Gemma-3), else None."""
    config = getattr(getattr(model, "original_model", None), "config", None)
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None) or []
    return int(window) if window and "sliding_attention" in layer_types else None


def _prepends_bos(bridge: Any) -> bool | None:
    """Whether the bridge's tokenizer puts BOS before every prompt (None if unknown)."""
    from .bos import adds_bos

    tok = getattr(bridge, "tokenizer", None)
    try:
        return bool(adds_bos(tok)) if tok is not None else None
    except TypeError:  # a slow tokenizer: no offsets to tell
        return None


def model_info(bridge: TransformerBridge) -> dict[str, Any]:
    """Describe a loaded bridge for result sidecars.

    Returns:
        ``name``, ``model_dir``, ``architecture``, ``n_layers``, ``n_heads``, ``n_key_value_heads``,
        ``d_model``, ``d_head``, ``d_vocab``, ``n_ctx``, ``dtype``, ``device``,
        ``compatibility_mode``, ``sliding_window`` (tokens, for models with local-attention
        layers, else None), ``prepends_bos``, ``icl_tokens_version`` and ``versions`` (python,
        torch, transformers, tokenizers, transformer-lens, gguf).
    """
    from ..version import __version__

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
        "sliding_window": sliding_window(bridge),
        "prepends_bos": _prepends_bos(bridge),
        "icl_tokens_version": __version__,
        "versions": library_versions(),
    }
