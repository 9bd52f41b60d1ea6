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
from typing import Any, Callable, Sequence

from ..ablation.condition import Condition, Options
from ..ablation.conditions import PAPER_ORDER, REGISTRY, ZERO_SHOT
from ..ablation.hooks import MODES
from ..ablation.knockout import Knockout, check_index_list
from ..engine.items import Item, LabelSet
from ..episodes import Episode
from ..prompts.variants import ORIGINAL, VariantTemplates, parse_template_spec, variant_templates
from ..tasks import TaskSpec, load_task
from .claims import Claim, Pattern
from .config import RunConfig
from .items import condition_items
from .runner import run_config

__all__ = ["AblationConfig", "run_ablation", "representation_items", "PATTERNS"]

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
    """Arguments of a representation-level ablation run (everything that defines its rows).

    ``conditions`` are names in the ``representation`` namespace of the condition registry (a
    user's own after :func:`~icl_tokens.ablation.conditions.register_condition`).
    """

    namespace = "representation"

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
        self.parse_conditions()
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
        explicit = [c.name for c in self.condition_objects() if c.knockout is not None]
        if explicit and self.options().shapes_knockouts:
            raise ValueError(
                f"conditions {explicit} carry their own knockout, which hide_bos, query_scope, "
                "layers, heads and mode do not change; drop those options or build them into "
                "the condition's Block (layers=..., heads=...) and Knockout (mode=...).")
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

    def options(self) -> Options:
        """Options of the kind-based knockouts (``hide_bos`` touches conditions that hide some
        kind only: Standard ICL keeps BOS visible) and the template."""
        return Options(hide_bos=self.hide_bos, query_scope=self.query_scope, layers=self.layers,
                       heads=self.heads, mode=self.mode,
                       template=None if self.template == ORIGINAL else self.template)

    def knockout(self, condition: str) -> Knockout:
        """The knockout of one condition under this config's options (no blocks: none)."""
        ko = REGISTRY.get(condition, self.namespace).knockout_under(self.options())
        return ko if ko is not None else Knockout((), name=condition, mode=self.mode)

    def extra_columns(self) -> tuple[str, ...]:
        """Columns the rows add: the template spec when the prompts come from a variant."""
        return ("template",) if self.template != ORIGINAL else ()

    def prepare(self) -> None:
        """Checks that need the task: a variant missing for it fails before any output."""
        if self.template != ORIGINAL:
            self.variant()

    def check_model(self, model: Any) -> None:
        """Layers and heads in range for ``model`` (the options' and those of every
        condition's own blocks; checked before any output exists)."""
        n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
        check_index_list("layer", self.layers, n_layers)
        check_index_list("head", self.heads, n_heads)
        for c in self.condition_objects():
            ko = c.knockout_under(self.options())
            for b in ko.blocks if ko is not None else ():
                try:
                    check_index_list("layer", b.layers, n_layers)
                    check_index_list("head", b.heads, n_heads)
                except ValueError as e:
                    raise ValueError(f"condition {c.name!r}: {e}") from None


def representation_items(
    task: TaskSpec, tokenizer: Any, labels: LabelSet, episode: Episode,
    conditions: Sequence[str], knockout: Callable[[str], Knockout], *,
    stopword_variant: str = "paper", template: str | None = None,
) -> list[Item]:
    """One item per (test example, condition) of an episode, each condition's knockout given by
    a function (e.g. :meth:`AblationConfig.knockout`, or your own); ``zero_shot`` is the prompt
    without demonstrations.

    Args:
        knockout: Condition name → its knockout.
        template: Build the prompts from this variant spec.
    """
    conds = [Condition(c, shots=0) if c == ZERO_SHOT else Condition(c, knockout=knockout(c))
             for c in conditions]
    return condition_items(task, tokenizer, labels, episode, conds, Options(template=template),
                           stopword_variant=stopword_variant)


#: Run (or resume) a representation-level ablation and return its tidy rows (the one runner).
run_ablation = run_config
