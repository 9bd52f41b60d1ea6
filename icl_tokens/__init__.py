"""icl_tokens: performance-critical tokens in in-context learning (Bai et al., arXiv 2401.11323).

The public API in one import; heavy modules (TransformerLens) load only when a model is built.
"""

from .ablation import (
    CONDITIONS,
    PAPER_ORDER,
    Block,
    Knockout,
    Sel,
    attention_knockout,
    condition_knockout,
    custom_knockout,
    knockout_for,
    layered_knockout,
)
from .analysis.tables import accuracy_table, format_accuracy_table, paper_layout
from .categorize import CATEGORIES, TokenizedPrompt, categorize, label_token_ids
from .data import TaskData, load_task_data
from .engine import Item, LabelSet, PrefixCache, capture_activations, score_items
from .episodes import Episode, sample_episode, sample_episodes
from .experiments import AblationConfig, run_ablation, run_experiment
from .models import load_model, load_tokenizer
from .prompts import Prompt, build_prompt
from .tasks import Example, TaskSpec, list_tasks, load_task

__version__ = "0.2.0"

__all__ = [
    "CATEGORIES", "CONDITIONS", "PAPER_ORDER", "AblationConfig", "Block", "Episode", "Example",
    "Item", "Knockout", "LabelSet", "PrefixCache", "Prompt", "Sel", "TaskData", "TaskSpec",
    "TokenizedPrompt", "accuracy_table", "attention_knockout", "build_prompt",
    "capture_activations", "categorize", "condition_knockout", "custom_knockout",
    "format_accuracy_table", "knockout_for", "label_token_ids", "layered_knockout",
    "list_tasks", "load_model", "load_task", "load_task_data", "load_tokenizer", "paper_layout",
    "run_ablation", "run_experiment", "sample_episode", "sample_episodes", "score_items",
]
__all__ += ["explore"]


def __getattr__(name: str) -> object:
    """``icl_tokens.explore`` loads on first use (it never imports ipywidgets until a widget
    is built); call it as ``icl_tokens.explore(model, tokenizer, task=...)``."""
    if name == "explore":
        import importlib

        return importlib.import_module(".explore", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
