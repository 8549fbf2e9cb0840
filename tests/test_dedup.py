"""Corpus-scale dedup: MinHash against datasketch, the KeyedFacts fast paths, recurring segments,
near-duplicate clusters on real articles with planted copies, local == Beam, and bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from skypile.cli import main
from skypile.corpus import DocRef, FactSource, KeyedFacts, MemColl, Sum, Union, run_corpus_stage
from skypile.dedup.minhash import (MinHasher, jaccard_estimate, optimal_bands, recall_bands, s_curve, shingle_hashes,
                                   word_hashes)
from skypile.dedup.near import NearDedup
from skypile.dedup.segments import RecurringSegments, normalize_segment
from skypile.document import Document
from skypile.evaluation import dedup as ev
from skypile.stage import StageStats


@pytest.fixture(scope="module")
def articles(shared) -> dict[str, list[str]]:
    shared("html-en", "cleaneval", "gold")
    shared("domains", "zh", "skywork-eval-loss")
    return {"en": ev.base_articles("en")[:120], "zh": ev.base_articles("zh", limit=220)[:150]}


def test_word_hashes_ignore_case_punctuation_and_position():
    a = word_hashes("Hello, world! HELLO world")
    assert len(a) == 4 and a[0] == a[2] and a[1] == a[3] and a[0] != a[1]
    assert np.array_equal(shingle_hashes("The cat sat on the mat today."), shingle_hashes("the CAT -- sat on, the mat (today)"))
    assert len(shingle_hashes("one two three four five six seven")) == 3  # word 5-grams
    zh = "中文文本按字切分，没有空格也能去重。"
    assert len(shingle_hashes(zh)) == len("中文文本按字切分没有空格也能去重") - 4  # character 5-grams, punctuation ignored
    assert len(shingle_hashes("hi")) == 1 and len(shingle_hashes("…!?")) == 0


def test_minhash_estimates_agree_with_datasketch(articles):
    from datasketch import MinHash

    rng = random.Random(3)
    hasher = MinHasher(128)
    perms = MinHash(num_perm=128, scheme="affine32").permutations
    truth, ours, theirs = [], [], []
    for lang, texts in articles.items():
        for text in texts[:40]:
            spans = ev._units(text, lang)
            edited = ev._replace(text, spans, rng.sample(range(len(spans)), int(len(spans) * rng.uniform(0.01, 0.3))),
                                 [text[a:b] for a, b in spans], rng)
            a, b = shingle_hashes(text), shingle_hashes(edited)
            sa, sb = set(a.tolist()), set(b.tolist())
            truth.append(len(sa & sb) / len(sa | sb))
            ours.append(jaccard_estimate(hasher.signature(a), hasher.signature(b)))
            ma, mb = (MinHash(num_perm=128, permutations=perms, scheme="affine32") for _ in range(2))
            ma.update_batch([x.to_bytes(8, "little") for x in sa])
            mb.update_batch([x.to_bytes(8, "little") for x in sb])
            theirs.append(ma.jaccard(mb))
    truth, ours, theirs = map(np.array, (truth, ours, theirs))
    assert truth.min() < 0.4 and truth.max() > 0.8  # a real spread of similarities
    assert np.abs(ours - truth).mean() < 0.045
    assert np.abs(ours - truth).mean() <= np.abs(theirs - truth).mean() + 0.01
    assert np.abs(ours - theirs).mean() < 0.06
    # signatures are deterministic, and the batch API gives the per-document ones
    sh = [shingle_hashes(t) for t in articles["en"][:5]] + [np.zeros(0, np.uint64)]
    assert np.array_equal(hasher.signatures(sh)[2], MinHasher(128).signature(sh[2]))


def test_lsh_bands_follow_the_s_curve():
    for t in (0.5, 0.7, 0.8):
        b, r = recall_bands(t, 128)
        assert b * r <= 128 and s_curve(t, b, r) >= 0.99
        # as many rows as allowed: one more row per band would need more than 128 permutations for 0.99
        assert all(s_curve(t, bb, r + 1) < 0.99 for bb in range(1, 128 // (r + 1) + 1))
        b2, r2 = optimal_bands(t, 128)
        assert b2 * r2 <= 128 and abs((1 / b2) ** (1 / r2) - t) < 0.15  # the curve's steep part sits near t
    curve = s_curve(np.linspace(0, 1, 11), 35, 3)
    assert np.all(np.diff(curve) >= 0) and curve[0] == 0 and curve[-1] == 1


@pytest.mark.parametrize("partition_bytes", [64 << 20, 2000])  # one partition, or many
def test_keyed_facts_fast_paths_equal_plain_elements(monkeypatch, partition_bytes):
    import skypile.corpus

    monkeypatch.setattr(skypile.corpus, "PARTITION_BYTES", partition_bytes)
    rng = np.random.default_rng(0)
    # keys that repeat (0..50) and keys that almost never do (0..2**60)
    facts = [KeyedFacts(np.concatenate([rng.integers(0, 50, size=rng.integers(0, 8)), rng.integers(0, 2**60, size=3)]).astype(np.uint64),
                        ("doc", i)) for i in range(200)]
    plain = MemColl([kv for f in facts for kv in f.explode()])
    packed = MemColl(facts)
    norm = lambda groups: sorted((k, sorted(v)) for k, v in groups)  # noqa: E731
    assert norm(packed.group_by_key()) == norm(plain.group_by_key())
    counts = [KeyedFacts(f.keys, 1) for f in facts]
    assert sorted(MemColl(counts).combine_per_key(Sum())) == sorted(MemColl([kv for f in counts for kv in f.explode()]).combine_per_key(Sum()))
    assert sorted(packed.map(lambda kv: kv[0])) == sorted(plain.map(lambda kv: kv[0]))  # other ops see exploded facts

    # filter_values and flatten keep the packing: a filtered, flattened mix of packed facts and plain
    # (int key, value) pairs groups exactly as its exploded elements do
    odd = lambda v: v[1] % 2 == 1  # noqa: E731
    extra = [(int(k), ("extra", j)) for j, k in enumerate(rng.integers(0, 60, size=50))]
    mixed = packed.filter_values(odd).flatten(MemColl(extra))
    assert all(isinstance(x, KeyedFacts) for x in packed.filter_values(odd).items)
    assert mixed._packed() is not None  # grouped by the numpy path, not a dict of every fact
    exploded = MemColl([kv for kv in plain if odd(kv[1])] + extra)
    assert norm(mixed.group_by_key()) == norm(exploded.group_by_key())
    assert norm(mixed.group_by_key()) == norm(mixed.group_by_key())  # lazy: iterable again, same result


def test_expanding_a_grouping_is_lazy_and_folds_as_plain_elements_do():
    # near_dedup expands each LSH bucket into its members' candidates and folds them per member at once:
    # in process, the expansion (~35 copies per duplicate document) is never held as a list
    facts = [KeyedFacts(np.array([i % 7, 1000 + i], dtype=np.uint64), i) for i in range(60)]
    calls = []

    def expand(group):
        calls.append(group[0])
        key, values = group
        return [(v % 5, (key,)) for v in values]

    lazy = MemColl(facts).group_by_key().flat_map(expand)
    assert calls == []  # nothing expanded yet
    folded = sorted(lazy.combine_per_key(Union()))
    assert len(calls) == 7 + 60  # each group expanded once
    plain = MemColl([kv for f in facts for kv in f.explode()]).group_by_key().flat_map(expand).combine_per_key(Union())
    assert folded == sorted(plain)
    assert folded[0] == (0, tuple(sorted({k for v in range(0, 60, 5) for k in (v % 7, 1000 + v)})))


def test_facts_on_disk_are_not_loaded_by_filter_and_flatten():
    reads = []

    def read():
        reads.append(1)
        return iter([KeyedFacts(np.array([1, 2], dtype=np.uint64), ("a", 0)), KeyedFacts(np.array([2], dtype=np.uint64), ("b", 1))])

    coll = MemColl(FactSource(read)).filter_values(lambda v: v[1] == 1).flatten(MemColl([(2, ("c", 2))]))
    assert reads == []  # nothing read until the collection is iterated
    assert sorted(coll) == [(2, ("b", 1)), (2, ("c", 2))]
    assert sorted((k, sorted(v)) for k, v in coll.group_by_key()) == [(2, [("b", 1), ("c", 2)])]


def test_recurring_segments_removed_from_every_document(articles):
    texts = articles["en"][:40]
    docs = [Document(id=f"d{i:03d}", text=ev.wrap_in_site(t, "en", i % 2) if i < 30 else t, source="t") for i, t in enumerate(texts)]
    docs.append(Document(id="nav-only", text=ev.wrap_in_site("", "en", 0), source="t"))
    stats = StageStats()
    stage = RecurringSegments(min_docs=10)
    kept, dropped, table = run_corpus_stage(stage, docs, stats)
    assert [d.reason for d in dropped] == ["only_recurring_segments"]
    assert table["count"] >= 2 * 10  # two sites' navigation and footer lines
    for i, doc in enumerate(kept):
        assert "All rights reserved" not in doc.text and "You are here" not in doc.text
        assert normalize_segment(texts[i].split("\n")[0]) in normalize_segment(doc.text)  # the article stays
    changes = stage.drain_changes()
    assert changes["lines_removed"] >= 30 * 15 and changes["chars_removed"] > 0
    # below the threshold nothing is removed
    _, _, table = run_corpus_stage(RecurringSegments(min_docs=31), docs)
    assert table["count"] == 0


def _planted_jsonl(tmp: Path, articles: dict[str, list[str]]) -> tuple[Path, ev.PlantedSet]:
    sets = [ev.plant(texts, lang, seed=7) for lang, texts in articles.items()]
    planted = ev.PlantedSet([d for s in sets for d in s.docs], [c for s in sets for c in s.clusters],
                            {k: v for s in sets for k, v in s.kinds.items()})
    path = tmp / "docs.jsonl"
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in planted.docs), encoding="utf-8")
    return path, planted


def _clusters(out: Path) -> list[list[str]]:
    rows = pq.read_table(out / "clusters.parquet").to_pylist()
    assert rows and set(rows[0]) == {"doc_id", "cluster_id", "rule"}
    return ev.clusters_from_rows((r["doc_id"], r["cluster_id"]) for r in rows)


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory, articles):
    tmp = tmp_path_factory.mktemp("planted")
    src, planted = _planted_jsonl(tmp, articles)
    out = tmp / "local"
    assert main(["dedup", "--input", str(src), "--output", str(out), "--rules", "exact,minhash,segments", "--no-progress"]) == 0
    return src, planted, out


def test_dedup_finds_planted_copies_on_real_articles(planted_run):
    src, planted, out = planted_run
    clusters = _clusters(out)
    scores = ev.pairwise_scores(clusters, planted.clusters)
    assert scores["precision"] >= 0.98 and scores["recall"] >= 0.97, scores
    stats = json.loads((out / "stats.json").read_text())
    assert stats["balanced"]
    kept = {r["id"] for f in sorted((out / "shards").glob("*.parquet")) for r in pq.read_table(f, columns=["id"]).to_pylist()}
    # one survivor per found cluster: the smallest id; every other member is gone
    for cluster in clusters:
        assert [d for d in cluster if d in kept] == [min(cluster)]
    for stage in ("exact_dedup", "segments", "near_dedup"):
        assert stats["stages"][stage]["chars_removed"] > 0
    assert stats["stages"]["segments"]["changed"]["lines_removed"] > 0
    # only the chosen rules run
    only = out.parent / "exact-only"
    assert main(["dedup", "--input", str(src), "--output", str(only), "--rules", "exact", "--no-progress"]) == 0
    assert set(json.loads((only / "stats.json").read_text())["stages"]) == {"read", "unique_ids", "exact_dedup", "write"}
    assert main(["dedup", "--input", str(src), "--output", str(only), "--rules", "fuzzy"]) == 2


def test_dedup_on_beam_equals_local(planted_run):
    src, _, out = planted_run
    beam = out.parent / "beam"
    assert main(["dedup", "--input", str(src), "--output", str(beam), "--runner", "DirectRunner", "--workers", "1", "--no-progress"]) == 0
    a, b = (pq.read_table(o / "clusters.parquet").to_pylist() for o in (out, beam))
    assert sorted(map(lambda r: tuple(r.values()), a)) == sorted(map(lambda r: tuple(r.values()), b))
    ids = lambda o: sorted(r["id"] for f in (o / "shards").glob("*.parquet") for r in pq.read_table(f, columns=["id"]).to_pylist())  # noqa: E731
    assert ids(out) == ids(beam)


def test_a_template_bucket_stays_linear(articles):
    # 3,000 pages of one template that differ only in a number: LSH buckets of thousands of members
    template = " ".join(articles["en"][0].split()[:300])
    docs = [Document(id=f"p{i:05d}", text=f"Page {i}. {template}", source="t") for i in range(3000)]
    stage = NearDedup(threshold=0.8)
    facts = MemColl([f for i, d in enumerate(docs) for f in stage.facts(d, DocRef("s", i))])
    from skypile.dedup.near import MAX_COMPARE, _is_sketch, bucket_candidates

    buckets = list(facts.filter_values(lambda v: not _is_sketch(v)).group_by_key())
    largest = max(len(v) for _, v in buckets)
    assert largest > 2500  # most pages share each band
    big = next(b for b in buckets if len(b[1]) == largest)
    candidates = list(bucket_candidates(big))
    assert len(candidates) == largest - 1  # one element per member but the smallest, never pairs
    assert max(len(below) for _, below in candidates) == MAX_COMPARE
    kept, dropped, _ = run_corpus_stage(stage, docs)
    assert [d.id for d in kept] == ["p00000"] and len(dropped) == 2999


def test_bad_documents_are_counted_not_fatal(tmp_path):
    rows = [
        {"id": "empty", "text": ""},
        {"id": "spaces", "text": "   \n\n  "},
        {"id": "aaa", "text": "a" * 200_000},
        {"id": "haha", "text": "哈" * 50_000},
        {"id": "lines", "text": "\n".join(f"line {i % 7}" for i in range(1_000_000))},
        {"id": "ok", "text": "a perfectly ordinary document with a handful of words in it"},
        {"id": "ok-copy", "text": "A perfectly ordinary document, with a handful of words in it."},
    ]
    src = tmp_path / "bad.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n")
    out = tmp_path / "out"
    assert main(["dedup", "--input", str(src), "--output", str(out), "--no-progress"]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["balanced"] and stats["records_in"] == len(rows) + 1
    kept = {r["id"] for f in (out / "shards").glob("*.parquet") for r in pq.read_table(f, columns=["id"]).to_pylist()}
    assert {"aaa", "haha", "lines", "ok"} <= kept and "ok-copy" not in kept  # exact after normalization
    assert sum(stats["stages"]["read"]["dropped"].values()) >= 2  # the empty texts and the broken line


# ---------------------------------------------------------------------------------------------
# semantic dedup


def test_bottom_k_sample_does_not_depend_on_partitioning():
    from skypile.dedup.semantic import BottomK, sample_key

    items = [(sample_key(f"doc{i}"), bytes([i % 256])) for i in range(1000)]
    c = BottomK(50)
    one = c.extract(c.merge([c.merge([c.create()]), _fold(c, items)]))
    parts = [_fold(c, items[i::7]) for i in range(7)]
    assert c.extract(c.merge(parts)) == one and len(one) == 50


def _fold(c, items):
    acc = c.create()
    for x in items:
        acc = c.add(acc, x)
    return acc


def test_semantic_dedup_drops_reworded_copies_and_flags_dense_clusters(articles):
    from skypile.dedup.encoders import HashingEncoder
    from skypile.dedup.semantic import DENSE_RULE, SemanticDedup

    texts = [t for t in articles["en"] if len(t) < 15_000][:60]  # encoders read a document's first 20k characters
    docs = [Document(id=f"a{i:03d}", text=t, source="t") for i, t in enumerate(texts)]
    # the same paragraphs in another order: no shingle-level copy of the whole, the same content
    reordered = [Document(id=f"b{i:03d}", text="\n".join(reversed(t.split("\n"))), source="t") for i, t in enumerate(texts[:10])]
    spam = [Document(id=f"s{i:03d}", text="Cheap watches for sale, best price, buy now, cheap watches discount. " * 5 + f"Item {i}.",
                     source="t") for i in range(120)]
    stage = SemanticDedup(HashingEncoder(), threshold=0.9, n_clusters=8, dense_min_docs=20, dense_cos=0.8)
    facts = MemColl([f for i, d in enumerate(docs + reordered + spam) for f in stage.facts(d, DocRef("s", i))])
    decision = stage.decide(facts)
    dropped = {ref.row for ref, _ in decision.verdicts}
    ids = [d.id for d in docs + reordered + spam]
    dropped_ids = {ids[r] for r in dropped}
    assert {f"b{i:03d}" for i in range(10)} <= dropped_ids | {f"a{i:03d}" for i in range(10)}
    assert all(not i.startswith("a") or int(i[1:]) < 10 for i in dropped_ids)  # distinct articles all stay
    report = list(decision.report)
    flagged = {r[0] for r in report if r[2] == DENSE_RULE}
    assert flagged <= {d.id for d in spam} and len(flagged) >= 0.9 * len(spam)  # k-means may cut the spam in parts
    # apply: a verdict drops the document naming its survivor, no verdict keeps it
    all_docs = docs + reordered + spam
    ref, (reason, survivor) = next(iter(decision.verdicts))
    out = stage.apply(all_docs[ref.row], (reason, survivor), None)
    assert (out.reason, out.detail) == ("semantic_duplicate", f"semantic duplicate of {survivor}")
    assert stage.apply(docs[-1], None, None) is docs[-1]


def test_encoders_give_unit_vectors_and_clear_errors(tmp_path):
    from skypile.config import ConfigError, from_dict
    from skypile.dedup.encoders import FastTextEncoder, HashingEncoder, space_cjk
    from skypile.filters.language import default_model_path
    from skypile.recipes import build_recipe

    assert space_cjk("中文text 混合") == "中 文 text 混 合"
    ft = FastTextEncoder(default_model_path())  # any fastText model file: here the lid.176 one the wheel ships
    for enc in (HashingEncoder(), ft):
        v = enc.encode("中文维基百科是一个自由的百科全书 and an English sentence")
        assert v.dtype == np.float32 and abs(float(np.linalg.norm(v)) - 1) < 1e-5
        assert float(v @ enc.encode("中文维基百科是一个自由的百科全书 and an English sentence")) > 0.999
    assert not np.any(HashingEncoder().encode("  ...  "))
    with pytest.raises(ConfigError, match="semantic_dedup.model"):
        build_recipe(from_dict({"recipe": "dedup", "steps": ["semantic_dedup"], "semantic_dedup": {"encoder": "fasttext"}}))
    with pytest.raises(ConfigError, match="unknown encoder"):
        build_recipe(from_dict({"recipe": "dedup", "steps": ["semantic_dedup"], "semantic_dedup": {"encoder": "bert"}}))
