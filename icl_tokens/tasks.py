"""Task specifications as data: instruction, templates, label words, stopword lists.

The six paper tasks live in ``data/tasks/<name>.json`` (paper Tables 11 and 12). A new task is a
few lines::

    >>> from icl_tokens.tasks import TaskSpec
    >>> spec = TaskSpec(
    ...     name="toy", instruction="Classify the sentences into Yes and No.",
    ...     input_template="Sentence: {text}\\n", output_template="Answer: {label}\\n\\n",
    ...     label_words=("Yes", "No"), label_map={"1": "Yes", "0": "No"},
    ...     stopwords=("the", ".", "\\n"))
    >>> spec.output_prefix
    'Answer:'

Every definition is validated on construction; a bad one raises :class:`TaskDefinitionError`
naming the problem and the fix.
"""

from __future__ import annotations

import json
import os
import re
import string
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = [
    "Example", "TaskSpec", "TaskDefinitionError", "TemplatePiece", "PAPER_TASKS",
    "STOPWORD_VARIANTS", "data_root", "load_task", "list_tasks", "nltk_stopwords",
    "read_task_file",
]

#: The paper's six tasks, in the column order of its tables.
PAPER_TASKS: tuple[str, ...] = ("agnews", "sst2", "trec", "dbpedia", "rte", "cb")
STOPWORD_VARIANTS: tuple[str, ...] = ("paper", "nltk")

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TaskDefinitionError(ValueError):
    """A task definition is invalid (missing placeholder, duplicate label word, ...)."""


@dataclass(frozen=True)
class Example:
    """One dataset row.

    Args:
        id: Stable identifier, e.g. ``"test:17"`` (split name and row index in the source).
        inputs: Field name to text, e.g. ``{"text": ...}`` or
            ``{"hypothesis": ..., "premise": ...}``.
        label: The raw dataset label as a string (``"1"``, ``"entailment"``, ``"NUM"``, ...).
    """

    id: str
    inputs: Mapping[str, str]
    label: str


@dataclass(frozen=True)
class TemplatePiece:
    """A piece of a template: ``kind`` is ``"literal"`` (text) or ``"field"`` (a placeholder)."""

    kind: str
    value: str


ENV_TASKS_DIR = "ICL_TOKENS_TASKS_DIR"


def _checkout_data(package_dir: Path) -> Path | None:
    """``<checkout>/data`` when the package runs from its source checkout (editable install).

    The checkout is recognised by ``pyproject.toml`` next to ``data/tasks``, so a stray ``data/``
    folder next to an installed package (e.g. in ``site-packages``) is never taken for it.
    """
    top = package_dir.parent
    root = top / "data"
    return root if (root / "tasks").is_dir() and (top / "pyproject.toml").is_file() else None


def _packaged_data(package_dir: Path) -> Path | None:
    """``icl_tokens/_data``: the copy of ``data/`` that a wheel or ``pip install .`` ships."""
    root = package_dir / "_data"
    return root if (root / "tasks").is_dir() else None


def data_root() -> Path:
    """Folder holding ``tasks/``, ``stopwords/`` and ``reference/``.

    Looked up in this order:

    1. ``$ICL_TOKENS_TASKS_DIR`` when set (it must hold ``tasks/``);
    2. the source checkout's ``data/`` (editable install, or running from the checkout);
    3. ``icl_tokens/_data``, the copy of ``data/`` packaged into a wheel at build time.

    Raises:
        FileNotFoundError: None of them holds ``tasks/``; the message lists where it looked.
    """
    env = os.environ.get(ENV_TASKS_DIR)
    if env:
        root = Path(env)
        if not (root / "tasks").is_dir():
            raise FileNotFoundError(
                f"${ENV_TASKS_DIR}={env!r} has no tasks/ folder; point it at a folder with "
                "tasks/, stopwords/ and reference/ (like the repository's data/), or unset it to "
                "use the task definitions installed with icl_tokens.")
        return root
    package_dir = Path(__file__).resolve().parent
    root = _checkout_data(package_dir) or _packaged_data(package_dir)
    if root is None:
        raise FileNotFoundError(
            f"task definitions not found: neither {package_dir.parent / 'data' / 'tasks'} (source "
            f"checkout) nor {package_dir / '_data' / 'tasks'} (installed package) exists. "
            "Reinstall icl_tokens (`pip install .` or a wheel built from the repository ships "
            f"them; `pip install -e .` uses the checkout's data/), or set {ENV_TASKS_DIR} to a "
            "folder with tasks/, stopwords/ and reference/.")
    return root


