"""The ``"dir"`` source: a folder of Calibrate-Before-Use (CBU) format files, ``<dir>/<task>/...``.

The folder is the ``data_dir`` argument of :func:`icl_tokens.data.load_task_data`, else
``$ICL_TOKENS_DATA_DIR`` (CI points it at ``shared/data``; formats in ``shared/data/SOURCES.md``).
Files per task (pool / eval)::

    sst2     stsa.binary.train / stsa.binary.test
    agnews   val.csv (a sample of the train split) / test.csv
    trec     train.txt / test.txt
    dbpedia  train.jsonl / dev_subsample.jsonl   (a dev_subsample is never a pool)
    rte, cb  train.jsonl / val.jsonl

Another task (a :class:`~icl_tokens.tasks.TaskSpec` whose name has a folder) is read from
``train.jsonl`` (pool) and ``test.jsonl``, else ``val.jsonl`` (eval), rows
``{"sentence" | "text" | <input field>: ..., "label": ...}``.

Example ids are ``"<split>:<row>"``: the split is ``train``/``test`` for SST-2 and the file's stem
elsewhere; the row is 0-based: the line index for line formats (blank lines are not rows but keep
their index), the data row after the header for CSV.

A set ``$ICL_TOKENS_DATA_DIR`` is a promise that the files are there: :func:`env_data_dir` checks it
(see :func:`check_env_folder`) and a wrong one is an error, never a silent switch to another source.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..tasks import TaskSpec
from .common import (
    DataFormatError,
    DataUnavailableError,
    TaskData,
    _check_fields,
    _dropped_note,
    _Row,
    _to_examples,
    clean_agnews,
    clean_trec,
)

__all__ = ["ENV_DATA_DIR", "check_env_folder", "env_data_dir", "expected_files", "load_dir"]

ENV_DATA_DIR = "ICL_TOKENS_DATA_DIR"


# ----------------------------------------------------------------------------------------- files
def _read_text(path: Path, expected: str) -> str:
    """The file's text (UTF-8, universal newlines); errors name the file and the format."""
    if not path.is_file():
        raise DataFormatError(f"data file {path} is missing; expected {expected}.")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataFormatError(f"{path} is not UTF-8 text ({e}); expected {expected}.") from None


def _lines(path: Path, expected: str) -> Iterable[tuple[int, str]]:
    """``(line index, line)`` for the non-blank lines of a text file."""
    for i, line in enumerate(_read_text(path, expected).split("\n")):
        if line.strip():
            yield i, line


_SST2_FORMAT = "one example per line: '<label digit> <sentence>' (CBU stsa.binary.* format)"
_SST2_LINE = re.compile(r"(\d)(?:\s(.*))?", re.S)


def _read_sst2(path: Path, fields: Sequence[str]) -> list[_Row]:
    """CBU SST-2: the label is the first character, the sentence follows one space."""
    rows = []
    for i, line in _lines(path, _SST2_FORMAT):
        m = _SST2_LINE.fullmatch(line)
        if m is None:
            raise DataFormatError(f"{path}, line {i + 1}: {line[:60]!r} is not {_SST2_FORMAT}.")
        rows.append(_Row(i, m.group(1), {fields[0]: (m.group(2) or "").strip()}))
    return rows


_TREC_FORMAT = "one example per line: '<COARSE>:<fine> <question>' (CBU trec format)"


def _read_trec(path: Path, fields: Sequence[str]) -> list[_Row]:
    """CBU TREC: coarse label before the first ``:``, the question after the first space."""
    rows = []
    for i, line in _lines(path, _TREC_FORMAT):
        head, _, rest = line.partition(" ")
        coarse, colon, _fine = head.partition(":")
        if not colon or not coarse:
            raise DataFormatError(f"{path}, line {i + 1}: {line[:60]!r} is not {_TREC_FORMAT}.")
        rows.append(_Row(i, coarse, {fields[0]: clean_trec(rest)}))
    return rows


_AGNEWS_FORMAT = "CSV with the header 'Class Index,Title,Description' (CBU agnews format)"
_AGNEWS_COLUMNS = ("Class Index", "Title", "Description")


