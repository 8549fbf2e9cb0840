"""Extraction-quality metrics on the shared ground truth (used by the benchmark and tests).

Three references, three metrics, because they have different kinds of gold:

* trafilatura-eval (170 English pages): per page, snippets that must appear
  (``with``) and boilerplate that must not (``without``).  We report snippet
  recall, boilerplate leakage and the resulting precision/F1, as trafilatura's
  own evaluation does.
* CleanEval (358 English pages): full human-cleaned text; bag-of-words F1.
* readability (130 pages of Readability.js's test suite, 120 of them English or
  undeclared): the text of its expected article, the *article convention* (no
  navigation, comments or link lists); bag-of-words F1.
* cleaneval-zh (35 Chinese pages): full human-cleaned text; bag of character
  bigrams F1 (whitespace removed, since the gold is hard-wrapped).
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from skypile.data_paths import shared_path
from skypile.document import RawRecord

_TAG_RE = re.compile(r"^\s*<[phl]>", re.M)
_TEXT_LINE_RE = re.compile(rb"^\s*<text\b[^>]*>\s*\n?", re.I)
_ENCODING_ATTR_RE = re.compile(rb'encoding="([^"]*)"', re.I)
_ID_ATTR_RE = re.compile(rb'id="([^"]*)"', re.I)


@dataclass(frozen=True)
class GoldPage:
    """One evaluation page: the raw HTML bytes plus whatever gold its dataset has."""

    name: str
    url: str
    html: bytes
    charset: str = ""  # known charset of the page ("" when the dataset does not say)
    gold_text: str = ""
    with_snippets: tuple[str, ...] = ()
    without_snippets: tuple[str, ...] = ()

    def record(self) -> RawRecord:
        return RawRecord(
            id=self.name, url=self.url, payload=self.html, content_type="text/html", http_charset=self.charset
        )


def norm_ws(text: str) -> str:
    return " ".join(text.split())


def split_cleaneval_header(raw: bytes) -> tuple[bytes, str, str]:
    """CleanEval pages start with ``<text id="URL" ... encoding="...">``: strip it, return (html, url, charset)."""
    m = _TEXT_LINE_RE.match(raw)
    if not m:
        return raw, "", ""
    line = m.group(0)
    url = _ID_ATTR_RE.search(line)
    enc = _ENCODING_ATTR_RE.search(line)
    charset = enc.group(1).decode("ascii", "ignore") if enc else ""
    if charset.lower() in ("", "unset", "unknown"):
        charset = ""
    return raw[m.end() :], (url.group(1).decode("utf-8", "replace") if url else ""), charset


def cleaneval_gold_text(gold: str) -> str:
    """A CleanEval gold file's text: without its ``URL:`` line and its ``<p>``/``<h>``/``<l>`` segment tags."""
    return _TAG_RE.sub("", gold.split("\n", 1)[1] if gold.startswith("URL:") else gold)


