"""Evaluation code: how good an output is against ground truth (extraction today; perplexity and leakage next)."""
