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
# # 01 · Which tokens are template, stopword and content tokens?
#
# **Paper claim (Bai et al., arXiv 2401.11323, §4.1; Tables 11 and 12).** An ICL prompt is
# `I + Σ_i [T_in(D_in_i) + T_out(D_out_i)] + T_in(x_test) + prefix(T_out)`, and its demonstration
# tokens fall into three types:
#
# * **TEMP**: the template tokens of `T_in` and `T_out` (`Review`, `:`, `\n`, `\n\n`, ...);
# * **STOP**: the stopwords and punctuation inside `D_in`, using only the stopwords that appear in
#   the task instruction (Table 12); `\n` is on every list, so a newline is both TEMP and STOP;
# * **CONT**: every other token of `D_in`.
#
# The label words `D_out`, the instruction `I` and BOS belong to none of them. The later notebooks
# hide or remove these token types; this one shows *which* tokens they are, for the project's
# tokenizers (Gemma-3, SmolLM2 and GPT-2's byte-level BPE), and where the tokenizers disagree.
#
# Nothing here needs a model: categories come from the character spans recorded while the prompt
# is built, mapped onto the fast tokenizer's offsets (`paper-spec.md` §2.2).

# %% tags=["parameters"]
import os

SMOKE = os.environ.get("ICL_TOKENS_SMOKE", "0") == "1"
TASKS = ["sst2", "rte"] if SMOKE else ["sst2", "agnews", "trec", "dbpedia", "rte", "cb"]
SEED = 0  # demonstration seed (the paper uses 0-14)
K = 4  # shots
N_TEST = 2 if SMOKE else 20  # test examples per task (one prompt each)
SOLUTIONS = SMOKE  # run the exercises' folded solutions through their checkers (CI does)

# %% [markdown]
# ## Setup (ignore)

# %%
import numpy as np
import pandas as pd
from IPython.display import HTML, display

from icl_tokens.ablation.conditions import condition_knockout
from icl_tokens.analysis.counts import (
    category_counts_table,
    count_differences,
    episode_prompts,
    load_episodes,
    multi_category_table,
    multi_category_tokens,
    tokenizer_facts,
)
from icl_tokens.categorize import TokenizedPrompt
from icl_tokens.exercises import check_demo_counts, check_label_colons
from icl_tokens.models import gpt2_tokenizer, load_tokenizer
from icl_tokens.plotting import mask_heatmap, token_category_html, token_text, use_embedded_renderer

use_embedded_renderer()  # figures survive HTML export (plotly.js embedded once)

pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 30)
pd.set_option("display.max_colwidth", 60)

# %% [markdown]
# ## Tokenizers and data
#
# Gemma-3-270M is the project's default model. SmolLM2-135M and GPT-2's byte-level BPE stand in
# for the BPE family of the paper's LLaMA models. SmolLM2's tokenizer comes from an optional
# package; without it that tokenizer is skipped.

# %%
tokenizers = {"gemma-3": load_tokenizer("gemma-3-270m")}
try:
    tokenizers["smollm2"] = load_tokenizer("smollm2-135m")
except ImportError as err:  # the package that ships SmolLM2's GGUF is not installed
    print(f"Note: skipping SmolLM2: {err}")
try:
    tokenizers["gpt2"] = gpt2_tokenizer()
except ImportError as err:
    print(f"Note: skipping GPT-2: {err}")
print("tokenizers:", list(tokenizers))

episodes, skipped = load_episodes(TASKS, seed=SEED, k=K, n_test=N_TEST)
for task, reason in skipped.items():
    print(f"Note: skipping {task}: {reason}")
print("tasks:", list(episodes))

# %% [markdown]
# ## Exercises
#
# The notebooks have short exercises in the manner of ARENA: **predict first** questions (write
# your guess down before running the next cell), and small functions to write, each checked by a
# function from `icl_tokens.exercises` on prompts of three tasks under three tokenizers. The
# solutions are folded in `<details>` blocks; set `SOLUTIONS = True` in the parameters cell to run
# them instead of your own code (the CI does).

# %% [markdown]
# ## One SST-2 prompt, coloured by category
#
# Seed `SEED` draws `K` demonstrations; here is the prompt of the first test example under the
# Gemma-3 tokenizer. Hover over a token to see its position, the token string and its categories.

# %%
sst2_spec, sst2_episode = episodes["sst2"]
tp = episode_prompts(sst2_spec, sst2_episode, tokenizers["gemma-3"])[0]
display(HTML(token_category_html(tp, title=f"SST-2, seed {SEED}, k={K}, Gemma-3 tokenizer")))

