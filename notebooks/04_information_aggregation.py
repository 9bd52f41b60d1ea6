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
# # 04 · Information aggregation: how content reaches the answer
#
# **Paper claim (Bai et al., arXiv 2401.11323, v3 abstract).** "The representations of
# performance-critical tokens aggregate information from the content tokens." Notebooks 02 and
# 03 gave the indirect argument: *hiding* the content representations from the test example
# costs little, *removing* the content tokens costs a lot, so content must reach the answer
# through other tokens. The paper's own experiment for the claim is not public (paper-spec E9);
# this notebook builds the evidence three independent ways, each with its control:
#
# | evidence | question | experiment | control |
# |---|---|---|---|
# | **causal** | does the answer need content → template flow inside the demonstrations? | the aggregation block, then the test-example conditions | the same conditions without the block; token-level −CONT |
# | **where** | in which layers? | the knockout inside a sliding window of layers | all layers |
# | **decodable** | is a demonstration's label readable at its `Sentiment:` tokens, *before* the label word? | linear probes per layer and position | majority baseline, a label-shuffling null corrected for picking the best layer, the probe under the block |
# | **observed** | where does the test example's attention go? | attention mass per layer and key category | per-token mass (category size) |
# | **count** | is "TEMP matters more than CONT" a token-count artefact? | hide as many random demonstration tokens | — |
#
# The model is small (270M parameters); the effects are small and the samples are small.
# Every number below is measured in this run; the text says what the paper would predict and
# then computes whether this run shows it.

# %% tags=["parameters"]
import os

SMOKE = os.environ.get("ICL_TOKENS_SMOKE", "0") == "1"
MODEL = "gemma-3-270m"  # change this one line to rerun the notebook on another model
TASK = "sst2"
SEEDS = [0] if SMOKE else [0, 1]
N_TEST = 3 if SMOKE else 24  # test examples per seed
K = 2 if SMOKE else 4  # demonstrations
SCORING = "label"  # "label" (acc_label: which label the model ranks first) or "generate"
WIDTH = None  # layer-window width (None: n_layers // 4)
PROBE_SEEDS = [0] if SMOKE else [0, 1]
PROBE_N = 8 if SMOKE else 50  # probe prompts per seed (each with its own demonstrations)
PROBE_FOLDS = 3 if SMOKE else 5
PROBE_PERMUTATIONS = 5 if SMOKE else 20  # label shuffles of the probes' null (a reading: >= 20)
ALPHA = 0.05
DRAWS = 2 if SMOKE else 5  # random draws of the count-matched control
DEVICE = None
DTYPE = "float32"
OUT_DIR = None  # a folder: the runs' CSVs (a rerun resumes them) and the figures
SOLUTIONS = SMOKE  # run the exercises' folded solutions through their checkers (CI does)

# %% [markdown]
# With the defaults (2 seeds × 24 examples, 18 layers) the notebook took about 15 minutes on
# 2 CPU cores with Gemma-3-270M when the probes had no permutation null (the probes about 3
# minutes). The null refits every probe for each of 20 label shuffles: `benchmarks/
# bench_probes.py` measured 2.5-3.3 s per position × layer with it against 0.45-0.6 s without,
# so expect the probes to take about 15 minutes more (an estimate from those runs). One example
# is about 2 points of accuracy, so differences under ~10 points are within noise here (the
# tables give paired standard errors).

# %% [markdown]
# ## Setup (ignore)

# %%
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from IPython.display import HTML, display

from icl_tokens.aggregation.attention_mass import attention_mass, summarize_mass
from icl_tokens.aggregation.block import BLOCK_QUERIES, aggregation_knockout
from icl_tokens.aggregation.experiment import AggregationConfig, compare_table, run_aggregation
from icl_tokens.aggregation.probe_data import PROBE_POSITIONS
from icl_tokens.aggregation.probe_run import ProbeConfig, run_probes
from icl_tokens.aggregation.windows import (
    WindowConfig,
    head_knockout,
    random_heads,
    run_layer_windows,
    top_heads,
    window_curve,
)
from icl_tokens.categorize import categorize
from icl_tokens.data import load_task_data
from icl_tokens.engine import LabelSet, score_items
from icl_tokens.episodes import sample_episode
from icl_tokens.exercises import check_aggregation_mask, check_category_mass
from icl_tokens.experiments.random_control import (
    RandomControlConfig,
    control_table,
    run_random_control,
)
from icl_tokens.experiments.items import prompt_item
from icl_tokens.experiments.token_level import TokenAblationConfig, run_token_ablation
from icl_tokens.explore import ExplorerState, Selection, update_view
from icl_tokens.models import load_model, load_tokenizer, model_info
from icl_tokens.plotting import (
    compare_figure,
    mask_heatmap,
    mass_heatmap,
    mass_table,
    probe_curves,
    save_figure,
    token_category_html,
    window_figure,
    use_embedded_renderer,
)
from icl_tokens.prompts import build_prompt
from icl_tokens.tasks import load_task

