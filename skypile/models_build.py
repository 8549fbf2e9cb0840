"""``skypile models build``: make every model the pipeline needs from data, by recipe.

Recipes live in ``models/<name>/recipe.json`` (inputs are relative to the shared
data folder); outputs go to the git-ignored build folder.  Nothing is downloaded.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from skypile.data_paths import REPO_ROOT, models_build_dir, shared_data_dir

QUALITY_KINDS = ("kenlm", "fasttext_ref", "quality_thresholds")  # built by skypile.quality.build


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


def build_models(
    data_dir: Path | None = None,
    out_dir: Path | None = None,
    force: bool = False,
    names: list[str] | None = None,
    progress: bool = True,
) -> dict[str, str]:
    """Build each recipe's artifact (only ``names`` when given) unless it already exists; returns name → path.

    ``<out>/manifest.json`` records every model built (files with sha256, data, parameters, metrics).
    """
    data_dir = data_dir or shared_data_dir()
    out_dir = out_dir or models_build_dir()
    built: dict[str, str] = {}
    entries: dict[str, dict] = {}
    ctx: dict = {}  # inputs several builders read (the quality models' web text)
    recipes = [r for r in load_recipes() if names is None or r["name"] in names]
    if names is not None and len(recipes) != len(set(names)):
        raise ValueError(f"unknown model(s) {sorted(set(names) - {r['name'] for r in recipes})}")
    for recipe in _ordered(recipes):
        target = out_dir / recipe["output"]
        if target.exists() and not force:
            built[recipe["name"]] = str(target)
            continue
        if recipe["kind"] == "sentencepiece_bpe":
            from skypile.tokenizer.spm import train_tokenizer

            with tempfile.TemporaryDirectory() as scratch:
                inputs = _resolve_inputs(recipe, data_dir, Path(scratch))
                built[recipe["name"]] = train_tokenizer(inputs, str(target.parent), vocab_size=recipe["vocab_size"])
        elif recipe["kind"] == "skypile_vocabulary":  # BPE base + characters + jieba words (skypile.tokenizer.build)
            from skypile.tokenizer.build import build_from_recipe

            built[recipe["name"]] = build_from_recipe(recipe, data_dir, target)
        elif recipe["kind"] in QUALITY_KINDS:  # KenLM, reference classifier, thresholds (skypile.quality.build)
            from skypile.quality.build import build_recipe

            entries[recipe["name"]] = build_recipe(recipe, data_dir, out_dir, ctx, progress)
            built[recipe["name"]] = entries[recipe["name"]]["path"]
        else:
            raise ValueError(f"unknown recipe kind {recipe['kind']!r}")
        entries.setdefault(recipe["name"], {"kind": recipe["kind"], "path": built[recipe["name"]]})
    write_manifest(out_dir, data_dir, entries)
    return built


def _ordered(recipes: list[dict]) -> list[dict]:
    """Recipes after the ones they name in ``"needs"`` (otherwise in folder order)."""
    done: list[dict] = []
    pending = list(recipes)
    while pending:
        names = {r["name"] for r in done}
        ready = [r for r in pending if set(r.get("needs", ())) <= names or not set(r.get("needs", ())) & {p["name"] for p in pending}]
        if not ready:
            raise ValueError(f"recipes need each other: {[r['name'] for r in pending]}")
        done.append(ready[0])
        pending.remove(ready[0])
    return done


def write_manifest(out_dir: Path, data_dir: Path, entries: dict[str, dict]) -> Path:
    """``<out>/manifest.json``: per model its files (sha256, bytes), data, parameters, metrics; kept entries merge."""
    import hashlib

    from skypile.io import atomic_write_text

    path = out_dir / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {"models": {}}
    for name, entry in entries.items():
        base = Path(entry["path"])
        files = entry.get("files") or [base.name]
        root = base if base.is_dir() else base.parent
        if not base.is_dir() and not entry.get("files"):  # a tokenizer-style entry: the whole output folder
            files = sorted(p.name for p in root.iterdir() if p.is_file())
        entry = dict(entry, files=[
            {"path": f, "bytes": (root / f).stat().st_size, "sha256": hashlib.sha256((root / f).read_bytes()).hexdigest()}
            for f in files if (root / f).is_file()
        ])
        manifest["models"][name] = entry
    manifest["data_dir"] = str(data_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(str(path), json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path
