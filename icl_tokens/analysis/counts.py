"""Tables for the notebooks: token-category counts and tokenizer differences (no model needed).

Everything here works on categorized prompts (:func:`icl_tokens.categorize.categorize`), so it
needs only tokenizers and the task data:

* :func:`load_episodes`: the seed's episode per task, skipping tasks without data (with a reason).
* :func:`episode_prompts`: the categorized prompts of an episode.
* :func:`category_counts_table`: tokens per category, per task and tokenizer.
* :func:`count_differences`: those counts side by side, with differences from a baseline.
* :func:`multi_category_tokens` / :func:`multi_category_table`: tokens that carry several of
  TEMP / STOP / CONT / LABEL (e.g. a byte-level BPE token spanning ``D_in`` and ``T_in``).
* :func:`tokenizer_facts`: BOS and how probe strings (``"\\n\\n"``, ``"Answer:"``, ...) tokenize.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..categorize import BITS, CATEGORIES, FLAG_COLON, FLAG_NEWLINE, TokenizedPrompt, categorize
from ..data import DataUnavailableError, load_task_data
from ..episodes import Episode, sample_episode
from ..models import adds_bos
from ..plotting import token_text, visible_whitespace
from ..prompts import build_prompt
from ..tasks import TaskSpec, load_task

__all__ = [
    "DEFAULT_PROBES",
    "KIND_CATEGORIES",
    "category_counts",
    "category_counts_table",
    "count_differences",
    "episode_prompts",
    "load_episodes",
    "multi_category_table",
    "multi_category_tokens",
    "tokenizer_facts",
]

#: The categories a token is "made of" (``bos``/``instruction``/``test`` are positions, not kinds).
KIND_CATEGORIES: tuple[str, ...] = ("template", "stopword", "content", "label")
#: Prompt snippets whose tokenization differs between tokenizers. They are tokenized *in context*:
#: byte-level BPE splits ``"\n\n"`` before a word into two tokens, although ``"\n\n"`` alone is
#: one.
DEFAULT_PROBES: tuple[str, ...] = (
    "Negative.\n\nReview:",
    "Sentiment: Positive\n\nReview:",
    "dull .\nSentiment:",
    "Answer Type: Number",
    "\n Premise: The",
    "Corp.'s",
)
_KIND_BITS = sum(BITS[k] for k in KIND_CATEGORIES)


def load_episodes(
    tasks: Iterable[str], *, seed: int = 0, k: int = 4, n_test: int | None = 1,
    data_dir: str | None = None,
) -> tuple[dict[str, tuple[TaskSpec, Episode]], dict[str, str]]:
    """The episode of ``seed`` for each task whose data can be loaded.

    Args:
        tasks: Task names.
        seed, k, n_test: As in :func:`icl_tokens.episodes.sample_episode`.
        data_dir: Data folder (default ``$ICL_TOKENS_DATA_DIR``, then the offline fallbacks).

    Returns:
        ``(episodes, skipped)``: task → ``(spec, episode)``, and task → reason for the tasks
        whose data is unavailable.
    """
    episodes: dict[str, tuple[TaskSpec, Episode]] = {}
    skipped: dict[str, str] = {}
    for name in tasks:
        spec = load_task(name)
        try:
            data = load_task_data(spec, data_dir=data_dir)
        except DataUnavailableError as err:
            skipped[name] = str(err).splitlines()[0]
            continue
        n = None if n_test is None else min(n_test, len(data.eval))
        episodes[name] = (spec, sample_episode(data, seed=seed, k=k, n_test=n))
    return episodes, skipped


def episode_prompts(
    spec: TaskSpec, episode: Episode, tokenizer: Any, *, stopword_variant: str = "paper"
) -> list[TokenizedPrompt]:
    """The categorized ICL prompt of every test example of ``episode``."""
    return [
        categorize(build_prompt(spec, episode.demos, t), tokenizer,
                   stopword_variant=stopword_variant)
        for t in episode.tests
    ]


def _is_multi(codes: np.ndarray) -> np.ndarray:
    kinds = codes & _KIND_BITS
    return (kinds & (kinds - 1)) != 0  # more than one kind bit set


def category_counts(tp: TokenizedPrompt, scope: str = "demos") -> dict[str, int]:
    """Token counts of one prompt.

    Args:
        tp: A categorized prompt.
        scope: ``"demos"`` (demonstration tokens only: what a knockout can hide) or
            ``"prompt"`` (every token).

    Returns:
        ``n_tokens``, one count per category (a token counts once in each of its categories:
        :data:`KIND_CATEGORIES` for ``"demos"``, every category of
        :data:`~icl_tokens.categorize.CATEGORIES` for ``"prompt"``), ``newline`` and ``colon``
        (tokens covering a newline / a template colon) and ``multi`` (tokens with more than one of
        :data:`KIND_CATEGORIES`).
    """
    if scope == "demos":
        sel = tp.demo >= 0
    elif scope == "prompt":
        sel = np.ones(len(tp), dtype=bool)
    else:
        raise ValueError(f"unknown scope {scope!r}; use 'demos' or 'prompt'.")
    codes = tp.codes[sel]
    out = {"n_tokens": int(sel.sum())}
    cats = KIND_CATEGORIES if scope == "demos" else CATEGORIES
    out.update({c: int(((codes & BITS[c]) != 0).sum()) for c in cats})
    out["newline"] = int(((codes & FLAG_NEWLINE) != 0).sum())
    out["colon"] = int(((codes & FLAG_COLON) != 0).sum())
    out["multi"] = int(_is_multi(codes).sum())
    return out


def category_counts_table(
    episodes: Mapping[str, tuple[TaskSpec, Episode]],
    tokenizers: Mapping[str, Any],
    *,
    scope: str = "demos",
    stopword_variant: str = "paper",
) -> pd.DataFrame:
    """Mean token counts per category, one row per (tokenizer, task).

    Args:
        episodes: From :func:`load_episodes`.
        tokenizers: Display name → fast tokenizer.
        scope: See :func:`category_counts`.
        stopword_variant: ``"paper"`` or ``"nltk"``.

    Returns:
        Columns ``tokenizer, task, n_prompts``, then the means over the episode's prompts of the
        counts of :func:`category_counts` (the demonstrations are shared, so with
        ``scope="demos"`` every prompt of an episode has the same counts).
    """
    rows = []
    for tok_name, tok in tokenizers.items():
        for task, (spec, ep) in episodes.items():
            counts = [category_counts(tp, scope)
                      for tp in episode_prompts(spec, ep, tok, stopword_variant=stopword_variant)]
            mean = pd.DataFrame(counts).mean().to_dict()
            rows.append({"tokenizer": tok_name, "task": task, "n_prompts": len(counts), **mean})
    return pd.DataFrame(rows)


def count_differences(
    counts: pd.DataFrame, baseline: str, *,
    categories: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Category counts of each tokenizer next to ``baseline``'s, with the differences.

    Args:
        counts: From :func:`category_counts_table`.
        baseline: The reference tokenizer's name.
        categories: Count columns to compare (default: every count column).

    Returns:
        Index ``(task, category)``; one column per tokenizer (its count) and one
        ``"<name> − <baseline>"`` column per other tokenizer. Only rows where some tokenizer
        differs from the baseline are kept.
    """
    if baseline not in set(counts["tokenizer"]):
        raise ValueError(f"baseline {baseline!r} is not among {sorted(set(counts['tokenizer']))}.")
    if categories is None:
        categories = [c for c in counts.columns if c not in ("tokenizer", "task", "n_prompts")]
    long = counts.melt(id_vars=["tokenizer", "task"], value_vars=list(categories),
                       var_name="category", value_name="count")
    wide = long.pivot_table(index=["task", "category"], columns="tokenizer", values="count",
                            sort=False)
    names = [baseline] + [t for t in dict.fromkeys(counts["tokenizer"]) if t != baseline]
    wide = wide[names]
    diff_cols = []
    for t in names[1:]:
        col = f"{t} − {baseline}"
        wide[col] = wide[t] - wide[baseline]
        diff_cols.append(col)
    wide.columns.name = None
    if diff_cols:
        wide = wide[(wide[diff_cols] != 0).any(axis=1)]
    return wide