use_embedded_renderer()  # figures survive HTML export (plotly.js embedded once)

torch.set_grad_enabled(False)
pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 30)
pd.set_option("display.precision", 3)
METRIC = "label_correct" if SCORING == "label" else "correct"
out_dir = Path(OUT_DIR) if OUT_DIR else None
if out_dir:
    out_dir.mkdir(parents=True, exist_ok=True)


def csv(name: str):
    return None if out_dir is None else out_dir / f"{name}.csv"


common = dict(model=MODEL, task=TASK, seeds=tuple(SEEDS), k=K, n_test=N_TEST, scoring=SCORING,
              device=DEVICE, dtype=DTYPE)
quiet = dict(progress=not SMOKE, log=lambda s: None)

# %%
model = load_model(MODEL, device=DEVICE, dtype=getattr(torch, DTYPE))
tokenizer = load_tokenizer(MODEL)
info = model_info(model)
N_LAYERS = info["n_layers"]
print({k: info[k] for k in ("name", "n_layers", "n_heads", "d_model", "dtype")})
task = load_task(TASK)
data = load_task_data(task)
print(f"data: {data.source} ({data.location})")

# %% [markdown]
# ## 1. The aggregation block, on one prompt
#
# The block: every demonstration token that carries **template, stopword or
# label** (and not content) may not attend to any demonstration token that carries **content**
# (and none of the others) — in all layers, and for keys in every demonstration up to the query.
# So no template, stopword or label representation can pick up anything from content.
# Everything else is normal: content tokens still attend to each other, and the **test example
# is not restricted** (it still sees everything). The variants restrict the blocked queries:

# %%
for name, what in BLOCK_QUERIES.items():
    print(f"  {name:11s} {what}")

episode0 = sample_episode(data, SEEDS[0], k=K, n_test=1)
tp = categorize(build_prompt(task, episode0.demos, episode0.tests[0]), tokenizer)
display(HTML(token_category_html(tp, title=f"{TASK}, seed {SEEDS[0]}, k={K}")))
ko0 = aggregation_knockout().resolve(tp)
dense = ko0.dense(len(tp)).numpy()
print(f"{int(dense.any(1).sum())} query tokens blocked from {int(dense.any(0).sum())} content "
      f"keys: {int(dense.sum())} (query, key) pairs of {len(tp)} tokens")
first = int(np.flatnonzero(np.asarray(tp.demo) == 0)[0])
last = int(np.flatnonzero(np.asarray(tp.demo) == 0)[-1]) + 1
fig = mask_heatmap(tp, ko0, all_rows=True, max_tokens=None,
                   title="the block inside the demonstrations (red = blocked)")
fig.update_xaxes(range=[first - 0.5, last - 0.5])
fig.update_yaxes(range=[last - 0.5, first - 0.5])
fig.show()

# %% [markdown]
# The block changes the demonstrations' own representations, so the cached engine cannot reuse
# the ordinary demonstration prefix: it computes one prefix per seed under the block and shares
# it among the test examples and conditions (docs/engine.md, the prefix-cache validity rule;
# the tests check cached ≡ naive, and that every blocked pair gets exactly zero attention in the
# prefix forward).

# %% [markdown]
# ### Exercise 1 · The aggregation block
#
# **Predict first.** The block stops the demonstrations' template, stopword and label tokens
# from reading the demonstrations' content, in every layer, *before* the test example looks at
# them. If the paper's aggregation claim holds, which condition should lose the most under the
# block: `icl`, `+template` or `icl-content`? Write your guess down before section 2.
#
# Write `aggregation_mask(tp)`: a Bool `[query, key]` array over the prompt (True = blocked)
# whose queries are the demonstration tokens that carry template, stopword or label and no
# content, and whose keys are the demonstration tokens that carry content and none of template,
# stopword, label (paper-spec E9). Only the causal pairs (key before query) are checked.
#
# <details><summary>Solution</summary>
#
# ```python
# def aggregation_mask(tp):
#     demo = tp.demo >= 0
#     carrier = tp.has("template") | tp.has("stopword") | tp.has("label")
#     queries = demo & carrier & ~tp.has("content")
#     keys = demo & tp.has("content") & ~carrier
#     return queries[:, None] & keys[None, :]
# ```
#
# </details>

