"""Activation checkpointing, then ``torch.compile``, then FSDP2, in torchtitan's order.

Each transformer block is wrapped (checkpoint), compiled and sharded as its own
FSDP2 unit; the root module (embedding, final norm, output head) is the last
unit.  Parameters are kept sharded in fp32 (the optimizer's master weights);
FSDP2 all-gathers them in ``param_dtype`` for compute and reduce-scatters
gradients in ``reduce_dtype``.

CPU / gloo: FSDP2's all-gather (bf16 or fp32) and reduce-scatter run on the gloo
backend in torch 2.13 (checked by the 2-process tests), so the same code path is
used on CPU and GPU; only the device mesh's device type differs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def to_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; choose from {sorted(DTYPES)}") from None


def apply_activation_checkpointing(model: nn.Module) -> None:
    """Full activation checkpointing of every block (recompute the block in backward)."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    for i, block in enumerate(model.layers):
        model.layers.register_module(str(i), checkpoint_wrapper(block, preserve_rng_state=False))


def apply_compile(model: nn.Module) -> None:
    """Compile each block separately: identical blocks share one compiled graph, and FSDP hooks stay outside it."""
    for i, block in enumerate(model.layers):
        model.layers.register_module(str(i), torch.compile(block, fullgraph=True))


def apply_fsdp(model: nn.Module, mesh: DeviceMesh, *, param_dtype: torch.dtype, reduce_dtype: torch.dtype) -> None:
    mp = MixedPrecisionPolicy(
        param_dtype=None if param_dtype == torch.float32 else param_dtype,
        reduce_dtype=None if reduce_dtype == torch.float32 and param_dtype == torch.float32 else reduce_dtype,
    )
    n = len(model.layers)
    for i, block in enumerate(model.layers):
        # The last block's params are needed again right away by backward: keep them gathered.
        fully_shard(block, mesh=mesh, mp_policy=mp, reshard_after_forward=i < n - 1)
    fully_shard(model, mesh=mesh, mp_policy=mp)


def parallelize(
    model: nn.Module,
    mesh: DeviceMesh,
    *,
    param_dtype: str = "bfloat16",
    reduce_dtype: str = "float32",
    activation_checkpointing: bool = False,
    compile: bool = False,
) -> nn.Module:
    """Apply AC, compile and FSDP2 in place (model still on meta is fine) and return it."""
    if activation_checkpointing:
        apply_activation_checkpointing(model)
    if compile:
        apply_compile(model)
    apply_fsdp(model, mesh, param_dtype=to_dtype(param_dtype), reduce_dtype=to_dtype(reduce_dtype))
    return model
