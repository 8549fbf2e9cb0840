"""Streaming, packed, exactly resumable token batches over SkyPile Parquet shards.

**Split.**  The unit of work is one Parquet row group ("unit").  There are
``R = world_size * max(1, num_workers)`` readers, one per (rank, dataloader
worker); reader ``r`` owns units ``r, r + R, r + 2R, ...``.  When a corpus has
fewer units than readers, every reader scans all units and keeps the documents
whose global index is ``r`` mod ``R``.  Either way every document belongs to
exactly one reader.  Several shard directories (``data=a,b``, or a mix's
sources) are split each on its own, so a small directory (a code or parallel
source of one row group) still reaches every reader instead of one.

**Order.**  Within an epoch a reader visits its units in a permutation seeded by
``(seed, reader, epoch)``, and rows in file order.  After the last unit it
starts the next epoch, so the stream never ends; the trainer's step budget
decides how much is read.

**Mixing.**  ``schedule`` is a list of ``(start_token, weights)`` phases (the
data mixer's output); ``weights`` maps the shards' ``source`` column to a
weight, or is ``None`` for "all documents as written".  Each weighted source is
a separate stream with its own position.  Before each document, and at the start of
each window, the reader picks the stream furthest below its target share of the
tokens emitted so far in the phase (largest ``w_s * (T + 1) - t_s``): deterministic,
no RNG state, and token shares follow the weights to within one window.  A document
cut at a window boundary waits in its stream (``suspended``) and continues at the
start of the next window that stream is picked for: windows are independent samples,
so a document's pieces need not be adjacent, and a window never joins two documents
without an EOS between them.  (Picking only between documents let one
long document, a 20,000-token source file, put a tiny run's shares off by 20 points.)  A phase starts when the
global token count (``windows * seq_len * R``, identical on all readers up to
one batch) reaches its ``start_token``.

**Packing.**  Documents are concatenated, each followed by EOS, and cut into
non-overlapping windows of ``seq_len + 1`` tokens (inputs ``w[:-1]``, targets
``w[1:]``); a document longer than the rest of a window continues in the next.
Every token of a reader's stream lands in exactly one window.

**Reading.**  Each stream keeps the row group it is reading decoded ("open"); streams
that stand in the same row group share it.  A mixed reader therefore decodes each row group
about once per pass of the stream(s) reading it, as an unmixed one does when the shards keep
a source's documents together (as the pipeline writes them); a shared LRU of a few row groups
instead re-decoded one on nearly every document switch once 5 or more sources were mixed.
``Reader.reads`` counts the decodes.  A stream that runs out of documents starts its next
epoch (a warning names the source and the epoch: the mixer caps repetition at 5 epochs);
``progress()`` gives the epochs consumed per source.

**Bad data.**  :func:`check_shards` compares every shard with the manifest before training
(file present, size, Parquet footer, row count, ``tokens`` type; the sha256 too when asked).
Token ids are range-checked per row group as it is decoded.  ``bad_data="error"`` stops with
an error naming the file, row group and row; ``"skip"`` drops the bad shard, row group or
document and counts it (``state["skipped"]``).

**Position.**  A reader's state is a small dict (epoch/unit/row per stream,
current document and offset in it, windows emitted, phase counters).  Batches
from dataloader workers carry their reader's state; :class:`PackedLoader`
keeps the state of the last batch it handed out per reader, which is what a
checkpoint stores.  On resume worker ``w`` plays reader ``(w + batches) % W``
so the round-robin order of workers continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from skypile.readers.jsonl import iter_texts, paragraphs
from skypile.readers.rows import open_text

from .inputs import Data, DataError, ResumeError, ShardError, open_dataset

log = logging.getLogger(__name__)

ALL = "*"  # stream of every document, in shard order
MIXER_MAX_EPOCHS = 5  # the data mixer never plans more repetition of a source than this
TOKEN_TYPES = ("int32", "uint16", "int64", "uint32")


@dataclass(frozen=True)
class Unit:
    path: str  # absolute path of the Parquet shard
    row_group: int
    first_doc: int  # global index of the unit's first row (shards in manifest order)
    rows: int
    file_row: int = 0  # index of the unit's first row within its file
    dataset: int = 0  # which shard directory of the run it belongs to


def list_units(root: Path, manifest: dict, exclude: Iterable[str] = (), *, dataset: int = 0, first: int = 0) -> list[Unit]:
    """Row groups of the manifest's shards (minus ``exclude``d shard paths, relative or absolute), in
    manifest order; documents are numbered from ``first`` (the documents of the directories before)."""
    units, skip = [], set(exclude)
    for shard in sorted(manifest["shards"], key=lambda s: s["path"]):
        if shard["path"] in skip or str(root / shard["path"]) in skip:
            continue
        path = str(root / shard["path"])
        try:
            meta = pq.ParquetFile(path).metadata
        except Exception as e:  # noqa: BLE001 - Arrow's own message does not name the file
            raise ShardError(f"{path}: unreadable Parquet file ({type(e).__name__}: {e})") from e
        file_row = 0
        for rg in range(meta.num_row_groups):
            rows = meta.row_group(rg).num_rows
            if rows:
                units.append(Unit(path, rg, first, rows, file_row, dataset))
            first += rows
            file_row += rows
    return units


def check_shards(root: Path, manifest: dict, *, sha256_part: tuple[int, int] | None = None) -> dict[str, str]:
    """``{shard path: problem}`` for shards that do not match the manifest (empty when all do).

    Cheap checks on every shard: present, the manifest's byte size, a readable Parquet
    footer with the manifest's row count, and a ``tokens`` column of integer lists.
    ``sha256_part=(i, n)`` also hashes shards ``i, i + n, ...`` (ranks split the reading).
    """
    problems: dict[str, str] = {}
    shards = sorted(manifest.get("shards", []), key=lambda s: s["path"])
    for k, shard in enumerate(shards):
        rel = shard["path"]
        path = root / rel
        if not path.is_file():
            problems[rel] = f"{path}: missing"
            continue
        size = path.stat().st_size
        if shard.get("bytes") and size != int(shard["bytes"]):
            problems[rel] = f"{path}: {size} bytes, the manifest says {shard['bytes']} (truncated or rewritten)"
            continue
        try:
            pf = pq.ParquetFile(path)
        except Exception as e:  # noqa: BLE001
            problems[rel] = f"{path}: unreadable Parquet footer ({type(e).__name__}: {e})"
            continue
        if "rows" in shard and pf.metadata.num_rows != int(shard["rows"]):
            problems[rel] = f"{path}: {pf.metadata.num_rows} rows, the manifest says {shard['rows']}"
            continue
        schema = pf.schema_arrow
        if "tokens" not in schema.names or not hasattr(schema.field("tokens").type, "value_type") \
                or str(schema.field("tokens").type.value_type) not in TOKEN_TYPES:
            found = schema.field("tokens").type if "tokens" in schema.names else "no tokens column"
            problems[rel] = f"{path}: tokens must be a list of {'/'.join(TOKEN_TYPES)}, found {found}"
            continue
        if sha256_part and shard.get("sha256") and k % sha256_part[1] == sha256_part[0]:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    digest.update(block)
            if digest.hexdigest() != shard["sha256"]:
                problems[rel] = f"{path}: sha256 {digest.hexdigest()[:16]}... differs from the manifest's"
    return problems


def check_data(data: Data, *, sha256_part: tuple[int, int] | None = None) -> dict[str, str]:
    """:func:`check_shards` over every directory of the run, keyed by absolute shard path."""
    return {str(root / rel): problem for root, manifest in zip(data.roots, data.manifests)
            for rel, problem in check_shards(root, manifest, sha256_part=sha256_part).items()}


def reader_plan(units: list[Unit], reader: int, n_readers: int) -> list[tuple[int, int, int]]:
    """``(unit index, first row, row stride)`` entries that reader ``reader`` of ``n_readers`` owns:
    the units of each shard directory are split among the readers on their own."""
    plan = []
    for dataset in sorted({unit.dataset for unit in units}):
        mine = [u for u, unit in enumerate(units) if unit.dataset == dataset]
        if len(mine) >= n_readers:
            plan += [(u, 0, 1) for u in mine[reader::n_readers]]
            continue
        for u in mine:
            offset = (reader - units[u].first_doc) % n_readers
            if offset < units[u].rows:
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
                 seed: int = 0, schedule: Iterable | None = None, state: dict | None = None,
                 vocab_size: int | None = None, bad_data: str = "error", only: dict[str, set[int]] | None = None):
        if bad_data not in ("error", "skip"):
            raise ValueError(f"bad_data must be 'error' or 'skip', got {bad_data!r}")
        self.units, self.reader, self.n_readers = units, reader, n_readers
        self.seq_len, self.eos_id, self.seed = seq_len, eos_id, seed
        self.vocab_size, self.bad_data = vocab_size, bad_data
        self.schedule = normalize_schedule(schedule)
        self.plan = reader_plan(units, reader, n_readers)
        if not self.plan:
            raise ValueError(f"reader {reader} of {n_readers} has no documents: the corpus is too small")
        self._files: dict[str, pq.ParquetFile] = {}
        self._open: dict[str, tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}  # stream -> open unit
        self._orders: dict[tuple[str, int], list[int]] = {}
        self.reads = 0  # row-group token decodes by this reader (this process)
        self.skipped_rows = 0  # rows of row groups whose source column cannot be decoded
        # rows[p][stream] -> row indices (within the unit) of plan entry p that belong to the stream
        self.rows: list[dict[str, np.ndarray]] = []
        # sizes[p][stream] -> tokens (+ EOS) of those rows, from the n_tokens column (1 per row without it)
        self.sizes: list[dict[str, np.ndarray]] = []
        self._cum: dict[tuple[str, int], np.ndarray] = {}
        for u, first, stride in self.plan:
            unit = self.units[u]
            selected = np.arange(first, unit.rows, stride)
            pf = self._file(unit.path)
            columns = ["source", "n_tokens"] if "n_tokens" in pf.schema_arrow.names else ["source"]
            try:
                table = pf.read_row_group(unit.row_group, columns=columns)
            except Exception as e:  # noqa: BLE001 - a damaged row group
                self._bad_unit(unit, e)
                self.rows.append({})  # skip: the unit contributes no documents
                self.sizes.append({})
                self.skipped_rows += len(selected)
                continue
            sources = np.asarray(table.column("source").to_pylist(), dtype=object)[selected]
            sizes = (table.column("n_tokens").to_numpy()[selected].astype(np.int64) + 1 if "n_tokens" in columns
                     else np.ones(len(selected), np.int64))
            entry, size = {ALL: selected}, {ALL: sizes}
            for name in np.unique(sources):
                if only and str(name) in only and unit.dataset not in only[str(name)]:
                    continue  # a mix source is read from its own manifest's shards only
                entry[str(name)] = selected[sources == name]
                size[str(name)] = sizes[sources == name]
            self.rows.append(entry)
            self.sizes.append(size)
        self.available = {s for entry in self.rows for s in entry}
        for _, weights in self.schedule:  # the data holds them (checked at start-up), this reader's share may not
            missing = sorted(s for s, w in (weights or {}).items() if w > 0 and s not in self.available)
            if missing:
                log.warning("reader %d of %d: its share of the data holds no documents of %s: the other sources "
                            "fill their share in its windows", reader, n_readers, missing)
        self.state = state if state is not None else self.initial_state()
        self.state.setdefault("skipped", 0)

    @staticmethod
    def initial_state(windows: int = 0) -> dict:
        """A fresh position; ``windows`` > 0 keeps the global token count (and so the mix phase) of a reset."""
        return {"windows": windows, "phase": -1, "phase_tokens": {}, "cur": None, "offset": 0, "suspended": {},
                "streams": {}, "skipped": 0}

    def _bad_unit(self, unit: Unit, error: Exception) -> None:
        where = f"{unit.path} row group {unit.row_group} (rows {unit.file_row}..{unit.file_row + unit.rows - 1})"
        if self.bad_data == "error":
            raise ShardError(f"{where}: cannot decode ({type(error).__name__}: {error}); "
                             "bad_data=skip drops it") from error
        log.warning("reader %d: skipping %s: cannot decode (%s: %s)", self.reader, where, type(error).__name__, error)

    # -- parquet access
    def _file(self, path: str) -> pq.ParquetFile:
        if path not in self._files:
            self._files[path] = pq.ParquetFile(path)
        return self._files[path]

    def _unit_tokens(self, u: int, stream: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(values, offsets, bad rows)`` of unit ``u``, now ``stream``'s open row group."""
        for opened, data in self._open.values():
            if opened == u:
                break
        else:
            data = self._decode(self.units[u])
        self._open[stream] = (u, data)
        return data

    def _decode(self, unit: Unit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.reads += 1
        try:
            col = self._file(unit.path).read_row_group(unit.row_group, columns=["tokens"]).column(0)
            col = col.combine_chunks()
            values = col.values.to_numpy(zero_copy_only=False)
            offsets = col.offsets.to_numpy(zero_copy_only=False)
        except Exception as e:  # noqa: BLE001 - corrupt pages: Arrow's error does not name the file
            self._bad_unit(unit, e)
            return np.zeros(0, np.int64), np.zeros(unit.rows + 1, np.int64), np.ones(unit.rows, bool)
        bad = np.zeros(unit.rows, bool)
        if self.vocab_size and len(values) and (int(values.max()) >= self.vocab_size or int(values.min()) < 0):
            wrong = np.flatnonzero((values >= self.vocab_size) | (values < 0))
            rows = np.searchsorted(offsets, wrong, side="right") - 1
            bad[rows] = True
            first = int(rows[0])
            msg = (f"{unit.path} row {unit.file_row + first} (row group {unit.row_group}): token id "
                   f"{int(values[wrong[0]])} outside the vocabulary [0, {self.vocab_size}); "
                   f"{int(bad.sum())} bad document(s) in this row group")
            if self.bad_data == "error":
                raise ShardError(msg + "; bad_data=skip drops them")
            log.warning("reader %d: skipping: %s", self.reader, msg)
        return values, offsets, bad

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
        """The stream's current document; bad ones (``bad_data="skip"``) are stepped over and counted."""
        skipped, limit = 0, None
        while True:
            epoch, cursor, row = self._position(stream)
            order = self._order(stream, epoch)
            if not order:
                break
            p = order[cursor]
            values, offsets, bad = self._unit_tokens(self.plan[p][0], stream)
            i = int(self.rows[p][stream][row])
            if not bad[i]:
                return values[offsets[i] : offsets[i + 1]]
            self.state["skipped"] += 1
            skipped += 1
            if limit is None:
                limit = sum(len(entry.get(stream, ())) for entry in self.rows)
            if skipped > limit:
                break
            self._advance(stream)
        raise ShardError(f"reader {self.reader}: every document of source {stream!r} in its share is bad")

    def _advance(self, stream: str) -> None:
        pos = self._position(stream)
        epoch, cursor, row = pos
        p = self._order(stream, epoch)[cursor]
        row += 1
        if row == len(self.rows[p][stream]):
            cursor, row = cursor + 1, 0
            if cursor == len(self._order(stream, epoch)):
                epoch, cursor = epoch + 1, 0
                name = "all documents" if stream == ALL else f"source {stream!r}"
                beyond = f", beyond the mixer's cap of {MIXER_MAX_EPOCHS}" if epoch >= MIXER_MAX_EPOCHS else ""
                log.warning("reader %d: %s wraps around: epoch %d starts (its data repeats%s)",
                            self.reader, name, epoch + 1, beyond)
        pos[:] = [epoch, cursor, row]

    def progress(self) -> dict[str, float]:
        """Epochs consumed per stream: completed epochs plus the share of the stream's tokens
        (``n_tokens`` + EOS; documents when a shard lacks the column) passed in this one."""
        return {stream: epochs for stream, (epochs, _) in self._consumed().items()}

    def consumed_tokens(self) -> dict[str, float]:
        """Tokens (``n_tokens`` + EOS) read so far per stream, all epochs together: the shares of the mix as trained."""
        return {stream: tokens for stream, (_, tokens) in self._consumed().items()}

    def _consumed(self) -> dict[str, tuple[float, float]]:
        out = {}
        for stream, (epoch, cursor, row) in self.state["streams"].items():
            key = (stream, epoch)
            if key not in self._cum:
                order = self._order(stream, epoch)
                self._cum = {k: v for k, v in self._cum.items() if k[1] >= epoch - 1}
                self._cum[key] = np.concatenate([[0], np.cumsum([self.sizes[p][stream].sum() for p in order])])
            cum = self._cum[key]
            if cum[-1] == 0:
                continue
            done = cum[cursor]
            if cursor < len(cum) - 1:
                p = self._order(stream, epoch)[cursor]
                done += self.sizes[p][stream][:row].sum()
                if self.state["cur"] == stream:
                    done += self.state["offset"]
                else:
                    done += self.state.get("suspended", {}).get(stream, 0)
            out[stream] = (epoch + float(done) / float(cum[-1]), epoch * float(cum[-1]) + float(done))
        return out

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
        suspended = st.setdefault("suspended", {})  # stream -> offset into its current document
        if st["cur"] is not None:  # a window boundary inside a document: the mix picks again
            suspended[st["cur"]], st["cur"] = st["offset"], None
        while filled < need:
            if st["cur"] is None:
                st["cur"] = self._choose()
                st["offset"] = suspended.pop(st["cur"], 0)
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

    def __init__(self, data: str | list[str] | Data, *, seq_len: int, batch_size: int, rank: int = 0, world_size: int = 1,
                 num_workers: int = 0, seed: int = 0, schedule: Iterable | None = None, eos_id: int | None = None,
                 vocab_size: int | None = None, bad_data: str = "error", shard_problems: dict | None = None):
        if not isinstance(data, Data):
            opened = [open_dataset(d) for d in ([data] if isinstance(data, (str, Path)) else data)]
            data = Data([r for r, _ in opened], [m for _, m in opened])
        self.data = data
        self.root, self.manifest = data.roots[0], data.manifests[0]
        self.vocab_size, self.bad_data = vocab_size, bad_data
        # Cheap checks here; the trainer passes its own result (with the ranks' sha256 checks merged).
        problems = check_data(data) if shard_problems is None else shard_problems
        if problems:
            listing = "\n  ".join(problems[k] for k in sorted(problems))
            where = " / ".join(f"{r}/manifest.json" for r in data.roots)
            if bad_data != "skip":
                raise ShardError(f"{len(problems)} shard(s) do not match {where}:\n  {listing}\n"
                                 "(bad_data=skip trains without them)")
            log.warning("leaving out %d shard(s) that do not match the manifest:\n  %s", len(problems), listing)
        self.skipped_shards = sorted(problems)
        self.units = []
        for i, (root, manifest) in enumerate(zip(data.roots, data.manifests)):
            first = self.units[-1].first_doc + self.units[-1].rows if self.units else 0
            self.units += list_units(root, manifest, exclude=problems, dataset=i, first=first)
        if not self.units:
            raise ShardError(f"{', '.join(map(str, data.roots))}: no readable rows in any shard")
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
                      schedule=self.schedule, state=json.loads(json.dumps(state)) if state else None,
                      vocab_size=self.vocab_size, bad_data=self.bad_data, only=self.data.only)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        if workers != self.readers_per_rank:
            raise RuntimeError(f"dataset built for {self.readers_per_rank} workers, loader has {workers}")
        local = (worker + self.start["batches"]) % workers
        reader = self.make_reader(local)
        while True:
            batch = reader.next_batch(self.batch_size)
            consumed = reader._consumed()
            stats = {"reads": reader.reads, "skipped": reader.state["skipped"] + reader.skipped_rows,
                     "epochs": {k: e for k, (e, _) in consumed.items()}, "tokens": {k: t for k, (_, t) in consumed.items()}}
            yield {"tokens": torch.from_numpy(batch), "reader": local, "state": reader.state_dict(), "stats": stats}


