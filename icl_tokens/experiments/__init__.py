"""One module per paper experiment; each turns a config into scoring items and runs the engine.

* :mod:`~icl_tokens.experiments.representation`: representation-level ablation (§4.2.1,
  Tables 2, 3 and 14).
* :mod:`~icl_tokens.experiments.runner`: the resumable runner they (and the CLI) share.
"""

from .representation import AblationConfig, representation_items, run_ablation
from .runner import RunContext, data_note, result_columns, run_experiment, sliding_window

__all__ = ["AblationConfig", "RunContext", "data_note", "representation_items", "result_columns",
           "run_ablation", "run_experiment", "sliding_window"]
