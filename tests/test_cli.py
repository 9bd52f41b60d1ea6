"""The command line: categorize JSON contract, ablate CSV, resuming, bad input."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from icl_tokens.cli import main
from icl_tokens.testing.tiny import build_tiny_model_dir


def _categorize(tiny_dir, out, *extra):
    return main(["categorize", "--model", str(tiny_dir), "--task", "sst2", "--seed", "3",
                 "--k", "2", "--n-test", "4", "--json", "--out", str(out), *extra])


def test_categorize_json_schema_and_determinism(tiny_dir, data_dir, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert _categorize(tiny_dir, a) == 0
    assert _categorize(tiny_dir, b) == 0
    assert a.read_bytes() == b.read_bytes()
    recs = [json.loads(line) for line in a.read_text().splitlines()]
    assert len(recs) == 4
    for r in recs:
        assert list(r) == ["model", "task", "seed", "k", "example_id", "gold", "prompt", "tokens",
                           "labels"]
        assert r["task"] == "sst2" and r["seed"] == 3 and r["k"] == 2
        assert r["gold"] in ("Positive", "Negative")
        assert r["prompt"].endswith("Sentiment:")
        for t in r["tokens"]:
            assert list(t) == ["id", "text", "start", "end", "categories", "roles"]
            assert t["categories"]
        # Text spans reproduce the prompt (tiny llama tokenizer prepends a BOS at (0, 0)).
        assert "".join(r["prompt"][t["start"]:t["end"]] for t in r["tokens"]) == r["prompt"]
        assert r["tokens"][0]["categories"] == ["bos"]
        assert set(r["labels"]) == {"Positive", "Negative"}
        assert all(isinstance(i, int) for ids in r["labels"].values() for i in ids)
    assert len({r["example_id"] for r in recs}) == 4


def _ablate(tiny_dir, out, *extra, seeds="0,1", n_test="3"):
    return main(["ablate", "--model", str(tiny_dir), "--task", "sst2", "--seeds", seeds,
                 "--n-test", n_test, "--k", "2", "--conditions", "all", "--out", str(out),
                 "--no-progress", *extra])


def test_ablate_writes_tidy_csv_and_table(tiny_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert _ablate(tiny_dir, out, "--scoring", "label") == 0
    df = pd.read_csv(out, dtype={"example_id": str})
    assert len(df) == 2 * 3 * 9
    assert not df.duplicated(["seed", "example_id", "condition"]).any()
    assert {"score_Positive", "score_Negative", "gold", "prediction", "correct"} <= set(df.columns)
    assert set(df.condition) == {"zero_shot", "+content", "+stopword", "+template", "icl",
                                 "icl-content", "icl-stopword", "icl-template", "none"}
    assert (df.correct == (df.prediction == df.gold).astype(int)).all()
    printed = capsys.readouterr().out
    assert "Standard ICL" in printed and "- TEMP" in printed and "±" in printed
    meta = json.loads((tmp_path / "r.csv.meta.json").read_text())
    assert meta["identity"]["scoring"] == "label"
    assert "transformers" in meta["meta"]["versions"]


def test_ablate_resume_after_interrupt_no_lost_or_duplicated_rows(
    tiny_dir, data_dir, tmp_path, monkeypatch
):
    full = tmp_path / "full.csv"
    assert _ablate(tiny_dir, full, n_test="10") == 0
    ref = pd.read_csv(full, dtype={"example_id": str}, keep_default_na=False)

    # Interrupt (Ctrl-C) after the second chunk of rows was written.
    import icl_tokens.experiments.runner as ex

    real = ex.score_items
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(ex, "score_items", flaky)
    part = tmp_path / "part.csv"
    assert _ablate(tiny_dir, part, n_test="10") == 130
    partial_rows = len(pd.read_csv(part))
    assert 0 < partial_rows < len(ref)
    # A killed writer may also leave half a line behind.
    with part.open("a") as f:
        f.write("gemma,sst2,1,2,test:9,ic")
    monkeypatch.setattr(ex, "score_items", real)
    assert _ablate(tiny_dir, part, n_test="10") == 0
    got = pd.read_csv(part, dtype={"example_id": str}, keep_default_na=False)
    key = ["seed", "example_id", "condition"]
    assert not got.duplicated(key).any()
    pd.testing.assert_frame_equal(got.sort_values(key).reset_index(drop=True),
                                  ref.sort_values(key).reset_index(drop=True))
    # A finished run is not recomputed.
    monkeypatch.setattr(ex, "score_items", lambda *a, **k: pytest.fail("recomputed"))
    assert _ablate(tiny_dir, part, n_test="10") == 0


def test_ablate_survives_sigkill(tiny_dir, data_dir, tmp_path):
    out = tmp_path / "killed.csv"
    cmd = [sys.executable, "-m", "icl_tokens", "ablate", "--model", str(tiny_dir), "--task",
           "sst2", "--seeds", "0,1,2", "--n-test", "40", "--k", "2", "--out", str(out),
           "--no-progress", "--scoring", "label"]
    env = {**os.environ, "ICL_TOKENS_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") > 30:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = out.read_text().count("\n") - 1
    assert 0 < done_before < 3 * 40 * 9
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    df = pd.read_csv(out, dtype={"example_id": str})
    assert len(df) == 3 * 40 * 9
    assert not df.duplicated(["seed", "example_id", "condition"]).any()


def test_ablate_refuses_output_from_other_arguments(tiny_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert _ablate(tiny_dir, out, "--scoring", "label", seeds="0") == 0
    assert _ablate(tiny_dir, out, "--scoring", "label", seeds="0,1") == 2
    err = capsys.readouterr().err
    assert "different arguments" in err and "seeds" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--task", "nosuchtask"], "unknown task"),
        (["--conditions", "icl,-nothing"], "unknown condition"),
        (["--k", "500"], "pool"),
    ],
)
def test_ablate_bad_input(tiny_dir, data_dir, tmp_path, capsys, argv, message):
    base = ["ablate", "--model", str(tiny_dir), "--task", "sst2", "--seeds", "0", "--n-test",
            "2", "--out", str(tmp_path / "x.csv"), "--no-progress"]
    assert main(base + argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_model_is_a_clear_error(data_dir, tmp_path, capsys):
    assert main(["categorize", "--model", "no-such-model", "--task", "sst2", "--json"]) == 2
    err = capsys.readouterr().err
    assert "gemma-3-270m" in err  # the message lists the known models


def test_prompt_longer_than_context_is_refused(tiny_dir, data_dir, tmp_path, capsys):
    short = tmp_path / "short_ctx"
    build_tiny_model_dir("llama", short)
    cfg = json.loads((short / "config.json").read_text())
    cfg["max_position_embeddings"] = 40
    (short / "config.json").write_text(json.dumps(cfg))
    assert main(["ablate", "--model", str(short), "--task", "sst2", "--seeds", "0", "--n-test",
                 "1", "--k", "4", "--out", str(tmp_path / "c.csv"), "--no-progress"]) == 2
    assert "context" in capsys.readouterr().err


def test_categorize_human_readable(tiny_dir, data_dir, capsys):
    assert main(["categorize", "--model", str(tiny_dir), "--task", "sst2", "--n-test", "1",
                 "--k", "1"]) == 0
    out = capsys.readouterr().out
    assert "template" in out and "test" in out


def test_tasks_command_lists_the_paper_tasks(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for t in ("sst2", "agnews", "trec", "dbpedia", "rte", "cb"):
        assert t in out


def test_csv_cells_roundtrip_newlines(tiny_dir, data_dir, tmp_path):
    """Generated continuations can contain newlines; the CSV must quote them."""
    out = tmp_path / "g.csv"
    assert _ablate(tiny_dir, out, seeds="0", n_test="2") == 0
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 9


def test_quickstart_writes_csv_table_and_figure(tiny_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--model", str(tiny_dir), "--n-test", "2", "--seeds", "0,1",
                 "--out-dir", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "paper Llama-7B" in printed and "94.3" in printed  # Table 3, SST-2 Standard ICL
    df = pd.read_csv(out / "quickstart.csv")
    assert len(df) == 2 * 2 * 9
    assert (out / "quickstart.html").stat().st_size > 10_000  # plotly.js inlined: works offline
    fig = json.loads((out / "quickstart.json").read_text())
    ours = fig["data"][0]
    acc = df[df.condition == "icl"].groupby("seed").correct.mean().mul(100).mean()
    assert ours["y"][ours["x"].index("icl")] == pytest.approx(acc)


def test_ablate_layer_and_head_subsets(tiny_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "l.csv"
    assert _ablate(tiny_dir, out, "--scoring", "label", "--layers", "-1", "--heads", "0-1",
                   seeds="0") == 0
    meta = json.loads((tmp_path / "l.csv.meta.json").read_text())
    assert meta["identity"]["layers"] == [-1] and meta["identity"]["heads"] == [0, 1]
    full = tmp_path / "f.csv"
    assert _ablate(tiny_dir, full, "--scoring", "label", seeds="0") == 0
    a = pd.read_csv(out).set_index(["example_id", "condition"]).score_Positive
    b = pd.read_csv(full).set_index(["example_id", "condition"]).score_Positive
    assert (a.loc[:, "icl"] == b.loc[:, "icl"]).all()  # nothing hidden: same either way
    assert (a.loc[:, "none"] != b.loc[:, "none"]).any()  # a partial knockout differs
    assert _ablate(tiny_dir, tmp_path / "bad.csv", "--layers", "7", seeds="0") == 2
    assert "out of range" in capsys.readouterr().err
