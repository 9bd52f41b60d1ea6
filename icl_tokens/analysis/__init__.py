"""Analysis of saved results: paper-layout tables, statistics, token counts.

* :mod:`~icl_tokens.analysis.tables`: accuracy per seed, mean ± std, the paper's layouts.
* :mod:`~icl_tokens.analysis.inference`: means, intervals and tests on the crossed seeds x
  examples design, from the variance components of :mod:`~icl_tokens.analysis.variance`.
* :mod:`~icl_tokens.analysis.stats`: Table 15's t-tests (Holm option), cell intervals, paired
  differences; :mod:`~icl_tokens.analysis.table15` lays Table 15 out beside the paper's.
* :mod:`~icl_tokens.analysis.metrics`: the per-example label log-probability margin and other
  continuous columns from the ``score_<label>`` columns (:mod:`~icl_tokens.analysis.scores`).
* :mod:`~icl_tokens.analysis.calibration`: contextual calibration (Zhao et al., 2021) and
  calibrated accuracy.
* :mod:`~icl_tokens.analysis.counts`: token counts per category.
"""
