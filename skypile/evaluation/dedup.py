"""Measuring dedup: real articles with planted duplicates, and pairwise precision / recall.

The test set is built from real text in ``../shared/data`` (English: CleanEval
gold texts, WikiText articles, Common Crawl documents; Chinese: Skywork's
domain test sets, zhwiki, CleanEval-zh) and plants three kinds of copies of a
share of the articles:

* **exact**: the same text (spacing changed at the end);
* **syndicated**: a new header and footer line, and 1–3 spans together holding
  5–10% of the words (characters for Chinese) rewritten;
* **templated**: 3–6% of the words (characters) edited at scattered places, and
  the page wrapped in one of a few sites' navigation / related-links blocks,
  which also wrap many *unrelated* articles (so boilerplate alone must not make
  two pages duplicates).

The truth is the clusters "original + its copies"; a dedup run's clusters come
from ``clusters.parquet`` (every rule's clusters, merged where they share a
document).  Precision and recall count document *pairs* in the same cluster.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Iterable

from skypile.data_paths import shared_data_dir, shared_path
from skypile.evaluation.extraction import cleaneval_gold_text
from skypile.quality.corpora import wiki_articles

_EN_SITES = [
    ("The Daily Ledger", ["Home", "World", "Business", "Technology", "Sports", "Opinion", "Subscribe", "Sign in"]),
    ("Metro Herald", ["Home", "Local", "Politics", "Weather", "Traffic", "Obituaries", "Contact us", "Advertise"]),
    ("TechPulse", ["News", "Reviews", "How-to", "Deals", "Podcasts", "Newsletter", "About", "Careers"]),
    ("Valley Voice", ["Front page", "Community", "Schools", "Events", "Classifieds", "Letters", "Archive", "Log in"]),
    ("Global Post Online", ["Latest", "Asia", "Europe", "Americas", "Africa", "Video", "Photos", "Donate"]),
    ("Science Today", ["Space", "Health", "Environment", "Physics", "Biology", "Features", "Events", "Shop"]),
]
_ZH_SITES = [
    ("新华在线", ["首页", "时政", "国际", "财经", "体育", "娱乐", "登录", "注册"]),
    ("南方快讯", ["首页", "本地", "民生", "房产", "汽车", "教育", "订阅", "客户端下载"]),
    ("科技前沿网", ["资讯", "评测", "手机", "电脑", "游戏", "视频", "关于我们", "联系我们"]),
    ("财经观察", ["要闻", "股票", "基金", "理财", "期货", "外汇", "数据", "会员中心"]),
    ("文化周刊", ["读书", "艺术", "历史", "影视", "音乐", "专栏", "投稿", "广告服务"]),
    ("健康生活", ["养生", "医疗", "饮食", "运动", "母婴", "心理", "问答", "意见反馈"]),
]


@dataclass
class PlantedSet:
    docs: list[dict]  # {"id", "text", "lang"}
    clusters: list[list[str]]  # true clusters of ids (size >= 2)
    kinds: dict[str, str] = field(default_factory=dict)  # copy id -> exact | syndicated | templated


def base_articles(lang: str, limit: int | None = None) -> list[str]:
    """Real articles of ``lang`` (en / zh) from the shared data, long enough to be worth deduplicating."""
    out: list[str] = []
    if lang == "en":
        out += [cleaneval_gold_text(gzip.open(p, "rt", encoding="utf-8", errors="replace").read())
                for p in sorted(shared_path("html-en", "cleaneval", "gold").glob("*.txt.gz"))]
        out += [a.text for a in wiki_articles(shared_data_dir(), "en")]
        for p in sorted(shared_path("web", "en", "dolma").glob("cc_en_head-*.jsonl")):
            out += [json.loads(line)["text"] for line in p.open(encoding="utf-8")]
        out = [t for t in out if len(t.split()) >= 150]
    elif lang == "zh":
        for p in sorted(shared_path("domains", "zh", "skywork-eval-loss").glob("zh_*.jsonl")):
            out += [json.loads(line)["text"] for line in p.open(encoding="utf-8")]
        out += [a.text for a in wiki_articles(shared_data_dir(), "zh")]
        out += [p.read_text(encoding="utf-8", errors="replace") for p in sorted(shared_path("html-zh", "cleaneval-zh", "cleaned").glob("*.txt"))]
        out = [t for t in out if len(re.sub(r"\s", "", t)) >= 400]
    else:
        raise ValueError(f"no base articles for language {lang!r}")
    seen: set[str] = set()
    unique = [t for t in out if not (t in seen or seen.add(t))]
    return distinct(unique[:limit] if limit else unique)


def distinct(articles: list[str], max_jaccard: float = 0.2) -> list[str]:
    """``articles`` without those whose true shingle Jaccard with an earlier one reaches ``max_jaccard``.

    Real collections hold their own near-duplicates (templated fund notices, the
    same wire story twice); left in, they would count as false positives.  Exact
    Jaccard over an inverted index of shingles (evaluation-sized, not MinHash).
    """
    from collections import Counter

    from skypile.dedup.minhash import shingle_hashes

    sets = [set(shingle_hashes(t).tolist()) for t in articles]
    index: dict[int, list[int]] = {}
    for i, sh in enumerate(sets):
        for h in sh:
            index.setdefault(h, []).append(i)
    overlap: Counter = Counter()
    for docs in index.values():
        if 1 < len(docs) <= 200:
            overlap.update(combinations(docs, 2))
    dropped: set[int] = set()
    for (i, j), inter in sorted(overlap.items()):
        if i not in dropped and j not in dropped and inter / (len(sets[i]) + len(sets[j]) - inter) >= max_jaccard:
            dropped.add(j)
    return [t for i, t in enumerate(articles) if i not in dropped]


def _units(text: str, lang: str) -> list[tuple[int, int]]:
    """Spans of the editable units of ``text``: words (en) or Han characters (zh)."""
    pattern = r"[\u4e00-\u9fff]" if lang == "zh" else r"\w+"
    return [m.span() for m in re.finditer(pattern, text)]


def _replace(text: str, spans: list[tuple[int, int]], pick: Iterable[int], vocab: list[str], rng: random.Random) -> str:
    chosen = sorted(set(pick))
    out, last = [], 0
    for i in chosen:
        a, b = spans[i]
        out.append(text[last:a])
        out.append(rng.choice(vocab))
        last = b
    out.append(text[last:])
    return "".join(out)


def syndicate(text: str, lang: str, vocab: list[str], rng: random.Random) -> str:
    """New header and footer lines, and 1–3 spans together holding 5–10% of the units rewritten."""
    spans = _units(text, lang)
    total = max(1, int(len(spans) * rng.uniform(0.05, 0.10)))
    n_spans = rng.randint(1, 3)
    sizes = [total // n_spans + (1 if i < total % n_spans else 0) for i in range(n_spans)]
    pick: list[int] = []
    for size in sizes:
        start = rng.randrange(0, max(1, len(spans) - size))
        pick += range(start, min(len(spans), start + size))
    body = _replace(text, spans, pick, vocab, rng)
    if lang == "zh":
        header = f"本文转载自{rng.choice(_ZH_SITES)[0]}，发布时间：2023年{rng.randint(1, 12)}月{rng.randint(1, 28)}日"
        footer = f"（责任编辑：{rng.choice(['王', '李', '张', '刘', '陈'])}{rng.choice(['明', '华', '丽', '强', '静'])}）"
    else:
        header = f"Originally published by {rng.choice(_EN_SITES)[0]} on {rng.randint(1, 28)} March 2023"
        footer = f"Reprinted with permission. Copyright {rng.randint(2000, 2023)} {rng.choice(_EN_SITES)[0]}."
    return f"{header}\n{body}\n{footer}"


def scatter_edits(text: str, lang: str, vocab: list[str], rng: random.Random) -> str:
    """3–6% of the units replaced at scattered places."""
    spans = _units(text, lang)
    k = max(1, int(len(spans) * rng.uniform(0.03, 0.06)))
    return _replace(text, spans, rng.sample(range(len(spans)), min(k, len(spans))), vocab, rng)


def wrap_in_site(text: str, lang: str, site: int) -> str:
    """The page inside a site's navigation bar and related-links / footer block (the same on every page)."""
    name, menu = (_ZH_SITES if lang == "zh" else _EN_SITES)[site]
    if lang == "zh":
        head = [name, *menu, "当前位置：首页 > 正文"]
        foot = ["相关阅读", f"{name}新闻客户端下载", "扫描二维码关注官方微信", f"版权所有 {name} 未经授权禁止转载", "举报电话：12345678"]
    else:
        head = [name, *menu, "You are here: Home > Articles"]
        foot = ["Related articles", f"More from {name}", "Follow us on social media", f"© {name}. All rights reserved.",
                "Privacy policy | Terms of use | Cookie settings"]
    return "\n".join([*head, text, *foot])


