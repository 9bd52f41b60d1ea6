"""Checkers for the notebooks' exercises (ARENA style): write a small function, pass it here.

Each ``check_*`` runs the reader's function on a set of prompts (several tasks, including the
two-input RTE format, and several tokenizers, including one that merges ``.\\n`` into a single
token), compares it with what ``icl_tokens`` computes, and either prints one ✓ line or raises an
``AssertionError`` that names the first prompt and the first tokens where the answers differ.
No model is needed (the attention-mass checker uses random attention patterns).

======================================  ========  ================================================
checker                                 notebook  the reader writes
======================================  ========  ================================================
:func:`check_demo_counts`               01        demonstration tokens per category
:func:`check_label_colons`              01        the ``:`` right before each demonstration's label
:func:`check_key_rule`                  02        the paper's key rule (which keys a kind hides)
:func:`check_knockout_mask`             02        the ``[query, key]`` mask of a named condition
:func:`check_no_colon_knockout`         02        a composed knockout (``+template``, colons hidden)
:func:`check_removal_mask`              03        the token-level removal rule
:func:`check_template_part_knockout`    03        a template-part knockout (Tables 5 and 6)
:func:`check_aggregation_mask`          04        the E9 aggregation block's mask
:func:`check_category_mass`             04        attention mass per key category
:func:`check_randomfixed_prompt`        05        a Randomfixed prompt (paper-spec §6.1)
:func:`check_token_knockout`            07        the single-key knockout of one atlas row
:func:`check_effect_shares`             07        a category's share of one example's |effect|
======================================  ========  ================================================
"""

from .atlas import check_effect_shares, check_token_knockout
from .common import exercise_prompts
from .later import check_category_mass, check_colon_only_knockout, check_randomfixed_prompt
from .masks import (
    check_aggregation_mask,
    check_demo_counts,
    check_key_rule,
    check_knockout_mask,
    check_label_colons,
    check_no_colon_knockout,
    check_removal_mask,
    check_template_part_knockout,
)

__all__ = ["check_aggregation_mask", "check_category_mass", "check_colon_only_knockout",
           "check_demo_counts", "check_effect_shares", "check_key_rule", "check_knockout_mask",
           "check_label_colons", "check_no_colon_knockout", "check_randomfixed_prompt",
           "check_removal_mask", "check_template_part_knockout", "check_token_knockout",
           "exercise_prompts"]