# %% [markdown]
# ### What to look for
#
# * Every demonstration repeats the same TEMP tokens (`Review`, `:`, `⏎`, `Sentiment`, `:`, `⏎⏎`):
#   they are few, but they occur at the same place in every demonstration.
# * STOP tokens inside `D_in` are sparse: SST-2's list is only `the, into, of, and, ., \n`
#   (Table 12). Most of `D_in` is CONT.
# * Newlines are striped TEMP + STOP. In the representation-level ablation a token stays visible
#   while *any* of its categories is visible (paper footnote 4).
# * The test example (dashed outline) also has kinds, but it is never hidden from itself.
#
# **Gotcha (whitespace rule):** a token takes the categories of the characters it covers that
# are *not whitespace*, plus its newline characters (newlines are template/stopword carriers,
# never mere whitespace). ` Positive` starts with a space that belongs to the `T_out` template
# span, yet the token is LABEL only:

# %%
display(pd.DataFrame([row for row in tp.table() if "label" in row["categories"]]))

# %% [markdown]
# ## Roles: where each token comes from
#
# Categories say *what kind* a token is; **roles** say *where* its characters come from:
# `demo_{i}.t_in.{piece}` (the input template of demonstration `i`, 1-based), `demo_{i}.d_in.text`
# (its input), `demo_{i}.t_out.{piece}`, `demo_{i}.d_out` (its label word), and `test.*`, `bos`,
# `instruction`. A template `piece` is `word`, `colon`, `newline` or `separator`. The tokens of
# the first demonstration, with both:

# %%
display(pd.DataFrame(tp.table())[tp.demo == 0][["text", "categories", "roles"]])

# %% [markdown]
# ### Exercise 1 · Find the colon before each label
#
# The `:` of `Sentiment:` comes right before every label word; notebook 03 (the paper's §5.1)
# singles it out. Write `label_colons(tp)`: the positions of those tokens, one per demonstration,
# in order. Careful: `T_in` has a colon too (`Review:`), so has the test example, and a
# demonstration's text may contain `:` (one of the checker's prompts does). Hint: the roles in the
# table above (`tp.roles[i]`, or `tp.has_role(glob)` for a mask).
#
# <details><summary>Solution</summary>
#
# ```python
# def label_colons(tp):
#     return np.flatnonzero(tp.has_role("demo_*.t_out.colon")).tolist()
# ```
#
# </details>

# %%
def label_colons(tp: TokenizedPrompt) -> list[int]:
    """Positions of the T_out colon of each demonstration (the token before its label)."""
    raise NotImplementedError("write label_colons; the solution is folded above")

# %%
if SOLUTIONS:  # the folded solution above (the CI runs it)
    def label_colons(tp):
        return np.flatnonzero(tp.has_role("demo_*.t_out.colon")).tolist()

if check_label_colons(label_colons):
    print("T_out colons:", label_colons(tp), "→", [token_text(tp, i) for i in label_colons(tp)])

# %% [markdown]
# Roles take glob patterns, so a knockout or a probe can pick out, say, the colon of every
# demonstration's `T_out` (`Sentiment:`), the token right before each label word:

# %%
colons = tp.has_role("demo_*.t_out.colon")
print("demo_*.t_out.colon at positions", np.flatnonzero(colons).tolist(),
      "→", [token_text(tp, i) for i in np.flatnonzero(colons)])

# %% [markdown]
# The test example is what the knockout restricts (notebook 02 runs all the conditions: `icl`,
# `icl-template`, `icl-stopword`, `icl-content`, `+template`, `+stopword`, `+content`, `none` and
# `zero_shot`). Under `+template` ("Zero-shot + TEMP" in Table 2) the test tokens may attend
# only to TEMP tokens, labels, the instruction, BOS and themselves; red cells are blocked
# `[query, key]` pairs (last 60 keys shown).

# %%
display(mask_heatmap(tp, condition_knockout(tp, "+template"), max_tokens=60))

# %% [markdown]
# ### Exercise 2 · Count what a knockout can hide
#
# **Predict first.** In the SST-2 prompt above, rank TEMP, STOP, CONT and LABEL by how many
# demonstration tokens carry them. About how many TEMP tokens does one demonstration have under
# Gemma-3? Write your guesses down.
#
# Then write `demo_counts(tp)`: a dict `{"template": n, "stopword": n, "content": n, "label": n}`
# counting the tokens *of the demonstrations* (`tp.demo >= 0`) that carry each category; a token
# with several categories counts once in each. `tp.has(category)` is a Bool mask over tokens.
#
# <details><summary>Solution</summary>
#
# ```python
# def demo_counts(tp):
#     return {kind: int((tp.has(kind) & (tp.demo >= 0)).sum())
#             for kind in ["template", "stopword", "content", "label"]}
# ```
#
# </details>

# %%
def demo_counts(tp: TokenizedPrompt) -> dict[str, int]:
    """Demonstration tokens per category (template, stopword, content, label)."""
    raise NotImplementedError("write demo_counts; the solution is folded above")

