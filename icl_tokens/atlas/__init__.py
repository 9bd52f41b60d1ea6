"""A per-token criticality atlas: which single demonstration tokens the answer depends on.

* :mod:`~icl_tokens.atlas.items`: the atlas items of one test example (the unablated prompt, a
  single-key knockout per demonstration token, the category knockouts beside them);
* :mod:`~icl_tokens.atlas.exact`: :func:`exact_atlas`, the exact margin change of each knockout
  (batched on the cached engine: the knockouts share the demonstration prefix);
* :mod:`~icl_tokens.atlas.gates`, :mod:`~icl_tokens.atlas.attribution`: :func:`attribute`, the
  one-pass gradient and AtP* estimates of every key's effect (one forward and backward);
* :mod:`~icl_tokens.atlas.run`: :class:`AtlasConfig` and :func:`run_atlas`, the resumable CSV
  (``python -m icl_tokens atlas``);
* :mod:`~icl_tokens.atlas.crosscheck`: attribution against exact effects (Spearman, top-k
  overlap, false negatives, wall time), intervals over examples;
* :mod:`~icl_tokens.atlas.rollups`: shares by category and role, concentration, additivity.
"""

from .attribution import Attribution, attribute, gated_margin
from .crosscheck import cross_check, per_example
from .exact import ExactAtlas, exact_atlas, label_margin
from .items import DEFAULT_GROUPS, atlas_items, demo_positions, token_knockout
from .rollups import additivity, concentration, effect_shares
from .run import AtlasConfig, atlas_columns, read_atlas, run_atlas

__all__ = ["Attribution", "attribute", "gated_margin", "cross_check", "per_example",
           "ExactAtlas", "exact_atlas", "label_margin", "DEFAULT_GROUPS", "atlas_items",
           "demo_positions", "token_knockout", "additivity", "concentration", "effect_shares",
           "AtlasConfig", "atlas_columns", "read_atlas", "run_atlas"]
