"""BOS handling of fast tokenizers, and loading a saved ``tokenizer.json`` verbatim.

Shared by :mod:`.gguf_cache` (checking a converted model's tokenizer) and :mod:`.tokenizers`;
it imports neither, so imports among the model modules go one way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerFast

__all__ = ["adds_bos", "fix_saved_tokenizer", "remove_bos_post_processor"]


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


def fix_saved_tokenizer(model_dir: Path, prepends_bos: bool) -> None:
    """Check (and for no-BOS models fix) the BOS behaviour of a tokenizer saved from a GGUF.

    Raises:
        RuntimeError: when the saved tokenizer's BOS behaviour is not ``prepends_bos``.
    """
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
