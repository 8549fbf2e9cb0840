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


def score_texts(model: ScoringModel, texts: list[str], *, stride: int | None = None, batch_tokens: int = 8192,
                desc: str = "scoring", progress: bool = True) -> list[DocScore]:
    """Summed token NLL (nats), token and character counts of each text under ``model``."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    context = model.context
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
            logits = model.logits(tokens[:, :-1], mask[:, :-1])
            targets = tokens[:, 1:]
            nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
            nll = nll.view(targets.shape).double().cpu()
            for row, (doc, window, skip) in enumerate(batch):
                totals[doc] += nll[row, skip : len(window) - 1].sum().item()
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
