"""``skypile-train``: pretrain the LLaMA-style model on SkyPile shards with FSDP2.

    skypile-train --config tiny --data out/web steps=100          # one process (a 1-rank group)
    skypile-train --config tiny --data out/web out/code steps=100 # several shard directories
    skypile-train --config tiny mix=mix.json steps=100            # the shards of every source of a mix, where they lie
    torchrun --nproc_per_node 8 -m skypile.trainer.train --config 1b --data ...   # one node
    (multi-node: see trainer/README.md)
    skypile-train export --checkpoint runs/x/checkpoints/step-N --out hf/   # Hugging Face LLaMA dir

Writes ``<run_dir>/metrics.jsonl`` (one JSON object per logged step or
validation), ``config.json`` (paths absolute), ``tokenizer.model`` (the run's
copy) and ``checkpoints/``; resumes from the latest checkpoint in ``run_dir``
unless ``resume=none``.  A resume on other data or with a model of another
shape is refused in one line; other ``steps`` (or LR settings) continue on the
new schedule, stated in the log.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import math
import os
import resource
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.checkpoint.api import CheckpointException  # a BaseException, not an Exception

from skypile.errors import OneLineParser, UserError, print_error
from skypile.io import check_output_dir

from .checkpoint import CheckpointError, Checkpointer, check_intact, verify_checksums
from .config import TrainConfig, TrainConfigError, apply_overrides, get_config
from .data import PackedDataset, PackedLoader, check_data, load_val_windows
from .inputs import ResumeError, absolute_paths, copy_tokenizer, data_identity, manifest_tokenizer, resolve_data
from .model import build_model, flops_per_token, num_params, peak_tflops_for
from .parallelize import build_mesh, parallelize
from .schedule import build_scheduler, decay_steps_for, describe

log = logging.getLogger("skypile.trainer")


@dataclass
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool  # we created the process group (so we destroy it)
    store: str | None = None  # FileStore of a 1-process group, removed at the end
    mesh: object | None = None  # the run's DeviceMesh: it holds the process group (see shutdown_distributed)


def init_distributed(device: str = "auto") -> Dist:
    """Join torchrun's group, or make a 1-process group so FSDP2 and DCP run unchanged."""
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise TrainConfigError("device=cuda but CUDA is not available")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    backend = "cpu:gloo,cuda:nccl" if use_cuda else "gloo"
    owns, store = False, None
    if not dist.is_initialized():
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            dist.init_process_group(backend=backend, device_id=dev if use_cuda else None)
        else:
            store = tempfile.NamedTemporaryFile(prefix="skypile-train-store-", delete=False).name
            dist.init_process_group(backend=backend, init_method=f"file://{store}", rank=0, world_size=1)
        owns = True
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank, dev, owns, store)


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    parser = OneLineParser(prog="skypile-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tiny", help="preset: tiny | 1b | skywork-13b")
    parser.add_argument("--data", nargs="+", metavar="SHARD_DIR",
                        help="shard directories (data=a,b); default with mix=mix.json: its sources' shard directories")
    parser.add_argument("--run-dir", help="shorthand for run_dir=... (default runs/<preset> under the working directory)")
    parser.add_argument("overrides", nargs="*", help="key=value (model.key=value for model fields)")
    args = parser.parse_intermixed_args(argv)  # key=value overrides may come before or after the options
    overrides = list(args.overrides)
    if args.data:
        dirs = [d for d in args.data if not _is_override(d)]  # --data a b steps=3: the override is not a directory
        overrides += [d for d in args.data if _is_override(d)]
        overrides.append("data=" + json.dumps(dirs))
    if args.run_dir:
        overrides.append(f"run_dir={args.run_dir}")
    cfg = apply_overrides(get_config(args.config), overrides)
    if not cfg.run_dir:
        cfg.run_dir = str(Path("runs") / cfg.name)
    absolute_paths(cfg)  # config.json means the same from any working directory
    return cfg


def _is_override(arg: str) -> bool:
    """``--data a b steps=3``: ``steps=3`` is an override, not a directory (so is ``stepz=3``, which
    apply_overrides then names as unknown, and a bare config key that is no path, ``steps``)."""
    import re
    import typing

    from .config import ModelConfig

    if re.match(r"^[A-Za-z_][\w.-]*=", arg):
        return True
    key = arg.removeprefix("model.")
    return not Path(arg).exists() and (key in typing.get_type_hints(TrainConfig) or key in typing.get_type_hints(ModelConfig))