def _read_agnews(path: Path, fields: Sequence[str]) -> list[_Row]:
    """CBU AG News CSV: ``Class Index`` (1..4), ``Title``, ``Description``."""
    reader = csv.reader(io.StringIO(_read_text(path, _AGNEWS_FORMAT), newline=""))
    header = [h.strip().lstrip("\ufeff") for h in next(reader, [])]
    if any(c not in header for c in _AGNEWS_COLUMNS):
        raise DataFormatError(f"{path}: header {header} is not {_AGNEWS_FORMAT}.")
    col = {c: header.index(c) for c in _AGNEWS_COLUMNS}
    rows = []
    for i, rec in enumerate(reader):
        if len(rec) != len(header):
            raise DataFormatError(
                f"{path}, data row {i}: {len(rec)} fields instead of {len(header)}; expected "
                f"{_AGNEWS_FORMAT}."
            )
        text = clean_agnews(rec[col["Title"]], rec[col["Description"]])
        rows.append(_Row(i, rec[col["Class Index"]].strip(), {fields[0]: text}))
    return rows


def _jsonl_rows(path: Path, expected: str) -> Iterable[tuple[int, dict[str, Any]]]:
    for i, line in _lines(path, expected):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataFormatError(f"{path}, line {i + 1}: invalid JSON ({e}); expected {expected}.")
        if not isinstance(obj, dict):
            raise DataFormatError(f"{path}, line {i + 1}: not a JSON object; expected {expected}.")
        yield i, obj


def _take(obj: Mapping[str, Any], keys: Sequence[str], path: Path, i: int, expected: str) -> Any:
    """The first of ``keys`` present in ``obj`` (error naming the file and line otherwise)."""
    for k in keys:
        if k in obj and obj[k] is not None:
            return obj[k]
    wanted = " or ".join(map(repr, keys))
    raise DataFormatError(f"{path}, line {i + 1}: no {wanted}; expected {expected}.")


def _jsonl_reader(
    text_keys: Mapping[str, Sequence[str]], expected: str
) -> Callable[[Path, Sequence[str]], list[_Row]]:
    """A jsonl reader: ``text_keys`` maps each input field to the JSON keys to try, in order."""

    def read(path: Path, fields: Sequence[str]) -> list[_Row]:
        rows = []
        for i, obj in _jsonl_rows(path, expected):
            label = _take(obj, ["label"], path, i, expected)
            inputs = {f: str(_take(obj, text_keys[f], path, i, expected)).strip() for f in fields}
            rows.append(_Row(i, str(label), inputs))
        return rows

    return read


_DBPEDIA_FORMAT = 'jsonl rows {"sentence": <text>, "label": "<1..14>"}'
_PAIR_FORMAT = 'jsonl rows {"premise": ..., "hypothesis": ..., "label": <name>} (SuperGLUE)'


# ---------------------------------------------------------------------------------------- layouts
@dataclass(frozen=True)
class _DirLayout:
    """Where a task's files are and how to read them."""

    pool_file: str
    eval_file: str
    fields: tuple[str, ...]
    reader: Callable[[Path, Sequence[str]], list[_Row]]
    rule: str = ""
    splits: tuple[str, str] | None = None  # id prefixes; default: the file names' stems

    def split_names(self) -> tuple[str, str]:
        """Id prefixes of the pool and eval rows."""
        if self.splits is not None:
            return self.splits
        return self.pool_file.split(".")[0], self.eval_file.split(".")[0]


_PAIR_READER = _jsonl_reader({"hypothesis": ["hypothesis"], "premise": ["premise"]}, _PAIR_FORMAT)
_DIR_LAYOUTS: dict[str, _DirLayout] = {
    "sst2": _DirLayout("stsa.binary.train", "stsa.binary.test", ("text",), _read_sst2,
                       splits=("train", "test")),
    "agnews": _DirLayout(
        "val.csv", "test.csv", ("text",), _read_agnews,
        "val.csv is a sample of the AG News train split; Title + '. ' + Description, CBU-cleaned",
    ),
    "trec": _DirLayout(
        "train.txt", "test.txt", ("text",), _read_trec, "coarse labels; CBU detokenisation"
    ),
    "dbpedia": _DirLayout(
        "train.jsonl", "dev_subsample.jsonl", ("text",),
        _jsonl_reader({"text": ["sentence"]}, _DBPEDIA_FORMAT),
        "subset only: eval = the 256-row dev_subsample (likely from test), pool = 64 train rows",
    ),
    "rte": _DirLayout("train.jsonl", "val.jsonl", ("hypothesis", "premise"), _PAIR_READER,
                      "evaluated on val (the test split has no labels)"),
    "cb": _DirLayout("train.jsonl", "val.jsonl", ("hypothesis", "premise"), _PAIR_READER,
                     "evaluated on val (the test split has no labels)"),
}


