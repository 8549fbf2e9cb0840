"""A second extractor for pages where trafilatura keeps too little: resiliparse's main content.

trafilatura picks one content node per page.  On pages made of many posts (blogs,
forums, comment threads, archives) it often keeps one post and loses the rest:
on the CleanEval dev pages its misses are concentrated on such pages, a handful of
which lose 50-90% of their text.  resiliparse's main-content heuristics (lexbor DOM,
in C) drop navigation, headers and footers but keep the whole content region:
higher recall, lower precision (``bench/results/extraction_quality.md``).

Both texts go through the same cleanup; when resiliparse's holds ``rescue_ratio``
times the words (or CJK characters) of trafilatura's, trafilatura missed most of
the page and resiliparse's text is kept instead.  This costs ~2 ms a page against
~15 ms for trafilatura, and it is what lets English pages skip trafilatura's slow
fallback extractors (``fast``): the recall they bought, the second opinion buys
better (chosen on dev pages; the held-out figures are in the bench results).
"""

from __future__ import annotations

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.html import HTMLTree

EXTRACTOR = "resiliparse"


def main_content_text(html: str) -> str:
    """resiliparse's main-content plain text of a decoded page ("" when it finds none).

    Image alt texts are left out ("Headshot", "AI2 Logo", descriptions of stock photos):
    trafilatura leaves them out too, and on the dev pages they only cost precision.
    """
    return extract_plain_text(HTMLTree.parse(html), main_content=True, alt_texts=False) or ""
