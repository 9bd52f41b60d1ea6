"""One module per paper experiment, declared as data and run by one runner.

* :mod:`~icl_tokens.experiments.config`: the fields every config shares, the run identity (which
  hashes what each condition does) and the default item builder from registered conditions.
* :mod:`~icl_tokens.experiments.items`: the one item builder (a condition's prompt, removal and
  knockout applied to a test example).
* :mod:`~icl_tokens.experiments.runner`: the resumable runner every experiment (and the CLI)
  goes through (:func:`run_config`).
* :mod:`~icl_tokens.experiments.registry`: the experiments declared (config, tables, patterns).
* one module per experiment: :mod:`.representation` (Tables 2, 3, 14), :mod:`.token_level`
  (Table 4), :mod:`.template_parts` (Tables 5, 6), :mod:`.variants` (Tables 8-10),
  :mod:`.random_control`; :mod:`icl_tokens.reproduce` runs them all into one folder.
"""

from .representation import AblationConfig, representation_items, run_ablation
from .runner import (
    RunContext,
    data_note,
    result_columns,
    run_config,
    run_experiment,
    sliding_window,
)

__all__ = ["AblationConfig", "RunContext", "data_note", "representation_items", "result_columns",
           "run_ablation", "run_config", "run_experiment", "sliding_window"]
