"""The quality models' building blocks that need no model: CCNet normalization, the split, AUC, stored thresholds."""

from __future__ import annotations

import json
import random
import unicodedata

import pytest

from skypile.document import DocMetadata, Document
from skypile.quality.corpora import detokenize_wikitext, is_held_out, wiki_articles
from skypile.quality.ref_classifier import precision_at, roc_auc
from skypile.quality.text import classifier_line, normalize, paragraphs, strip_accents
from skypile.quality.thresholds import QualityBucket, percentile_table


def test_normalization_follows_ccnet():
    assert normalize("  Crème Brûlée costs €12,50 — “today”！ ") == 'creme brulee costs €00,00  -  "today"!'  # — is " - " in CCNet's table
    assert normalize("數學是利用符号语言研究數量、结构。") == "數學是利用符号语言研究數量,结构."
    assert normalize("tab\there\x07") == "tabhere"  # non-printing characters removed
    assert paragraphs("First line.\n\n  \nSecond LINE 2024") == ["first line.", "second line 0000"]
    assert classifier_line("Hello 數學!\nWorld") == "hello 數 學 ! world"


def test_strip_accents_removes_every_nonspacing_mark_like_the_per_character_definition():
    def reference(line: str) -> str:
        return "".join(c for c in unicodedata.normalize("NFD", line) if unicodedata.category(c) != "Mn")

    rng = random.Random(0)
    for _ in range(3000):
        s = "".join(chr(rng.choice([rng.randrange(0x20, 0x3000), rng.randrange(0x3000, 0xA000), rng.randrange(0x10000, 0x1F000)]))
                    for _ in range(12))
        assert strip_accents(s) == reference(s)
    assert strip_accents("ガギ naïve") == "カキ naive"


def test_wikitext_tokenization_is_undone():
    assert detokenize_wikitext("a well @-@ known 1 @,@ 000 men , who ( said ) \" yes \" . It 's") == \
        'a well-known 1,000 men, who (said) "yes". It\'s'


def test_held_out_split_is_seeded_stable_and_near_its_fraction():
    keys = [f"wiki/en/article {i}" for i in range(4000)]
    held = [k for k in keys if is_held_out(k, 0, 0.2)]
    assert held == [k for k in keys if is_held_out(k, 0, 0.2)]
    assert 0.18 < len(held) / len(keys) < 0.22
    assert held != [k for k in keys if is_held_out(k, 1, 0.2)]


def test_wikipedia_articles_are_split_by_title(shared):
    data = shared("wiki").parent
    en, zh = wiki_articles(data, "en"), wiki_articles(data, "zh")
    assert len(en) == 62 and en[0].key == "wiki/en/Robert Boulter" and " @-@ " not in en[0].text
    assert len(zh) == 64 and zh[0].key == "wiki/zh/数学" and "<doc" not in zh[0].text
    with pytest.raises(ValueError, match="no Wikipedia text"):
        wiki_articles(data, "fr")


def test_roc_auc_and_precision_match_their_definitions():
    rng = random.Random(3)
    scores = [round(rng.random(), 2) for _ in range(300)]  # with ties
    labels = [int(rng.random() < s) for s in scores]
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    pairwise = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    assert roc_auc(scores, labels) == pytest.approx(pairwise, abs=1e-12)
    assert precision_at([0.9, 0.8, 0.1, 0.05], [1, 0, 1, 0], 0.5) == 0.5
    with pytest.raises(ValueError):
        roc_auc([0.1, 0.2], [1, 1])


def test_stored_thresholds_give_the_percentile_shares(tmp_path):
    rng = random.Random(5)
    ppl = {lang: [rng.lognormvariate(6, 0.5) for _ in range(2000)] for lang in ("en", "zh")}
    table = {"scores": {"perplexity": {"higher_is_better": False, "languages": {k: percentile_table(v, False) for k, v in ppl.items()}},
                        "ref_prob": {"higher_is_better": True, "languages": {}}}}
    path = tmp_path / "thresholds.json"
    path.write_text(json.dumps(table))
    for cuts in ((30, 60), (10, 50)):
        stage = QualityBucket(str(path), cuts=cuts, keep=("head", "middle", "tail"))
        for lang, values in ppl.items():
            got = [stage.bucket(Document(id="d", text="t", source="s", lang=lang, metadata=DocMetadata(perplexity=v))) for v in values]
            assert got.count("head") / len(got) == pytest.approx(cuts[0] / 100, abs=0.002)
            assert got.count("middle") / len(got) == pytest.approx((cuts[1] - cuts[0]) / 100, abs=0.002)
            best_tail = min(v for v, b in zip(values, got) if b == "tail")
            assert best_tail > max(v for v, b in zip(values, got) if b != "tail")  # lower perplexity is better
    drop = QualityBucket(str(path))(Document(id="d", text="t", source="s", lang="en", metadata=DocMetadata(perplexity=1e9)))
    assert drop.reason == "bucket_tail"


def test_recipes_are_built_after_the_ones_they_need():
    from skypile.models_build import _ordered, load_recipes

    names = [r["name"] for r in _ordered(load_recipes())]
    assert names.index("quality_thresholds") > max(names.index("kenlm"), names.index("wikiref"))
    only = [r for r in load_recipes() if r["name"] == "quality_thresholds"]
    assert [r["name"] for r in _ordered(only)] == ["quality_thresholds"]  # needs already built: fine alone
    with pytest.raises(ValueError, match="need each other"):
        _ordered([{"name": "a", "needs": ["b"]}, {"name": "b", "needs": ["a"]}])
