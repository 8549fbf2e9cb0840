"""The texts the quality models are built from, read from the shared data folder.

* **Wikipedia** per language (the KenLM training text, and the classifier's
  positives): WikiText-2's raw English articles (its tokenization undone:
  ``" @-@ "`` → ``"-"``, spaces before punctuation removed) and the WikiExtractor
  output of a zhwiki dump, split into articles;
* **reference-quality** text: the CS336 fixture page cited by Wikipedia;
* **ordinary web text** per language (the classifier's negatives and the
  reference sample the bucket thresholds are fitted on): Common Crawl documents
  (Dolma samples), the extracted text of the real pages under ``html-*``
  (human-cleaned text where the dataset has it, our extractor's otherwise), the
  CS336 low-quality Common Crawl page, and Chinese user reviews.

Every item carries a stable ``key`` (article title, page name), and the
held-out split is a seeded hash of the key, so the same article always lands on
the same side, whatever else changes, and no article is split across sides.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

LANGS = ("en", "zh")
_WT_TITLE_RE = re.compile(r"^ = ([^=].*?) = *$")
_WT_HEADING_RE = re.compile(r"^ (= )+(.*?)( =)+ *$")
_WT_FIXES = [
    (re.compile(r" @(.)@ "), r"\1"),  # 1 @,@ 000 → 1,000; well @-@ known → well-known
    (re.compile(r" ([.,;:!?)\]}%]|'s|'t|n't|'re|'ve|'ll|'d|'m)(?=\s|$)"), r"\1"),
    (re.compile(r"([(\[{$]) "), r"\1"),
    (re.compile(r'" (.*?) "'), r'"\1"'),
]
_ZH_DOC_RE = re.compile(r'<doc id="[^"]*" url="[^"]*" title="([^"]*)">\n(.*?)</doc>', re.S)


@dataclass(frozen=True)
class Text:
    key: str  # stable identity: the held-out split hashes it
    lang: str
    source: str  # wiki | reference | web/<dataset>
    text: str


def is_held_out(key: str, seed: int, fraction: float) -> bool:
    """Seeded, order-free split: a key is held out iff its hash falls below ``fraction``."""
    h = int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "big")
    return h / 2**64 < fraction


def detokenize_wikitext(line: str) -> str:
    for pattern, repl in _WT_FIXES:
        line = pattern.sub(repl, line)
    return line.strip()


WIKI_FILES = {"en": ("wiki", "en", "wikitext-2-raw-test.txt"), "zh": ("wiki", "zh", "zhwiki-extract-AA-wiki_00.txt")}


def wiki_articles(data_dir: Path, lang: str) -> list[Text]:
    """The Wikipedia articles of ``lang`` in the shared data, as paragraphs separated by newlines."""
    if lang not in WIKI_FILES:
        raise ValueError(f"no Wikipedia text for language {lang!r} (have: {', '.join(LANGS)})")
    path = data_dir.joinpath(*WIKI_FILES[lang])
    if not path.exists():
        raise FileNotFoundError(f"Wikipedia text for {lang!r} missing: {path} (the shared data folder: --data or SKYPILE_SHARED_DATA)")
    if lang == "en":
        articles: list[Text] = []
        title, lines = "", []
        for raw in path.read_text(encoding="utf-8").splitlines() + [" = <end> ="]:
            m = _WT_TITLE_RE.match(raw)
            if m:
                if title and lines:
                    articles.append(Text(f"wiki/en/{title}", "en", "wiki", "\n".join(lines)))
                title, lines = m.group(1).strip(), []
                continue
            h = _WT_HEADING_RE.match(raw)
            line = h.group(2).strip() if h else detokenize_wikitext(raw)
            if line:
                lines.append(line)
        return articles
    out = []  # zh: WikiExtractor's <doc id url title> blocks
    for title, body in _ZH_DOC_RE.findall(path.read_text(encoding="utf-8")):
        lines = [ln.strip() for ln in body.splitlines() if ln.strip()]
        if lines and lines[0] == title:
            lines = lines[1:]
        if lines:
            out.append(Text(f"wiki/zh/{title}", "zh", "wiki", "\n".join(lines)))
    return out


def reference_texts(data_dir: Path) -> list[Text]:
    path = data_dir / "quality" / "cs336-fixtures" / "high_quality_wiki_reference.txt"
    return [Text("reference/cs336-wiki-reference", "en", "reference", path.read_text(encoding="utf-8"))] if path.exists() else []


def chunks(item: Text, max_chars: int) -> Iterator[Text]:
    """``item`` cut at paragraph boundaries into pieces of at most ~``max_chars`` (same key: same split side)."""
    cur: list[str] = []
    size = 0
    for para in item.text.split("\n"):
        if cur and size + len(para) > max_chars:
            yield Text(item.key, item.lang, item.source, "\n".join(cur))
            cur, size = [], 0
        cur.append(para)
        size += len(para) + 1
    if cur:
        yield Text(item.key, item.lang, item.source, "\n".join(cur))


def _jsonl_texts(path: Path, source: str, lang: str) -> list[Text]:
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    with opener(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            row = json.loads(line)
            if row.get("text", "").strip():
                out.append(Text(f"{source}/{path.name}:{row.get('id', i)}", lang, source, row["text"]))
    return out


def _reviews(path: Path, source: str, limit: int, seed: int) -> list[Text]:
    with open(path, encoding="utf-8") as f:
        rows = [r["review"] for r in csv.DictReader(f) if (r.get("review") or "").strip()]
    picked = sorted(random.Random(seed).sample(range(len(rows)), min(limit, len(rows))))
    return [Text(f"{source}/{path.name}:{i}", "zh", source, rows[i]) for i in picked]


def _pages(lang: str, max_pages: int | None = None) -> list[Text]:
    """Extracted main text of the real HTML pages: human-cleaned where the dataset has it, our extractor's otherwise."""
    from skypile.document import Document, RawRecord
    from skypile.evaluation import extraction as ev
    from tqdm import tqdm

    from skypile.extractors.html import HtmlExtractor

    loaders = {"en": (("web/trafilatura-eval", ev.load_trafilatura_eval), ("web/cleaneval", ev.load_cleaneval_en)),
               "zh": (("web/gne", ev.load_gne_pages), ("web/cleaneval-zh", ev.load_cleaneval_zh))}[lang]
    extract = HtmlExtractor(fast=True)
    out = []
    for source, load in loaders:
        for page in tqdm(load()[:max_pages], desc=f"extract {source}", unit="page", disable=None):  # bar on terminals only
            text = page.gold_text
            if not text.strip():
                doc = extract(RawRecord(id=page.name, url=page.url, payload=page.html, http_charset=page.charset))
                text = doc.text if isinstance(doc, Document) else ""
            text = "\n".join(ln.strip() for ln in text.splitlines() if ln.strip())
            if text:
                out.append(Text(f"{source}/{page.name}", lang, source, text))
    return out


