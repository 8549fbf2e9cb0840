"""Packing, rank x worker splits, mixing and exact resume of the trainer's data stream, on real shards."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

from skypile.trainer.data import (  # noqa: E402
    ALL, PackedDataset, PackedLoader, Reader, list_units, load_val_windows, open_dataset, reader_plan)
from skypile.writers.parquet import write_manifest, write_shard  # noqa: E402
from trainer_fixtures import real_shards  # noqa: E402,F401  (session fixture)


def _docs_multiset(docs) -> Counter:
    return Counter(tuple(d.tokens) for d in docs)


def _split_docs(stream: np.ndarray, eos: int, n_docs: int) -> list[tuple]:
    """The first ``n_docs`` EOS-terminated documents of a packed stream."""
    ends = np.flatnonzero(stream == eos)[:n_docs]
    assert len(ends) == n_docs, "stream ended before the reader's epoch did"
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [tuple(stream[s:e].tolist()) for s, e in zip(starts, ends)]


def _reader_docs(reader: Reader) -> int:
    return sum(len(entry[ALL]) for entry in reader.rows)


def test_data_dir_or_shards_dir(real_shards):
    root, manifest = open_dataset(real_shards["dir"])
    root2, _ = open_dataset(f"{real_shards['dir']}/shards")
    assert root == root2 and manifest["tokenizer"]["eos_id"] == real_shards["eos_id"]
    units = list_units(root, manifest)
    assert sum(u.rows for u in units) == manifest["rows"]
    assert [u.first_doc for u in units] == list(np.cumsum([0] + [u.rows for u in units[:-1]]))


@pytest.mark.parametrize("n_readers", [1, 3, 200])  # 200 > 64 row groups: document-level split
def test_reader_plans_partition_documents(real_shards, n_readers):
    root, manifest = open_dataset(real_shards["dir"])
    units = list_units(root, manifest)
    seen = Counter()
    for r in range(n_readers):
        for u, first, stride in reader_plan(units, r, n_readers):
            seen.update(units[u].first_doc + i for i in range(first, units[u].rows, stride))
    assert sorted(seen) == list(range(manifest["rows"])) and set(seen.values()) == {1}


def test_packing_covers_every_token_once_across_ranks_and_workers(real_shards):
    """2 ranks x 2 dataloader workers: each reader's epoch-0 stream, cut at EOS, is its documents;
    together the four readers hold every document of the corpus exactly once."""
    eos, world, workers, seq_len, batch = real_shards["eos_id"], 2, 2, 1024, 8
    got: Counter = Counter()
    total_tokens = 0
    for rank in range(world):
        ds = PackedDataset(real_shards["dir"], seq_len=seq_len, batch_size=batch, rank=rank, world_size=world,
                           num_workers=workers)
        n_docs = {j: _reader_docs(ds.make_reader(j)) for j in range(workers)}
        streams = {j: [] for j in range(workers)}
        done: set[int] = set()
        for item in DataLoader(ds, batch_size=None, num_workers=workers):
            j = item["reader"]
            tokens = item["tokens"]
            assert tokens.shape == (batch, seq_len + 1) and tokens.dtype == torch.int64
            if j not in done:
                streams[j].append(tokens.reshape(-1).numpy())
                if item["state"]["streams"][ALL][0] >= 1:  # this reader has begun its second epoch
                    done.add(j)
            if len(done) == workers:
                break
        for j in range(workers):
            docs = _split_docs(np.concatenate(streams[j]), eos, n_docs[j])
            got.update(docs)
            total_tokens += sum(len(d) + 1 for d in docs)
    assert got == _docs_multiset(real_shards["docs"])
    assert total_tokens == real_shards["manifest"]["tokens"] + real_shards["manifest"]["rows"]


def test_document_level_split_on_a_small_corpus(real_shards, tmp_path):
    """Fewer row groups than readers: documents are dealt round-robin, still each exactly once."""
    docs = real_shards["docs"][:45]
    info = write_shard(docs, str(tmp_path), 0, 1, row_group_rows=16)  # 3 row groups, 4 readers
    write_manifest(str(tmp_path), [info], tokenizer={"eos_id": real_shards["eos_id"]})
    root, manifest = open_dataset(tmp_path)
    units = list_units(root, manifest)
    assert len(units) == 3
    got: Counter = Counter()
    for r in range(4):
        reader = Reader(units, r, 4, seq_len=64, eos_id=real_shards["eos_id"])
        n = _reader_docs(reader)
        assert n in (11, 12)
        windows = []
        while reader.epoch() == 0 or reader.state["cur"] is not None:
            windows.append(reader.next_window())
        got.update(_split_docs(np.concatenate(windows), real_shards["eos_id"], n))
    assert got == _docs_multiset(docs)


def test_loader_resume_is_exact_with_workers(real_shards):
    def make():
        ds = PackedDataset(real_shards["dir"], seq_len=256, batch_size=2, rank=1, world_size=2, num_workers=2)
        return PackedLoader(ds, num_workers=2)

    a = make()
    for _ in range(7):  # odd: the resumed loader must start with the second worker
        next(a)
    state = a.state_dict()
    expected = [next(a) for _ in range(6)]
    b = make()
    b.load_state_dict(state)
    for want in expected:
        assert torch.equal(next(b), want)
    c = PackedLoader(PackedDataset(real_shards["dir"], seq_len=128, batch_size=2, rank=1, world_size=2,
                                   num_workers=2), num_workers=2)
    with pytest.raises(ValueError, match="same world size"):
        c.load_state_dict(state)


def test_ranks_get_different_data_and_runs_repeat(real_shards):
    def first(rank, seed=0):
        ds = PackedDataset(real_shards["dir"], seq_len=128, batch_size=2, rank=rank, world_size=2, seed=seed)
        return next(PackedLoader(ds))

    assert torch.equal(first(0), first(0))
    assert not torch.equal(first(0), first(1))
    assert not torch.equal(first(0), first(0, seed=1))


def test_mixing_weights_and_schedule(real_shards):
    root, manifest = open_dataset(real_shards["dir"])
    units = list_units(root, manifest)
    eos = real_shards["eos_id"]
    by_source = {}
    for d in real_shards["docs"]:
        by_source.setdefault(d.source, set()).add(tuple(d.tokens))

    # weights: token shares follow them to within one window (513 tokens) after every window,
    # though single documents run to 20,000 tokens: the mix picks again at each window's start
    weights = {"wiki/en": 0.25, "code/linguist": 0.75}
    reader = Reader(units, 0, 1, seq_len=512, eos_id=eos, schedule=[[0, weights]])
    assert max(len(d) for d in by_source["wiki/en"] | by_source["code/linguist"]) > 20 * 513
    for _ in range(400):
        reader.next_window()
        done = reader.state["phase_tokens"]
        assert abs(done.get("code/linguist", 0) - 0.75 * sum(done.values())) <= 513
    done = reader.state["phase_tokens"]
    assert set(done) == {"wiki/en", "code/linguist"}
    total = sum(done.values())
    assert abs(done["code/linguist"] / total - 0.75) < 0.05
    # what the training log reports against the mix: tokens consumed per source, all epochs together
    consumed = reader.consumed_tokens()
    assert set(consumed) >= {"wiki/en", "code/linguist"} and consumed.get("wiki/zh", 0) == 0
    assert abs(consumed["code/linguist"] / sum(consumed.values()) - 0.75) < 0.05
    assert abs(sum(consumed.values()) - total) <= max(len(d) for ds in by_source.values() for d in ds) + 1

    # schedule: wiki/zh only for the first 20 windows' worth of tokens, then code only
    schedule = [[0, {"wiki/zh": 1}], [20 * 256, {"code/linguist": 1}]]
    reader = Reader(units, 0, 1, seq_len=256, eos_id=eos, schedule=schedule)
    early = np.concatenate([reader.next_window() for _ in range(20)])
    assert set(reader.state["phase_tokens"]) == {"wiki/zh"} and reader.state["phase"] == 0
    while reader.state["cur"] == "wiki/zh":  # finish the zh document that straddles the switch
        reader.next_window()
    late = np.concatenate([reader.next_window() for _ in range(300)])
    assert any(tuple(early[:64].tolist()) == doc[:64] for doc in by_source["wiki/zh"])
    late_docs = _split_docs(late, eos, 20)[1:]  # the first piece may start mid-document
    assert all(doc in by_source["code/linguist"] for doc in late_docs)
    assert reader.state["phase"] == 1


def test_validation_windows(real_shards):
    kw = dict(seq_len=128, n_windows=4, eos_id=real_shards["eos_id"], tokenizer=real_shards["tokenizer"])
    vocab = real_shards["manifest"]["tokenizer"]["vocab_size"]
    for name, spec in real_shards["val_sets"].items():
        w = load_val_windows(spec, **kw)
        assert w.shape == (4, 129), name
        assert int(w.max()) < vocab and int(w.min()) >= 0
    shards = load_val_windows(real_shards["dir"], **kw)
    assert shards.shape == (4, 129)
    assert torch.equal(load_val_windows(real_shards["val_sets"]["zh_news"], **kw),
                       load_val_windows(real_shards["val_sets"]["zh_news"], **kw))
    with pytest.raises(ValueError, match="tokenizer"):
        load_val_windows(real_shards["val_sets"]["code"], seq_len=128, n_windows=1, eos_id=2)


def test_validation_text_is_read_by_its_bytes_not_its_name(real_shards, tmp_path, shared):
    """A WikiText file gzipped, named .txt, or plain, named .txt.gz: the same windows."""
    import gzip

    kw = dict(seq_len=128, n_windows=4, eos_id=real_shards["eos_id"], tokenizer=real_shards["tokenizer"])
    text = shared("wiki", "en", "wikitext-2-raw-test.txt").read_bytes()[:200_000]
    (tmp_path / "plain.txt").write_bytes(text)
    (tmp_path / "gzipped.txt").write_bytes(gzip.compress(text))
    (tmp_path / "plain.txt.gz").write_bytes(text)
    want = load_val_windows(tmp_path / "plain.txt", **kw)
    assert want.shape == (4, 129)
    for name in ("gzipped.txt", "plain.txt.gz"):
        assert torch.equal(load_val_windows(tmp_path / name, **kw), want), name


def test_several_directories_each_split_on_its_own_and_a_mix_source_read_where_it_lies(real_shards, tmp_path):
    """A second directory of one row group (a small code or parallel output) reaches every reader,
    not one; with the mix's ``only``, a source is read from its own directory's shards alone."""
    import dataclasses

    from skypile.trainer.inputs import Data

    wiki_en = [d for d in real_shards["docs"] if d.source == "wiki/en"]
    small = [dataclasses.replace(d, id=f"small/{i:03d}", source="small/x") for i, d in enumerate(wiki_en[:8])]
    small += [dataclasses.replace(d, id=f"extra/{i:03d}") for i, d in enumerate(wiki_en[8:11])]  # wiki/en here too
    info = write_shard(small, str(tmp_path / "small"), 0, 1, row_group_rows=64)
    write_manifest(str(tmp_path / "small"), [info], tokenizer=real_shards["manifest"]["tokenizer"])
    dirs = [real_shards["dir"], str(tmp_path / "small")]
    schedule = [[0, {"small/x": 0.5, "wiki/en": 0.5}]]
    n_readers = 4
    seen = Counter()
    for rank in range(n_readers):
        ds = PackedDataset(dirs, seq_len=64, batch_size=2, rank=rank, world_size=n_readers, schedule=schedule)
        reader = ds.make_reader(0)
        assert "small/x" in reader.available  # every reader holds some of the one-row-group directory
        seen.update(int(i) for p, (u, _, _) in enumerate(reader.plan) if ds.units[u].dataset == 1
                    for i in reader.rows[p][ALL])
    assert sorted(seen) == list(range(len(small))) and set(seen.values()) == {1}  # each document exactly once
    ds = PackedDataset(dirs, seq_len=64, batch_size=2, schedule=schedule)
    mixed = Data(ds.data.roots, ds.data.manifests, only={"wiki/en": {0}, "small/x": {1}})
    for data, extra_read in ((ds.data, True), (mixed, False)):
        reader = PackedDataset(data, seq_len=64, batch_size=2, schedule=schedule).make_reader(0)
        in_small = [reader.rows[p] for p, (u, _, _) in enumerate(reader.plan) if reader.units[u].dataset == 1]
        assert any("wiki/en" in entry for entry in in_small) is extra_read
        reader.next_batch(8)
