"""Reading tidy result rows (an ``ablate``/experiment CSV, or a ``reproduce`` folder's
``tidy/*.csv`` or ``tidy/*.csv.gz``): one reader, so every caller sees the same types.

Text columns stay text (an ``example_id`` such as ``007`` or a label ``None`` is never turned into
a number or NaN); every other column whose non-empty cells are all numbers becomes numeric, with
empty cells as NaN (a multi-task file leaves the other tasks' ``score_<label>`` cells empty).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["TEXT_COLUMNS", "read_rows", "read_tidy"]

#: Columns that are always text.
TEXT_COLUMNS = ("model", "task", "example_id", "condition", "gold", "prediction",
                "label_prediction", "continuation", "calibrated_prediction", "template",
                "base_condition", "scope", "token", "categories", "roles", "base_prediction")


def read_tidy(path: str | Path) -> pd.DataFrame:
    """The rows of one tidy CSV (plain or gzip-compressed).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a readable CSV, or lacks the columns every row has
            (``model, task, seed, example_id, condition``); the message names the file.
    """
    df = _read(Path(path), "tidy CSV")
    need = ["model", "task", "seed", "example_id", "condition"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: lacks the column(s) {missing}; tidy rows come from `ablate`, "
                         "an experiment's out= CSV or a reproduce folder's tidy/*.csv.")
    return df


def read_rows(path: str | Path) -> pd.DataFrame:
    """The rows of any results CSV written by :class:`~icl_tokens.results.ResultsFile` (a
    probe or attention file too: no column is required), typed like :func:`read_tidy`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a readable CSV; the message names the file.
    """
    return _read(Path(path), "results CSV")


def _tail_problem(path: Path) -> str | None:
    """Why the file's last row is torn (no final line break, or fewer fields than the header),
    or ``None``. Every writer ends each row with a line break, so a missing one is a cut."""
    import csv
    import gzip
    import io

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:  # type: ignore[operator]
        data = f.read()
    if not data or data.endswith(b"\n"):
        if not data:
            return None
        rows = list(csv.reader(io.StringIO(data.decode("utf-8", "replace"))))
        if len(rows) > 1 and len(rows[-1]) < len(rows[0]):
            return f"its last row has {len(rows[-1])} of {len(rows[0])} fields"
        return None
    return "its last row is cut off (no final line break)"


def _read(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such results file.")
    try:
        torn = _tail_problem(path)
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable {what} ({e}); rerun the command that wrote "
                         "it (it resumes and repairs).") from None
    if torn is not None:
        raise ValueError(f"{path}: {torn}; rerun the command that wrote it (it resumes and "
                         "repairs).")
    try:
        df = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False,
                         encoding="utf-8")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError,
            EOFError) as e:
        raise ValueError(f"{path}: not a readable {what} ({str(e).splitlines()[0]}); "
                         "rerun the command that wrote it (it resumes and repairs).") from None
    for c in df.columns:
        if c in TEXT_COLUMNS or not (df[c].dtype == object
                                     or pd.api.types.is_string_dtype(df[c])):
            continue
        filled = df[c][df[c] != ""]
        num = pd.to_numeric(filled, errors="coerce")
        if len(filled) and num.notna().all():
            df[c] = pd.to_numeric(df[c].where(df[c] != ""), errors="coerce")
    return df
