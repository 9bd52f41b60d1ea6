"""The one item builder: a test example's ICL prompt turned into the scored item of each
condition (:class:`~icl_tokens.ablation.condition.Condition`).

A condition picks the prompt (template variant, number of demonstrations, zero-shot), may drop
tokens (:mod:`icl_tokens.ablation.removal`) and may add a knockout. Prompts are categorized once
per test example, template and shot count, so every condition on the same prompt shares it (and
the cached engine shares its demonstration prefix).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from ..ablation.condition import Condition, Options
from ..ablation.removal import remove_tokens
from ..categorize import categorize
from ..engine.items import Item, LabelSet
from ..episodes import Episode
from ..prompts import build_prompt
from ..prompts.variants import VariantTemplates, variant_templates
from ..tasks import Example, TaskSpec

__all__ = ["prompt_item", "PromptSource", "condition_item", "condition_items"]


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


class PromptSource:
    """The prompts of one episode: per test example, template spec and shot count, built once.

    Args:
        task, tokenizer, labels: The run's task, tokenizer and label ids.
        episode: The seed's demonstrations and test examples.
        stopword_variant: Stopword list used to categorize.
    """

    def __init__(self, task: TaskSpec, tokenizer: Any, labels: LabelSet, episode: Episode, *,
                 stopword_variant: str = "paper") -> None:
        self.task, self.tokenizer, self.labels, self.episode = task, tokenizer, labels, episode
        self.stopword_variant = stopword_variant
        self._variants: dict[str, tuple[VariantTemplates, LabelSet]] = {}
        self._items: dict[tuple[str, str | None, int | None], Item] = {}

    def variant(self, spec: str) -> tuple[VariantTemplates, LabelSet]:
        """The variant's templates and its label ids (in its output prefix)."""
        if spec not in self._variants:
            vt = variant_templates(self.task, spec)
            self._variants[spec] = (vt, LabelSet.for_task(vt.task, self.tokenizer))
        return self._variants[spec]

    def item(self, test: Example, template: str | None, shots: int | None) -> Item:
        """The ICL item of ``test`` under a template (``None``: the task's own) and a number of
        demonstrations (``None``: the episode's k; ``0``: the zero-shot prompt)."""
        key = (test.id, template, shots)
        if key not in self._items:
            vt, labels = self.variant(template) if template is not None else (None, self.labels)
            ep = self.episode
            if shots:  # the first n of the seed's k-shot draw
                ep = dataclasses.replace(ep, k=shots, demos=ep.demos[:shots])
            self._items[key] = prompt_item(self.task, self.tokenizer, labels, ep, test,
                                           demos=shots != 0,
                                           stopword_variant=self.stopword_variant, template=vt)
        return self._items[key]


def condition_item(source: PromptSource, test: Example, condition: Condition,
                   options: Options) -> Item:
    """The scored item of ``test`` under ``condition`` (its prompt, removal and knockout)."""
    item = source.item(test, condition.prompt_template or options.template,
                       condition.prompt_shots)
    removal = condition.removal_under(options)
    if removal is not None:
        item = remove_tokens(item, **removal)
    item = item.with_knockout(condition.knockout_under(options), condition.name)
    extra = condition.row_meta
    return dataclasses.replace(item, meta={**item.meta, **extra}) if extra else item


def condition_items(task: TaskSpec, tokenizer: Any, labels: LabelSet, episode: Episode,
                    conditions: Sequence[Condition], options: Options = Options(), *,
                    stopword_variant: str = "paper") -> list[Item]:
    """One item per (test example, condition) of an episode, in that order."""
    source = PromptSource(task, tokenizer, labels, episode, stopword_variant=stopword_variant)
    return [condition_item(source, test, c, options)
            for test in episode.tests for c in conditions]
