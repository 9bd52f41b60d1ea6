"""Template-variant files: the data classes of a variant (its numbered template pairs per task)
and the loader of ``data/variants/*.json`` (:mod:`icl_tokens.prompts.variants` applies them)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..tasks import TaskDefinitionError, data_root, parse_template

__all__ = ["ORIGINAL", "PAPER_VARIANTS", "TemplatePair", "VariantEntry", "Variant", "VariantError",
           "load_variants", "variants_dir"]

#: The task's own templates (Standard ICL).
ORIGINAL = "original"
#: The paper's variants, in the order of its tables.
PAPER_VARIANTS: tuple[str, ...] = ("swap", "randomfixed", "randomnonfixed")
_NAME = re.compile(r"[A-Za-z0-9_\-]+")
_FILE_HINT = "data/variants/ (variants.json, or a .json file of your own beside it)"


class VariantError(ValueError):
    """A bad variant name, template number or definition, or a variant missing for a task."""


@dataclass(frozen=True)
class TemplatePair:
    """``T_in`` and ``T_out`` of one demonstration (or of the test example)."""

    input_template: str
    output_template: str


@dataclass(frozen=True)
class VariantEntry:
    """The templates of one variant template for a group of tasks.

    Attributes:
        tasks: Task names the entry applies to.
        fixed: The templates of every demonstration and of the test example (or ``None``).
        rows: Per-demonstration templates, ``"1"`` … ``"n"`` and ``"t"`` (empty if ``fixed``).
        source: Where the strings come from (paper table, printed or inferred).
    """

    tasks: tuple[str, ...]
    fixed: TemplatePair | None
    rows: Mapping[str, TemplatePair]
    source: str = ""

    @property
    def n_rows(self) -> int:
        """Number of demonstration rows (0 for a fixed entry)."""
        return sum(1 for r in self.rows if r != "t")

    def demo(self, i: int) -> TemplatePair:
        """Templates of demonstration ``i`` (0-based)."""
        return self.fixed if self.fixed is not None else self.rows[str(i + 1)]

    @property
    def test(self) -> TemplatePair:
        """Templates of the test example."""
        return self.fixed if self.fixed is not None else self.rows["t"]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"tasks": list(self.tasks)}
        if self.source:
            d["source"] = self.source
        if self.fixed is not None:
            d.update(input_template=self.fixed.input_template,
                     output_template=self.fixed.output_template)
        else:
            d["rows"] = {r: {"input_template": p.input_template,
                             "output_template": p.output_template} for r, p in self.rows.items()}
        return d


def _pair(d: Any, where: str) -> TemplatePair:
    if not isinstance(d, Mapping) or set(d) - {"input_template", "output_template"} or not (
            isinstance(d.get("input_template"), str)
            and isinstance(d.get("output_template"), str)):
        raise VariantError(f"{where}: give input_template and output_template (strings), got "
                           f"{d!r}.")
    try:
        parse_template(d["input_template"])
        out = [p.value for p in parse_template(d["output_template"]) if p.kind == "field"]
    except TaskDefinitionError as e:
        raise VariantError(f"{where}: {e}") from None
    if out != ["label"]:
        raise VariantError(f"{where}: output_template {d['output_template']!r} must contain "
                           "exactly one placeholder, {label}.")
    return TemplatePair(d["input_template"], d["output_template"])


def _entry(d: Any, where: str) -> VariantEntry:
    if not isinstance(d, Mapping):
        raise VariantError(f"{where}: an entry is an object with tasks and templates, got {d!r}.")
    tasks = d.get("tasks")
    if (not isinstance(tasks, list) or not tasks
            or not all(isinstance(t, str) and t for t in tasks)):
        raise VariantError(f"{where}: 'tasks' must be a non-empty list of task names.")
    unknown = set(d) - {"tasks", "source", "input_template", "output_template", "rows"}
    if unknown:
        raise VariantError(f"{where}: unknown keys {sorted(unknown)}.")
    has_fixed = "input_template" in d or "output_template" in d
    if has_fixed == ("rows" in d):
        raise VariantError(f"{where}: give either input_template/output_template (every "
                           "demonstration and the test) or rows ('1'..'n' and 't'), not both or "
                           "neither.")
    source = str(d.get("source", ""))
    if has_fixed:
        pair = _pair({k: d.get(k) for k in ("input_template", "output_template")}, where)
        return VariantEntry(tuple(tasks), pair, {}, source)
    rows = d["rows"]
    if not isinstance(rows, Mapping):
        raise VariantError(f"{where}: rows must be an object {{'1': ..., 't': ...}}.")
    demo_rows = sorted((r for r in rows if r != "t"), key=lambda r: (not r.isdigit(), r))
    want = [str(i) for i in range(1, len(demo_rows) + 1)]
    if "t" not in rows or sorted(demo_rows) != sorted(want) or not demo_rows:
        raise VariantError(f"{where}: rows must be '1'..'n' (consecutive) and 't' (the test "
                           f"example), got {sorted(rows)}.")
    parsed = {r: _pair(rows[r], f"{where}, row {r}") for r in [*want, "t"]}
    return VariantEntry(tuple(tasks), None, parsed, source)


@dataclass(frozen=True)
class Variant:
    """A named set of numbered templates.

    Attributes:
        name: The variant's name (``swap``, ``randomfixed``, ...).
        templates: Template number → its entries (one per group of tasks).
        description, paper: Free text.
        origin: The file it was read from (empty when built in code).
    """

    name: str
    templates: Mapping[int, tuple[VariantEntry, ...]]
    description: str = ""
    paper: str = ""
    origin: str = ""

    @property
    def numbers(self) -> tuple[int, ...]:
        """The template numbers, ascending."""
        return tuple(sorted(self.templates))

    @property
    def tasks(self) -> tuple[str, ...]:
        """Tasks that every template of the variant covers."""
        covered = [{t for e in es for t in e.tasks} for es in self.templates.values()]
        common = set.intersection(*covered) if covered else set()
        return tuple(sorted(common))

    def entry(self, task: str, number: int) -> VariantEntry:
        """The entry of template ``number`` for ``task`` (clear error if there is none)."""
        if number not in self.templates:
            raise VariantError(f"variant {self.name!r} has no template {number}; its templates "
                               f"are {_numbers_text(self.numbers)}.")
        for e in self.templates[number]:
            if task in e.tasks:
                return e
        have = sorted({t for e in self.templates[number] for t in e.tasks})
        raise VariantError(
            f"variant {self.name!r} template {number} has no entry for task {task!r} (it covers "
            f"{have}); add {task!r} to an entry's tasks, or an entry of your own, in "
            f"{self.origin or _FILE_HINT}.")

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any], origin: str = "") -> "Variant":
        """Build (and validate) a variant from its JSON form."""
        where = f"variant {name!r}" + (f" in {origin}" if origin else "")
        if not _NAME.fullmatch(name) or name == ORIGINAL:
            raise VariantError(f"{where}: a variant name is letters, digits, '_' or '-' and not "
                               f"{ORIGINAL!r}.")
        if not isinstance(d, Mapping) or not isinstance(d.get("templates"), Mapping) or not (
                d["templates"]):
            raise VariantError(f"{where}: needs 'templates': {{'1': [entries], ...}}.")
        templates: dict[int, tuple[VariantEntry, ...]] = {}
        for key, entries in d["templates"].items():
            if not str(key).isdigit() or int(key) < 1:
                raise VariantError(f"{where}: template numbers are 1, 2, ..., got {key!r}.")
            if not isinstance(entries, list) or not entries:
                raise VariantError(f"{where}, template {key}: give a list of entries.")
            parsed = tuple(_entry(e, f"{where}, template {key}, entry {i + 1}")
                           for i, e in enumerate(entries))
            seen = [t for e in parsed for t in e.tasks]
            twice = sorted({t for t in seen if seen.count(t) > 1})
            if twice:
                raise VariantError(f"{where}, template {key}: tasks {twice} are in more than one "
                                   "entry.")
            templates[int(key)] = parsed
        return cls(name, templates, str(d.get("description", "")), str(d.get("paper", "")),
                   origin)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (as in ``data/variants/*.json``)."""
        return {"description": self.description, "paper": self.paper,
                "templates": {str(n): [e.to_dict() for e in self.templates[n]]
                              for n in self.numbers}}