# %%
def aggregation_mask(tp) -> np.ndarray:
    """Bool [query, key]: the E9 block (demonstration carriers may not read content)."""
    raise NotImplementedError("write aggregation_mask; the solution is folded above")


# %%
if SOLUTIONS:  # the folded solution above (the CI runs it)
    def aggregation_mask(tp):
        demo = tp.demo >= 0
        carrier = tp.has("template") | tp.has("stopword") | tp.has("label")
        queries = demo & carrier & ~tp.has("content")
        keys = demo & tp.has("content") & ~carrier
        return queries[:, None] & keys[None, :]

if check_aggregation_mask(aggregation_mask):
    print("blocked (query, key) pairs in this prompt:", int(np.tril(aggregation_mask(tp)).sum()))

# %% [markdown]
# ## 2. Causal: the test-example conditions with and without the block
#
# **Predict first.** If template and stopword representations carry the content to the test
# example, what happens under the block to `+template` (the test example sees only the template
# tokens and the labels)? To standard ICL? And to `icl-content` (content hidden from the test
# example): should it move towards token-level −CONT (content removed outright)?

# %%
agg = run_aggregation(AggregationConfig(**common), model=model, tokenizer=tokenizer,
                      out=csv("aggregation"), **quiet)
table = compare_table(agg, METRIC)
token = run_token_ablation(TokenAblationConfig(**common, conditions=("icl", "icl-content")),
                           model=model, tokenizer=tokenizer, out=csv("token"), **quiet)
token_acc = token.groupby("condition")[METRIC].mean() * 100
display(table.round(1))
print(f"token-level (content removed from the prompt): icl {token_acc['icl']:.1f}, "
      f"icl-content {token_acc['icl-content']:.1f}")
compare_figure(table, metric_label=f"{METRIC} (%)").show()

# %% [markdown]
# What this run shows (computed from the table above):

# %%
def said(delta: float, se: float) -> str:
    if np.isnan(se) or se == 0:
        return f"{delta:+.1f} points"
    where = "beyond" if abs(delta) > 2 * se else "within"
    return f"{delta:+.1f} points (paired SE {se:.1f}; {where} 2 SE)"


for c in table.index:
    print(f"  {c:12s} block effect {said(table.loc[c, 'Δ'], table.loc[c, 'paired_se'])}")
gap_plain = table.loc["icl-content", "none"] - token_acc["icl-content"]
gap_block = table.loc["icl-content", "agg"] - token_acc["icl-content"]
print(f"  representation-level icl-content sits {gap_plain:+.1f} points above token-level "
      f"icl-content without the block and {gap_block:+.1f} with it")

# %% [markdown]
# ## 3. Where: the knockout inside a window of layers
#
# A window of `w` consecutive layers (default `n_layers // 4`) slides over the model. With
# `target="test"` the test-example condition applies only inside the window: the layers where
# hiding the template from the test example hurts are the layers where the test example reads
# it. With `target="block"` the block applies only inside the window (and `icl`, the test
# example unrestricted): the layers where the demonstrations aggregate content.

# %%
win_test = run_layer_windows(WindowConfig(**common, conditions=("icl-template", "+template"),
                                          target="test", width=WIDTH),
                             model=model, tokenizer=tokenizer, out=csv("windows_test"), **quiet)
curve_test = window_curve(win_test, METRIC)
display(curve_test.T)
window_figure(curve_test, title="test-example condition only inside the window",
              metric_label=f"{METRIC} (%)").show()

# %%
win_block = run_layer_windows(WindowConfig(**common, conditions=("icl", "+template"),
                                           target="block", width=WIDTH),
                              model=model, tokenizer=tokenizer, out=csv("windows_block"),
                              **quiet)
curve_block = window_curve(win_block, METRIC)
display(curve_block.T)
window_figure(curve_block, title="aggregation block only inside the window",
              metric_label=f"{METRIC} (%)").show()

# %% [markdown]
# ## 4. Observed: where the test example's attention goes
#
# The share of attention each test-example token (scope `test`) and the last prompt token
# (scope `last`, which predicts the answer) give to each key category, per layer and head
# (`count="each"`: a newline is template *and* stopword and counts in both rows). A category
# with many tokens gets much attention just by size, so `mass_per_token` divides by its number
# of keys.

