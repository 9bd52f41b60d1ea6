"""Representation-level ablation (paper §4.2.1, Tables 2 and 3; paper-spec §6 E1, E2).

The whole ICL prompt is processed normally; the test example (and every generated token) may not
attend to the representations of the hidden kinds of demonstration tokens. One config → items
(one per test example and condition, all sharing the demonstration prefix) → the engine.

    >>> cfg = AblationConfig(task="sst2", seeds=(0, 1), n_test=50, conditions=("icl", "+template"))
    >>> cfg.conditions
    ('icl', '+template')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from ..ablation.conditions import (
    PAPER_ORDER,
    ZERO_SHOT,
    knockout_for,
    parse_conditions,
    resolve_condition,
)
from ..ablation.hooks import MODES
from ..ablation.knockout import Knockout, check_index_list
from ..categorize import categorize
from ..engine.items import Item, LabelSet
from ..episodes import Episode
from ..prompts import build_prompt
from ..prompts.variants import ORIGINAL, VariantTemplates, parse_template_spec, variant_templates
from ..tasks import Example, TaskSpec, load_task
from .claims import Claim, Pattern
from .config import RunConfig
from .runner import RunContext, run_experiment

__all__ = ["AblationConfig", "run_ablation", "representation_items", "prompt_item", "PATTERNS"]

_R = "representation"
#: Paper-spec §8 targets 1-2 (Tables 2 and 3), decided by :mod:`icl_tokens.analysis.verdicts`.
#: "About 2 points" is an equivalence claim with a 2.5-point margin.
PATTERNS: tuple[Pattern, ...] = (
    Pattern("1", "+TEMP > +STOP > +CONT", (2,), (
        Claim.between((_R, "+template"), (_R, "+stopword"), "positive"),
        Claim.between((_R, "+stopword"), (_R, "+content"), "positive"))),
    Pattern("2a", "−TEMP is the largest drop", (3,), (
        Claim.between((_R, "icl-template"), (_R, "icl-content"), "negative"),
        Claim.between((_R, "icl-template"), (_R, "icl-stopword"), "negative"))),
    Pattern("2b", "−CONT and −STOP within about 2 points of Standard ICL", (3,), (
        Claim.between((_R, "icl-content"), (_R, "icl"), "equivalent", 2.5),
        Claim.between((_R, "icl-stopword"), (_R, "icl"), "equivalent", 2.5))),
)


@dataclass
class AblationConfig(RunConfig):
    """Arguments of a representation-level ablation run (everything that defines its rows)."""

    conditions: tuple[str, ...] = tuple(PAPER_ORDER)
    #: Also hide BOS in the masked conditions (paper Appendix B: its NLTK runs accidentally hid
    #: ``</s>``; Standard ICL and zero-shot mask nothing, so they stay as in Tables 2/3).
    hide_bos: bool = False
    query_scope: str = "test"
    layers: tuple[int, ...] | None = None
    heads: tuple[int, ...] | None = None
    mode: str = "scores"
    #: Template variant the prompts are built from (``original``, ``swap``, ``randomfixed:N``,
    #: ...; :mod:`icl_tokens.prompts.variants`). Left out of the identity while ``original``.
    template: str = ORIGINAL

    def __post_init__(self) -> None:
        super().__post_init__()
        self.conditions = tuple(parse_conditions(list(self.conditions)))
        parse_template_spec(self.template)  # a bad variant name or number fails here
        if self.mode not in MODES:
            raise ValueError(f"unknown knockout mode {self.mode!r}; use one of {MODES}.")
        if self.query_scope not in ("test", "last"):
            raise ValueError(f"unknown query_scope {self.query_scope!r}; use 'test' or 'last'.")
        for name in ("layers", "heads"):
            value = getattr(self, name)
            if value is not None:
                if not value:
                    raise ValueError(f"{name} is empty; pass None for all {name}.")
                setattr(self, name, tuple(int(v) for v in value))
        masked = [c for c in self.conditions if c not in (ZERO_SHOT, "icl")]
        if self.k == 0 and masked:
            raise ValueError(
                f"k=0 leaves no demonstrations, so the knockout conditions {masked} would hide "
                "nothing and equal 'icl'; use k >= 1, or --conditions zero_shot,icl.")

    def identity(self) -> dict[str, Any]:
        """:meth:`RunConfig.identity`, plus the hash of the variant's templates (if any)."""
        d = super().identity()
        if self.hide_bos:  # BOS is hidden in the masked conditions only (not Standard ICL)
            d["hide_bos_scope"] = "masked"
        if self.template != ORIGINAL:
            d["template_sha256"] = self.variant().sha256()
        return d

    def variant(self) -> VariantTemplates:
        """The task under :attr:`template` (a variant missing for the task fails here)."""
        return variant_templates(load_task(self.task), self.template)

    def knockout(self, condition: str) -> Knockout:
        """The knockout of one masked condition under this config's options (``hide_bos``
        touches masked conditions only: Standard ICL keeps BOS visible)."""
        masked = resolve_condition(condition) != "icl"
        return knockout_for(condition, hide_bos=self.hide_bos and masked,
                            query_scope=self.query_scope, layers=self.layers, heads=self.heads,
                            mode=self.mode)

    def check_model(self, model: Any) -> None:
        """Layers and heads in range for ``model`` (checked before any output exists)."""
        check_index_list("layer", self.layers, int(model.cfg.n_layers))
        check_index_list("head", self.heads, int(model.cfg.n_heads))


