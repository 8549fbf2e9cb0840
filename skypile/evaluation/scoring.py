"""Per-document negative log-likelihood of texts under a causal LM: the one number ppl and leakage read.

Each text is encoded with the model's own tokenizer and preceded by its start token (see
``models.py``), so every token of the text is predicted once; a document's score is the sum
of those token NLLs (nats), its token count and its character count.

**Long texts** (more tokens than the model's context ``C``) are scored with a sliding window
of at most ``C`` input tokens that moves ``stride`` tokens at a time (default ``C // 2``).
Each window scores only the targets the previous one did not, so every token is counted
exactly once, and every token after the first window sees at least ``C - stride`` tokens of
context.  ``stride = C`` gives disjoint windows (cheapest, least context); smaller strides
cost more forwards and give lower, more faithful losses.  Windows of all documents are
sorted by length and batched up to ``batch_tokens`` tokens.

**Memory.**  The logits of a batch are ``batch_tokens x vocabulary`` floats: 2 GiB in fp32 for
8,192 tokens of a 65,536-piece vocabulary, and the loss needs as much again.  So the model
gives its final hidden states, and the output head and the loss run on the scored positions
a chunk of about ``LOGITS_BYTES`` at a time: the loss's memory is bounded whatever the
vocabulary (models without that split give full logits, and their loss runs a few rows at a
time).  The default ``batch_tokens`` fits the batch's activations into a share of the free
memory (:func:`default_batch_tokens`).  ``bench/eval_memory.py`` measures the peak.

Reading sets: JSONL(.gz) / JSON lines with a ``text`` or ``content`` field, or GSM8K-style
``question`` + ``answer`` (scored as ``question + "\\n" + answer``); Parquet files with a
``text`` or ``content`` column; ``.txt(.gz)`` files (paragraphs separated by blank lines).
Bad lines and empty texts are counted drops with a reason, never a crash; a set that ends up
with no text at all is an error.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from skypile.evaluation.models import EvalError, ScoringModel
from skypile.document import Dropped
from skypile.readers.jsonl import paragraphs
from skypile.readers.rows import iter_rows, open_text

SUFFIXES = (".jsonl.gz", ".jsonl", ".json.gz", ".json", ".parquet", ".txt.gz", ".txt")


@dataclass
class TextSet:
    """The texts of one evaluation set and what was dropped reading it."""

    name: str
    path: str
    texts: list[str]
    dropped: Counter = field(default_factory=Counter)


@dataclass
class DocScore:
    nll: float  # summed over the document's tokens, nats
    n_tokens: int
    n_chars: int


def set_name(path: Path) -> str:
    name = path.name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _record_text(record: object) -> str | None:
    if not isinstance(record, dict):
        return None
    for key in ("text", "content"):
        if isinstance(record.get(key), str):
            return record[key]
    q, a = record.get("question"), record.get("answer")
    if isinstance(q, str) and isinstance(a, str):
        return f"{q}\n{a}"
    return None


def _iter_file(path: Path, dropped: Counter) -> Iterator[str]:
    name = path.name
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except Exception as exc:  # noqa: BLE001 - unreadable file: a clear error
            raise EvalError(f"set {path}: not a readable Parquet file ({exc})") from None
        column = next((c for c in ("text", "content") if c in pf.schema_arrow.names), None)
        if column is None:
            raise EvalError(f"set {path}: no 'text' or 'content' column (columns: {', '.join(pf.schema_arrow.names)})")
        for batch in pf.iter_batches(columns=[column], batch_size=1024):
            for text in batch.column(0).to_pylist():
                if text is None:
                    dropped["null_text"] += 1
                else:
                    yield text
        return
    if ".txt" in name:
        with open_text(str(path)) as f:  # gzip or not, by its bytes
            yield from paragraphs(f)
        return
    for _, record in iter_rows(str(path)):  # JSON lines or one array, gzip or not
        if isinstance(record, Dropped):
            dropped[record.reason] += 1
            continue
        text = _record_text(record)
        if text is None:
            dropped["no_text_field"] += 1
        else:
            yield text


def read_set(path: str | Path, *, name: str | None = None, max_docs: int | None = None, seed: int = 0) -> TextSet:
    """All non-empty texts of one file; ``max_docs`` keeps a seeded random sample, in file order."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"set {path} does not exist" if not path.exists() else f"set {path} is not a file")
    if not path.name.endswith(SUFFIXES):
        raise EvalError(f"set {path}: unknown format (expected {', '.join(SUFFIXES)})")
    dropped: Counter = Counter()
    texts = []
    for text in _iter_file(path, dropped):
        if text.strip():
            texts.append(text)
        else:
            dropped["empty_text"] += 1
    if not texts:
        detail = f" (dropped: {dict(dropped)})" if dropped else ""
        raise EvalError(f"set {path} has no texts{detail}")
    if max_docs is not None and max_docs < len(texts):
        import random

        keep = sorted(random.Random(seed).sample(range(len(texts)), max_docs))
        texts = [texts[i] for i in keep]
    return TextSet(name or set_name(path), str(path), texts, dropped)


