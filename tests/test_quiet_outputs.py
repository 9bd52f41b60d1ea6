"""What a person sees: notes as ordinary output (not stderr), tables without NaN or "± 0.0",
README commands that write under results/, progress bars over probe fits and reproduce's runs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from icl_tokens.ablation.conditions import PAPER_ORDER
from icl_tokens.analysis.tables import (
    LAYOUT_FOOTNOTE,
    NO_VALUE,
    accuracy_table,
    format_accuracy_table,
    layout_text,
    paper_layout,
)
from icl_tokens.reference import paper_condition_table

README = Path(__file__).resolve().parents[1] / "README.md"


def _rows(seeds: tuple[int, ...], task: str = "sst2") -> pd.DataFrame:
    """Tidy rows: 4 examples per seed and condition, accuracy varying with the seed."""
    rows = []
    for s in seeds:
        for c in PAPER_ORDER:
            for i in range(4):
                rows.append({"model": "m", "task": task, "seed": s, "example_id": f"e{i}",
                             "condition": c, "correct": int(i < 2 + s % 2)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ notes and progress
def _tiny(tmp_path):
    from transformers import PreTrainedTokenizerFast

    from icl_tokens.testing.tiny import tiny_model

    model = tiny_model("llama", tmp_path / "m")
    return model, PreTrainedTokenizerFast.from_pretrained(tmp_path / "m")


@pytest.mark.parametrize("progress", [False, True])
def test_default_log_notes_are_ordinary_output(tmp_path, data_dir, capfd, progress):
    from icl_tokens.experiments import AblationConfig, run_ablation

    model, tok = _tiny(tmp_path)
    capfd.readouterr()
    cfg = AblationConfig(task="sst2", k=2, n_test=2, conditions=("icl", "+template"),
                         scoring="label")
    run_ablation(cfg, model=model, tokenizer=tok, out=tmp_path / "r.csv", progress=progress)
    run_ablation(cfg, model=model, tokenizer=tok, out=tmp_path / "r.csv", progress=progress)
    captured = capfd.readouterr()
    assert "data: dir" in captured.out and "nothing to do" in captured.out
    if progress:  # the bar alone: every line of stderr is the bar's
        lines = [x for x in re.split(r"[\r\n]", captured.err) if x.strip()]
        assert lines and all(x.startswith("rows") for x in lines), captured.err
    else:
        assert captured.err == ""


def _probe_data(root: Path) -> Path:
    """An SST-2-format folder of distinct sentences (probe folds need independent prompts)."""
    rng = np.random.default_rng(0)
    good, bad = ["warm", "bright", "funny", "clever"], ["dull", "flat", "tired", "bland"]
    lines: list[str] = []
    while len(lines) < 120:
        pos = bool(rng.integers(0, 2))
        line = (f"{int(pos)} a {(good if pos else bad)[rng.integers(4)]} film of "
                f"{rng.integers(100000)} .")
        if line not in lines:
            lines.append(line)
    d = root / "sst2"
    d.mkdir(parents=True)
    (d / "stsa.binary.train").write_text("\n".join(lines[:90]) + "\n")
    (d / "stsa.binary.test").write_text("\n".join(lines[90:]) + "\n")
    return root


def test_probe_fits_show_a_bar_over_the_null_only_with_progress(tmp_path, monkeypatch, capfd):
    from icl_tokens.aggregation.probe_run import ProbeConfig, run_probes

    monkeypatch.setenv("ICL_TOKENS_DATA_DIR", str(_probe_data(tmp_path / "data")))
    model, tok = _tiny(tmp_path)
    cfg = ProbeConfig(task="sst2", seeds=(0, 1), k=2, n_test=8, positions=("label",),
                      folds=3, inner_folds=2, permutations=3)
    capfd.readouterr()
    run_probes(cfg, model=model, tokenizer=tok, progress=False, log=lambda s: None)
    assert capfd.readouterr().err == ""
    run_probes(cfg, model=model, tokenizer=tok, progress=True, log=lambda s: None)
    err = capfd.readouterr().err
    assert "probe fits" in err
    n_layers = int(model.cfg.n_layers)
    # inside the fit unit: one bar over every layer's shuffles, advanced layer by layer
    assert "label icl null: 100%" in err and f"{3 * n_layers}/{3 * n_layers}" in err


def test_reproduce_shows_a_bar_over_its_runs(tiny_dir, data_dir, tmp_path, capfd):
    from icl_tokens.reproduce import reproduce

    reproduce("2", model=str(tiny_dir), tasks=["sst2"], budget="smoke",
              out_dir=tmp_path / "r", progress=True, log=lambda s: None)
    err = capfd.readouterr().err
    assert re.search(r"reproduce: 100%.*1/1.*representation sst2", err), err[-800:]


# ------------------------------------------------------------------ tables
def test_one_seed_cells_show_no_spread_and_the_header_says_so():
    one = format_accuracy_table(accuracy_table(_rows((0,))))
    assert "±" not in one
    assert "sst2 (ours, 1 seed)" in one.splitlines()[0]
    two = format_accuracy_table(accuracy_table(_rows((0, 1))))
    assert "62.5 ± 17.7" in two
    assert "sst2 (ours)" in two.splitlines()[0]
    mixed = pd.concat([_rows((0, 1)), _rows((0,), task="agnews")], ignore_index=True)
    header = format_accuracy_table(accuracy_table(mixed)).splitlines()[0]
    assert "sst2 (ours)" in header and "agnews (ours, 1 seed)" in header
    with pytest.raises(ValueError, match="accuracy_table"):
        format_accuracy_table(accuracy_table(_rows((0,))).drop(columns="n_seeds"))


def test_layout_text_shows_a_dash_with_a_footnote_instead_of_nan():
    table = accuracy_table(_rows((0, 1)))
    layout = paper_layout(table, paper_condition_table("Llama-7B", tasks=["sst2"]))
    assert layout.isna().any().any()  # the numbers keep NaN for code
    text = layout_text(layout)
    cells = text.to_numpy().ravel().tolist()
    assert not any("nan" in str(c).lower() for c in cells)
    assert text.loc["Standard ICL  [icl]", ("Δ", "ours")] == NO_VALUE
    assert text.loc["Standard ICL  [icl]", ("sst2", "ours")] == "62.5"
    assert LAYOUT_FOOTNOTE.startswith(NO_VALUE) and "baseline" in LAYOUT_FOOTNOTE
    assert layout_text(layout, digits=0).loc["Standard ICL  [icl]", ("sst2", "ours")] == "62"
    with pytest.raises(ValueError, match="digits"):
        layout_text(layout, digits=-1)


# ------------------------------------------------------------------ README
def _readme_commands() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if "icl_tokens" in line and not line.startswith("#"):
                out.append(shlex.split(line))
    return out


def test_readme_commands_write_under_results():
    """Every file a README command writes (--out, --out-dir, --figure) is under results/, not
    in the repository root."""
    written = []
    for argv in _readme_commands():
        for i, arg in enumerate(argv):
            for opt in ("--out", "--out-dir", "--figure"):
                if arg == opt:
                    written.append(argv[i + 1])
                elif arg.startswith(opt + "="):
                    written.append(arg.split("=", 1)[1])
    assert len(written) >= 10, written
    outside = [w for w in written if not w.startswith("results/")]
    assert not outside, f"README commands write outside results/: {outside}"


def test_loading_a_local_model_draws_no_weights_bar(tiny_dir, capfd) -> None:
    """No "Loading weights" progress bar: in a notebook or a Voila app it stays behind as a
    stray widget."""
    from icl_tokens.models import load_model

    capfd.readouterr()
    load_model(str(tiny_dir))
    out, err = capfd.readouterr()
    assert "Loading weights" not in out + err