class PackedLoader:
    """The rank's batch iterator; ``state_dict()`` is the exact position after the last batch returned."""

    def __init__(self, dataset: PackedDataset, *, num_workers: int = 0, pin_memory: bool = False):
        self.dataset, self.num_workers, self.pin_memory = dataset, num_workers, pin_memory
        self.batches = 0
        self.readers: dict[int, dict] = {}
        self.stats: dict[int, dict] = {}
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
        self.stats[int(item["reader"])] = item["stats"]
        return item["tokens"]

    def data_stats(self) -> dict:
        """This rank's readers: row-group decodes and skipped documents (summed), epochs per source (mean)."""
        stats = list(self.stats.values())
        epochs: dict[str, list[float]] = {}
        for st in stats:
            for stream, e in st["epochs"].items():
                epochs.setdefault(stream, []).append(e)
        tokens: dict[str, float] = {}
        for st in stats:
            for stream, t in st.get("tokens", {}).items():
                tokens[stream] = tokens.get(stream, 0.0) + t
        total = sum(tokens.values())
        return {"row_group_reads": sum(st["reads"] for st in stats),
                "skipped_docs": sum(st["skipped"] for st in stats),
                "epochs": {k: sum(v) / len(v) for k, v in sorted(epochs.items())},
                "shares": {k: t / total for k, t in sorted(tokens.items())} if total else {}}

    def reset_position(self, tokens: int) -> None:
        """Start every reader afresh (e.g. the world size changed on resume), keeping the global token
        count at ``tokens`` so the mix schedule stays in its phase.  Documents read before may repeat."""
        ds = self.dataset
        self.close()
        self.batches = 0
        windows = tokens // (ds.seq_len * ds.n_readers)
        self.readers = {j: Reader.initial_state(windows) for j in range(ds.readers_per_rank)}
        self.stats = {}

    def restart_mix_phase(self) -> None:
        """Count the mix's token shares afresh from the current position (new weights on resume)."""
        self.close()
        for state in self.readers.values():
            state["phase"], state["phase_tokens"] = -1, {}

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
            raise ResumeError(f"data position was saved for (readers, workers, seq_len, batch, rank) = {saved}, "
                             f"this run has {layout}; resume with the same world size, workers and batch shape, "
                             "or set reset_data_position=true to restart the data stream (logged)")
        self.close()  # workers started before the restore would continue from the old position
        self.batches = int(state["batches"])
        self.readers = {int(k): v for k, v in state["readers"].items()}


# -- validation sets ---------------------------------------------------------------------------------


def _text_docs(path: Path) -> Iterator[str]:
    stem = path.name[:-3] if path.suffix == ".gz" else path.name
    if stem.endswith((".jsonl", ".json")):
        yield from iter_texts(str(path))
        return
    with open_text(str(path)) as f:  # plain text, gzip or not by its bytes: paragraphs split by blank lines
        yield from paragraphs(f)


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
            raise DataError(f"validation set {path} is text: a tokenizer model is needed (tokenizer=)")
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
        raise DataError(f"validation set {path} has fewer than {seq_len + 1} tokens")
    if n < n_windows:
        log.warning("validation set %s: only %d of %d windows", path, n, n_windows)
    return torch.from_numpy(stream[: n * (seq_len + 1)].reshape(n, seq_len + 1).copy())