def expand_sets(specs: list[str]) -> list[Path]:
    """Files named directly, plus the set files directly inside named directories (sorted)."""
    files: list[Path] = []
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.name.endswith(SUFFIXES))
            if not found:
                raise EvalError(f"sets directory {p} holds no {', '.join(SUFFIXES)} files")
            files += found
        elif p.exists():
            files.append(p)
        else:
            raise EvalError(f"set {p} does not exist")
    names = Counter(set_name(f) for f in files)
    dup = [n for n, c in names.items() if c > 1]
    if dup:
        raise EvalError(f"two sets would share the name {dup[0]!r}: rename one file")
    return files


def windows_for(seq: list[int], context: int, stride: int) -> list[tuple[int, int, int]]:
    """``(begin, end, skip)`` windows over ``seq``: the model reads ``seq[begin:end-1]`` and the
    targets ``seq[begin+1:end]`` from index ``skip`` on are scored; together they score
    ``seq[1:]`` exactly once (see the module docstring)."""
    if not 1 <= stride <= context:
        raise EvalError(f"stride must be between 1 and the context ({context}), got {stride}")
    out = []
    begin, next_target = 0, 1
    while next_target < len(seq):
        end = min(begin + context + 1, len(seq))
        out.append((begin, end, next_target - (begin + 1)))
        next_target = end
        begin += stride
    return out


LOGITS_BYTES = 256 * 2**20  # fp32 logits + log-softmax of one chunk of scored positions
MAX_BATCH_TOKENS = 32768  # beyond this a bigger batch buys no speed


