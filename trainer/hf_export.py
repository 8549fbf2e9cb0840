"""``skypile-train export``: a training checkpoint -> a Hugging Face LLaMA directory.

    skypile-train export --checkpoint runs/1b/checkpoints/step-00010000 --out hf/skypile-1b [--dtype bfloat16]

Writes ``config.json`` + ``generation_config.json`` (a ``LlamaConfig``), the weights as
safetensors (sharded above 5 GB) and the SentencePiece tokenizer (``tokenizer.model`` +
``tokenizer_config.json``, Llama's tokenizer class), into a temporary directory renamed
to ``--out`` at the end.  ``transformers.AutoModelForCausalLM.from_pretrained(out)`` gives
the trainer's logits (tested on ``tiny``).

``--out`` must be new, empty, or an earlier export (its ``skypile_export.json`` lists the
files it wrote, and it holds nothing else): anything else (a folder of notes, the training
run itself) is refused before any work, never deleted.  The checkpoint's checksums
(``meta.json``) are verified first.

Our decoder is LLaMA's: RoPE in the rotate-half layout that Hugging Face's Llama uses (so
q/k need no permutation), RMSNorm pre-norm, SwiGLU (``w1`` gate, ``w3`` up, ``w2`` down),
untied output head, no biases, full multi-head attention.  The checkpoint is read with DCP
in one process, whatever world size saved it.

Tokenizer: ``add_prefix_space`` follows the model's ``add_dummy_prefix`` (False for SkyPile's
tokenizer), so Hugging Face's Llama tokenizer gives SentencePiece's ids.  With an old-style
model that adds the dummy prefix, texts that start with whitespace can differ (Hugging Face
does not add the ``▁`` there); ``tokenizer.model`` is in the directory for exact use.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from pathlib import Path

import torch

from skypile.errors import OneLineParser, UserError, cli_errors
from skypile.io import check_output_dir

from .config import TrainConfig, from_dict
from .model import Transformer, build_model

log = logging.getLogger(__name__)

_LAYER = {
    "attention.wq.weight": "self_attn.q_proj.weight",
    "attention.wk.weight": "self_attn.k_proj.weight",
    "attention.wv.weight": "self_attn.v_proj.weight",
    "attention.wo.weight": "self_attn.o_proj.weight",
    "feed_forward.w1.weight": "mlp.gate_proj.weight",
    "feed_forward.w3.weight": "mlp.up_proj.weight",
    "feed_forward.w2.weight": "mlp.down_proj.weight",
    "attention_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
}
_TOP = {"tok_embeddings.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight"}


def hf_name(name: str) -> str:
    """Our parameter name -> Hugging Face Llama's."""
    if name in _TOP:
        return _TOP[name]
    parts = name.split(".", 2)
    if parts[0] == "layers" and len(parts) == 3 and parts[2] in _LAYER:
        return f"model.layers.{parts[1]}.{_LAYER[parts[2]]}"
    raise KeyError(f"no Hugging Face name for parameter {name!r}")


def load_checkpoint(path: str | Path) -> tuple[Transformer, TrainConfig]:
    """The model of a training checkpoint, unsharded on CPU in fp32 (no process group needed)."""
    import torch.distributed.checkpoint as dcp

    from .checkpoint import CheckpointError, check_intact, verify_checksums

    path = Path(path)
    problem = check_intact(path) or verify_checksums(path)
    if problem:
        raise CheckpointError(f"{path}: not an intact checkpoint ({problem})")
    meta = json.loads((path / "meta.json").read_text())
    if "config" not in meta:
        raise CheckpointError(f"{path}/meta.json has no training config")
    cfg = from_dict(meta["config"])
    if cfg.model.vocab_size <= 0:
        raise CheckpointError(f"{path}: the saved config has no resolved vocab_size")
    model = build_model(cfg.model, "cpu")
    model.init_weights(0)  # materializes the RoPE buffers; every parameter is overwritten below
    state = {"model": model.state_dict()}
    dcp.load(state, checkpoint_id=str(path), no_dist=True)
    model.load_state_dict(state["model"])
    return model.eval(), cfg


def _tokenizer_model(cfg: TrainConfig, override: str | None, checkpoint: Path) -> Path | None:
    """``--tokenizer``, else the run's own copy (``<run_dir>/tokenizer.model``), its config's, or its data's."""
    if override:
        return Path(override)
    from .inputs import run_tokenizer

    path, _ = run_tokenizer(Path(checkpoint).parent.parent, cfg.to_dict())
    return Path(path) if path else None


def llama_config(cfg: TrainConfig, dtype: torch.dtype, special: dict):
    from transformers import LlamaConfig

    m = cfg.model
    return LlamaConfig(
        vocab_size=m.vocab_size, hidden_size=m.dim, intermediate_size=m.ffn_dim, num_hidden_layers=m.n_layers,
        num_attention_heads=m.n_heads, num_key_value_heads=m.n_heads, head_dim=m.head_dim, hidden_act="silu",
        max_position_embeddings=m.max_seq_len, rms_norm_eps=m.norm_eps, rope_theta=m.rope_theta,
        initializer_range=m.init_std, tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
        bos_token_id=special.get("bos_id", 1), eos_token_id=special.get("eos_id", 2),
        pad_token_id=special.get("pad_id"), architectures=["LlamaForCausalLM"], dtype=dtype,
    )


