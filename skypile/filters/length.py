"""Minimum-length filter, in the text-size units every stage shares (:mod:`skypile.filters.units`).

Chinese has no spaces, so "words" mean nothing there: a Chinese document is
measured in CJK characters, an English one in words.  :func:`~skypile.filters.units.text_units` mixes
the two (CJK characters + non-CJK words) so a Chinese page with some English
terms, or an English page quoting Chinese, is measured fairly either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from skypile.document import Document, Dropped
from skypile.filters.units import cjk_count, word_count
from skypile.stage import drop

STAGE = "length"


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