def _numbers_text(numbers: Sequence[int]) -> str:
    return ", ".join(str(n) for n in numbers)


def variants_dir() -> Path:
    """The folder of variant files: ``data_root() / "variants"``."""
    return data_root() / "variants"


@lru_cache(maxsize=4)
def _load_cached(folder: str, stamps: tuple[tuple[str, int], ...]) -> dict[str, Variant]:
    out: dict[str, Variant] = {}
    for name, _ in stamps:
        path = Path(folder) / name
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise VariantError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(doc, Mapping) or not isinstance(doc.get("variants"), Mapping):
            raise VariantError(f"{path}: a variants file is {{\"variants\": {{name: ...}}}}.")
        for vname, vd in doc["variants"].items():
            if vname in out:
                raise VariantError(f"variant {vname!r} is defined in both {out[vname].origin} "
                                   f"and {path}; rename one of them.")
            out[vname] = Variant.from_dict(vname, vd, origin=str(path))
    return out


def load_variants(folder: str | Path | None = None) -> dict[str, Variant]:
    """Every variant of the ``*.json`` files in ``folder`` (default :func:`variants_dir`)."""
    root = Path(folder) if folder is not None else variants_dir()
    if not root.is_dir():
        raise FileNotFoundError(f"no variants folder {root}; it ships as data/variants/ in the "
                                "checkout (or set ICL_TOKENS_TASKS_DIR to a folder holding "
                                "variants/).")
    stamps = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(root.glob("*.json")))
    if not stamps:
        raise FileNotFoundError(f"{root} holds no variant .json file.")
    return dict(_load_cached(str(root), stamps))
