"""The knockout explorer: hide keys interactively, see the prediction and the attention move.

* :mod:`~icl_tokens.explore.selection`: :class:`Selection` (what is hidden) → its knockout;
* :mod:`~icl_tokens.explore.code`: :func:`knockout_source` (a knockout as Python source);
* :mod:`~icl_tokens.explore.state`: :class:`ExplorerState` (one prompt, one cached forward per
  change; no widgets);
* :mod:`~icl_tokens.explore.static`: :func:`update_view`, :func:`static_view` (self-contained
  HTML, no kernel);
* :mod:`~icl_tokens.explore.widget`: :class:`Explorer` (ipywidgets; imported only by
  :func:`explore`).

    from icl_tokens import explore, load_model, load_tokenizer
    ex = explore(load_model(), load_tokenizer(), task="sst2", seed=0, k=4, example=0)
    ex                                   # the widget, in Jupyter
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from .code import knockout_source, sel_source
from .selection import EXTRA_CATEGORIES, QUERY_SCOPES, Selection
from .state import ExplorerState, TokenInfo, Update, token_infos
from .static import save_view, static_view, update_view

if TYPE_CHECKING:
    from .widget import Explorer

__all__ = ["EXTRA_CATEGORIES", "ExplorerState", "QUERY_SCOPES", "Selection", "TokenInfo",
           "Update", "explore", "knockout_source", "save_view", "sel_source", "static_view",
           "token_infos", "update_view"]


def explore(model: Any, tokenizer: Any, task: Any = "sst2", *, seed: int = 0, k: int = 4,
            example: int = 0, demos: Any = None, test: Any = None, state: Any = None,
            scoring: str = "generate") -> "Explorer":
    """The knockout explorer widget for one prompt.

    Args:
        model, tokenizer: A ``TransformerBridge`` and its HF fast tokenizer.
        task: A task name or :class:`~icl_tokens.tasks.TaskSpec`.
        seed, k, example: The episode (seed's ``k`` demonstrations) and which test example of
            the fixed evaluation subset, as in the experiments.
        demos, test: Instead of an episode, your own :class:`~icl_tokens.tasks.Example` s.
        state: An :class:`ExplorerState` to show (overrides the rest).
        scoring: ``"generate"`` (the prediction is the first generated word) or ``"label"``.

    Returns:
        An :class:`~icl_tokens.explore.widget.Explorer` (display it in Jupyter).
    """
    from .widget import Explorer

    if state is None:
        if (demos is None) != (test is None):
            raise ValueError("give both demos and test (your own examples), or neither (an "
                             "episode from seed, k and example).")
        if demos is not None:
            state = ExplorerState.from_examples(model, tokenizer, task, demos, test,
                                                scoring=scoring)
        else:
            state = ExplorerState.from_task(model, tokenizer, task, seed=seed, k=k,
                                            example=example, scoring=scoring)
    return Explorer(state)


class _CallableModule(types.ModuleType):
    """Lets ``icl_tokens.explore(...)`` call :func:`explore` while ``icl_tokens.explore``
    stays this package (``from icl_tokens.explore import ExplorerState`` keeps working)."""

    def __call__(self, *args: Any, **kwargs: Any) -> "Explorer":
        return explore(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
