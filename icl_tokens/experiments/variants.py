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

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from ..ablation.conditions import ZERO_SHOT, knockout_for, parse_conditions
from ..ablation.knockout import Block, Knockout
from ..ablation.selection import Sel
from ..engine.items import Item, LabelSet
from ..episodes import Episode
from ..prompts.variants import (
    ORIGINAL,
    VariantTemplates,
    load_variants,
    template_specs,
    variant_templates,
)
from ..tasks import load_task
from .claims import Claim, Pattern
from .config import RunConfig
from .representation import prompt_item
from .runner import RunContext, run_experiment

__all__ = ["Cell", "Setting", "VariantsConfig", "SETTINGS", "TABLES", "COLON_ONLY",
           "VARIANT_COLUMNS", "colon_knockout", "variant_items", "run_variants",
           "setting_accuracy", "variant_table", "per_template_table", "paper_variant_table",
           "variant_pattern_checks", "PATTERNS", "setting_rows"]

#: Table 10's "Zero-shot + ':'": only the template colons and the label words visible.
COLON_ONLY = "+colon"
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


def colon_knockout() -> Knockout:
    """Table 10's "Zero-shot + ':'": the test example (and every generated token) sees, of the
    demonstrations, only the template colons and the label words (newlines hidden)."""
    visible = Sel.role("demo_*.t_in.colon", "demo_*.t_out.colon") | Sel.category("label")
    return Knockout((Block(Sel.test(), Sel.part("demo") & ~visible),), name=COLON_ONLY)


def _knockout(condition: str) -> Knockout | None:
    if condition == COLON_ONLY:
        return colon_knockout()
    ko = knockout_for(condition)
    return ko if ko.blocks else None


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


def variant_items(ctx: RunContext, episode: Episode, cells: Sequence[Cell],
                  templates: dict[str, VariantTemplates], labels: dict[str, LabelSet], *,
                  stopword_variant: str = "paper") -> list[Item]:
    """One item per (test example, cell); a template's items share its demonstration prefix
    (one prefix per seed, template and number of demonstrations)."""
    items: list[Item] = []
    one = dataclasses.replace(episode, k=ONE_SHOT, demos=episode.demos[:ONE_SHOT])
    for test in episode.tests:
        base: dict[tuple[str, bool], Item] = {}
        for cell in cells:
            vt, lab = templates[cell.template], labels[cell.template]
            ep = one if cell.one_shot else episode
            if cell.condition == ZERO_SHOT:
                it = prompt_item(ctx.task, ctx.tokenizer, lab, ep, test, demos=False,
                                 stopword_variant=stopword_variant, template=vt)
            else:
                key = (cell.template, cell.one_shot)
                if key not in base:
                    base[key] = prompt_item(ctx.task, ctx.tokenizer, lab, ep, test,
                                            stopword_variant=stopword_variant, template=vt)
                it = base[key]
            it = it.with_knockout(None if cell.condition == ZERO_SHOT
                                  else _knockout(cell.condition), cell.name)
            items.append(dataclasses.replace(
                it, meta={**it.meta, "base_condition": cell.condition}))
    return items


