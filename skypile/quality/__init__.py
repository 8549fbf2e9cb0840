"""Quality scoring and CCNet-style bucketing (head / middle / tail from percentiles)."""
