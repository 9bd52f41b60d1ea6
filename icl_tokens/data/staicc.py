"""The ``"staicc"`` source: the pickles shipped in the PyPI package ``StaICC==0.1.1`` (offline).

StaICC covers sst2, agnews and trec only. Its pickles are read with a loader that refuses every
global (:func:`loads_plain_pickle`), and the package is located without being imported. StaICC
merges train and test, so a held-out split is made here (:func:`staicc_split`): eval = the first
:data:`STAICC_EVAL_SIZE` (2000) rows of ``default_rng(STAICC_SPLIT_SEED).permutation(n)``; pool =
the other rows minus every row whose cleaned text equals an eval text (AG News and TREC are
train+test merged there, and SST-2 is the phrase-level GLUE train set, so texts repeat). Both are
kept in source order; example ids are ``"staicc:<row of the pickle>"``.
"""

from __future__ import annotations

import importlib.util
import io
import pickle
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..tasks import TaskSpec
from .common import (
    DataFormatError,
    DataUnavailableError,
    TaskData,
    _check_fields,
    _dropped_note,
    _Row,
    _strip,
    _to_examples,
    clean_agnews_text,
    clean_trec,
)

__all__ = [
    "STAICC_TASKS",
    "STAICC_EVAL_SIZE",
    "STAICC_SPLIT_SEED",
    "load_plain_pickle",
    "loads_plain_pickle",
    "load_staicc",
    "staicc_split",
]

STAICC_TASKS: tuple[str, ...] = ("sst2", "agnews", "trec")
#: Rows of a StaICC table held out as the evaluation set.
STAICC_EVAL_SIZE = 2000
#: Seed of the permutation that makes the StaICC held-out split (the paper's arXiv number).
STAICC_SPLIT_SEED = 240111323


# ------------------------------------------------------------------------------- safe unpickling
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


# ------------------------------------------------------------------------------------ the package
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


def load_staicc(spec: TaskSpec, folder: Path, fallback: str = "") -> TaskData:
    """A held-out split of StaICC's cached table (``folder/<task>.dataset``) for sst2/agnews/trec.

    Args:
        spec: The task.
        folder: StaICC's ``cached_dataset`` folder.
        fallback: Appended to the notes (why the earlier sources were skipped).
    """
    if spec.name not in STAICC_TASKS:
        raise DataUnavailableError(
            f"StaICC has no {spec.name!r}; it provides only {list(STAICC_TASKS)}."
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
    ev, e_drop = _to_examples((rows[i] for i in eval_idx), "staicc", spec, str(path), "eval")
    pool, p_drop = _to_examples((rows[i] for i in pool_idx), "staicc", spec, str(path), "pool")
    notes = (
        f"{spec.name} from StaICC {path.name} ({len(rows)} rows, {_STAICC_ORIGIN[spec.name]}): "
        f"eval = first {STAICC_EVAL_SIZE} of default_rng({STAICC_SPLIT_SEED}).permutation, pool = "
        f"the rest minus {removed} rows whose text equals an eval text; ids 'staicc:<row>'; "
        f"{_dropped_note(p_drop, e_drop)}" + fallback
    )
    return TaskData(spec.name, pool, ev, "staicc", str(path), notes)