# %%
ep = sample_episode(data, SEEDS[0], k=K, n_test=N_TEST)
labels = LabelSet.for_task(task, tokenizer)
items = [prompt_item(task, tokenizer, labels, ep, t) for t in ep.tests]
mass = attention_mass(model, tokenizer, items)
display(summarize_mass(mass, by=("scope", "category")).round(3))
mass_heatmap(mass, scope="last", title="last token: share of attention by layer").show()
mass_heatmap(mass, scope="last", value="mass_per_token",
             title="last token: share per key, by layer").show()

# %% [markdown]
# ### Exercise 2 · Attention mass per category
#
# **Predict first.** Averaged over layers and heads, which key group gets most of the test
# example's attention: BOS, the instruction, the demonstrations' template, stopword, content or
# label tokens, or the test example itself? Does the block of exercise 1 change the answer?
#
# Write `category_mass(pattern, item, queries)`: for a `pattern` of shape `[layer, head, query,
# key]` (attention probabilities over the whole prompt), a Bool `queries` mask and an item (with
# `item.has(category)` like a prompt), return `{group: mass}` for the groups `bos`,
# `instruction`, `template`, `stopword`, `content`, `label` (demonstration tokens only: not the
# test example's) and `test`: each query's attention summed over the group's keys, averaged over
# the queries, heads and layers. A token of several categories counts in each of its groups.
#
# <details><summary>Solution</summary>
#
# ```python
# def category_mass(pattern, item, queries):
#     test = item.has("test")
#     rows = pattern[:, :, np.flatnonzero(queries)]  # [layer, head, query, key]
#     out = {}
#     for group in ["bos", "instruction", "template", "stopword", "content", "label", "test"]:
#         keys = test if group == "test" else item.has(group) & ~test
#         out[group] = float(rows[..., keys].sum(-1).mean())
#     return out
# ```
#
# </details>

# %%
def category_mass(pattern: np.ndarray, item, queries: np.ndarray) -> dict[str, float]:
    """Share of the queries' attention per key group (mean over queries, heads, layers)."""
    raise NotImplementedError("write category_mass; the solution is folded above")


# %%
if SOLUTIONS:  # the folded solution above (the CI runs it)
    def category_mass(pattern, item, queries):
        test = item.has("test")
        rows = pattern[:, :, np.flatnonzero(queries)]  # [layer, head, query, key]
        out = {}
        for group in ["bos", "instruction", "template", "stopword", "content", "label", "test"]:
            keys = test if group == "test" else item.has(group) & ~test
            out[group] = float(rows[..., keys].sum(-1).mean())
        return out

passed = check_category_mass(category_mass)

# %% [markdown]
# The explorer computes the same mass for one prompt from the attention of one cached forward,
# under any knockout: standard ICL against the aggregation block (`icl_tokens.explore(model,
# tokenizer, ...)` is the interactive version; the view below needs no kernel):

# %%
state = ExplorerState.from_task(model, tokenizer, TASK, seed=SEEDS[0], k=K)
plain, blocked = state.update(Selection()), state.update(Selection(aggregation="all"))
display(pd.DataFrame({"icl": plain.mass_by_category(), "icl + block": blocked.mass_by_category()}))
display(HTML(update_view(state, blocked, title="icl + aggregation block", full_page=False)))

# %% [markdown]
# **Head-level knockout.** Hide the template from the test example only in the heads that give
# it the most attention (the top 2 × n_layers heads by the last token's template mass), and, as a
# control, in as many randomly drawn heads.

# %%
n_heads = 2 * N_LAYERS
top = top_heads(mass[mass.scope == "last"], "template", n=n_heads)
rand = random_heads(N_LAYERS, info["n_heads"], n_heads, seed=0, exclude=top)
print("top heads (layer, head):", top[:8], "...")
head_items = []
for it in items:
    head_items += [it.with_knockout(head_knockout("icl-template", top), "top heads"),
                   it.with_knockout(head_knockout("icl-template", rand), "random heads"),
                   it.with_knockout(None, "icl")]
res = score_items(model, tokenizer, head_items, scoring=SCORING)
heads = pd.DataFrame({"condition": [r.condition for r in res],
                      f"{METRIC} (%)": [100.0 * (r.prediction(SCORING) == r.gold) for r in res],
                      "gold log-prob": [r.label_scores[r.gold] for r in res]})
