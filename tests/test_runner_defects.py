"""Defects of the runner, reproduce and the CLI found by trying them as a new user would: each
behaviour here was wrong before (silent results, leftovers, unclear errors)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from icl_tokens import AblationConfig, run_config
from icl_tokens.cli import main
from icl_tokens.reproduce import Budget, parse_tasks, reproduce
from icl_tokens.results import FolderLock, ResultsLockedError
from icl_tokens.results.tidy import read_tidy

TINY = Budget("tiny", (0,), 1, k=2)
QUIET = {"progress": False, "log": lambda s: None}


@pytest.mark.parametrize("tasks", ["", ",", " , ", []])
def test_reproduce_tasks_naming_nothing_is_an_error(tasks) -> None:
    with pytest.raises(ValueError, match="names no task"):
        parse_tasks(tasks)
    assert parse_tasks(None)[:2] == ["agnews", "sst2"]


def test_cli_reproduce_empty_tasks_exits_2_before_any_folder(tiny_dir, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["reproduce", "--tables", "2", "--model", str(tiny_dir), "--tasks", ",",
                 "--out-dir", str(out), "--no-progress"]) == 2
    assert "names no task" in capsys.readouterr().err and not out.exists()


def test_reproduce_unwritable_out_dir_fails_before_the_model_loads(tiny_dir, tmp_path,
                                                                   monkeypatch, capsys):
    from icl_tokens.executors import scorer

    def boom(*a, **k):
        raise AssertionError("the model loaded before the folder was checked")

    monkeypatch.setattr(scorer, "_load", boom)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["reproduce", "--tables", "2", "--model", str(tiny_dir), "--tasks", "sst2",
                 "--out-dir", str(blocker / "sub"), "--no-progress"]) == 2
    assert "--out-dir" in capsys.readouterr().err


def test_reproduce_refuses_a_narrower_rerun_and_a_second_writer(tiny_dir, data_dir,
                                                                tmp_path) -> None:
    out = tmp_path / "r"
    reproduce((2, 3), model=str(tiny_dir), tasks=["sst2"], budget=TINY, out_dir=out, **QUIET)
    tidy = (out / "tidy" / "representation.csv").read_bytes()
    with pytest.raises(ValueError, match=r"tables \[2, 3\] \(now \[2\]\)"):
        reproduce((2,), model=str(tiny_dir), tasks=["sst2"], budget=TINY, out_dir=out, **QUIET)
    with FolderLock(out):
        with pytest.raises(ResultsLockedError, match="another command"):
            reproduce((2, 3), model=str(tiny_dir), tasks=["sst2"], budget=TINY, out_dir=out,
                      **QUIET)
    assert (out / "tidy" / "representation.csv").read_bytes() == tidy


def test_content_free_rows_short_or_torn_are_completed(tiny_dir, data_dir, tmp_path) -> None:
    out = tmp_path / "r"
    reproduce((2, 3), model=str(tiny_dir), tasks=["sst2"], budget=TINY, out_dir=out, **QUIET)
    cf = out / "runs" / "cf_representation_sst2.csv"
    whole = cf.read_bytes()
    lines = whole.splitlines(keepends=True)
    assert len(lines) == 1 + 2 * 9  # two content-free strings x nine conditions
    cf.write_bytes(b"".join(lines[:-3]) + lines[-3][:10])  # short by rows, and torn
    tidy = (out / "tidy" / "representation.csv").read_bytes()
    reproduce((2, 3), model=str(tiny_dir), tasks=["sst2"], budget=TINY, out_dir=out, **QUIET)
    assert cf.read_bytes() == whole
    assert (out / "tidy" / "representation.csv").read_bytes() == tidy


def test_a_repaired_file_is_in_the_order_of_an_uninterrupted_run(tiny_dir, data_dir,
                                                                 tmp_path) -> None:
    cfg = AblationConfig(model=str(tiny_dir), seeds=(0, 1), n_test=3, k=2, scoring="label",
                         conditions=("icl", "+template", "zero_shot"))
    whole = tmp_path / "whole.csv"
    run_config(cfg, out=whole, **QUIET)
    torn = tmp_path / "torn.csv"
    lines = whole.read_bytes().splitlines(keepends=True)
    torn.write_bytes(b"".join(lines[:4] + lines[6:]))  # two rows from the middle lost
    (tmp_path / "torn.csv.meta.json").write_text(
        (tmp_path / "whole.csv.meta.json").read_text())
    run_config(cfg, out=torn, **QUIET)
    a, b = pd.read_csv(whole), pd.read_csv(torn)
    assert list(zip(a.seed, a.example_id, a.condition)) == list(zip(b.seed, b.example_id,
                                                                    b.condition))
    score = [c for c in a.columns if c.startswith("score_")]
    assert (a[score] - b[score]).abs().max().max() < 1e-5


def test_torn_tidy_tail_is_an_error_naming_the_file(tmp_path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("model,task,seed,example_id,condition,correct\nm,sst2,0,1,icl,1\nm,sst2,0,2,ic")
    with pytest.raises(ValueError, match=r"t\.csv: its last row is cut off"):
        read_tidy(p)
    p.write_text("model,task,seed,example_id,condition,correct\nm,sst2,0,1,icl,1\nm,sst2,0\n")
    with pytest.raises(ValueError, match="last row has 3 of 6 fields"):
        read_tidy(p)


@pytest.mark.parametrize("extra, level, message", [
    (["--layers", "0"], "token", "--layers do(es) not apply to --level token"),
    (["--scope", "demos"], "representation", "--scope do(es) not apply"),
    (["--template", "swap"], "template-parts", "--template applies to --level representation"),
    (["--agg-scope", "own"], "representation", "need(s) --aggregation"),
])
def test_ablate_options_that_would_do_nothing_are_refused(tiny_dir, tmp_path, capsys, extra,
                                                          level, message) -> None:
    out = tmp_path / "o" / "run.csv"
    assert main(["ablate", "--model", str(tiny_dir), "--level", level, "--out", str(out),
                 *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # no empty --out folder left behind


def test_sigterm_stops_ablate_cleanly_and_the_rerun_completes(tiny_dir, data_dir,
                                                              tmp_path) -> None:
    out = tmp_path / "run.csv"
    cmd = [sys.executable, "-m", "icl_tokens", "ablate", "--model", str(tiny_dir), "--seeds",
           "0,1,2,3", "--n-test", "20", "--k", "2", "--scoring", "label", "--batch-size", "1",
           "--out", str(out), "--no-progress"]
    env = {**os.environ, "ICL_TOKENS_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or out.stat().st_size < 2000):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-500:]
    assert "rerun the same command to resume" in err.decode()
    assert not Path(str(out) + ".lock").exists()
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    df = pd.read_csv(out)
    assert len(df) == 4 * 20 * 9 and not df.duplicated(["seed", "example_id", "condition"]).any()
    side = json.loads(Path(str(out) + ".meta.json").read_text())
    assert "conditions_sha256" in side["identity"]