def _max_memory_gib(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"mem_alloc_gib": torch.cuda.max_memory_allocated(device) / 2**30,
                "mem_reserved_gib": torch.cuda.max_memory_reserved(device) / 2**30}
    return {"mem_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}  # Linux: KiB


def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, grad_clip: float) -> tuple[float, bool]:
    """Clip and step; a non-finite gradient norm skips the update (gradients dropped) instead of
    writing NaN/Inf into the weights.  Returns ``(norm before clipping, applied)``.  The norm is the
    global one (the same on every rank), so all ranks take the same decision."""
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if hasattr(grad_norm, "full_tensor"):
        grad_norm = grad_norm.full_tensor()
    norm = grad_norm.item()
    applied = math.isfinite(norm)
    if applied:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return norm, applied


GRAD_SYNC = ("skip_all_reduce", "skip", "every")


def set_grad_sync(model, mode: str, *, last: bool) -> None:
    """Gradient reduction for the coming backward.  On micro-batches before the last of a step,
    ``skip_all_reduce`` leaves out HSDP's all-reduce across replicas (the network) and keeps the
    reduce-scatter inside a replica, so gradients stay sharded (FSDP2 adds the partial sums into
    the last micro-batch's all-reduce); ``skip`` leaves out both, holding unsharded fp32 gradients
    (4 bytes per parameter) until the last; ``every`` reduces on every micro-batch."""
    if mode == "skip_all_reduce":
        model.set_requires_all_reduce(last)
    elif mode == "skip":
        model.set_requires_gradient_sync(last)
    elif mode != "every":
        raise ValueError(f"grad_sync must be one of {GRAD_SYNC}, got {mode!r}")


def loss_fn(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(0, 1), reduction=reduction)


@torch.no_grad()
def evaluate(model, val: dict[str, torch.Tensor], *, rank: int, world: int, batch_size: int,
             device: torch.device) -> dict[str, float]:
    """Mean token loss per held-out set; windows split across ranks, same number of forwards on every rank."""
    model.eval()
    out = {}
    for name, windows in val.items():
        mine = windows[rank::world]
        per_rank = math.ceil(len(windows) / world)
        n_batches = math.ceil(per_rank / batch_size)
        total = torch.zeros(2, dtype=torch.float64, device=device)
        for b in range(n_batches):
            chunk = mine[b * batch_size : (b + 1) * batch_size]
            weight = 1.0
            if len(chunk) == 0:  # this rank ran out: run a dummy batch so FSDP collectives line up
                chunk, weight = windows[:1], 0.0
            chunk = chunk.to(device)
            loss = loss_fn(model(chunk[:, :-1]), chunk[:, 1:], reduction="sum")
            total += torch.stack([loss.double() * weight, torch.tensor(chunk[:, 1:].numel() * weight,
                                                                       dtype=torch.float64, device=device)])
        dist.all_reduce(total)
        out[name] = (total[0] / total[1]).item()
    model.train()
    return out


def train(cfg: TrainConfig) -> list[dict]:
    """Run training as configured; returns the metrics rows (rank 0; other ranks get [])."""
    env = init_distributed(cfg.device)
    rank = env.rank
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    run_dir = Path(cfg.run_dir)
    finished = False
    try:
        rows = _train(cfg, env, run_dir)  # its data loader workers are stopped when it returns or raises
        finished = True
        return rows
    except (UserError, OSError) as exc:
        if env.rank != 0 and env.world_size > 1:
            await_rank0(exc)  # with the group still up: a peer in a collective keeps waiting instead of failing loudly
        raise
    finally:
        shutdown_distributed(env, finished=finished)


USER_ERROR_GRACE_S = 5.0


def await_rank0(exc: BaseException) -> None:
    """A user error on a rank other than 0 (under torchrun): rank 0 nearly always meets the same one (config,
    data and output checks run on every rank) and says so, in one line.  Its exit makes torchrun stop the other
    ranks: SIGTERM, which then exits 2 here, quietly.  A rank still running after the grace period met an error
    of its own, and prints it (:func:`main`)."""
    if getattr(exc, "awaited", False):
        return
    exc.awaited = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGTERM, lambda *_: os._exit(2))
    time.sleep(USER_ERROR_GRACE_S)


