"""A LLaMA-style decoder in one file: RoPE, RMSNorm pre-norm, SwiGLU, no biases.

Built on the meta device and materialized later (after FSDP sharding) by
:meth:`Transformer.init_weights`, which draws every parameter from a generator
seeded by ``(seed, parameter name)``: the initial weights are the same for any
world size, with or without activation checkpointing or ``torch.compile``.

FLOPs per token (training, forward + backward) used for MFU::

    6 * N  +  12 * L * H * Q * T

``N``: parameters that take part in matmuls (everything but the token embedding
table, which is a lookup; the untied output head is included); ``L`` layers,
``H`` heads, ``Q`` head dim, ``T`` sequence length.  The second term is the
attention score and value matmuls (``QK^T`` and ``PV``: 2 * 2 * T * H * Q per
token per layer forward, x3 for forward + backward).  This is the PaLM /
torchtitan convention; it counts the full ``T x T`` score matrix although a
causal kernel skips the masked half, so it overstates the attention work by up
to 2x, as every published MFU figure using it does.
"""

from __future__ import annotations

import math
import zlib

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig, TrainConfigError

try:  # FlashAttention-2 (optional; layout (B, T, H, D))
    from flash_attn import flash_attn_func as _flash_attn_func
except Exception:  # ImportError, or a build that does not match this torch/CUDA
    _flash_attn_func = None

ATTENTION_BACKENDS = ("auto", "flash", "sdpa", "reference")


def flash_attn_available() -> bool:
    return _flash_attn_func is not None


def resolve_attention(backend: str, device: torch.device | str | None = None) -> str:
    """``auto``: flash_attn when importable and on CUDA, else SDPA (flash kernel on GPU, math/flash-CPU on CPU)."""
    if backend not in ATTENTION_BACKENDS:
        raise TrainConfigError(f"attention must be one of {ATTENTION_BACKENDS}, got {backend!r}")
    if backend == "auto":
        on_cuda = device is not None and torch.device(device).type == "cuda"
        return "flash" if (flash_attn_available() and on_cuda) else "sdpa"
    if backend == "flash" and not flash_attn_available():
        raise RuntimeError("attention=flash but flash_attn is not importable")
    return backend


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str) -> torch.Tensor:
    """Causal attention; q, k, v and the result are (batch, seq, heads, head_dim)."""
    if backend == "flash":
        return _flash_attn_func(q, k, v, causal=True)
    if backend == "sdpa":
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        return out.transpose(1, 2)
    if backend == "reference":  # explicit softmax in fp32: the ground truth the others are tested against
        qf, kf, vf = (t.transpose(1, 2).float() for t in (q, k, v))
        scores = qf @ kf.transpose(-2, -1) / math.sqrt(q.shape[-1])
        t = q.shape[1]
        mask = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
        probs = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        return (probs @ vf).transpose(1, 2).to(q.dtype)
    raise ValueError(f"unresolved attention backend {backend!r}")


