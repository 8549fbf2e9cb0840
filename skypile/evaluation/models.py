"""Load a causal LM for scoring text: our trainer's runs and checkpoints, or any local Hugging Face directory.

What ``--model`` may name:

* a trainer run directory (``config.json`` + ``checkpoints/``): its newest complete checkpoint;
* one trainer checkpoint (``.../checkpoints/step-N``, with ``meta.json`` and DCP's ``.metadata``);
* a Hugging Face causal LM directory (``config.json`` with a ``model_type``, weights, and its
  tokenizer), the trainer's HF export included.

A trainer checkpoint is read with ``torch.distributed.checkpoint`` in one process (no process
group): only the model weights, whatever world size saved them.  The tokenizer is the
SentencePiece model the run trained with (its copy in the run directory, else ``tokenizer`` in its
config, else the data manifests'), or ``tokenizer=``.  A Hugging Face directory is encoded with its
own tokenizer, except our trainer's HF export (``skypile_export.json``), which is encoded with
the exact SentencePiece model it holds, and except when ``tokenizer=`` names one.

Every text is scored after a *start token* (EOS for our models, which is what stands before
each document in the packed training stream; for HF models the BOS when their tokenizer adds
one, else EOS, as in our trainer's HF export), so the first token of a text is predicted too
and the summed NLL covers the whole text: that is what makes bits per character comparable
across tokenizers.  (A model with neither token scores from the second token on.)

torch and transformers are imported inside functions, so ``import skypile`` stays torch-free.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from skypile.errors import UserError

log = logging.getLogger(__name__)


HF_DEFAULT_CONTEXT = 4096  # the window of the Skywork paper's own loss evaluation
# Hugging Face model types whose logits are exactly ``get_output_embeddings()`` of the base model's
# last hidden state (no logit scaling or soft-capping): scored with the head applied in chunks.
HEAD_SPLIT_TYPES = ("llama", "mistral", "qwen2", "qwen3", "gpt2", "gpt_neox")


def activation_bytes(dim: int, ffn: int, dtype) -> int:
    """Bytes per input token that one inference forward holds at its peak (a block's input, q/k/v,
    attention output, the SwiGLU gate/up/product, twice over for allocator slack): sizes the batch."""
    return 2 * (5 * dim + 3 * ffn) * dtype.itemsize


class EvalError(UserError):
    """Bad input to an evaluation (missing model or set, empty set, unreadable files): one clear line."""


@dataclass
class ScoringModel:
    """A causal LM reduced to what scoring needs."""

    name: str
    kind: str  # "trainer" | "hf"
    path: str
    context: int  # longest input the model takes (tokens)
    start_id: int | None  # token placed before every text (None: the first token is context only)
    device: Any  # torch.device
    encode_batch: Callable[[list[str]], list[list[int]]]
    logits: Callable[[Any, Any], Any]  # (tokens (B, T) int64, mask (B, T) bool) -> logits (B, T, V)
    info: dict = dataclasses.field(default_factory=dict)
    # The same logits in two steps, so scoring applies the output head to a few positions at a time:
    # hidden(tokens, mask) -> (B, T, D) final hidden states, head(h (N, D)) -> logits (N, V).  None: only logits.
    hidden: Callable[[Any, Any], Any] | None = None
    head: Callable[[Any], Any] | None = None
    token_bytes: int = 0  # activation bytes per input token of one forward (sizes the default batch)


def resolve_device(device: str = "auto"):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EvalError(f"device={device} but CUDA is not available")
    return torch.device(device)


def _dtype(name: str, device):
    import torch

    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    except KeyError:
        raise EvalError(f"dtype must be auto, float32, bfloat16 or float16, got {name!r}") from None


def model_kind(path: Path) -> str:
    """``trainer-run``, ``trainer-ckpt`` or ``hf``; a clear error for anything else."""
    if not path.exists():
        raise EvalError(f"model {path} does not exist")
    if not path.is_dir():
        raise EvalError(f"model {path} is a file: give a trainer run directory, a checkpoint directory or a Hugging Face model directory")
    if (path / "checkpoints").is_dir():
        return "trainer-run"
    if (path / "meta.json").is_file() and (path / ".metadata").is_file():
        return "trainer-ckpt"
    cfg = path / "config.json"
    if cfg.is_file():
        try:
            if "model_type" in json.loads(cfg.read_text()):
                return "hf"
        except ValueError as exc:
            raise EvalError(f"model {cfg} is not valid JSON: {exc}") from None
    raise EvalError(f"model {path}: not a trainer run directory (checkpoints/), a trainer checkpoint "
                    f"(meta.json + .metadata) or a Hugging Face model directory (config.json with model_type)")


def load_model(path: str | Path, *, device: str = "auto", dtype: str = "auto", tokenizer: str | None = None,
               context: int | None = None, trust_remote_code: bool = False) -> ScoringModel:
    """Load ``path`` (see the module docstring) for scoring on ``device``.

    ``context`` sets the window (at most the model's position limit); the default is the
    trainer run's ``seq_len`` (the length it trained on), or for an HF model
    its position limit capped at ``HF_DEFAULT_CONTEXT`` (the logits of one window are
    context x vocab floats: a 128k-token window of a 128k vocabulary would not fit anywhere).
    """
    path = Path(path)
    kind = model_kind(path)
    dev = resolve_device(device)
    if context is not None and context < 2:
        raise EvalError(f"context must be at least 2 tokens, got {context}")
    if kind == "hf":
        model = _load_hf(path, dev, _dtype(dtype, dev), tokenizer, trust_remote_code)
        model.context = min(model.context, context or HF_DEFAULT_CONTEXT)
    else:
        model = _load_trainer(path, kind, dev, _dtype(dtype, dev), tokenizer)
        model.context = min(context, model.info["max_seq_len"]) if context else model.context
    return model


# -- our trainer -------------------------------------------------------------------------------


def _trainer_config(path: Path, kind: str) -> tuple[dict, Path]:
    """(the run's config dict, the checkpoint to read)."""
    from skypile.trainer.checkpoint import Checkpointer

    if kind == "trainer-run":
        ckpt = Checkpointer(path / "checkpoints").latest()
        if ckpt is None:
            raise EvalError(f"model {path}: no complete checkpoint in {path / 'checkpoints'}")
    else:
        ckpt = path
    meta = json.loads((ckpt / "meta.json").read_text())
    cfg = meta.get("config")
    if cfg is None:
        run_config = ckpt.parent.parent / "config.json"
        if not run_config.is_file():
            raise EvalError(f"checkpoint {ckpt}: no config in meta.json and no {run_config}")
        cfg = json.loads(run_config.read_text())
    return cfg, ckpt


def _trainer_tokenizer(cfg: dict, override: str | None, run_dir: Path) -> str:
    """``override``, else the run's own copy (``<run_dir>/tokenizer.model``), else its config's
    ``tokenizer``, else the data manifests' (checked against their sha256: a tokenizer rebuilt
    since would score garbage, silently)."""
    if override:
        if "://" not in override and not Path(override).is_file():
            raise EvalError(f"tokenizer {override} does not exist")
        return override
    from skypile.trainer.inputs import run_tokenizer

    path, tried = run_tokenizer(run_dir, cfg)
    if path:
        return path
    raise EvalError(f"no tokenizer found for this run (tried {', '.join(tried)}); pass --tokenizer PATH.model")


def _load_trainer(path: Path, kind: str, device, dtype, tokenizer: str | None) -> ScoringModel:
    import torch
    import torch.distributed.checkpoint as dcp

    from skypile.tokenizer.spm import load_tokenizer
    from skypile.trainer.config import ModelConfig
    from skypile.trainer.model import build_model

    cfg, ckpt = _trainer_config(path, kind)
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    mcfg = ModelConfig(**{k: v for k, v in cfg["model"].items() if k in known})
    sp_path = _trainer_tokenizer(cfg, tokenizer, ckpt.parent.parent)
    sp = load_tokenizer(sp_path)
    if sp.get_piece_size() > mcfg.vocab_size:
        raise EvalError(f"tokenizer {sp_path} has {sp.get_piece_size()} pieces > the model's vocab {mcfg.vocab_size}")
    from skypile.trainer.checkpoint import verify_checksums

    damaged = verify_checksums(ckpt)
    if damaged:
        raise EvalError(f"checkpoint {ckpt} is damaged ({damaged})")
    model = build_model(mcfg, "cpu")  # default init; every weight is overwritten from the checkpoint
    state = {"model": model.state_dict()}
    try:
        with warnings.catch_warnings():  # DCP warns that it reads in one process: that is the intent
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            dcp.load(state, checkpoint_id=str(ckpt), no_dist=True)
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign checkpoint: one clear line
        raise EvalError(f"checkpoint {ckpt} cannot be read ({type(exc).__name__}: {str(exc)[:300]})") from None
    model.load_state_dict(state["model"])
    model = model.to(device).eval()
    rope = (model.rope_cos, model.rope_sin)
    model.to(dtype)  # weights in the compute dtype; the RoPE tables stay fp32, as in training
    model.rope_cos, model.rope_sin = rope
    model.set_attention("auto" if mcfg.attention in ("auto", "flash") else mcfg.attention)
    seq_len = int(cfg.get("seq_len") or mcfg.max_seq_len)

    def logits(tokens, mask):
        return model(tokens)  # right padding only: causal attention never looks at it

    step = json.loads((ckpt / "meta.json").read_text()).get("step")
    return ScoringModel(
        name=f"{path.parent.name}/{path.name}" if kind == "trainer-run" else f"{ckpt.parent.parent.name}/{ckpt.name}",
        kind="trainer", path=str(path), context=min(seq_len, mcfg.max_seq_len), start_id=sp.eos_id(),
        device=device, encode_batch=lambda texts: sp.encode(texts), logits=logits,
        hidden=lambda tokens, mask: model.hidden(tokens), head=model.output,
        token_bytes=activation_bytes(mcfg.dim, mcfg.ffn_dim, dtype),
        info={"checkpoint": str(ckpt), "step": step, "tokenizer": sp_path, "vocab_size": mcfg.vocab_size,
              "max_seq_len": mcfg.max_seq_len,
              "dtype": str(dtype).removeprefix("torch.")})


# -- Hugging Face ------------------------------------------------------------------------------


def _sentencepiece_for(path: Path, override: str | None) -> str | None:
    """The SentencePiece model to encode with instead of the HF tokenizer: ``--tokenizer``, or the
    ``tokenizer.model`` of our trainer's HF export (marked by ``skypile_export.json``).  It is the
    exact tokenizer the model trained with; transformers' Llama conversion of it puts a ``▁``
    before the first word of a text, which SentencePiece as trained here does not."""
    if override:
        if "://" not in override and not Path(override).is_file():
            raise EvalError(f"tokenizer {override} does not exist")
        return override
    if (path / "skypile_export.json").is_file() and (path / "tokenizer.model").is_file():
        return str(path / "tokenizer.model")
    return None


def _load_hf(path: Path, device, dtype, tokenizer: str | None, trust_remote_code: bool) -> ScoringModel:
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise EvalError("Hugging Face models need transformers: pip install -e '.[eval]'") from None

    sp_path = _sentencepiece_for(path, tokenizer)
    if sp_path:
        from skypile.tokenizer.spm import load_tokenizer

        sp = load_tokenizer(sp_path)
        start, tok_name = sp.eos_id(), sp_path  # documents are joined by EOS in our training stream

        def encode_batch(texts: list[str]) -> list[list[int]]:
            return sp.encode(texts)
    else:
        try:
            tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        except Exception as exc:  # noqa: BLE001 - any tokenizer problem is the same user error
            raise EvalError(f"model {path}: cannot load its tokenizer ({type(exc).__name__}: {exc})") from None
        # The token the model's tokenizer puts before a text (BOS for LLaMA-family models); else the
        # document separator EOS.
        probe = tok("a")["input_ids"]
        if probe and tok.bos_token_id is not None and probe[0] == tok.bos_token_id:
            start = tok.bos_token_id
        else:
            start = tok.eos_token_id if tok.eos_token_id is not None else tok.bos_token_id
        tok_name = f"{path} ({type(tok).__name__})"

        def encode_batch(texts: list[str]) -> list[list[int]]:
            return tok(texts, add_special_tokens=False)["input_ids"]

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, trust_remote_code=trust_remote_code).to(device).eval()
    cfg = model.config
    context = next((int(getattr(cfg, k)) for k in ("max_position_embeddings", "n_positions", "max_sequence_length")
                    if getattr(cfg, k, None)), 2048)

    def logits(tokens, mask):
        return model(input_ids=tokens, attention_mask=mask.long()).logits

    hidden = head = None
    if cfg.model_type in HEAD_SPLIT_TYPES and model.get_output_embeddings() is not None:
        base = getattr(model, model.base_model_prefix)

        def hidden(tokens, mask):
            return base(input_ids=tokens, attention_mask=mask.long()).last_hidden_state

        head = model.get_output_embeddings()
    width = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", 0)
    ffn = getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None) or 4 * width
    token_bytes = activation_bytes(width, ffn, dtype) + (0 if head else 3 * 4 * cfg.vocab_size)
    return ScoringModel(name=path.name, kind="hf", path=str(path), context=context, start_id=start, device=device,
                        encode_batch=encode_batch, logits=logits, hidden=hidden, head=head, token_bytes=token_bytes,
                        info={"model_type": cfg.model_type, "vocab_size": cfg.vocab_size, "tokenizer": tok_name,
                              "dtype": str(dtype).removeprefix("torch.")})
