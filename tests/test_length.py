"""Length filter: words for English, CJK characters for Chinese."""

from __future__ import annotations

from skypile.document import Document, Dropped
from skypile.filters.length import LengthFilter
from skypile.filters.units import cjk_count, is_cjk_text, text_units, word_count


def _doc(text, lang: str = "") -> Document:
    return Document(id="d", text=text, source="test", lang=lang)


def test_counting():
    assert word_count("Hello, world! It's 2024.") == 5  # Hello world It s 2024
    assert cjk_count("你好，世界！Hello") == 4
    assert word_count("你好，世界！Hello") == 1
    assert text_units("中文 and English") == 4
    assert cjk_count("𠀀𠀁") == 2  # CJK Extension B (astral)
    assert is_cjk_text("这是中文 text") and not is_cjk_text("English with 一 char")


def test_english_threshold():
    f = LengthFilter()
    assert isinstance(f(_doc("word " * 49, "en")), Dropped)
    assert isinstance(f(_doc("word " * 50, "en")), Document)
    d = f(_doc("too short", "en"))
    assert d.stage == "length" and d.reason == "too_short" and "2 words" in d.detail


def test_chinese_threshold():
    f = LengthFilter()
    assert isinstance(f(_doc("字" * 99, "zh")), Dropped)
    assert isinstance(f(_doc("字" * 100, "zh")), Document)
    # Chinese punctuation does not count, mixed-in English words do
    assert isinstance(f(_doc("字，" * 60 + " word" * 40, "zh")), Document)
    assert isinstance(f(_doc("字，" * 99, "zh")), Dropped)


def test_language_inferred_when_unset():
    f = LengthFilter()
    assert isinstance(f(_doc("字" * 99)), Dropped)  # mostly CJK -> needs 100 characters
    assert isinstance(f(_doc("字" * 60)), Dropped)
    assert isinstance(f(_doc("word " * 60)), Document)  # English -> 50 words


def test_configurable_and_robust():
    assert isinstance(LengthFilter(min_words=3)(_doc("one two three", "en")), Document)
    assert isinstance(LengthFilter()(_doc("", "en")), Dropped)
    assert isinstance(LengthFilter()(_doc(None, "en")), Dropped)  # type: ignore[arg-type]