def rope_tables(head_dim: int, max_seq_len: int, theta: float, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(max_seq_len, device=device, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)  # (T, head_dim), rotate-half layout
    return angles.cos(), angles.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, T, H, D); cos/sin: (T, D).  Rotation in fp32, result in x's dtype."""
    xf = x.float()
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    return (xf * cos + _rotate_half(xf) * sin).type_as(x)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.backend = resolve_attention(cfg.attention)  # re-resolved for the real device by init_weights
        self.wq = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wo = nn.Linear(cfg.dim, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.wq(x).view(b, t, self.n_heads, self.head_dim)
        k = self.wk(x).view(b, t, self.n_heads, self.head_dim)
        v = self.wv(x).view(b, t, self.n_heads, self.head_dim)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        out = attention(q, k, v, self.backend)
        return self.wo(out.reshape(b, t, -1))


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)  # gate
        self.w3 = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)  # up
        self.w2 = nn.Linear(cfg.ffn_dim, cfg.dim, bias=False)  # down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attention_norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.attention = Attention(cfg)
        self.ffn_norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.feed_forward = FeedForward(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x), cos, sin)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def set_attention(self, backend: str) -> str:
        """Resolve ``backend`` for this model's device and use it in every layer (the one switch)."""
        resolved = resolve_attention(backend, self.rope_cos.device)
        for module in self.modules():
            if isinstance(module, Attention):
                module.backend = resolved
        return resolved

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) int64 -> logits (B, T, vocab) in the compute dtype."""
        return self.output(self.hidden(tokens))

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) -> the final normed hidden states (B, T, dim): ``output`` of them is the logits.
        Scoring applies the output head to a few positions at a time (bounded memory for any vocabulary)."""
        t = tokens.shape[1]
        if t > self.cfg.max_seq_len:
            raise ValueError(f"sequence length {t} > max_seq_len {self.cfg.max_seq_len}")
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        h = self.tok_embeddings(tokens)
        for layer in self.layers:
            h = layer(h, cos, sin)
        return self.norm(h)

    @torch.no_grad()
    def init_weights(self, seed: int = 0) -> None:
        """Materialize parameters and buffers (call after ``to_empty``); see the module docstring."""
        cfg = self.cfg
        device = self.rope_cos.device
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta, device=device)
        self.rope_cos.copy_(cos)
        self.rope_sin.copy_(sin)
        out_std = cfg.init_std / math.sqrt(2 * cfg.n_layers)  # residual-branch outputs (GPT-2 scaling)
        for name, param in self.named_parameters():
            name = canonical_name(name)
            if "norm" in name:
                full = torch.ones(param.shape, device=device)
            else:
                std = out_std if name.endswith(("wo.weight", "w2.weight")) else cfg.init_std
                gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
                full = torch.empty(param.shape, device=device).normal_(0.0, std, generator=gen)
            _copy_full(param, full)
        self.set_attention(cfg.attention)


def canonical_name(name: str) -> str:
    """Parameter name without activation-checkpoint / compile / FSDP wrapper prefixes."""
    for wrapper in ("_checkpoint_wrapped_module.", "_orig_mod.", "_fsdp_wrapped_module."):
        name = name.replace(wrapper, "")
    return name


def _copy_full(param: torch.Tensor, full: torch.Tensor) -> None:
    """Copy a full (unsharded) tensor into ``param``, which may be an FSDP2 DTensor shard."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(param, DTensor):
        full = distribute_tensor(full.to(param.dtype), param.device_mesh, param.placements, src_data_rank=None)
    param.copy_(full)


def num_params(cfg: ModelConfig, *, embedding: bool = True) -> int:
    """Closed-form parameter count (what ``sum(p.numel())`` must equal)."""
    d, f, v, n = cfg.dim, cfg.ffn_dim, cfg.vocab_size, cfg.n_layers
    block = 4 * d * d + 3 * d * f + 2 * d  # wq wk wv wo, w1 w2 w3, two RMSNorm gains
    total = n * block + d + v * d  # + final norm + output head
    return total + (v * d if embedding else 0)


def flops_per_token(cfg: ModelConfig, seq_len: int) -> int:
    """Training FLOPs per token: ``6 * N + 12 * L * H * Q * T`` (see the module docstring)."""
    return 6 * num_params(cfg, embedding=False) + 12 * cfg.n_layers * cfg.n_heads * cfg.head_dim * seq_len


def build_model(cfg: ModelConfig, device: str | torch.device = "meta") -> Transformer:
    with torch.device(device):
        return Transformer(cfg)


# Dense bf16 peak TFLOP/s per device, matched in order against the CUDA device name (upper case).
PEAK_TFLOPS = (("H100 PCIE", 756.0), ("H100 NVL", 835.0), ("H200", 989.0), ("H100", 989.0), ("H800", 989.0),
               ("GH200", 989.0), ("A800", 312.0), ("A100", 312.0))


def peak_tflops_for(device_name: str | None, override: float = 0.0) -> float | None:
    """MFU's denominator: ``override`` when > 0, else the table entry for the device, else ``None``
    (a CPU or an unlisted GPU: no MFU is reported rather than one against the wrong peak)."""
    if override and override > 0:
        return float(override)
    name = (device_name or "").upper()
    for key, value in PEAK_TFLOPS:
        if key in name:
            return value
    return None
