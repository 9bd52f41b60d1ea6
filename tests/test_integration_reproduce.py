"""Integration: ``reproduce --tables all --budget smoke`` on the default model and the six CBU
tasks: every table, condition and task present, numbers recomputable from the tidy
rows, and the committed results folder behind notebook 06 regenerated (byte for byte, the
tidy CSVs' floats to 1e-4).

The committed folder (``docs/results/smoke-gemma-3-270m``) holds what the command writes except
``runs/`` (resumable CSVs whose sidecars record machine paths), ``report.html`` (3.6 MB of
inlined plotly.js) and ``timing.json`` (wall clock); its ``.gitignore`` lists them. Regenerate
it with::

    ICL_TOKENS_DATA_DIR=../shared/data python -m icl_tokens reproduce --tables all \\
        --budget smoke --out-dir docs/results/smoke-gemma-3-270m
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from icl_tokens.analysis.report import load_results, paper_tables
from icl_tokens.cli import main
from icl_tokens.reproduce import PAPER_TASKS, TABLES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "results" / "smoke-gemma-3-270m"
SKIP = ("runs/", "report.html", "timing.json", ".gitignore")


def _committed_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not str(p.relative_to(folder)).startswith(SKIP)}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smoke") / "r"
    assert main(["reproduce", "--tables", "all", "--budget", "smoke", "--out-dir", str(out),
                 "--no-progress"]) == 0
    return out


def test_every_table_condition_and_task(smoke):
    res = load_results(smoke)
    tables = paper_tables(res)
    assert sorted(tables) == sorted(TABLES)
    for n, t in tables.items():
        if t.text is not None:
            continue
        assert t.tasks == list(PAPER_TASKS), n
        grid = t.grid().drop(columns="avg")
        assert grid.notna().all().all(), f"Table {n} has empty cells:\n{grid}"
    rep = res.tidy["representation"]
    assert set(rep.task) == set(PAPER_TASKS)
    assert rep.groupby("task").condition.nunique().eq(9).all()
    prov = json.loads((smoke / "provenance.json").read_text())
    assert set(prov["data"]) == set(PAPER_TASKS)
    assert {d["source"] for d in prov["data"].values()} == {"dir"}


def test_numbers_recomputable(smoke):
    res = load_results(smoke)
    t3 = paper_tables(res)[3]
    rep = pd.read_csv(smoke / "tidy" / "representation.csv", dtype={"example_id": str})
    for task in PAPER_TASKS:
        sub = rep[(rep.task == task) & (rep.condition == "icl")]
        assert t3.grid().loc["icl", task] == pytest.approx(100 * sub.correct.mean())


def _same_tidy(a: bytes, b: bytes) -> bool:
    """Two tidy CSVs hold the same rows: every text and integer column identical, float columns
    equal to 1e-4. Float kernels round differently on another CPU (a folder made on another
    machine, regenerated on an AMD EPYC, moved log-probabilities by ~3e-5), so a tidy file is
    compared by value, and so are the other CSVs computed from it (``patterns.csv``,
    ``table15.csv``, whose 6 significant digits can move with it); everything rendered for a
    reader (tables, report.md, provenance) must still match byte for byte."""
    import io

    x, y = (pd.read_csv(io.BytesIO(v), keep_default_na=False, na_values=[""]) for v in (a, b))
    try:
        pd.testing.assert_frame_equal(x, y, check_exact=False, rtol=0, atol=1e-4)
    except AssertionError:
        return False
    return True


def test_committed_folder_regenerates_identically(smoke):
    if not COMMITTED.is_dir():
        pytest.fail(f"{COMMITTED} is missing; regenerate it with the command in this module's "
                    "docstring and commit it.")
    want = _committed_files(COMMITTED)
    got = _committed_files(smoke)
    assert sorted(got) == sorted(want)
    diff = [name for name in want if want[name] != got[name]
            and not (name.endswith(".csv") and _same_tidy(want[name], got[name]))]
    assert not diff, f"regenerated files differ from the committed ones: {diff}"
