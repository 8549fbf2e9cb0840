"""A second extractor for pages where trafilatura keeps too little: resiliparse's main content.

trafilatura picks one content node per page.  On some pages it keeps a part of the
body: one post of a multi-post page, the first half of an article split by an ad
slot, one of two repeated paragraphs, a teaser where the article sits in markup it
does not recognise (readability's and trafilatura-eval's dev pages).  resiliparse's
main-content heuristics (lexbor DOM, in C) drop navigation, headers and footers but
keep the whole content region: higher recall, lower precision
(``bench/results/extraction_quality.md``).

It is asked only when trafilatura's cleaned text is short (``rescue_below``: under
200 words): on the dev article pages every useful rescue replaced such a text, and
a long text is an article already (the other posts of a multi-post page are not
its body under the article convention; CleanEval's 2007 gold, which keeps them,
loses 0.03 F1 to this).  When resiliparse's text, through every rule of the line
cleanup, holds ``rescue_ratio`` (1.75) times the words (or CJK characters),
trafilatura missed much of the page and resiliparse's text is kept instead.  At
2x the rule missed the plainest such page, trafilatura keeping one of two body
paragraphs: a heading both texts share keeps the ratio just under 2 (readability's
dev pages, 1.82-1.96); at 1.5x (up to 1.61 on trafilatura-eval's dev pages) it
replaced articles whose second opinion only added related-article teasers and
comment sections.  Dev F1 is flat from 1.7 to 1.8.  Asked on ~15% of the pages, it costs ~3 ms each
(lexbor's parse and the heuristics) against ~20 ms for trafilatura, and it is
what lets English pages skip trafilatura's slow fallback extractors (``fast``):
the recall they bought, the second opinion buys better (chosen on dev pages; the
held-out figures are in the bench results).
"""

from __future__ import annotations

EXTRACTOR = "resiliparse"


def main_content_text(html: str) -> str:
    """resiliparse's main-content plain text of a decoded page ("" when it finds none).

    Image alt texts are left out ("Headshot", "AI2 Logo", descriptions of stock photos):
    trafilatura leaves them out too, and on the dev pages they only cost precision.
    """
    from resiliparse.extract.html2text import extract_plain_text  # imported on first use
    from resiliparse.parse.html import HTMLTree

    return extract_plain_text(HTMLTree.parse(html), main_content=True, alt_texts=False) or ""