def shutdown_distributed(env: Dist, *, finished: bool) -> None:
    """Tear the process group down here, in order, not at interpreter exit.

    ``dist.destroy_process_group()`` alone does not stop gloo: it only unregisters the group.
    ProcessGroupGloo has no ``shutdown()``; its worker threads, the transport's event-loop
    thread and its sockets go when the C++ object is freed, i.e. when the last Python reference
    goes.  The device mesh (pinned by DTensor's global caches) and the FSDP modules and optimizer
    state (reference cycles) hold it, so without help it survives until interpreter finalization
    and static destruction, where when and in which order the threads and sockets die, and
    whether the peer rank is still connected, are left to chance.

    ``finished`` (this rank completed training):
      1. barrier: every rank is past its last collective, so nothing is in flight when the
         sockets close and no rank tears down while a peer still talks to it;
      2. destroy the group, drop the mesh's reference and collect the cycles: the group's
         destructor joins gloo's threads and closes its sockets now, on this thread.
    After an error there is no barrier (the peers may be inside another collective, or gone)
    and no forced collection (joining gloo's threads would wait for a collective that may never
    complete): the group is destroyed and torchrun stops the other ranks.
    """
    try:
        if finished and env.world_size > 1 and dist.is_initialized():
            dist.barrier()
    finally:
        if env.owns_group and dist.is_initialized():
            dist.destroy_process_group()
        if finished:
            registry = getattr(env.mesh, "_pg_registry", None)  # DeviceMesh's name -> ProcessGroup
            if isinstance(registry, dict):
                registry.clear()
            env.mesh = None
            gc.collect()
        if env.store:
            with contextlib.suppress(OSError):
                os.unlink(env.store)


def _train(cfg: TrainConfig, env: Dist, run_dir: Path) -> list[dict]:
    # Resources that must not outlive the run (data loader workers, the metrics file) are
    # closed when it ends, also on error, before the process group goes.
    with contextlib.ExitStack() as resources:
        return _run(cfg, env, run_dir, resources)


