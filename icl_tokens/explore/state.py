"""The explorer's logic without any widget: one prompt, a selection, one cached forward.

:class:`ExplorerState` holds one scored :class:`~icl_tokens.engine.Item` (a prompt with its
categories and roles), a :class:`~icl_tokens.engine.PrefixCache` and the current
:class:`~icl_tokens.explore.selection.Selection`. :meth:`ExplorerState.update` turns a selection
into its knockout and runs **the same call a user would write by hand**,
``score_items(model, tok, [item.with_knockout(knockout)], prefix_cache=cache)``, with
``hook_pattern`` recorded on the way, and returns an :class:`Update`: the prediction, the
label-word probabilities and the test example's attention mass per category.

Latency: the demonstration prefix is computed once per prefix-side signature of the knockout
(docs/engine.md: a knockout that only restricts the test example shares the plain prefix; the
E9 aggregation block changes the prefix rows and gets its own), so an update runs only the test
suffix (plus the few generated tokens).

    state = ExplorerState.from_task(model, tok, "sst2", seed=0, k=4, example=0)
    up = state.update(Selection(kinds=frozenset({"template"})))
    up.prediction, up.label_probs, up.mass_by_category()
    print(state.as_code())          # the knockout as Python source
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from ..ablation.knockout import Knockout, ResolvedKnockout
from ..ablation.selection import Sel
from ..aggregation.attention_mass import KEY_GROUPS, mass_from_rows, pattern_names
from ..categorize import TokenizedPrompt, categorize, category_names
from ..engine.items import Item, LabelSet
from ..engine.prefix_cache import PrefixCache
from ..engine.scoring import SCORINGS, score_items
from ..prompts import build_prompt
from ..tasks import Example, TaskSpec, load_task
from .code import knockout_source
from .selection import Selection

__all__ = ["ExplorerState", "TokenInfo", "Update", "token_infos"]


@dataclass(frozen=True)
class TokenInfo:
    """One prompt token as the views show it."""

    position: int
    token_id: int
    text: str
    categories: tuple[str, ...]
    roles: tuple[str, ...]
    demo: int

    @property
    def is_test(self) -> bool:
        return "test" in self.categories


def token_infos(item: Item, tokenizer: Any, tp: TokenizedPrompt | None = None) -> list[TokenInfo]:
    """Per-token text, id, categories and roles (prompt characters when ``tp`` is given,
    otherwise the decoded token)."""
    out = []
    for i, tid in enumerate(item.input_ids):
        if tp is not None:
            s, e = tp.offsets[i]
            text = tp.prompt.text[s:e] if e > s else tp.tokens[i]
        else:
            text = tokenizer.decode([tid])
        out.append(TokenInfo(i, int(tid), text, tuple(category_names(int(item.codes[i]))),
                             tuple(item.roles[i]), int(item.demo[i])))
    return out


@dataclass
class Update:
    """What one explorer update computed.

    Attributes:
        selection: The selection.
        knockout: Its knockout (``None``: nothing hidden).
        hidden: Bool ``[pos]``: keys hidden from the test example (by a block whose queries
            include test or generated tokens), in some layer and head.
        label_logprobs: Log-probability of each label word's tokens after the prompt.
        label_prediction: The label word with the highest log-probability.
        continuation: The greedy continuation (``None`` with ``scoring="label"``).
        prediction: Its first word (``None`` with ``scoring="label"``).
        gold: The gold label word.
        mass: :func:`~icl_tokens.aggregation.attention_mass.mass_from_rows` of the test
            example's tokens (one row per layer, head and key group).
        token_mass: Float ``[pos]``: attention each key gets from the test example's tokens,
            averaged over layers, heads and those queries.
        pattern: Float ``[layer, head, query, key]``: the attention pattern of the test
            example's tokens (queries: :attr:`ExplorerState.queries`, in order) over every
            prompt position, as the knockout left it.
        seconds: Wall time of the update.
        prefix_computed: Whether this update had to compute a prefix (a cache miss).
    """

    selection: Selection
    knockout: Knockout | None
    hidden: Bool[np.ndarray, "pos"]
    label_logprobs: dict[str, float]
    label_prediction: str
    continuation: str | None
    prediction: str | None
    gold: str
    mass: pd.DataFrame
    token_mass: Float[np.ndarray, "pos"]
    pattern: Float[np.ndarray, "layer head query key"]
    seconds: float
    prefix_computed: bool

    @property
    def label_probs(self) -> dict[str, float]:
        """P(label word) under the model (all of its tokens)."""
        return {w: math.exp(v) for w, v in self.label_logprobs.items()}

    @property
    def label_share(self) -> dict[str, float]:
        """The label probabilities renormalised over the label words."""
        p = self.label_probs
        total = sum(p.values())
        return {w: v / total for w, v in p.items()}

    def mass_by_category(self, layers: Sequence[int] | None = None) -> pd.Series:
        """Mean attention mass per key group (over heads and ``layers``, default all)."""
        df = self.mass if layers is None else self.mass[self.mass["layer"].isin(list(layers))]
        s = df.groupby("category", sort=False)["mass"].mean()
        order = [g for g in KEY_GROUPS if g in s.index] + [g for g in s.index
                                                          if g not in KEY_GROUPS]
        return s.reindex(order)


def _check_model(model: Any, tokenizer: Any) -> None:
    """Raise a TypeError naming the fix when ``model`` is not a loaded model or the tokenizer is
    missing."""
    if not hasattr(getattr(model, "cfg", None), "n_layers"):
        raise TypeError(f"the explorer needs a loaded model, got {type(model).__name__}; pass one "
                        "from icl_tokens.load_model(), e.g. explore(load_model(), "
                        "load_tokenizer(), 'sst2').")
    if tokenizer is None:
        raise TypeError("the explorer needs the model's tokenizer, got None; pass "
                        "icl_tokens.load_tokenizer() (same name as the model).")


def _record(t: Tensor, hook: Any, *, layer: int, shape: tuple[int, int],
            out: dict[int, Tensor]) -> Tensor:
    """Keep the first ``[1, heads, q, k]`` pattern of the suffix forward (q, k = ``shape``)."""
    if layer not in out and tuple(t.shape[-2:]) == shape and t.shape[0] == 1:
        out[layer] = t[0].detach().to("cpu", torch.float32)
    return t


class ExplorerState:
    """One prompt under a changing selection (see the module docstring).

    Args:
        model: A ``TransformerBridge``.
        tokenizer: Its HF fast tokenizer.
        item: The prompt as an item (its own knockout is ignored).
        tp: The categorized prompt the item came from (for the token texts; optional).
        scoring: ``"generate"`` (prediction = first generated word, the paper's) or
            ``"label"`` (label probabilities only; faster).
        max_prefixes: Cached prefixes kept before the cache is cleared.
    """

    def __init__(self, model: Any, tokenizer: Any, item: Item, *,
                 tp: TokenizedPrompt | None = None, scoring: str = "generate",
                 max_prefixes: int = 8) -> None:
        if scoring not in SCORINGS:
            raise ValueError(f"unknown scoring {scoring!r}; use one of {SCORINGS}.")
        if max_prefixes < 1:
            raise ValueError("max_prefixes must be >= 1.")
        _check_model(model, tokenizer)
        self.model = model
        self.tokenizer = tokenizer
        self.item = item.with_knockout(None, "explore")
        self.tp = tp
        self.scoring = scoring
        self.max_prefixes = max_prefixes
        self.cache = PrefixCache()
        self.selection = Selection()
        self.tokens = token_infos(self.item, tokenizer, tp)
        self.n_layers = int(model.cfg.n_layers)
        self.n_heads = int(model.cfg.n_heads)
        self.atlas: Float[np.ndarray, "pos"] | None = None
        self.queries = np.flatnonzero(Sel.test(generated=False).mask(self.item))
        if not len(self.queries):
            raise ValueError("the item has no test-example tokens (category 'test'); the "
                             "explorer shows the test example's attention. Build the item "
                             "from a categorized prompt (Item.from_prompt).")
        if self.queries[0] < self.item.prefix_len:
            raise ValueError(f"the item's prefix ({self.item.prefix_len} tokens) covers test "
                             f"tokens (from {self.queries[0]}); use a prefix that ends before "
                             "the test example.")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_task(cls, model: Any, tokenizer: Any, task: str | TaskSpec = "sst2", *,
                  seed: int = 0, k: int = 4, example: int = 0, **kw: Any) -> "ExplorerState":
        """The prompt of test example ``example`` of the task's fixed evaluation subset with
        seed ``seed``'s ``k`` demonstrations (the experiments' episodes)."""
        from ..data import load_task_data
        from ..episodes import eval_subset, sample_episode

        _check_model(model, tokenizer)
        spec = load_task(task) if isinstance(task, str) else task
        data = load_task_data(spec)
        n = len(eval_subset(data))
        if not 0 <= example < n:
            raise ValueError(f"example {example} is out of range: task {spec.name!r} has {n} "
                             f"evaluation examples; pass a 0-based example in 0..{n - 1}.")
        ep = sample_episode(data, seed, k=k, n_test=example + 1)
        return cls.from_examples(model, tokenizer, spec, ep.demos, ep.tests[example],
                                 meta={"seed": seed, "k": k}, **kw)

    @classmethod
    def from_examples(cls, model: Any, tokenizer: Any, task: str | TaskSpec,
                      demos: Sequence[Example], test: Example, *,
                      meta: dict[str, Any] | None = None, **kw: Any) -> "ExplorerState":
        """Any demonstrations and test example of a task (e.g. written by hand:
        ``Example("mine", {"text": "a fine film"}, "1")``)."""
        _check_model(model, tokenizer)
        spec = load_task(task) if isinstance(task, str) else task
        tp = categorize(build_prompt(spec, list(demos), test), tokenizer)
        labels = LabelSet.for_task(spec, tokenizer)
        item = Item.from_prompt(tp, labels, condition="explore", meta=meta)
        return cls(model, tokenizer, item, tp=tp, **kw)

    def set_atlas(self, atlas: Any, value: str = "delta_margin") -> Float[np.ndarray, "pos"]:
        """Colour the prompt by an atlas (a DataFrame or CSV from ``atlas --out``): keeps its
        ``value`` per position of this prompt's rows in :attr:`atlas` (NaN elsewhere)."""
        from .atlas import atlas_effects

        if "seed" not in self.item.meta:
            raise ValueError("the atlas is keyed by seed and test example; build the state with "
                             "ExplorerState.from_task(..., seed=, k=, example=) to colour it.")
        self.atlas = atlas_effects(atlas, self.tokens, seed=int(self.item.meta["seed"]),
                                   example_id=self.item.example_id, value=value)
        return self.atlas

    # ------------------------------------------------------------------ the selection
    def knockout(self, selection: Selection | None = None) -> Knockout | None:
        """The knockout of ``selection`` (default: the current one)."""
        return (self.selection if selection is None else selection).knockout()

    def as_code(self, selection: Selection | None = None) -> str:
        """Python source of the knockout and of the equivalent scoring call."""
        sel = self.selection if selection is None else selection
        return (f"# explorer selection: {sel.name}\n{knockout_source(sel.knockout())}\n"
                "rows = score_items(model, tokenizer, [item.with_knockout(knockout)])")

    def resolve(self, knockout: Knockout | None) -> ResolvedKnockout | None:
        """``knockout`` evaluated on the item (errors name a clicked test token)."""
        if knockout is None:
            return None
        try:
            rk = knockout.resolve(self.item, self.n_layers, self.n_heads)
        except ValueError as err:
            if "from itself" in str(err):
                raise ValueError(f"{err} The test example's tokens (positions "
                                 f"{int(self.queries[0])}..{int(self.queries[-1])}) are the "
                                 "queries: hide only prompt tokens before them.") from None
            raise
        return None if rk.is_empty else rk

    def hidden_from_test(self, rk: ResolvedKnockout | None) -> Bool[np.ndarray, "pos"]:
        """Keys hidden by blocks whose queries include the test example (or generated tokens)."""
        out = np.zeros(len(self.item), dtype=bool)
        if rk is None:
            return out
        test = Sel.test(generated=False).mask(self.item)
        for b in rk.blocks:
            if b.query_generated or (b.query & test).any():
                out |= b.key
        return out

    # ------------------------------------------------------------------ one update
    @torch.no_grad()
    def update(self, selection: Selection | None = None) -> Update:
        """Make ``selection`` current and run it: one cached forward on the suffix."""
        sel = self.selection if selection is None else selection
        start = time.perf_counter()
        ko = sel.knockout()
        rk = self.resolve(ko)
        item = self.item.with_knockout(ko, sel.name)
        n, lp = len(item), item.prefix_len
        patterns: dict[int, Tensor] = {}
        hooks = [(name, partial(_record, layer=layer, shape=(n - lp, n), out=patterns))
                 for layer, name in enumerate(pattern_names(self.n_layers))]
        misses = self.cache.misses
        with self.model.hooks(fwd_hooks=hooks):
            row = score_items(self.model, self.tokenizer, [item], scoring=self.scoring,
                              prefix_cache=self.cache)[0]
        missing = sorted(set(range(self.n_layers)) - set(patterns))
        if missing:
            raise RuntimeError(f"no attention pattern of the suffix forward was recorded in "
                               f"layers {missing}; the scoring engine's forwards changed shape.")
        rows = torch.stack([patterns[layer] for layer in range(self.n_layers)])  # [L, H, q, k]
        if rk is not None and rk.mode == "pattern":
            rows = self._zero_blocked(rows, rk, lp)
        pick = self.queries - lp
        qrows = rows[:, :, pick].numpy()
        mass = mass_from_rows(qrows, item, self.queries)
        prefix_computed = self.cache.misses > misses
        if len(self.cache) > self.max_prefixes:
            self.cache.clear()
        self.selection = sel
        return Update(
            selection=sel, knockout=ko, hidden=self.hidden_from_test(rk),
            label_logprobs=dict(row.label_scores), label_prediction=row.label_prediction,
            continuation=row.continuation, prediction=row.gen_prediction, gold=item.gold,
            mass=mass, token_mass=qrows.mean(axis=(0, 1, 2)), pattern=qrows,
            seconds=time.perf_counter() - start, prefix_computed=prefix_computed)

    def _zero_blocked(self, rows: Tensor, rk: ResolvedKnockout, lp: int) -> Tensor:
        """Pattern mode edits ``hook_pattern`` after the recorder saw it: apply the same zeros."""
        n = len(self.item)
        masks = rk.masks(np.arange(lp, n), np.arange(n), self.n_layers, self.n_heads)
        out = rows.clone()
        for layer, m in masks.items():
            t = torch.from_numpy(m)
            out[layer] = out[layer].masked_fill(t if t.ndim == 3 else t[None], 0.0)
        return out

    def item_with(self, selection: Selection | None = None) -> Item:
        """The item under ``selection``'s knockout (what :meth:`update` scores)."""
        sel = self.selection if selection is None else selection
        return self.item.with_knockout(sel.knockout(), sel.name)
