"""Streaming, packed, exactly resumable token batches over SkyPile Parquet shards.

**Split.**  The unit of work is one Parquet row group ("unit").  There are
``R = world_size * max(1, num_workers)`` readers, one per (rank, dataloader
worker); reader ``r`` owns units ``r, r + R, r + 2R, ...``.  When a corpus has
fewer units than readers, every reader scans all units and keeps the documents
whose global index is ``r`` mod ``R``.  Either way every document belongs to
exactly one reader.

**Order.**  Within an epoch a reader visits its units in a permutation seeded by
``(seed, reader, epoch)``, and rows in file order.  After the last unit it
starts the next epoch, so the stream never ends; the trainer's step budget
decides how much is read.

**Mixing.**  ``schedule`` is a list of ``(start_token, weights)`` phases (the
data mixer's output); ``weights`` maps the shards' ``source`` column to a
weight, or is ``None`` for "all documents as written".  Each weighted source is
a separate stream with its own position.  Before each document the reader picks
the stream furthest below its target share of the tokens emitted so far in the
phase (largest ``w_s * (T + 1) - t_s``): deterministic, no RNG state, and token
shares follow the weights exactly up to one document.  A phase starts when the
global token count (``windows * seq_len * R``, identical on all readers up to
one batch) reaches its ``start_token``.

**Packing.**  Documents are concatenated, each followed by EOS, and cut into
non-overlapping windows of ``seq_len + 1`` tokens (inputs ``w[:-1]``, targets
``w[1:]``); a document longer than the rest of a window continues in the next.
Every token of a reader's stream lands in exactly one window.

**Position.**  A reader's state is a small dict (epoch/unit/row per stream,
current document and offset in it, windows emitted, phase counters).  Batches
from dataloader workers carry their reader's state; :class:`PackedLoader`
keeps the state of the last batch it handed out per reader, which is what a
checkpoint stores.  On resume worker ``w`` plays reader ``(w + batches) % W``
so the round-robin order of workers continues where it stopped.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from skypile.readers.jsonl import iter_texts

log = logging.getLogger(__name__)

ALL = "*"  # stream of every document, in shard order


@dataclass(frozen=True)
class Unit:
    path: str  # absolute path of the Parquet shard
    row_group: int
    first_doc: int  # global index of the unit's first row (shards in manifest order)
    rows: int


def open_dataset(path: str | Path) -> tuple[Path, dict]:
    """``path`` is a shard directory holding ``manifest.json``, or its ``shards/`` folder."""
    p = Path(path)
    for root in (p, p.parent):
        if (root / "manifest.json").is_file():
            return root, json.loads((root / "manifest.json").read_text())
    raise FileNotFoundError(f"no manifest.json in {p} or {p.parent}")


def list_units(root: Path, manifest: dict) -> list[Unit]:
    units, first = [], 0
    for shard in sorted(manifest["shards"], key=lambda s: s["path"]):
        path = str(root / shard["path"])
        meta = pq.ParquetFile(path).metadata
        for rg in range(meta.num_row_groups):
            rows = meta.row_group(rg).num_rows
            if rows:
                units.append(Unit(path, rg, first, rows))
            first += rows
    return units


def reader_plan(units: list[Unit], reader: int, n_readers: int) -> list[tuple[int, int, int]]:
    """``(unit index, first row, row stride)`` entries that reader ``reader`` of ``n_readers`` owns."""
    if len(units) >= n_readers:
        return [(u, 0, 1) for u in range(reader, len(units), n_readers)]
    plan = []
    for u, unit in enumerate(units):
        offset = (reader - unit.first_doc) % n_readers
        if offset < unit.rows:
            plan.append((u, offset, n_readers))
    return plan


def normalize_schedule(schedule: Iterable | None) -> list[tuple[int, dict | None]]:
    if not schedule:
        return [(0, None)]
    phases = sorted(((int(float(start)), dict(w) if w else None) for start, w in schedule), key=lambda p: p[0])
    if phases[0][0] > 0:
        phases.insert(0, (0, None))
    return phases


class Reader:
    """One reader's deterministic stream of packed windows (see the module docstring)."""

    def __init__(self, units: list[Unit], reader: int, n_readers: int, seq_len: int, eos_id: int, *,
                 seed: int = 0, schedule: Iterable | None = None, state: dict | None = None):
        self.units, self.reader, self.n_readers = units, reader, n_readers
        self.seq_len, self.eos_id, self.seed = seq_len, eos_id, seed
        self.schedule = normalize_schedule(schedule)
        self.plan = reader_plan(units, reader, n_readers)
        if not self.plan:
            raise ValueError(f"reader {reader} of {n_readers} has no documents: the corpus is too small")
        self._files: dict[str, pq.ParquetFile] = {}
        self._tokens: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._orders: dict[tuple[str, int], list[int]] = {}
        # rows[p][stream] -> row indices (within the unit) of plan entry p that belong to the stream
        self.rows: list[dict[str, np.ndarray]] = []
        for u, first, stride in self.plan:
            unit = self.units[u]
            selected = np.arange(first, unit.rows, stride)
            sources = self._file(unit.path).read_row_group(unit.row_group, columns=["source"]).column(0)
            sources = np.asarray(sources.to_pylist(), dtype=object)[selected]
            entry = {ALL: selected}
            for name in np.unique(sources):
                entry[str(name)] = selected[sources == name]
            self.rows.append(entry)
        self.available = {s for entry in self.rows for s in entry}
        for _, weights in self.schedule:
            missing = sorted(set(weights or ()) - self.available)
            if missing:
                log.warning("reader %d: weighted sources %s are not in its documents", reader, missing)
        self.state = state if state is not None else {
            "windows": 0, "phase": -1, "phase_tokens": {}, "cur": None, "offset": 0, "streams": {}}

    # -- parquet access
    def _file(self, path: str) -> pq.ParquetFile:
        if path not in self._files:
            self._files[path] = pq.ParquetFile(path)
        return self._files[path]

    def _unit_tokens(self, u: int) -> tuple[np.ndarray, np.ndarray]:
        if u in self._tokens:
            self._tokens.move_to_end(u)
            return self._tokens[u]
        unit = self.units[u]
        col = self._file(unit.path).read_row_group(unit.row_group, columns=["tokens"]).column(0).combine_chunks()
        values = col.values.to_numpy(zero_copy_only=False)
        offsets = col.offsets.to_numpy(zero_copy_only=False)
        self._tokens[u] = (values, offsets)
        if len(self._tokens) > 4:
            self._tokens.popitem(last=False)
        return values, offsets

    # -- streams
    def _order(self, stream: str, epoch: int) -> list[int]:
        key = (stream, epoch)
        if key not in self._orders:
            perm = np.random.default_rng([self.seed, self.reader, epoch]).permutation(len(self.plan))
            self._orders = {k: v for k, v in self._orders.items() if k[1] >= epoch - 1}
            self._orders[key] = [int(p) for p in perm if len(self.rows[p].get(stream, ())) > 0]
        return self._orders[key]

    def _position(self, stream: str) -> list[int]:
        return self.state["streams"].setdefault(stream, [0, 0, 0])  # epoch, unit cursor, row cursor

    def _doc(self, stream: str) -> np.ndarray:
        epoch, cursor, row = self._position(stream)
        p = self._order(stream, epoch)[cursor]
        values, offsets = self._unit_tokens(self.plan[p][0])
        i = int(self.rows[p][stream][row])
        return values[offsets[i] : offsets[i + 1]]

    def _advance(self, stream: str) -> None:
        pos = self._position(stream)
        epoch, cursor, row = pos
        p = self._order(stream, epoch)[cursor]
        row += 1
        if row == len(self.rows[p][stream]):
            cursor, row = cursor + 1, 0
            if cursor == len(self._order(stream, epoch)):
                epoch, cursor = epoch + 1, 0
        pos[:] = [epoch, cursor, row]

    def _choose(self) -> str:
        st = self.state
        tokens = st["windows"] * self.seq_len * self.n_readers
        phase = max(i for i, (start, _) in enumerate(self.schedule) if start <= tokens)
        if phase != st["phase"]:
            st["phase"], st["phase_tokens"] = phase, {}
        weights = self.schedule[phase][1]
        if weights is None:
            return ALL
        live = {s: float(w) for s, w in weights.items() if w > 0 and s in self.available}
        if not live:
            raise ValueError(f"reader {self.reader}: none of the weighted sources {sorted(weights)} is in its data")
        total_w = sum(live.values())
        done = st["phase_tokens"]
        emitted = sum(done.values())
        return max(sorted(live), key=lambda s: live[s] / total_w * (emitted + 1) - done.get(s, 0))

    def epoch(self, stream: str = ALL) -> int:
        return self._position(stream)[0]

    # -- packing
    def next_window(self) -> np.ndarray:
        st, need = self.state, self.seq_len + 1
        out = np.empty(need, dtype=np.int64)
        filled = 0
        while filled < need:
            if st["cur"] is None:
                st["cur"], st["offset"] = self._choose(), 0
            stream, offset = st["cur"], st["offset"]
            doc = self._doc(stream)
            take = min(len(doc) + 1 - offset, need - filled)
            body = doc[offset : offset + take]
            out[filled : filled + len(body)] = body
            if len(body) < take:  # the window reaches the document's EOS
                out[filled + take - 1] = self.eos_id
            filled += take
            st["offset"] = offset + take
            st["phase_tokens"][stream] = st["phase_tokens"].get(stream, 0) + take
            if st["offset"] == len(doc) + 1:
                self._advance(stream)
                st["cur"], st["offset"] = None, 0
        st["windows"] += 1
        return out

    def next_batch(self, batch_size: int) -> np.ndarray:
        return np.stack([self.next_window() for _ in range(batch_size)])

    def state_dict(self) -> dict:
        return json.loads(json.dumps(self.state))  # deep copy of plain data


