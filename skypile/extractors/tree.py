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

from lxml import etree
from lxml.html import HtmlElement, HTMLParser, fromstring
from trafilatura.utils import repair_faulty_html

LIBXML2_MAX_DEPTH = 2048  # with huge_tree; deeper content is discarded by the parser
_PARSER = HTMLParser(
    collect_ids=False, default_doctype=False, encoding="utf-8", remove_comments=True, remove_pis=True, huge_tree=True
)


_COUNT_ELEMENTS = etree.XPath("count(//*)")


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


def parse_html(html: str, max_depth: int = 1000, max_elements: int = 100_000, max_row_cells: int = 2000) -> HtmlElement:
    """The page's tree (bytes to lxml, so an ``encoding=`` declaration is harmless); raises :class:`TreeRefused`."""
    html = repair_faulty_html(html, html[:50].lower())  # what trafilatura does before it parses
    try:
        tree = fromstring(html.encode("utf-8", "surrogatepass"), parser=_PARSER)
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
    return tree
