"""Text normalization shared by the quality models, as CCNet does it.

Training and scoring must see the same text, so both the KenLM builder and the
scoring stages call :func:`normalize` (CCNet's ``text_normalizer.normalize``:
lower case, accents stripped, every digit ``0``, Unicode punctuation mapped to
ASCII, non-printing characters removed) on each paragraph (line).  fastText
splits on whitespace only, so :func:`classifier_line` also puts spaces around
CJK characters: Chinese text becomes a sequence of characters whose bigrams the
classifier learns (``wordNgrams``).
"""

from __future__ import annotations

import functools
import re
import unicodedata

UNICODE_PUNCT = {
    "，": ",", "。": ".", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"', "１": '"',
    "」": '"', "「": '"', "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":", "？": "?", "！": "!",
    "（": "(", "）": ")", "；": ";", "–": "-", "—": " - ", "．": ". ", "～": "~", "’": "'", "…": "...",
    "━": "-", "〈": "<", "〉": ">", "【": "[", "】": "]", "％": "%", "►": "-",
}  # fmt: skip  (CCNet's table, verbatim)
_PUNCT_TABLE = str.maketrans(UNICODE_PUNCT)
_NON_PRINTING_RE = re.compile("[" + "".join(map(chr, [*range(0, 32), *range(127, 160)])) + "]")
_DIGIT_RE = re.compile(r"\d")
_CJK_RUN_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")
_LETTER_RE = re.compile(r"[^\W\d_]")


@functools.lru_cache(maxsize=1)
def _nonspacing_marks() -> re.Pattern:
    """Every Unicode nonspacing mark (category Mn) as one character class: removal in C, not per character."""
    marks = [i for i in range(0x110000) if unicodedata.category(chr(i)) == "Mn"]
    ranges, start, prev = [], marks[0], marks[0]
    for i in marks[1:] + [-1]:
        if i != prev + 1:
            ranges.append(re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev > start else ""))
            start = i
        prev = i
    return re.compile("[" + "".join(ranges) + "]")


def strip_accents(line: str) -> str:
    """NFD, then every nonspacing mark removed (CCNet's ``strip_accents``)."""
    if line.isascii():
        return line
    return _nonspacing_marks().sub("", unicodedata.normalize("NFD", line))


def normalize(line: str) -> str:
    """CCNet's normalization of one line: case, accents, digits, Unicode punctuation, non-printing chars."""
    line = line.strip()
    if not line:
        return line
    line = _DIGIT_RE.sub("0", strip_accents(line.lower()))
    return _NON_PRINTING_RE.sub("", line.translate(_PUNCT_TABLE))


_LAST: list = [("", [])]  # (text, its paragraphs), swapped as one tuple: perplexity and ref_prob share the work


def paragraphs(text: str) -> list[str]:
    """The normalized non-empty lines of ``text``: the units CCNet scores and sums (do not mutate the list)."""
    last = _LAST[0]
    if last[0] is text:
        return last[1]
    paras = [p for p in (normalize(line) for line in text.split("\n")) if p]
    _LAST[0] = (text, paras)
    return paras


def has_letters(text: str) -> bool:
    return _LETTER_RE.search(text) is not None


def classifier_line(text: str, max_chars: int = 10_000) -> str:
    """One line for fastText: normalized paragraphs joined, CJK characters spaced apart."""
    joined = " ".join(paragraphs(text if len(text) <= max_chars else text[:max_chars]))
    return " ".join(_CJK_RUN_RE.sub(lambda m: " " + " ".join(m.group()) + " ", joined).split())
