"""Aggregation experiments, defects fixed: probe and attention runs resume after a kill to the
rows of an uninterrupted run (probe features stored per batch; the probe position in its own
column, not in ``example_id``); no NaN is ever written and an overflowing dtype is named; output
paths (the figure too) are checked before the model loads; layer windows refuse block options
without the block and conditions that hide nothing; window rows are data, not parsed names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from icl_tokens.aggregation import attention_mass as attention_mass_module
from icl_tokens.aggregation import probe_capture
from icl_tokens.aggregation.attention_run import AttentionConfig, run_attention
from icl_tokens.aggregation.probe_features import features_folder
from icl_tokens.aggregation.probe_fit import fit_probe
from icl_tokens.aggregation.probe_run import POOLED, ProbeConfig, probe_columns, run_probes
from icl_tokens.aggregation.windows import (
    WindowConfig,
    WindowRow,
    window_conditions,
    window_curve,
)
from icl_tokens.cli import main
from icl_tokens.models import load_tokenizer
from icl_tokens.testing.tiny import tiny_model

WORDS = {1: ["warm", "funny", "smart", "moving", "tender", "bright"],
         0: ["dull", "flat", "tired", "clumsy", "muddled", "bland"]}
NOUNS = ["film", "story", "picture", "comedy", "drama", "plot"]


class Killed(Exception):
    """Stands for the process being killed between two units."""


@pytest.fixture
def many_texts(tmp_path, monkeypatch):
    """An SST-2-format folder with 120 distinct training and 30 test sentences."""
    rng = np.random.default_rng(1)
    seen: set[str] = set()
    lines: list[str] = []
    while len(lines) < 150:
        y = int(rng.integers(0, 2))
        s = f"a {WORDS[y][rng.integers(6)]} {NOUNS[rng.integers(6)]} of {rng.integers(500)} ."
        if s not in seen:
            seen.add(s)
            lines.append(f"{y} {s}")
    d = tmp_path / "data" / "sst2"
    d.mkdir(parents=True)
    (d / "stsa.binary.train").write_text("\n".join(lines[:120]) + "\n")
    (d / "stsa.binary.test").write_text("\n".join(lines[120:]) + "\n")
    monkeypatch.setenv("ICL_TOKENS_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    model = tiny_model("llama", tmp_path_factory.mktemp("defects_llama"))
    return model, model.tokenizer


def _killer(after: int):
    seen: list[str] = []

    def on_unit(label: str) -> None:
        seen.append(label)
        if len(seen) == after:
            raise Killed(label)

    return on_unit


# ------------------------------------------------------------------ probes
def _probe_cfg(**kw):
    return ProbeConfig(model="tiny", task="sst2", seeds=(0,), k=2, n_test=12,
                       positions=("label", "t_out.colon", "test.last"), folds=3, inner_folds=2,
                       permutations=2, batch_size=4, aggregation=True, **kw)


def test_a_killed_probe_run_rerun_equals_an_uninterrupted_run(llama, many_texts, tmp_path):
    model, tok = llama
    full = run_probes(_probe_cfg(), model=model, tokenizer=tok, out=tmp_path / "full.csv",
                      progress=False, log=lambda s: None)
    # 3 batches x 2 knockouts of extraction, then 3 positions x 2 knockouts of fitting: kill
    # in the middle of extraction and in the middle of fitting
    for after in (2, 8):
        out = tmp_path / f"killed{after}.csv"
        with pytest.raises(Killed):
            run_probes(_probe_cfg(), model=model, tokenizer=tok, out=out, progress=False,
                       log=lambda s: None, on_unit=_killer(after))
        assert features_folder(out).is_dir()  # the captured batches are kept
        again = run_probes(_probe_cfg(), model=model, tokenizer=tok, out=out, progress=False,
                           log=lambda s: None)
        pd.testing.assert_frame_equal(again, full)
        assert out.read_bytes() == (tmp_path / "full.csv").read_bytes()
        assert not features_folder(out).exists()  # removed once the CSV is complete
    # the rerun of a killed extraction captured only the missing batches
    labels: list[str] = []
    out = tmp_path / "count.csv"
    with pytest.raises(Killed):
        run_probes(_probe_cfg(), model=model, tokenizer=tok, out=out, progress=False,
                   log=lambda s: None, on_unit=_killer(4))
    run_probes(_probe_cfg(), model=model, tokenizer=tok, out=out, progress=False,
               log=lambda s: None, on_unit=labels.append)
    assert [x for x in labels if x.startswith("features")] == ["features agg p4-7",
                                                                "features agg p8-11"]


def test_probe_rows_keep_the_position_out_of_example_id(llama, many_texts, tmp_path):
    model, tok = llama
    df = run_probes(_probe_cfg(), model=model, tokenizer=tok, out=tmp_path / "p.csv",
                    progress=False, log=lambda s: None)
    assert list(df.columns) == probe_columns()
    assert (df.example_id == POOLED).all() and (df.seed == -1).all()
    assert set(df.position) == {"label", "t_out.colon", "test.last"}
    assert set(df.condition) == {f"{kn}|{p}|L{la}" for kn in ("icl", "agg")
                                 for p in ("label", "t_out.colon", "test.last") for la in (0, 1)}
    # the unlearnable control is an empty cell (read back as NaN), never the text "nan"
    assert "nan" not in (tmp_path / "p.csv").read_text()
    assert df.control.isna().all() and df.accuracy.notna().all()
    memory = run_probes(_probe_cfg(), model=model, tokenizer=tok, progress=False,
                        log=lambda s: None)
    pd.testing.assert_frame_equal(memory, df)


def _poison(module, monkeypatch, hook_part: str, value: float) -> None:
    """Make the captures of ``module`` hold ``value`` at hooks containing ``hook_part`` (the
    overflow of a float16 forward)."""
    real = module.iter_captures

    def poisoned(*args, **kw):
        for batch in real(*args, **kw):
            for cap in batch:
                for name in list(cap.acts):
                    if hook_part in name:
                        cap.acts[name] = torch.full_like(cap.acts[name], value)
            yield batch

    monkeypatch.setattr(module, "iter_captures", poisoned)


def test_probe_features_with_inf_are_refused_naming_the_dtype(tmp_path_factory, many_texts,
                                                               tmp_path, monkeypatch):
    model = tiny_model("llama", tmp_path_factory.mktemp("llama16"), dtype=torch.float16)
    _poison(probe_capture, monkeypatch, "blocks.1.hook_resid_post", float("inf"))
    out = tmp_path / "p16.csv"
    with pytest.raises(ValueError, match=r"inf or NaN at layer 1 in float16.*--dtype float32"):
        run_probes(_probe_cfg(dtype="float16"), model=model, tokenizer=model.tokenizer, out=out,
                   progress=False, log=lambda s: None)
    assert not out.exists() and not features_folder(out).exists()


def test_probes_on_non_finite_features_say_which_dtype_to_use():
    X = np.ones((12, 3))
    X[0, 0] = np.inf
    with pytest.raises(ValueError, match="inf or NaN .*float16.*--dtype float32"):
        fit_probe(X, np.arange(12) % 2, np.arange(12), folds=3)


# ------------------------------------------------------------------ attention
def _attention_cfg(**kw):
    return AttentionConfig(**{"model": "tiny", "task": "sst2", "seeds": (0, 1), "k": 2,
                              "n_test": 3, "batch_size": 2, "aggregation": True, **kw})


def test_a_killed_attention_run_rerun_equals_an_uninterrupted_run(llama, data_dir, tmp_path):
    model, tok = llama
    full = run_attention(_attention_cfg(), model=model, tokenizer=tok, out=tmp_path / "a.csv",
                         progress=False, log=lambda s: None)
    out = tmp_path / "b.csv"
    with pytest.raises(Killed):
        run_attention(_attention_cfg(), model=model, tokenizer=tok, out=out, progress=False,
                      log=lambda s: None, on_unit=_killer(3))
    labels: list[str] = []
    again = run_attention(_attention_cfg(), model=model, tokenizer=tok, out=out, progress=False,
                          log=lambda s: None, on_unit=labels.append)
    assert len(labels) == 8 - 3  # 2 seeds x 2 batches x 2 knockouts, 3 done before the kill
    pd.testing.assert_frame_equal(again, full)


def test_attention_never_writes_nan_and_names_an_overflowing_dtype(tmp_path_factory, data_dir,
                                                                   tmp_path, monkeypatch,
                                                                   capsys):
    # Qwen2 has no BOS token: the bos group has no key, so its per-token share is undefined;
    # it gets no row instead of a NaN one (float16 on the CPU, as reported)
    folder = tmp_path_factory.mktemp("qwen16")
    model = tiny_model("qwen2", folder, dtype=torch.float16)
    tok = load_tokenizer(str(folder))  # as the command loads it: no BOS
    cfg = _attention_cfg(dtype="float16", aggregation=False)
    out = tmp_path / "q.csv"
    df = run_attention(cfg, model=model, tokenizer=tok, out=out, progress=False,
                       log=lambda s: None)
    assert "nan" not in out.read_text().lower()
    assert "bos" not in set(df.category) and np.isfinite(df.mass_per_token).all()
    args = ["attention", "--model", str(folder), "--task", "sst2", "--seeds", "0,1",
            "--n-test", "3", "--k", "2", "--batch-size", "2", "--dtype", "float16",
            "--no-progress", "--out", str(tmp_path / "cli.csv")]
    assert main(args) == 0 and main(args) == 0  # the rerun reads the file back
    assert "queries = last" in capsys.readouterr().out
    # a forward that overflows: refused before anything is written, the dtype named
    _poison(attention_mass_module, monkeypatch, "blocks.1.attn", float("nan"))
    bad = tmp_path / "nan.csv"
    with pytest.raises(ValueError, match=r"non-finite mass.* in float16.*--dtype float32"):
        run_attention(cfg, model=model, tokenizer=tok, out=bad, progress=False,
                      log=lambda s: None)
    assert not bad.exists()


# ------------------------------------------------------------------ output paths
@pytest.mark.parametrize("command", ["probe", "attention"])
def test_an_unwritable_figure_fails_before_the_model_loads(command, tiny_dir, data_dir,
                                                           tmp_path, monkeypatch, capsys):
    import icl_tokens.experiments.runner as runner

    def no_model(*args, **kw):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(runner, "model_for", no_model)  # RunSetup.model_here loads through it
    (tmp_path / "file").write_text("x")
    out = tmp_path / "rows.csv"
    assert main([command, "--model", str(tiny_dir), "--task", "sst2", "--seeds", "0",
                 "--n-test", "2", "--k", "2", "--no-progress", "--out", str(out),
                 "--figure", str(tmp_path / "file" / "fig")]) == 2
    err = capsys.readouterr().err
    assert "--figure" in err and "not a folder" in err
    assert not out.exists()


# ------------------------------------------------------------------ layer windows
def _windows(tiny_dir, out, *extra):
    return main(["windows", "--model", str(tiny_dir), "--task", "sst2", "--seeds", "0",
                 "--n-test", "1", "--k", "2", "--width", "1", "--no-progress", "--out",
                 str(out), *extra])


def test_windows_refuse_block_options_without_the_block_and_conditions_hiding_nothing(
        tiny_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "w.csv"
    for extra in (["--agg-queries", "t_out"], ["--agg-scope=own"],
                  ["--agg-queries", "all", "--target", "test"]):
        assert _windows(tiny_dir, out, "--conditions", "+template", *extra) == 2
        assert "only --target block places" in capsys.readouterr().err
    assert _windows(tiny_dir, out, "--conditions", "icl,+template") == 2
    assert "['icl'] hide nothing" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ValueError, match="only target 'block' places"):
        WindowConfig(k=2, conditions=("+template",), block_queries="label")
    with pytest.raises(ValueError, match="hide nothing"):
        WindowConfig(k=2, conditions=("icl",))
    # under the block target, icl is the baseline the block is placed on: allowed
    assert WindowConfig(k=2, conditions=("icl",), target="block",
                        block_queries="t_out").conditions == ("icl",)


def test_window_rows_are_data_and_keep_their_names():
    rows = window_conditions(["+template"], "block", [(0, 1)])
    assert rows == [WindowRow("+template"), WindowRow("+template", blocked=True),
                    WindowRow("+template", 0, 1, blocked=True)]
    assert [r.name for r in rows] == ["+template", "+template|agg", "+template|agg@L0-1"]
    assert [r.name for r in window_conditions(["icl-template"], "test", [(2, 3)])] == \
        ["icl-template", "icl-template@L2-3"]
    # a condition whose own name contains "|agg" is not mistaken for a blocked row
    df = pd.DataFrame({"condition": ["x|agg", "x|agg|agg", "x|agg|agg@L0-0"],
                       "base_condition": ["x|agg"] * 3, "target": ["block"] * 3,
                       "window_start": [-1, -1, 0], "window_end": [-1, -1, 0],
                       "correct": [1, 0, 1]})
    curve = window_curve(df)
    assert curve["x|agg"].to_dict() == {"no block": 100.0, "all layers": 0.0, "L0-0": 100.0}
    with pytest.raises(ValueError, match="not a window row"):
        window_curve(df.assign(condition=["x", "x|agg|agg", "x|agg|agg@L0-0"]))
