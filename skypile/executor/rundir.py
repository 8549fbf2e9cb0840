"""The output directory of a run: its layout, its owner (fingerprint + lock) and its task files.

::

    DIR/shards/part-00000-of-00012.parquet   final shards (packed from the last pass's parts)
    DIR/manifest.json                        shards, tokenizer, config, fingerprint
    DIR/stats.json                           merged task stats: counts, seconds, balance
    DIR/dropped/p<pass>-<split>.jsonl        dead letters, one file per task
    DIR/fitted/<stage>.json                  what corpus stages fitted (tables), reusable
    DIR/reports/<stage>.parquet              what corpus stages report (dedup: cluster members)
    DIR/report.html                          the run's page (skypile.report.page), from the files above
    DIR/_work/run.json                       the run's fingerprint and config
    DIR/_work/p<pass>/<split>.parquet        a task's documents (intermediate part)
    DIR/_work/p<pass>/<split>.facts.pkl      the facts it computed for the next corpus stage
    DIR/_work/p<pass>/<split>.task.json      its stats and part info: written last, so it marks the task done
    DIR/_work/pack/<shard>.task.json         a packing task's stats

A directory belongs to one run, named by a fingerprint of what decides the
output (config, input files' names/sizes/mtimes, tokenizer, code version).
Re-running the same run resumes it (finished tasks and complete shards are
reused); a different run into a non-empty directory stops with a clear error
unless ``--overwrite``.  A lock file stops a second concurrent run into the
same local directory.  ``_work`` is removed after success unless kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import socket
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator

import pyarrow.fs as pafs

import skypile
from skypile import io
from skypile.errors import OutputError  # noqa: F401 - raised here, imported from here by callers
from skypile.readers.sources import Split
from skypile.report.clusters import stage_report_uri
from skypile.stage import StageStats

WORK = "_work"
MANAGED = ("shards", "dropped", "fitted", "reports", WORK, "manifest.json", "stats.json", "clusters.parquet", "report.html")
FACTS_CHUNK = 4096


@dataclass
class PartInfo:
    """What a task wrote: its split, its part file and that file's row groups ``(rows, compressed bytes)``."""

    split: Split
    path: str  # relative to the run directory
    rows: int
    row_groups: list[tuple[int, int]]

    def to_json(self) -> dict:
        return {**asdict(self), "split": asdict(self.split), "row_groups": [list(rg) for rg in self.row_groups]}

    @classmethod
    def from_json(cls, d: dict) -> "PartInfo":
        return cls(Split(**d["split"]), d["path"], d["rows"], [tuple(rg) for rg in d["row_groups"]])