def _run(cfg: TrainConfig, env: Dist, run_dir: Path, resources: contextlib.ExitStack) -> list[dict]:
    rank, world, device = env.rank, env.world_size, env.device
    data = resolve_data(cfg)  # every source the mix weights is in the data, one tokenizer, trainable shards
    check_output_dir(str(run_dir), "run_dir")  # every rank, before any work: one that cannot write fails alone
    tok = data.tokenizer
    if cfg.model.vocab_size <= 0:
        if not tok.get("vocab_size"):
            raise TrainConfigError("model.vocab_size=0 needs tokenizer.vocab_size in the manifest")
        cfg.model.vocab_size = 64 * math.ceil(int(tok["vocab_size"]) / 64)
    elif tok.get("vocab_size") and tok["vocab_size"] > cfg.model.vocab_size:
        raise TrainConfigError(f"tokenizer vocab {tok['vocab_size']} > model vocab {cfg.model.vocab_size}")
    if cfg.seq_len > cfg.model.max_seq_len:
        raise TrainConfigError(f"seq_len {cfg.seq_len} > model.max_seq_len {cfg.model.max_seq_len}")
    if cfg.grad_sync not in GRAD_SYNC:
        raise TrainConfigError(f"grad_sync must be one of {GRAD_SYNC}, got {cfg.grad_sync!r}")
    if cfg.bad_data not in ("error", "skip"):
        raise TrainConfigError(f"bad_data must be 'error' or 'skip', got {cfg.bad_data!r}")

    grad_accum = cfg.grad_accum
    if cfg.global_batch_tokens > 0:
        per_micro = cfg.micro_batch_size * cfg.seq_len * world
        grad_accum = max(1, round(cfg.global_batch_tokens / per_micro))
    tokens_per_step = cfg.micro_batch_size * cfg.seq_len * grad_accum * world
    total_steps = cfg.steps or max(1, (cfg.stage1_tokens + cfg.stage2_tokens) // tokens_per_step)
    decay_steps = decay_steps_for(cfg.stage1_tokens, tokens_per_step, total_steps)
    identity = data_identity(data)
    ckpt = Checkpointer(run_dir / "checkpoints", keep=cfg.keep_ckpts)
    saved = check_resume(cfg, ckpt, identity, run_dir)  # refuses other data or another model before any work
    tokenizer, tried = manifest_tokenizer(data.roots[0], data.manifests[0]) if not cfg.tokenizer else (cfg.tokenizer, [])

    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        if tokenizer:  # the run keeps its own copy: eval and export find it whatever happens to the original
            copy_tokenizer(tokenizer, run_dir)
        else:
            log.warning("the shards' tokenizer model is not found (tried %s): the run directory will not hold it; "
                        "skypile eval and skypile-train export will need --tokenizer", tried or "nothing")
        log.info("data: %s", "; ".join(f"{r} ({', '.join(sorted(m.get('sources', {}))) or '?'})"
                                       for r, m in zip(data.roots, data.manifests)))

    # -- model: meta -> AC / compile / FSDP2 -> materialize -> init
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, "meta")
    mesh = env.mesh = build_mesh(device.type, world, cfg.dp_shard, cfg.dp_replicate)
    parallelize(model, mesh, param_dtype=cfg.param_dtype, reduce_dtype=cfg.reduce_dtype,
                activation_checkpointing=cfg.activation_checkpointing, ac_mode=cfg.ac_mode, compile=cfg.compile,
                reshard_after_forward=cfg.reshard_after_forward)
    model.to_empty(device=device)
    model.init_weights(cfg.seed)
    attn = model.set_attention(cfg.model.attention)
    fpt = flops_per_token(cfg.model, cfg.seq_len)
    peak = peak_tflops_for(torch.cuda.get_device_name(device) if device.type == "cuda" else None, cfg.peak_tflops)
    log.info("model %s: %.1fM params (%.1fM non-embedding), attention=%s, world=%d, mesh=%s, grad_accum=%d, "
             "tokens/step=%d, steps=%d, decay_steps=%d, FLOPs/token=%.3g, peak=%s TFLOP/s", cfg.name,
             num_params(cfg.model) / 1e6, num_params(cfg.model, embedding=False) / 1e6, attn, world,
             dict(zip(mesh.mesh_dim_names, mesh.shape)), grad_accum, tokens_per_step, total_steps, decay_steps,
             fpt, peak)
    schedule_args = dict(lr=cfg.lr, min_lr=cfg.min_lr, warmup_steps=cfg.warmup_steps, decay_steps=decay_steps)
    log.info("LR schedule: %s; the run ends at step %d", describe(**schedule_args), total_steps)

    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim >= 2 else no_decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, fused=device.type == "cuda")
    scheduler = build_scheduler(optimizer, **schedule_args)

    # -- data
    schedule = cfg.mix_schedule or ([[0, cfg.data_weights]] if cfg.data_weights else None)
    problems = check_data(data, sha256_part=(rank, world) if cfg.verify_sha256 else None)
    if cfg.verify_sha256:  # each rank hashed 1/world of the shards: every rank needs every verdict
        gathered: list = [None] * world
        dist.all_gather_object(gathered, problems)
        problems = {k: v for part in gathered for k, v in part.items()}
    dataset = PackedDataset(data, seq_len=cfg.seq_len, batch_size=cfg.micro_batch_size, rank=rank,
                            world_size=world, num_workers=cfg.num_workers, seed=cfg.seed, schedule=schedule,
                            vocab_size=int(tok.get("vocab_size") or cfg.model.vocab_size), bad_data=cfg.bad_data,
                            shard_problems=problems)
    loader = resources.enter_context(
        PackedLoader(dataset, num_workers=cfg.num_workers, pin_memory=device.type == "cuda"))
    val: dict[str, torch.Tensor] = {}
    if cfg.val_sets:
        for name, spec in cfg.val_sets.items():
            val[name] = load_val_windows(spec, seq_len=cfg.seq_len, n_windows=cfg.val_windows,
                                         eos_id=dataset.eos_id, tokenizer=tokenizer)
        log.info("validation sets: %s", {k: tuple(v.shape) for k, v in val.items()})

    # -- resume
    step = skipped_steps = 0
    resume_from, state = resume(ckpt, cfg, model, optimizer, device)
    if resume_from is not None:
        step = int(state["step"])
        # The schedule is a function of the step: rebuilt at the step reached, with this run's settings
        # (a saved scheduler would run the next step at the LR the old schedule left in the optimizer).
        scheduler = build_scheduler(optimizer, **schedule_args, start_step=step)
        skipped_steps = int(state.get("skipped_steps", 0))
        saved_cfg = state["meta"].get("config", {})
        if cfg.reset_data_position:
            loader.reset_position(step * tokens_per_step)
            log.warning("data position reset on resume (reset_data_position=true): saved by world size %d on %s, now "
                        "world size %d on %s; every reader restarts its stream at global token %d (documents may repeat)",
                        state["meta"]["world_size"], _dirs(state["meta"].get("data") or saved_cfg.get("data")), world,
                        _dirs(identity), step * tokens_per_step)
        else:
            loader.load_state_dict(state["data"])
            if _weights_of(saved_cfg) != _weights_of(cfg.to_dict()):
                loader.restart_mix_phase()
                log.warning("the mix changed since step %d (data_weights / mix_schedule / mix): the shares are counted "
                            "afresh from here; the data position is kept", step)
        log.info("resumed from %s at step %d", resume_from, step)
        note_schedule_change(saved, cfg, step, schedule_args, total_steps)

    def save(at: int) -> None:
        ckpt.save(at, model, optimizer,
                  {"step": at, "scheduler": scheduler.state_dict(), "data": loader.state_dict(),
                   "skipped_steps": skipped_steps},
                  meta={"config": cfg.to_dict(), "data": identity, "total_steps": total_steps,
                        "schedule": schedule_args})

    metrics_file = resources.enter_context(open(run_dir / "metrics.jsonl", "a")) if rank == 0 else None
    rows: list[dict] = []

    def emit(row: dict) -> None:
        if metrics_file is not None:
            metrics_file.write(json.dumps(row) + "\n")
            metrics_file.flush()
            rows.append(row)

    def run_val(at: int) -> None:
        if not val:
            return
        t0 = time.perf_counter()
        losses = evaluate(model, val, rank=rank, world=world, batch_size=cfg.micro_batch_size, device=device)
        emit({"type": "val", "step": at, **{f"val/{k}": v for k, v in losses.items()},
              "val_time_s": time.perf_counter() - t0})
        log.info("step %d | val %s", at, " ".join(f"{k}={v:.4f}" for k, v in losses.items()))

    # -- loop
    if step == 0:
        run_val(0)  # the untrained baseline (about ln(vocab)) that later validation losses are read against
    model.train()
    # Throughput clock: runs during training steps only; validation and checkpoint time is paused out.
    t_last, tokens_since, paused_s = time.perf_counter(), 0, 0.0

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    last_saved = step
    while step < total_steps:
        lr = scheduler.get_last_lr()[0]
        loss_sum = torch.zeros((), device=device)
        for micro in range(grad_accum):
            set_grad_sync(model, cfg.grad_sync, last=micro == grad_accum - 1)
            batch = next(loader).to(device, non_blocking=True)
            loss = loss_fn(model(batch[:, :-1]), batch[:, 1:])
            (loss / grad_accum).backward()
            loss_sum += loss.detach()
        grad_norm, applied = optimizer_step(model, optimizer, cfg.grad_clip)
        scheduler.step()  # a skipped update still uses up its step (the data was consumed)
        if not applied:
            skipped_steps += 1
            log.warning("step %d: gradient norm %s is not finite: update skipped (%d so far)",
                        step + 1, grad_norm, skipped_steps)
        step += 1
        tokens_since += tokens_per_step

        if step % cfg.log_every == 0 or step == total_steps:
            loss_avg = loss_sum / grad_accum
            dist.all_reduce(loss_avg, op=dist.ReduceOp.AVG) if device.type == "cuda" else _avg_gloo(loss_avg)
            data = loader.data_stats()
            counts = torch.tensor([data["row_group_reads"], data["skipped_docs"]], dtype=torch.float64, device=device)
            dist.all_reduce(counts)
            sync()
            now = time.perf_counter()
            busy = max(1e-9, now - t_last - paused_s)
            tps = tokens_since / busy / world
            row = {"type": "train", "step": step, "tokens": step * tokens_per_step, "loss": loss_avg.item(),
                   "lr": lr, "grad_norm": grad_norm, "skipped_steps": skipped_steps,
                   "tokens_per_s_per_device": tps, "tflops_per_device": tps * fpt / 1e12,
                   "mfu": tps * fpt / (peak * 1e12) if peak else None, "peak_tflops": peak,
                   "step_time_s": busy / max(1, tokens_since // tokens_per_step),
                   "row_group_reads": int(counts[0]), "skipped_docs": int(counts[1]),
                   "data_epochs": data["epochs"], "data_shares": data.get("shares", {}), **_max_memory_gib(device)}
            emit(row)
            if cfg.data_weights and data.get("shares"):  # the mix as trained (this rank's readers) against the mix asked for
                total_w = sum(cfg.data_weights.values()) or 1.0
                log.info("data shares consumed vs mix: %s", ", ".join(
                    f"{src} {data['shares'].get(src, 0.0):.3f} (mix {w / total_w:.3f})" for src, w in sorted(cfg.data_weights.items())))
            log.info("step %d | loss %.4f | lr %.2e | gnorm %.3f | %.0f tok/s/dev | mfu %s", step,
                     row["loss"], lr, grad_norm, tps, f"{100 * row['mfu']:.2f}%" if peak else "n/a")
            t_last, tokens_since, paused_s = time.perf_counter(), 0, 0.0
        if (cfg.val_every and step % cfg.val_every == 0) or (cfg.ckpt_every and step % cfg.ckpt_every == 0):
            sync()  # queued training work finishes on the training clock
            t_pause = time.perf_counter()
            if cfg.val_every and step % cfg.val_every == 0:
                run_val(step)
            if cfg.ckpt_every and step % cfg.ckpt_every == 0:
                save(step)
                last_saved = step
            paused_s += time.perf_counter() - t_pause
    if val and not (cfg.val_every and step % cfg.val_every == 0):
        run_val(step)
    if last_saved != step:
        save(step)
    return rows


def resume(ckpt: Checkpointer, cfg: TrainConfig, model, optimizer, device: torch.device) -> tuple[Path | None, dict]:
    """Load the checkpoint to resume from: ``resume=auto`` takes the newest intact one, falling back
    (with a warning) past checkpoints with missing files or that fail to load on any rank."""
    if cfg.resume in ("none", ""):
        return None, {}
    if cfg.resume == "auto":
        candidates = ckpt.candidates()
    else:
        candidates = [Path(cfg.resume)]
        problem = check_intact(candidates[0])
        if problem:
            raise CheckpointError(f"resume={cfg.resume}: checkpoint is not intact ({problem})")
    rank, world = dist.get_rank(), dist.get_world_size()
    for path in candidates:
        problem = check_intact(path)
        if problem:
            log.warning("checkpoint %s is not intact (%s): trying the previous one", path, problem)
            continue
        problem = verify_checksums(path, part=(rank, world))  # each rank reads 1/world of the files
        damaged = torch.tensor([0.0 if problem is None else 1.0], device=device)
        dist.all_reduce(damaged, op=dist.ReduceOp.MAX)  # all ranks take the same checkpoint
        if damaged.item():
            if cfg.resume != "auto":
                raise CheckpointError(f"resume={cfg.resume}: checkpoint is damaged ({problem or 'found by another rank'})")
            if problem:
                log.warning("checkpoint %s is damaged (%s): trying the previous one", path, problem)
            continue
        error = None
        try:
            state = ckpt.load(path, model, optimizer, reset_data=cfg.reset_data_position)
        except (Exception, CheckpointException) as e:  # noqa: BLE001 - corrupt file, version skew: try an older one
            error, state = e, {}
        failed = torch.tensor([0.0 if error is None else 1.0], device=device)
        dist.all_reduce(failed, op=dist.ReduceOp.MAX)  # all ranks take the same checkpoint
        if failed.item() == 0:
            return path, state
        if cfg.resume != "auto":
            raise CheckpointError(f"resume={cfg.resume}: loading failed ({type(error).__name__}: {error})"
                                  if error else f"resume={cfg.resume}: loading failed on another rank") from error
        log.warning("checkpoint %s failed to load (%s): trying the previous one", path,
                    f"{type(error).__name__}: {error}" if error else "on another rank")
    if candidates:  # never train from scratch over a run directory that holds checkpoints
        raise CheckpointError(f"no checkpoint in {ckpt.dir} can be resumed from (see the warnings above); "
                              "resume=none starts from scratch")
    return None, {}


def _dirs(identity) -> str:
    if isinstance(identity, str):
        return identity
    return ", ".join(d["path"] if isinstance(d, dict) else str(d) for d in identity or []) or "?"


def _weights_of(cfg: dict) -> tuple:
    return json.dumps(cfg.get("data_weights"), sort_keys=True), json.dumps(cfg.get("mix_schedule"), sort_keys=True)


def check_resume(cfg: TrainConfig, ckpt: Checkpointer, identity: list[dict], run_dir: Path) -> dict | None:
    """The newest checkpoint's ``meta.json`` when this run will resume from it; :class:`ResumeError`
    (one line) when it cannot go on with this config: a model of another shape, or other data
    without ``reset_data_position=true``.  Other ``steps`` or LR settings are allowed (the new
    schedule is logged: :func:`note_schedule_change`)."""
    if cfg.resume in ("none", ""):
        return None
    path = ckpt.latest() if cfg.resume == "auto" else Path(cfg.resume)
    if path is None or not (path / "meta.json").is_file():
        return None
    try:
        meta = json.loads((path / "meta.json").read_text())
    except ValueError:
        return None  # resume() reports the damaged checkpoint and falls back
    saved = meta.get("config") or {}
    fresh = "--run-dir NEW_DIR starts a new run"
    if saved.get("model"):
        changed = {k: (v, getattr(cfg.model, k)) for k, v in saved["model"].items()
                   if hasattr(cfg.model, k) and v != getattr(cfg.model, k) and k != "attention"}
        if changed:
            what = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in sorted(changed.items()))
            raise ResumeError(f"{run_dir} holds a checkpoint ({path.name}) of another model ({what}): {fresh}, "
                              "resume=none starts over in this one")
    before = meta.get("data")
    if before is not None and before != identity:
        was, now = _dirs(before), _dirs(identity)
        change = f"{was} -> {now}" if was != now else f"{now}, whose shards changed"
        if not cfg.reset_data_position:
            raise ResumeError(f"{run_dir} was trained on other data ({path.name}: {change}): {fresh}, or "
                              "reset_data_position=true goes on training its model on this data from the start of its stream")
        log.warning("resuming %s on other data (%s): reset_data_position=true restarts the data stream", run_dir, change)
    return meta