def _generic_layout(spec: TaskSpec, folder: Path) -> _DirLayout | None:
    """Layout for a task without a dedicated loader: ``train.jsonl`` + ``test|val.jsonl``."""
    eval_file = next((f for f in ("test.jsonl", "val.jsonl") if (folder / f).is_file()), None)
    if eval_file is None or not (folder / "train.jsonl").is_file():
        return None
    fields = spec.input_fields
    keys = {f: [f] for f in fields}
    if len(fields) == 1:
        keys[fields[0]] = [fields[0], "sentence", "text"]
    expected = "jsonl rows {" + ", ".join(f'"{"|".join(keys[f])}": <text>' for f in fields)
    expected += ', "label": <label>}'
    return _DirLayout("train.jsonl", eval_file, fields, _jsonl_reader(keys, expected),
                      "generic jsonl loader")


def expected_files(task: str) -> str:
    """The files a data folder must hold for ``task``, e.g. ``trec/train.txt and trec/test.txt``."""
    if task in _DIR_LAYOUTS:
        lay = _DIR_LAYOUTS[task]
        return f"{task}/{lay.pool_file} and {task}/{lay.eval_file}"
    return f"{task}/train.jsonl and {task}/test.jsonl (or {task}/val.jsonl)"


def _layout_for(spec: TaskSpec, folder: Path) -> _DirLayout:
    if spec.name in _DIR_LAYOUTS:
        return _DIR_LAYOUTS[spec.name]
    layout = _generic_layout(spec, folder)
    if layout is None:
        raise DataFormatError(
            f"{folder} has no train.jsonl with a test.jsonl or val.jsonl; a task without a "
            "dedicated loader needs those files (jsonl rows {\"sentence\"|\"text\", \"label\"})."
        )
    return layout


# ------------------------------------------------------------------------------------ the env var
def env_data_dir() -> str | None:
    """The value of ``$ICL_TOKENS_DATA_DIR``, or ``None`` when it is unset.

    Raises:
        DataUnavailableError: The variable is set but empty or blank (what a mistyped ``$VAR``
            gives); it is never taken for "unset".
    """
    value = os.environ.get(ENV_DATA_DIR)
    if value is not None and not value.strip():
        raise DataUnavailableError(
            f"${ENV_DATA_DIR} is set but empty ({value!r}); unset it (`unset {ENV_DATA_DIR}`) to "
            "use StaICC/HF, or point it at the data folder (e.g. shared/data)."
        )
    return value


def check_env_folder(task: str, value: str) -> Path:
    """The folder ``$ICL_TOKENS_DATA_DIR=value`` if it holds ``<task>/``; else a clear error.

    Raises:
        DataUnavailableError: The path does not exist, is not a folder, or has no ``<task>/``
            folder; the message names the variable, its value, the files expected and the fix.
    """
    path = Path(value)
    shown = f"${ENV_DATA_DIR}={value!r}"
    if not path.is_absolute():
        shown += f" (resolved: {path.resolve()})"
    if not path.exists():
        problem = "does not exist"
    elif not path.is_dir():
        problem = "is not a directory"
    elif not (path / task).is_dir():
        problem = f"has no {task}/ folder"
    else:
        return path
    raise DataUnavailableError(
        f"{shown} {problem}; expected a folder holding {expected_files(task)} (CBU formats, see "
        f"shared/data/SOURCES.md). Fix the path, unset {ENV_DATA_DIR} to use StaICC/HF, or pass "
        f"source='staicc' (or source='hf')."
    )


# ---------------------------------------------------------------------------------------- loading
def load_dir(spec: TaskSpec, root: Path) -> TaskData:
    """Read ``root/<task>/`` in the task's CBU format.

    Raises:
        DataUnavailableError: ``root`` has no ``<task>/`` folder.
        DataFormatError: A file is missing, malformed or empty, or a label is unknown.
    """
    folder = root / spec.name
    if not folder.is_dir():
        problem = "does not exist" if not root.exists() else f"has no {spec.name}/ folder"
        raise DataUnavailableError(
            f"data folder {root} {problem}; expected {expected_files(spec.name)}."
        )
    layout = _layout_for(spec, folder)
    _check_fields(spec, layout.fields)
    parts = []
    files = (layout.pool_file, layout.eval_file)
    for fname, split, role in zip(files, layout.split_names(), ("pool", "eval")):
        path = folder / fname
        rows = layout.reader(path, layout.fields)
        parts.append(_to_examples(rows, split, spec, str(path), role))
    (pool, p_drop), (ev, e_drop) = parts
    notes = (
        f"{spec.name} from {folder}: pool = {layout.pool_file} ({len(pool)}), eval = "
        f"{layout.eval_file} ({len(ev)})" + (f"; {layout.rule}" if layout.rule else "")
        + f"; {_dropped_note(p_drop, e_drop)}"
    )
    return TaskData(spec.name, pool, ev, "dir", str(folder), notes)