display(heads.groupby("condition", sort=False).mean())

# %% [markdown]
# ## 5. Decodable: is the label readable before the label word?
#
# A logistic-regression probe (standardised, regularisation chosen by inner cross-validation)
# reads each layer's residual stream at one position of every demonstration and predicts that
# demonstration's gold label. At `t_out.word` and `t_out.colon` (`Sentiment`, `:`), the label
# word has not appeared yet, so the label can only come from the demonstration's content: a
# probe that decodes it there says content has been aggregated into those tokens. Folds split
# by prompt and by demonstration text (no text in both train and test). Each cell has the
# majority baseline and a **permutation null**. The same probes under the block ask whether the
# `T_out` signal falls to the baseline when those tokens cannot read content.
#
# **Why no control task, and what the null tests.** A Hewitt–Liang control task gives each input
# text a random label, which a probe can only learn by memorising texts it saw in training. Our
# folds never put a text on both sides, so that control could not be learnt: its accuracy was
# chance by construction, and "selectivity > 0" only said "accuracy > chance" (the table keeps
# the `control` and `selectivity` columns empty, with `control_note` saying why). And the best
# of ~18 layers beats chance even without any signal, just by being picked. The permutation null
# shuffles the labels across prompt groups and refits the whole probe (folds, standardisation,
# choice of C) on every layer for each shuffle; the best layer is then compared with each
# shuffle's *best* layer (`p_max`), so picking the layer is accounted for. The correction covers
# the layers of one position; it does not cover looking at several positions.
#
# **Predict first:** which positions should decode the label above the corrected null without
# the block, and which under it?

