"""Knockouts: the condition registry, composable blocks over position selections, and hooks.

* :mod:`~icl_tokens.ablation.selection`: :class:`Sel`, which positions (category, role,
  demonstration, part, explicit positions, generated tokens), composable with ``& | ~``.
* :mod:`~icl_tokens.ablation.knockout`: :class:`Block` (queries, keys, layers, heads) and
  :class:`Knockout` (a union of blocks).
* :mod:`~icl_tokens.ablation.conditions`: the named conditions of the paper as knockouts.
* :mod:`~icl_tokens.ablation.hooks`: the context managers that install them on a model.
"""

from .conditions import (
    ALIASES,
    CONDITION_LABELS,
    CONDITIONS,
    PAPER_ORDER,
    REGISTRY,
    SPEC_NAMES,
    TABLE2_CONDITIONS,
    ZERO_SHOT,
    Condition,
    condition_knockout,
    custom_knockout,
    hidden_categories,
    knockout_for,
    parse_conditions,
    resolve_condition,
)
from .hooks import attention_knockout, attn_hook_name, check_layers, layered_knockout
from .knockout import Block, Knockout, ResolvedKnockout
from .selection import ALWAYS_VISIBLE, KINDS, Sel, key_rule

__all__ = [
    "ALIASES", "ALWAYS_VISIBLE", "Block", "CONDITIONS", "CONDITION_LABELS", "Condition", "KINDS",
    "Knockout", "PAPER_ORDER", "REGISTRY", "ResolvedKnockout", "SPEC_NAMES", "Sel",
    "TABLE2_CONDITIONS", "ZERO_SHOT", "attention_knockout", "attn_hook_name", "check_layers",
    "condition_knockout", "custom_knockout", "hidden_categories", "key_rule", "knockout_for",
    "layered_knockout", "parse_conditions", "resolve_condition",
]
