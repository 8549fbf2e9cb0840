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
    "web": ("warc", ["extract", "langid", "lang_filter", "length", "unique_ids", "exact_dedup", "segments", "near_dedup",
                     "perplexity", "ref_prob", "quality_bucket", "tokenize"]),
    "export": ("documents", ["unique_ids", "tokenize"]),
    "dedup": ("documents", ["unique_ids", "exact_dedup", "segments", "near_dedup"]),
    "code": ("code", ["code_lang", "code_filter", "exact_dedup", "tokenize", "code_cap"]),
    "parallel": ("parallel", ["pair_filter", "exact_dedup", "tokenize"]),
}


def _extract(cfg: RunConfig) -> Any:
    from skypile.extractors.html import HtmlExtractor

    return HtmlExtractor.from_config(cfg.extract)


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


def _segments(cfg: RunConfig) -> Any:
    from skypile.dedup.segments import RecurringSegments

    return RecurringSegments(min_docs=cfg.segments.min_docs, min_chars=cfg.segments.min_chars)


def _near_dedup(cfg: RunConfig) -> Any:
    from skypile.dedup.near import NearDedup

    c = cfg.near_dedup
    return NearDedup(threshold=c.threshold, num_perm=c.num_perm, bands=c.bands, rows=c.rows, word_ngram=c.word_ngram,
                     char_ngram=c.char_ngram, seed=c.seed, rounds=c.rounds)


def _semantic_dedup(cfg: RunConfig) -> Any:
    from skypile.dedup.encoders import make_encoder
    from skypile.dedup.semantic import SemanticDedup

    c = cfg.semantic_dedup
    encoder = make_encoder(c.encoder, c.model)
    return SemanticDedup(encoder, threshold=c.threshold, n_clusters=c.n_clusters, sample_size=c.sample_size,
                         max_group=c.max_group, dense_min_docs=c.dense_min_docs, dense_cos=c.dense_cos, seed=c.seed)


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
    return ScoreBuckets(score=c.score, higher_is_better=c.higher_is_better, cuts=(c.cuts[0], c.cuts[1]), keep=tuple(c.keep))


def _perplexity(cfg: RunConfig) -> Any:
    from skypile.quality.perplexity import Perplexity

    stage = Perplexity(model_dir=cfg.perplexity.models, langs=tuple(cfg.perplexity.langs))
    stage.check()  # a missing or corrupt model stops the run here, before any work
    return stage


def _ref_prob(cfg: RunConfig) -> Any:
    from skypile.quality.ref_classifier import RefProb

    stage = RefProb(model_path=cfg.ref_prob.model, max_chars=cfg.ref_prob.max_chars)
    stage.check()
    return stage


def _quality_bucket(cfg: RunConfig) -> Any:
    from skypile.quality.thresholds import QualityBucket

    c = cfg.quality_bucket
    if len(c.cuts) != 2:
        raise ConfigError(f"quality_bucket.cuts takes two percentiles, got {c.cuts}")
    return QualityBucket(reference=c.reference, score=c.score, cuts=(c.cuts[0], c.cuts[1]), keep=tuple(c.keep))


def _tokenize(cfg: RunConfig) -> Any:
    from skypile.tokenizer.spm import Tokenize

    return Tokenize(cfg.tokenize.model)


def _code_lang(cfg: RunConfig) -> Any:
    from skypile.code.filters import CodeLanguage

    return CodeLanguage(keep=tuple(cfg.code.languages))


def _code_filter(cfg: RunConfig) -> Any:
    from skypile.code.filters import CodeFilter

    c = cfg.code
    return CodeFilter(max_line_length=c.max_line_length, max_mean_line_length=c.max_mean_line_length,
                      min_alnum_fraction=c.min_alnum_fraction, min_alpha_per_token=c.min_alpha_per_token,
                      autogen_lines=c.autogen_lines)


def _code_cap(cfg: RunConfig) -> Any:
    from skypile.code.markup_cap import MarkupShareCap

    return MarkupShareCap(languages=cfg.code.markup_languages, max_share=cfg.code.max_markup_share)


def _pair_filter(cfg: RunConfig) -> Any:
    from skypile.parallel.pairs import PairFilter

    c = cfg.parallel
    return PairFilter(min_lang_score=c.min_lang_score, min_han_share=c.min_han_share, min_length_ratio=c.min_length_ratio,
                      max_length_ratio=c.max_length_ratio, model_path=cfg.langid.model)


STEPS: dict[str, Callable[[RunConfig], Any]] = {
    "extract": _extract,
    "langid": _langid,
    "lang_filter": _lang_filter,
    "length": _length,
    "unique_ids": _unique_ids,
    "exact_dedup": _exact_dedup,
    "segments": _segments,
    "near_dedup": _near_dedup,
    "semantic_dedup": _semantic_dedup,
    "buckets": _buckets,
    "perplexity": _perplexity,
    "ref_prob": _ref_prob,
    "quality_bucket": _quality_bucket,
    "tokenize": _tokenize,
    "code_lang": _code_lang,
    "code_filter": _code_filter,
    "code_cap": _code_cap,
    "pair_filter": _pair_filter,
}


def _source(kind: str, cfg: RunConfig) -> Any:
    from skypile.readers.sources import DocumentSource, WarcSource

    if kind == "warc":
        return WarcSource(cfg.input.source, cfg.input.max_payload_bytes, cfg.input.split_size)
    if kind == "code":
        from skypile.readers.code import CodeSource

        return CodeSource(cfg.input.source, cfg.code.max_file_bytes, cfg.input.split_size)
    if kind == "parallel":
        from skypile.readers.parallel import ParallelSource

        return ParallelSource(cfg.input.source, cfg.parallel.zh_column, cfg.parallel.en_column)
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
    try:
        steps = [STEPS[n](cfg) for n in names]
    except (ValueError, FileNotFoundError) as exc:  # a stage refused a parameter, or a model it checked: the config's fault
        raise ConfigError(str(exc)) from None
    return Recipe(cfg.recipe, _source(kind, cfg), steps)
