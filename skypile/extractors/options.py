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
    """

    include_comments: bool = False
    favor_precision: bool = False
    favor_recall: bool = False
    fast: bool = False  # skip the fallback extractors: faster, loses recall on CleanEval


DEFAULT_EN = TrafilaturaSwitches(include_comments=True)
DEFAULT_ZH = TrafilaturaSwitches(favor_precision=True)