class PackedDataset(IterableDataset):
    """Infinite stream of ``{"tokens": (batch, seq_len + 1) int64, "reader": j, "state": ...}`` for one rank."""

    def __init__(self, data: str, *, seq_len: int, batch_size: int, rank: int = 0, world_size: int = 1,
                 num_workers: int = 0, seed: int = 0, schedule: Iterable | None = None, eos_id: int | None = None):
        self.root, self.manifest = open_dataset(data)
        self.units = list_units(self.root, self.manifest)
        if eos_id is None:
            eos_id = self.manifest.get("tokenizer", {}).get("eos_id")
            if eos_id is None or eos_id < 0:
                raise ValueError("the manifest names no tokenizer eos_id; pass eos_id")
        self.eos_id = int(eos_id)
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.readers_per_rank = max(1, num_workers)
        self.n_readers = world_size * self.readers_per_rank
        self.schedule = normalize_schedule(schedule)
        self.start: dict = {"batches": 0, "readers": {}}

    def make_reader(self, local: int) -> Reader:
        reader_id = self.rank * self.readers_per_rank + local
        state = self.start["readers"].get(local)
        return Reader(self.units, reader_id, self.n_readers, self.seq_len, self.eos_id, seed=self.seed,
                      schedule=self.schedule, state=json.loads(json.dumps(state)) if state else None)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        if workers != self.readers_per_rank:
            raise RuntimeError(f"dataset built for {self.readers_per_rank} workers, loader has {workers}")
        local = (worker + self.start["batches"]) % workers
        reader = self.make_reader(local)
        while True:
            batch = reader.next_batch(self.batch_size)
            yield {"tokens": torch.from_numpy(batch), "reader": local, "state": reader.state_dict()}


