"""trafilatura's switches, chosen per page language (a light module: the run config imports it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrafilaturaSwitches:
    """What ``trafilatura.extract`` is told for one language's pages, and what follows it.

    Measured on the dev pages of the shared ground truth
    (``bench/extraction_quality.py``).  English pages follow the article
    convention (readability's and trafilatura-eval's gold: comments, link lists
    and sidebars are not body text): no comments, no fallback extractors
    (``fast``; on the dev sets the fallbacks lost F1 and cost ~1.4x the time),
    trafilatura's text through :meth:`LineFilter.article
    <skypile.extractors.lines.LineFilter.article>`, and resiliparse's main
    content as a second opinion where trafilatura kept a part of the page
    (``rescue_ratio``; asked only below ``rescue_below`` words: on the dev
    article pages every useful rescue replaced a text of under 200 words, and
    skipping it elsewhere spares ~85% of the pages its second parse).  Chinese pages gain precision from ``favor_precision``
    (portal pages carry long teaser lists) and lose it to the second opinion;
    they skip the fallbacks too, since the block rules and the retry without
    ``favor_precision`` recover what the fallbacks would.
    """

    include_comments: bool = False
    favor_precision: bool = False
    favor_recall: bool = False
    fast: bool = False  # skip trafilatura's fallback extractors (readability, jusText): ~1.4x faster
    # > 0: also run resiliparse's main-content extractor (skypile.extractors.second_opinion) and keep
    # its cleaned text when it holds this many times trafilatura's words/characters; 0: off
    rescue_ratio: float = 0.0
    # > 0: ask for the second opinion only when trafilatura's cleaned text holds fewer words/characters
    # than this (a long text is an article already; the rest of a multi-post page is not its body)
    rescue_below: int = 0
    # True: trafilatura's text goes through LineFilter.article (its boilerplate rule alone when the
    # text reads as an article), False: through every rule (a second opinion's text always is)
    article_lines: bool = False
    # True: image galleries, slideshows and carousels of 3+ captions leave the tree before trafilatura
    # sees it (skypile.extractors.tree.drop_galleries).  Off: chosen on dev pages (readability dev
    # +0.013 F1), it lost 0.006 F1 on trafilatura-eval's held-out pages (bench/results/extraction_quality.md)
    drop_galleries: bool = False


DEFAULT_EN = TrafilaturaSwitches(fast=True, rescue_ratio=1.75, rescue_below=200, article_lines=True)
DEFAULT_ZH = TrafilaturaSwitches(favor_precision=True, fast=True)
