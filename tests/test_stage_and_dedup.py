"""Stage runner accounting, stats merging, and exact dedup as a corpus stage (identify → decide → apply)."""

from __future__ import annotations

import json

import numpy as np

from skypile.corpus import DocRef, MemColl, run_corpus_stage
from skypile.dedup.exact import ExactDedup, dedup_key, normalize_for_dedup
from skypile.document import Document, Dropped
from skypile.stage import StageStats, drop, run_stage


class EvenOnly:
    name = "even"

    def __call__(self, doc: Document):
        return doc if int(doc.id) % 2 == 0 else drop(self.name, "odd", doc)


def _doc(i: int, text: str = "") -> Document:
    return Document(id=str(i), text=text or f"text {i}", source="t")


def test_run_stage_counts_every_outcome(tmp_path):
    stats = StageStats()
    dropped: list[Dropped] = []
    kept = list(run_stage(EvenOnly(), (_doc(i) for i in range(11)), stats, dropped.append))
    assert [d.id for d in kept] == ["0", "2", "4", "6", "8", "10"]
    assert [d.id for d in dropped] == ["1", "3", "5", "7", "9"]
    report = stats.write_json(str(tmp_path / "stats.json"), first_stage="even", final_kept=len(kept))
    assert report == json.loads((tmp_path / "stats.json").read_text())
    assert {k: report["stages"]["even"][k] for k in ("in", "kept", "dropped")} == {"in": 11, "kept": 6, "dropped": {"odd": 5}}
    assert report["stages"]["even"]["seconds"] >= 0
    assert report["balanced"]


def test_stats_balance_detects_lost_records():
    stats = StageStats.from_counters({"a.in": 10, "a.kept": 8, "a.dropped.x": 2, "b.in": 8, "b.kept": 7}, order=["a", "b"])
    report = stats.to_dict(first_stage="a", final_kept=7)
    assert report["dropped_total"] == 2 and not report["balanced"]  # one record vanished in b
    assert list(report["stages"]) == ["a", "b"]


def test_normalization_ignores_case_width_and_spacing():
    assert normalize_for_dedup("Hello   World\n") == normalize_for_dedup("hello world")
    assert normalize_for_dedup("ＡＢＣ１２３") == "abc123"  # full-width forms (NFKC)
    assert dedup_key(_doc(1, "Same  text")) == dedup_key(_doc(2, "same text"))
    assert dedup_key(_doc(1, "same text")) != dedup_key(_doc(2, "same text!"))


def test_exact_dedup_keeps_smallest_id_whatever_the_order():
    docs = [_doc(3, "A b"), _doc(1, "x"), _doc(2, "a  B"), _doc(4, "a b")]
    for order in (docs, list(reversed(docs))):
        stats = StageStats()
        kept, dropped, table = run_corpus_stage(ExactDedup(), order, stats)
        assert sorted(d.id for d in kept) == ["1", "2"] and table == {"largest": [["2", 3]]}  # cluster 2: 3 members
        assert sorted(d.id for d in dropped) == ["3", "4"]
        assert all(d.reason == "exact_duplicate" and d.detail == "duplicate of 2" for d in dropped)
        assert stats.to_dict("exact_dedup", final_kept=2)["stages"]["exact_dedup"]["dropped"] == {"exact_duplicate": 2}


def test_exact_dedup_facts_are_small_and_verdicts_name_locations():
    stage = ExactDedup()
    facts = [f for i, d in enumerate([_doc(7, "same"), _doc(5, "SAME"), _doc(6, "other")]) for f in stage.facts(d, DocRef(f"s{i}", i))]
    # one packed fact per document: the hash's first 64 bits as the key, the other 64 with the id and location
    assert all(f.keys.dtype == np.uint64 and len(f.keys) == 1 and len(f.value[0]) == 8 for f in facts)
    verdicts = list(stage.decide(MemColl(facts)).verdicts)
    # the same decision from the facts as plain elements (how Beam sees them)
    assert list(stage.decide(MemColl([kv for f in facts for kv in f.explode()])).verdicts) == verdicts
    assert verdicts == [(DocRef("s0", 0), ("exact_duplicate", "5"))]  # (reason, survivor id)


