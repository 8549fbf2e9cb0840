"""The trainer's data path under a real mix and bad inputs: row-group reads of a 6-source mix,
epochs per source, shards that do not match the manifest, out-of-vocabulary token ids, corrupt
row groups, and the explicit reset of the data position."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from skypile.trainer.data import (  # noqa: E402
    PackedDataset, PackedLoader, Reader, ShardError, check_shards, list_units, open_dataset)
from skypile.writers.parquet import write_manifest, write_shard  # noqa: E402
from trainer_fixtures import real_shards  # noqa: E402,F401  (session fixture)

VOCAB = 4000


def _mixed_sources(docs) -> list:
    """The fixture's documents as 6 sources: wiki/en, wiki/zh and the code split 4 ways."""
    out = []
    for i, d in enumerate(docs):
        source = d.source
        if source.startswith("code"):
            source = f"code/part{zlib.crc32(d.id.encode()) % 4}"
        out.append(dataclasses.replace(d, id=f"{source}/{i:06d}", source=source))
    return out


def _write(docs, out: Path, shards: int = 2, rows: int = 16, eos: int = 2) -> Path:
    infos = [write_shard([d for j, d in enumerate(docs) if j % shards == k], str(out), k, shards, row_group_rows=rows)
             for k in range(shards)]
    write_manifest(str(out), infos, tokenizer={"eos_id": eos, "vocab_size": VOCAB})
    return out


@pytest.fixture(scope="module")
def mixed(real_shards, tmp_path_factory) -> dict:
    docs = _mixed_sources(real_shards["docs"])
    out = _write(docs, tmp_path_factory.mktemp("mixed"), rows=4, eos=real_shards["eos_id"])
    return {"dir": out, "docs": docs, "eos": real_shards["eos_id"]}


def test_six_source_mix_reads_row_groups_within_2x_of_unmixed(mixed):
    root, manifest = open_dataset(mixed["dir"])
    units = list_units(root, manifest)
    tokens = {}
    for d in mixed["docs"]:
        tokens[d.source] = tokens.get(d.source, 0) + len(d.tokens) + 1
    total = sum(tokens.values())
    # A mixer's weights: the natural shares, English up and Chinese down, and one code part doubled.
    weights = {s: n / total for s, n in tokens.items()}
    weights["wiki/en"] *= 1.3
    weights["wiki/zh"] *= 0.6
    weights["code/part1"] *= 2.0
    assert len(weights) == 6

    windows = 3000
    plain = Reader(units, 0, 1, seq_len=128, eos_id=mixed["eos"])
    mix = Reader(units, 0, 1, seq_len=128, eos_id=mixed["eos"], schedule=[[0, weights]])
    for _ in range(windows):
        plain.next_window()
        mix.next_window()
    print(f"row-group decodes for {windows} windows: unmixed {plain.reads}, 6-source mix {mix.reads} "
          f"({len(units)} row groups)")
    assert plain.reads >= 10  # the run reads a good part of the corpus
    assert mix.reads <= 2 * plain.reads
    done = mix.state["phase_tokens"]
    w_total = sum(weights.values())
    longest = max(len(d.tokens) + 1 for d in mixed["docs"])
    for source, w in weights.items():  # and the mix is the one asked for, to within one document
        assert abs(done[source] - w / w_total * sum(done.values())) <= longest, source


def test_epochs_per_source_and_wrap_warning(mixed, caplog):
    root, manifest = open_dataset(mixed["dir"])
    units = list_units(root, manifest)
    tokens = {}
    for d in mixed["docs"]:
        tokens[d.source] = tokens.get(d.source, 0) + len(d.tokens) + 1
    small, big = min(tokens, key=tokens.get), max(tokens, key=tokens.get)
    # Half of the tokens from the smallest source: it repeats (about 2.5 epochs), the largest does not.
    reader = Reader(units, 0, 1, seq_len=256, eos_id=mixed["eos"], schedule=[[0, {small: 0.5, big: 0.5}]])
    with caplog.at_level(logging.WARNING, logger="skypile.trainer.data"):
        for _ in range(int(2.5 * 2 * tokens[small] / 257)):
            reader.next_window()
    progress = reader.progress()
    assert set(progress) == {small, big}
    for source in (small, big):  # epochs consumed = tokens taken / tokens the source has (exactly)
        assert progress[source] == pytest.approx(reader.state["phase_tokens"][source] / tokens[source], abs=1e-9)
    assert 2.0 < progress[small] < 3.0
    wraps = [r.getMessage() for r in caplog.records if "wraps around" in r.getMessage()]
    for source in (small, big):
        assert sum(repr(source) in m for m in wraps) == int(progress[source]), source
    assert any(repr(small) in m and "epoch 3 starts" in m for m in wraps)


