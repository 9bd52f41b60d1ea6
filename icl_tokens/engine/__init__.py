"""The scoring engine: what is scored, how rows are batched, the prefix cache, scoring, capture.

* :mod:`~icl_tokens.engine.items`: :class:`Item` (token ids, categories, roles, prefix length,
  gold, label ids, knockout) and :class:`LabelSet`.
* :mod:`~icl_tokens.engine.batch`: padding, positions and per-layer knockout masks.
* :mod:`~icl_tokens.engine.prefix_cache`: prefixes computed once under their interventions.
* :mod:`~icl_tokens.engine.scoring`: :func:`score_items` (naive and cached engines).
* :mod:`~icl_tokens.engine.capture`: activations at chosen positions, batched, on the CPU.
"""

from .capture import Capture, capture_activations, iter_captures, resid_names
from .items import Item, LabelSet
from .prefix_cache import PrefixCache
from .scoring import ENGINES, SCORINGS, NumericsError, RowResult, parse_prediction, score_items

__all__ = ["Capture", "ENGINES", "Item", "LabelSet", "NumericsError", "PrefixCache", "RowResult",
           "SCORINGS", "capture_activations", "iter_captures", "parse_prediction", "resid_names",
           "score_items"]
