"""Tiny real models for the evaluation tests: the trainer's decoder fitted on real GSM8K text.

A SentencePiece BPE (1,000 pieces) trained on GSM8K train problems; a 2-layer, 64-wide
``skypile.trainer`` Transformer fitted with a plain AdamW loop (one process, no FSDP: the
FSDP trainer costs ~1 s a step on these shared CPUs), saved as a trainer run directory
(``config.json`` + a DCP checkpoint written by ``skypile.trainer.checkpoint.Checkpointer``),
which is exactly what ``skypile eval`` loads from a real training run.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest

from skypile.data_paths import shared_path

VOCAB = 1000
_CACHE: dict[str, object] = {}


def gsm8k_texts(name: str, start: int, stop: int) -> list[str]:
    """Problems ``start:stop`` of a shared GSM8K-format file, as ``question + "\\n" + answer``."""
    out = []
    with open(shared_path("gsm8k", *name.split("/")), encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= stop:
                break
            if i >= start:
                d = json.loads(line)
                out.append(f"{d['question']}\n{d['answer']}")
    return out


def gsm8k_tokenizer(base: Path) -> str:
    if "tokenizer" not in _CACHE:
        from skypile.tokenizer.spm import train_tokenizer

        base.mkdir(parents=True, exist_ok=True)
        corpus = base / "gsm8k-train-1500.txt"
        corpus.write_text("\n".join(gsm8k_texts("train.jsonl", 0, 1500)), encoding="utf-8")
        _CACHE["tokenizer"] = train_tokenizer([str(corpus)], str(base / "tokenizer"), vocab_size=VOCAB, num_threads=1)
    return _CACHE["tokenizer"]


def fit_tiny(texts: list[str], tokenizer: str, run_dir: Path, *, steps: int = 200, seed: int = 0,
             seq_len: int = 64, batch: int = 16, lr: float = 3e-3) -> Path:
    """Fit the trainer's model on ``texts`` (packed with EOS, random windows) and save a trainer run dir."""
    import torch
    import torch.nn.functional as F

    from skypile.tokenizer.spm import load_tokenizer
    from skypile.trainer.checkpoint import Checkpointer
    from skypile.trainer.config import ModelConfig, TrainConfig
    from skypile.trainer.model import build_model

    key = f"{run_dir}"
    if key in _CACHE:
        return _CACHE[key]
    sp = load_tokenizer(tokenizer)
    stream: list[int] = []
    for ids in sp.encode(texts):
        stream += ids + [sp.eos_id()]
    data = torch.tensor(stream)
    cfg = TrainConfig(name="eval-tiny", model=ModelConfig(dim=64, n_layers=2, n_heads=4, vocab_size=1024, multiple_of=32,
                                                          max_seq_len=128),
                      seq_len=seq_len, micro_batch_size=batch, steps=steps, lr=lr, tokenizer=tokenizer, device="cpu",
                      param_dtype="float32", seed=seed, run_dir=str(run_dir))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same arithmetic on any machine, and polite to the shared cores
    try:
        model = build_model(cfg.model, "cpu")
        model.init_weights(seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
        gen = torch.Generator().manual_seed(seed)
        for step in range(steps):
            scale = min(1.0, (step + 1) / 20) * (0.1 + 0.45 * (1 + math.cos(math.pi * step / steps)))
            for group in optimizer.param_groups:
                group["lr"] = lr * scale
            starts = torch.randint(0, len(data) - seq_len - 1, (batch,), generator=gen)
            x = torch.stack([data[s : s + seq_len + 1] for s in starts.tolist()])
            loss = F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        with warnings.catch_warnings():  # DCP: "assuming the intent is to save in a single process" - it is
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            Checkpointer(run_dir / "checkpoints").save(steps, model, optimizer, {"step": steps}, meta={"config": cfg.to_dict()})
        torch.save(model.state_dict(), run_dir / "reference-weights.pt")  # the in-memory weights, for the tests to compare
    finally:
        torch.set_num_threads(threads)
    _CACHE[key] = run_dir
    return run_dir


def clean_run(base: Path) -> tuple[Path, str]:
    """(run dir, tokenizer) of the model fitted on GSM8K train problems 0-149 only."""
    tok = gsm8k_tokenizer(base)
    return fit_tiny(gsm8k_texts("train.jsonl", 0, 150), tok, base / "clean"), tok


@pytest.fixture(scope="session")
def eval_base(tmp_path_factory, shared) -> Path:
    """One folder per session for the tokenizer and the fitted runs (shared GSM8K required)."""
    shared("gsm8k", "train.jsonl")
    if "base" not in _CACHE:
        _CACHE["base"] = tmp_path_factory.mktemp("eval-models")
    return _CACHE["base"]
