"""Percentile buckets (a table-only corpus stage): thresholds from mergeable histograms, shares as fitted."""

from __future__ import annotations

import math
import random

import pytest

from skypile.corpus import DocRef, MemColl, run_corpus_stage
from skypile.document import DocMetadata, Document
from skypile.quality.buckets import Histogram, ScoreBuckets, quantize, top_threshold


def _docs(n: int, lang: str, seed: int) -> list[Document]:
    rng = random.Random(seed)
    return [
        Document(id=f"{lang}{i}", text="t", source="s", lang=lang, metadata=DocMetadata(lang_score=rng.random()))
        for i in range(n)
    ]


def test_quantize_keeps_four_significant_digits():
    assert quantize(0.123456) == 0.1235 and quantize(123456.0) == 123500.0 and quantize(-2.71828) == -2.718
    assert quantize(0.0) == 0.0


def test_histograms_merge_in_any_order_to_the_same_percentiles():
    values = [quantize(random.Random(1).random() * i) for i in range(1, 2001)]
    h = Histogram()
    whole = h.extract(h.merge([h.add(h.create(), v) for v in values]))
    parts = [values[i::7] for i in range(7)]
    accs = []
    for part in parts:
        acc = h.create()
        for v in part:
            acc = h.add(acc, v)
        accs.append(acc)
    merged = h.extract(h.merge(reversed(accs)))
    assert merged == whole
    for pct in (1, 30, 60, 99):
        exact = sorted(values, reverse=True)[math.ceil(pct / 100 * len(values)) - 1]
        assert top_threshold(merged, pct) == exact
    assert top_threshold({0.5: 10}, 30) == 0.5  # a plateau is never split


def test_bucket_shares_match_the_cuts_per_language():
    docs = _docs(3000, "en", 1) + _docs(1000, "zh", 2)
    random.Random(3).shuffle(docs)
    stage = ScoreBuckets(score="lang_score", cuts=(30, 60), keep=("head", "middle", "tail"))
    kept, dropped, table = run_corpus_stage(stage, docs)
    assert not dropped and set(table["languages"]) == {"en", "zh"} and table["languages"]["en"]["n"] == 3000
    for lang, n in (("en", 3000), ("zh", 1000)):
        shares = {b: sum(1 for d in kept if d.lang == lang and d.metadata.bucket == b) / n for b in ("head", "middle", "tail")}
        assert shares["head"] == pytest.approx(0.30, abs=0.01) and shares["middle"] == pytest.approx(0.30, abs=0.01)
        best_tail = max(d.metadata.lang_score for d in kept if d.lang == lang and d.metadata.bucket == "tail")
        worst_head = min(d.metadata.lang_score for d in kept if d.lang == lang and d.metadata.bucket == "head")
        assert best_tail < worst_head


def test_lower_is_better_and_default_keep_drops_the_tail():
    docs = [Document(id=str(i), text="t", source="s", lang="en", metadata=DocMetadata(n_chars=i)) for i in range(1, 101)]
    stage = ScoreBuckets(score="n_chars", higher_is_better=False)
    kept, dropped, _ = run_corpus_stage(stage, docs)
    assert len(kept) == 60 and len(dropped) == 40  # exactly 30% head, 30% middle on distinct scores
    assert {d.reason for d in dropped} == {"bucket_tail"} and min(int(d.id) for d in dropped) == 61
    assert {d.metadata.bucket for d in kept if int(d.id) <= 30} == {"head"}


def test_a_language_outside_the_table_lands_in_the_tail():
    stage = ScoreBuckets(keep=("head", "middle", "tail"))
    decision = stage.decide(MemColl(f for i, d in enumerate(_docs(100, "en", 4)) for f in stage.facts(d, DocRef("s", i))))
    table = decision.table.value()
    ja = Document(id="ja", text="t", source="s", lang="ja", metadata=DocMetadata(lang_score=0.99))
    assert stage.apply(ja, None, table).metadata.bucket == "tail"


@pytest.mark.parametrize("kwargs", [{"cuts": (60, 30)}, {"cuts": (0, 50)}, {"keep": ("best",)}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        ScoreBuckets(**kwargs)
