"""What a training run reads, resolved before any work: shard directories, the mix's sources, the tokenizer.

* **Data.**  ``data`` is one or more shard directories (each with its ``manifest.json``).
  With ``mix=mix.json`` and no ``data``, the directories are the manifests ``skypile mix``
  recorded for the mix's sources, and each source is read only from its own manifest's
  shards (rows whose ``source`` column is its name).  Every source the weights name must be
  in the data: a missing one stops the run at start-up, listing the sources each directory
  holds (the manifest's ``sources`` entry, or the shards' ``source`` column for older
  manifests), instead of training on the others.  All directories must share one tokenizer
  and be trainable (a ``tokens`` column: ``skypile dedup`` output is text only).
* **Self-contained run directories.**  :func:`absolute_paths` turns every local path of the
  config (``data``, ``mix``, ``tokenizer``, ``val_sets``, ``run_dir``) into an absolute one
  before ``config.json`` is written, and the trainer copies the tokenizer model into the run
  directory (:data:`RUN_TOKENIZER`), so ``skypile eval``, ``skypile-train export`` and a resume
  work from any directory, and keep working when the default tokenizer is rebuilt.
* **Identity.**  :func:`data_identity` names the data a checkpoint's position belongs to
  (directories and their shard lists): a resume on other data is caught before the saved
  position is applied to shards it does not describe.

Torch-free: ``skypile eval`` and the export use the tokenizer lookup too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from skypile.errors import UserError

RUN_TOKENIZER = "tokenizer.model"  # the run's copy of the SentencePiece model it trained with


class DataError(UserError):
    """Training or validation data the user must fix (no manifest, an unusable set, a mix source the
    data lacks, shards of different tokenizers, text-only shards); the message names the file or source."""


class ShardError(DataError):
    """A shard that does not match its manifest or holds unusable tokens; the message names the file."""


class ResumeError(UserError):
    """A run directory whose checkpoint cannot go on with this config (other data, another model)."""


def open_dataset(path: str | Path) -> tuple[Path, dict]:
    """``path`` is a shard directory holding ``manifest.json``, or its ``shards/`` folder."""
    p = Path(path)
    for root in (p, p.parent):
        if (root / "manifest.json").is_file():
            try:
                manifest = json.loads((root / "manifest.json").read_text())
            except (ValueError, UnicodeDecodeError) as exc:
                raise DataError(f"{root / 'manifest.json'} is not valid JSON ({exc})") from None
            if not isinstance(manifest, dict) or not isinstance(manifest.get("shards"), list):
                raise DataError(f"{root / 'manifest.json'} is not a shard manifest (no 'shards' list)")
            return root, manifest
    raise DataError(f"no manifest.json in {p} or {p.parent}: data= must be a shard directory (or its shards/ folder)")


def is_local(path: str) -> bool:
    return bool(path) and "://" not in path


def absolute(path: str) -> str:
    return str(Path(path).expanduser().absolute()) if is_local(path) else path


def absolute_paths(cfg) -> None:
    """Make the config's local paths absolute (in place), so ``config.json`` means the same from any cwd."""
    cfg.data = [absolute(d) for d in cfg.data]
    for name in ("mix", "tokenizer", "run_dir"):
        if getattr(cfg, name):
            setattr(cfg, name, absolute(getattr(cfg, name)))
    cfg.val_sets = {k: absolute(str(v)) for k, v in cfg.val_sets.items()}
    if isinstance(cfg.resume, str) and cfg.resume not in ("auto", "none", ""):
        cfg.resume = absolute(cfg.resume)


@dataclass
class Data:
    """The shard directories of a run, their manifests, and where each weighted source is read."""

    roots: list[Path]
    manifests: list[dict]
    # source -> indices of the roots it is read from; a source not listed is read wherever it is
    only: dict[str, set[int]] = field(default_factory=dict)

    @property
    def tokenizer(self) -> dict:
        return self.manifests[0].get("tokenizer", {})


def weighted_sources(schedule: Iterable | None, weights: dict | None) -> list[str]:
    """Every source given a positive weight in some phase of the schedule (or in ``weights``)."""
    phases = list(schedule or ([[0, weights]] if weights else []))
    return sorted({s for _, w in phases for s, v in (w or {}).items() if float(v) > 0})


def _mix_manifests(mix_path: str) -> dict[str, str]:
    """source -> absolute manifest path, from ``mix.json`` (relative paths: from the mix's directory)."""
    from skypile.mix import MixError

    try:
        mix = json.loads(Path(mix_path).read_text())
        rows = mix["sources"]
    except (OSError, ValueError, KeyError) as exc:
        raise MixError(f"cannot read mix {mix_path}: {exc}") from None
    out = {}
    for row in rows:
        if row.get("manifest"):
            m = Path(row["manifest"])
            out[row["name"]] = str(m if m.is_absolute() else (Path(mix_path).parent / m).absolute())
    return out


