"""Template variants as data: ``swap``, ``randomfixed``, ``randomnonfixed`` (paper §5.2, App. D).

The variants live in ``data/variants/*.json`` (found through :func:`icl_tokens.tasks.data_root`,
like the tasks; the paper's are in ``variants.json``, transcribed from paper-spec E6 and §6.1
exactly as printed, irregularities included). A variant has numbered templates; a template lists
entries for groups of tasks, each either

* ``input_template`` / ``output_template``: the same ``T_in`` / ``T_out`` for every demonstration
  and the test example (``swap``, ``randomfixed``), or
* ``rows``: ``"1"`` … ``"n"`` for demonstrations 1 … n and ``"t"`` for the test example
  (``randomnonfixed``; with k < n demonstrations, rows 1 … k are used).

Templates use the task's placeholders (``{text}``; ``{hypothesis}``/``{premise}`` for RTE/CB)
and ``{label}``, as in ``data/tasks/*.json``. A template spec names one: ``original`` (the task's
own templates), ``swap`` (it has one template), ``randomfixed:3``, ``randomnonfixed:1``.

    >>> from icl_tokens.tasks import Example, load_task
    >>> vt = variant_templates(load_task("sst2"), "randomfixed:1")
    >>> vt.task.output_prefix
    'reqwiorewsdafjl:'
    >>> demo = Example("d", {"text": "a fine film ."}, "1")
    >>> p = vt.build([demo], Example("t", {"text": "dull ."}, "0"))
    >>> print(p.text.split("\\n\\n", 1)[1])
    dsafjkldafdsajk: a fine film .
    reqwiorewsdafjl: Positive
    <BLANKLINE>
    dsafjkldafdsajk: dull .
    reqwiorewsdafjl:

The random strings are template words: :func:`icl_tokens.categorize.categorize` gives them the
category ``template`` and roles such as ``demo_1.t_in.word``; ``:`` and the newlines are template
colons and newlines as usual; the instruction is unchanged (paper-spec §10 #25).

**Your own variant**: put a ``.json`` file with ``{"variants": {"myvariant": {"description":
..., "templates": {"1": [{"tasks": ["sst2"], "input_template": "Text: {text}\\n",
"output_template": "Mood: {label}\\n\\n"}]}}}}`` into ``data/variants/`` (or into the
``variants/`` folder of ``$ICL_TOKENS_TASKS_DIR``), then use ``--template myvariant``; or build a
:class:`Variant` with :meth:`Variant.from_dict` and pass ``variants=`` to
:func:`variant_templates`. Variant names must be unique across the files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..tasks import Example, TaskDefinitionError, TaskSpec
from .build import Prompt, build_prompt
from .variant_files import (
    _FILE_HINT,
    ORIGINAL,
    PAPER_VARIANTS,
    TemplatePair,
    Variant,
    VariantEntry,
    VariantError,
    _numbers_text,
    load_variants,
    variants_dir,
)

__all__ = [
    "ORIGINAL",
    "PAPER_VARIANTS",
    "TemplatePair",
    "VariantEntry",
    "Variant",
    "VariantTemplates",
    "VariantError",
    "load_variants",
    "parse_template_spec",
    "template_specs",
    "variant_templates",
    "variants_dir",
]

def _variants(variants: Mapping[str, Variant] | None) -> Mapping[str, Variant]:
    return load_variants() if variants is None else variants


def parse_template_spec(spec: str, variants: Mapping[str, Variant] | None = None
                        ) -> tuple[str, int]:
    """``"randomfixed:3"`` → ``("randomfixed", 3)``; ``"swap"`` → ``("swap", 1)`` (a variant
    with one template); ``"original"`` → ``("original", 1)``.

    Raises:
        VariantError: Unknown variant, a number that is not one of the variant's templates, or
            no number for a variant with several templates.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise VariantError(f"empty template spec {spec!r}; use original, swap, randomfixed:N "
                           "or randomnonfixed:N.")
    name, sep, num = spec.strip().partition(":")
    if name == ORIGINAL:
        if sep and num != "1":
            raise VariantError(f"{spec!r}: 'original' (the task's own templates) has no "
                               "numbered templates; write --template original.")
        return ORIGINAL, 1
    known = _variants(variants)
    if name not in known:
        raise VariantError(f"unknown template variant {name!r}; choose from "
                           f"{[ORIGINAL, *known]} (add your own in {_FILE_HINT}).")
    v = known[name]
    if not sep:
        if len(v.numbers) == 1:
            return name, v.numbers[0]
        raise VariantError(f"variant {name!r} has templates {_numbers_text(v.numbers)}; name "
                           f"one, e.g. {name}:{v.numbers[0]}.")
    if not num.isdigit():
        raise VariantError(f"{spec!r}: the template number must be an integer, one of "
                           f"{_numbers_text(v.numbers)} (e.g. {name}:{v.numbers[0]}).")
    if int(num) not in v.templates:
        raise VariantError(f"{spec!r}: variant {name!r} has no template {int(num)}; its "
                           f"templates are {_numbers_text(v.numbers)}.")
    return name, int(num)


