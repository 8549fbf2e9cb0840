"""Quality scoring and CCNet-style bucketing (head / middle / tail from percentiles).

* :mod:`~skypile.quality.text` — CCNet's normalization, shared by training and scoring;
* :mod:`~skypile.quality.perplexity` — stage ``perplexity`` (KenLM 5-gram per language);
* :mod:`~skypile.quality.ref_classifier` — stage ``ref_prob`` (fastText Wikipedia-reference classifier);
* :mod:`~skypile.quality.thresholds` — stored per-language percentiles and stage ``quality_bucket``;
* :mod:`~skypile.quality.buckets` — corpus stage ``buckets`` (percentiles fitted on the run itself);
* :mod:`~skypile.quality.corpora`, :mod:`~skypile.quality.kenlm_build`, :mod:`~skypile.quality.build` —
  ``skypile models build`` for these models; :mod:`~skypile.quality.score` — ``skypile score``.
"""
