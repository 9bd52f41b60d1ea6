# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · A per-token atlas: which single demonstration tokens does the answer depend on?
#
# Notebooks 02-05 ask the paper's question (Bai et al., arXiv 2401.11323): which **kind** of
# demonstration token matters for in-context learning, with the kinds (template, stopword,
# content, label) fixed in advance. This notebook asks it one level down, without categories:
# **which single demonstration tokens** does the answer depend on, and do the paper's categories
# describe that well?
#
# | step | question | measurement |
# |---|---|---|
# | **exact atlas** | what happens to the answer when the test example cannot see one token? | one knockout per demonstration token: the change of the gold label's margin (`delta_margin`) |
# | **attribution** | can one forward and one backward pass predict all of those at once? | a gate on every key's attention; its gradient (and the AtP* variant) |
# | **cross-check** | does the cheap estimate rank tokens like the exact one? | Spearman, top-k overlap, false negatives, wall time |
# | **roll-ups** | are categories the right unit? | share of the effect by category and role beside the share of tokens; concentration; additivity |
#
# The knockout is the same as in notebook 02, for one key: the test example's tokens (and the
# generated ones) may not attend to that token, in every layer (the token's own representation,
# and what the other demonstration tokens read from it, are untouched). The **margin** is the
# gold label's log-probability minus the best other label's (nats); `delta_margin` < 0 means the
# token helped the right answer. `docs/atlas.md` describes the command and its columns.
#
# The model is small (270M parameters) and the samples are small: every statement below is
# computed from this run's tables, with intervals over test examples.

# %% tags=["parameters"]
import os

SMOKE = os.environ.get("ICL_TOKENS_SMOKE", "0") == "1"
MODEL = "gemma-3-270m"  # change this one line to rerun the notebook on another model
TASK = "sst2"
SEEDS = [0] if SMOKE else [0, 1, 2]  # >= 3 seeds: intervals over demonstrations too
N_TEST = 2 if SMOKE else 20  # test examples per seed
K = 2 if SMOKE else 4  # demonstrations
SCORING = "label"  # which prediction "flipped" compares: "label" or "generate"
LAYERS = None  # knock out (and attribute) only in these layers, e.g. list(range(0, 9))
THRESHOLD = 0.1  # exact |delta_margin| (nats) above which a token counts as critical
MASS = 0.8  # concentration: the share of a category's |effect| its carriers hold
N_BOOT = 200 if SMOKE else 2000  # bootstrap resamples of the intervals
DEVICE = None
DTYPE = "float32"
OUT_DIR = None  # a folder: the atlas CSV (a rerun resumes it) and the figures
SOLUTIONS = SMOKE  # run the exercises' folded solutions through their checkers (CI does)

# %% [markdown]
# **Cost.** The exact atlas runs one knockout per demonstration token (about 15-25 tokens per
# demonstration for SST-2), batched on the cached engine: the demonstrations are computed once
# per seed and each knockout re-runs only the test example's tokens. The attribution is one
# forward and one backward pass per example, whatever the number of tokens. The run below
# prints both wall times; with the defaults (3 seeds × 20 examples, k = 4) expect minutes on a
# CPU, not seconds.

# %% [markdown]
# ## Setup (ignore)

# %%
import time
from pathlib import Path

import pandas as pd
import torch
from IPython.display import display

from icl_tokens.ablation import Block, Knockout, Sel
from icl_tokens.atlas import (
    AtlasConfig,
    additivity,
    concentration,
    cross_check,
    effect_shares,
    label_margin,
    per_example,
    run_atlas,
)
from icl_tokens.atlas.run import atlas_prompts
from icl_tokens.atlas.views import attribution_scatter, prompt_figure, rollup_bars
from icl_tokens.data import load_task_data
from icl_tokens.engine import LabelSet, score_items
from icl_tokens.episodes import sample_episode
from icl_tokens.exercises import check_effect_shares, check_token_knockout
from icl_tokens.explore import explore
from icl_tokens.models import load_model, load_tokenizer, model_info
from icl_tokens.plotting import save_figure, use_embedded_renderer
from icl_tokens.tasks import load_task

