"""``skypile models build``: make every model the pipeline needs from data, by recipe.

Recipes live in ``models/<name>/recipe.json`` (inputs are relative to the shared
data folder); outputs go to the git-ignored build folder.  Nothing is downloaded.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from skypile.data_paths import REPO_ROOT, models_build_dir, shared_data_dir


def recipes_dir() -> Path:
    return REPO_ROOT / "models"


def load_recipes(root: Path | None = None) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root or recipes_dir()).glob("*/recipe.json"))]


def _resolve_inputs(recipe: dict, data_dir: Path, scratch: Path) -> list[str]:
    inputs = [data_dir / rel for rel in recipe["inputs"]]
    present = [str(p) for p in inputs if p.exists()]
    if present:
        return present
    if recipe.get("fallback") == "default_warc":
        from skypile.readers.warc_builder import build_default_warc

        path = scratch / "default.warc.gz"
        build_default_warc(str(path))
        return [str(path)]
    raise FileNotFoundError(f"recipe {recipe['name']}: none of its inputs exist under {data_dir}")


def build_models(data_dir: Path | None = None, out_dir: Path | None = None, force: bool = False) -> dict[str, str]:
    """Build each recipe's artifact unless it already exists; returns name → path."""
    data_dir = data_dir or shared_data_dir()
    out_dir = out_dir or models_build_dir()
    built: dict[str, str] = {}
    for recipe in load_recipes():
        target = out_dir / recipe["output"]
        if target.exists() and not force:
            built[recipe["name"]] = str(target)
            continue
        if recipe["kind"] == "sentencepiece_bpe":
            from skypile.tokenizer.spm import train_tokenizer

            with tempfile.TemporaryDirectory() as scratch:
                inputs = _resolve_inputs(recipe, data_dir, Path(scratch))
                built[recipe["name"]] = train_tokenizer(inputs, str(target.parent), vocab_size=recipe["vocab_size"])
        else:
            raise ValueError(f"unknown recipe kind {recipe['kind']!r}")
    return built