def load_trafilatura_eval() -> list[GoldPage]:
    base = shared_path("html-en", "trafilatura-eval")
    pages = []
    with open(base / "ground-truth.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            html = gzip.decompress((base / row["file"]).read_bytes())
            pages.append(
                GoldPage(
                    name=Path(row["file"]).name,
                    url=row["url"],
                    html=html,
                    with_snippets=tuple(row["with"]),
                    without_snippets=tuple(row["without"]),
                )
            )
    return pages


def load_cleaneval_en() -> list[GoldPage]:
    base = shared_path("html-en", "cleaneval")
    pages = []
    for path in sorted((base / "input").glob("*.html.gz")):
        name = path.name[: -len(".html.gz")]
        html, url, charset = split_cleaneval_header(gzip.decompress(path.read_bytes()))
        url = url or f"http://cleaneval.skypile.test/{name}.html"
        gold = cleaneval_gold_text(gzip.decompress((base / "gold" / f"{name}.txt.gz").read_bytes()).decode("utf-8", "replace"))
        pages.append(GoldPage(name=name, url=url, html=html, charset=charset, gold_text=gold))
    return pages


def load_readability(english: bool = True) -> list[GoldPage]:
    """Readability.js's test pages with their expected article text; ``english``: only the 120
    pages whose ``lang`` is English or undeclared (else the 10 declared in another language)."""
    base = shared_path("html-en", "readability")
    meta = json.loads((base / "pages.json").read_text(encoding="utf-8"))
    pages = []
    for name in sorted(meta):
        lang = (meta[name].get("lang") or "en").lower()
        if lang.startswith("en") != english:
            continue
        html = gzip.decompress((base / "pages" / f"{name}.html.gz").read_bytes())
        gold = (base / "gold" / f"{name}.txt").read_text(encoding="utf-8")
        pages.append(GoldPage(name=name, url=f"http://readability.skypile.test/{name}/", html=html, gold_text=gold))
    return pages


def load_cleaneval_zh() -> list[GoldPage]:
    base = shared_path("html-zh", "cleaneval-zh")
    pages = []
    for path in sorted((base / "original").glob("*.html")):
        html, url, charset = split_cleaneval_header(path.read_bytes())
        url = url or f"http://cleaneval-zh.skypile.test/{path.name}"
        gold = (base / "cleaned" / f"{path.stem}.txt").read_text(encoding="utf-8", errors="replace")
        pages.append(GoldPage(name=path.stem, url=url, html=html, charset=charset, gold_text=gold))
    return pages


def load_gne_pages() -> list[GoldPage]:
    """The 62 GNE Chinese news pages (no human gold; GNE's own output is not used here)."""
    base = shared_path("html-zh", "gne", "html")
    pages = []
    for path in sorted(base.rglob("*.html.gz")):
        rel = path.relative_to(base).as_posix()[: -len(".gz")]
        html = gzip.decompress(path.read_bytes())
        pages.append(GoldPage(name=f"gne/{rel}", url=f"http://gne.skypile.test/{rel}", html=html))
    return pages


@dataclass
class SnippetScore:
    """trafilatura-style counts: found ``with`` snippets (tp), missed (fn), leaked ``without`` (fp), absent (tn)."""

    tp: int = 0
    fn: int = 0
    fp: int = 0
    tn: int = 0

    def add(self, text: str, page: GoldPage) -> None:
        t = norm_ws(text)
        for s in page.with_snippets:
            if norm_ws(s) in t:
                self.tp += 1
            else:
                self.fn += 1
        for s in page.without_snippets:
            if norm_ws(s) in t:
                self.fp += 1
            else:
                self.tn += 1

    @property
    def recall(self) -> float:
        return self.tp / max(self.tp + self.fn, 1)

    @property
    def leakage(self) -> float:
        return self.fp / max(self.fp + self.tn, 1)

    @property
    def precision(self) -> float:
        return self.tp / max(self.tp + self.fp, 1)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class OverlapScore:
    """Micro-averaged bag-of-units precision/recall/F1 (units: words or character bigrams)."""

    overlap: int = 0
    predicted: int = 0
    gold: int = 0

    def add(self, pred: Counter, gold: Counter) -> None:
        self.overlap += sum((pred & gold).values())
        self.predicted += sum(pred.values())
        self.gold += sum(gold.values())

    @property
    def precision(self) -> float:
        return self.overlap / max(self.predicted, 1)

    @property
    def recall(self) -> float:
        return self.overlap / max(self.gold, 1)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def word_bag(text: str) -> Counter:
    return Counter(re.findall(r"\w+", text.lower()))


_UNIT_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def unit_bag(text: str) -> Counter:
    """Lowercased words and single CJK characters: :func:`word_bag` on English text, a character
    bag on Chinese or Japanese text (a set that mixes both, like readability's, scores both fairly)."""
    return Counter(_UNIT_RE.findall(text.lower()))


def char_bigram_bag(text: str) -> Counter:
    s = "".join(text.split())
    return Counter(s[i : i + 2] for i in range(len(s) - 1))