def multi_category_tokens(tp: TokenizedPrompt, *, include_whitespace: bool = False
                          ) -> pd.DataFrame:
    """Tokens of one prompt that carry more than one of TEMP / STOP / CONT / LABEL.

    Args:
        tp: A categorized prompt.
        include_whitespace: Also list whitespace-only tokens (``\\n``, ``\\n\\n``: template +
            stopword by definition, paper footnote 4).

    Returns:
        Columns ``position, token, text, categories, demo`` (``text`` with visible
        whitespace; ``demo`` is the 0-based demonstration, -1 in the test example).
    """
    rows = []
    for i in np.flatnonzero(_is_multi(tp.codes)):
        text = token_text(tp, int(i))
        if not include_whitespace and not text.strip():
            continue
        rows.append({
            "position": int(i), "token": tp.tokens[i], "text": visible_whitespace(text),
            "categories": "+".join(c for c in tp.categories(int(i)) if c in KIND_CATEGORIES),
            "demo": int(tp.demo[i]),
        })
    return pd.DataFrame(rows, columns=["position", "token", "text", "categories", "demo"])


def multi_category_table(
    episodes: Mapping[str, tuple[TaskSpec, Episode]],
    tokenizers: Mapping[str, Any],
    *,
    include_whitespace: bool = False,
    stopword_variant: str = "paper",
) -> pd.DataFrame:
    """Distinct multi-category tokens per (tokenizer, task), over the episodes' prompts.

    Demonstration tokens are counted once (they are shared by every prompt of an episode);
    test-example tokens once per prompt.

    Returns:
        Columns ``tokenizer, task, text, categories, count, example`` (``example`` is the first
        occurrence with two tokens of context on each side), sorted by tokenizer, task and
        descending count.
    """
    rows = []
    for tok_name, tok in tokenizers.items():
        for task, (spec, ep) in episodes.items():
            seen_demo: set[int] = set()
            found: dict[tuple[str, str], dict[str, Any]] = {}
            for tp in episode_prompts(spec, ep, tok, stopword_variant=stopword_variant):
                for r in multi_category_tokens(tp, include_whitespace=include_whitespace
                                               ).itertuples():
                    if r.demo >= 0:
                        if r.position in seen_demo:
                            continue
                        seen_demo.add(r.position)
                    key = (r.text, r.categories)
                    if key not in found:
                        lo, hi = max(0, r.position - 2), min(len(tp), r.position + 3)
                        ctx = "".join(
                            ("[" + visible_whitespace(token_text(tp, j)) + "]") if j == r.position
                            else visible_whitespace(token_text(tp, j)) for j in range(lo, hi)
                        )
                        found[key] = {"tokenizer": tok_name, "task": task, "text": r.text,
                                      "categories": r.categories, "count": 0, "example": ctx}
                    found[key]["count"] += 1
            rows.extend(found.values())
    df = pd.DataFrame(rows, columns=["tokenizer", "task", "text", "categories", "count",
                                     "example"])
    if df.empty:
        return df
    return df.sort_values(["tokenizer", "task", "count"], ascending=[True, True, False],
                          kind="stable").reset_index(drop=True)


def tokenizer_facts(
    tokenizers: Mapping[str, Any], probes: Sequence[str] = DEFAULT_PROBES
) -> pd.DataFrame:
    """How each tokenizer treats BOS and some probe strings.

    Returns:
        One row per tokenizer: ``tokenizer``, ``adds_bos``, ``bos_token`` (the token prepended,
        or ``""``), then for each probe two columns: ``"<probe> tokens"`` (the pieces, with
        visible whitespace, joined by ``|``) and ``"<probe> n"`` (how many).
    """
    rows = []
    for name, tok in tokenizers.items():
        adds = adds_bos(tok)
        row: dict[str, Any] = {"tokenizer": name, "adds_bos": adds,
                               "bos_token": tok.bos_token if adds else ""}
        for probe in probes:
            enc = tok(probe, add_special_tokens=False, return_offsets_mapping=True)
            pieces = [visible_whitespace(probe[s:e]) for s, e in enc["offset_mapping"]]
            label = visible_whitespace(probe)
            row[f"{label} tokens"] = "|".join(pieces)
            row[f"{label} n"] = len(pieces)
        rows.append(row)
    return pd.DataFrame(rows)
