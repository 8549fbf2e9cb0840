"""Model and training configuration: dataclasses, named presets, ``key=value`` overrides.

``skypile-train --config tiny data=/path/to/shards steps=200 model.n_layers=4``
(``data=a,b`` or ``--data a b``: several shard directories)

An override names a field of :class:`TrainConfig` (``steps=...``) or of
:class:`ModelConfig` (``model.dim=...``, or just ``dim=...`` when the name is
not also a TrainConfig field).  Values are parsed by the field's type; dict
and list fields take JSON (``data_weights='{"web/en": 0.7, "code": 0.3}'``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from typing import Any

from skypile.errors import UserError


class TrainConfigError(UserError):
    """A training config the user can fix (unknown preset or key, a value of the wrong type or out of range)."""


def ffn_hidden(dim: int, multiple_of: int = 256, multiplier: float = 8 / 3) -> int:
    """SwiGLU width: ``8/3 * dim`` rounded up to a multiple (LLaMA's rule)."""
    return multiple_of * math.ceil(multiplier * dim / multiple_of)


@dataclass
class ModelConfig:
    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    vocab_size: int = 65536  # 0: take the tokenizer's vocab from the data manifest (rounded up to 64)
    ffn_dim: int = 0  # 0: ffn_hidden(dim, multiple_of)
    multiple_of: int = 256
    max_seq_len: int = 4096
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    attention: str = "auto"  # auto | flash | sdpa | reference
    init_std: float = 0.02

    def __post_init__(self) -> None:
        if self.ffn_dim <= 0:
            self.ffn_dim = ffn_hidden(self.dim, self.multiple_of)
        if self.dim % self.n_heads:
            raise TrainConfigError(f"dim {self.dim} is not divisible by n_heads {self.n_heads}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads


@dataclass
class TrainConfig:
    name: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    # -- data
    data: list[str] = field(default_factory=list)  # shard dirs holding manifest.json (or their shards/ folders); data=a,b
    data_weights: dict | None = None  # source column -> weight; None = stream shards as written
    mix_schedule: list | None = None  # [[start_token, {source: weight} | null], ...]; overrides data_weights
    mix: str = ""  # mix.json from `skypile mix`: data_weights, mix_schedule (stage 1 + stage-2 STEM ramp), and without
    #                data, its sources' shard directories
    num_workers: int = 0  # dataloader workers per rank (each is one reader of the shard split)
    tokenizer: str = ""  # SentencePiece model; default: manifest's tokenizer model path (validation only)
    # -- batch
    seq_len: int = 4096
    micro_batch_size: int = 1
    grad_accum: int = 1
    global_batch_tokens: int = 0  # >0: grad_accum = this / (micro_batch_size * seq_len * world_size)
    steps: int = 0  # stop after this global step; 0 = (stage1_tokens + stage2_tokens) / tokens per step
    # -- optimizer and schedule (Skywork-13B paper)
    lr: float = 6e-4
    min_lr: float = 6e-5
    warmup_steps: int = 2000
    stage1_tokens: int = 0  # cosine decay lr -> min_lr over this many tokens; 0 = the whole run
    stage2_tokens: int = 0  # constant min_lr afterwards
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    # -- parallelism and precision
    device: str = "auto"  # auto | cuda | cpu
    param_dtype: str = "bfloat16"  # compute dtype of FSDP's unsharded params; master weights stay fp32
    reduce_dtype: str = "float32"  # gradient reduce-scatter dtype
    activation_checkpointing: bool = False
    ac_mode: str = "full"  # with activation_checkpointing: full | every:K (every K-th block) | op (selective, per op)
    compile: bool = False
    seed: int = 0
    # HSDP mesh (dp_replicate x dp_shard = world): shard inside a node, replicate across nodes
    dp_shard: int = -1  # -1: world_size // dp_replicate
    dp_replicate: int = 1
    reshard_after_forward: str = "auto"  # auto (not when dp_shard == 1) | true | false
    # micro-batches before the last of a step: skip_all_reduce (HSDP: no cross-node all-reduce, grads stay
    # sharded) | skip (no gradient reduction at all: + 4 bytes/param of unsharded grads) | every
    grad_sync: str = "skip_all_reduce"
    # -- bad data and checkpoints
    bad_data: str = "error"  # error: stop naming file and row | skip: drop bad documents / row groups, counted
    verify_sha256: bool = False  # hash every shard against the manifest at start (ranks split the work)
    reset_data_position: bool = False  # resume with a different world size / workers: restart the data stream
    # -- output
    run_dir: str = ""  # default runs/<name> under the working directory (config.json stores it absolute)
    log_every: int = 1
    ckpt_every: int = 0  # 0 = only at the end
    keep_ckpts: int = 3
    resume: str = "auto"  # auto (latest in run_dir) | none | path to a step-* dir
    # -- validation
    val_sets: dict = field(default_factory=dict)  # name -> shard dir | .jsonl[.gz] | .txt
    val_every: int = 0  # 0 = never (except at the end when val_sets is set)
    val_windows: int = 16  # windows of seq_len+1 tokens per set
    peak_tflops: float = 0.0  # per device, dense bf16, for MFU; 0 = by device name (A100/A800 312, H100/H200 989)

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ModelConfig(**self.model)
        if isinstance(self.data, str):  # one directory (configs written before data became a list)
            self.data = [self.data] if self.data else []

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _tiny() -> TrainConfig:
    return TrainConfig(
        name="tiny",
        model=ModelConfig(dim=64, n_layers=2, n_heads=4, vocab_size=0, multiple_of=32, max_seq_len=512),
        seq_len=128,
        micro_batch_size=4,
        steps=40,
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=5,
        device="cpu",
        param_dtype="float32",
        log_every=1,
        val_windows=4,
    )


def _1b() -> TrainConfig:
    # 18 x (4*2048^2 + 3*2048*5632) = 0.925B block params + 2 x 134M embedding/head = 1.19B.
    return TrainConfig(
        name="1b",
        model=ModelConfig(dim=2048, n_layers=18, n_heads=16, vocab_size=65536, max_seq_len=4096),
        seq_len=4096,
        micro_batch_size=4,
        warmup_steps=2000,
        stage1_tokens=100_000_000_000,
        global_batch_tokens=4 * 1024 * 1024,
        ckpt_every=1000,
        val_every=500,
    )


def _skywork_13b() -> TrainConfig:
    # Skywork-13B: 52 layers, hidden 4608, 36 heads, FFN 12288, vocab 65,536, context 4096.
    # Stage 1: 2T tokens of SkyPile general data; stage 2: 130B STEM-weighted tokens at constant lr.
    # The 16M-token global batch and 2000 warmup steps are our choices, not numbers from the paper.
    return TrainConfig(
        name="skywork-13b",
        model=ModelConfig(dim=4608, n_layers=52, n_heads=36, vocab_size=65536, ffn_dim=12288, max_seq_len=4096),
        seq_len=4096,
        micro_batch_size=1,
        global_batch_tokens=16 * 1024 * 1024,
        warmup_steps=2000,
        stage1_tokens=2_000_000_000_000,
        stage2_tokens=130_000_000_000,
        activation_checkpointing=True,
        compile=True,
        ckpt_every=500,
        val_every=1000,
    )


PRESETS = {"tiny": _tiny, "1b": _1b, "skywork-13b": _skywork_13b}


def get_config(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise TrainConfigError(f"unknown --config {name!r}; choose from {', '.join(sorted(PRESETS))}")
    return PRESETS[name]()


def _parse_value(raw: str, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or (origin is not None and type(None) in args):  # X | None
        if raw.lower() in ("none", "null", ""):
            return None
        inner = [a for a in args if a is not type(None)]
        return _parse_value(raw, inner[0])
    if tp is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {raw!r}")
    if tp is int:
        value = float(raw) if any(c in raw for c in ".eE") else int(raw)
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"not an integer: {raw!r}")
        return int(value)
    if tp is float:
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {raw!r}")
        return value
    if tp is str:
        return raw
    if origin is list and args == (str,) and not raw.lstrip().startswith("["):
        return [part for part in raw.split(",") if part]  # data=a,b (or a JSON list)
    if tp in (dict, list) or origin in (dict, list):
        return json.loads(raw)
    raise TypeError(f"cannot parse a value of type {tp}")


def apply_overrides(cfg: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Return a copy of ``cfg`` with ``key=value`` overrides applied (see module docstring)."""
    cfg = copy.deepcopy(cfg)
    train_types = typing.get_type_hints(TrainConfig)
    model_types = typing.get_type_hints(ModelConfig)
    touched_model = False
    for item in overrides:
        if "=" not in item:
            raise TrainConfigError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        key = key.strip().lstrip("-").replace("-", "_")
        if key.startswith("model."):
            target, name, types = cfg.model, key[len("model.") :], model_types
        elif key in train_types and key != "model":
            target, name, types = cfg, key, train_types
        elif key in model_types:
            target, name, types = cfg.model, key, model_types
        else:
            raise TrainConfigError(f"unknown config key {key!r} in {item!r}")
        if name not in types:
            raise TrainConfigError(f"unknown config key {key!r} in {item!r}")
        try:
            value = _parse_value(raw, types[name])
        except (TypeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
            raise TrainConfigError(f"{key}: cannot read {raw!r} as {getattr(types[name], '__name__', types[name])} ({exc})") from None
        setattr(target, name, value)
        touched_model |= target is cfg.model
    if cfg.mix:  # the mixer's output replaces hand-given weights
        from skypile.mix import trainer_settings

        cfg.data_weights, cfg.mix_schedule = trainer_settings(cfg.mix)
    if touched_model and not any(o.split("=", 1)[0].endswith("ffn_dim") for o in overrides):
        # dim/multiple_of changed: recompute the derived FFN width unless it was given.
        defaults = get_config(cfg.name).model if cfg.name in PRESETS else ModelConfig()
        if cfg.model.dim != defaults.dim or cfg.model.multiple_of != defaults.multiple_of:
            cfg.model.ffn_dim = 0
    cfg.model.__post_init__()
    return cfg


def from_dict(d: dict) -> TrainConfig:
    d = dict(d)
    model = ModelConfig(**d.pop("model"))
    return TrainConfig(model=model, **d)
