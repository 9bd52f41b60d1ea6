"""icl_tokens: performance-critical tokens in in-context learning (Bai et al., arXiv 2401.11323).

The public API in one import; heavy modules (TransformerLens) load only when a model is built.
"""

from .categorize import CATEGORIES, TokenizedPrompt, categorize, label_token_ids
from .data import TaskData, load_task_data
from .episodes import Episode, sample_episode, sample_episodes
from .engine.scoring import make_jobs, score_jobs
from .experiments import AblationConfig, accuracy_table, format_accuracy_table, run_ablation
from .ablation.hooks import attention_knockout
from .ablation.conditions import CONDITIONS, PAPER_ORDER, Knockout, condition_knockout, custom_knockout
from .models import load_model, load_tokenizer
from .prompts import Prompt, build_prompt
from .tasks import Example, TaskSpec, list_tasks, load_task

__version__ = "0.1.0"

__all__ = [
    "CATEGORIES", "CONDITIONS", "PAPER_ORDER", "AblationConfig", "Episode", "Example", "Knockout",
    "Prompt", "TaskData", "TaskSpec", "TokenizedPrompt", "accuracy_table", "attention_knockout",
    "build_prompt", "categorize", "condition_knockout", "custom_knockout",
    "format_accuracy_table", "label_token_ids", "list_tasks", "load_model", "load_task",
    "load_task_data", "load_tokenizer", "make_jobs", "run_ablation", "sample_episode",
    "sample_episodes", "score_jobs",
]
