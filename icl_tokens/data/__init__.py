"""Loaders for the six paper tasks: a demonstration pool and an evaluation set per task.

:func:`load_task_data` returns a :class:`TaskData` with ``pool`` (where demonstrations are drawn
from) and ``eval`` (what is evaluated), both tuples of :class:`~icl_tokens.tasks.Example`. This
module decides which source is used, and why; the sources are:

1. ``"dir"`` (:mod:`.cbu`): a folder of Calibrate-Before-Use format files ``<dir>/<task>/...``,
   the ``data_dir`` argument or ``$ICL_TOKENS_DATA_DIR`` (CI: ``shared/data``).
2. ``"staicc"`` (:mod:`.staicc`): the pickles of the PyPI package ``StaICC==0.1.1`` (offline;
   sst2, agnews and trec only) with a held-out split made here.
3. ``"hf"`` (:mod:`.hf`): Hugging Face ``datasets`` (online).

With ``source=None``: an explicit ``data_dir`` is used (it must hold the task); else a set
``$ICL_TOKENS_DATA_DIR`` is used and must hold the task: an empty value, a missing folder, a file
instead of a folder, or no ``<task>/`` in it is a :class:`DataUnavailableError`, never a silent
switch to another evaluation set. Only when no data folder is configured at all are StaICC, then
Hugging Face tried, and :attr:`TaskData.notes` says so. An explicit ``source="staicc"`` or
``"hf"`` ignores the variable.

``D_in`` is built as in paper-spec §3 (CBU's cleaning, :mod:`.common`); every text is stripped of
surrounding whitespace. Rows whose input text is empty are dropped and their number is stated in
:attr:`TaskData.notes`; an empty pool or evaluation set is a :class:`DataFormatError` naming the
file. Labels are the raw dataset labels as strings, exactly the keys of the task's ``label_map``
(a label outside it is an error). Example ids are ``"<split>:<row>"`` and stable (see each source).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..tasks import TaskSpec, load_task
from .cbu import ENV_DATA_DIR, check_env_folder, env_data_dir, expected_files, load_dir
from .common import (
    DataFormatError,
    DataUnavailableError,
    TaskData,
    clean_agnews,
    clean_agnews_text,
    clean_trec,
)
from .hf import hub_location, import_datasets, load_hf
from .staicc import (
    STAICC_EVAL_SIZE,
    STAICC_SPLIT_SEED,
    STAICC_TASKS,
    _staicc_dir,
    load_plain_pickle,
    load_staicc,
    loads_plain_pickle,
    staicc_split,
)
from .staicc import _staicc_table as _staicc_table  # re-exported for tests and old callers

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

SOURCES: tuple[str, ...] = ("dir", "staicc", "hf")


def _options(task: str) -> str:
    """The ways to provide data for ``task``, one per line."""
    hf = hub_location(task)
    lines = [
        "Options:",
        f"  1. set {ENV_DATA_DIR} (or pass data_dir=) to a folder holding {expected_files(task)} "
        "(CBU formats, see shared/data/SOURCES.md);",
        "  2. `pip install StaICC==0.1.1` (offline; sst2, agnews and trec only)"
        + ("" if task in STAICC_TASKS else f" - not for {task!r}") + ";",
        "  3. `pip install datasets` and be online (Hugging Face hub"
        + (f": {hf})." if hf else f"; no loader for {task!r})."),
    ]
    return "\n".join(lines)


def _with_options(task: str, load: Callable[[], TaskData]) -> TaskData:
    """``load()``; a :class:`DataUnavailableError` gets the list of options appended."""
    try:
        return load()
    except DataUnavailableError as e:
        e.args = (f"{e}\n{_options(task)}",)
        raise


def _data_folder(task: str, data_dir: str | Path | None) -> Path | None:
    """The ``data_dir`` argument, else the checked ``$ICL_TOKENS_DATA_DIR``, else ``None``."""
    if isinstance(data_dir, str) and not data_dir.strip():
        raise ValueError(f"data_dir is empty ({data_dir!r}); pass the data folder or None.")
    if data_dir is not None:
        return Path(data_dir)
    env = env_data_dir()
    return None if env is None else check_env_folder(task, env)


def load_task_data(
    task: str | TaskSpec,
    *,
    source: str | None = None,
    data_dir: str | Path | None = None,
) -> TaskData:
    """Load a task's demonstration pool and evaluation set.

    Args:
        task: A shipped task name, a task ``.json`` path or a :class:`TaskSpec`.
        source: ``"dir"``, ``"staicc"`` or ``"hf"`` to force one source; ``None`` uses the data
            folder if one is configured, else StaICC, else Hugging Face ``datasets``.
        data_dir: Folder holding ``<task>/...`` files; defaults to ``$ICL_TOKENS_DATA_DIR``.
            Either one, when given, must hold the task (no fallback to another source).

    Returns:
        The :class:`TaskData`; its ``notes`` say which files or splits were used.

    Raises:
        ValueError: Unknown task or source.
        DataFormatError: A file is missing, malformed or empty, or a label is not in
            ``label_map``.
        DataUnavailableError: The configured data folder lacks the task, or no source can
            provide it (the message says how to fix it).
    """
    spec = load_task(task)
    if source is not None and source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; choose one of {list(SOURCES)} or None.")
    if source in (None, "dir"):
        root = _data_folder(spec.name, data_dir)
        if root is not None:
            return _with_options(spec.name, lambda: load_dir(spec, root))
        if source == "dir":
            raise DataUnavailableError(
                f"source='dir' needs a data folder, but data_dir is not given and {ENV_DATA_DIR} "
                f"is not set.\n" + _options(spec.name)
            )
        return _fallback(spec)
    if source == "staicc":
        folder = _staicc_dir()
        if folder is None:
            raise DataUnavailableError(
                "source='staicc' but StaICC is not installed.\n" + _options(spec.name)
            )
        return _with_options(spec.name, lambda: load_staicc(spec, folder))
    datasets = import_datasets()
    if datasets is None:
        raise DataUnavailableError(
            "source='hf' but `datasets` is not installed.\n" + _options(spec.name)
        )
    return _with_options(spec.name, lambda: load_hf(spec, datasets))


def _fallback(spec: TaskSpec) -> TaskData:
    """No data folder is configured: StaICC, then Hugging Face; the notes say why."""
    tried = [f"no data folder (data_dir not given, {ENV_DATA_DIR} not set)"]
    if spec.name in STAICC_TASKS:
        folder = _staicc_dir()
        if folder is not None:
            note = f" (fallback: {'; '.join(tried)})"
            return _with_options(spec.name, lambda: load_staicc(spec, folder, note))
        tried.append("StaICC not installed")
    else:
        tried.append(f"StaICC has no {spec.name}")
    if hub_location(spec.name) is not None:
        datasets = import_datasets()
        if datasets is not None:
            note = f" (fallback: {'; '.join(tried)})"
            return _with_options(spec.name, lambda: load_hf(spec, datasets, note))
        tried.append("`datasets` not installed")
    else:
        tried.append(f"no Hugging Face loader for {spec.name}")
    raise DataUnavailableError(
        f"no data source for task {spec.name!r} (tried: {'; '.join(tried)}).\n"
        + _options(spec.name)
    )