use_embedded_renderer()  # figures survive HTML export (plotly.js embedded once)

torch.set_grad_enabled(False)
pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 30)
pd.set_option("display.precision", 3)
out_dir = Path(OUT_DIR) if OUT_DIR else None
if out_dir:
    out_dir.mkdir(parents=True, exist_ok=True)


def show(fig, name: str) -> None:
    """Show a figure (and save it under OUT_DIR)."""
    if out_dir:
        save_figure(fig, out_dir / name)
    fig.show()


# %%
model = load_model(MODEL, device=DEVICE, dtype=getattr(torch, DTYPE))
tokenizer = load_tokenizer(MODEL)
info = model_info(model)
print({k: info[k] for k in ("name", "n_layers", "n_heads", "d_model", "dtype")})
task = load_task(TASK)
data = load_task_data(task)
print(f"data: {data.source} ({data.location})")

# %% [markdown]
# ## 1. The atlas
#
# One row per (seed, test example, demonstration token). `position` numbers the token as
# `python -m icl_tokens categorize --json` does; `delta_margin` is the exact effect,
# `attribution` and `attribution_atp` the two one-pass estimates of it, `flipped` whether the
# knockout changed the prediction; `group_<condition>` is the measured knockout of a whole
# category on that example (for the additivity test in section 4).

# %%
cfg = AtlasConfig(model=MODEL, task=TASK, seeds=tuple(SEEDS), k=K, n_test=N_TEST,
                  scoring=SCORING, device=DEVICE, dtype=DTYPE,
                  layers=None if LAYERS is None else tuple(LAYERS))
start = time.perf_counter()
atlas = run_atlas(cfg, model=model, tokenizer=tokenizer,
                  out=None if out_dir is None else out_dir / "atlas.csv",
                  progress=not SMOKE, log=lambda s: None)
print(f"{len(atlas)} rows, {atlas.groupby(['seed', 'example_id']).ngroups} examples in "
      f"{time.perf_counter() - start:.0f} s ({atlas.attrs['data']})")
display(atlas[["seed", "example_id", "position", "token", "categories", "roles",
               "delta_margin", "flipped", "attribution", "attribution_atp"]].head(8))

# %% [markdown]
# ## 2. One example's atlas
#
# The first test example's prompt, each demonstration token coloured by its exact effect
# (red: the test example's answer needed it, the gold margin drops without it; blue: the
# margin rises without it; hover for the token's roles and both estimates). BOS, the
# instruction and the test example are not knocked out and stay uncoloured.
#
# **Predict first.** Which tokens do you expect in red: the label words of the demonstrations,
# the `:` before each label, the sentiment-bearing content words, the newlines?

# %%
episode = sample_episode(data, SEEDS[0], k=K, n_test=N_TEST)
labels = LabelSet.for_task(task, tokenizer)
tp0, item0 = atlas_prompts(task, tokenizer, labels, episode)[0]
rows0 = atlas[(atlas["seed"] == SEEDS[0]) & (atlas["example_id"] == item0.example_id)]
show(prompt_figure(atlas, seed=SEEDS[0], example_id=item0.example_id, tp=tp0),
     "atlas_prompt")
top = rows0.reindex(rows0["delta_margin"].abs().sort_values(ascending=False).index)
print(f"gold {item0.gold!r}; margin of the plain prompt {rows0['base_margin'].iloc[0]:+.3f} "
      "nats. The ten largest |effects|:")
display(top[["position", "token", "categories", "roles", "delta_margin", "flipped",
             "attribution"]].head(10))

# %% [markdown]
# ### Exercise 1 · One atlas row by hand
#
# Every row of the atlas is one knockout. Write `token_knockout(i)`: the
# :class:`~icl_tokens.ablation.Knockout` under which the test example's tokens, and every token
# the model generates, may not attend to the key at position `i`, in all layers and heads. Then
# score it: the change of the gold margin must equal the atlas row.
#
# <details><summary>Solution</summary>
#
# ```python
# def token_knockout(i):
#     return Knockout((Block(Sel.test(), Sel.positions([i])),))
# ```
#
# </details>

