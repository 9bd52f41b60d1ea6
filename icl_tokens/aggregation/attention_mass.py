"""Attention mass (observed evidence for aggregation): where the test example's attention goes.

For chosen query positions of one item (the test example's tokens, or only its last token), the
share of attention each query gives to each **key group**, per layer and head, averaged over the
queries. Key groups (:data:`KEY_GROUPS`):

==================  ==============================================================================
group               keys
==================  ==============================================================================
``bos``             the BOS token
``instruction``     the instruction
``template``        demonstration tokens carrying ``template`` (``Review``, ``:``, ``\\n``, ...)
``stopword``        demonstration tokens carrying ``stopword``
``content``         demonstration tokens carrying ``content``
``label``           demonstration label tokens
``test``            the test example's own tokens (at or before the query)
``unknown``         tokens without any category (hand-written items); only when present
==================  ==============================================================================

**Multi-category tokens** count toward *each* of their groups (``count="each"``, the default): a
demonstration ``\\n`` is template and stopword, so its attention is in both rows, and the rows of
one (layer, head) may sum to more than 1. ``count="exact"`` assigns every key to exactly one group
instead -- its exact set of categories, e.g. ``template+stopword`` for ``\\n`` (the test example's
tokens are always ``test``) -- a partition, so the shares sum to 1 per (layer, head, query).

    df = category_mass(pattern, item, Sel.test(generated=False))   # pattern [layer, head, q, k]
    df.query("category == 'template'").pivot(index="layer", columns="head", values="mass")

:func:`attention_mass` computes the same table for many items from ``hook_pattern``, batched
through :func:`~icl_tokens.engine.capture.iter_captures` (only the query rows are kept).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from jaxtyping import Bool, Float

from ..ablation.knockout import Knockout
from ..ablation.selection import Sel
from ..categorize import BITS, category_names
from ..engine.capture import iter_captures
from ..engine.items import Item

__all__ = ["KEY_GROUPS", "MASS_COLUMNS", "QUERY_SCOPES", "category_mass", "mass_from_rows",
           "key_groups", "attention_mass", "pattern_names", "summarize_mass"]

#: Key groups of ``count="each"``, in display order.
KEY_GROUPS: tuple[str, ...] = ("bos", "instruction", "template", "stopword", "content", "label",
                               "test")
#: Columns of :func:`category_mass` (a stable contract).
MASS_COLUMNS: tuple[str, ...] = ("layer", "head", "category", "mass", "n_keys", "mass_per_token",
                                 "n_queries")
#: Named query selections of :func:`attention_mass`.
QUERY_SCOPES: dict[str, Sel] = {"test": Sel.test(generated=False), "last": Sel.last()}
_DEMO_KINDS = ("template", "stopword", "content", "label")
COUNTS = ("each", "exact")


def pattern_names(n_layers: int) -> list[str]:
    """``blocks.{l}.attn.hook_pattern`` for every layer."""
    return [f"blocks.{layer}.attn.hook_pattern" for layer in range(n_layers)]


def key_groups(item: Item, count: str = "each") -> dict[str, Bool[np.ndarray, "pos"]]:
    """Key group name → Bool ``[pos]`` mask of the item's positions (see the module docstring).

    ``count="each"``: the groups of :data:`KEY_GROUPS` (overlapping for multi-category tokens),
    plus ``unknown`` when some token has no category. ``count="exact"``: a partition, one group
    per exact category set (``template+stopword``, ...); every test token is ``test``.
    """
    if count not in COUNTS:
        raise ValueError(f"unknown count {count!r}; use 'each' (a token counts toward each of "
                         "its categories) or 'exact' (one group per exact category set).")
    codes = np.asarray(item.codes)
    test = (codes & BITS["test"]) != 0
    unknown = (codes & sum(BITS.values())) == 0
    if count == "each":
        out = {g: ((codes & BITS[g]) != 0) & (~test if g in _DEMO_KINDS else True)
               for g in KEY_GROUPS if g != "test"}
        out["test"] = test
        if unknown.any():
            out["unknown"] = unknown
        return out
    names = []
    for code, is_test, unk in zip(codes.tolist(), test, unknown):
        names.append("test" if is_test else "unknown" if unk else "+".join(category_names(code)))
    order = [g for g in KEY_GROUPS if g in names]
    order += sorted(set(names) - set(order))
    arr = np.array(names, dtype=object)
    return {g: arr == g for g in order}


def _query_positions(item: Item, queries: Any) -> np.ndarray:
    if isinstance(queries, Sel):
        mask = queries.mask(item)
    else:
        mask = np.asarray(queries)
        if mask.dtype != bool or mask.shape != (len(item),):
            raise ValueError(f"queries must be a Sel or a Bool mask of shape ({len(item)},); got "
                             f"dtype {mask.dtype}, shape {mask.shape}.")
    pos = np.flatnonzero(mask)
    if not len(pos):
        raise ValueError(f"the query selection matches no position of item {item.example_id!r}; "
                         "choose queries the item has (e.g. Sel.test(generated=False)).")
    return pos


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().to("cpu").float().numpy()
    return np.asarray(x, dtype=np.float64)


def mass_from_rows(rows: Float[Any, "layer head query key"], item: Item,
                   query_positions: Sequence[int], *, count: str = "each") -> pd.DataFrame:
    """:func:`category_mass` from the attention rows of the chosen queries only.

    Args:
        rows: ``[layer, head, n_queries, key]`` attention probabilities; row ``j`` belongs to
            query position ``query_positions[j]``; the key axis is the item's full length.
        item: The item (its categories decide the key groups).
        query_positions: Absolute query positions, one per row.
        count: ``"each"`` or ``"exact"`` (see :func:`key_groups`).
    """
    p = _as_numpy(rows)
    qpos = np.asarray(query_positions, dtype=np.int64)
    if p.ndim != 4 or p.shape[2] != len(qpos) or p.shape[3] != len(item):
        raise ValueError(f"attention rows have shape {p.shape}; expected [layer, head, "
                         f"{len(qpos)} queries, {len(item)} keys].")
    n_layers, n_heads = p.shape[:2]
    visible = np.arange(len(item))[None, :] <= qpos[:, None]  # [q, k]: causal keys
    frames = []
    for name, mask in key_groups(item, count).items():
        keys = visible & mask[None, :]  # [q, k]
        n_q = keys.sum(axis=1)  # keys of the group each query can see
        mass_q = (p * keys[None, None]).sum(axis=-1)  # [layer, head, q]
        seen = n_q > 0
        per_tok = (mass_q[..., seen] / n_q[seen]).mean(axis=-1) if seen.any() else np.full(
            (n_layers, n_heads), np.nan)
        layer, head = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
        frames.append(pd.DataFrame({
            "layer": layer.ravel(), "head": head.ravel(), "category": name,
            "mass": mass_q.mean(axis=-1).ravel(), "n_keys": float(n_q.mean()),
            "mass_per_token": np.asarray(per_tok).ravel(), "n_queries": len(qpos)}))
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["layer", "head"], kind="stable").reset_index(drop=True)[
        list(MASS_COLUMNS)]


def category_mass(pattern: Float[Any, "layer head query key"], item: Item,
                  queries: Bool[np.ndarray, "pos"] | Sel, *, count: str = "each") -> pd.DataFrame:
    """The share of attention the ``queries`` give to each key group, per layer and head.

    Args:
        pattern: ``[layer, head, query, key]`` attention probabilities (``hook_pattern``) of ONE
            item's full sequence (torch or numpy), query and key axes both ``len(item)``.
        item: That item (its ``codes`` decide the groups, see :func:`key_groups`).
        queries: Which query positions to average over: a Bool ``[pos]`` mask or a
            :class:`~icl_tokens.ablation.Sel` (e.g. ``Sel.test(generated=False)``, ``Sel.last()``).
        count: ``"each"`` (default): a multi-category token counts toward each of its groups,
            so groups overlap; ``"exact"``: each key in exactly one group (a partition).

    Returns:
        A tidy DataFrame, one row per (layer, head, category), columns :data:`MASS_COLUMNS`:

        * ``layer``, ``head``: 0-based indices;
        * ``category``: the key group;
        * ``mass``: attention to the group's keys, summed over the keys and averaged over the
          queries (the share of each query's attention, 0..1);
        * ``n_keys``: how many of the group's keys a query sees (keys at or before it),
          averaged over the queries;
        * ``mass_per_token``: ``mass / n_keys`` per query, averaged over the queries that see at
          least one key of the group (NaN if none does) -- the attention one key of the group
          gets, comparable across groups of different sizes;
        * ``n_queries``: how many queries were averaged.
    """
    p = pattern
    shape = tuple(p.shape)
    if len(shape) != 4 or shape[2] != len(item) or shape[3] != len(item):
        raise ValueError(f"pattern has shape {shape}; expected [layer, head, {len(item)}, "
                         f"{len(item)}] for this item's full sequence.")
    qpos = _query_positions(item, queries)
    return mass_from_rows(p[:, :, qpos, :], item, qpos, count=count)


def attention_mass(
    model: Any, tokenizer: Any, items: Sequence[Item], *,
    scopes: Sequence[str] = ("test", "last"), count: str = "each", batch_size: int = 8,
    knockout: Knockout | None = None,
    item_columns: Callable[[Item], dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """:func:`category_mass` of many items from the model's ``hook_pattern``, batched.

    Args:
        model, tokenizer: A ``TransformerBridge`` and its tokenizer.
        items: The prompts.
        scopes: Query selections, names of :data:`QUERY_SCOPES` (``test``: every test-example
            token; ``last``: the final prompt token, which predicts the answer).
        count: ``"each"`` or ``"exact"`` (see :func:`key_groups`).
        batch_size: Items per forward.
        knockout: Applied to every item during the forward (``None``: each item's own).
        item_columns: Item → extra columns for its rows (default: ``seed`` from ``item.meta``
            when present, ``example_id``, and ``knockout``: the item's condition, or
            ``knockout.name`` when ``knockout`` is given).

    Returns:
        :data:`MASS_COLUMNS` plus ``scope`` and the item columns, one row per (item, scope,
        layer, head, category).
    """
    bad = [s for s in scopes if s not in QUERY_SCOPES]
    if bad or not scopes:
        raise ValueError(f"unknown query scopes {bad or list(scopes)}; choose from "
                         f"{list(QUERY_SCOPES)}.")
    if knockout is not None:
        items = [it.with_knockout(knockout, knockout.name) for it in items]
    cols = item_columns or _default_columns
    names = pattern_names(int(model.cfg.n_layers))
    union = Sel.nothing()
    for s in scopes:
        union = union | QUERY_SCOPES[s]
    frames = []
    for batch in iter_captures(model, tokenizer, items, names, positions=union,
                               batch_size=batch_size):
        for cap in batch:
            rows = np.stack([_as_numpy(cap.acts[n]) for n in names])  # [layer, q, head, k]
            rows = rows.transpose(0, 2, 1, 3)
            for s in scopes:
                pick = np.flatnonzero(QUERY_SCOPES[s].mask(cap.item)[cap.positions])
                if not len(pick):
                    raise ValueError(f"scope {s!r} selects no token of item "
                                     f"{cap.item.example_id!r}.")
                df = mass_from_rows(rows[:, :, pick], cap.item, cap.positions[pick], count=count)
                df.insert(0, "scope", s)
                for i, (k, v) in enumerate(cols(cap.item).items()):
                    df.insert(i, k, v)
                frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _default_columns(item: Item) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "seed" in item.meta:
        out["seed"] = item.meta["seed"]
    out["example_id"] = item.example_id
    out["knockout"] = item.condition
    return out


def summarize_mass(df: pd.DataFrame, by: Sequence[str] = ("scope", "layer", "category"),
                   ) -> pd.DataFrame:
    """Means of ``mass``, ``mass_per_token`` and ``n_keys`` grouped by ``by`` (``n_rows``: rows
    averaged) -- e.g. the layer × category table, averaged over heads and items."""
    missing = [c for c in by if c not in df.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the table; it has {list(df.columns)}.")
    g = df.groupby(list(by), sort=False)
    out = g.agg(mass=("mass", "mean"), mass_per_token=("mass_per_token", "mean"),
                n_keys=("n_keys", "mean"), n_rows=("mass", "size")).reset_index()
    return out
