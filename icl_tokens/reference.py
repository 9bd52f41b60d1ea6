"""The paper's reference numbers (arXiv v2, paper-spec §7) as tidy tables.

Two data files in ``data/reference/`` (found through :func:`icl_tokens.tasks.data_root`) hold the
transcription, exactly as printed (printed inconsistencies included, e.g. Table 10's identical
SST2 and RTE columns):

* ``paper_tables.csv``: Tables 2, 3, 4, 5, 6, 8, 9, 10 and 14, one row per cell, columns
  ``table, model, setting, condition, variant, task, value, marker``.

  - ``setting`` is the row label as printed (``"+ TEMP"``, ``"− CONT"``, ``"TEMP+D_out"``, ...).
  - ``condition`` is our condition name (:data:`icl_tokens.ablation.conditions.PAPER_ORDER`) for the
    representation-level rows of Tables 2, 3 and 14, and empty elsewhere.
  - ``variant`` is ``with_colon`` / ``without_colon`` for Tables 5 and 6 (cells printed as
    "with ``:`` / w/o ``:``"), empty elsewhere.
  - ``marker`` is ``*`` where the paper marks p ≥ 0.05, empty elsewhere.
  - The derived "Avg" / "Avg / Δ" columns are not stored; recompute them from the cells. They
    all follow from the printed cells (within rounding) except Table 3, OpenLlama-3B, "− TEMP":
    printed Δ −5.4, but its cells give −3.5.

* ``paper_table15_pvalues.csv``: Table 15 (pair-wise t-test p-values), columns
  ``table, model, comparison, a, b, condition_a, condition_b, task, value, not_significant``.

Models are ``OpenLlama-3B``, ``Llama-7B``, ``Llama-13B``, ``Llama-30B``; tasks use our names, in
the paper's column order (:data:`icl_tokens.tasks.PAPER_TASKS`).

    >>> float(paper_condition_table("Llama-7B").loc["+template", "sst2"])
    90.2
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import pandas as pd

from .ablation.conditions import PAPER_ORDER, resolve_condition
from .tasks import PAPER_TASKS, data_root

__all__ = [
    "PAPER_MODELS",
    "REFERENCE_TABLES",
    "paper_condition_table",
    "paper_table",
    "paper_values",
    "reference_dir",
]

#: Models of the paper's tables, in the paper's order.
PAPER_MODELS: tuple[str, ...] = ("OpenLlama-3B", "Llama-7B", "Llama-13B", "Llama-30B")
#: Tables available through :func:`paper_table`.
REFERENCE_TABLES: tuple[int, ...] = (2, 3, 4, 5, 6, 8, 9, 10, 14, 15)

_TABLES_CSV = "paper_tables.csv"
_PVALUES_CSV = "paper_table15_pvalues.csv"


def reference_dir() -> Path:
    """Folder holding the reference CSVs (``data_root() / "reference"``)."""
    return data_root() / "reference"


def _read(name: str) -> pd.DataFrame:
    path = reference_dir() / name
    if not path.is_file():
        raise FileNotFoundError(
            f"reference table file {path} not found; it ships in the source checkout under "
            "data/reference/ (install icl_tokens with `pip install -e .`, or point "
            "ICL_TOKENS_TASKS_DIR at a folder with reference/)."
        )
    # A copy: callers may modify what they get without touching the cached table.
    return _read_cached(str(path), path.stat().st_mtime_ns).copy()


@lru_cache(maxsize=4)
def _read_cached(path: str, _mtime: int) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    df["table"] = df["table"].astype(int)
    df["value"] = df["value"].astype(float)
    if "not_significant" in df.columns:
        df["not_significant"] = df["not_significant"].map({"True": True, "False": False})
    return df


def _table_number(table: int | str) -> int:
    """``2``, ``"2"``, ``"Table 2"``, ``"table2"``, ``"T2"`` → 2 (clear error otherwise)."""
    if isinstance(table, bool):
        raise TypeError(f"table must be an int or str, got {table!r}.")
    if isinstance(table, int):
        n = table
    elif isinstance(table, str):
        m = re.fullmatch(r"\s*(?:table|tab\.?|t)?\s*(\d+)\s*", table, flags=re.IGNORECASE)
        if m is None:
            raise ValueError(
                f"cannot read a table number from {table!r}; use e.g. 2, '2' or 'Table 2'."
            )
        n = int(m.group(1))
    else:
        raise TypeError(f"table must be an int or str, got {type(table).__name__}.")
    if n not in REFERENCE_TABLES:
        raise ValueError(
            f"paper Table {n} is not transcribed; available tables: {list(REFERENCE_TABLES)} "
            "(Tables 7, 11-13 and 16-20 are templates or lists, not results)."
        )
    return n


def _check_model(model: str) -> str:
    if model not in PAPER_MODELS:
        close = [m for m in PAPER_MODELS if m.lower() == str(model).lower()]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"unknown paper model {model!r}{hint}; choose one of {list(PAPER_MODELS)}."
        )
    return model


def _as_list(x: str | Iterable[str]) -> list[str]:
    return [x] if isinstance(x, str) else list(x)


def _check_tasks(tasks: str | Iterable[str]) -> list[str]:
    out = _as_list(tasks)
    bad = [t for t in out if t not in PAPER_TASKS]
    if bad:
        raise ValueError(f"unknown paper task(s) {bad}; choose from {list(PAPER_TASKS)}.")
    return out


def paper_table(table: int | str) -> pd.DataFrame:
    """All transcribed cells of one paper table, as a tidy DataFrame.

    Args:
        table: The table number (``2``, ``"2"`` or ``"Table 2"``); one of :data:`REFERENCE_TABLES`.

    Returns:
        For Tables 2-14: columns ``table, model, setting, condition, variant, task, value,
        marker`` in the paper's row order. For Table 15: columns ``table, model, comparison, a,
        b, condition_a, condition_b, task, value, not_significant`` (``value`` is the p-value).

    Raises:
        ValueError: Unknown or untranscribed table.
    """
    n = _table_number(table)
    if n == 15:
        return _read(_PVALUES_CSV).copy()
    df = _read(_TABLES_CSV)
    return df[df["table"] == n].reset_index(drop=True)


def paper_values(
    table: int | str,
    model: str | None = "Llama-7B",
    task: str | Iterable[str] | None = None,
    conditions: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Cells of a paper table for one model (``None``: all), optionally some tasks/conditions.

    Args:
        table: Table number (see :func:`paper_table`).
        model: A name from :data:`PAPER_MODELS`, or ``None`` for every model.
        task: A task name or several (our names); ``None`` for all.
        conditions: Our condition names (or paper-spec aliases such as ``"only_temp"``) to keep,
            in the order given. Only Tables 2, 3, 14 (``condition`` column) and 15 (rows whose
            two conditions are both listed) have conditions.

    Returns:
        The matching rows of :func:`paper_table` (same columns).

    Raises:
        ValueError: Unknown table, model, task or condition, or conditions for a table without
            any.
    """
    df = paper_table(table)
    if model is not None:
        df = df[df["model"] == _check_model(model)]
    if task is not None:
        df = df[df["task"].isin(_check_tasks(task))]
    if conditions is not None:
        conds = [resolve_condition(c) for c in _as_list(conditions)]
        if "condition_a" in df.columns:
            df = df[df["condition_a"].isin(conds) & df["condition_b"].isin(conds)]
        else:
            if not (df["condition"] != "").any():
                raise ValueError(
                    f"paper Table {_table_number(table)} has no rows with our condition names "
                    "(only Tables 2, 3 and 14 do); filter on the `setting` column instead."
                )
            df = df[df["condition"].isin(conds)]
            order = {c: i for i, c in enumerate(conds)}
            df = df.sort_values("condition", key=lambda s: s.map(order), kind="stable")
    return df.reset_index(drop=True)


