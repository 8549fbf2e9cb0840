"""``skypile models build`` for the quality models: one builder per recipe kind, one manifest entry each.

Kinds: ``kenlm`` (:mod:`skypile.quality.kenlm_build`), ``fasttext_ref``
(:mod:`skypile.quality.ref_classifier`) and ``quality_thresholds``
(:mod:`skypile.quality.thresholds`, which needs the other two: its recipe says
so with ``"needs"``).  The ordinary web text both the classifier and the
thresholds use is read (and its HTML pages extracted) once per build, through
``ctx``.
"""

from __future__ import annotations

from pathlib import Path

from skypile.quality.corpora import Text, web_texts

KINDS = ("kenlm", "fasttext_ref", "quality_thresholds")


def _web(recipe: dict, data_dir: Path, ctx: dict) -> dict[str, list[Text]]:
    opts = recipe.get("web", {})
    key = ("web", str(data_dir), tuple(recipe["langs"]), tuple(sorted(opts.items())))
    if key not in ctx:
        ctx[key] = {lang: web_texts(data_dir, lang, **opts) for lang in recipe["langs"]}
    return ctx[key]


def build_recipe(recipe: dict, data_dir: Path, out_dir: Path, ctx: dict, progress: bool = True) -> dict:
    """Build one quality recipe into ``out_dir``; returns its manifest entry (files relative to ``path``)."""
    kind = recipe["kind"]
    if kind == "kenlm":
        from skypile.quality.kenlm_build import build_kenlm

        return build_kenlm(recipe, data_dir, out_dir, progress)
    if kind == "fasttext_ref":
        from skypile.quality.ref_classifier import build_ref_classifier

        return build_ref_classifier(recipe, data_dir, out_dir, _web(recipe, data_dir, ctx), progress)
    if kind == "quality_thresholds":
        from skypile.quality.thresholds import build_thresholds

        return build_thresholds(recipe, out_dir, _web(recipe, data_dir, ctx), progress)
    raise ValueError(f"unknown quality recipe kind {kind!r} (known: {', '.join(KINDS)})")