def fingerprint(config: dict, inputs: list[dict], extra: dict | None = None) -> str:
    blob = json.dumps({"config": config, "inputs": inputs, "version": skypile.__version__, **(extra or {})}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class RunDir:
    def __init__(self, root: str):
        self.root = root.rstrip("/") if "://" in root else os.path.abspath(root)
        self.local_root = io.local_path(self.root)  # None on an object store

    def uri(self, *parts: str) -> str:
        return io.join(self.root, *parts)

    # --- task files ---------------------------------------------------------------------
    @staticmethod
    def part_rel(pass_index: int, split: str) -> str:
        return f"{WORK}/p{pass_index}/{split}.parquet"

    def facts_uri(self, pass_index: int, split: str) -> str:
        return self.uri(WORK, f"p{pass_index}", f"{split}.facts.pkl")

    def task_uri(self, pass_index: int, split: str) -> str:
        return self.uri(WORK, f"p{pass_index}", f"{split}.task.json")

    def dropped_uri(self, pass_index: int, split: str) -> str:
        return self.uri("dropped", f"p{pass_index}-{split}.jsonl")

    def pack_task_uri(self, shard_name: str) -> str:
        return self.uri(WORK, "pack", f"{shard_name.rsplit('/', 1)[-1]}.task.json")

    def fitted_uri(self, stage: str) -> str:
        return self.uri("fitted", f"{stage}.json")

    def report_uri(self, stage: str) -> str:
        return stage_report_uri(self.root, stage)

    def commit_task(self, pass_index: int, split: str, stats: StageStats, part: PartInfo, n_facts: int) -> None:
        body = {"stats": stats.to_json(), "part": part.to_json(), "facts": n_facts}
        io.atomic_write_text(self.task_uri(pass_index, split), json.dumps(body) + "\n")

    def load_task(self, pass_index: int, split: str) -> tuple[StageStats, PartInfo, int] | None:
        uri = self.task_uri(pass_index, split)
        if not io.exists(uri):
            return None
        body = json.loads(io.read_bytes(uri))
        return StageStats.from_json(body["stats"]), PartInfo.from_json(body["part"]), body["facts"]

    def task_stats(self, pass_index: int, split: str) -> StageStats:
        loaded = self.load_task(pass_index, split)
        if loaded is None:
            raise RuntimeError(f"task p{pass_index}/{split} has no committed stats: the run did not finish")
        return loaded[0]

    def pack_stats(self, shard_name: str) -> StageStats:
        return StageStats.from_json(json.loads(io.read_bytes(self.pack_task_uri(shard_name))))

    @contextlib.contextmanager
    def facts_writer(self, pass_index: int, split: str) -> Iterator["FactsWriter"]:
        with io.atomic_output(self.facts_uri(pass_index, split)) as out:
            w = FactsWriter(out)
            yield w
            w.flush()

    def read_facts(self, pass_index: int, split: str) -> Iterator[Any]:
        """A committed task's facts, a pickled chunk at a time (never the whole file in memory)."""
        fs, path = io.filesystem_and_path(self.facts_uri(pass_index, split))
        with fs.open_input_stream(path, compression=None) as f:
            while True:
                try:
                    chunk = pickle.load(f)
                except EOFError:
                    return
                yield from chunk

    # --- ownership ----------------------------------------------------------------------
    def _read_json(self, *parts: str) -> dict | None:
        uri = self.uri(*parts)
        if not io.exists(uri):
            return None
        try:
            return json.loads(io.read_bytes(uri))
        except (ValueError, OSError):
            return {}

    def owner(self) -> str | None:
        """Fingerprint of the run this directory holds (None: empty)."""
        for parts in ((WORK, "run.json"), ("manifest.json",)):
            data = self._read_json(*parts)
            if data is not None:
                return str(data.get("fingerprint", "?"))
        fs, path = io.filesystem_and_path(self.root)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            return None
        if info.type == pafs.FileType.File:
            raise OutputError(f"output {self.root} is a file, not a directory")
        held = [i.base_name for i in fs.get_file_info(pafs.FileSelector(path)) if i.base_name in MANAGED]
        return "?" if held else None

    def complete(self, fp: str) -> dict | None:
        """The stats of a finished run with this fingerprint whose shards are all there, else None."""
        manifest = self._read_json("manifest.json")
        stats = self._read_json("stats.json")
        if not manifest or not stats or manifest.get("fingerprint") != fp or stats.get("fingerprint") != fp:
            return None
        if all(io.exists(self.uri(s["path"])) for s in manifest.get("shards", [])):
            return stats
        return None

    def clear(self) -> None:
        fs, path = io.filesystem_and_path(self.root)
        for name in MANAGED:
            info = fs.get_file_info(f"{path}/{name}")
            if info.type == pafs.FileType.Directory:
                fs.delete_dir(info.path)
            elif info.type == pafs.FileType.File:
                fs.delete_file(info.path)

    def claim(self, fp: str, overwrite: bool, run_info: dict) -> None:
        """Make the directory this run's: check ownership and writability, write ``_work/run.json``."""
        owner = self.owner()
        if owner is not None and owner != fp:
            if not overwrite:
                raise OutputError(
                    f"output {self.root} holds a different run (fingerprint {owner}, this run {fp}): "
                    "choose another --output, or pass --overwrite to replace it"
                )
            self.clear()
        try:
            io.makedirs(self.uri(WORK))
            io.atomic_write_text(self.uri(WORK, "run.json"), json.dumps({"fingerprint": fp, **run_info}, indent=2) + "\n")
        except OSError as exc:
            raise OutputError(f"cannot write to output {self.root}: {exc.strerror or exc}") from None
        self.remove_leftovers()

    def remove_leftovers(self) -> int:
        """Delete what a killed run left half-written: ``*.tmp-*`` files and Beam's ``beam-temp-*`` folders.

        Run by :meth:`claim`, under the lock (on an object store, where there is no lock, two
        runs into one output are not supported anyway); returns how many were removed.
        """
        fs, path = io.filesystem_and_path(self.root)
        try:
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
        except OSError:
            return 0
        stale = [i for i in infos if ".tmp-" in i.base_name or (i.type == pafs.FileType.Directory and i.base_name.startswith("beam-temp-"))]
        removed = 0
        for info in sorted(stale, key=lambda i: i.path):
            if any(info.path.startswith(s.path + "/") for s in stale if s.type == pafs.FileType.Directory):
                continue  # inside a folder removed with it
            with contextlib.suppress(OSError):
                fs.delete_dir(info.path) if info.type == pafs.FileType.Directory else fs.delete_file(info.path)
                removed += 1
        return removed

    def remove_work(self) -> None:
        fs, path = io.filesystem_and_path(self.uri(WORK))
        if fs.get_file_info(path).type == pafs.FileType.Directory:
            fs.delete_dir(path)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock on ``DIR/.skypile.lock`` (local directories; object stores have no locks).

        The lock is the kernel's (``flock``), not the file's existence: a lock whose process died is
        free again by itself, and two processes can never both take it (taking over a stale lock
        file by unlinking it raced: a second process could unlink the first one's fresh lock).
        The file names the holder, for the message; it is removed while still locked, and a lock
        taken on a file that was removed meanwhile is taken again on the new one.
        """
        if self.local_root is None:
            yield
            return
        if os.path.isfile(self.local_root):
            raise OutputError(f"output {self.root} is a file, not a directory")
        try:
            os.makedirs(self.local_root, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output {self.root}: {exc.strerror or exc}") from None
        path = os.path.join(self.local_root, ".skypile.lock")
        fd = _take_lock(path, self.root)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode())
            yield
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
            os.close(fd)  # releases the lock


def _take_lock(path: str, root: str) -> int:
    """An fd of ``path`` holding its exclusive ``flock``; :class:`OutputError` when another process holds it."""
    import fcntl

    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot write to output {root}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(f"output {root} is in use by another run ({_read_lock(path) or 'unknown'}); lock file {path}") from None
        except OSError as exc:
            os.close(fd)
            raise OutputError(f"cannot lock output {root}: {exc.strerror or exc}") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed the file between our open and our lock: lock the new one


class FactsWriter:
    """Pickled chunks of facts, so a task never holds all of its facts at once."""

    def __init__(self, out: Any):
        self.out, self.buf, self.count = out, [], 0

    def add(self, fact: Any) -> None:
        self.buf.append(fact)
        self.count += 1
        if len(self.buf) >= FACTS_CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.out.write(pickle.dumps(self.buf, protocol=pickle.HIGHEST_PROTOCOL))
            self.buf = []


def _read_lock(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def merge_stats(stats: Iterable[StageStats]) -> StageStats:
    total = StageStats()
    for s in stats:
        total.merge(s)
    return total