# %%
def token_knockout(i: int) -> Knockout:
    """The test example (and generated tokens) may not attend to the key at position i."""
    raise NotImplementedError("write token_knockout; the solution is folded above")


# %%
if SOLUTIONS:  # the folded solution above (the CI runs it)
    def token_knockout(i):
        return Knockout((Block(Sel.test(), Sel.positions([i])),))

if check_token_knockout(token_knockout) and LAYERS is None:
    p = int(top["position"].iloc[0])
    plain, knocked = score_items(model, tokenizer, [item0, item0.with_knockout(
        token_knockout(p))], scoring="label")
    mine = (label_margin(knocked.label_scores, item0.gold)
            - label_margin(plain.label_scores, item0.gold))
    print(f"position {p}: yours {mine:+.5f}, the atlas {top['delta_margin'].iloc[0]:+.5f}")

# %% [markdown]
# ## 3. The cross-check: does one pass rank tokens like the exact atlas?
#
# The exact atlas costs one forward per token; the attribution costs one forward and one
# backward per example. Per example: the **Spearman** correlation of the estimate with
# `delta_margin`, the **top-k overlap** (how many of the k tokens with the largest exact
# |effect| are among the estimate's k largest), and the **false-negative rate** (tokens with
# exact |effect| > `THRESHOLD` that the estimate ranks outside its top k, over all such
# tokens). Every seed scores the same test examples, so seeds and examples are crossed random
# factors: means get the crossed random-effects t interval, and pooled rates the same after
# linearization; the `interval` column names the method. With one seed (the small setting) the interval covers the examples only, and with few
# examples it is wide or undefined (`nan`).
#
# `attribution` is the gradient of the margin with respect to a gate on each key's attention
# (the first-order effect of removing it); `attribution_atp` computes each layer's
# renormalised attention change exactly and linearises only across layers (AtP*).

# %%
cc = cross_check(atlas, threshold=THRESHOLD, n_boot=N_BOOT)
display(cc[["task", "method", "n_seeds", "n_examples", "interval", "spearman", "spearman_lo",
            "spearman_hi", "top5", "top10", "fnr5", "fnr10", "n_above", "exact_s",
            "attribution_s", "speedup"]])
show(attribution_scatter(atlas), "atlas_scatter")

# %% [markdown]
# A point on the dashed identity line is a token whose estimate equals its exact effect; the
# ranking measures above only ask for the same order. Per example:

# %%
display(per_example(atlas, "attribution", threshold=THRESHOLD)[
    ["seed", "example_id", "n_keys", "spearman", "top5", "top10", "n_above", "fn5", "fn10"]])

# %% [markdown]
# ## 4. Roll-ups: are categories the right unit?
#
# If the paper's categories were the right unit, a category's share of the total |effect|
# would differ from its share of the tokens, and inside a category the effect would be spread
# over its tokens. **Shares** group tokens by their exact category set (a newline is
# `template|stopword`) or by role (`t_out.colon` is the `:` before each label, `d_out` the label
# word, `d_in.text` the input text).

# %%
shares_cat = effect_shares(atlas, "categories", n_boot=N_BOOT)
shares_role = effect_shares(atlas, "role", n_boot=N_BOOT)
display(shares_cat[["task", "group", "share", "share_lo", "share_hi", "token_share"]])
show(rollup_bars(shares_cat, by="categories"), "atlas_shares_categories")
show(rollup_bars(shares_role, by="role"), "atlas_shares_roles")

# %% [markdown]
# ### Exercise 2 · A category's share of the effect
#
# For the rows of **one** example, return `{categories: share}`: the summed |`delta_margin`| of
# the tokens with that exact category set, divided by the example's total |`delta_margin`|
# (the per-example quantity `effect_shares` averages).
#
# <details><summary>Solution</summary>
#
# ```python
# def category_shares(rows):
#     mag = rows["delta_margin"].abs()
#     return (mag.groupby(rows["categories"]).sum() / mag.sum()).to_dict()
# ```
#
# </details>

# %%
def category_shares(rows: pd.DataFrame) -> dict[str, float]:
    """Each category set's share of one example's total |delta_margin|."""
    raise NotImplementedError("write category_shares; the solution is folded above")