def paper_condition_table(
    model: str = "Llama-7B", tasks: str | Iterable[str] | None = None
) -> pd.DataFrame:
    """The representation-level results (Tables 2 + 3) of a model as conditions × tasks.

    Args:
        model: A name from :data:`PAPER_MODELS`.
        tasks: Task columns to keep, in this order; default all six in the paper's order.

    Returns:
        Accuracy (%) with index ``condition`` in the order of
        :data:`icl_tokens.ablation.conditions.PAPER_ORDER` without the diagnostic ``none``
        (``zero_shot``, ``+content``, ``+stopword``, ``+template``, ``icl``, ``icl-content``,
        ``icl-stopword``, ``icl-template``) and one column per task.
    """
    _check_model(model)
    cols = list(PAPER_TASKS) if tasks is None else _check_tasks(tasks)
    rows = [c for c in PAPER_ORDER if c != "none"]
    long = pd.concat([paper_values(2, model), paper_values(3, model)], ignore_index=True)
    wide = long.pivot(index="condition", columns="task", values="value")
    wide = wide.reindex(index=rows, columns=cols)
    wide.index.name = "condition"
    wide.columns.name = "task"
    return wide


def paper_cells_table(
    cells: Mapping[str, tuple[int, str, str]], model: str = "Llama-7B",
    tasks: str | Iterable[str] | None = None,
) -> pd.DataFrame:
    """Paper cells addressed by (table, setting, variant) as our conditions × tasks.

    Args:
        cells: Our condition name → ``(table, setting, variant)`` (variant ``""`` if none), e.g.
            ``{"icl-content": (4, "− CONT", "")}``. Conditions the paper did not print are
            simply absent from ``cells``.
        model: A name from :data:`PAPER_MODELS`.
        tasks: Task columns to keep, in this order; default all six.

    Returns:
        Accuracy (%) with index ``condition`` in the order of ``cells``.
    """
    _check_model(model)
    cols = list(PAPER_TASKS) if tasks is None else _check_tasks(tasks)
    rows = {}
    for cond, (table, setting, variant) in cells.items():
        df = paper_values(table, model)
        df = df[(df["setting"] == setting) & (df["variant"].fillna("") == variant)]
        if df.empty:
            raise ValueError(f"paper Table {table} has no cell {setting!r} / {variant!r} for "
                             f"{model}.")
        rows[cond] = df.set_index("task")["value"]
    wide = pd.DataFrame(rows).T.reindex(columns=cols)
    wide.index.name = "condition"
    wide.columns.name = "task"
    return wide