def test_manifest_checks_name_the_file(real_shards, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(real_shards["dir"], data)
    root, manifest = open_dataset(data)
    assert check_shards(root, manifest, sha256_part=(0, 1)) == {}
    first, second, third = (s["path"] for s in manifest["shards"][:3])

    # truncated: the size no longer matches (and Arrow could not read the footer)
    with open(data / first, "r+b") as f:
        f.truncate(manifest["shards"][0]["bytes"] // 2)
    # same size, bytes changed: only the sha256 shows it
    blob = bytearray((data / second).read_bytes())
    blob[len(blob) // 3 : len(blob) // 3 + 32] = bytes(32)
    (data / second).write_bytes(bytes(blob))
    (data / third).unlink()

    cheap = check_shards(root, manifest)
    assert sorted(cheap) == [first, third]
    assert "truncated" in cheap[first] and str(data / first) in cheap[first]
    assert "missing" in cheap[third]
    full = check_shards(root, manifest, sha256_part=(0, 1))
    assert sorted(full) == [first, second, third] and "sha256" in full[second]
    # ranks split the hashing: the union of the parts is the whole
    parts = [check_shards(root, manifest, sha256_part=(r, 2)) for r in range(2)]
    assert set(parts[0]) | set(parts[1]) == set(full)

    with pytest.raises(ShardError, match=str(data / first).replace(".", r"\.")):
        PackedDataset(str(data), seq_len=64, batch_size=2)
    # skip: trains on the shards that are left, and says how many rows it dropped
    ds = PackedDataset(str(data), seq_len=64, batch_size=2, bad_data="skip", shard_problems=cheap)
    assert ds.skipped_shards == [first, third]
    kept = {u.path for u in ds.units}
    assert str(data / first) not in kept and str(data / second) in kept
    assert next(PackedLoader(ds)).shape == (2, 65)


def test_out_of_vocabulary_token_names_file_and_row_or_is_skipped(real_shards, tmp_path):
    docs = [dataclasses.replace(d) for d in real_shards["docs"][:200]]
    bad_index = 77
    bad_tokens = list(docs[bad_index].tokens)
    bad_tokens[5] = VOCAB + 3
    docs[bad_index] = dataclasses.replace(docs[bad_index], tokens=bad_tokens)
    out = _write(docs, tmp_path / "bad", shards=1, eos=real_shards["eos_id"])
    root, manifest = open_dataset(out)
    units = list_units(root, manifest)
    # the writer sorts rows by id: find the bad document's row in the file
    ids = sorted(d.id for d in docs)
    row = ids.index(docs[bad_index].id)

    reader = Reader(units, 0, 1, seq_len=128, eos_id=real_shards["eos_id"], vocab_size=VOCAB)
    with pytest.raises(ShardError) as err:
        while reader.epoch() == 0:
            reader.next_window()
    msg = str(err.value)
    assert units[0].path in msg and f"row {row} " in msg and str(VOCAB + 3) in msg

    skip = Reader(units, 0, 1, seq_len=128, eos_id=real_shards["eos_id"], vocab_size=VOCAB, bad_data="skip")
    windows = []
    while skip.epoch() == 0:
        windows.append(skip.next_window())
    stream = np.concatenate(windows)
    assert stream.max() < VOCAB
    assert skip.state["skipped"] == 1
    expected = sum(len(d.tokens) + 1 for i, d in enumerate(docs) if i != bad_index)
    assert len(stream) >= expected  # every good document's tokens are there (and a few of epoch 1)


def test_corrupt_row_group_is_an_error_naming_it_or_a_counted_skip(real_shards, tmp_path):
    docs = real_shards["docs"][:160]
    out = _write(docs, tmp_path / "corrupt", shards=1, eos=real_shards["eos_id"])
    root, manifest = open_dataset(out)
    units = list_units(root, manifest)
    path = Path(units[0].path)
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    rg = meta.row_group(4)
    col = next(rg.column(i) for i in range(rg.num_columns) if rg.column(i).path_in_schema.startswith("tokens"))
    start = col.data_page_offset
    blob = bytearray(path.read_bytes())
    blob[start + 40 : start + 140] = bytes(range(100))  # garbage inside the tokens page of row group 4
    path.write_bytes(bytes(blob))

    reader = Reader(units, 0, 1, seq_len=128, eos_id=real_shards["eos_id"], vocab_size=VOCAB)
    with pytest.raises(ShardError, match=r"row group 4 \(rows 64\.\.79\)") as err:
        while reader.epoch() == 0:
            reader.next_window()
    assert str(path) in str(err.value)
    skip = Reader(units, 0, 1, seq_len=128, eos_id=real_shards["eos_id"], vocab_size=VOCAB, bad_data="skip")
    while skip.epoch() == 0:
        skip.next_window()
    assert skip.state["skipped"] == 16  # the 16 documents of the damaged row group


def test_loader_reset_keeps_the_mix_phase(mixed):
    schedule = [[0, {"wiki/en": 1}], [50_000, {"wiki/zh": 1}]]

    def loader(workers):
        ds = PackedDataset(str(mixed["dir"]), seq_len=128, batch_size=2, num_workers=workers, schedule=schedule)
        return PackedLoader(ds, num_workers=workers)

    a = loader(0)
    for _ in range(10):
        next(a)
    b = loader(2)
    with pytest.raises(ValueError, match="reset_data_position"):
        b.load_state_dict(a.state_dict())
    b.reset_position(100_000)  # past the switch: the restarted readers are in the wiki/zh phase
    zh = {tuple(d.tokens[:20]) for d in mixed["docs"] if d.source == "wiki/zh"}
    batch = next(b)
    assert b.readers[0]["phase"] == 1 and b.readers[0]["windows"] == 100_000 // (128 * 2) + 2  # + this batch
    assert tuple(batch[0, :20].tolist()) in zh
    b.close()