def plant(articles: list[str], lang: str, seed: int = 0, share: float = 0.4, decoys: float = 0.3) -> PlantedSet:
    """Plant copies of ``share`` of ``articles`` (1–3 copies each, of random kinds); wrap ``decoys`` of the
    others in site templates too.  Ids are random, so which copy survives is not planted."""
    rng = random.Random(seed)
    vocab = sorted({text[a:b] for text in articles[:200] for a, b in _units(text, lang)})
    sites = len(_ZH_SITES if lang == "zh" else _EN_SITES)
    docs: list[dict] = []
    clusters: list[list[str]] = []
    kinds: dict[str, str] = {}

    def new_id() -> str:
        return f"{lang}-{rng.getrandbits(48):012x}"

    order = list(range(len(articles)))
    rng.shuffle(order)
    n_orig = int(len(articles) * share)
    for rank, i in enumerate(order):
        text = articles[i]
        oid = new_id()
        if rank >= n_orig:
            docs.append({"id": oid, "text": wrap_in_site(text, lang, rng.randrange(sites)) if rng.random() < decoys else text, "lang": lang})
            continue
        docs.append({"id": oid, "text": text, "lang": lang})
        cluster = [oid]
        for kind in rng.sample(["exact", "syndicated", "templated"], rng.randint(1, 3)):
            if kind == "exact":
                copy = text + "\n"
            elif kind == "syndicated":
                copy = syndicate(text, lang, vocab, rng)
            else:
                copy = wrap_in_site(scatter_edits(text, lang, vocab, rng), lang, rng.randrange(sites))
            cid = new_id()
            docs.append({"id": cid, "text": copy, "lang": lang})
            cluster.append(cid)
            kinds[cid] = kind
        clusters.append(cluster)
    rng.shuffle(docs)
    return PlantedSet(docs, clusters, kinds)


