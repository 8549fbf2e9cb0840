"""The run config: one typed tree, defaults < YAML file < flags < --set, clear errors."""

from __future__ import annotations

import pytest

from skypile.config import ConfigError, RunConfig, apply_dict, apply_setting, from_dict, parse_size
from skypile.recipes import build_recipe


@pytest.mark.parametrize(
    "text, n",
    [("64KB", 64_000), ("512MB", 512_000_000), ("1GiB", 2**30), ("1.5 MiB", int(1.5 * 2**20)), ("4096", 4096), (300, 300), ("10b", 10)],
)
def test_sizes(text, n):
    assert parse_size(text) == n


@pytest.mark.parametrize("bad", ["", "MB", "12 parsecs", "-3KB", True])
def test_bad_sizes(bad):
    with pytest.raises(ConfigError):
        parse_size(bad)


def test_layers_override_in_order_and_types_are_checked():
    cfg = from_dict({"length": {"min_words": 30}, "output": {"shard_size": "64KB"}, "lang_filter": {"keep": "en, zh ,ja"}})
    assert cfg.length.min_words == 30 and cfg.length.min_cjk_chars == 100  # untouched keys keep their defaults
    assert cfg.output.shard_size == 64_000 and cfg.lang_filter.keep == ["en", "zh", "ja"]
    apply_setting(cfg, "length.min_words=40")
    apply_setting(cfg, "output.overwrite=true")
    apply_setting(cfg, "steps=[extract, tokenize]")
    assert cfg.length.min_words == 40 and cfg.output.overwrite is True and cfg.steps == ["extract", "tokenize"]
    with pytest.raises(ConfigError, match="unknown config key 'length.max_words'"):
        apply_setting(cfg, "length.max_words=3")
    with pytest.raises(ConfigError, match="lang_filter.min_score: expected a number"):
        apply_dict(cfg, {"lang_filter": {"min_score": "high"}})
    with pytest.raises(ConfigError, match="output: expected a mapping"):
        apply_dict(cfg, {"output": 3})


@pytest.mark.usefixtures("quality_models")  # the web recipe loads the quality models
def test_frozen_sections_are_replaced_and_reach_the_stage():
    cfg = from_dict({"extract": {"lines": {"prose_words": 7}, "fast": True}})
    extractor = build_recipe(cfg).steps[0]
    assert extractor.fast is True and extractor.line_filter.prose_words == 7
    assert RunConfig().extract.lines.prose_words == 10  # defaults are not shared between configs
    assert build_recipe(from_dict({"extract": {"line_cleanup": False}})).steps[0].line_filter is None


def test_fingerprint_ignores_how_a_run_is_executed():
    a, b = RunConfig(), RunConfig()
    b.exec.runner, b.exec.workers, b.output.overwrite, b.output.keep_work = "local", 7, True, True
    assert a.fingerprint_dict() == b.fingerprint_dict()
    b.length.min_words = 51
    assert a.fingerprint_dict() != b.fingerprint_dict()


@pytest.mark.usefixtures("quality_models")  # the web recipe loads the quality models
def test_recipes_are_built_from_their_sections():
    cfg = from_dict({"lang_filter": {"keep": ["zh"], "min_score": 0.8}, "length": {"min_cjk_chars": 50},
                     "segments": {"min_docs": 3}, "near_dedup": {"threshold": 0.7}})
    steps = {s.name: s for s in build_recipe(cfg).steps}
    assert list(steps)[:7] == ["extract", "langid", "lang_filter", "length", "unique_ids", "exact_dedup", "segments"]
    assert list(steps).index("near_dedup") > list(steps).index("segments") and list(steps)[-1] == "tokenize"
    assert steps["lang_filter"].keep == ("zh",) and steps["lang_filter"].min_score == 0.8
    assert steps["length"].min_cjk_chars == 50
    assert steps["segments"].min_docs == 3 and steps["near_dedup"].threshold == 0.7
    export = build_recipe(from_dict({"recipe": "export"}))
    assert export.source.kind == "documents" and [s.name for s in export.steps] == ["unique_ids", "tokenize"]