def prompt_item(task: TaskSpec, tokenizer: Any, labels: LabelSet, episode: Episode,
                test: Example, *, demos: bool = True, stopword_variant: str = "paper",
                condition: str = "icl", template: VariantTemplates | None = None) -> Item:
    """The categorized prompt of one test example (with the episode's demonstrations, or
    none: the zero-shot prompt) as an item without a knockout; ``meta`` holds seed and k (and
    the template spec when the prompt is built from a variant ``template``)."""
    shown = episode.demos if demos else []
    prompt = (build_prompt(task, shown, test) if template is None
              else template.build(shown, test))
    tp = categorize(prompt, tokenizer, stopword_variant=stopword_variant)
    meta: dict[str, Any] = {"seed": episode.seed, "k": episode.k}
    if template is not None:
        meta["template"] = template.spec
    return Item.from_prompt(tp, labels, condition=condition, meta=meta)


def representation_items(
    task: TaskSpec, tokenizer: Any, labels: LabelSet, episode: Episode,
    conditions: Sequence[str], knockout: Callable[[str], Knockout], *,
    stopword_variant: str = "paper", template: VariantTemplates | None = None,
) -> list[Item]:
    """One item per (test example, condition) of an episode.

    Args:
        knockout: Condition name → its knockout (e.g. :meth:`AblationConfig.knockout`).
        template: Build the prompts from this variant (``labels`` in its output prefix).
    """
    items: list[Item] = []
    for test in episode.tests:
        icl = None
        for cond in conditions:
            if cond == ZERO_SHOT:
                items.append(prompt_item(task, tokenizer, labels, episode, test, demos=False,
                                         stopword_variant=stopword_variant, condition=cond,
                                         template=template))
                continue
            if icl is None:
                icl = prompt_item(task, tokenizer, labels, episode, test,
                                  stopword_variant=stopword_variant, template=template)
            ko = knockout(cond)
            items.append(icl.with_knockout(ko if ko.blocks else None, cond))
    return items


def run_ablation(
    cfg: AblationConfig,
    *,
    model: Any = None,
    tokenizer: Any = None,
    out: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    meta: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Run (or resume) a representation-level ablation and return its tidy rows.

    Args:
        cfg: The run's arguments.
        model, tokenizer: A loaded bridge and its tokenizer (loaded from ``cfg.model`` if None).
        out: CSV path; rows are appended as they are computed and a rerun resumes.
        progress: Show a tqdm progress bar.
        log: Where to write notes (data source, resume state); default stderr.
        meta: Extra provenance for the sidecar.
    """
    variant = None if cfg.template == ORIGINAL else cfg.variant()  # fails before any output
    variant_labels: list[LabelSet] = []  # in the variant's output prefix, computed once

    def build(ctx: RunContext, ep: Episode) -> list[Item]:
        if variant is not None and not variant_labels:
            variant_labels.append(LabelSet.for_task(variant.task, ctx.tokenizer))
        lab = ctx.labels if variant is None else variant_labels[0]
        return representation_items(ctx.task, ctx.tokenizer, lab, ep, cfg.conditions,
                                    cfg.knockout, stopword_variant=cfg.stopword_variant,
                                    template=variant)

    return run_experiment(cfg, build, cfg.conditions, model=model, tokenizer=tokenizer, out=out,
                          progress=progress, meta=meta, validate_model=cfg.check_model, log=log,
                          extra_columns=("template",) if variant is not None else ())
