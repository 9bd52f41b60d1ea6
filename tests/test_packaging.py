"""A non-editable install ships data/ as icl_tokens/_data and finds it (offline build).

The repository's sources are copied to a temporary folder (so the shared checkout gets no
``build/``), a few non-data files are added to the copy's ``data/``, and a wheel is built from it
with ``pip wheel --no-deps --no-build-isolation --no-index``; a second wheel is built from the
sdist. Both must hold exactly the repository's ``data/`` files, and the wheel, installed with
``pip install --target``, must find its task definitions, stopwords and reference tables from a
folder outside the checkout.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGED = "icl_tokens/_data/"
# Dropped into the copy's data/: none of them may reach the wheel.
JUNK = ("tasks/__pycache__/x.cpython-311.pyc", ".DS_Store", "tasks/sst2.json~", ".hidden/a.json")


def _setuptools_ok() -> str | None:
    """Why an offline build is impossible here, or ``None``."""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return "setuptools is not installed (needed for --no-build-isolation)"
    if int(version.split(".")[0]) < 68:
        return f"setuptools {version} < 68 (pyproject.toml requires >=68)"
    if importlib.util.find_spec("pip") is None:
        return "pip is not installed"
    return None


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICL_TOKENS_")}
    return env | {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env or _offline_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _repo_data_files() -> dict[str, bytes]:
    """What the wheel must ship: every file of data/ but hidden ones and Python caches."""
    root = REPO / "data"
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not any(s.startswith(".") or s == "__pycache__" for s in rel.parts):
            out[rel.as_posix()] = p.read_bytes()
    return out


def _packaged_files(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as z:
        return {n[len(PACKAGED):]: z.read(n) for n in z.namelist()
                if n.startswith(PACKAGED) and not n.endswith("/")}


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The source copy, the wheel built from it, the wheel built from its sdist."""
    reason = _setuptools_ok()
    if reason:
        pytest.skip(f"cannot build a wheel offline: {reason}")
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "icl_tokens", src / "icl_tokens", ignore=ignore)
    shutil.copytree(REPO / "data", src / "data", ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, src / name)
    for rel in JUNK:
        (src / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / "data" / rel).write_text("not data\n")
    pip = [sys.executable, "-m", "pip"]
    _run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "wheel"), str(src)],
         cwd=tmp)
    sdist_dir = tmp / "sdist"
    _run([sys.executable, "-c", f"from setuptools import build_meta as b; "
          f"print(b.build_sdist({str(sdist_dir)!r}))"], cwd=src)
    (sdist,) = sdist_dir.glob("*.tar.gz")
    _run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "wheel_sdist"),
                str(sdist)], cwd=tmp)
    (wheel,) = (tmp / "wheel").glob("icl_tokens-*.whl")
    (wheel_sdist,) = (tmp / "wheel_sdist").glob("icl_tokens-*.whl")
    return {"tmp": tmp, "src": src, "wheel": wheel, "wheel_sdist": wheel_sdist}


def test_wheel_contains_the_data(build: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(build["wheel"]).namelist())
    for rel in ("tasks/sst2.json", "stopwords/nltk.txt", "reference/paper_tables.csv"):
        assert PACKAGED + rel in names
    assert not any(PACKAGED + rel in names for rel in JUNK)
    assert "icl_tokens/py.typed" in names


def test_packaged_copy_equals_repo_data(build: dict[str, Path]) -> None:
    """data/ is the single source of truth: same files, same bytes, in both wheels."""
    want = _repo_data_files()
    assert want, "data/ is empty?"
    for key in ("wheel", "wheel_sdist"):
        got = _packaged_files(build[key])
        assert sorted(got) == sorted(want), key
        assert [k for k in want if got[k] != want[k]] == [], key


def test_copy_happens_only_in_the_build_directory(build: dict[str, Path]) -> None:
    assert not (build["src"] / "icl_tokens" / "_data").exists()
    assert not (REPO / "icl_tokens" / "_data").exists()


_CHECK = """
import json, sys
import icl_tokens
from icl_tokens.tasks import data_root, list_tasks, load_task, nltk_stopwords
from icl_tokens.reference import paper_table, reference_dir
t = paper_table(2)
print(json.dumps({
    "file": icl_tokens.__file__, "root": str(data_root()), "tasks": list_tasks(),
    "sst2_prefix": load_task("sst2").output_prefix, "nltk": len(nltk_stopwords()),
    "reference": str(reference_dir()), "rows": len(t),
}))
"""


def test_installed_wheel_finds_its_data(build: dict[str, Path]) -> None:
    tmp = build["tmp"]
    target = tmp / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target),
          str(build["wheel"])], cwd=tmp)
    # A stray data/tasks beside the installed package (no pyproject.toml) must not be used.
    (target / "data" / "tasks").mkdir(parents=True)
    (target / "data" / "tasks" / "stray.json").write_text("{}")
    env = _offline_env() | {"PYTHONPATH": str(target)}
    out = json.loads(_run([sys.executable, "-c", _CHECK], cwd=tmp, env=env).splitlines()[-1])
    pkg = (target / "icl_tokens").resolve()
    assert Path(out["file"]).resolve().is_relative_to(target.resolve()), out["file"]
    assert Path(out["root"]) == pkg / "_data"
    assert Path(out["reference"]) == pkg / "_data" / "reference"
    assert out["tasks"] == ["agnews", "cb", "dbpedia", "rte", "sst2", "trec"]
    assert out["sst2_prefix"] == "Sentiment:" and out["nltk"] > 127 and out["rows"] > 0

    # Without the packaged copy the error says where it looked and what to do.
    shutil.move(pkg / "_data", tmp / "_data_moved")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", "from icl_tokens.tasks import data_root; data_root()"],
            cwd=tmp, env=env, capture_output=True, text=True, timeout=120,
        )
    finally:
        shutil.move(tmp / "_data_moved", pkg / "_data")
    assert proc.returncode != 0
    assert "task definitions not found" in proc.stderr and "ICL_TOKENS_TASKS_DIR" in proc.stderr