def test_stats_merge_adds_counts_and_seconds_and_round_trips():
    a, b = StageStats(), StageStats()
    a.add("read", "in", 3)
    a.add("read", "kept", 2)
    a.add("read", "dropped.bad", 1)
    a.add_time("read", 0.5)
    b.add("read", "in", 1)
    b.add("read", "kept", 1)
    b.add_time("read", 0.25)
    b.add("write", "kept", 3)
    merged = StageStats.from_json(json.loads(json.dumps(a.to_json()))).merge(StageStats.from_json(b.to_json()))
    report = merged.to_dict("read", final_kept=3, order=["read", "write"])
    assert report["stages"]["read"] == {"in": 4, "kept": 3, "dropped": {"bad": 1}, "seconds": 0.75, "docs_per_s": 5.3}
    assert report["balanced"] and report["stages"]["write"]["kept"] == 3


def test_unique_ids_renames_all_but_one_per_id_stably():
    from skypile.dedup.unique_ids import UniqueIds

    docs = [_doc(1, "alpha"), _doc(1, "beta"), _doc(1, "beta"), _doc(2, "gamma"), _doc(1, "alpha")]
    renamed = {}
    for order in (docs, list(reversed(docs))):
        fresh = [Document(id=d.id, text=d.text, source=d.source) for d in order]
        kept, dropped, _ = run_corpus_stage(UniqueIds(), fresh)
        assert not dropped and len({d.id for d in kept}) == 5
        assert sorted(d.id for d in kept if not d.id.startswith("1#")) == ["1", "2"]
        renamed[len(renamed)] = sorted(d.id for d in kept)
    assert renamed[0] == renamed[1]  # the same new ids whatever the order
    stage = UniqueIds()
    stage.apply(_doc(3), "3#x", None)
    assert stage.drain_changes() == {"id_renamed": 1} and stage.drain_changes() == {}


def test_renamed_ids_never_collide_with_ids_already_in_the_input():
    """Adversarial ids: the input already holds the names a rename would pick (a run's own output re-exported
    next to its source brought `a` and `a#79603211` together), nested renames, and copies of one text."""
    from skypile.dedup.unique_ids import UniqueIds, content_hash, id_root

    def h(text: str) -> str:
        return content_hash(Document(id="", text=text, source="t"))[:4].hex()

    texts = ["alpha", "beta", "gamma"]
    docs = [Document(id="a", text=t, source="t") for t in texts + ["beta", "beta"]]
    taken = [f"a#{h(t)}" for t in texts] + [f"a#{h('beta')}.1", f"a#{h('beta')}.2", f"a#{h('beta')}#{h('beta')}"]
    docs += [Document(id=i, text=f"{i} {n}", source="t") for n, i in enumerate(taken)]
    docs += [Document(id=taken[1], text="a second document under a renamed-looking id", source="t"),
             Document(id="a#DEADBEEF", text="upper case: not a rename suffix", source="t")]
    results = []
    for order in (docs, list(reversed(docs))):
        fresh = [Document(id=d.id, text=d.text, source=d.source) for d in order]
        kept, dropped, _ = run_corpus_stage(UniqueIds(), fresh)
        ids = sorted(d.id for d in kept)
        assert not dropped and len(set(ids)) == len(ids) == len(docs)
        assert set(taken) | {"a", "a#DEADBEEF"} <= set(ids)  # every id that was unique in the input is kept
        results.append(ids)
    assert results[0] == results[1]  # whatever the order
    assert id_root(f"a#{h('beta')}.1#{h('gamma')}") == "a" and id_root("a#DEADBEEF") == "a#DEADBEEF"
