"""Parse a decoded page into the lxml tree trafilatura works on, and refuse trees it cannot handle.

trafilatura parses strings with libxml2's default limits, which silently cut
off everything nested deeper than 256 elements (a paragraph inside 300 nested
``div``s vanishes, with no error).  We parse with ``huge_tree`` instead (the
limit becomes 2048) and hand trafilatura the tree.  What is still out of
bounds becomes a counted drop instead of silent damage or an hour of CPU:

* ``too_deep``    the tree reaches ``max_depth`` (at 2048 libxml2 drops deeper
  text, so the default 1000 leaves margin; real pages stay below ~60);
* ``too_complex`` more than ``max_elements`` elements, or a table row of more
  than ``max_row_cells`` cells (trafilatura's table pass is quadratic in the
  cells of a row: 40k cells take 12 s, 150k cells minutes);
* ``not_html``    the parser finds no document.
"""

from __future__ import annotations

import functools
import re

from lxml import etree
from lxml.html import HtmlElement, HTMLParser, fromstring

LIBXML2_MAX_DEPTH = 2048  # with huge_tree; deeper content is discarded by the parser
_PARSER = HTMLParser(
    collect_ids=False, default_doctype=False, encoding="utf-8", remove_comments=True, remove_pis=True, huge_tree=True
)


_COUNT_ELEMENTS = etree.XPath("count(//*)")
_JSON_LD = etree.XPath('//script[@type="application/ld+json"]')
# Elements whose class names an image gallery, slideshow or carousel, with any capitalisation of
# the first letter ("gallery", "Gallery", "wp-block-gallery"; ids are left alone: some hold URLs
# with ".../slideshow/..." in them): an XPath over the attributes, ~1 ms a page (a translate() to
# lower case over every element cost 6 ms).
_GALLERIES = etree.XPath("//@class[contains(., 'allery') or contains(., 'lideshow') or contains(., 'arousel')]/..")
PAGE_FRAME = frozenset({"html", "body", "main", "article"})  # never removed as a gallery
_TEXT_ITEMS = etree.XPath("count(.//*[self::li or self::p or self::figcaption][normalize-space()])")
GALLERY_MIN_ITEMS = 3  # a gallery is a run of captions; one captioned photo is the article's own figure


@functools.lru_cache(maxsize=8)
def _at_depth(depth: int) -> etree.XPath:
    """Is any element ``depth`` levels deep (the root element is level 1)?  Level by level: O(n)."""
    return etree.XPath(f"boolean({'/*' * depth})")


@functools.lru_cache(maxsize=8)
def _wide_rows(max_cells: int) -> etree.XPath:
    return etree.XPath(f"//tr[count(*) > {int(max_cells)}]")