# %%
if SOLUTIONS:  # the folded solution above (the CI runs it)
    def demo_counts(tp):
        return {kind: int((tp.has(kind) & (tp.demo >= 0)).sum())
                for kind in ["template", "stopword", "content", "label"]}

if check_demo_counts(demo_counts):
    print("this prompt:", demo_counts(tp))
    print("per demonstration:", {kind: n / K for kind, n in demo_counts(tp).items()})

# %% [markdown]
# ## Category counts per task and tokenizer
#
# Mean counts over the episode's prompts. `scope="demos"` counts only demonstration tokens, the
# tokens a knockout can hide (the reviewers' confound: the ablated types differ in size).
# `newline`/`colon` count tokens that cover a newline / template colon; `multi` counts tokens with
# more than one of TEMP/STOP/CONT/LABEL.

# %%
counts = category_counts_table(episodes, tokenizers, scope="demos")
display(counts)

# %% [markdown]
# Whole prompts (`scope="prompt"`), with BOS, the instruction and the test example:

# %%
prompt_counts = category_counts_table(episodes, tokenizers, scope="prompt")
display(prompt_counts)

# %% [markdown]
# ## What differs between tokenizers
#
# ### BOS and newlines
#
# The probes are tokenized *in context* (pieces joined by `|`, whitespace visible).

# %% [markdown]
# **Predict first.** Gemma-3 has a single token for `\n\n`. How many tokens do GPT-2 and
# SmolLM2 use for the `\n\n` between two demonstrations (`...Positive\n\nReview:`), and what
# does that do to the number of TEMP + STOP tokens per demonstration? The next two cells answer.

# %%
facts = tokenizer_facts(tokenizers)
display(facts.set_index("tokenizer").T)

# %% [markdown]
# **Gotcha (BOS):** only Gemma-3's tokenizer prepends a BOS token, so every position is shifted
# by one between Gemma-3 and the other two. SmolLM2's tokenizer adds none, but
# `bridge.to_tokens(str)` would prepend `<|im_start|>`: always take positions from the HF
# tokenizer through `categorize`, never from `to_tokens`.
#
# **What to look for:** Gemma-3 has a single `⏎⏎` token; the byte-level BPE tokenizers split the
# `\n\n` between demonstrations into two `⏎` tokens when a word follows (the string `"\n\n"` on
# its own is one token there). Each demonstration then has one more TEMP + STOP newline token.
# Newline tokens per demonstration:

# %%
display(counts.pivot(index="task", columns="tokenizer", values="newline") / K)

# %% [markdown]
# ### Count differences from Gemma-3
#
# Rows where some tokenizer differs from Gemma-3 (whole prompts). Besides newlines and BOS,
# words split differently (`Sentiment` → `Sent|iment` adds TEMP tokens for SST-2; `Hypothesis`
# splits further on GPT-2), so the same prompt has different TEMP/STOP/CONT sizes per tokenizer.

# %%
display(count_differences(prompt_counts, "gemma-3"))

# %% [markdown]
# ### Tokens with several categories
#
# Tokens that cover characters of more than one kind. Whitespace-only tokens (newlines, TEMP +
# STOP by definition) are left out; the bracketed token is shown in context.

# %%
multi = multi_category_table(episodes, tokenizers)
display(multi)

# %% [markdown]
# **Gotcha (multi-category tokens):** a token such as `.'` in `Corp.'s` is STOP (the `.`) and
# CONT (the `'`) at once. Under a representation-level ablation it stays visible if *either*
# category is visible; under token-level removal it is removed only if *both* are removed. So
# `icl-content` ("Standard ICL − CONT") still shows some content characters, and category sizes
# do not add up to the token count.
#
# Does any tokenizer merge a newline with text (a `.\n`-style token spanning `D_in` and `T_in`)?
# An empty table means no. For the three project tokenizers it is empty: their pre-tokenizers
# split punctuation from newlines, so the only TEMP + STOP tokens are the pure newlines. (A
# tokenizer without that split, such as a cl100k-style BPE, can differ: its merged `.\n` token
# carries the newline's TEMP + STOP, with roles `demo_i.d_in.text` and `demo_i.t_in.newline`.)

# %%
display(multi[multi["text"].str.contains("⏎")])

# %% [markdown]
# Per prompt, the same function lists positions (here the SST-2 prompt above, newlines
# included):

# %%
display(multi_category_tokens(tp, include_whitespace=True))

# %% [markdown]
# ## Summary
#
# * TEMP tokens are a small, repeated set; CONT is most of every demonstration.
# * The counts per category depend on the tokenizer (newline splitting, BOS, word pieces), so the
#   number of hidden tokens differs between models for the same condition. Later notebooks record
#   these counts next to every result.
# * Multi-category tokens are rare but real; the visibility rule for them is part of the method.