class PackedLoader:
    """The rank's batch iterator; ``state_dict()`` is the exact position after the last batch returned."""

    def __init__(self, dataset: PackedDataset, *, num_workers: int = 0, pin_memory: bool = False):
        self.dataset, self.num_workers, self.pin_memory = dataset, num_workers, pin_memory
        self.batches = 0
        self.readers: dict[int, dict] = {}
        self._it: Iterator | None = None

    def __iter__(self) -> "PackedLoader":
        return self

    def __enter__(self) -> "PackedLoader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the DataLoader's worker processes (and its queue threads) now.

        Without this they live until the iterator is garbage collected, which after an
        exception (the traceback keeps the trainer's frame) is interpreter shutdown, after
        the process group is gone.  Idempotent; the next ``next()`` starts fresh workers
        from the current position.
        """
        it, self._it = self._it, None
        shutdown = getattr(it, "_shutdown_workers", None)  # _MultiProcessingDataLoaderIter
        if shutdown is not None:
            shutdown()

    def __next__(self) -> torch.Tensor:
        if self._it is None:
            self.dataset.start = {"batches": self.batches, "readers": dict(self.readers)}
            loader = DataLoader(self.dataset, batch_size=None, num_workers=self.num_workers,
                                pin_memory=self.pin_memory, prefetch_factor=4 if self.num_workers else None)
            self._it = iter(loader)
        item = next(self._it)
        self.batches += 1
        self.readers[int(item["reader"])] = item["state"]
        return item["tokens"]

    def state_dict(self) -> dict:
        ds = self.dataset
        readers = json.loads(json.dumps({str(k): v for k, v in self.readers.items()}))
        return {"batches": self.batches, "readers": readers,
                "n_readers": ds.n_readers, "readers_per_rank": ds.readers_per_rank, "seq_len": ds.seq_len,
                "batch_size": ds.batch_size, "rank": ds.rank}

    def load_state_dict(self, state: dict) -> None:
        ds = self.dataset
        layout = (ds.n_readers, ds.readers_per_rank, ds.seq_len, ds.batch_size, ds.rank)
        saved = (state["n_readers"], state["readers_per_rank"], state["seq_len"], state["batch_size"], state["rank"])
        if layout != saved:
            raise ValueError(f"data position was saved for (readers, workers, seq_len, batch, rank) = {saved}, "
                             f"this run has {layout}; resume with the same world size, workers and batch shape")
        self.close()  # workers started before the restore would continue from the old position
        self.batches = int(state["batches"])
        self.readers = {int(k): v for k, v in state["readers"].items()}


# -- validation sets ---------------------------------------------------------------------------------


def _text_docs(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    stem = path.name[:-3] if path.suffix == ".gz" else path.name
    if stem.endswith((".jsonl", ".json")):
        yield from iter_texts(str(path))
        return
    with opener(path, "rt", encoding="utf-8-sig") as f:  # plain text: paragraphs split by blank lines
        para: list[str] = []
        for line in f:
            if line.strip():
                para.append(line.rstrip("\n"))
            elif para:
                yield "\n".join(para)
                para = []
        if para:
            yield "\n".join(para)


def _shard_docs(path: Path) -> Iterator[np.ndarray]:
    root, manifest = open_dataset(path)
    for unit in list_units(root, manifest):
        col = pq.ParquetFile(unit.path).read_row_group(unit.row_group, columns=["tokens"]).column(0)
        for tokens in col.to_pylist():
            yield np.asarray(tokens, dtype=np.int64)


def load_val_windows(spec: str | Path, *, seq_len: int, n_windows: int, eos_id: int,
                     tokenizer: str | None = None) -> torch.Tensor:
    """The first ``n_windows`` packed windows (``seq_len + 1`` tokens) of a held-out set.

    ``spec`` is a shard directory (already tokenized), or a ``.jsonl[.gz]`` (``text`` or
    ``content`` field) / ``.txt[.gz]`` file tokenized here with the SentencePiece ``tokenizer``.
    """
    path = Path(spec)
    need = n_windows * (seq_len + 1)
    if path.is_dir():
        docs: Iterable[np.ndarray] = _shard_docs(path)
    else:
        if not tokenizer:
            raise ValueError(f"validation set {path} is text: a tokenizer model is needed")
        from skypile.tokenizer.spm import load_tokenizer  # also reads gs:// / s3:// paths

        sp = load_tokenizer(str(tokenizer))
        docs = (np.asarray(sp.encode(text), dtype=np.int64) for text in _text_docs(path))
    parts, have = [], 0
    for doc in docs:
        parts += [doc, np.array([eos_id], dtype=np.int64)]
        have += len(doc) + 1
        if have >= need:
            break
    stream = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    n = min(n_windows, len(stream) // (seq_len + 1))
    if n == 0:
        raise ValueError(f"validation set {path} has fewer than {seq_len + 1} tokens")
    if n < n_windows:
        log.warning("validation set %s: only %d of %d windows", path, n, n_windows)
    return torch.from_numpy(stream[: n * (seq_len + 1)].reshape(n, seq_len + 1).copy())
