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


# ---------------------------------------------------------------------------------------------
# Quality models (KenLM en/zh, the Wikipedia-reference classifier, bucket thresholds): the web
# recipe scores every page with them.  Built once per session from the shared data with the real
# recipes (models/kenlm, models/wikiref, models/quality_thresholds), made smaller for speed:
# 2,000 (en) and 5,000 (zh) SentencePiece pieces and 20 HTML pages per dataset instead of all.

SMALL = {"kenlm": {"sp_vocab_size": {"en": 2000, "zh": 5000}}, "web": {"max_reviews": 300, "seed": 0, "max_pages": 20}}


def quality_recipe(name: str) -> dict:
    import json

    from skypile.data_paths import REPO_ROOT

    recipe = json.loads((REPO_ROOT / "models" / name / "recipe.json").read_text())
    if name == "kenlm":
        recipe.update(SMALL["kenlm"])
    if "web" in recipe:
        recipe["web"] = SMALL["web"]
    return recipe


def build_quality(data: Path, out: Path, names: list[str], ctx: dict, **overrides) -> dict:
    from skypile.models_build import write_manifest
    from skypile.quality.build import build_recipe

    entries = {n: build_recipe({**quality_recipe(n), **overrides.get(n, {})}, data, out, ctx, progress=False) for n in names}
    write_manifest(out, data, entries)
    return entries


@pytest.fixture(scope="session")
def quality_models(tmp_path_factory) -> dict:
    """Small real quality models; ``SKYPILE_MODELS_DIR`` points at them for the rest of the session, so
    the web recipe's default model paths (``perplexity.models``, ...) find them."""
    from skypile.quality.kenlm_build import KenLMMissing, kenlm_tool

    try:
        kenlm_tool("lmplz"), kenlm_tool("build_binary")
    except KenLMMissing as exc:
        pytest.fail(str(exc))  # never a skip: scripts/install.sh builds them
    data = require_shared("wiki").parent
    out = tmp_path_factory.mktemp("models")
    ctx: dict = {}
    entries = build_quality(data, out, ["kenlm", "wikiref", "quality_thresholds"], ctx)
    os.environ["SKYPILE_MODELS_DIR"] = str(out)
    return {"out": out, "ctx": ctx, "entries": entries}