def template_specs(variant: str, variants: Mapping[str, Variant] | None = None) -> list[str]:
    """Every template spec of a variant: ``["randomfixed:1", ..., "randomfixed:5"]``;
    ``["original"]`` and ``["swap"]`` for single-template ones."""
    if variant == ORIGINAL:
        return [ORIGINAL]
    known = _variants(variants)
    if variant not in known:
        raise VariantError(f"unknown template variant {variant!r}; choose from "
                           f"{[ORIGINAL, *known]}.")
    v = known[variant]
    return [variant] if len(v.numbers) == 1 else [f"{variant}:{n}" for n in v.numbers]


@dataclass(frozen=True)
class VariantTemplates:
    """A task under one variant template: what formats each demonstration and the test.

    Attributes:
        spec: The canonical template spec (``"original"``, ``"swap"``, ``"randomfixed:1"``).
        task: The task with the test example's templates (its :attr:`TaskSpec.output_prefix`
            ends the prompt); it also formats every demonstration unless ``rows`` is set.
        rows: Per-demonstration tasks (``randomnonfixed``): row i formats demonstration i.
        entry: The variant entry used (``None`` for ``original``).
    """

    spec: str
    task: TaskSpec
    rows: tuple[TaskSpec, ...] = ()
    entry: VariantEntry | None = None

    def demo_tasks(self, k: int) -> list[TaskSpec] | None:
        """The tasks formatting ``k`` demonstrations (``None``: :attr:`task` for all)."""
        if not self.rows:
            return None
        if k > len(self.rows):
            raise VariantError(
                f"template {self.spec!r} has rows for demonstrations 1-{len(self.rows)} only; "
                f"k={k} needs a row for each demonstration (use k <= {len(self.rows)}, or add "
                f"rows in {_FILE_HINT}).")
        return list(self.rows[:k])

    def build(self, demos: Sequence[Example], test: Example, **kw: Any) -> Prompt:
        """:func:`~icl_tokens.prompts.build_prompt` with this template (``kw`` passed on)."""
        return build_prompt(self.task, demos, test, demo_tasks=self.demo_tasks(len(demos)), **kw)

    def sha256(self) -> str:
        """Hash of the templates used (the run identity of a variant run)."""
        blob = json.dumps({"spec": self.spec, "entry": self.entry.to_dict() if self.entry
                           else None}, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()


def _apply(task: TaskSpec, pair: TemplatePair, where: str) -> TaskSpec:
    try:
        out = task.with_templates(pair.input_template, pair.output_template)
    except TaskDefinitionError as e:
        raise VariantError(f"{where}: {e}") from None
    if tuple(out.input_fields) != tuple(task.input_fields):
        raise VariantError(
            f"{where}: input_template {pair.input_template!r} has the fields "
            f"{list(out.input_fields)}, but task {task.name!r} has {list(task.input_fields)} (in "
            "this order); fix the entry's placeholders.")
    return out


def variant_templates(task: TaskSpec, spec: str,
                      variants: Mapping[str, Variant] | None = None) -> VariantTemplates:
    """Apply a template spec (``"original"``, ``"swap"``, ``"randomfixed:3"``, ...) to a task.

    Raises:
        VariantError: Bad spec, or the variant has no entry for the task, or its templates do
            not fit the task's input fields.
    """
    name, number = parse_template_spec(spec, variants)
    if name == ORIGINAL:
        return VariantTemplates(ORIGINAL, task)
    v = _variants(variants)[name]
    canonical = name if len(v.numbers) == 1 else f"{name}:{number}"
    entry = v.entry(task.name, number)
    where = f"variant {canonical!r} for task {task.name!r}"
    test = _apply(task, entry.test, where + " (test)")
    rows = tuple(_apply(task, entry.demo(i), f"{where} (row {i + 1})")
                 for i in range(entry.n_rows))
    return VariantTemplates(canonical, test, rows, entry)
