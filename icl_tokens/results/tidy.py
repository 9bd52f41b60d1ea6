"""Reading tidy result rows (an ``ablate``/experiment CSV, or a ``reproduce`` folder's
``tidy/*.csv`` or ``tidy/*.csv.gz``): one reader, so every caller sees the same types.

Text columns stay text (an ``example_id`` such as ``007`` or a label ``None`` is never turned into
a number or NaN); every other column whose non-empty cells are all numbers becomes numeric, with
empty cells as NaN (a multi-task file leaves the other tasks' ``score_<label>`` cells empty).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["TEXT_COLUMNS", "read_tidy"]

#: Columns that are always text.
TEXT_COLUMNS = ("model", "task", "example_id", "condition", "gold", "prediction",
                "label_prediction", "continuation", "calibrated_prediction", "template",
                "base_condition", "scope")


def read_tidy(path: str | Path) -> pd.DataFrame:
    """The rows of one tidy CSV (plain or gzip-compressed).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a readable CSV, or lacks the columns every row has
            (``model, task, seed, example_id, condition``); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such results file.")
    try:
        df = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False,
                         encoding="utf-8")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError,
            EOFError) as e:
        raise ValueError(f"{path}: not a readable tidy CSV ({str(e).splitlines()[0]}); "
                         "rerun the command that wrote it (it resumes and repairs).") from None
    need = ["model", "task", "seed", "example_id", "condition"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: lacks the column(s) {missing}; tidy rows come from `ablate`, "
                         "an experiment's out= CSV or a reproduce folder's tidy/*.csv.")
    for c in df.columns:
        if c in TEXT_COLUMNS or not (df[c].dtype == object
                                     or pd.api.types.is_string_dtype(df[c])):
            continue
        filled = df[c][df[c] != ""]
        num = pd.to_numeric(filled, errors="coerce")
        if len(filled) and num.notna().all():
            df[c] = pd.to_numeric(df[c].where(df[c] != ""), errors="coerce")
    return df
