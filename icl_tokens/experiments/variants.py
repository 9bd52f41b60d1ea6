"""Lexical meaning, repetition and structural cues (paper §5.2, Tables 8-10; paper-spec E6-E8).

The prompts are built from template variants (:mod:`icl_tokens.prompts.variants`):

=====  =====================  ==========================================  ======================
table  setting                prompt (k demonstrations)                    condition
=====  =====================  ==========================================  ======================
8      Standard ICL           ``original``, k                              no mask (``icl``)
8      Swap                   ``swap``, k                                  no mask
8, 9   Randomfixed            ``randomfixed:1..5``, k                      no mask
9      Randomnonfixed         ``randomnonfixed:1..5``, k                   no mask
10     Randomfixed            ``randomfixed:1..5``, **one** demonstration  no mask
10     Zero-shot + TEMP       the same                                     ``+template``
10     Zero-shot + ":"        the same                                     ``+colon``
=====  =====================  ==========================================  ======================

``+template`` is the representation-level condition (the test example sees the random template
tokens, ``:`` and ``\\n``, plus the label words); ``+colon`` lets it see only the template colons
and the label words (``\\n`` hidden: paper-spec §10 #10). The one demonstration is the first of
the seed's k-shot draw. Beyond the paper, ``conditions`` runs every variant template under
representation-level conditions (which template tokens stay critical once their meaning or their
repetition is gone).

Each row's ``condition`` is its cell, ``"{template}|{condition}"`` (``"|k=1"`` appended for
Table 10), e.g. ``randomfixed:3|+colon|k=1``; the columns ``template`` and ``base_condition``
split it. A setting's accuracy is the mean over its templates and seeds (paper-spec §10 #24);
:func:`per_template_table` keeps every template's own accuracy, since the printed templates
repeat strings (paper-spec §10 #19).

    >>> [c.name for c in VariantsConfig(tables=(10,), numbers=(2,)).cells()]
    ['randomfixed:2|icl|k=1', 'randomfixed:2|+template|k=1', 'randomfixed:2|+colon|k=1']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..ablation.condition import Condition
from ..ablation.conditions import COLON_ONLY, REGISTRY, parse_conditions
from ..ablation.knockout import Knockout
from ..engine.items import Item
from ..episodes import Episode
from ..prompts.variants import (
    ORIGINAL,
    load_variants,
    template_specs,
    variant_templates,
)
from ..tasks import load_task
from .claims import Claim, Pattern
from .config import RunConfig
from .items import condition_items
from .runner import RunContext, run_config

__all__ = ["Cell", "Setting", "VariantsConfig", "SETTINGS", "TABLES", "COLON_ONLY",
           "VARIANT_COLUMNS", "colon_knockout", "variant_items", "run_variants", "PATTERNS"]

#: Columns the rows add (from the item's meta).
VARIANT_COLUMNS = ("template", "base_condition")
#: The paper's tables of this experiment.
TABLES: tuple[int, ...] = (8, 9, 10)
ONE_SHOT = 1


@dataclass(frozen=True)
class Setting:
    """A row of Tables 8-10: a variant, a condition and (Table 10) one demonstration."""

    table: int
    label: str
    variant: str
    condition: str = "icl"
    one_shot: bool = False


#: The paper's rows, in its order (``label`` as printed in ``data/reference``).
SETTINGS: tuple[Setting, ...] = (
    Setting(8, "Standard ICL", ORIGINAL),
    Setting(8, "Swap", "swap"),
    Setting(8, "Randomfixed", "randomfixed"),
    Setting(9, "Randomfixed", "randomfixed"),
    Setting(9, "Randomnonfixed", "randomnonfixed"),
    Setting(10, "Randomfixed", "randomfixed", "icl", True),
    Setting(10, "Zero-shot + TEMP", "randomfixed", "+template", True),
    Setting(10, 'Zero-shot + ":"', "randomfixed", COLON_ONLY, True),
)

_V = "variants"
#: Paper-spec §8 targets 6-7 (Tables 8-10), decided by :mod:`icl_tokens.analysis.verdicts`. A
#: cell is ``"<table>:<setting>"``; its value per (seed, example) is the mean over the
#: random-string templates run (:func:`setting_rows`).
PATTERNS: tuple[Pattern, ...] = (
    Pattern("6a", "Swap below Standard ICL", (8,), (
        Claim.between((_V, "8:Swap"), (_V, "8:Standard ICL"), "negative"),)),
    Pattern("6b", "Randomfixed below Standard ICL", (8,), (
        Claim.between((_V, "8:Randomfixed"), (_V, "8:Standard ICL"), "negative"),)),
    Pattern("6c", "Randomnonfixed below Randomfixed", (9,), (
        Claim.between((_V, "9:Randomnonfixed"), (_V, "9:Randomfixed"), "negative"),)),
    Pattern("7", 'one-shot Randomfixed: Zero-shot + TEMP above Zero-shot + ":"', (10,), (
        Claim.between((_V, "10:Zero-shot + TEMP"), (_V, '10:Zero-shot + ":"'), "positive"),)),
)


@dataclass(frozen=True)
class Cell:
    """One prompt template × condition × shots: a ``condition`` value of the rows."""

    template: str
    condition: str
    one_shot: bool = False

    @property
    def name(self) -> str:
        return f"{self.template}|{self.condition}" + (f"|k={ONE_SHOT}" if self.one_shot else "")

    @classmethod
    def from_name(cls, name: str) -> "Cell":
        """The cell a row's ``condition`` names (the inverse of :attr:`name`)."""
        parts = str(name).split("|")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != f"k={ONE_SHOT}"):
            raise ValueError(f"{name!r} is not a template-variant cell "
                             "('<template>|<condition>[|k=1]').")
        return cls(parts[0], parts[1], len(parts) == 3)

    def as_condition(self) -> Condition:
        """The cell as a condition: its base condition's knockout (or zero-shot prompt) on the
        cell's template, with one demonstration for Table 10; rows carry ``base_condition``."""
        base = REGISTRY.get(self.condition)
        shots = ONE_SHOT if self.one_shot else base.shots
        return base.with_name(self.name, template=self.template, shots=shots,
                              meta=(("base_condition", self.condition),))


