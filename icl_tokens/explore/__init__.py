"""The knockout explorer: hide keys interactively, see the prediction and the attention move.

* :mod:`~icl_tokens.explore.selection`: :class:`Selection` (what is hidden) → its knockout;
* :mod:`~icl_tokens.explore.code`: :func:`knockout_source` (a knockout as Python source);
* :mod:`~icl_tokens.explore.state`: :class:`ExplorerState` (one prompt, one cached forward per
  change; no widgets);
* :mod:`~icl_tokens.explore.static`: :func:`update_view`, :func:`static_view` (self-contained
  HTML, no kernel);
* :mod:`~icl_tokens.explore.atlas`: the prompt coloured by a per-token atlas (``explore(...,
  atlas="atlas.csv")``);
* :mod:`~icl_tokens.explore.pattern`: :func:`pattern_view` (one head's attention pattern of the
  test example, token x token, as SVG);
* :mod:`~icl_tokens.explore.widget`: :class:`Explorer` (ipywidgets; imported only by
  :func:`explore`).

    from icl_tokens import explore, load_model, load_tokenizer
    ex = explore(load_model(), load_tokenizer(), task="sst2", seed=0, k=4, example=0)
    ex                                   # the widget, in Jupyter
    explore("gemma-3-270m", task="sst2")  # or a model name: loaded without progress bars
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from .code import knockout_source
from .pattern import MEAN_HEADS, pattern_view
from .selection import EXTRA_CATEGORIES, QUERY_SCOPES, Selection
from .state import ExplorerState, TokenInfo, Update, token_infos
from .static import save_view, static_view, update_view

if TYPE_CHECKING:
    from .widget import Explorer

__all__ = ["EXTRA_CATEGORIES", "ExplorerState", "MEAN_HEADS", "QUERY_SCOPES", "Selection",
           "TokenInfo", "Update", "explore", "knockout_source", "load_quietly", "pattern_view",
           "save_view", "static_view", "token_infos", "update_view"]


def load_quietly(name: str) -> tuple[Any, Any]:
    """``(load_model(name), load_tokenizer(name))`` without progress bars (for an app)."""
    from ..models import load_model, load_tokenizer
    from ..models.load import quiet_weights

    with quiet_weights():  # the hub path and the tokenizer build draw bars too
        return load_model(name), load_tokenizer(name)


def explore(model: Any, tokenizer: Any = None, task: Any = "sst2", *, seed: int = 0, k: int = 4,
            example: int = 0, demos: Any = None, test: Any = None, state: Any = None,
            scoring: str = "generate", atlas: Any = None) -> "Explorer":
    """The knockout explorer widget for one prompt.

    Args:
        model, tokenizer: A loaded model and its tokenizer (``icl_tokens.load_model()``,
            ``icl_tokens.load_tokenizer()``), or a model name (or folder) and no tokenizer: both
            are loaded by :func:`load_quietly`; anything else is a TypeError.
        task: A task name or :class:`~icl_tokens.tasks.TaskSpec`.
        seed, k, example: The episode (seed's ``k`` demonstrations) and which test example of
            the fixed evaluation subset (0-based; out of range is a ValueError naming the size),
            as in the experiments.
        demos, test: Instead of an episode, your own :class:`~icl_tokens.tasks.Example` s.
        state: An :class:`ExplorerState` to show (overrides the rest).
        scoring: ``"generate"`` (the prediction is the first generated word) or ``"label"``.
        atlas: A per-token atlas (a DataFrame from ``read_atlas`` or the CSV path of
            ``python -m icl_tokens atlas --out``): the prompt can be coloured by the exact
            effect of its rows for this seed and test example
            (:meth:`ExplorerState.set_atlas`; a checkbox turns the colours on and off).

    Returns:
        An :class:`~icl_tokens.explore.widget.Explorer` (display it in Jupyter).
    """
    from .widget import Explorer

    if isinstance(model, str):
        if tokenizer is not None:
            raise TypeError("give a model name alone (its tokenizer is loaded with it), or a "
                            "loaded model and its tokenizer.")
        model, tokenizer = load_quietly(model)
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
    if atlas is not None:
        state.set_atlas(atlas)
    return Explorer(state)


class _CallableModule(types.ModuleType):
    """Lets ``icl_tokens.explore(...)`` call :func:`explore` while ``icl_tokens.explore``
    stays this package (``from icl_tokens.explore import ExplorerState`` keeps working)."""

    def __call__(self, *args: Any, **kwargs: Any) -> "Explorer":
        return explore(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
