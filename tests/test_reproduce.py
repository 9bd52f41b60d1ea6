"""``reproduce`` and ``report`` on a tiny model and invented SST-2 files: every table present,
numbers recomputable from the tidy rows, deterministic and resumable end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from icl_tokens.analysis.findings import folder_verdicts
from icl_tokens.analysis.report import load_results, paper_tables
from icl_tokens.cli import main
from icl_tokens.reproduce import (
    TABLES,
    Budget,
    experiments_for,
    parse_tables,
    reproduce,
)

BUDGET = Budget("tiny", (0, 1), 2, k=2)
NONDETERMINISTIC = {"timing.json"}  # wall clock; the .meta.json sidecars hold machine provenance


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in NONDETERMINISTIC
            and not p.name.endswith(".meta.json") and not p.name.endswith(".lock")}


@pytest.fixture(scope="module")
def folder(tiny_dir, tmp_path_factory):
    import os

    from tests.conftest import _write_sst2

    root = tmp_path_factory.mktemp("repro")
    data = _write_sst2(root / "data")
    old = os.environ.get("ICL_TOKENS_DATA_DIR")
    os.environ["ICL_TOKENS_DATA_DIR"] = str(data)
    try:
        out = reproduce("all", model=str(tiny_dir), tasks=["sst2"], budget=BUDGET,
                        out_dir=root / "a", progress=False, log=lambda s: None,
                        command="reproduce --tables all (test)")
        again = reproduce("all", model=str(tiny_dir), tasks=["sst2"], budget=BUDGET,
                          out_dir=root / "b", progress=False, log=lambda s: None,
                          command="reproduce --tables all (test)")
        before = _files(out)
        reproduce("all", model=str(tiny_dir), tasks=["sst2"], budget=BUDGET, out_dir=out,
                  progress=False, log=lambda s: None, command="reproduce --tables all (test)")
        resumed = _files(out)
    finally:
        if old is None:
            os.environ.pop("ICL_TOKENS_DATA_DIR", None)
        else:
            os.environ["ICL_TOKENS_DATA_DIR"] = old
    return out, again, before, resumed


def test_parse_tables_and_experiments():
    assert parse_tables("all") == TABLES
    assert parse_tables("15,2") == (2, 15)
    assert experiments_for((2, 14)) == ["representation", "nltk"]
    for bad in ("7", "2,x", ""):
        with pytest.raises(ValueError):
            parse_tables(bad)


def test_every_table_and_condition_present(folder):
    out = folder[0]
    res = load_results(out)
    tables = paper_tables(res)
    assert sorted(tables) == sorted(TABLES)
    for n in TABLES:
        assert (out / "tables" / f"table{n}.md").is_file()
    report = (out / "report.md").read_text()
    for n, t in tables.items():
        assert t.title in report
        if t.text is None:
            grid = t.grid()
            assert grid.drop(columns="avg").notna().all().all(), n
    assert "acc_gen" in report and "calibrated acc_label" in report
    html = (out / "report.html").read_text()
    assert html.count("<table>") >= 9 and 'id="table2"' in html
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["budget"]["seeds"] == [0, 1] and "sst2" in prov["data"]
    assert all(len(v) == 64 for v in prov["data"]["sst2"]["files"].values())  # sha256
    assert str(out) not in json.dumps(prov)
    v = folder_verdicts(res)
    assert set(v["verdict"]) <= {"consistent", "inconsistent", "inconclusive"}
    assert {"1", "2a", "2b"} <= set(v["pattern"])
    patterns = pd.read_csv(out / "patterns.csv")
    assert {"model", "pattern", "metric", "effect", "ci_low", "ci_high", "verdict"} <= set(
        patterns.columns)
    t15 = pd.read_csv(out / "table15.csv")
    assert {"p_crossed", "p", "p_holm", "p_welch", "paper_p", "note"} <= set(t15.columns)
    assert "Does the model do in-context learning?" in report


def test_numbers_recomputable_from_tidy_rows(folder):
    out = folder[0]
    rep = pd.read_csv(out / "tidy" / "representation.csv", dtype={"example_id": str})
    t2 = paper_tables(load_results(out))[2]
    for cond in ("+template", "zero_shot"):
        sub = rep[rep.condition == cond]
        by_seed = sub.groupby("seed")["correct"].mean() * 100
        assert t2.grid().loc[cond, "sst2"] == pytest.approx(by_seed.mean())
    # Margin and calibration columns are derived from the score columns.
    assert {"margin", "calibrated_correct"} <= set(rep.columns)
    row = rep.iloc[0]
    scores = {w: row[f"score_{w}"] for w in ("Positive", "Negative")}
    other = [v for w, v in scores.items() if w != row.gold]
    assert row.margin == pytest.approx(scores[row.gold] - max(other), abs=1e-5)


def test_deterministic_and_resumable(folder):
    out, again, before, resumed = folder
    assert _files(out) == _files(again)  # two runs from nothing: byte-identical
    assert resumed == before  # a rerun on a complete folder changes nothing


def test_cli_reproduce_and_report(tiny_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["reproduce", "--tables", "2,3,15", "--model", str(tiny_dir), "--tasks",
                 "sst2", "--budget", "smoke", "--out-dir", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Table 2" in printed and "patterns" in printed
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["command"].startswith("python -m icl_tokens reproduce --tables 2,3,15")
    doc = tmp_path / "results.md"
    assert main(["report", str(out), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "Wall time" in text and "Table 15" in text and "python -m icl_tokens report" in text
    assert main(["reproduce", "--tables", "7", "--model", str(tiny_dir), "--out-dir",
                 str(tmp_path / "bad")]) == 2
    assert "cannot be reproduced" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_results_doc_puts_every_pattern_verdict_in_its_model_column(folder, tmp_path):
    """Each §8 pattern is one row: its name (pattern 7's holds ': ') in the first column and
    a three-state verdict with its intervals in each (model, metric) column; a folder without
    ``timing.json`` says its wall time was not recorded instead of printing 'nan'."""
    import shutil

    from icl_tokens.analysis.results_page import results_doc

    out = folder[0]
    v = folder_verdicts(load_results(out))
    names = list(dict.fromkeys(v["name"]))
    assert any(n.startswith("7.") for n in names)
    copy = tmp_path / "no-timing"
    shutil.copytree(out, copy)
    (copy / "timing.json").unlink()
    doc = results_doc([out, copy], command="report (test)")
    head = doc.split("Why a pattern may not reproduce", 1)[0]
    header = next(r for r in head.splitlines() if r.startswith("| pattern"))
    n_cols = len(header.strip("|").split(" | "))
    rows = [r for r in head.splitlines() if r.startswith("| ") and r[2].isdigit()]
    assert [r.strip("|").split(" | ")[0].strip() for r in rows] == names
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == n_cols, row
        assert all(c.startswith(("**consistent**", "**inconsistent**", "**inconclusive**"))
                   or c == "not run" for c in cells[1:])
    walls = [ln for ln in doc.splitlines() if ln.startswith("Wall time")]
    assert "1 invocation " not in walls[0] and "invocations" in walls[0]  # the fixture resumed it
    assert walls[1].startswith("Wall time: not recorded") and "nan min" not in doc
