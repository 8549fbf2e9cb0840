"""LLaMA-style pretraining on SkyPile shards; installed as ``skypile.trainer``. The only place that imports torch."""
