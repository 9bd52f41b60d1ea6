"""Information aggregation (the paper's second claim; paper-spec E9): do the representations of
performance-critical tokens aggregate information from content tokens?

Three kinds of evidence, one module each:

* :mod:`~icl_tokens.aggregation.block` — causal: block demonstration template/stopword/label
  tokens from reading demonstration content, then rerun the test-example conditions
  (:mod:`~icl_tokens.aggregation.experiment`; layer windows in
  :mod:`~icl_tokens.aggregation.windows`);
* :mod:`~icl_tokens.aggregation.probes` — decodable: linear probes on the residual stream (a
  whole run: :mod:`~icl_tokens.aggregation.probe_run`);
* :mod:`~icl_tokens.aggregation.attention_mass` — observed: where the test example's attention
  goes (a whole run: :mod:`~icl_tokens.aggregation.attention_run`).

The probe and attention runs share one resumable loop (:mod:`~icl_tokens.aggregation.loop`).
"""