class TreeRefused(ValueError):
    """The page parsed to a tree outside the bounds; ``reason`` is the drop reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


# Characters libxml2 rejects, as trafilatura's repair removes them: the controls (in UTF-8, these
# bytes encode nothing else) and the two non-characters.
_XML_INVALID_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])
_NONCHARS_RE = re.compile("[\ufffe\uffff]")


def repaired_bytes(html: str) -> bytes:
    """The page as trafilatura repairs it before parsing (``repair_faulty_html``), as UTF-8.

    Its fixes (a broken doctype, a self-closing ``<html/>``) only touch the first lines, so it
    runs on the first ~4 KB; its removal of XML-invalid characters, a regular-expression pass
    over the whole page (~1 ms, a tenth of our own per-page cost), is one ``bytes.translate``
    pass on the bytes instead (after :func:`~skypile.extractors.charset.decode_html`, which drops
    control characters, there is almost never anything left to remove).
    """
    from trafilatura.utils import repair_faulty_html  # imported on first use (see skypile.extractors.page)

    cut = html.find("\n", 4096) + 1  # the head ends with a line (0: the page is one line)
    head, rest = (html[:cut], html[cut:]) if cut else (html, "")
    head = repair_faulty_html(head, html[:50].lower())
    if "\ufffe" in rest or "\uffff" in rest:
        rest = _NONCHARS_RE.sub("", rest)
    return (head + rest).encode("utf-8", "surrogatepass").translate(None, _XML_INVALID_BYTES)


def parse_html(html: str, max_depth: int = 1000, max_elements: int = 100_000, max_row_cells: int = 2000) -> HtmlElement:
    """The page's tree (bytes to lxml, so an ``encoding=`` declaration is harmless); raises :class:`TreeRefused`."""
    try:
        tree = fromstring(repaired_bytes(html), parser=_PARSER)
    except (etree.ParserError, ValueError) as e:
        raise TreeRefused("not_html", f"lxml: {e}") from None
    if tree is None:
        raise TreeRefused("not_html", "lxml: empty document")
    # XPath runs in C: a Python walk over the tree cost ~6 ms a page, a fifth of our own overhead.
    cap = min(max_depth, LIBXML2_MAX_DEPTH - 1)
    if _at_depth(cap)(tree.getroottree()):
        raise TreeRefused("too_deep", f"elements nested {cap}+ deep (max_depth {max_depth})")
    wide = _wide_rows(max_row_cells)(tree)
    if wide:
        raise TreeRefused("too_complex", f"a table row of {len(wide[0])} cells (max_row_cells {max_row_cells})")
    n = int(_COUNT_ELEMENTS(tree))
    if n > max_elements:
        raise TreeRefused("too_complex", f"{n} elements (max_elements {max_elements})")
    drop_scripts(tree)
    return tree


def drop_scripts(tree: HtmlElement) -> None:
    """Remove ``<script>`` and ``<style>`` elements (their tails stay), JSON-LD scripts excepted.

    trafilatura deletes them too, but only after it has copied the tree (it copies the tree
    it is given, then again while cleaning: ~5 copies a page), and a page's scripts are often
    most of its bytes.  Dropped here, in one C pass, they cost nothing downstream: same text
    on all 745 shared pages, ~10% less CPU per page.  JSON-LD stays: trafilatura reads it to
    recognise forum threads and, in its baseline, for the article body.
    """
    keep = _JSON_LD(tree)
    for el in keep:
        el.tag = "skypile-json-ld"
    etree.strip_elements(tree, "script", "style", with_tail=False)
    for el in keep:
        el.tag = "script"


def drop_galleries(tree: HtmlElement) -> int:
    """Remove image galleries, slideshows and carousels (by class name); returns how many went.

    A gallery inside an article is a run of photo captions ("1/50 United goin down ...",
    "AFP/Getty Images"), not the article's body: Readability.js drops it (its "legends"
    and image-heavy-block rules), and so does the article convention's gold.  trafilatura
    ignores most galleries already but keeps one when its captions are long: on readability's
    dev pages a 50-caption business gallery was 3/4 of one page's output (F1 0.32 -> 0.92),
    and no other dev page of the three English sets changed.  Only a gallery of at least
    ``GALLERY_MIN_ITEMS`` items of text (list items, paragraphs, captions) goes: a "slideshow"
    of one photo is the article's lead figure, and its caption is in the gold (yahoo-2).
    ``<article>``, ``<main>`` and the page's frame are never removed, whatever their class.
    The second opinion still reads the whole page: on a page whose content *is* a slideshow
    (a gallery of phones with a paragraph each), what trafilatura keeps is short and
    resiliparse's text replaces it.

    Off by default (``TrafilaturaSwitches.drop_galleries``): chosen on the dev pages, it left
    readability's held-out pages unchanged and cost trafilatura-eval's held-out pages 0.006 F1
    (recall 0.963 -> 0.952), over the 0.005 a rule may lose on any set.
    """
    found = [el for el in _GALLERIES(tree) if el.tag not in PAGE_FRAME and _TEXT_ITEMS(el) >= GALLERY_MIN_ITEMS]
    for el in found:
        if el.getparent() is not None:  # inside an earlier one: gone with it
            el.drop_tree()
    return len(found)