def note_schedule_change(meta: dict | None, cfg: TrainConfig, step: int, schedule_args: dict, total_steps: int) -> None:
    """Log, on resume, what another ``steps`` or other LR settings do to the schedule from here."""
    if not meta:
        return
    old = meta.get("schedule")
    saved = meta.get("config") or {}
    if old is None and saved:  # checkpoints written before the schedule was saved: the run's own settings
        old = {"lr": saved.get("lr"), "min_lr": saved.get("min_lr"), "warmup_steps": saved.get("warmup_steps"),
               "decay_steps": schedule_args["decay_steps"] if saved.get("steps") == cfg.steps else None}
    old_total = meta.get("total_steps", saved.get("steps"))
    if old == schedule_args and old_total == total_steps:
        return
    from .schedule import lr_at

    now_lr = lr_at(step, **schedule_args)
    was = f"{describe(**old)}, ending at step {old_total}" if old and None not in old.values() else f"steps={old_total}"
    was_lr = f" (the saved schedule: {lr_at(step, **old):.3g})" if old and None not in old.values() else ""
    log.warning("the schedule changed since step %d: was %s; now %s, ending at step %d; step %d runs at lr %.3g%s",
                step, was, describe(**schedule_args), total_steps, step + 1, now_lr, was_lr)


def _avg_gloo(t: torch.Tensor) -> None:
    dist.all_reduce(t)  # gloo has no AVG
    t /= dist.get_world_size()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["export"]:
        from .hf_export import main as export_main

        return export_main(args[1:])
    try:
        train(parse_args(args))
    except (UserError, OSError) as exc:  # one line, exit 2 on every rank; rank 0 says why (see await_rank0)
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        if rank != 0 and world > 1:
            await_rank0(exc)
        return print_error(exc, where=f"rank {rank}" if rank else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