def resolve_data(cfg) -> Data:
    """The run's shard directories from ``data``, or from ``mix`` when ``data`` is empty; checked (see module doc)."""
    from skypile.mix import MixError

    wanted = weighted_sources(cfg.mix_schedule, cfg.data_weights)
    only: dict[str, set[int]] = {}
    if cfg.data:
        dirs = list(cfg.data)
    elif cfg.mix:
        manifests = _mix_manifests(cfg.mix)
        by_hand = [s for s in wanted if s not in manifests]
        if by_hand:
            raise MixError(f"mix {cfg.mix}: source(s) {', '.join(by_hand)} have no manifest (their tokens were given by hand "
                           "in sources.yaml): pass --data with the shard directories that hold them")
        dirs = []
        for source in wanted:
            d = str(Path(manifests[source]).parent)
            if d not in dirs:
                dirs.append(d)
            only.setdefault(source, set()).add(dirs.index(d))
    else:
        raise DataError("no data: pass --data SHARD_DIR [SHARD_DIR ...], or mix=mix.json (from skypile mix) to read its sources' shards")
    opened = [open_dataset(d) for d in dirs]
    roots = [r for r, _ in opened]
    if len(set(roots)) < len(roots):
        raise DataError(f"data lists a directory twice: {', '.join(dirs)}")
    manifests = [m for _, m in opened]
    for root, manifest in opened:
        if manifest.get("trainable") is False:
            note = re.sub(r"\bDIR\b", str(root), manifest.get("trainable_note", "no tokens column"))
            raise DataError(f"data {root} is not trainable: {note}")
    _check_one_tokenizer(roots, manifests)
    data = Data(roots, manifests, only)
    held = [source_counts(r, m) for r, m in opened]
    missing = [s for s in wanted if not any(s in held[i] for i in (only.get(s) or range(len(roots))))]
    if missing:
        listing = "; ".join(f"{r} holds {', '.join(sorted(h)) or 'nothing'}" for r, h in zip(roots, held))
        raise DataError(f"the mix weights source(s) {', '.join(missing)}, which the data does not hold ({listing}); "
                         "a mix source's name is the source value of its rows")
    return data


def _check_one_tokenizer(roots: list[Path], manifests: list[dict]) -> None:
    def key(m: dict) -> tuple:
        tok = m.get("tokenizer", {})
        return tok.get("sha256") or None, tok.get("vocab_size"), tok.get("eos_id")

    first = key(manifests[0])
    for root, manifest in zip(roots[1:], manifests[1:]):
        k = key(manifest)
        if k != first and not (k[0] and k[0] == first[0]):
            raise DataError(f"{root} was tokenized with another tokenizer than {roots[0]} "
                             f"(sha256 {str(k[0])[:12]}..., {k[1]} pieces vs {str(first[0])[:12]}..., {first[1]}): "
                             "train on shards of one tokenizer")


def source_counts(root: Path, manifest: dict) -> dict[str, int]:
    """Documents per ``source`` value of a shard directory: the manifest's ``sources``, or counted
    from the shards' ``source`` column (manifests written before that entry existed)."""
    if isinstance(manifest.get("sources"), dict):
        return {str(k): int(v.get("rows", 0)) for k, v in manifest["sources"].items()}
    import pyarrow.parquet as pq

    counts: dict[str, int] = {}
    for shard in manifest.get("shards", []):
        path = root / shard["path"]
        if not path.is_file():
            continue  # the shard checks report it
        try:
            column = pq.read_table(path, columns=["source"]).column(0)
        except Exception:  # noqa: BLE001 - an unreadable shard: the shard checks name it
            continue
        for name, n in zip(*_value_counts(column)):
            counts[str(name)] = counts.get(str(name), 0) + n
    return counts


def _value_counts(column) -> tuple[list, list[int]]:
    vc = column.value_counts()
    return vc.field("values").to_pylist(), vc.field("counts").to_pylist()


def data_identity(data: Data) -> list[dict]:
    """The data a saved position refers to: each directory and a hash of its shard list."""
    out = []
    for root, manifest in zip(data.roots, data.manifests):
        shards = sorted((s["path"], s.get("rows"), s.get("bytes"), s.get("sha256")) for s in manifest.get("shards", []))
        out.append({"path": str(root), "shards": hashlib.sha256(json.dumps(shards).encode()).hexdigest()[:16]})
    return out


# -- the run's tokenizer -----------------------------------------------------------------------------


def manifest_tokenizer(root: Path, manifest: dict) -> tuple[str | None, list[str]]:
    """The SentencePiece model a shard directory was tokenized with, if it still exists unchanged:
    ``(path or None, paths tried)``.  A model rebuilt since (another sha256) is not it."""
    tok = manifest.get("tokenizer", {})
    tried = []
    for key in ("model_path", "model", "path"):
        if not tok.get(key):
            continue
        p = Path(tok[key])
        for candidate in ([p] if p.is_absolute() else [p, root / p]):
            tried.append(str(candidate))
            if candidate.is_file():
                if tok.get("sha256") and hashlib.sha256(candidate.read_bytes()).hexdigest() != tok["sha256"]:
                    tried[-1] += " (changed since the shards were written: another sha256)"
                    continue
                return str(candidate.absolute()), tried
    return None, tried


def run_tokenizer(run_dir: Path, cfg: dict) -> tuple[str | None, list[str]]:
    """The tokenizer of a trainer run: its copy in the run directory, else the config's ``tokenizer``,
    else the data manifests' (unchanged); ``(path or None, paths tried)``."""
    tried = []
    own = run_dir / RUN_TOKENIZER
    tried.append(str(own))
    if own.is_file():
        return str(own), tried
    if cfg.get("tokenizer"):
        tried.append(cfg["tokenizer"])
        if not is_local(cfg["tokenizer"]) or Path(cfg["tokenizer"]).is_file():
            return cfg["tokenizer"], tried
    data = cfg.get("data") or []
    for d in [data] if isinstance(data, str) else data:
        try:
            root, manifest = open_dataset(d)
        except DataError:
            tried.append(f"{d} (no manifest.json)")
            continue
        path, more = manifest_tokenizer(root, manifest)
        tried += more
        if path:
            return path, tried
    return None, tried


def copy_tokenizer(source: str, run_dir: Path) -> Path:
    """Copy the tokenizer model into the run directory (atomically), so the run keeps its own."""
    from skypile import io

    dest = run_dir / RUN_TOKENIZER
    data = io.read_bytes(source)
    if not dest.is_file() or dest.read_bytes() != data:
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    return dest
