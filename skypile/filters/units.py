"""Text-size units: CJK characters and non-CJK words (see :mod:`skypile.filters.length`).

Its own module, free of the Arrow schema and stage imports, so the extraction
helper process (:mod:`skypile.extractors.bounded`) can measure text without them.
"""

from __future__ import annotations

import re

# Scripts written without spaces between words, so measured per character: CJK Unified
# Ideographs (+ Ext. A), compatibility ideographs, Ext. B-F (astral), and Japanese kana
# (so a Japanese page is judged by its length and left to langid, not lost as "boilerplate").
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_CJK_RE = re.compile(f"[{_CJK}]")
# A "word": a run of letters/digits that contains no CJK ideograph (word characters, minus "_"
# and CJK, as one negated class: about twice as fast as a per-character lookahead).
_WORD_RE = re.compile(f"[^\\W_{_CJK}]+")


def cjk_count(text: str) -> int:
    """Number of CJK ideographs and kana (punctuation not counted)."""
    if text.isascii():  # a flag CPython keeps on the string: English lines skip the scan
        return 0
    return len(_CJK_RE.findall(text))


def word_count(text: str) -> int:
    """Number of non-CJK words (runs of letters/digits)."""
    return len(_WORD_RE.findall(text))


def text_units(text: str) -> int:
    """CJK characters plus non-CJK words: one size measure for both languages."""
    return cjk_count(text) + word_count(text)


def is_cjk_text(text: str) -> bool:
    """True when CJK characters outnumber the other words (i.e. measure it in characters)."""
    return cjk_count(text) > word_count(text)