def colon_knockout() -> Knockout:
    """Table 10's "Zero-shot + ':'": the test example (and every generated token) sees, of the
    demonstrations, only the template colons and the label words (newlines hidden)."""
    ko = REGISTRY.get(COLON_ONLY).knockout
    assert ko is not None
    return ko


def _specs(variant: str, numbers: Sequence[int]) -> list[str]:
    specs = template_specs(variant)
    if len(specs) == 1:
        return specs
    return [f"{variant}:{n}" for n in numbers]


@dataclass
class VariantsConfig(RunConfig):
    """Arguments of a template-variants run (Tables 8-10 and the extension).

    Attributes:
        tables: Which of Tables 8, 9, 10 to run.
        numbers: The random-string templates to run (default all five).
        conditions: Beyond the paper: every variant template (``original``, ``swap``, the
            ``randomfixed`` and ``randomnonfixed`` ones) under these representation-level
            conditions, with ``k`` demonstrations.
    """

    level = "variants"
    namespace = "representation"

    tables: tuple[int, ...] = TABLES
    numbers: tuple[int, ...] = (1, 2, 3, 4, 5)
    conditions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        self.tables = tuple(dict.fromkeys(int(t) for t in self.tables))
        bad = [t for t in self.tables if t not in TABLES]
        if bad:
            raise ValueError(f"tables {bad} are not variant tables; choose from {list(TABLES)}.")
        self.numbers = tuple(int(n) for n in self.numbers)
        if not self.numbers or len(set(self.numbers)) != len(self.numbers):
            raise ValueError(f"numbers {list(self.numbers)}: give each template number once.")
        known = load_variants()
        for v in ("randomfixed", "randomnonfixed"):
            missing = [n for n in self.numbers if n not in known[v].templates]
            if missing:
                raise ValueError(f"variant {v!r} has no templates {missing}; its templates are "
                                 f"{list(known[v].numbers)}.")
        self.conditions = (tuple(parse_conditions(list(self.conditions)))
                           if self.conditions else ())
        if not self.tables and not self.conditions:
            raise ValueError("nothing to run: give tables and/or conditions.")
        if self.k < 1:
            raise ValueError("k=0 leaves no demonstrations; template variants need k >= 1.")

    def cells(self) -> list[Cell]:
        """Every cell to run, without repeats (Tables 8 and 9 share Randomfixed)."""
        out: dict[str, Cell] = {}
        for s in SETTINGS:
            if s.table in self.tables:
                for spec in _specs(s.variant, self.numbers):
                    c = Cell(spec, s.condition, s.one_shot)
                    out.setdefault(c.name, c)
        for v in ([ORIGINAL, *load_variants()] if self.conditions else []):
            for spec in _specs(v, self.numbers):
                for cond in self.conditions:
                    c = Cell(spec, cond)
                    out.setdefault(c.name, c)
        return list(out.values())

    def templates(self) -> list[str]:
        """The template specs the cells use."""
        return list(dict.fromkeys(c.template for c in self.cells()))

    def condition_names(self) -> list[str]:
        return [c.name for c in self.cells()]

    def condition_objects(self) -> list[Condition]:
        return [c.as_condition() for c in self.cells()]

    def extra_columns(self) -> tuple[str, ...]:
        return VARIANT_COLUMNS

    def prepare(self) -> None:
        """Every template applied to the task (enough rows for its demonstrations)."""
        task = load_task(self.task)
        for c in self.cells():
            variant_templates(task, c.template).demo_tasks(ONE_SHOT if c.one_shot else self.k)

    def sidecar_meta(self) -> dict[str, Any]:
        task = load_task(self.task)
        return {"templates_sha256": {s: variant_templates(task, s).sha256()
                                     for s in self.templates()}}


def variant_items(ctx: RunContext, episode: Episode, cells: Sequence[Cell], *,
                  stopword_variant: str = "paper") -> list[Item]:
    """One item per (test example, cell); a template's items share its demonstration prefix
    (one prefix per seed, template and number of demonstrations)."""
    return condition_items(ctx.task, ctx.tokenizer, ctx.labels, episode,
                           [c.as_condition() for c in cells], stopword_variant=stopword_variant)


#: Run (or resume) the template-variant cells and return their tidy rows (the one runner;
#: every template is applied to the task before any output is created).
run_variants = run_config
