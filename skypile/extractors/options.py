"""trafilatura's switches, chosen per page language (a light module: the run config imports it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrafilaturaSwitches:
    """What ``trafilatura.extract`` is told for one language's pages.

    Measured on the dev pages of the shared ground truth
    (``bench/extraction_quality.py``): English pages gain recall from comments
    (CleanEval's gold keeps forum and blog comments); Chinese pages gain
    precision from ``favor_precision`` (portal pages carry long teaser lists).
    English pages skip trafilatura's fallback extractors and ask resiliparse
    for a second opinion instead: faster, and more recall on multi-post pages.
    Chinese pages lose precision from that second opinion and do without it;
    they skip the fallbacks too (1.3x faster; dev F1 unchanged on cleaneval-zh,
    0.977 → 0.971 on GNE), since the block rules and the retry without
    ``favor_precision`` already recover what the fallbacks would.
    """

    include_comments: bool = False
    favor_precision: bool = False
    favor_recall: bool = False
    fast: bool = False  # skip trafilatura's fallback extractors (readability, jusText): ~1.4x faster
    # > 0: also run resiliparse's main-content extractor (skypile.extractors.second_opinion) and keep
    # its cleaned text when it holds this many times trafilatura's words/characters; 0: off
    rescue_ratio: float = 0.0


DEFAULT_EN = TrafilaturaSwitches(include_comments=True, fast=True, rescue_ratio=1.5)
DEFAULT_ZH = TrafilaturaSwitches(favor_precision=True, fast=True)