def nltk_stopwords() -> tuple[str, ...]:
    """The NLTK variant (paper Appendix B): 127 NLTK words + ``string.punctuation`` + ``\\n``."""
    path = data_root() / "stopwords" / "nltk.txt"
    words = [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return tuple(words) + tuple(string.punctuation) + ("\n",)


def parse_template(template: str) -> tuple[TemplatePiece, ...]:
    """Split ``"Review: {text}\\n"`` into literal and field pieces (no format-spec support)."""
    pieces: list[TemplatePiece] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(template):
        if m.start() > pos:
            pieces.append(TemplatePiece("literal", template[pos : m.start()]))
        pieces.append(TemplatePiece("field", m.group(1)))
        pos = m.end()
    if pos < len(template):
        pieces.append(TemplatePiece("literal", template[pos:]))
    stray = [p.value for p in pieces if p.kind == "literal" and ("{" in p.value or "}" in p.value)]
    if stray:
        raise TaskDefinitionError(
            f"template {template!r} has a brace that is not a placeholder ({stray[0]!r}); "
            "placeholders look like {text} (letters, digits, underscore).")
    return tuple(pieces)


@dataclass(frozen=True)
class TaskSpec:
    """A classification task in the paper's prompt format.

    Args:
        name: Short identifier.
        instruction: The task instruction ``I`` (``instruction_suffix`` is appended).
        input_template: ``T_in`` with one ``{field}`` per input field, e.g. ``"Review: {text}\\n"``.
        output_template: ``T_out`` with exactly one ``{label}``,
            e.g. ``"Sentiment: {label}\\n\\n"``.
        label_words: The verbalizers, unique.
        label_map: Raw dataset label (as a string) to label word.
        stopwords: The task's stopword list (paper Table 12): words (matched case-insensitively,
            whole words) and punctuation characters; ``"\\n"`` marks newlines as stopwords.
        input_fields: Field names in template order; derived from ``input_template`` if empty.
        instruction_suffix: Separator after the instruction (``"\\n\\n"`` in the paper).
        description: Free text.
    """

    name: str
    instruction: str
    input_template: str
    output_template: str
    label_words: tuple[str, ...]
    label_map: Mapping[str, str]
    stopwords: tuple[str, ...]
    input_fields: tuple[str, ...] = ()
    instruction_suffix: str = "\n\n"
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_words", tuple(self.label_words))
        object.__setattr__(self, "stopwords", tuple(self.stopwords))
        object.__setattr__(self, "label_map", {str(k): v for k, v in dict(self.label_map).items()})
        in_fields = tuple(p.value for p in self.input_pieces if p.kind == "field")
        object.__setattr__(self, "input_fields", tuple(self.input_fields) or in_fields)
        self._validate(in_fields)

    def _validate(self, in_fields: tuple[str, ...]) -> None:
        where = f"task {self.name!r}"
        if not self.name or not re.fullmatch(r"[A-Za-z0-9_\-]+", self.name):
            raise TaskDefinitionError(f"{where}: name must be letters, digits, '_' or '-'.")
        if not in_fields:
            raise TaskDefinitionError(
                f"{where}: input_template {self.input_template!r} has no placeholder; add one, "
                "e.g. 'Review: {text}\\n'.")
        if len(set(in_fields)) != len(in_fields):
            raise TaskDefinitionError(
                f"{where}: input_template repeats a placeholder: {in_fields}.")
        if "label" in in_fields:
            raise TaskDefinitionError(
                f"{where}: input_template may not use {{label}}; it belongs in output_template.")
        if set(self.input_fields) != set(in_fields):
            raise TaskDefinitionError(
                f"{where}: input_fields {self.input_fields} do not match the placeholders of "
                f"input_template {in_fields}.")
        out_fields = [p.value for p in self.output_pieces if p.kind == "field"]
        if out_fields != ["label"]:
            raise TaskDefinitionError(
                f"{where}: output_template {self.output_template!r} must contain exactly one "
                f"placeholder, {{label}} (found {out_fields}); e.g. 'Answer: {{label}}\\n\\n'.")
        if not self.output_prefix:
            raise TaskDefinitionError(
                f"{where}: output_template must have text before {{label}} (e.g. 'Answer:'), "
                "which ends the test prompt.")
        if not self.label_words:
            raise TaskDefinitionError(f"{where}: label_words is empty.")
        bad = [w for w in self.label_words
               if not isinstance(w, str) or not w or any(c.isspace() for c in w)]
        if bad:
            raise TaskDefinitionError(
                f"{where}: label words must be single words without whitespace (strings): {bad!r}.")
        dupes = sorted({w for w in self.label_words if self.label_words.count(w) > 1})
        if dupes:
            raise TaskDefinitionError(f"{where}: duplicate label words {dupes}; make them unique.")
        unknown = sorted(set(self.label_map.values()) - set(self.label_words))
        if unknown:
            raise TaskDefinitionError(
                f"{where}: label_map maps to {unknown}, which are not in label_words "
                f"{list(self.label_words)}.")
        unused = [w for w in self.label_words if w not in set(self.label_map.values())]
        if unused:
            raise TaskDefinitionError(
                f"{where}: label words {unused} have no dataset label in label_map.")
        if not self.stopwords:
            raise TaskDefinitionError(f"{where}: stopwords is empty; give the task's list.")
        for w in self.stopwords:
            if not isinstance(w, str) or not w or (w != "\n" and any(c.isspace() for c in w)):
                raise TaskDefinitionError(
                    f"{where}: stopword {w!r} is not a single word, punctuation mark or '\\n'.")

    # ----------------------------------------------------------------------------- derived
    @property
    def input_pieces(self) -> tuple[TemplatePiece, ...]:
        """``input_template`` split into literal and field pieces."""
        return parse_template(self.input_template)

    @property
    def output_pieces(self) -> tuple[TemplatePiece, ...]:
        """``output_template`` split into literal and field pieces."""
        return parse_template(self.output_template)

    @property
    def output_prefix(self) -> str:
        """``prefix(T_out)``: the output template up to ``{label}``, trailing whitespace removed.

        The test prompt ends with it, e.g. ``"Sentiment:"``; the model continues with the label.
        """
        before = self.output_template.split("{label}", 1)[0]
        return before.rstrip()

    @property
    def label_separator(self) -> str:
        """What stands between :attr:`output_prefix` and the label (``" "`` in the paper)."""
        before = self.output_template.split("{label}", 1)[0]
        return before[len(before.rstrip()) :]

    @property
    def output_suffix(self) -> str:
        """What follows the label in a demonstration (``"\\n\\n"`` in the paper)."""
        return self.output_template.split("{label}", 1)[1]

    def label_word(self, raw_label: str) -> str:
        """Map a raw dataset label to its label word (clear error for an unknown label)."""
        try:
            return self.label_map[str(raw_label)]
        except KeyError:
            raise ValueError(
                f"task {self.name!r}: dataset label {raw_label!r} is not in label_map "
                f"{sorted(self.label_map)}.") from None

    def stopword_list(self, variant: str = "paper") -> tuple[str, ...]:
        """The stopword list of ``variant``: ``"paper"`` (Table 12) or ``"nltk"`` (Appendix B)."""
        if variant == "paper":
            return self.stopwords
        if variant == "nltk":
            return nltk_stopwords()
        raise ValueError(
            f"unknown stopword variant {variant!r}; choose one of {list(STOPWORD_VARIANTS)}.")

    def with_templates(
        self, input_template: str | None = None, output_template: str | None = None, **kw: Any
    ) -> "TaskSpec":
        """A copy with other templates (e.g. RTE without the space before ``Premise``)."""
        inp = self.input_template if input_template is None else input_template
        out = self.output_template if output_template is None else output_template
        return replace(self, input_template=inp, output_template=out, input_fields=(), **kw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the format of ``data/tasks/*.json``)."""
        values = {k: getattr(self, k) for k in _KEYS}
        return {k: list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, Mapping) else v
                for k, v in values.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str | None = None) -> "TaskSpec":
        """Build from the JSON form (unknown keys go to ``extra``); errors start with ``where``."""
        label = where or "task definition"
        if not isinstance(d, Mapping):
            raise TaskDefinitionError(
                f"{label}: expected a JSON object with the keys {list(_REQUIRED)}, got "
                f"{_short(d)}; see data/tasks/sst2.json for the format.")
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise TaskDefinitionError(
                f"{label} lacks the keys {missing}; add them (see data/tasks/sst2.json).")
        for key, kind in _KEYS.items():
            if key in d and not _IS[kind](d[key]):
                example = f", e.g. {_EXAMPLE[key]}" if key in _EXAMPLE else ""
                raise TaskDefinitionError(
                    f"{label}: {key!r} must be {kind}{example}; got {_short(d[key])}.")
        try:
            return cls(**{k: d[k] for k in _KEYS if k in d},
                       extra={k: v for k, v in d.items() if k not in _KEYS})
        except TaskDefinitionError as e:
            raise (TaskDefinitionError(f"{where}: {e}") if where else e) from None


_STR, _LIST, _MAP = "a string", "a list of strings", "an object mapping labels to label words"
#: The keys of a task definition and their JSON types.
_KEYS = {"name": _STR, "description": _STR, "input_fields": _LIST, "instruction": _STR,
         "instruction_suffix": _STR, "input_template": _STR, "output_template": _STR,
         "label_words": _LIST, "label_map": _MAP, "stopwords": _LIST}
_REQUIRED = ("name", "instruction", "input_template", "output_template", "label_words",
             "label_map", "stopwords")
_IS = {_STR: lambda v: isinstance(v, str),
       _LIST: lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v),
       _MAP: lambda v: isinstance(v, Mapping) and all(isinstance(x, str) for x in v.values())}
_EXAMPLE = {"input_fields": '["text"]', "label_words": '["Positive", "Negative"]',
            "label_map": '{"0": "Negative", "1": "Positive"}', "stopwords": '["the", ".", "\\n"]'}


def _short(value: Any) -> str:
    """``value`` as JSON (``null``, ``5``, ``"a b"``), cut to 60 characters."""
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


def list_tasks() -> list[str]:
    """Names of the task definitions shipped in ``data/tasks``."""
    return sorted(p.stem for p in (data_root() / "tasks").glob("*.json"))


def read_task_file(path: str | Path) -> TaskSpec:
    """Parse a task file (UTF-8 JSON like ``data/tasks/sst2.json``).

    Raises:
        TaskDefinitionError: The file is missing, YAML, not UTF-8 or not JSON, or defines an
            invalid task; the message names the file, the problem and the fix.
    """
    path = Path(path)
    where = f"task file {path}"
    if path.suffix.lower() in (".yaml", ".yml"):
        raise TaskDefinitionError(f"{where}: task files are JSON; write it as a .json file with "
                                  "the keys of data/tasks/sst2.json.")
    if not path.is_file():
        raise TaskDefinitionError(f"{where} does not exist; check the path, or pass a shipped "
                                  "task name (see list_tasks()).")
    try:
        return TaskSpec.from_dict(json.loads(path.read_text(encoding="utf-8")), where)
    except UnicodeDecodeError as e:
        raise TaskDefinitionError(f"{where} is not UTF-8 (byte {e.object[e.start]:#04x} at offset "
                                  f"{e.start}); re-save it with UTF-8 encoding.") from None
    except json.JSONDecodeError as e:
        raise TaskDefinitionError(f"{where} is not valid JSON: {e.msg} at line {e.lineno}, column "
                                  f"{e.colno}; fix the syntax (is the file complete?).") from None


def load_task(task: str | TaskSpec | Path) -> TaskSpec:
    """A shipped task by name, a :class:`TaskSpec` (passed through), or a task file: a ``Path``
    or a string with a suffix or ``/`` (see :func:`read_task_file` for its errors)."""
    if isinstance(task, TaskSpec):
        return task
    text = str(task)
    if isinstance(task, Path) or Path(text).suffix or "/" in text or os.sep in text:
        return read_task_file(Path(text))
    candidate = data_root() / "tasks" / f"{text}.json"
    if not candidate.is_file():
        raise ValueError(
            f"unknown task {text!r}; known tasks: {list_tasks()} (or pass a TaskSpec or the "
            "path of a task .json file).")
    return read_task_file(candidate)


def validate_tasks(names: Sequence[str] | None = None) -> list[TaskSpec]:
    """Load (and so validate) the given or all shipped tasks."""
    return [load_task(n) for n in (names or list_tasks())]
