#!/usr/bin/env python
"""Training throughput and MFU of the trainer's real step on one device.

Runs exactly what ``skypile-train`` runs per step -- the model from
``trainer/model.py`` built on meta, ``parallelize()`` (activation checkpointing /
``torch.compile`` / FSDP2 with bf16 params and fp32 gradient reduction), AdamW
(fused on CUDA), gradient clipping -- on synthetic tokens, so it needs nothing
but torch and this repository (no data, no tokenizer, no network, no flash_attn).

    python bench/train_gpu.py --config 1b --seq-len 4096 --batch-size 4 --compile
    python bench/train_gpu.py --config tiny --seq-len 128 --batch-size 2 --steps 3 --device cpu   # CPU smoke test

MFU = tokens/s x FLOPs/token / peak, with FLOPs/token = 6N + 12*L*H*Q*T
(``trainer/model.py``; N excludes the embedding table) and the peak by device
(``model.peak_tflops_for``: A100/A800 312, H100 SXM / H200 989 dense bf16;
``--peak-tflops`` overrides).  On CUDA with attention=sdpa one SDPA kernel is
forced (``--sdpa-backend``, cuDNN by default); flash_attn is used when installed
and ``--attention auto``.  One device means nothing to shard, so FSDP2 keeps
parameters gathered (``reshard_after_forward=False``, the trainer's ``auto``).
Results print as one JSON object and are written to ``--out`` (default
``$OUT/train_gpu-<config>.json`` when ``$OUT`` is set, else ``bench/results/``).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as _dt
import gc
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
try:  # installed package (pip install -e .)
    from skypile.trainer import config as C, model as M, parallelize as P
except ImportError:  # bare checkout: these trainer modules use relative imports and need only torch
    sys.path.insert(0, str(REPO))
    from trainer import config as C, model as M, parallelize as P  # type: ignore[no-redef]


def init_group(device: str) -> torch.device:
    """A 1-process group (FSDP2 needs one), on the requested device."""
    import tempfile

    import torch.distributed as dist

    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but CUDA is not available")
    dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        if "RANK" in os.environ:
            dist.init_process_group("cpu:gloo,cuda:nccl" if use_cuda else "gloo")
        else:
            store = tempfile.NamedTemporaryFile(prefix="train-gpu-store-", delete=False).name
            atexit.register(lambda: os.path.exists(store) and os.unlink(store))
            dist.init_process_group("cpu:gloo,cuda:nccl" if use_cuda else "gloo", init_method=f"file://{store}",
                                    rank=0, world_size=1)
    return dev


def build(cfg, dev: torch.device, args):
    model = M.build_model(cfg.model, "meta")
    mesh = P.build_mesh(dev.type, 1)
    P.parallelize(model, mesh, param_dtype=args.dtype, reduce_dtype="float32",
                  activation_checkpointing=args.ac, ac_mode=args.ac_mode, compile=args.compile,
                  reshard_after_forward=args.reshard_after_forward)
    args.reshard_resolved = P.resolve_reshard(args.reshard_after_forward, mesh)
    model.to_empty(device=dev)
    model.init_weights(0)
    attn = model.set_attention(args.attention)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, fused=dev.type == "cuda")
    return model, opt, attn


def attention_context(dev: torch.device, attn: str, sdpa_backend: str):
    if dev.type != "cuda" or attn != "sdpa" or sdpa_backend == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
               "efficient": SDPBackend.EFFICIENT_ATTENTION}[sdpa_backend]
    return sdpa_kernel([backend])


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def run(cfg, dev, args, batch_size: int) -> dict:
    model, opt, attn = build(cfg, dev, args)
    vocab, seq = cfg.model.vocab_size, args.seq_len
    gen = torch.Generator(device=dev).manual_seed(0)
    batches = [torch.randint(0, vocab, (batch_size, seq + 1), device=dev, generator=gen) for _ in range(4)]
    ctx = attention_context(dev, attn, args.sdpa_backend)

    def step(i: int) -> torch.Tensor:
        b = batches[i % len(batches)]
        logits = model(b[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), b[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    with ctx:
        t0 = time.perf_counter()
        for i in range(args.warmup):
            loss = step(i)
        sync(dev)
        warmup_s = time.perf_counter() - t0
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        times = []
        t_start = time.perf_counter()
        for i in range(args.steps):
            t = time.perf_counter()
            loss = step(args.warmup + i)
            if args.sync_each_step:
                sync(dev)
                times.append(time.perf_counter() - t)
        sync(dev)
        elapsed = time.perf_counter() - t_start
    final_loss = loss.item()
    tokens = batch_size * seq * args.steps
    fpt = M.flops_per_token(cfg.model, seq)
    tps = tokens / elapsed
    result = {
        "tokens_per_s": tps,
        "tflops": tps * fpt / 1e12,
        "mfu": tps * fpt / (args.peak_tflops * 1e12) if args.peak_tflops else None,
        "step_time_s": elapsed / args.steps,
        "step_time_median_s": sorted(times)[len(times) // 2] if times else None,
        "warmup_s": warmup_s,
        "flops_per_token": fpt,
        "final_loss": final_loss,
        "batch_size": batch_size,
        "reshard_after_forward_resolved": args.reshard_resolved,
        "attention": attn if attn != "sdpa" or dev.type != "cuda" else f"sdpa[{args.sdpa_backend}]",
    }
    if dev.type == "cuda":
        result["max_mem_alloc_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
        result["max_mem_reserved_gib"] = torch.cuda.max_memory_reserved(dev) / 2**30
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="1b")
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=0,
                    help="micro batch; halved on OOM down to 1 (0: 8 on cards with >= 120 GiB, else 4)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps (compilation happens here)")
    ap.add_argument("--compile", action="store_true", help="torch.compile each block")
    ap.add_argument("--ac", action="store_true", help="activation checkpointing (see --ac-mode)")
    ap.add_argument("--ac-mode", default="full", help="full | every:K | op (selective)")
    ap.add_argument("--reshard-after-forward", default="auto", help="auto (False on one device) | true | false")
    ap.add_argument("--dtype", default="bfloat16", help="FSDP2 param (compute) dtype")
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--attention", default="auto", choices=M.ATTENTION_BACKENDS)
    ap.add_argument("--sdpa-backend", default="cudnn", choices=["flash", "cudnn", "efficient", "auto"],
                    help="SDPA kernel forced on CUDA (auto: let torch pick)")
    ap.add_argument("--peak-tflops", type=float, default=0.0,
                    help="dense bf16 peak per device; 0: by device name (A100/A800 312, H100/H200 989)")
    ap.add_argument("--sync-each-step", action="store_true", help="also time every step (adds a sync per step)")
    ap.add_argument("--out", help="JSON result path")
    ap.add_argument("--tag", default="", help="free text stored with the result")
    ap.add_argument("overrides", nargs="*", help="config key=value overrides, e.g. model.n_layers=2")
    args = ap.parse_args(argv)

    cfg = C.apply_overrides(C.get_config(args.config), args.overrides)
    if cfg.model.vocab_size <= 0:  # tiny takes its vocab from data; synthetic tokens need one
        cfg.model.vocab_size = 4096
    if args.seq_len > cfg.model.max_seq_len:
        cfg.model.max_seq_len = args.seq_len
    dev = init_group(args.device)
    # bf16 compute; the few fp32 matmuls may use TF32 (the current API: allow_tf32 is deprecated).
    if dev.type == "cuda" and hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision = "tf32"
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else None
    args.peak_tflops = M.peak_tflops_for(name, args.peak_tflops) or 0.0
    total_gib = torch.cuda.get_device_properties(dev).total_memory / 2**30 if dev.type == "cuda" else 0.0
    if args.batch_size <= 0:
        args.batch_size = 8 if total_gib >= 120 else 4

    info = {
        "benchmark": "train_gpu",
        "config": args.config,
        "overrides": args.overrides,
        "seq_len": args.seq_len,
        "params": M.num_params(cfg.model),
        "params_non_embedding": M.num_params(cfg.model, embedding=False),
        "dtype": args.dtype,
        "compile": args.compile,
        "activation_checkpointing": args.ac,
        "ac_mode": args.ac_mode if args.ac else None,
        "reshard_after_forward": args.reshard_after_forward,
        "sdpa_backend": args.sdpa_backend,
        "micro_batch_requested": args.batch_size,
        "peak_tflops": args.peak_tflops or None,
        "device": name or platform.processor() or "cpu",
        "device_memory_gib": round(total_gib, 1),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "flash_attn_installed": M.flash_attn_available(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tag": args.tag,
    }
    batch, result, oom = args.batch_size, None, []
    while result is None:
        try:
            result = run(cfg, dev, args, batch)
        except torch.OutOfMemoryError:
            oom.append(batch)
        if result is None:  # outside the except block, so the traceback no longer pins the model
            gc.collect()
            torch.cuda.empty_cache()
            if batch == 1:
                raise SystemExit("out of memory at micro batch 1: try --ac")
            batch //= 2
            print(f"OOM at micro batch {oom[-1]}; retrying with {batch}", file=sys.stderr, flush=True)
    info.update(result, oom_batch_sizes=oom)
    text = json.dumps(info, indent=2)
    print(text)
    mfu = f"MFU {100 * info['mfu']:.1f}% of {args.peak_tflops:.0f}" if info["mfu"] is not None else "MFU n/a"
    print(f"RESULT {info['device']} {args.config} seq={args.seq_len} batch={info['batch_size']} "
          f"compile={args.compile} attention={info['attention']}: {info['tokens_per_s']:.0f} tokens/s, "
          f"{info['tflops']:.1f} TFLOP/s, {mfu}", flush=True)

    out = args.out
    if not out:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", info["device"]).strip("-").lower() or "device"
        name = f"train_gpu-{args.config}-{slug}{'-compile' if args.compile else ''}.json"
        out = str(Path(os.environ["OUT"]) / name) if os.environ.get("OUT") else str(REPO / "bench" / "results" / name)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text + "\n")
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
