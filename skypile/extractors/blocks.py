"""Block rules on trafilatura's output tree: what the line cleanup cannot see from text alone.

trafilatura's text output has lost the structure: a related-articles list of
long headlines reads as prose, a table row ``a | b | c`` reads as a navigation
bar, a short list item inside an article reads as a stray fragment.  Its output
tree (``bare_extraction(include_links=True)``: ``body`` and ``commentsbody``)
keeps paragraphs, headings, list items, table rows and link text apart, so
these rules run on blocks first:

1. **Link-dense blocks** (``link_density_zh`` / ``_en`` of their characters
   inside links) are navigation, teasers or "Read more: …" prompts: dropped.
2. **Link lists**: a list or table where ``group_link_share`` of the items are
   link-dense is a menu or a related-articles list: dropped whole.
3. **Body lists and tables**: a list or table of at least ``min_group_items``
   items that sits next to prose (before or after it, a heading allowed between)
   belongs to the body: its items are kept even when short, and a table row is
   not mistaken for a navigation bar.  Contact, legal, call-to-action and byline
   patterns still apply.
4. **Short paragraphs inside prose**: a run of short, link-free paragraphs with
   a long prose paragraph right before and right after it is body, however
   long the run.  Chinese news and WeChat-style posts often write one phrase
   per ``<p>`` ("目前" / "南沙国际邮轮母港码头工程" / "已进入最后的施工及验收准备阶段");
   the line cleanup's fragment rule, which sees only text, kept the last
   ``max_fragment_run`` lines of each such run and dropped the rest of the
   article.  The same patterns as in rule 3 still apply; a run line that reads
   as a navigation bar is not protected.

Everything else goes to the line cleanup (:class:`~skypile.extractors.lines.LineFilter`)
with a flag per line saying whether rule 3 or 4 protects it, so headings that stand
alone, fragment runs and boilerplate lines go as before.  Sizes count Chinese
characters and English words, as the line cleanup does.  Which languages use
these rules, and their thresholds, were chosen on the dev pages of
``bench/extraction_quality.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from skypile.extractors.lines import LineFilter

_TEXT_BLOCKS = frozenset({"p", "head", "quote", "code"})


@dataclass
class Block:
    kind: str  # p | head | quote | code | item | row
    text: str
    link_chars: int
    group: int = -1  # index of the list/table it belongs to (-1: none)

    @property
    def link_density(self) -> float:
        return self.link_chars / max(len(self.text), 1)


def _text(el: etree._Element) -> str:
    """Whitespace collapsed within lines; ``<lb/>`` (marked as a newline by :func:`xml_blocks`) ends a line."""
    return _lines("".join(el.itertext()))


def _lines(text: str) -> str:
    return "\n".join(ln for ln in (" ".join(part.split()) for part in text.split("\n")) if ln)


def _link_chars(el: etree._Element) -> int:
    return sum(len("".join(r.itertext()).strip()) for r in el.iter("ref"))


def _row_text(row: etree._Element) -> str:
    cells = [_text(c) for c in row if isinstance(c.tag, str)]
    return " | ".join(c for c in cells if c)


def tree_blocks(*roots: etree._Element | None) -> list[Block]:
    """trafilatura's output trees (``body``, ``commentsbody``) → blocks in reading order.

    The trees are trafilatura's own (``bare_extraction``), not its XML string: the
    string form joins the lines of a fallback extractor's paragraph with spaces.
    ``<lb/>`` elements are turned into newlines (the trees are changed).
    """
    blocks: list[Block] = []
    groups = 0
    for root in roots:
        if root is None:
            continue
        for lb in root.iter("lb"):
            lb.tail = "\n" + (lb.tail or "")

    def loose(text: str | None) -> None:  # text directly inside a container, e.g. after an <lb/>
        text = _lines(text or "")
        if text:
            blocks.append(Block("p", text, 0))

    def walk(el: etree._Element) -> None:
        loose(el.text)
        for child in el:
            walk_child(child)
            loose(child.tail)

    def walk_child(child: etree._Element) -> None:
        nonlocal groups
        if not isinstance(child.tag, str) or child.tag == "lb":
            return
        if child.tag in ("list", "table"):
            g, groups = groups, groups + 1
            for part in child.iter("item" if child.tag == "list" else "row"):
                text = _text(part) if child.tag == "list" else _row_text(part)
                if text:
                    blocks.append(Block("item" if child.tag == "list" else "row", text, _link_chars(part), g))
        elif child.tag in _TEXT_BLOCKS:
            text = _text(child)
            if text:
                blocks.append(Block(child.tag, text, _link_chars(child)))
        else:
            walk(child)  # main, comments, div, ...

    for root in roots:
        if root is not None:
            walk(root)
    return blocks


@dataclass(frozen=True)
class BlockRules:
    """Thresholds of the block rules; ``BlockRules()([body, comments], lines, lang)`` returns the cleaned text."""

    # A block with this share of its characters in links is navigation.  Chinese portal pages
    # wrap teasers and related lists in links; on English pages the rule cost recall on every
    # dev set (trafilatura-eval keeps linked text), so there it is off (> 1 never matches).
    link_density_zh: float = 0.5
    link_density_en: float = 1.5
    group_link_share: float = 0.4  # a list/table with this share of link-dense items is dropped whole
    body_groups: bool = True  # rule 3: lists and tables next to prose are body
    min_group_items: int = 2
    # Pages of these languages go through the block rules; the others get trafilatura's text
    # output and the line cleanup.  On English dev pages that measured better on CleanEval-en
    # (F1 0.920 vs 0.912) and worse on trafilatura-eval's snippets (0.927 vs 0.932).
    languages: list[str] = field(default_factory=lambda: ["zh"])
    # Rule 4: short link-free paragraphs between two long prose paragraphs are body.  Only
    # *long* prose (``prose_cjk`` / ``prose_words``) bounds a run: with short sentence-like
    # lines as bounds, the run also took in editor / source / "reply X" lines after a
    # post's last paragraph (dev pages of thepaper.cn, cleaneval-zh).
    inner_paragraphs: bool = True

    def select(self, blocks: list[Block], lines: LineFilter, lang: str = "en") -> list[tuple[str, bool]]:
        """(text, protected) for the blocks that survive rules 1-2; ``protected`` by rule 3 or 4."""
        link_density = self.link_density_zh if lang == "zh" else self.link_density_en
        sizes: dict[int, list[int]] = {}
        for b in blocks:
            if b.group >= 0:
                counts = sizes.setdefault(b.group, [0, 0])
                counts[0] += 1
                counts[1] += b.link_density >= link_density
        kept = [
            b
            for b in blocks
            if b.link_density < link_density
            and (b.group < 0 or sizes[b.group][1] < self.group_link_share * sizes[b.group][0])
        ]
        prose = [b.group < 0 and b.kind != "head" and lines.is_prose(b.text) for b in kept]
        body: set[int] = set()
        if self.body_groups:
            for i, b in enumerate(kept):
                if b.group < 0 or b.group in body or sizes[b.group][0] < self.min_group_items:
                    continue
                if _next_to_prose(kept, prose, i, b.group):
                    body.add(b.group)
        protected = [b.group in body for b in kept]
        if self.inner_paragraphs:
            for k in _inner_paragraphs(kept, prose, lines):
                protected[k] = True
        return [(b.text, p) for b, p in zip(kept, protected)]

    def __call__(self, roots: list[etree._Element | None], lines: LineFilter | None, lang: str = "en") -> str:
        """Cleaned text of trafilatura's output trees; ``lang`` is ``zh`` for Chinese pages."""
        selected = self.select(tree_blocks(*roots), lines or LineFilter(), lang)
        if lines is None:
            return "\n".join(text for text, _ in selected)
        flat = [(ln, prot) for text, prot in selected for ln in text.split("\n")]
        return lines.filter_lines([t for t, _ in flat], [p for _, p in flat])