def run_variants(
    cfg: VariantsConfig, *, model: Any = None, tokenizer: Any = None,
    out: str | Path | None = None, progress: bool = True,
    log: Callable[[str], None] | None = None, meta: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Run (or resume) the template-variant cells and return their tidy rows.

    Every template is applied to the task before any output is created, so a variant missing
    for the task (or a randomnonfixed template with fewer rows than ``k``) fails first.
    """
    task = load_task(cfg.task)
    cells = cfg.cells()
    templates = {spec: variant_templates(task, spec) for spec in cfg.templates()}
    for c in cells:
        templates[c.template].demo_tasks(ONE_SHOT if c.one_shot else cfg.k)
    labels: dict[str, LabelSet] = {}

    def build(ctx: RunContext, ep: Episode) -> list[Item]:
        if not labels:
            labels.update({s: LabelSet.for_task(vt.task, ctx.tokenizer)
                           for s, vt in templates.items()})
        return variant_items(ctx, ep, cells, templates, labels,
                             stopword_variant=cfg.stopword_variant)

    sidecar = {**(meta or {}), "templates_sha256": {s: vt.sha256()
                                                    for s, vt in templates.items()}}
    return run_experiment(cfg, build, [c.name for c in cells], model=model, tokenizer=tokenizer,
                          out=out, progress=progress, meta=sidecar,
                          extra_columns=VARIANT_COLUMNS, log=log)


# ------------------------------------------------------------------------------ tables
def _parse_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows with ``variant``, ``number`` and ``one_shot`` parsed from the cell names."""
    out = df.copy()
    spec = out["template"].astype(str)
    out["variant"] = spec.str.split(":").str[0]
    out["number"] = spec.map(lambda s: int(s.split(":")[1]) if ":" in s else 1)
    out["one_shot"] = out["condition"].astype(str).str.endswith(f"|k={ONE_SHOT}")
    return out


def setting_rows(df: pd.DataFrame, metric: str = "correct") -> pd.DataFrame:
    """One row per (model, task, seed, example, setting) of every table present: ``condition``
    is ``"<table>:<setting>"`` and ``metric`` the mean over the setting's templates (a 0/1
    column becomes a share). The cells of :data:`PATTERNS`."""
    rows = _parse_rows(df)
    parts = []
    for s in SETTINGS:
        sel = rows[(rows["variant"] == s.variant) & (rows["base_condition"] == s.condition)
                   & (rows["one_shot"] == s.one_shot)]
        if sel.empty:
            continue
        g = sel.groupby(["model", "task", "seed", "example_id"], sort=False)[metric].mean()
        part = g.reset_index()
        part.insert(4, "condition", f"{s.table}:{s.label}")
        parts.append(part)
    if not parts:
        raise ValueError("no rows of Tables 8-10 in these results.")
    return pd.concat(parts, ignore_index=True)


def setting_accuracy(df: pd.DataFrame, table: int, metric: str = "correct") -> pd.DataFrame:
    """Accuracy (%) per (model, task, setting, template number, seed) of one table.

    Returns columns ``model, task, setting, number, seed, accuracy, n`` (``setting`` as the paper
    prints it); settings with no rows are absent.
    """
    rows = _parse_rows(df)
    parts = []
    for s in (s for s in SETTINGS if s.table == table):
        sel = rows[(rows["variant"] == s.variant) & (rows["base_condition"] == s.condition)
                   & (rows["one_shot"] == s.one_shot)]
        if sel.empty:
            continue
        g = sel.groupby(["model", "task", "number", "seed"], sort=False)[metric]
        acc = g.mean().mul(100).rename("accuracy").reset_index()
        acc["n"] = g.size().values
        acc.insert(2, "setting", s.label)
        parts.append(acc)
    if not parts:
        raise ValueError(f"no rows of Table {table} in these results; run it with tables "
                         f"including {table}.")
    return pd.concat(parts, ignore_index=True)


def variant_table(df: pd.DataFrame, table: int, metric: str = "correct") -> pd.DataFrame:
    """Mean and std of accuracy over templates × seeds per (model, task, setting).

    The layout of :func:`icl_tokens.analysis.tables.accuracy_table` (the setting is in
    ``condition``), so :func:`~icl_tokens.analysis.tables.format_accuracy_table` prints it.
    """
    acc = setting_accuracy(df, table, metric)
    g = acc.groupby(["model", "task", "setting"], sort=False)["accuracy"]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1).fillna(0.0),
                        "n_seeds": g.size()}).reset_index()
    return out.rename(columns={"setting": "condition"})


def per_template_table(df: pd.DataFrame, table: int, metric: str = "correct") -> pd.DataFrame:
    """Accuracy (%) per template: rows (setting, template number), columns tasks; the mean over
    seeds (one model)."""
    acc = setting_accuracy(df, table, metric)
    wide = (acc.groupby(["setting", "number", "task"], sort=False)["accuracy"].mean()
            .unstack("task"))
    order = [s.label for s in SETTINGS if s.table == table]
    wide = wide.reindex(sorted(wide.index, key=lambda i: (order.index(i[0]), i[1])))
    return wide.reindex(columns=list(dict.fromkeys(acc["task"])))


def paper_variant_table(table: int, model: str = "Llama-7B",
                        tasks: Sequence[str] | None = None) -> pd.DataFrame:
    """The paper's Table 8, 9 or 10 for one model: settings × tasks."""
    from ..reference import PAPER_TASK_ORDER, paper_values

    if table not in TABLES:
        raise ValueError(f"Table {table} is not a variant table; choose from {list(TABLES)}.")
    vals = paper_values(table, model)
    wide = vals.pivot(index="setting", columns="task", values="value")
    order = [s.label for s in SETTINGS if s.table == table]
    return wide.reindex(index=order, columns=list(tasks or PAPER_TASK_ORDER))


def _avg(means: pd.DataFrame | pd.Series, label: str) -> float:
    return float(means.loc[label].mean()) if label in means.index else float("nan")


def variant_pattern_checks(tables: dict[int, pd.DataFrame]) -> dict[str, str]:
    """Paper-spec §8 targets 6 and 7 on point values (e.g. the paper's printed tables, which
    have no rows to test), from the one declaration of each (:data:`PATTERNS`); our rows get a
    three-state verdict with an interval: :func:`icl_tokens.analysis.verdicts.verdicts`.

    Args:
        tables: Table number → settings × tasks means (ours: the ``mean`` of
            :func:`variant_table` pivoted; the paper's: :func:`paper_variant_table`). Each check
            compares the averages over the tasks present; a check whose table is absent is left
            out.
    """
    def mean_of(_: str, cell: str) -> float | None:
        table, label = cell.split(":", 1)
        t = tables.get(int(table))
        return _avg(t, label) if t is not None and label in t.index else None

    out = {p.title: p.point_check(mean_of) for p in PATTERNS}
    return {k: v for k, v in out.items() if v}


def _complete(df: pd.DataFrame, table: int) -> bool:
    """Whether the rows hold every setting of ``table``."""
    try:
        have = set(setting_accuracy(df, table)["setting"])
    except ValueError:
        return False
    return have == {s.label for s in SETTINGS if s.table == table}
