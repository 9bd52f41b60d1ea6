"""Knockouts: the condition registry, composable blocks over position selections, and hooks.

* :mod:`~icl_tokens.ablation.selection`: :class:`Sel`, which positions (category, role,
  demonstration, part, explicit positions, generated tokens), composable with ``& | ~``.
* :mod:`~icl_tokens.ablation.knockout`: :class:`Block` (queries, keys, layers, heads) and
  :class:`Knockout` (a union of blocks).
* :mod:`~icl_tokens.ablation.condition`: :class:`Condition`, a condition as data (prompt,
  token removal, knockout, or a composition) and the run :class:`Options` that shape it.
* :mod:`~icl_tokens.ablation.registry`: the one registry of conditions, by experiment.
* :mod:`~icl_tokens.ablation.conditions`: the paper's conditions declared in it, and views.
* :mod:`~icl_tokens.ablation.hooks`: the context managers that install them on a model.
"""

from .conditions import (
    ALIASES,
    CONDITION_LABELS,
    CONDITIONS,
    PAPER_ORDER,
    SPEC_NAMES,
    TABLE2_CONDITIONS,
    ZERO_SHOT,
    Condition,
    Options,
    condition_knockout,
    custom_knockout,
    get_condition,
    hidden_categories,
    knockout_for,
    parse_conditions,
    register_condition,
    resolve_condition,
)
from .conditions import (
    REGISTRY as CONDITION_REGISTRY,
)
from .hooks import attention_knockout, attn_hook_name, check_layers, layered_knockout
from .knockout import Block, Knockout, ResolvedKnockout
from .selection import ALWAYS_VISIBLE, KINDS, Sel, key_rule

__all__ = [
    "ALIASES", "ALWAYS_VISIBLE", "Block", "CONDITIONS", "CONDITION_LABELS", "Condition", "KINDS",
    "Knockout", "PAPER_ORDER", "CONDITION_REGISTRY", "Options", "ResolvedKnockout", "SPEC_NAMES",
    "Sel",
    "TABLE2_CONDITIONS", "ZERO_SHOT", "attention_knockout", "attn_hook_name", "check_layers",
    "condition_knockout", "custom_knockout", "hidden_categories", "key_rule", "knockout_for",
    "layered_knockout", "parse_conditions", "resolve_condition", "register_condition",
    "get_condition",
]
