"""Accuracy tables, the paper layout and the pattern checks, on synthetic result rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icl_tokens.ablation.conditions import PAPER_ORDER
from icl_tokens.analysis.tables import (
    accuracy_by_seed,
    accuracy_table,
    format_accuracy_table,
    hidden_counts,
    paper_layout,
    pattern_checks,
    task_means,
    validity_table,
)
from icl_tokens.experiments import AblationConfig
from icl_tokens.reference import paper_condition_table

# Accuracy (%) per condition of a made-up run; seeds differ by +-10 points.
TRUE = {"zero_shot": 0, "+content": 40, "+stopword": 60, "+template": 80, "icl": 90,
        "icl-content": 90, "icl-stopword": 80, "icl-template": 50, "none": 30}


def _rows(task: str, offset: float = 0.0) -> pd.DataFrame:
    rows = []
    for seed, delta in ((0, -10), (1, 10)):
        for cond, acc in TRUE.items():
            n_correct = int(round((acc + delta * (cond != "zero_shot") + offset) / 10))
            for i in range(10):
                rows.append({"model": "m", "task": task, "seed": seed, "example_id": f"t:{i}",
                             "condition": cond, "correct": int(i < n_correct),
                             "label_correct": 1})
    return pd.DataFrame(rows)


@pytest.fixture
def results() -> pd.DataFrame:
    return pd.concat([_rows("sst2"), _rows("agnews", offset=0)], ignore_index=True)


def test_accuracy_by_seed_and_table(results):
    per_seed = accuracy_by_seed(results)
    icl = per_seed[(per_seed.task == "sst2") & (per_seed.condition == "icl")]
    assert icl.accuracy.tolist() == [80.0, 100.0] and icl.n.tolist() == [10, 10]
    table = accuracy_table(results)
    row = table[(table.task == "sst2") & (table.condition == "icl")].iloc[0]
    assert row["mean"] == 90.0 and row["std"] == pytest.approx(np.std([80, 100], ddof=1))
    # Tasks keep the order they first appear in; conditions follow the paper's layout.
    assert list(dict.fromkeys(table.task)) == ["sst2", "agnews"]
    assert table[table.task == "sst2"].condition.tolist() == list(PAPER_ORDER)


def test_paper_layout_avg_and_delta(results):
    table = accuracy_table(results)
    paper = paper_condition_table("Llama-7B", tasks=["sst2", "agnews"])
    lay = paper_layout(table, paper)
    assert list(lay.columns.get_level_values(0).unique()) == ["sst2", "agnews", "avg", "Δ"]
    assert lay.loc["+ TEMP  [+template]", ("Δ", "ours")] == pytest.approx(80 - 0)
    assert lay.loc["- TEMP  [icl-template]", ("Δ", "ours")] == pytest.approx(50 - 90)
    assert lay.loc["+ TEMP  [+template]", ("sst2", "paper")] == pytest.approx(90.2)
    # Paper Δ over SST-2 and AG News: mean(70.8, 90.2) - mean(25.0, 29.2)
    assert lay.loc["+ TEMP  [+template]", ("Δ", "paper")] == pytest.approx(
        (70.8 + 90.2) / 2 - (25.0 + 29.2) / 2)
    assert np.isnan(lay.loc["Standard ICL  [icl]", ("Δ", "ours")])
    assert "paper" not in paper_layout(table).columns.get_level_values(1)


def test_pattern_checks(results):
    """Point checks (for the paper's printed means) come from the one declaration of each
    pattern (representation.PATTERNS)."""
    from icl_tokens.experiments.representation import PATTERNS

    table = accuracy_table(results)
    checks = pattern_checks(task_means(table))
    assert list(checks) == [p.title for p in PATTERNS]
    one, two_a, two_b = (checks[p.title] for p in PATTERNS)
    assert one.startswith("holds") and "point values, no test" in one
    assert two_a.startswith("holds")
    assert two_b.startswith("does not hold")  # icl-stopword is 10 points from Standard
    flipped = task_means(table).copy()
    flipped["+content"], flipped["+template"] = flipped["+template"], flipped["+content"]
    assert pattern_checks(flipped)[PATTERNS[0].title].startswith("does not")


def test_format_accuracy_table_with_paper(results):
    table = accuracy_table(results[results.task == "sst2"])
    text = format_accuracy_table(table, paper_condition_table("Llama-7B", tasks=["sst2"]),
                                 paper_label="Llama-7B")
    lines = text.splitlines()
    assert "sst2 (Llama-7B)" in lines[0]
    icl = next(line for line in lines if line.startswith("Standard ICL"))
    assert "90.0 ± 14.1" in icl and "94.3" in icl


def test_config_validation_and_identity():
    with pytest.raises(ValueError, match="unknown condition"):
        AblationConfig(conditions=("icl", "bogus"))
    with pytest.raises(ValueError, match="unknown scoring"):
        AblationConfig(scoring="argmax")
    with pytest.raises(ValueError, match="unknown engine"):
        AblationConfig(engine="fast")
    with pytest.raises(ValueError, match="stopword variant"):
        AblationConfig(stopword_variant="spacy")
    cfg = AblationConfig(conditions=("standard", "minus_temp"), seeds=(0, 1))
    assert cfg.conditions == ("icl", "icl-template")
    ident = cfg.identity()
    assert "engine" not in ident and "batch_size" not in ident  # same answers either way
    assert ident["seeds"] == [0, 1]


def test_run_ablation_flags_prompts_longer_than_the_sliding_window(tmp_path, monkeypatch):
    from pathlib import Path

    from transformers import PreTrainedTokenizerFast

    from icl_tokens.experiments import run_ablation
    from icl_tokens.testing.tiny import tiny_model

    fixtures = Path(__file__).parent / "fixtures" / "data"
    monkeypatch.setenv("ICL_TOKENS_DATA_DIR", str(fixtures))
    model = tiny_model("gemma3", tmp_path / "g")  # sliding window of 16 tokens
    tok = PreTrainedTokenizerFast.from_pretrained(tmp_path / "g")
    logs: list[str] = []
    df = run_ablation(AblationConfig(task="sst2", k=2, n_test=1, conditions=("icl",),
                                     scoring="label"),
                      model=model, tokenizer=tok, progress=False, log=logs.append)
    assert len(df) == 1 and df.n_tokens.iloc[0] > 16
    assert any("sliding window (16 tokens)" in line for line in logs)


def test_config_refuses_duplicate_seeds_and_meaningless_k0():
    with pytest.raises(ValueError, match=r"seeds \[0\] are given more than once"):
        AblationConfig(seeds=(0, 0))
    with pytest.raises(ValueError, match="k=0 leaves no demonstrations"):
        AblationConfig(k=0)
    assert AblationConfig(k=0, conditions=("zero_shot", "icl")).k == 0
    with pytest.raises(ValueError, match="unknown dtype"):
        AblationConfig(dtype="float8")


def test_format_table_names_its_data(results):
    t = accuracy_table(results)
    text = format_accuracy_table(t, data_note="sst2 from staicc (...)")
    assert text.splitlines()[0] == "data: sst2 from staicc (...)"


def test_hidden_counts_and_validity_tables(results):
    from icl_tokens.categorize import categorize
    from icl_tokens.models import gpt2_tokenizer
    from icl_tokens.prompts import build_prompt
    from icl_tokens.tasks import Example, load_task

    task = load_task("sst2")
    demo = Example("d", {"text": "the film is a joy ."}, "1")
    tp = categorize(build_prompt(task, [demo], Example("t", {"text": "dull ."}, "0")),
                    gpt2_tokenizer())
    hc = hidden_counts(tp)
    assert hc.loc["icl", "hidden demo tokens"] == 0
    assert hc.loc["icl-content", "hidden demo tokens"] == hc.loc["icl-content", "content"] == \
        int((tp.has("content") & (tp.demo >= 0)).sum())
    # The newline stays visible unless both TEMP and STOP are hidden.
    assert hc.loc["icl-template", "hidden newlines"] == 0
    assert hc.loc["+content", "hidden newlines"] > 0
    rows = results.copy()
    rows["valid"] = 1
    rows.loc[rows.index[:3], "valid"] = 0
    v = validity_table(rows)
    assert v[("valid generations (%)", "sst2")].notna().all()


def test_data_note_says_when_sst2_is_not_the_papers_set():
    from icl_tokens.data import TaskData
    from icl_tokens.experiments import data_note

    fallback = TaskData("sst2", (), (), "staicc", "StaICC 0.1.1", "")
    note = data_note(fallback, "gemma-3-270m", (0, 1), 50)
    assert "not the paper's" in note and "seeds 0,1" in note and "50 examples" in note
    cbu = TaskData("sst2", (), (), "dir", "../shared/data/sst2", "")
    assert "not the paper's" not in data_note(cbu)


def test_nltk_bos_accident_touches_masked_conditions_only():
    """Table 14 (paper Appendix B): BOS is hidden in the masked conditions, never in Standard
    ICL; the run identity says so, so a file written under the old scope cannot resume."""
    from icl_tokens.experiments import AblationConfig

    cfg = AblationConfig(stopword_variant="nltk", hide_bos=True)
    assert cfg.knockout("icl").blocks == ()
    (block,) = cfg.knockout("+template").blocks
    assert "hide_bos" in block.keys.describe()
    assert cfg.identity()["hide_bos_scope"] == "masked"
    assert "hide_bos_scope" not in AblationConfig().identity()
