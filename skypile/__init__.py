"""SkyPile: build a Skywork-style pretraining corpus (web crawl in, tokenized shards out)."""

__version__ = "0.1.0"
