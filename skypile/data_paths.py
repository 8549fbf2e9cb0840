"""Where the shared real data lives (never copied into the repo).

``SKYPILE_SHARED_DATA`` overrides the default ``<repo>/../shared/data``.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    env = os.environ.get("SKYPILE_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    return shared_data_dir().joinpath(*parts)


def models_build_dir() -> Path:
    """Built model artifacts (tokenizers, KenLM, classifiers): git-ignored."""
    env = os.environ.get("SKYPILE_MODELS_DIR")
    return Path(env) if env else REPO_ROOT / "models" / "build"
