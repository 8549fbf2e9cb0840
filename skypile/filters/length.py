"""Minimum-length filter, and the text-size units the other stages share.

Chinese has no spaces, so "words" mean nothing there: a Chinese document is
measured in CJK characters, an English one in words.  :func:`text_units` mixes
the two (CJK characters + non-CJK words) so a Chinese page with some English
terms, or an English page quoting Chinese, is measured fairly either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from skypile.document import Document, Dropped
from skypile.stage import drop

STAGE = "length"

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


@dataclass
class LengthFilter:
    """Drop documents too short to be useful pretraining text (reason ``too_short``).

    Chinese documents (``lang == "zh"``, or mostly CJK when ``lang`` is unset) need
    ``min_cjk_chars`` CJK characters; everything else needs ``min_words`` words.
    Mixed text counts both units, so 60 CJK characters + 40 English words pass as 100.
    """

    min_words: int = 50
    min_cjk_chars: int = 100
    name: str = STAGE

    def __call__(self, doc: Document) -> Document | Dropped:
        text = doc.text or ""
        n_cjk, n_words = cjk_count(text), word_count(text)
        chinese = doc.lang == "zh" if doc.lang else n_cjk > n_words
        need = self.min_cjk_chars if chinese else self.min_words
        if n_cjk + n_words < need:
            unit = "CJK chars" if chinese else "words"
            return drop(self.name, "too_short", doc, f"{n_cjk} CJK chars + {n_words} words < {need} {unit}")
        return doc