def _pairs(clusters: Iterable[Iterable[str]]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for c in clusters:
        out.update(combinations(sorted(set(c)), 2))
    return out


def clusters_from_rows(rows: Iterable[tuple[str, str]]) -> list[list[str]]:
    """``(doc_id, cluster_id)`` rows of several rules → merged clusters (union-find; evaluation-sized)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for doc, cluster in rows:
        a, b = find(doc), find(cluster)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[str, list[str]] = {}
    for x in list(parent):
        groups.setdefault(find(x), []).append(x)
    return [g for g in groups.values() if len(g) > 1]


def pairwise_scores(predicted: Iterable[Iterable[str]], truth: Iterable[Iterable[str]]) -> dict[str, float]:
    """Precision and recall over pairs of documents put in the same cluster."""
    pred, true = _pairs(predicted), _pairs(truth)
    hit = len(pred & true)
    return {
        "precision": hit / len(pred) if pred else 1.0,
        "recall": hit / len(true) if true else 1.0,
        "pred_pairs": len(pred),
        "true_pairs": len(true),
    }


def recall_by_kind(predicted: Iterable[Iterable[str]], planted: PlantedSet) -> dict[str, float]:
    """Share of each kind of copy found in the same cluster as its original."""
    where = {d: i for i, c in enumerate(predicted) for d in c}
    found: dict[str, list[int]] = {}
    for cluster in planted.clusters:
        orig = cluster[0]
        for cid in cluster[1:]:
            ok = orig in where and where.get(cid) == where[orig]
            found.setdefault(planted.kinds[cid], []).append(int(ok))
    return {k: sum(v) / len(v) for k, v in sorted(found.items())}
