"""icl_tokens: performance-critical tokens in in-context learning (Bai et al., arXiv 2401.11323).

The public API in one import; heavy modules (TransformerLens) load only when a model is built.
"""

from .ablation import (
    CONDITIONS,
    PAPER_ORDER,
    Block,
    Condition,
    Knockout,
    Options,
    Sel,
    attention_knockout,
    condition_knockout,
    custom_knockout,
    get_condition,
    knockout_for,
    layered_knockout,
    register_condition,
)
from .analysis.compare import compare
from .analysis.tables import accuracy_table, format_accuracy_table, paper_layout
from .categorize import CATEGORIES, TokenizedPrompt, categorize, label_token_ids
from .data import TaskData, load_task_data
from .engine import Item, LabelSet, PrefixCache, capture_activations, score_items
from .episodes import Episode, sample_episode, sample_episodes
from .experiments import AblationConfig, run_ablation, run_config, run_experiment
from .experiments.registry import EXPERIMENTS
from .experiments.template_parts import PartsConfig, run_template_parts
from .experiments.token_level import TokenAblationConfig, run_token_ablation
from .experiments.variants import VariantsConfig, run_variants
from .models import load_model, load_tokenizer
from .prompts import Prompt, build_prompt
from .tasks import Example, TaskSpec, list_tasks, load_task
from .version import __version__ as __version__

__all__ = [
    "CATEGORIES", "CONDITIONS", "PAPER_ORDER", "AblationConfig", "Block", "Episode", "Example",
    "Item", "Knockout", "LabelSet", "PrefixCache", "Prompt", "Sel", "TaskData", "TaskSpec",
    "TokenizedPrompt", "accuracy_table", "attention_knockout", "build_prompt",
    "capture_activations", "categorize", "condition_knockout", "custom_knockout",
    "format_accuracy_table", "knockout_for", "label_token_ids", "layered_knockout",
    "list_tasks", "load_model", "load_task", "load_task_data", "load_tokenizer", "paper_layout",
    "run_ablation", "run_experiment", "sample_episode", "sample_episodes", "score_items",
    "Condition", "Options", "register_condition", "get_condition", "compare", "run_config",
    "EXPERIMENTS", "PartsConfig", "run_template_parts", "TokenAblationConfig",
    "run_token_ablation", "VariantsConfig", "run_variants",
]
#: Runners of the aggregation experiments, imported on first use (they need scikit-learn).
_LAZY = {
    "AggregationConfig": "icl_tokens.aggregation.experiment",
    "run_aggregation": "icl_tokens.aggregation.experiment",
    "WindowConfig": "icl_tokens.aggregation.windows",
    "run_layer_windows": "icl_tokens.aggregation.windows",
    "RandomControlConfig": "icl_tokens.experiments.random_control",
    "run_random_control": "icl_tokens.experiments.random_control",
}
__all__ += list(_LAZY)
__all__ += ["explore"]


def __getattr__(name: str) -> object:
    """``icl_tokens.explore`` loads on first use (it never imports ipywidgets until a widget
    is built); call it as ``icl_tokens.explore(model, tokenizer, task=...)``."""
    import importlib

    if name == "explore":
        return importlib.import_module(".explore", __name__)
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
