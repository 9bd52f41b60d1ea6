"""Integration: the aggregation experiments on the real default model.

Gemma-3-270M, SST-2 from ``ICL_TOKENS_DATA_DIR`` (the CBU files), label-restricted scoring
(acc_label: with 270M parameters greedy generation often writes no label word under a block,
and the question here is which label the model ranks first), cached engine. The module prints
the measured tables (``pytest -s`` shows them). Assertions are about the pipeline and about the
intervention having an effect, never about the paper's claim holding on this small model:

* the block changes the model's label scores (it is a real intervention on the prefix);
* representation-level ``icl-content`` under the block is compared with token-level
  ``icl-content`` (content removed) on the same episodes;
* the layer-window curve has one row per window and the all-layers reference equals the plain
  condition's rows;
* every random draw hides exactly as many demonstration tokens as its condition.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from icl_tokens.aggregation.experiment import AggregationConfig, compare_table, run_aggregation
from icl_tokens.aggregation.windows import WindowConfig, run_layer_windows, window_curve
from icl_tokens.experiments.random_control import (
    RandomControlConfig,
    control_table,
    run_random_control,
)
from icl_tokens.experiments.token_level import TokenAblationConfig, run_token_ablation

pytestmark = pytest.mark.integration

COMMON = dict(task="sst2", seeds=(0,), n_test=16, scoring="label", engine="cached")
QUIET = dict(progress=False, log=lambda s: None)


@pytest.fixture(scope="module")
def model_tok():
    from icl_tokens.models import load_model, load_tokenizer

    torch.set_grad_enabled(False)
    return load_model(), load_tokenizer()


@pytest.fixture(scope="module")
def agg(model_tok) -> pd.DataFrame:
    model, tok = model_tok
    return run_aggregation(AggregationConfig(**COMMON), model=model, tokenizer=tok, **QUIET)


def test_aggregation_table(agg, model_tok):
    model, tok = model_tok
    table = compare_table(agg, "label_correct")
    token = run_token_ablation(TokenAblationConfig(**COMMON, conditions=("icl-content",)),
                               model=model, tokenizer=tok, **QUIET)
    print("\nGemma-3-270M, CBU SST-2, seed 0, 16 examples, acc_label (%): without / with the "
          "aggregation block")
    print(table.round(1).to_string())
    print(f"token-level icl-content (content removed): {100 * token.label_correct.mean():.1f}")
    assert list(table.index) == ["icl", "+template", "+stopword", "icl-content"]
    assert (table["n"] == 16).all()
    none = agg[agg.aggregation == "none"].set_index(["example_id", "condition"])
    block = agg[agg.aggregation == "agg"].set_index(["example_id", "condition"])
    diff = (none["score_Positive"].astype(float) - block["score_Positive"].astype(float)).abs()
    assert diff.max() > 1e-3, "the block did not change any label score"


def test_layer_window_curve(model_tok):
    model, tok = model_tok
    cfg = WindowConfig(**{**COMMON, "n_test": 8}, conditions=("+template",), target="test")
    df = run_layer_windows(cfg, model=model, tokenizer=tok, **QUIET)
    curve = window_curve(df, "label_correct")
    print("\nGemma-3-270M, CBU SST-2, seed 0, 8 examples: +template only inside a window of "
          f"{cfg.resolved_width(int(model.cfg.n_layers))} layers, acc_label (%)")
    print(curve.round(1).T.to_string())
    n_layers = int(model.cfg.n_layers)
    assert len(curve) == 1 + n_layers - cfg.resolved_width(n_layers) + 1


def test_random_control_counts(model_tok):
    model, tok = model_tok
    cfg = RandomControlConfig(**{**COMMON, "n_test": 8}, conditions=("+template", "icl-template"),
                              draws=3)
    df = run_random_control(cfg, model=model, tokenizer=tok, **QUIET)
    table = control_table(df, "label_correct")
    print("\nGemma-3-270M, CBU SST-2, seed 0, 8 examples, acc_label (%): condition vs 3 random "
          "draws hiding as many demonstration tokens")
    print(table.round(1).to_string())
    for c in cfg.conditions:
        sub = df[df.matched == c]
        assert sub.n_hidden.nunique() == 1  # every draw hides the condition's count
