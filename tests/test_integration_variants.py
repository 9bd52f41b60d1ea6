"""Integration: template variants on the real default model (paper Tables 8-10; paper-spec E6-E8,
§8 targets 6-7).

Gemma-3-270M, SST-2 and AG News from ``ICL_TOKENS_DATA_DIR`` (the CBU files), greedy generation
(acc_gen, with acc_label beside it), cached engine, all five random-string templates. One module
fixture runs every cell of the three tables and prints them beside the paper's Llama-7B numbers
(``pytest -s`` shows them), with each template's accuracy and the pattern checks 6 and 7 stated
as holding or not. The checks are *recorded*, not asserted: a 270M model on a small sample need
not show the paper's patterns. What is asserted is the pipeline: every cell of every template,
the one-shot cells with one demonstration, the prompts' template words, the paper's numbers
beside ours, checks that say "holds" or "does not hold", and cached = naive on Gemma.

The sample (1 seed × 5 test examples per task, 27 cells) keeps the file at a few minutes on 2
CPU cores; one example is 20 points of a cell (4 points of a 5-template average).
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from icl_tokens.analysis.variant_tables import (
    paper_variant_table,
    variant_pattern_checks,
    variant_table,
)
from icl_tokens.analysis.variants_report import format_variant_report
from icl_tokens.engine import score_items
from icl_tokens.experiments.runner import RunContext
from icl_tokens.experiments.variants import (
    SETTINGS,
    VariantsConfig,
    run_variants,
    variant_items,
)

pytestmark = pytest.mark.integration

SEEDS = (0,)
N_TEST = {"sst2": 5, "agnews": 5}
PAPER_MODEL = "Llama-7B"


@pytest.fixture(scope="module")
def model_and_tok():
    from icl_tokens.models import load_model, load_tokenizer

    torch.set_grad_enabled(False)
    return load_model(), load_tokenizer()


@pytest.fixture(scope="module")
def runs(model_and_tok) -> dict[str, pd.DataFrame]:
    model, tok = model_and_tok
    frames = {}
    for task, n in N_TEST.items():
        cfg = VariantsConfig(task=task, seeds=SEEDS, n_test=n, scoring="generate",
                             engine="cached")
        frames[task] = run_variants(cfg, model=model, tokenizer=tok, progress=False,
                                    log=lambda s: None)
    df = pd.concat(frames.values(), ignore_index=True)
    df.attrs["data"] = " | ".join(f.attrs["data"] for f in frames.values())
    for metric in ("correct", "label_correct"):
        print("\n" + format_variant_report(df, paper_model=PAPER_MODEL, metric=metric))
    return {"all": df, **frames}


def test_every_cell_of_every_template(runs):
    df = runs["all"]
    cells = VariantsConfig().cells()
    assert len(cells) == 1 + 1 + 5 + 5 + 3 * 5
    for task, n in N_TEST.items():
        part = df[df.task == task]
        assert len(part) == len(SEEDS) * n * len(cells)
        assert set(part.condition) == {c.name for c in cells}
        assert not part.duplicated(["seed", "example_id", "condition"]).any()
    one = df[df.condition.str.endswith("|k=1")]
    assert set(one.k) == {1} and set(df.k) == {1, 4}
    # Random strings are longer in tokens than the original template words: every random
    # prompt is longer than the original one of the same example.
    for task in N_TEST:
        part = df[(df.task == task) & (df.k == 4)].pivot_table(
            index="example_id", columns="template", values="n_tokens")
        for n in range(1, 6):
            assert (part[f"randomfixed:{n}"] > part["original"]).all()


def test_tables_with_the_paper_numbers_and_pattern_checks(runs):
    df = runs["all"]
    report = format_variant_report(df, paper_model=PAPER_MODEL)
    for table in (8, 9, 10):
        assert f"Table {table} (acc_gen" in report
        paper = paper_variant_table(table, PAPER_MODEL, list(N_TEST))
        for value in paper.to_numpy().ravel():
            assert f"{value:5.1f}" in report
    ours = {t: variant_table(df, t).pivot(index="condition", columns="task", values="mean")
            for t in (8, 9, 10)}
    checks = variant_pattern_checks(ours)  # point values: what the paper's numbers get
    assert set(checks) == {
        "6a. Swap below Standard ICL (Table 8)", "6b. Randomfixed below Standard ICL (Table 8)",
        "6c. Randomnonfixed below Randomfixed (Table 9)",
        '7. one-shot Randomfixed: Zero-shot + TEMP above Zero-shot + ":" (Table 10)'}
    for name in checks:  # our rows get a three-state verdict with an interval in the report
        line = next(ln.strip() for ln in report.splitlines()
                    if ln.strip().startswith(name + ": "))
        assert line[len(name) + 2:].startswith(("consistent", "inconsistent", "inconclusive"))
    # Every setting of the three tables has a mean over 5 templates x the seeds.
    for s in SETTINGS:
        t = variant_table(df, s.table)
        row = t[(t.condition == s.label)]
        assert len(row) == len(N_TEST)
        n_templates = 1 if s.variant in ("original", "swap") else 5
        assert set(row.n_seeds) == {n_templates * len(SEEDS)}


def test_cached_equals_naive_on_gemma(runs, model_and_tok):
    """The variant cells of one seed and template on two examples: the same answers."""
    from icl_tokens.data import load_task_data
    from icl_tokens.episodes import sample_episode
    from icl_tokens.tasks import load_task

    model, tok = model_and_tok
    task = load_task("sst2")
    cfg = VariantsConfig(task="sst2", numbers=(3,), tables=(9, 10))
    ep = sample_episode(load_task_data(task), 0, k=4, n_test=2)
    items = variant_items(RunContext(task, None, tok, None, model), ep, cfg.cells())
    naive = score_items(model, tok, items, engine="naive", scoring="generate")
    cached = score_items(model, tok, items, engine="cached", scoring="generate")
    for x, y in zip(naive, cached):
        assert x.generated_ids == y.generated_ids, x.condition
        for w in x.label_scores:
            assert abs(x.label_scores[w] - y.label_scores[w]) < 1e-3, (x.condition, w)
    # The run's rows are these items' answers (the cached engine, the same episode).
    rows = runs["sst2"].set_index(["example_id", "condition"])
    for r in cached:
        assert rows.loc[(r.example_id, r.condition), "continuation"] == (r.continuation or "")
