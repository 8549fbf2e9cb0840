"""Shared fixtures.  Tests that need ../shared/data skip locally when it is absent, but
fail in CI (``CI`` set), where the data is always present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skypile.data_paths import shared_path


def require_shared(*parts: str) -> Path:
    path = shared_path(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"shared data missing in CI: {path}")
        pytest.skip(f"shared data not present: {path}")
    return path


@pytest.fixture(scope="session")
def shared():
    """``shared("warc", "dolma")`` -> Path, failing in CI / skipping locally when absent."""
    return require_shared


@pytest.fixture(scope="session")
def tokenizer_model(tmp_path_factory) -> str:
    """A small real BPE tokenizer trained on the shared en + zh Wikipedia text."""
    from skypile.tokenizer.spm import train_tokenizer

    inputs = [
        str(require_shared("wiki", "en", "wikitext-2-raw-test.txt")),
        str(require_shared("wiki", "zh", "zhwiki-extract-AA-wiki_00.txt")),
    ]
    return train_tokenizer(inputs, str(tmp_path_factory.mktemp("tokenizer")), vocab_size=4000)
