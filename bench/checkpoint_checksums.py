"""What the checkpoint checksums cost: hashing against the save that writes the files, verifying against the load.

    python bench/checkpoint_checksums.py [--dim 384] [--layers 6] [--vocab 32000] [--repeat 3]

Every checkpoint's ``meta.json`` lists each file's sha256 (``trainer/checkpoint.py``): the save
hashes what each rank wrote, and a resume (or an export) reads every file once more to verify
it.  This saves a real checkpoint (the trainer's decoder, AdamW state after one step, one rank,
the trainer's own ``Checkpointer``) ``--repeat`` times and reports, per save, the seconds spent
hashing next to the whole save, and the seconds :func:`verify_checksums` takes next to a DCP
load of the same checkpoint.  Ratios are of times taken in the same process, one after the
other, so a busy machine moves both.  Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from skypile.trainer import checkpoint as ck
    from skypile.trainer.config import ModelConfig
    from skypile.trainer.model import build_model, num_params

    store = tempfile.NamedTemporaryFile(prefix="bench-ckpt-store-", delete=False).name
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    cfg = ModelConfig(dim=args.dim, n_layers=args.layers, n_heads=max(1, args.dim // 64), vocab_size=args.vocab,
                      multiple_of=64, max_seq_len=256)
    model = build_model(cfg, "cpu")
    model.init_weights(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model(torch.randint(0, cfg.vocab_size, (2, 64))).float().mean().backward()
    opt.step()

    hashed = []
    real = ck.checksums

    def timed(folder, names):
        t0 = time.perf_counter()
        out = real(folder, names)
        hashed[-1] += time.perf_counter() - t0
        return out

    ck.checksums = timed
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ckpt-") as tmp:
        saver = ck.Checkpointer(Path(tmp) / "checkpoints", keep=1)
        for step in range(1, args.repeat + 1):
            hashed.append(0.0)
            t0 = time.perf_counter()
            path = saver.save(step, model, opt, {"step": step})
            save_s = time.perf_counter() - t0
            size = sum(p.stat().st_size for p in path.iterdir())
            t0 = time.perf_counter()
            assert ck.verify_checksums(path) is None
            verify_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            saver.load(path, model, opt)
            load_s = time.perf_counter() - t0
            rows.append({"bytes": size, "save_s": save_s, "hash_s": hashed[-1], "load_s": load_s, "verify_s": verify_s})
    dist.destroy_process_group()
    if os.path.exists(store):
        os.unlink(store)

    print(f"{num_params(cfg) / 1e6:.1f}M parameters, checkpoint {rows[0]['bytes'] / 2**20:.0f} MiB (weights + AdamW), 1 rank, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'save':>5}{'save s':>9}{'hash s':>9}{'hash/save':>11}{'load s':>9}{'verify s':>10}{'verify/load':>13}{'hash MiB/s':>12}")
    for i, r in enumerate(rows, 1):
        print(f"{i:>5}{r['save_s']:>9.2f}{r['hash_s']:>9.2f}{r['hash_s'] / r['save_s']:>11.2f}{r['load_s']:>9.2f}"
              f"{r['verify_s']:>10.2f}{r['verify_s'] / r['load_s']:>13.2f}{r['bytes'] / 2**20 / r['hash_s']:>12.0f}")
    print(json.dumps({"params": num_params(cfg), "rows": rows}))


if __name__ == "__main__":
    main()