def memory_budget(device) -> int:
    """Bytes one scoring batch may hold: half the free GPU memory, else a quarter of the available RAM (at most 4 GiB)."""
    import torch

    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    available = 0
    try:
        with open("/proc/meminfo") as f:
            available = next((int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")), 0)
    except OSError:
        pass
    return min(available // 4 if available else 2**30, 4 * 2**30)


def default_batch_tokens(model: ScoringModel) -> int:
    """Tokens per forward that fit :func:`memory_budget` (at least one window, at most ``MAX_BATCH_TOKENS``)."""
    per_token = max(1, model.token_bytes)
    return int(max(model.context, min(MAX_BATCH_TOKENS, memory_budget(model.device) // per_token)))


def _chunk_nll(logits_of, hidden, targets, chunk: int):
    """Token NLL of ``hidden`` rows, the output head applied ``chunk`` rows at a time."""
    import torch
    import torch.nn.functional as F

    out = torch.empty(len(targets), dtype=torch.float32, device=targets.device)
    for i in range(0, len(targets), chunk):
        out[i : i + chunk] = F.cross_entropy(logits_of(hidden[i : i + chunk]).float(), targets[i : i + chunk], reduction="none")
    return out


def batch_nll(model: ScoringModel, tokens, mask, rows, cols, vocab: int):
    """NLL of the targets ``tokens[rows, cols + 1]`` of one padded batch, in bounded memory (see the module doc)."""
    import torch

    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    chunk = max(1, LOGITS_BYTES // (3 * 4 * vocab))  # positions per chunk: fp32 logits, log-softmax, slack
    if model.hidden is not None and model.head is not None:
        h = model.hidden(inputs, mask[:, :-1])[rows, cols]
        return _chunk_nll(model.head, h, targets[rows, cols], chunk)
    logits = model.logits(inputs, mask[:, :-1])  # no split: full logits, their loss a few rows at a time
    width = logits.shape[1]
    per_row = torch.empty(logits.shape[:2], dtype=torch.float32, device=logits.device)
    step = max(1, chunk // width)
    for r in range(0, logits.shape[0], step):
        per_row[r : r + step] = _chunk_nll(lambda x: x, logits[r : r + step].flatten(0, 1), targets[r : r + step].flatten(),
                                           chunk).view(-1, width)
    return per_row[rows, cols]


def score_texts(model: ScoringModel, texts: list[str], *, stride: int | None = None, batch_tokens: int | None = None,
                desc: str = "scoring", progress: bool = True) -> list[DocScore]:
    """Summed token NLL (nats), token and character counts of each text under ``model``;
    ``batch_tokens`` None: :func:`default_batch_tokens`."""
    import torch
    from tqdm import tqdm

    context = model.context
    batch_tokens = batch_tokens or default_batch_tokens(model)
    vocab = int(model.info.get("vocab_size") or 65536)
    stride = stride or max(1, context // 2)
    encoded = model.encode_batch(texts)
    scores = [DocScore(0.0, 0, len(t)) for t in texts]
    work = []  # (doc, tokens of the window, skip)
    for i, ids in enumerate(encoded):
        seq = ([model.start_id] if model.start_id is not None else []) + list(ids)
        for begin, end, skip in windows_for(seq, context, stride):
            work.append((i, seq[begin:end], skip))
    work.sort(key=lambda w: -len(w[1]))
    batches, k = [], 0
    while k < len(work):
        width = len(work[k][1]) - 1
        n = max(1, batch_tokens // max(1, width))
        batches.append(work[k : k + n])
        k += n
    totals = [0.0] * len(texts)
    counts = [0] * len(texts)
    with torch.inference_mode():
        for batch in tqdm(batches, desc=desc, unit="batch", disable=not progress, leave=False):
            width = len(batch[0][1]) - 1
            tokens = torch.zeros(len(batch), width + 1, dtype=torch.long)
            mask = torch.zeros(len(batch), width + 1, dtype=torch.bool)
            for row, (_, window, _) in enumerate(batch):
                tokens[row, : len(window)] = torch.tensor(window)
                mask[row, : len(window)] = True
            tokens, mask = tokens.to(model.device), mask.to(model.device)
            scored = [(row, skip, len(window) - 1) for row, (_, window, skip) in enumerate(batch)]
            rows = torch.cat([torch.full((end - skip,), row, dtype=torch.long) for row, skip, end in scored])
            cols = torch.cat([torch.arange(skip, end) for _, skip, end in scored])
            nll = batch_nll(model, tokens, mask, rows.to(model.device), cols.to(model.device), vocab)
            sums = torch.zeros(len(batch), dtype=torch.float64).index_add_(0, rows, nll.double().cpu())
            for row, (doc, window, skip) in enumerate(batch):
                totals[doc] += sums[row].item()
                counts[doc] += len(window) - 1 - skip
    for s, nll_sum, n in zip(scores, totals, counts):
        s.nll, s.n_tokens = nll_sum, n
    return scores


def summarize(scores: list[DocScore]) -> dict:
    """Token-level loss and perplexity, and bits per character (summed NLL in bits / characters)."""
    nll = sum(s.nll for s in scores)
    tokens = sum(s.n_tokens for s in scores)
    chars = sum(s.n_chars for s in scores)
    if tokens == 0:
        raise EvalError("nothing was scored: every text encodes to zero tokens")
    loss = nll / tokens
    return {"loss": loss, "ppl": math.exp(loss), "bpc": nll / math.log(2) / chars, "n_tokens": tokens,
            "n_docs": len(scores), "n_chars": chars}
