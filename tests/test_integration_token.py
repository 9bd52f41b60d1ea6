"""Integration: token-level ablation on the real default model (paper-spec E4, §8 targets 3-4).

Gemma-3-270M, SST-2 and AG News from ``ICL_TOKENS_DATA_DIR`` (the CBU files), acc_gen (greedy
generation), cached engine. One module fixture runs both levels on the same episodes and prints
the measured tables (``pytest -s`` shows them); each paper target is its own test, so one
failure does not hide the others.

* Target 4a: token-level ``icl-template`` (−TEMP) gives about 0 % acc_gen (the paper: 0 % for
  every model and task).
* Target 4b: ``icl-template+last`` (the ``:`` put back after the test example's newline) comes
  back to about the Standard ICL level ("the results return to their original level").
* Target 3: *removing* CONT tokens costs more than *hiding* CONT representations (Table 4
  against Table 3), averaged over the tasks.

The sample (2 seeds × 16 test examples per task) keeps the file at about 2 minutes on 2 idle
CPU cores (AG News prompts are about 2.5 times longer than SST-2's); one example is 3 points.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from icl_tokens.analysis.tables import accuracy_table, format_accuracy_table
from icl_tokens.experiments import AblationConfig, run_ablation
from icl_tokens.experiments.token_level import (
    TABLE4_ROWS,
    TokenAblationConfig,
    run_token_ablation,
)
from icl_tokens.reference import paper_cells_table, paper_condition_table

pytestmark = pytest.mark.integration

SEEDS = (0, 1)
N_TEST = {"sst2": 16, "agnews": 16}  # test examples per seed
TOKEN_CONDITIONS = ("icl", "icl-content", "icl-template", "icl-template+last")
REP_CONDITIONS = ("icl-content",)  # its Standard ICL is the token level's "icl" prompt
PAPER_MODEL = "Llama-7B"
ORDER = ("icl", "icl-content", "icl-template", "icl-template+last")


@pytest.fixture(scope="module")
def runs() -> dict[str, pd.DataFrame]:
    from icl_tokens.models import load_model, load_tokenizer

    torch.set_grad_enabled(False)
    model, tok = load_model(), load_tokenizer()
    token, rep = [], []
    for task, n in N_TEST.items():
        common = dict(task=task, seeds=SEEDS, n_test=n, scoring="generate", engine="cached")
        token.append(run_token_ablation(TokenAblationConfig(conditions=TOKEN_CONDITIONS, **common),
                                        model=model, tokenizer=tok, progress=False,
                                        log=lambda s: None))
        rep.append(run_ablation(AblationConfig(conditions=REP_CONDITIONS, **common),
                                model=model, tokenizer=tok, progress=False, log=lambda s: None))
    out = {"token": pd.concat(token, ignore_index=True), "rep": pd.concat(rep, ignore_index=True)}
    # The representation level's Standard ICL row is the token level's (the same prompts).
    out["rep"] = pd.concat([out["token"].query("condition == 'icl'"), out["rep"]],
                           ignore_index=True)
    tasks = list(N_TEST)
    paper4 = paper_cells_table({k: (4, v, "") for k, v in TABLE4_ROWS.items()}, PAPER_MODEL,
                               tasks)
    paper3 = paper_condition_table(PAPER_MODEL, tasks)
    for key, frames, paper, title in (
            ("token", token, paper4, "token level (removed tokens) vs paper Table 4"),
            ("rep", rep, paper3, "representation level (hidden representations) vs Table 3")):
        print(f"\n{title}, acc_gen:")
        print(format_accuracy_table(accuracy_table(out[key]), paper=paper,
                                    paper_label=PAPER_MODEL, order=ORDER,
                                    data_note=" | ".join(f.attrs["data"] for f in frames)))
    valid = out["token"].groupby(["condition", "task"], sort=False)["valid"].mean().mul(100)
    print("\nshare of generations that are label words (%):")
    print(valid.unstack("task").round(1).to_string())
    return out


def _acc(df: pd.DataFrame, metric: str = "correct") -> pd.DataFrame:
    """Mean accuracy (%) over seeds: conditions × tasks."""
    return accuracy_table(df, metric).pivot(index="condition", columns="task", values="mean")


def test_levels_share_the_standard_icl_prompt(runs):
    """Both levels ran on the same episodes: the masked prompts are the token level's Standard
    ICL prompts (a knockout changes no position), so one ``icl`` row serves as both baselines."""
    key = ["task", "seed", "example_id"]
    icl = runs["token"].query("condition == 'icl'").set_index(key).sort_index()
    rep = runs["rep"].query("condition == 'icl-content'").set_index(key).sort_index()
    assert icl.index.equals(rep.index)
    assert (icl["n_tokens"] == rep["n_tokens"]).all()


@pytest.mark.xfail(strict=True, reason=(
    "Gemma-3-270M departs from the paper here: token-level icl-template keeps acc_gen at "
    "59.4 (SST-2) / 18.8 (AG News) on 2 seeds x 16 examples, because every demonstration still "
    "reads '{D_in}\\n {label}\\n\\n' and the model copies that pattern after the test "
    "example's newline (all its answers are label words). strict: a change of behaviour fails."))
def test_token_level_minus_template_gives_about_zero(runs):
    """Target 4a: −TEMP (label words and newlines kept) collapses to ≈ 0 % acc_gen."""
    acc = _acc(runs["token"])
    got = acc.loc["icl-template"]
    valid = runs["token"].query("condition == 'icl-template'").groupby("task")["valid"].mean()
    assert (got <= 5.0).all(), (
        f"token-level icl-template acc_gen (%) per task: {got.round(1).to_dict()} (paper: 0); "
        f"share of generations that are label words: {valid.mul(100).round(1).to_dict()}")


@pytest.mark.xfail(strict=True, reason=(
    "Gemma-3-270M departs from the paper here: after '{x_test}\\n:' it mostly writes a "
    "newline (icl-template+last acc_gen 0.0 SST-2 / 6.2 AG News vs icl 71.9 / 31.2); putting ':' "
    "back in the demonstrations too (restore_in_demos) recovers (68.8 / 31.2). strict: a change "
    "of behaviour fails."))
def test_restoring_the_last_token_recovers(runs):
    """Target 4b: −TEMP + the final ``:`` comes back to within 15 points of Standard ICL."""
    acc = _acc(runs["token"])
    gap = acc.loc["icl"] - acc.loc["icl-template+last"]
    assert (gap.abs() <= 15.0).all(), (
        f"acc_gen (%) icl {acc.loc['icl'].round(1).to_dict()} vs icl-template+last "
        f"{acc.loc['icl-template+last'].round(1).to_dict()} (gap {gap.round(1).to_dict()}; "
        "paper: 'return to their original level')")


def test_removing_content_costs_more_than_hiding_it(runs):
    """Target 3: token-level −CONT costs more than representation-level −CONT (task mean)."""
    tok, rep = _acc(runs["token"]), _acc(runs["rep"])
    cost_tok = tok.loc["icl"] - tok.loc["icl-content"]
    cost_rep = rep.loc["icl"] - rep.loc["icl-content"]
    assert cost_tok.mean() > cost_rep.mean(), (
        f"cost of −CONT (points): removing tokens {cost_tok.round(1).to_dict()} "
        f"(mean {cost_tok.mean():.1f}), hiding representations {cost_rep.round(1).to_dict()} "
        f"(mean {cost_rep.mean():.1f})")
