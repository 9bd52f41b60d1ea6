"""What every data source shares: :class:`TaskData`, the errors, CBU's text cleaning, row helpers.

A source (:mod:`.cbu`, :mod:`.staicc`, :mod:`.hf`) parses its rows into :class:`_Row` (position,
raw label, input texts) and turns them into :class:`~icl_tokens.tasks.Example` with
:func:`_to_examples`, which validates labels against the task's ``label_map``, drops rows whose
input text is empty (counted for :attr:`TaskData.notes`) and refuses an empty demonstration pool or
evaluation set.

    >>> clean_trec("What is the `` Big Apple '' ?")
    'What is the "Big Apple"?'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..tasks import Example, TaskSpec

__all__ = [
    "TaskData",
    "DataUnavailableError",
    "DataFormatError",
    "clean_agnews",
    "clean_agnews_text",
    "clean_trec",
]

#: What a set is called in error messages.
_ROLES = {"pool": "demonstration pool", "eval": "evaluation set"}


class DataUnavailableError(RuntimeError):
    """No source can provide the task's data (the message lists the options)."""


class DataFormatError(ValueError):
    """A data file is missing, malformed, empty, or holds a label the task does not know."""


@dataclass(frozen=True)
class TaskData:
    """A task's demonstration pool and evaluation set.

    Attributes:
        task: Task name.
        pool: Demonstration pool, in source order.
        eval: Evaluation set, in source order.
        source: ``"dir"``, ``"staicc"`` or ``"hf"``.
        location: The folder, package file or hub dataset actually used.
        notes: One line for the user: files/splits, held-out rule, dropped rows.
    """

    task: str
    pool: tuple[Example, ...] = field(repr=False)
    eval: tuple[Example, ...] = field(repr=False)
    source: str
    location: str
    notes: str

    def __repr__(self) -> str:
        return (
            f"TaskData(task={self.task!r}, pool={len(self.pool)}, eval={len(self.eval)}, "
            f"source={self.source!r}, location={self.location!r})"
        )


# --------------------------------------------------------------------------------------- cleaning
def clean_agnews_text(text: str) -> str:
    """CBU's AG News cleaning, in CBU's order (``data_utils.load_agnews``).

    `` #39;s`` → ``'s``, then `` quot;`` → ``"``, then ``\\`` → space, then `` #39;ll`` → ``'ll``.
    The order matters only next to a backslash: ``x\\#39;ll`` becomes ``x'll`` (the backslash
    turns into the space that `` #39;ll`` needs), but ``x\\#39;s`` becomes ``x #39;s`` (its rule
    ran before the backslash one). Other escapes (`` #39;`` alone, `` amp;``, `` #36;``) are left
    as they are, as in CBU.
    """
    return (
        text.replace(" #39;s", "'s")
        .replace(" quot;", '"')
        .replace("\\", " ")
        .replace(" #39;ll", "'ll")
    )


def clean_agnews(title: str, description: str) -> str:
    """``D_in`` for AG News: ``Title + ". " + Description``, CBU-cleaned, then stripped.

    Returns ``""`` when both parts are blank. (CBU does not strip; we do, as for every task.)
    """
    if not title.strip() and not description.strip():
        return ""
    return clean_agnews_text(title + ". " + description).strip()


def clean_trec(question: str) -> str:
    """CBU's TREC detokenisation, in CBU's order (``data_utils.load_trec``), after stripping.

    `` 's`` → ``'s``, then ````` `` ````` (with its trailing space) → ``"``, then `` ''`` → ``"``,
    then `` ?`` → ``?``, then `` ,`` → ``,``.
    """
    return (
        question.strip()
        .replace(" 's", "'s")
        .replace("`` ", '"')
        .replace(" ''", '"')
        .replace(" ?", "?")
        .replace(" ,", ",")
    )


def _strip(text: str) -> str:
    return text.strip()


# ------------------------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class _Row:
    """A parsed source row before label validation: position, raw label, input texts."""

    index: int
    label: str
    inputs: dict[str, str]


def _check_fields(spec: TaskSpec, fields: Sequence[str]) -> None:
    """The task's input fields must be the ones the loader provides."""
    if set(spec.input_fields) != set(fields):
        raise ValueError(
            f"task {spec.name!r} has input_fields {list(spec.input_fields)}, but its data loader "
            f"provides {list(fields)}; use a template with the placeholders "
            f"{', '.join('{' + f + '}' for f in fields)}."
        )


def _to_examples(
    rows: Iterable[_Row], split: str, spec: TaskSpec, where: str, role: str
) -> tuple[tuple[Example, ...], int]:
    """Examples with ids ``split:index``; rows with an empty input are dropped and counted.

    Args:
        rows: Parsed rows, in source order.
        split: Id prefix.
        spec: The task (its ``label_map`` validates the labels).
        where: The file or split the rows come from, for error messages.
        role: ``"pool"`` or ``"eval"``; an empty result is a :class:`DataFormatError`.
    """
    out: list[Example] = []
    dropped = 0
    for r in rows:
        if r.label not in spec.label_map:
            raise DataFormatError(
                f"{where}, row {r.index}: label {r.label!r} is not in task {spec.name!r}'s "
                f"label_map {sorted(spec.label_map)}; is this the right file for the task?"
            )
        if any(not v for v in r.inputs.values()):
            dropped += 1
            continue
        out.append(Example(f"{split}:{r.index}", dict(r.inputs), r.label))
    if not out:
        why = (
            f"all {dropped} rows have an empty input text" if dropped
            else "it holds no rows (empty or blank)"
        )
        raise DataFormatError(
            f"{where}: the {_ROLES[role]} of task {spec.name!r} would be empty: {why}; "
            "is this the right file, and is it complete?"
        )
    return tuple(out), dropped


def _dropped_note(pool_dropped: int, eval_dropped: int) -> str:
    return f"dropped empty-text rows: {pool_dropped} pool, {eval_dropped} eval"