def _next_to_prose(kept: list[Block], prose: list[bool], i: int, group: int) -> bool:
    """Is prose right before group's first block (``i``) or right after its last, one heading allowed between?"""
    j = i - 1
    if j >= 0 and kept[j].kind == "head":
        j -= 1
    if j >= 0 and prose[j]:
        return True
    k = i
    while k < len(kept) and kept[k].group == group:
        k += 1
    if k < len(kept) and kept[k].kind == "head":
        k += 1
    return k < len(kept) and prose[k]


def _inner_paragraphs(kept: list[Block], prose: list[bool], lines: LineFilter) -> list[int]:
    """Rule 4: indexes of the short link-free paragraphs in runs bounded by long prose on both sides."""

    def long_prose(k: int) -> bool:
        return prose[k] and lines.is_long(kept[k].text)

    def inner(b: Block) -> bool:
        return b.kind == "p" and b.group < 0 and b.link_chars == 0

    out: list[int] = []
    bound = -1  # index of the last long prose paragraph, -1: none since the last non-paragraph
    for k, b in enumerate(kept):
        if long_prose(k):
            if 0 <= bound < k - 1:
                out += [j for j in range(bound + 1, k) if not lines.is_nav(kept[j].text)]
            bound = k
        elif not inner(b):
            bound = -1
    return out


DEFAULT_BLOCK_RULES = BlockRules()