def web_texts(data_dir: Path, lang: str, max_reviews: int = 400, seed: int = 0, max_pages: int | None = None) -> list[Text]:
    """Ordinary web documents of ``lang`` (see the module docstring), in a fixed order.

    ``max_reviews``: Chinese reviews drawn (seeded) from each review set; ``max_pages``: HTML pages per dataset.
    """
    if lang == "en":
        dolma = data_dir / "web" / "en" / "dolma"
        out = [t for p in sorted(dolma.glob("cc_en_head-*.jsonl")) for t in _jsonl_texts(p, "web/dolma-cc", "en")]
        out += _jsonl_texts(dolma / "provided-documents-000.json.gz", "web/dolma-raw", "en")
        low = data_dir / "quality" / "cs336-fixtures" / "low_quality_cc.txt"
        out.append(Text("web/cs336-low-quality", "en", "web/cs336", low.read_text(encoding="utf-8")))
        return out + _pages("en", max_pages)
    if lang == "zh":
        out = _pages("zh", max_pages)
        out += _reviews(data_dir / "web" / "zh" / "chnsenticorp" / "ChnSentiCorp_htl_all.csv", "web/chnsenticorp", max_reviews, seed)
        out += _reviews(data_dir / "web" / "zh" / "waimai" / "waimai_10k.csv", "web/waimai", max_reviews, seed)
        return out
    raise ValueError(f"no web text for language {lang!r} (have: {', '.join(LANGS)})")
