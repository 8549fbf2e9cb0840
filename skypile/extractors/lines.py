"""Line-level cleanup of extracted main text, after the Skywork-13B recipe.

The Skywork report keeps "medium-to-long continuous text" and removes what main
text extractors still let through: navigation bars, contact information,
disjoint titles and short fragments.  This module does exactly that on the
lines trafilatura (or a WET record) gives us, with rules simple enough to
audit:

1. **Boilerplate lines** – contact details (e-mail, phone, "Contact us",
   "联系我们"), copyright/ICP notices, calls to action ("Sign up",
   "Subscribe", "扫描二维码") and bylines/datelines ("Posted by", "来源：")
   are dropped when the line is not long prose.
2. **Navigation bars** – three or more short segments separated by ``|``,
   ``>``, ``»``, ``·``, ``/`` … ("Home | News | Sports | Contact").
3. **Fragments** – a short line that does not read as a sentence is kept only
   as a heading: one of the (at most ``max_fragment_run``) lines directly above
   prose.  Other fragments – menus, tag clouds, link lists, captions, trailing
   "Reply"/"Share" crumbs and disjoint titles – are dropped.  A text that holds
   no prose at all and no more lines than a heading is the page's whole body,
   however short ("Test", a title and a caption): it is kept, and the length
   stage, not the cleanup, decides whether it is worth training on.

Sizes are measured in :func:`skypile.filters.units.text_units` (CJK
characters + other words), so one set of thresholds serves Chinese and English.
Chinese prose carries roughly 1.5–2 characters per English word, so the
Chinese threshold is given separately.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from skypile.filters.units import cjk_count, word_count

# Linear on any input: a match may start only where a run of local-part characters starts
# (the lookbehind), and the possessive runs never backtrack.  The unanchored form,
# ``[\w.+-]+@``, retried every start inside a long unspaced token: quadratic (50k chars, 4 s).
_EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]++@[\w-]++\.[\w.-]++")
# 8+ digits in phone-number shape: +86 10-1234 5678, (555) 123-4567, 1-800-935-2620, and unseparated
# only with a "+" or as a Chinese mobile number (13812345678).  A bare run of digits is an identifier
# (PMID 10989507, ETag "1382694045000", a date 20140116), and a group inside a longer hyphenated or
# slashed number is part of that number (ISBN 978-0-14-301867-4, Gecko/20100101): none of them a phone.
_PHONE_RE = re.compile(
    r"(?<![\w.\-/])(?:\+?\d{1,3}[\s.-])?(?:"
    r"\+?\(?\d{2,4}\)?[\s.-]\d{3,4}[\s.-]?\d{3,5}"
    r"|\+?\(?\d{2,4}\)?\d{3,4}[\s.-]\d{3,5}"
    r"|\+\d{8,14}"
    r"|1[3-9]\d{9}"
    r")(?!\w|[.\-/]\w)"
)
_CONTACT_RE = re.compile(
    r"contact us|call us|e-?mail:|tel(?:ephone)?[:.]|fax[:.]|phone:|customer service|"
    r"联系我们|联系电话|联系方式|客服|热线|电话[:：]|传真|邮箱[:：]|e-?mail[:：]|地址[:：]|邮编|qq[:：群]|微信号",
    re.I,
)
_LEGAL_RE = re.compile(
    r"©|\(c\)\s*\d{4}|copyright|all rights reserved|版权所有|版权声明|免责声明|icp[备证]|公网安备|增值电信",
    re.I,
)
_CTA_RE = re.compile(
    r"sign up|subscribe|newsletter|follow us|share this|share on|read more|click here|log ?in to|"
    r"点击(?:查看|进入|这里|下载)|扫描?二维码|扫一扫|关注(?:我们|公众号)|分享到|责任编辑|返回(?:首页|顶部)|上一篇|下一篇",
    re.I,
)
# The three keyword lists as one case-sensitive pattern run on the lowercased line: one scan
# instead of three IGNORECASE ones, ~3x faster (the line cleanup was a fifth of extract's time).
# Bylines and datelines ("Posted by ... on ...", "发布时间：... 来源：...").
_BYLINE_RE = re.compile(
    r"posted (?:by|on|at|in) |published (?:on|by) |^(?:last )?updated:|发布时间[:：]|来源[:：]|作者[:：]|编辑[:：]", re.I
)
_KEYWORDS_RE = re.compile("|".join(f"(?:{r.pattern})" for r in (_CONTACT_RE, _LEGAL_RE, _CTA_RE, _BYLINE_RE)))
_DIGITS_RE = re.compile(r"\d{2}")
# A line that ends in a date and a time of day ("…夫妻为同一借款人（2005-04-01 16:19PM）",
# "澳坛真的累了 | 2005-06-13 15:00:14", "发表于 2005-9-15 11:46:00") is an entry of a list of
# posts or headlines, or a dateline: body text does not end in a timestamp.
_STAMP_END_RE = re.compile(
    r"(?:19|20)?\d{2}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}\s*日?[\sT]*\d{1,2}[:：]\d{2}(?:[:：]\d{2})?\s*(?:[ap]\.?m\.?)?"
    r"\s*[)）\]】]?$",
    re.I,
)
_NAV_SEP = r"[|｜»›>→·•/]|\s[-–—]\s"  # separators of a navigation bar's segments
_NAV_SEP_RE = re.compile(_NAV_SEP)  # counted in one scan
_NAV_SPLIT_RE = re.compile(rf"\s*(?:{_NAV_SEP})\s*")
_SENTENCE_END = tuple(".!?。！？…:：;；\"'”’」』)）")


@dataclass(frozen=True)
class LineFilter:
    """Thresholds of the cleanup; ``LineFilter()(text)`` returns the cleaned text."""

    prose_words: int = 10  # an English line with this many words reads as prose
    prose_cjk: int = 20  # ... a Chinese line with this many characters
    sentence_words: int = 4  # shorter lines are prose only if they end like a sentence
    sentence_cjk: int = 8
    boilerplate_max_words: int = 40  # boilerplate patterns only drop lines shorter than this
    boilerplate_max_cjk: int = 80
    max_fragment_run: int = 3  # at most this many short lines above prose are kept as its heading (3: best on dev)
    nav_min_segments: int = 3
    nav_max_segment_units: int = 4
    boilerplate_max_chars: int = 2000  # longer lines are not boilerplate: its patterns never scan them
    article_prose_share: float = 0.5  # see article()

    def _units(self, line: str) -> tuple[int, bool]:
        n_cjk, n_words = cjk_count(line), word_count(line)
        return n_cjk + n_words, n_cjk > n_words

    def is_boilerplate(self, line: str, size: tuple[int, bool] | None = None) -> bool:
        """Contact, legal or call-to-action line that is not long prose (``size``: ``_units(line)`` if known)."""
        if len(line) > self.boilerplate_max_chars:
            return False
        units, cjk = size or self._units(line)
        if units >= (self.boilerplate_max_cjk if cjk else self.boilerplate_max_words):
            return False
        return bool(
            ("@" in line and _EMAIL_RE.search(line))
            or (_DIGITS_RE.search(line) and (_PHONE_RE.search(line) or _STAMP_END_RE.search(line)))
            or _KEYWORDS_RE.search(line.lower())
        )

    def is_nav(self, line: str) -> bool:
        """Several short separator-delimited segments ("Home | News | Sport")."""
        # Most lines hold no separator at all: one regex scan (C speed) settles them.
        if len(_NAV_SEP_RE.findall(line)) < self.nav_min_segments - 1:
            return False
        segments = [s for s in _NAV_SPLIT_RE.split(line) if s.strip()]
        if len(segments) < self.nav_min_segments:
            return False
        small = sum(1 for s in segments if self._units(s)[0] <= self.nav_max_segment_units)
        return small >= 0.8 * len(segments)

    def is_long(self, line: str, size: tuple[int, bool] | None = None) -> bool:
        """Long enough to read as prose whatever its ending (``size``: ``_units(line)`` if known)."""
        units, cjk = size or self._units(line)
        return units >= (self.prose_cjk if cjk else self.prose_words)

    def is_prose(self, line: str, size: tuple[int, bool] | None = None) -> bool:
        """Long enough, or a complete short sentence (``size``: ``_units(line)`` if known)."""
        units, cjk = size = size or self._units(line)
        if self.is_long(line, size):
            return True
        return units >= (self.sentence_cjk if cjk else self.sentence_words) and line.endswith(_SENTENCE_END)

    def __call__(self, text: str) -> str:
        lines = text.splitlines()
        return self.filter_lines(lines, [False] * len(lines))

    def article(self, text: str) -> str:
        """The cleanup of an article extractor's own output (trafilatura's text of an English page).

        When at least ``article_prose_share`` of its words are in prose lines it reads as an
        article, and its short lines are the article's headings, list items and table rows:
        only the boilerplate lines go (rule 1; rules 2 and 3 cut such lines on every English
        dev set).  Otherwise (a page of menus or link lists the extractor took for content)
        every rule applies.
        """
        sized = [(ln, self._units(ln)) for ln in (ln.strip() for ln in text.splitlines()) if ln]
        total = sum(size[0] for _, size in sized)
        prose = sum(size[0] for ln, size in sized if self.is_prose(ln, size))
        if not total or prose < self.article_prose_share * total:
            return self(text)
        return "\n".join(ln for ln, size in sized if not self.is_boilerplate(ln, size))

    def filter_lines(self, lines: list[str], protected: list[bool]) -> str:
        """The cleanup on lines; a ``protected`` line (a body list item or table row, see
        :mod:`skypile.extractors.blocks`) is exempt from the navigation and fragment rules."""
        stripped = [(ln.strip(), prot) for ln, prot in zip(lines, protected)]
        sized = [(ln, self._units(ln), prot) for ln, prot in stripped if ln]  # each line measured once
        sized = [
            (ln, size, prot)
            for ln, size, prot in sized
            if not self.is_boilerplate(ln, size) and (prot or not self.is_nav(ln))
        ]
        lines = [ln for ln, _, _ in sized]
        prose = [prot or self.is_prose(ln, size) for ln, size, prot in sized]
        if not any(prose) and len(lines) <= self.max_fragment_run:
            # A text of a heading's size with no prose at all is the page's whole body (a one-line
            # notice, a title and a caption), not a fragment of it: kept, the length stage judges it.
            return "\n".join(lines)
        keep = list(prose)
        i = 0
        while i < len(lines):
            if prose[i]:
                i += 1
                continue
            j = i
            while j < len(lines) and not prose[j]:
                j += 1
            # lines[i:j] is a run of fragments: its last few lines survive only as the
            # heading of the prose that follows; the rest of a long run is a menu or list.
            if j < len(lines):
                for k in range(max(i, j - self.max_fragment_run), j):
                    keep[k] = True
            i = j
        return "\n".join(ln for ln, k in zip(lines, keep) if k)


DEFAULT_LINE_FILTER = LineFilter()


def clean_lines(text: str) -> str:
    """Apply :data:`DEFAULT_LINE_FILTER` (see the module docstring for the rules)."""
    return DEFAULT_LINE_FILTER(text)
