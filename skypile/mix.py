"""The data mixer: per-source epochs and weights for a target language mix, under an epoch cap.

``skypile mix --sources sources.yaml --target target.yaml --out mix.json``

``sources.yaml``::

    sources:
      - {name: wiki/en, lang: en, tokens: 3.2B, tier: high}         # tokens: a number, or 12M / 3.2B / 1.5T
      - {name: web/en, lang: en, manifest: out/web/manifest.json, tier: web}
      - {name: code/github, lang: code, manifest: out/code/manifest.json, tier: web, stem: true}

``lang`` is one of ``en | zh | code | other`` and ``tier`` one of ``high | web``.
With ``manifest:`` (a shard directory's ``manifest.json``, or the directory) the
tokens are counted from our own shards: the rows whose ``source`` column is the
entry's ``name``.  The trainer weights that column, so **a source's name is the
``source`` value of its rows** (``web/warc``, ``code/github``, ``parallel/en-zh``, a
JSONL row's own ``source``, or ``skypile export --source``): every shard-writing
command prints the names its output holds, the manifest lists them under
``sources``, a name the manifest lacks is an error that lists them, and with
``manifest:`` the name may be left out when the manifest holds one source.
``mix.json`` records each manifest's absolute path, so ``skypile-train
mix=mix.json`` finds the shards of every source without ``--data``.  ``stem:
true`` (optional) marks the sources whose share the stage-2 schedule ramps up.

``target.yaml``::

    target: {en: 0.498, zh: 0.396, code: 0.08, other: 0.024}   # the default: Skywork-13B's stage 1 (normalized to sum 1)
    total_tokens: 2T          # optional; absent: the largest total the sources allow under the cap
    max_epochs: {high: 5, web: 1}                              # optional; these are the defaults
    stage2: {tokens: 130B, stem_start: 0.10, stem_end: 0.40, phases: 10}   # optional

**Stage 1.** Each language's share of ``total_tokens`` is filled from its
sources by one rule: a high-tier token is sampled ``max_epochs.high /
max_epochs.web`` (5) times as often as a web token, and no source passes its
tier's cap (web text is never repeated, Wikipedia-like sources at most 5
epochs).  So when a language has plenty of web text its high-quality sources
are still upsampled relative to it, and when the target needs every token both
reach their caps together.  A target that cannot be met is a :class:`MixError`
naming the language and the sources that limit it, and the largest total that
would work.

**Stage 2.** Skywork-13B continued with 130B tokens (6.5% of its 2T stage 1,
our default ratio) in which the share of STEM data rises from 10% to 40%.  We
ramp it quadratically, ``start + (end - start) * x^2`` over ``phases`` equal
steps from 10% (first) to 40% (last), so the stage averages about 20% STEM
(20.6% with the default 10 phases); within STEM and within the rest, sources
keep their stage-1 proportions.  Stage-2 tokens count against the same epoch
cap.

``mix.json`` lists every source with its ``epochs`` and ``tokens`` taken in
stage 1 (and ``epochs_total`` with stage 2), the achieved shares, the stage-1
``weights`` (the trainer's ``data_weights``) and ``schedule``, the trainer's
``mix_schedule``: ``[[0, stage-1 weights], [start of stage-2 phase k, weights], ...]``
by global token position.  ``skypile-train mix=mix.json`` reads both.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from skypile.errors import UserError

LANGS = ("en", "zh", "code", "other")
TIERS = ("high", "web")
PAPER_STAGE1 = {"en": 0.498, "zh": 0.396, "code": 0.08, "other": 0.024}
DEFAULT_MAX_EPOCHS = {"high": 5.0, "web": 1.0}
STAGE2_RATIO = 130 / 2000  # Skywork-13B: 130B stage-2 tokens after 2T in stage 1
SHARE_TOLERANCE = 0.01  # the paper's own shares sum to 99.8%: shares are normalized, within this of 1
_COUNT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmbt]?)\s*$", re.I)
_SCALE = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "t": 10**12}


class MixError(UserError):
    """Bad sources/target files, or a target the sources cannot meet under the cap."""


@dataclass
class Source:
    name: str
    lang: str
    tier: str
    tokens: int
    stem: bool = False
    manifest: str = ""


@dataclass
class Stage2:
    tokens: int | None = None  # None: STAGE2_RATIO of the stage-1 total
    stem_start: float = 0.10
    stem_end: float = 0.40
    phases: int = 10

    def shares(self) -> list[float]:
        """STEM share of each phase: the quadratic ramp from ``stem_start`` (first phase) to ``stem_end`` (last)."""
        n = self.phases - 1
        return [self.stem_start + (self.stem_end - self.stem_start) * (k / n) ** 2 for k in range(self.phases)]


def normalized(shares: dict[str, float]) -> dict[str, float]:
    total = sum(shares.values())
    return {k: v / total for k, v in shares.items()}


@dataclass
class Target:
    shares: dict[str, float] = field(default_factory=lambda: normalized(PAPER_STAGE1))  # sum to 1
    total_tokens: int | None = None
    max_epochs: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MAX_EPOCHS))
    stage2: Stage2 = field(default_factory=Stage2)


# ---------------------------------------------------------------------------------------------
# Reading the two files


def parse_count(value: Any, what: str) -> int:
    """``1500`` / ``"12M"`` / ``"3.2B"`` / ``"1.5T"`` → tokens."""
    if isinstance(value, bool):
        raise MixError(f"{what}: not a token count: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise MixError(f"{what}: not a token count: {value!r}")
        count = float(value)
    else:
        m = _COUNT_RE.match(str(value))
        if not m:
            raise MixError(f"{what}: not a token count: {value!r} (e.g. 1500000, 12M, 3.2B, 1.5T)")
        count = float(m.group(1)) * _SCALE[m.group(2).lower()]
    if not count.is_integer():  # 1.5 tokens: never truncated silently
        raise MixError(f"{what}: not a whole number of tokens: {value!r}")
    return int(count)


def _yaml(path: str, key: str) -> dict:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise MixError(f"file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise MixError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or key not in data:
        raise MixError(f"{path}: expected a mapping with a '{key}:' entry")
    return data


def manifest_path(manifest: str, base: str = "") -> str:
    """``manifest`` (a ``manifest.json`` or its directory) as an absolute path; relative ones are
    looked up from the working directory, then from ``base`` (the directory of sources.yaml)."""
    candidates = [manifest] + ([os.path.join(base, manifest)] if base and not os.path.isabs(manifest) else [])
    for c in candidates:
        if os.path.isdir(c):
            c = os.path.join(c, "manifest.json")
        if os.path.isfile(c):
            return os.path.abspath(c)
    return os.path.abspath(candidates[0])


def read_manifest(manifest: str, name: str) -> dict:
    try:
        with open(manifest, encoding="utf-8") as f:
            data = json.load(f)
        data["shards"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MixError(f"source {name or '(unnamed)'}: cannot read manifest {manifest}: {exc}") from None
    if data.get("trainable") is False:
        note = re.sub(r"\bDIR\b", os.path.dirname(manifest), data.get("trainable_note", "no tokens column"))
        raise MixError(f"source {name or '(unnamed)'}: {manifest} is not trainable: {note}")
    return data


def manifest_sources(manifest: str, data: dict) -> dict[str, int]:
    """Tokens per ``source`` value of the shards in ``manifest`` (its ``sources`` entry, or counted
    from the shards for manifests written before it existed)."""
    if isinstance(data.get("sources"), dict):
        return {str(k): int(v["tokens"]) for k, v in data["sources"].items()}
    import pyarrow.parquet as pq

    root = os.path.dirname(manifest)
    counts: dict[str, int] = {}
    for shard in data["shards"]:
        table = pq.read_table(os.path.join(root, shard["path"]), columns=["source", "n_tokens"])
        for row in table.group_by("source").aggregate([("n_tokens", "sum")]).to_pylist():
            counts[str(row["source"])] = counts.get(str(row["source"]), 0) + int(row["n_tokens_sum"] or 0)
    return counts


def manifest_tokens(manifest: str, name: str) -> int:
    """Tokens of the rows of our shards (listed in ``manifest``) whose ``source`` column is ``name``."""
    counts = manifest_sources(manifest, read_manifest(manifest, name))
    if name not in counts:
        raise MixError(f"source {name}: no rows with source={name!r} in {manifest} (its sources: {', '.join(sorted(counts)) or 'none'}); "
                       "a source's name must be the source value of its rows")
    return counts[name]


def only_source(manifest: str) -> str:
    """The one source a manifest holds: the name of a ``sources.yaml`` entry that gives only ``manifest:``."""
    counts = manifest_sources(manifest, read_manifest(manifest, ""))
    if len(counts) != 1:
        raise MixError(f"an entry with manifest {manifest} has no name, and the manifest holds "
                       f"{'no sources' if not counts else 'several: ' + ', '.join(sorted(counts))}: give name: SOURCE")
    return next(iter(counts))


def load_sources(path: str) -> list[Source]:
    entries = _yaml(path, "sources")["sources"]
    if not isinstance(entries, list) or not entries:
        raise MixError(f"{path}: 'sources:' must be a non-empty list")
    out: list[Source] = []
    for i, e in enumerate(entries):
        where = f"{path}: sources[{i}]"
        if not isinstance(e, dict):
            raise MixError(f"{where}: expected a mapping {{name, lang, tokens | manifest, tier}}")
        unknown = set(e) - {"name", "lang", "tokens", "manifest", "tier", "stem"}
        if unknown:
            raise MixError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        name, lang, tier = str(e.get("name") or ""), e.get("lang"), e.get("tier", "web")
        manifest = manifest_path(str(e["manifest"]), os.path.dirname(path)) if "manifest" in e else ""
        if not name and manifest:
            name = only_source(manifest)
        if not name:
            raise MixError(f"{where}: no name")
        if lang not in LANGS:
            raise MixError(f"{where} ({name}): lang must be one of {', '.join(LANGS)}, got {lang!r}")
        if tier not in TIERS:
            raise MixError(f"{where} ({name}): tier must be one of {', '.join(TIERS)}, got {tier!r}")
        if ("tokens" in e) == ("manifest" in e):
            raise MixError(f"{where} ({name}): give exactly one of tokens or manifest")
        if manifest:
            tokens = manifest_tokens(manifest, name)
        else:
            tokens = parse_count(e["tokens"], f"{where} ({name}) tokens")
        out.append(Source(name, lang, tier, tokens, bool(e.get("stem", False)), manifest))
    dup = sorted({s.name for s in out if sum(t.name == s.name for t in out) > 1})
    if dup:
        raise MixError(f"{path}: source name(s) listed twice: {', '.join(dup)}")
    return out


def load_target(path: str | None) -> Target:
    if path is None:
        return Target()
    data = _yaml(path, "target")
    unknown = set(data) - {"target", "total_tokens", "max_epochs", "stage2"}
    if unknown:
        raise MixError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (known: target, total_tokens, max_epochs, stage2)")
    shares = data["target"]
    if not isinstance(shares, dict) or set(shares) - set(LANGS):
        raise MixError(f"{path}: target: maps {', '.join(LANGS)} to shares, got {shares!r}")
    try:
        shares = {k: float(shares.get(k, 0.0)) for k in LANGS}
    except (TypeError, ValueError):
        raise MixError(f"{path}: target shares must be numbers, got {data['target']!r}") from None
    if not all(v >= 0 for v in shares.values()) or not abs(sum(shares.values()) - 1.0) <= SHARE_TOLERANCE:  # NaN fails too
        raise MixError(f"{path}: target shares must be >= 0 and sum to 1 (within {SHARE_TOLERANCE:.0%}), got {sum(shares.values()):.6f}")
    t = Target(shares=normalized(shares))
    if data.get("total_tokens") is not None:
        t.total_tokens = parse_count(data["total_tokens"], f"{path}: total_tokens")
        if t.total_tokens <= 0:
            raise MixError(f"{path}: total_tokens must be positive, got {data['total_tokens']!r} (leave it out for the largest mix)")
    caps = data.get("max_epochs") or {}
    if isinstance(caps, (int, float)) and not isinstance(caps, bool):
        caps = {"high": caps}
    if not isinstance(caps, dict) or set(caps) - set(TIERS):
        raise MixError(f"{path}: max_epochs: a number (high tier) or {{high, web}}, got {caps!r}")
    t.max_epochs.update({k: float(v) for k, v in caps.items()})
    if not all(v > 0 for v in t.max_epochs.values()):
        raise MixError(f"{path}: max_epochs must be positive, got {t.max_epochs}")
    s2 = data.get("stage2") or {}
    if not isinstance(s2, dict) or set(s2) - {"tokens", "stem_start", "stem_end", "phases"}:
        raise MixError(f"{path}: stage2: {{tokens, stem_start, stem_end, phases}}, got {s2!r}")
    phases = s2.get("phases", 10)
    if isinstance(phases, bool) or not isinstance(phases, int):
        raise MixError(f"{path}: stage2.phases must be a whole number, got {phases!r}")
    try:
        t.stage2 = Stage2(
            tokens=parse_count(s2["tokens"], f"{path}: stage2.tokens") if s2.get("tokens") is not None else None,
            stem_start=float(s2.get("stem_start", 0.10)), stem_end=float(s2.get("stem_end", 0.40)), phases=phases,
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, MixError):
            raise
        raise MixError(f"{path}: stage2.stem_start and stem_end must be numbers ({exc})") from None
    if not (0 <= t.stage2.stem_start <= 1 and 0 <= t.stage2.stem_end <= 1 and t.stage2.phases >= 2):
        raise MixError(f"{path}: stage2 shares must be within [0, 1] and phases >= 2")
    return t


# ---------------------------------------------------------------------------------------------
# Solving


def _fill(sources: list[Source], demand: float, caps: dict[str, float]) -> dict[str, float]:
    """Epochs per source meeting ``demand`` tokens: ``min(cap, rate * level)``, one level for all.

    A high-tier token's rate is ``caps.high / caps.web`` times a web token's, so both
    tiers reach their caps at the same level.  Assumes ``demand`` is within the capacity.
    """
    live = [s for s in sources if s.tokens > 0]
    if demand <= 0 or not live:
        return {s.name: 0.0 for s in sources}
    rate = {"high": caps["high"] / caps["web"], "web": 1.0}

    def supplied(level: float) -> float:
        return sum(s.tokens * min(caps[s.tier], rate[s.tier] * level) for s in live)

    lo = 0.0
    for bp in sorted({caps[s.tier] / rate[s.tier] for s in live}):
        if supplied(bp) >= demand:
            slope = sum(s.tokens * rate[s.tier] for s in live if caps[s.tier] / rate[s.tier] > lo)
            level = lo + (demand - supplied(lo)) / slope
            break
        lo = bp
    else:
        level = lo
    return {s.name: (min(caps[s.tier], rate[s.tier] * level) if s.tokens > 0 else 0.0) for s in sources}


def capacity(sources: list[Source], caps: dict[str, float]) -> float:
    return sum(s.tokens * caps[s.tier] for s in sources)


def _stage1(sources: list[Source], target: Target, total: float) -> dict[str, float]:
    """Stage-1 tokens per source for ``total`` (raises MixError if a language falls short)."""
    taken: dict[str, float] = {}
    for lang in LANGS:
        group = [s for s in sources if s.lang == lang]
        need = target.shares[lang] * total
        cap = capacity(group, target.max_epochs)
        if need > cap * (1 + 1e-9):
            raise MixError(_shortfall(lang, group, target, total, need, cap, sources))
        for name, ep in _fill(group, need, target.max_epochs).items():
            taken[name] = ep * next(s.tokens for s in group if s.name == name)
    return taken


def _shortfall(lang: str, group: list[Source], target: Target, total: float, need: float, cap: float, sources: list[Source]) -> str:
    parts = ", ".join(f"{s.name}: {s.tokens:,} x {target.max_epochs[s.tier]:g} epochs ({s.tier})" for s in group)
    best = max_total(sources, target)
    return (f"target cannot be met under the epoch cap: {lang} needs {target.shares[lang]:.1%} of {int(total):,} = {int(need):,} tokens, "
            f"but its sources allow at most {int(cap):,} ({parts}); limited by {', '.join(s.name for s in group)}. "
            f"Lower total_tokens to at most {int(best):,} or add {lang} data")


def max_total(sources: list[Source], target: Target) -> float:
    """The largest stage-1 total every language can fill under the cap (stage 2 aside)."""
    limits = [capacity([s for s in sources if s.lang == lang], target.max_epochs) / share for lang, share in target.shares.items() if share > 0]
    return min(limits) if limits else 0.0


def _stage2(sources: list[Source], target: Target, total: float, taken: dict[str, float]) -> dict | None:
    """Phases of the STEM ramp: start token, STEM share, weights; None when no source is STEM or no tokens."""
    s2 = target.stage2
    tokens = s2.tokens if s2.tokens is not None else round(total * STAGE2_RATIO)
    stem = {s.name for s in sources if s.stem and taken[s.name] > 0}
    rest = {s.name for s in sources if not s.stem and taken[s.name] > 0}
    if not stem or not rest or tokens <= 0:
        return None
    stem_total, rest_total = sum(taken[n] for n in stem), sum(taken[n] for n in rest)
    phases, used = [], {n: 0.0 for n in taken}
    per_phase = tokens / s2.phases
    for k, share in enumerate(s2.shares()):
        weights = {n: (share * taken[n] / stem_total if n in stem else (1 - share) * taken[n] / rest_total) for n in sorted(stem | rest)}
        for n, w in weights.items():
            used[n] += w * per_phase
        phases.append({"start": int(round(total + k * per_phase)), "stem_share": round(share, 6), "weights": _rounded(weights)})
    return {"tokens": int(tokens), "stem_start": s2.stem_start, "stem_end": s2.stem_end, "ramp": "quadratic",
            "stem_share_mean": round(sum(s2.shares()) / s2.phases, 6), "stem_sources": sorted(stem), "phases": phases,
            "_used": used}


def _rounded(weights: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 9) for k, v in weights.items()}


def _over_cap(sources: list[Source], target: Target, taken: dict[str, float], stage2: dict | None, slack: float = 1e-9) -> list[str]:
    used = stage2["_used"] if stage2 else {}
    return [s.name for s in sources if s.tokens > 0 and (taken[s.name] + used.get(s.name, 0.0)) / s.tokens > target.max_epochs[s.tier] * (1 + slack)]


def solve(sources: list[Source], target: Target) -> dict:
    """The mix as a dict (what ``mix.json`` holds); raises :class:`MixError` when the target cannot be met."""
    limited_by = None
    empty = [lang for lang, share in target.shares.items() if share > 0 and capacity([s for s in sources if s.lang == lang], target.max_epochs) <= 0]
    if empty:
        raise MixError("; ".join(f"target gives {lang} {target.shares[lang]:.1%} but no source has lang {lang} (with tokens)" for lang in empty))
    if target.total_tokens is not None:
        total = float(target.total_tokens)
        taken = _stage1(sources, target, total)
        stage2 = _stage2(sources, target, total, taken)
        over = _over_cap(sources, target, taken, stage2)
        if over:
            raise MixError(f"stage 1 fits, but with stage 2's {stage2['tokens']:,} tokens the STEM ramp takes "  # type: ignore[index]
                           f"{', '.join(over)} past the epoch cap; lower total_tokens or stage2.tokens, or add data")
    else:
        hi = max_total(sources, target)
        limits = {lang: capacity([s for s in sources if s.lang == lang], target.max_epochs) / share for lang, share in target.shares.items() if share > 0}
        limited_by = min(limits, key=limits.get)  # type: ignore[arg-type]

        def fits(n: float) -> bool:
            t = _stage1(sources, target, n)
            return not _over_cap(sources, target, t, _stage2(sources, target, n, t), slack=0.0)

        total = hi
        if not fits(hi):  # stage 2 needs room under the cap: the largest stage-1 total that leaves it
            lo = 0.0
            for _ in range(60):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if fits(mid) else (lo, mid)
            total, limited_by = lo, f"{limited_by} (with stage 2)"
        total = math.floor(total)
        if total <= 0:  # stage 2 alone needs more than the cap allows: no stage 1 at all
            s2 = target.stage2.tokens
            raise MixError(f"stage 2's {s2:,} tokens leave no room for stage 1 under the epoch cap (limited by {limited_by}): "
                           "lower stage2.tokens, or add data" if s2 else
                           f"the sources allow no stage-1 tokens under the epoch cap (limited by {limited_by}): add data")
        taken = _stage1(sources, target, total)
        stage2 = _stage2(sources, target, total, taken)
    report = _report(sources, target, int(total), taken, stage2, limited_by)
    if not report["weights"]:  # the trainer would train unweighted without a word
        raise MixError(f"the mix takes no tokens from any source (stage 1: {int(total):,} tokens): add data or raise total_tokens")
    return report


def _report(sources: list[Source], target: Target, total: int, taken: dict[str, float], stage2: dict | None, limited_by: str | None) -> dict:
    ints = {n: int(math.floor(v)) for n, v in taken.items()}
    grand = sum(ints.values()) or 1
    used = stage2.pop("_used") if stage2 else {}
    rows = []
    for s in sources:
        rows.append({
            "name": s.name, "lang": s.lang, "tier": s.tier, "stem": s.stem, "available_tokens": s.tokens,
            **({"manifest": s.manifest} if s.manifest else {}),
            "epochs": round(taken[s.name] / s.tokens, 9) if s.tokens else 0.0,
            "tokens": ints[s.name],
            "weight": round(ints[s.name] / grand, 9),
            "epochs_total": round((taken[s.name] + used.get(s.name, 0.0)) / s.tokens, 9) if s.tokens else 0.0,
        })
    achieved = {lang: round(sum(ints[s.name] for s in sources if s.lang == lang) / grand, 6) for lang in LANGS}
    weights = {r["name"]: r["weight"] for r in rows if r["weight"] > 0}
    schedule: list = [[0, weights]] + ([[p["start"], p["weights"]] for p in stage2["phases"]] if stage2 else [])
    return {
        "version": 1,
        "target": {k: round(v, 9) for k, v in target.shares.items()},
        "total_tokens": total,
        **({"limited_by": limited_by} if limited_by else {}),
        "max_epochs": target.max_epochs,
        "achieved": achieved,
        "sources": rows,
        "weights": weights,
        "stage2": stage2,
        "schedule": schedule,
    }


def make_mix(sources_path: str, target_path: str | None = None) -> dict:
    return solve(load_sources(sources_path), load_target(target_path))


def write_mix(sources_path: str, target_path: str | None, out: str) -> dict:
    from skypile.io import atomic_write_text

    mix = make_mix(sources_path, target_path)
    atomic_write_text(out, json.dumps(mix, indent=2) + "\n")
    return mix


def trainer_settings(mix_path: str) -> tuple[dict, list]:
    """``(data_weights, mix_schedule)`` for the trainer from a ``mix.json``."""
    try:
        with open(mix_path, encoding="utf-8") as f:
            mix = json.load(f)
        return dict(mix["weights"]), [list(p) for p in mix["schedule"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MixError(f"cannot read mix {mix_path}: {exc}") from None
