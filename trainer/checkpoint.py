"""Sharded checkpoints with ``torch.distributed.checkpoint`` (DCP), written atomically.

Layout of ``<run_dir>/checkpoints``::

    step-00001000/          a complete checkpoint (DCP files + rank*.pt + meta.json)
    .step-00002000.tmp/     being written; never read
    latest                  name of the newest complete checkpoint

Every rank writes its model / optimizer shards with DCP and its own small
state (scheduler, data position, RNG) with ``torch.save`` into the hidden
temporary directory; after a barrier rank 0 renames it to ``step-N`` and then
updates ``latest``.  A crash at any point leaves either the previous
checkpoint set or the new one, never a partial ``step-N``.  The rename is
atomic on a POSIX filesystem shared by all nodes (what DCP's file writer
needs anyway); object stores would need a different commit marker.

Loading reshards the model and optimizer to the current world size (DCP
does that); the data position is per rank and needs the same world size,
workers and batch shape.

**Checksums.**  ``meta.json`` lists every other file of the checkpoint with its
size and sha256 (``files``): each rank hashes the files it wrote, rank 0 the
rest.  :func:`verify_checksums` checks them (ranks split the reading on resume;
``skypile-train export`` reads all), so bytes rewritten inside a ``.distcp``
file, same size, are found before they are trained on; the trainer then falls
back to the previous checkpoint.  A ``latest`` that names a checkpoint that is
gone is an error (:class:`CheckpointError`), not a fresh start over the run.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from skypile.errors import UserError
from skypile.io import sha256_of

log = logging.getLogger(__name__)

LATEST = "latest"


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class CheckpointError(UserError):
    """No checkpoint to resume from where one should be, or the one asked for is not intact."""


def checksums(folder: Path, names) -> dict[str, dict]:
    """``{name: {"bytes", "sha256"}}`` of these files of ``folder``."""
    return {n: {"bytes": (folder / n).stat().st_size, "sha256": sha256_of(str(folder / n))} for n in sorted(names)}


def verify_checksums(path: Path, part: tuple[int, int] = (0, 1)) -> str | None:
    """What is wrong with the files ``meta.json`` lists (size, then sha256), or ``None``.

    ``part=(i, n)``: only files ``i, i + n, ...`` of the sorted list (ranks split the reading).
    A checkpoint written before checksums were recorded has nothing to verify.
    """
    try:
        files = json.loads((Path(path) / "meta.json").read_text()).get("files") or {}
    except (OSError, ValueError) as e:
        return f"meta.json unreadable: {e}"
    for k, name in enumerate(sorted(files)):
        if k % part[1] != part[0]:
            continue
        f, want = Path(path) / name, files[name]
        if not f.is_file():
            return f"{name} missing"
        if f.stat().st_size != want["bytes"]:
            return f"{name} has {f.stat().st_size} bytes, meta.json says {want['bytes']}"
        if sha256_of(str(f)) != want["sha256"]:
            return f"{name}: sha256 differs from meta.json's (the file changed after it was saved)"
    return None


class Checkpointer:
    def __init__(self, directory: str | Path, keep: int = 3):
        self.dir = Path(directory)
        self.keep = keep

    def list(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.iterdir() if p.is_dir() and p.name.startswith("step-"))

    def latest(self) -> Path | None:
        """The checkpoint ``latest`` names (or the newest, without a pointer); raises :class:`CheckpointError`
        when ``latest`` names one that is gone: resuming from an older one, or from nothing, would
        silently redo steps over a run that went further."""
        pointer = self.dir / LATEST
        if pointer.is_file():
            name = pointer.read_text().strip()
            path = self.dir / name
            if path.is_dir():
                return path
            if not (self.dir / f".{name}.old").is_dir():  # else: a re-save of that step was interrupted
                raise CheckpointError(f"{pointer} names {name}, which is missing from {self.dir}: the run went further than "
                                      "any checkpoint left; resume=<path to a step-N> picks one, resume=none starts fresh")
        done = self.list()  # no pointer (crash before the first one) or an interrupted re-save
        return done[-1] if done else None

    def candidates(self) -> list[Path]:
        """Checkpoints to resume from, newest first: ``latest``, then the older ones."""
        done = self.list()[::-1]
        first = self.latest()
        return ([first] if first else []) + [p for p in done if p != first]

    def newest_intact(self) -> Path | None:
        """The newest checkpoint that :func:`check_intact` accepts, warning about each one skipped."""
        for path in self.candidates():
            problem = check_intact(path)
            if problem is None:
                return path
            log.warning("checkpoint %s is not intact (%s): falling back to an older one", path, problem)
        return None

    def save(self, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
             rank_state: dict, meta: dict | None = None) -> Path:
        """Collective: every rank calls it with its own ``rank_state`` (scheduler, data position...)."""
        name = f"step-{step:08d}"
        final, tmp = self.dir / name, self.dir / f".{name}.tmp"
        rank = _rank()
        if rank == 0:
            self.dir.mkdir(parents=True, exist_ok=True)
            if tmp.exists():
                shutil.rmtree(tmp)  # left by a crashed save
            tmp.mkdir()
        _barrier()
        model_sd, optim_sd = get_state_dict(model, optimizer)
        dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp))
        torch.save({**rank_state, "rng": rng_state()}, tmp / f"rank{rank:05d}.pt")
        mine = [p.name for p in tmp.iterdir() if p.name.startswith(f"__{rank}_") or p.name == f"rank{rank:05d}.pt"]
        sums = checksums(tmp, mine)  # each rank hashes what it wrote
        if dist.is_initialized():  # also the barrier: every rank's files are complete
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, sums)
            sums = {k: v for part in gathered for k, v in part.items()}
        if rank == 0:
            world = dist.get_world_size() if dist.is_initialized() else 1
            rest = [p.name for p in tmp.iterdir() if p.is_file() and p.name not in sums and p.name != "meta.json"]
            files = {**sums, **checksums(tmp, rest)}  # DCP's .metadata, and anything no rank claimed
            body = {"step": step, "world_size": world, **(meta or {}), "files": dict(sorted(files.items()))}
            (tmp / "meta.json").write_text(json.dumps(body, indent=2))
            old = self.dir / f".{name}.old"
            if final.exists():  # re-saving the same step (e.g. after resuming past a damaged one)
                if old.exists():
                    shutil.rmtree(old)
                os.replace(final, old)  # aside, not deleted, until the new one is in place
            os.replace(tmp, final)
            _fsync_dir(self.dir)
            pointer_tmp = self.dir / f".{LATEST}.tmp"
            pointer_tmp.write_text(name + "\n")
            os.replace(pointer_tmp, self.dir / LATEST)
            _fsync_dir(self.dir)
            if old.exists():
                shutil.rmtree(old, ignore_errors=True)
            for old in self.list()[: -self.keep] if self.keep > 0 else []:
                shutil.rmtree(old, ignore_errors=True)
        _barrier()
        log.info("saved checkpoint %s", final)
        return final

    def load(self, path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
             reset_data: bool = False) -> dict:
        """Collective: restore model + optimizer in place and RNG; return this rank's saved state.

        ``reset_data``: the data position is not restored (the caller restarts the stream), so a
        world size other than the saving one is fine; ranks without a saved file take rank 0's
        scheduler state (the same on every rank) and keep their RNG.
        """
        path = Path(path)
        model_sd, optim_sd = get_state_dict(model, optimizer)
        state = {"model": model_sd, "optim": optim_sd}
        dcp.load(state, checkpoint_id=str(path))
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
        meta = json.loads((path / "meta.json").read_text())
        rank_file = path / f"rank{_rank():05d}.pt"
        own = rank_file.is_file()
        if not own:
            if not reset_data:
                raise FileNotFoundError(f"{rank_file} missing: checkpoint saved with world size {meta['world_size']}; "
                                        "reset_data_position=true resumes with another world size")
            rank_file = path / "rank00000.pt"
        rank_state = torch.load(rank_file, weights_only=False)
        rng = rank_state.pop("rng")
        if own:
            set_rng_state(rng)
        if reset_data:
            rank_state.pop("data", None)
        rank_state["meta"] = meta
        log.info("loaded checkpoint %s (step %d)", path, meta["step"])
        return rank_state


def check_intact(path: Path) -> str | None:
    """Why ``path`` cannot be resumed from (``None`` when it can): a cheap look at its files.

    A complete checkpoint has ``meta.json``, DCP's ``.metadata``, every data file that
    ``.metadata`` points to (non-empty) and one ``rankK.pt`` per rank of the saving world.
    This catches what deleting or truncating files by hand leaves; changed bytes inside a
    file are caught by :func:`verify_checksums` (which reads every byte, so it is run apart).
    """
    try:
        meta = json.loads((path / "meta.json").read_text())
        world = int(meta["world_size"])
    except (OSError, ValueError, KeyError) as e:
        return f"meta.json unreadable: {e}"
    missing = [f"rank{r:05d}.pt" for r in range(world) if not (path / f"rank{r:05d}.pt").is_file()]
    if missing:
        return f"missing {', '.join(missing[:4])}"
    try:
        metadata = dcp.FileSystemReader(str(path)).read_metadata()
    except Exception as e:  # noqa: BLE001 - any unreadable .metadata means the same thing
        return f".metadata unreadable: {type(e).__name__}: {e}"
    files = {info.relative_path for info in (metadata.storage_data or {}).values()}
    for name in sorted(files):
        f = path / name
        if not f.is_file() or f.stat().st_size == 0:
            return f"data file {name} missing or empty"
    return None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