# %%
if SOLUTIONS:  # the folded solution above (the CI runs it)
    def category_shares(rows):
        mag = rows["delta_margin"].abs()
        return (mag.groupby(rows["categories"]).sum() / mag.sum()).to_dict()

if check_effect_shares(category_shares):
    print("this run's first example:", {k: round(v, 3) for k, v in
                                        category_shares(rows0).items()})

# %% [markdown]
# **Concentration**: how many of a category's tokens carry `MASS` of its |effect| (few carriers
# = a handful of tokens matter, not the category). **Additivity**: the measured knockout of a
# whole category (`group_icl-template` etc., the paper's representation-level condition) against
# the sum of its tokens' single effects; the difference is interaction (redundancy when the
# tokens back each other up, synergy when they only matter together).

# %%
display(concentration(atlas, "categories", MASS, n_boot=N_BOOT)[
    ["task", "group", "n_tokens", "carriers", "carrier_share"]])
add = additivity(atlas, n_boot=N_BOOT)
display(add[["task", "group", "n_tokens", "measured", "summed", "interaction",
             "interaction_share", "interaction_share_lo", "interaction_share_hi"]])

# %% [markdown]
# ## 5. What this run shows
#
# Computed from the tables above (with `SMOKE` the run is too small to read anything into).


# %%
def interval(row: pd.Series, col: str) -> str:
    return f"{row[col]:.2f} [{row[f'{col}_lo']:.2f}, {row[f'{col}_hi']:.2f}]"


n_ex = atlas.groupby(["seed", "example_id"]).ngroups
print(f"{MODEL}, {TASK}, k={K}: {len(atlas)} tokens in {n_ex} test examples; 95% intervals: "
      f"{cc['interval'].iloc[0]}")
for _, r in cc.iterrows():
    print(f"  {r['method']:16s} Spearman {interval(r, 'spearman')}, top-5 overlap "
          f"{interval(r, 'top5')}, {r['speedup']:.0f}x faster than the exact atlas")
for _, r in shares_cat.head(3).iterrows():
    print(f"  {r['group']:18s} holds {interval(r, 'share')} of |effect| with "
          f"{r['token_share']:.2f} of the tokens")
flips = atlas["flipped"].mean()
print(f"  {flips:.1%} of single-token knockouts flip the prediction; the largest |effect| is "
      f"{atlas['delta_margin'].abs().max():.3f} nats")
for _, r in add.iterrows():
    print(f"  {r['group']:14s} measured {r['measured']:+.3f}, sum of its tokens "
          f"{r['summed']:+.3f}: interaction share {interval(r, 'interaction_share')}")

# %% [markdown]
# ## 6. The atlas in the explorer
#
# The knockout explorer (notebook 02) can colour the prompt by the atlas of the example it
# shows: pass the atlas (a DataFrame or the CSV path). Untick the checkbox to get the category
# colours back; clicking tokens hides them as before, so you can knock out the red tokens
# together and see whether their effects add up.

# %%
explorer = explore(model, tokenizer, TASK, seed=SEEDS[0], k=K, example=0, scoring=SCORING,
                   atlas=atlas)
explorer

# %% [markdown]
# ## 7. Another model, another task
#
# Change `MODEL` (and `TASK`) in the parameters cell and rerun, or use the command line: it
# writes the same CSV (resumable: rerun the same command after a kill) and prints the
# cross-check and roll-ups.
#
# ```bash
# python -m icl_tokens atlas --model gemma-3-270m --task agnews --seeds 0,1 --n-test 20 \
#     --out results/atlas_agnews.csv
# python -m icl_tokens atlas-report results/atlas_*.csv    # again, from the CSVs (no model)
# ```
#
# `--layers 0-8` restricts the knockouts (and the attribution) to a window of layers;
# `--scoring generate` also knocks the key out for the generated tokens and compares the
# generated answer; `--groups` picks the category knockouts measured for additivity. Read a CSV
# back with `icl_tokens.atlas.read_atlas(path)` and pass it to the figures above.
