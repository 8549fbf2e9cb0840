"""Corpus stage ``code_cap``: at most a set share of the kept code tokens in json/xml/yaml/html.

SkyPile keeps a cautious proportion of markup and data files instead of
dropping them: they teach formats, but a crawl of GitHub holds far more of
them than of code.  The cap is on *tokens*, so the stage runs after
``tokenize``.  It is a table-only corpus stage, like :mod:`skypile.quality.buckets`:
facts are ``(bucket, markup_tokens, other_tokens)`` per document, where a markup
file's bucket is a hash of its id in ``[0, BUCKETS)``; the table is one
threshold bucket, the largest for which the markup files below it fit the
budget ``share / (1 - share) * other_tokens``; ``apply`` keeps exactly the markup
files below it.  So which files survive depends on their ids only (every
executor keeps the same ones, re-runs too), the sample is spread evenly over the
corpus, and the decision merges from per-bucket sums in any order.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Iterator

from skypile.corpus import Coll, Decision, DocRef
from skypile.document import Document, Dropped
from skypile.stage import drop

STAGE = "code_cap"
BUCKETS = 1 << 16
OTHER = -1  # fact key of non-markup documents


def id_bucket(doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big") % BUCKETS


class TokenSums:
    """Combiner: ``(bucket, tokens)`` → ``{bucket: tokens}``, merged by addition."""

    def create(self) -> dict:
        return {}

    def add(self, acc: dict, kv: tuple[int, int]) -> dict:
        acc[kv[0]] = acc.get(kv[0], 0) + kv[1]
        return acc

    def merge(self, accs: Iterable[dict]) -> dict:
        out: dict = {}
        for acc in accs:
            for k, v in acc.items():
                out[k] = out.get(k, 0) + v
        return out

    def extract(self, acc: dict) -> dict:
        return acc


def fit_threshold(sums: dict[int, int], max_share: float) -> dict:
    """The table: markup files with ``bucket < threshold`` are kept, and the share that gives."""
    other = sums.get(OTHER, 0)
    markup = {b: t for b, t in sums.items() if b != OTHER}
    total_markup = sum(markup.values())
    budget = max_share / (1.0 - max_share) * other if max_share < 1 else float("inf")
    threshold, kept = BUCKETS, total_markup
    if total_markup > budget:
        kept = 0
        threshold = 0
        for b in sorted(markup):
            if kept + markup[b] > budget:
                break
            kept += markup[b]
            threshold = b + 1
    share = kept / (kept + other) if kept + other else 0.0
    return {"threshold": threshold, "buckets": BUCKETS, "max_share": max_share, "markup_tokens_in": total_markup,
            "markup_tokens_kept": kept, "other_tokens": other, "markup_share": round(share, 6)}


class MarkupShareCap:
    """Corpus stage ``code_cap``: markup (``languages``) at most ``max_share`` of the kept code tokens."""

    name = STAGE

    def __init__(self, languages: Iterable[str] = ("json", "xml", "yaml", "html"), max_share: float = 0.05):
        if not 0.0 <= max_share <= 1.0:
            raise ValueError(f"{self.name}: max_share must be within [0, 1], got {max_share}")
        self.languages = frozenset(languages)
        self.max_share = max_share

    @staticmethod
    def _tokens(doc: Document) -> int:
        return len(doc.tokens) if doc.tokens is not None else len(doc.text)

    def facts(self, doc: Document, ref: DocRef) -> Iterator[tuple[int, int]]:
        yield (id_bucket(doc.id) if doc.lang in self.languages else OTHER), self._tokens(doc)

    def decide(self, facts: Coll) -> Decision:
        max_share = self.max_share
        return Decision(table=facts.combine_globally(TokenSums()).map(lambda sums: fit_threshold(sums, max_share)))

    def apply(self, doc: Document, verdict: Any, table: Any) -> Document | Dropped:
        if doc.lang in self.languages and id_bucket(doc.id) >= table["threshold"]:
            return drop(self.name, "markup_share_cap", doc, f"{doc.lang}: markup capped at {self.max_share:.1%} of code tokens")
        return doc
