"""Analysis of saved results: paper-layout tables, statistics, token counts.

* :mod:`~icl_tokens.analysis.tables`: accuracy per seed, mean ± std, the paper's layouts.
* :mod:`~icl_tokens.analysis.stats`: Table 15's t-tests (Holm option), bootstrap intervals,
  paired differences with effect sizes.
* :mod:`~icl_tokens.analysis.metrics`: the per-example label log-probability margin and other
  continuous columns from the ``score_<label>`` columns.
* :mod:`~icl_tokens.analysis.calibration`: contextual calibration (Zhao et al., 2021) and
  calibrated accuracy.
* :mod:`~icl_tokens.analysis.counts`: token counts per category.
"""
