"""Evaluation code: how good an output is against ground truth (``extraction``, ``dedup``), and
how good a model is: domain perplexity / bits per character (``ppl``) and benchmark leakage
(``leakage``), both on per-document scores (``scoring``) of a trainer run or Hugging Face model
(``models``)."""