# %%
layers = None if not SMOKE else [0, N_LAYERS // 2, N_LAYERS - 1]
probe_cfg = ProbeConfig(model=MODEL, task=TASK, seeds=tuple(PROBE_SEEDS), n_test=PROBE_N, k=K,
                        layers=None if layers is None else tuple(layers), folds=PROBE_FOLDS,
                        permutations=PROBE_PERMUTATIONS, aggregation=True, device=DEVICE,
                        dtype=DTYPE)
probes = run_probes(probe_cfg, model=model, tokenizer=tokenizer, **quiet)
key = ["t_in.word", "content", "t_out.word", "t_out.colon", "label", "test.last"]
best = (probes[probes.position.isin(key)].sort_values("accuracy", ascending=False)
        .groupby(["position", "knockout"], sort=False).head(1)
        .set_index(["position", "knockout"]).sort_index())
display(best[["layer", "accuracy", "majority", "null_q95", "max_null_q95", "p_perm", "p_max",
              "n"]])
print("control task:", "; ".join(sorted(set(probes.control_note))))
probe_curves(probes, positions=[p for p in PROBE_POSITIONS if p in set(probes.position)],
             alpha=ALPHA).show()

# %% [markdown]
# The figure's grey band runs from the null's mean to its 95th percentile at each layer; the
# long-dashed line is the threshold corrected for picking the best layer (the 95th percentile
# of each shuffle's best layer); filled markers are layers with `p_max` ≤ 0.05. Which best
# layers clear the corrected null (computed from the table above):

# %%
def clears(r: pd.Series) -> str:
    """Whether a best layer clears the corrected null (``undecidable`` with too few shuffles)."""
    if 1 / (1 + int(r["permutations"])) > ALPHA:
        return "undecidable"
    return "yes" if r["p_max"] <= ALPHA else "no"


n_perm = int(probes["permutations"].max())
floor = 1 / (1 + n_perm)
for (pos, kn), r in best.iterrows():
    print(f"  {pos:12s} {kn:4s} best layer {int(r['layer']):2d}: accuracy "
          f"{100 * r['accuracy']:5.1f} vs corrected threshold {100 * r['max_null_q95']:5.1f}, "
          f"p_max {r['p_max']:.3f}; clears it: {clears(r)}")
if floor > ALPHA:
    print(f"\nwith {n_perm} shuffles no p-value can go below {floor:.3f}, so nothing can clear "
          f"{ALPHA} here: a reading needs >= 20 shuffles (PROBE_PERMUTATIONS).")

# %% [markdown]
# ## 6. The count-matched random control
#
# `+template` keeps fewer demonstration tokens visible than `+content` does; maybe any tokens
# would do. The control hides, for each category condition, as many *randomly drawn*
# demonstration tokens as the condition hides (drawn per seed, several draws).

# %%
ctrl = run_random_control(RandomControlConfig(**common, draws=DRAWS), model=model,
                          tokenizer=tokenizer, out=csv("control"), **quiet)
ctrl_table = control_table(ctrl, METRIC)
display(ctrl_table.round(1))

# %% [markdown]
# ## 7. What the default model shows
#
# Each line is computed from the tables above (so it changes when you rerun on another model).

# %%
def verdict(ok: bool) -> str:
    return "yes" if ok else "no"


tout = best.xs("t_out.colon", level="position") if "t_out.colon" in set(
    probes.position) else None
lines = [
    f"block costs +template more than it costs standard ICL: "
    f"{verdict(table.loc['+template', 'Δ'] < table.loc['icl', 'Δ'])} "
    f"({table.loc['+template', 'Δ']:+.1f} vs {table.loc['icl', 'Δ']:+.1f})",
    f"under the block, representation-level icl-content moves towards token-level: "
    f"{verdict(abs(gap_block) < abs(gap_plain))} ({gap_plain:+.1f} → {gap_block:+.1f})",
    f"+template beats its count-matched random control: "
    f"{verdict(ctrl_table.loc['+template', 'gap'] > 0)} "
    f"(gap {ctrl_table.loc['+template', 'gap']:+.1f} points over {DRAWS} draws)",
]


def corrected(r: pd.Series) -> str:
    """The best layer's corrected test, in words, from its table row."""
    n = int(r["permutations"])
    text = (f"best layer {int(r['layer'])}: accuracy {100 * r['accuracy']:.1f} vs "
            f"{100 * r['max_null_q95']:.1f}, the 95th percentile of the best layer under {n} "
            f"label shuffles; p_max = {r['p_max']:.3f}")
    if 1 / (1 + n) > ALPHA:
        text += f"; {n} shuffles cannot reach p <= {ALPHA}, a reading needs >= 20"
    return text


if tout is not None and "icl" in tout.index:
    r = tout.loc["icl"]
    lines.append(f"the ':' before the label decodes the label beyond the permutation null, "
                 f"corrected for picking the best layer: {clears(r)} "
                 f"({corrected(r)})")
    others = [k for k in tout.index if k != "icl"]
    if others:
        b = tout.loc[others[0]]
        lines.append(f"under the block that probe falls towards the baseline: "
                     f"{verdict(b['accuracy'] < r['accuracy'])} "
                     f"({100 * r['accuracy']:.1f} → {100 * b['accuracy']:.1f}; majority "
                     f"{100 * r['majority']:.1f})")
        lines.append(f"under the block it still clears the corrected null: "
                     f"{clears(b)} ({corrected(b)})")
for line in lines:
    print("-", line)
print(f"\nmodel {MODEL}; {TASK} from {data.source}; seeds {SEEDS}; {N_TEST} test examples per "
      f"seed; probes {PROBE_SEEDS} × {PROBE_N} prompts")

# %% [markdown]
# ## Save (optional)

# %%
if out_dir:
    save_figure(compare_figure(table), out_dir / "aggregation")
    save_figure(window_figure(curve_test), out_dir / "windows_test")
    save_figure(window_figure(curve_block), out_dir / "windows_block")
    save_figure(probe_curves(probes), out_dir / "probes")
    save_figure(mass_heatmap(mass, scope="last"), out_dir / "attention_mass")
    probes.to_csv(out_dir / "probes.csv", index=False)
    mass_table(mass, scope="last").to_csv(out_dir / "attention_mass_last.csv")
    print("saved to", out_dir)

# %% [markdown]
# ## Rerun on another model
#
# Change `MODEL` in the parameters cell (e.g. `"smollm2-135m"`, a local Hugging Face folder, or
# a hub id when you have network) and run all cells. The same commands from a shell:
#
# ```
# python -m icl_tokens ablate --task sst2 --seeds 0,1 --n-test 24 --scoring label \
#     --conditions=icl,+template,+stopword,icl-content --aggregation --compare --out agg.csv
# python -m icl_tokens windows --task sst2 --seeds 0,1 --n-test 24 --target block --out w.csv
# python -m icl_tokens control --task sst2 --seeds 0,1 --n-test 24 --out control.csv
# python -m icl_tokens probe --task sst2 --seeds 0,1 --n-test 50 --aggregation --permutations 20 \
#     --out probes.csv
# python -m icl_tokens attention --task sst2 --seeds 0 --n-test 20 --out mass.csv
# ```
