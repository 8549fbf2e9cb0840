"""A translation pair as a document, and the per-pair checks (stage ``pair_filter``).

One pair is one document: its English paragraph, a newline, then its Chinese
counterpart (:func:`pair_text`), so a model reads each sentence next to its
translation and every pair is counted once in the stats (kept, or dropped with
the rule that failed).  Each side is one line (whitespace runs, newlines
included, become one space), so the first newline always separates the sides.

``pair_filter`` drops a pair whose sides are the same text (``untranslated``),
whose length ratio is implausible for a translation (``length_ratio``: English
characters per Chinese character outside ``[min_length_ratio,
max_length_ratio]``), or whose sides fastText (lid.176) does not identify as
English and Chinese (``en_side_lang``, ``zh_side_lang``).  lid.176 often takes
a short Chinese sentence for Japanese or Wu (5% of WMT18's Chinese side), so a
Chinese side written in Han characters without kana or hangul (``min_han_share``
of its letters) passes on its script alone.  Duplicate pairs are exact dedup's
job (the recipe runs ``exact_dedup`` next).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from skypile.document import Document, Dropped
from skypile.filters.language import LanguageId
from skypile.stage import LoadsOnWorker, drop

STAGE = "pair_filter"
LANG = "en-zh"


def one_line(text: str) -> str:
    return " ".join(text.split())


def pair_text(en: str, zh: str) -> str:
    """The document text of a pair: English paragraph, newline, Chinese paragraph."""
    return f"{one_line(en)}\n{one_line(zh)}"


def split_pair(text: str) -> tuple[str, str]:
    en, _, zh = text.partition("\n")
    return en, zh


_HAN_RE = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")
# kana (not U+30FB "・", which Chinese uses between the parts of foreign names) and hangul
_KANA_HANGUL_RE = re.compile("[\u3040-\u309f\u30a0-\u30fa\u30fc-\u30ff\u31f0-\u31ff\uac00-\ud7af\u1100-\u11ff]")


def han_share(text: str) -> float:
    """Han characters among the letters of ``text``; 0 when it holds any kana or hangul."""
    if _KANA_HANGUL_RE.search(text):
        return 0.0
    letters = sum(c.isalpha() for c in text)
    return len(_HAN_RE.findall(text)) / letters if letters else 0.0


def length_ratio(en: str, zh: str) -> float:
    """Non-space English characters per non-space Chinese character."""
    n_zh = len(zh) - zh.count(" ")
    return (len(en) - en.count(" ")) / n_zh if n_zh else float("inf")


@dataclass
class PairFilter(LoadsOnWorker):
    """Stage ``pair_filter`` (see the module docstring)."""

    min_lang_score: float = 0.3  # short sentences score low even when right
    min_han_share: float = 0.6
    min_length_ratio: float = 0.8
    max_length_ratio: float = 8.0
    model_path: str = ""
    name: str = STAGE
    _lid: Any = field(default=None, init=False, repr=False, compare=False)
    loaded: ClassVar[dict[str, Any]] = {"_lid": None}

    @property
    def lid(self) -> LanguageId:
        if self._lid is None:
            self._lid = LanguageId(model_path=self.model_path)
        return self._lid

    def check(self) -> None:
        if not 0 < self.min_length_ratio <= self.max_length_ratio:
            raise ValueError(f"{self.name}: need 0 < min_length_ratio <= max_length_ratio, got "
                             f"{self.min_length_ratio}, {self.max_length_ratio}")
        self.lid.check()

    def __call__(self, doc: Document) -> Document | Dropped:
        en, zh = split_pair(doc.text)
        if not en.strip() or not zh.strip():
            return drop(self.name, "empty_side", doc)
        if en.casefold() == zh.casefold():
            return drop(self.name, "untranslated", doc, en[:80])
        ratio = length_ratio(en, zh)
        if not self.min_length_ratio <= ratio <= self.max_length_ratio:
            return drop(self.name, "length_ratio", doc, f"{ratio:.2f} outside [{self.min_length_ratio}, {self.max_length_ratio}]")
        for side, want, text in (("en_side_lang", "en", en), ("zh_side_lang", "zh", zh)):
            lang, score = self.lid.predict(text)
            if lang == want and score >= self.min_lang_score:
                continue
            if want != "zh" or han_share(text) < self.min_han_share:
                return drop(self.name, side, doc, f"{lang} p={score:.3f}: {text[:80]}")
        doc.lang = LANG
        return doc
