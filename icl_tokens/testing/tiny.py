"""Tiny randomly initialised models of real architectures (GPT-2's vocabulary), built offline.

Seeded 2-layer models of the architectures the project supports, saved as ordinary Hugging Face
folders, so tests exercise the same loading path as the real models in about a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import AutoModelForCausalLM

from ..models.load import load_model
from ..models.registry import offline_env
from ..models.tokenizers import GPT2_EOT, GPT2_EOT_ID, gpt2_tokenizer

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

__all__ = ["TINY_ARCHS", "build_tiny_model_dir", "tiny_hf_model", "tiny_model"]

TINY_ARCHS: tuple[str, ...] = ("gpt2", "llama", "gemma3", "qwen2")
"""Architectures that :func:`build_tiny_model_dir` can build."""

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
    with offline_env():
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), attn_implementation="eager")
    return model.eval()
