"""The label log-probability columns of tidy rows (``score_<label>``), as a matrix.

The runner writes, for every row, the teacher-forced log-probability of each label word
(:func:`icl_tokens.experiments.runner.result_row`); the continuous metrics
(:mod:`~icl_tokens.analysis.metrics`) and contextual calibration
(:mod:`~icl_tokens.analysis.calibration`) both start from this matrix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..results.records import SCORE_PREFIX

__all__ = ["label_words", "label_scores"]


def label_words(df: pd.DataFrame) -> list[str]:
    """The label words with a ``score_<label>`` column, in column order."""
    words = [c[len(SCORE_PREFIX):] for c in df.columns if c.startswith(SCORE_PREFIX)]
    if not words:
        raise ValueError("the rows have no score_<label> columns; they come from the runner "
                         "(icl_tokens.experiments.runner.result_columns).")
    return words


def label_scores(rows: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """``(labels, Float[n_rows, n_labels])`` of one task's rows (every label column filled).

    Raises:
        ValueError: rows of tasks with different label sets mixed, or a missing score.
    """
    cols = rows[[SCORE_PREFIX + w for w in label_words(rows)]].apply(pd.to_numeric,
                                                                     errors="coerce")
    words = [w for w in label_words(rows) if cols[SCORE_PREFIX + w].notna().any()]
    scores = cols[[SCORE_PREFIX + w for w in words]]
    bad = int(scores.isna().any(axis=1).sum())
    if bad:
        raise ValueError(f"{bad} row(s) lack a score for some of the labels {words}; rows of tasks "
                         "with different label sets must be passed one task at a time (or "
                         "concatenated after add_continuous_metrics).")
    return words, scores.to_numpy(float)
