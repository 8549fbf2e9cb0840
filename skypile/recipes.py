"""Declared recipes: the one place that knows which stages a job runs, and in what order.

A recipe is a source plus an ordered list of step names.  Each name is built
from its own section of the run config (:mod:`skypile.config`), so a stage's
parameters live in exactly one place.  A step is either a per-document stage
(``doc -> Document | Dropped``) or a corpus stage (:mod:`skypile.corpus`); the
executors cut the list into passes at the corpus stages
(:func:`skypile.executor.plan.compile_passes`) and run it in process or on
Beam.  ``steps:`` in a run config replaces a recipe's list, e.g. to run the web
job without exact dedup, or to add a stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from skypile.config import ConfigError, RunConfig

RECIPES: dict[str, tuple[str, list[str]]] = {
    # name: (source kind, steps)
    "web": ("warc", ["extract", "langid", "lang_filter", "length", "unique_ids", "exact_dedup", "tokenize"]),
    "export": ("documents", ["unique_ids", "tokenize"]),
}


def _extract(cfg: RunConfig) -> Any:
    from skypile.extractors.html import HtmlExtractor

    c = cfg.extract
    return HtmlExtractor(
        max_bytes=c.max_page_bytes,
        include_comments=c.include_comments,
        include_tables=c.include_tables,
        fast=c.fast,
        line_filter=c.lines if c.line_cleanup else None,
    )


def _langid(cfg: RunConfig) -> Any:
    from skypile.filters.language import LanguageId

    return LanguageId(model_path=cfg.langid.model, max_chars=cfg.langid.max_chars)


def _lang_filter(cfg: RunConfig) -> Any:
    from skypile.filters.language import LanguageFilter

    return LanguageFilter(keep=tuple(cfg.lang_filter.keep), min_score=cfg.lang_filter.min_score)


def _length(cfg: RunConfig) -> Any:
    from skypile.filters.length import LengthFilter

    return LengthFilter(min_words=cfg.length.min_words, min_cjk_chars=cfg.length.min_cjk_chars)


def _unique_ids(cfg: RunConfig) -> Any:
    from skypile.dedup.unique_ids import UniqueIds

    return UniqueIds()


def _exact_dedup(cfg: RunConfig) -> Any:
    from skypile.dedup.exact import ExactDedup

    return ExactDedup()


def _buckets(cfg: RunConfig) -> Any:
    from skypile.quality.buckets import ScoreBuckets

    import dataclasses

    from skypile.document import DocMetadata

    c = cfg.buckets
    scores = sorted(f.name for f in dataclasses.fields(DocMetadata) if f.type in ("float", "int"))
    if c.score not in scores:
        raise ConfigError(f"buckets.score {c.score!r} is not a numeric document score (known: {', '.join(scores)})")
    if len(c.cuts) != 2:
        raise ConfigError(f"buckets.cuts takes two percentiles, got {c.cuts}")
    try:
        return ScoreBuckets(score=c.score, higher_is_better=c.higher_is_better, cuts=(c.cuts[0], c.cuts[1]), keep=tuple(c.keep))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _tokenize(cfg: RunConfig) -> Any:
    from skypile.tokenizer.spm import Tokenize

    return Tokenize(cfg.tokenize.model)


STEPS: dict[str, Callable[[RunConfig], Any]] = {
    "extract": _extract,
    "langid": _langid,
    "lang_filter": _lang_filter,
    "length": _length,
    "unique_ids": _unique_ids,
    "exact_dedup": _exact_dedup,
    "buckets": _buckets,
    "tokenize": _tokenize,
}


def _source(kind: str, cfg: RunConfig) -> Any:
    from skypile.readers.sources import DocumentSource, WarcSource

    if kind == "warc":
        return WarcSource(cfg.input.source, cfg.input.max_payload_bytes, cfg.input.split_size)
    return DocumentSource(cfg.input.source)


@dataclass
class Recipe:
    name: str
    source: Any  # skypile.readers.sources.WarcSource | DocumentSource
    steps: list[Any] = field(default_factory=list)

    @property
    def stage_names(self) -> list[str]:
        """Every stage that counts records, in order: ``read``, the steps, ``write``."""
        return [self.source.name, *(s.name for s in self.steps), "write"]


def build_recipe(cfg: RunConfig) -> Recipe:
    """The recipe ``cfg.recipe`` (with ``cfg.steps`` replacing its steps when given), built from ``cfg``."""
    if cfg.recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {cfg.recipe!r} (known: {', '.join(RECIPES)})")
    kind, default_steps = RECIPES[cfg.recipe]
    names = cfg.steps or default_steps
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        raise ConfigError(f"unknown step(s) {', '.join(unknown)} (known: {', '.join(STEPS)})")
    if len(set(names)) != len(names):
        raise ConfigError(f"a step appears twice in {names}")
    return Recipe(cfg.recipe, _source(kind, cfg), [STEPS[n](cfg) for n in names])