def export(checkpoint: str | Path, out: str | Path, *, dtype: str = "bfloat16", tokenizer: str | None = None,
           max_shard_size: str = "5GB") -> Path:
    """Write the Hugging Face directory ``out`` (atomically: built next to it, then renamed)."""
    from transformers import LlamaForCausalLM

    from .parallelize import to_dtype

    out = Path(out)
    check_export_dir(out, checkpoint)
    torch_dtype = to_dtype(dtype)  # an unknown name: a TrainConfigError, before any work
    model, cfg = load_checkpoint(checkpoint)
    tok_path = _tokenizer_model(cfg, tokenizer, Path(checkpoint))
    if tok_path is None or not tok_path.is_file():
        raise ExportError(f"SentencePiece tokenizer model not found ({tok_path}); pass --tokenizer")
    special = _special_ids(tok_path)

    hf_cfg = llama_config(cfg, torch_dtype, special)
    with torch.device("meta"):
        hf = LlamaForCausalLM(hf_cfg)
    weights = {hf_name(k): v.to(torch_dtype) for k, v in model.state_dict().items()}
    hf.load_state_dict(weights, strict=True, assign=True)  # strict: every HF weight is ours and vice versa

    tmp = out.parent / f".{out.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)  # ours: left by a crashed export
    tmp.mkdir(parents=True)
    hf.save_pretrained(tmp, max_shard_size=max_shard_size)
    shutil.copyfile(tok_path, tmp / "tokenizer.model")
    pieces = special.pop("pieces")
    (tmp / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "add_bos_token": False, "add_eos_token": False,
        "bos_token": pieces.get("bos"), "eos_token": pieces.get("eos"), "unk_token": pieces.get("unk"),
        "pad_token": pieces.get("pad"), "model_max_length": cfg.model.max_seq_len, "legacy": False,
        # SkyPile models add no dummy-prefix space: then transformers must not either (same ids, #12)
        "add_prefix_space": _adds_dummy_prefix(tok_path),
    }, indent=2) + "\n")
    files = sorted(p.name for p in tmp.iterdir()) + [MARKER]
    (tmp / MARKER).write_text(json.dumps(
        {"checkpoint": str(Path(checkpoint).resolve()), "dtype": dtype, "tokenizer": str(tok_path),
         "model": cfg.to_dict()["model"], "files": files}, indent=2) + "\n")
    check_export_dir(out, checkpoint)  # again: the directory may have changed while the weights were written
    old = out.parent / f".{out.name}.old"
    if out.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)  # an earlier export (checked): aside until the new one is in place
    os.replace(tmp, out)
    if old.exists():
        shutil.rmtree(old)
    log.info("exported %s -> %s (%s)", checkpoint, out, dtype)
    return out


MARKER = "skypile_export.json"  # what makes a directory an export this tool may replace


class ExportError(UserError):
    """An export the user must fix: ``--out`` holds other files, no tokenizer, ..."""


def check_export_dir(out: Path, checkpoint: str | Path) -> None:
    """Refuse (:class:`ExportError`) an ``--out`` that is not new, empty, or an earlier export holding only its own files."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file, not a directory")
    ckpt, where = Path(checkpoint).resolve(), out.resolve()
    if where == ckpt or where in ckpt.parents:
        raise ExportError(f"--out {out} holds the checkpoint {checkpoint}: export to another directory")
    if ckpt in where.parents:  # checkpoint rotation (keep_ckpts) would delete it
        raise ExportError(f"--out {out} lies inside the checkpoint {checkpoint}: export to another directory")
    if out.is_dir():
        present = {p.name for p in out.iterdir()}
        if present:
            try:
                owned = set(json.loads((out / MARKER).read_text())["files"])
            except (OSError, ValueError, KeyError, TypeError):
                owned = set()
            foreign = sorted(present - owned)
            if not owned or foreign:
                raise ExportError(f"--out {out} is not empty and not an earlier export (it holds {', '.join(foreign[:3])}"
                                  f"{', ...' if len(foreign) > 3 else ''}): nothing there is deleted; choose a new or empty directory")
    check_output_dir(str(out.parent), "--out")


def _adds_dummy_prefix(path: Path) -> bool:
    from skypile import io
    from skypile.tokenizer.extend import parse_model

    return bool(parse_model(io.read_bytes(str(path))).normalizer_spec.add_dummy_prefix)


def _special_ids(path: Path) -> dict:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(path))
    ids = {"bos_id": sp.bos_id(), "eos_id": sp.eos_id(), "unk_id": sp.unk_id(), "pad_id": sp.pad_id()}
    pieces = {k[:-3]: sp.id_to_piece(v) for k, v in ids.items() if v >= 0}
    return {**{k: v for k, v in ids.items() if v >= 0}, "pieces": pieces}


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="skypile-train export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a step-N checkpoint directory")
    ap.add_argument("--out", required=True, help="Hugging Face output directory")
    ap.add_argument("--dtype", default="bfloat16", help="weight dtype: bfloat16 | float32 | float16")
    ap.add_argument("--tokenizer", help="SentencePiece model (default: the run's copy, <run_dir>/tokenizer.model)")
    ap.add_argument("--max-shard-size", default="5GB")

    def run() -> int:
        args = ap.parse_args(argv)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        export(args.checkpoint, args.out, dtype=args.dtype, tokenizer=args.tokenizer, max_shard_size=args.max_shard_size)
        return 0

    return cli_errors(run)
