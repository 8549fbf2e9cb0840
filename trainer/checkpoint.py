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


class Checkpointer:
    def __init__(self, directory: str | Path, keep: int = 3):
        self.dir = Path(directory)
        self.keep = keep

    def list(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.iterdir() if p.is_dir() and p.name.startswith("step-"))

    def latest(self) -> Path | None:
        pointer = self.dir / LATEST
        if pointer.is_file():
            path = self.dir / pointer.read_text().strip()
            if path.is_dir():
                return path
        done = self.list()  # pointer missing or stale (crash between rename and pointer update)
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
        _barrier()
        if rank == 0:
            world = dist.get_world_size() if dist.is_initialized() else 1
            (tmp / "meta.json").write_text(json.dumps({"step": step, "world_size": world, **(meta or {})}, indent=2))
            if final.exists():  # re-saving the same step (e.g. a resumed run's final save)
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_dir(self.dir)
            pointer_tmp = self.dir / f".{LATEST}.tmp"
            pointer_tmp.write_text(name + "\n")
            os.replace(pointer_tmp, self.dir / LATEST)
            _fsync_dir(self.dir)
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
    This catches what deleting or truncating files by hand leaves; bit rot inside a data
    file is caught when loading fails (the trainer then tries the next older checkpoint).
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
