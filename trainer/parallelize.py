"""Activation checkpointing, then ``torch.compile``, then FSDP2 / HSDP, in torchtitan's order.

**Mesh.**  :func:`build_mesh` makes a 2-D mesh ``(dp_replicate, dp_shard)``: parameters are
sharded over ``dp_shard`` ranks (one node's GPUs, NVLink) and replicated over ``dp_replicate``
groups (across nodes), so each node all-gathers inside itself and only the gradient
all-reduce of one shard crosses the network (HSDP).  ``dp_replicate = 1`` is plain FSDP.

**Units.**  Each transformer block is its own FSDP2 unit; so are the token embedding and
``[norm, output]`` (torchtitan's layout), which keeps the root unit empty: the 2 x vocab x dim
embedding and head parameters are gathered only around their own use, not for the whole
forward.  The last block and ``[norm, output]`` are not resharded after forward (backward needs
them at once); ``reshard_after_forward=False`` everywhere is the right choice on one device,
where there is nothing to gather.

**Activation checkpointing.**  ``full`` recomputes every block in backward; ``every:K``
only every K-th block (less recompute, more memory); ``op`` keeps every block but saves the
outputs of the matmuls and of attention and recomputes only the cheap pointwise ops (norms,
RoPE, SiLU), torchtitan's selective op-level policy.

Parameters are kept sharded in fp32 (the optimizer's master weights); FSDP2 all-gathers them
in ``param_dtype`` for compute and reduce-scatters gradients in ``reduce_dtype``.  CPU / gloo:
all of this (HSDP's all-reduce included) runs on the gloo backend in torch 2.13, which the
multi-process tests use.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from .config import TrainConfigError

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}
AC_MODES = ("full", "every:K", "op")


def to_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise TrainConfigError(f"unknown dtype {name!r}; choose from {sorted(DTYPES)}") from None


def mesh_shape(world_size: int, dp_shard: int = -1, dp_replicate: int = 1) -> tuple[int, int]:
    """``(dp_replicate, dp_shard)`` for this world size; a clear error when they do not multiply to it."""
    if dp_replicate < 1:
        raise TrainConfigError(f"dp_replicate must be >= 1, got {dp_replicate}")
    if dp_shard in (-1, 0):
        if world_size % dp_replicate:
            raise TrainConfigError(f"world size {world_size} is not divisible by dp_replicate {dp_replicate}")
        dp_shard = world_size // dp_replicate
    if dp_shard * dp_replicate != world_size:
        raise TrainConfigError(f"dp_replicate {dp_replicate} x dp_shard {dp_shard} != world size {world_size}")
    return dp_replicate, dp_shard


def build_mesh(device_type: str, world_size: int, dp_shard: int = -1, dp_replicate: int = 1) -> DeviceMesh:
    """1-D FSDP mesh when ``dp_replicate == 1``, else the 2-D HSDP mesh ``(dp_replicate, dp_shard)``."""
    rep, shard = mesh_shape(world_size, dp_shard, dp_replicate)
    if rep == 1:
        return init_device_mesh(device_type, (shard,), mesh_dim_names=("dp_shard",))
    return init_device_mesh(device_type, (rep, shard), mesh_dim_names=("dp_replicate", "dp_shard"))


def parse_ac_mode(mode: str) -> tuple[str, int]:
    """``full`` -> ("full", 1); ``every:K`` -> ("every", K); ``op`` -> ("op", 1)."""
    if mode == "full":
        return "full", 1
    if mode == "op":
        return "op", 1
    if mode.startswith("every:"):
        try:
            k = int(mode.split(":", 1)[1])
        except ValueError:
            k = 0
        if k >= 1:
            return "every", k
    raise TrainConfigError(f"ac_mode must be one of {AC_MODES} (K >= 1), got {mode!r}")


def _op_policy():
    """Selective checkpoint policy: save matmul and attention outputs, recompute the rest."""
    from torch.utils.checkpoint import CheckpointPolicy

    aten = torch.ops.aten
    save = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.linear.default}
    for name in ("_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
                 "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_flash_attention_for_cpu"):
        op = getattr(aten, name, None)
        if op is not None:
            save.add(op.default)

    def policy(ctx, op, *args, **kwargs):
        return CheckpointPolicy.MUST_SAVE if op in save else CheckpointPolicy.PREFER_RECOMPUTE

    return policy


def apply_activation_checkpointing(model: nn.Module, mode: str = "full") -> None:
    """Wrap blocks for recomputation in backward (see the module docstring for the modes)."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    kind, every = parse_ac_mode(mode)
    kwargs = {}
    if kind == "op":
        from torch.utils.checkpoint import create_selective_checkpoint_contexts

        kwargs["context_fn"] = functools.partial(create_selective_checkpoint_contexts, _op_policy())
    for i, block in enumerate(model.layers):
        if i % every == 0:
            model.layers.register_module(str(i), checkpoint_wrapper(block, preserve_rng_state=False, **kwargs))


def apply_compile(model: nn.Module) -> None:
    """Compile each block separately: identical blocks share one compiled graph, and FSDP hooks stay outside it."""
    for i, block in enumerate(model.layers):
        model.layers.register_module(str(i), torch.compile(block, fullgraph=True))


def resolve_reshard(value: str | bool, mesh: DeviceMesh) -> bool:
    """``auto``: reshard after forward unless parameters are not sharded at all (one device per replica)."""
    if isinstance(value, bool):
        return value
    v = str(value).lower()
    if v == "auto":
        return mesh.size(-1) > 1
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise TrainConfigError(f"reshard_after_forward must be auto | true | false, got {value!r}")


def apply_fsdp(model: nn.Module, mesh: DeviceMesh, *, param_dtype: torch.dtype, reduce_dtype: torch.dtype,
               reshard_after_forward: bool = True) -> None:
    mp = MixedPrecisionPolicy(
        param_dtype=None if param_dtype == torch.float32 else param_dtype,
        reduce_dtype=None if reduce_dtype == torch.float32 and param_dtype == torch.float32 else reduce_dtype,
    )
    shard = functools.partial(fully_shard, mesh=mesh, mp_policy=mp)
    shard(model.tok_embeddings, reshard_after_forward=reshard_after_forward)
    n = len(model.layers)
    for i, block in enumerate(model.layers):
        # The last block's params are needed again right away by backward: keep them gathered.
        shard(block, reshard_after_forward=reshard_after_forward and i < n - 1)
    shard([model.norm, model.output], reshard_after_forward=False)
    shard(model)  # the root: owns no parameters now, drives the units' lazy init and prefetch


def parallelize(
    model: nn.Module,
    mesh: DeviceMesh,
    *,
    param_dtype: str = "bfloat16",
    reduce_dtype: str = "float32",
    activation_checkpointing: bool = False,
    ac_mode: str = "full",
    compile: bool = False,
    reshard_after_forward: str | bool = True,
) -> nn.Module:
    """Apply AC, compile and FSDP2 / HSDP in place (model still on meta is fine) and return it."""
    if activation_checkpointing:
        apply_activation_checkpointing(model, ac_mode)
    if compile:
        apply_compile(model)
    apply_fsdp(model, mesh, param_dtype=to_dtype(param_dtype), reduce_dtype=to_dtype(reduce_dtype),
               reshard_after_forward=resolve_reshard(reshard_after_forward, mesh))
    return model
