"""Real token shards for the trainer tests, built once per session from ../shared/data.

Training documents: English Wikipedia articles (WikiText-2 test split, split on
`` = Title =`` headings), Chinese Wikipedia articles (``<doc>`` blocks) and 90%
of the Linguist code samples.  Held-out validation sets of other
distributions: the other 10% of the code, Dolma English web pages, Skywork's
zh_news eval set and the WikiText-2 validation split.  Tokenized with a small
SentencePiece BPE model trained on the training text (via
``skypile.tokenizer.spm`` when present) and written with the pipeline's own
shard writer and manifest.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from skypile.data_paths import shared_path
from skypile.document import Document
from skypile.tokenizer.spm import load_tokenizer, tokenizer_info, train_tokenizer
from skypile.writers.parquet import shard_index, write_manifest, write_shard

VOCAB = 4000
NUM_SHARDS = 4
ROW_GROUP_ROWS = 16
_CACHE: dict[str, dict] = {}

SOURCES = {
    "wiki_en": ("wiki", "en", "wikitext-2-raw-test.txt"),
    "wiki_zh": ("wiki", "zh", "zhwiki-extract-AA-wiki_00.txt"),
    "code": ("code", "linguist-samples.jsonl.gz"),
    "web_en": ("web", "en", "dolma"),
    "zh_news": ("domains", "zh", "skywork-eval-loss", "zh_news.jsonl"),
    "wiki_en_valid": ("wiki", "en", "wikitext-2-tokenized-valid.txt"),
}


def wikitext_articles(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8-sig")
    parts = re.split(r"(?m)^ = (?!=)(.+?) = *$", text)
    # parts: [preamble, title1, body1, title2, body2, ...]
    return [f"{t.strip()}\n{b.strip()}" for t, b in zip(parts[1::2], parts[2::2]) if b.strip()]


def zhwiki_articles(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [m.strip() for m in re.findall(r"<doc[^>]*>(.*?)</doc>", text, flags=re.S) if m.strip()]


def code_files(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line)["content"] for line in f if line.strip()]


def train_sentencepiece(texts: list[str], out_dir: Path, vocab_size: int) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = out_dir / "tokenizer-train.txt"
    corpus.write_text("\n".join(t.replace("\r", "") for t in texts), encoding="utf-8")
    return train_tokenizer([str(corpus)], str(out_dir), vocab_size=vocab_size)


def build_real_shards(base: Path, require) -> dict:
    """Shards + validation files under ``base``; ``require`` is conftest's require_shared."""
    if str(base) in _CACHE:
        return _CACHE[str(base)]
    for parts in SOURCES.values():
        require(*parts)
    wiki_en = wikitext_articles(shared_path(*SOURCES["wiki_en"]))
    wiki_zh = zhwiki_articles(shared_path(*SOURCES["wiki_zh"]))
    code = code_files(shared_path(*SOURCES["code"]))
    code_train = [c for i, c in enumerate(code) if i % 10 != 0]
    code_val = [c for i, c in enumerate(code) if i % 10 == 0]

    model_path = train_sentencepiece(wiki_en + wiki_zh + code_train, base / "tokenizer", VOCAB)
    sp = load_tokenizer(model_path)
    docs: list[Document] = []
    corpora = (("wiki/en", "en", wiki_en), ("wiki/zh", "zh", wiki_zh), ("code/linguist", "", code_train))
    for source, lang, texts in corpora:
        ids = sp.encode(texts)
        for i, (text, toks) in enumerate(zip(texts, ids)):
            if toks:
                docs.append(Document(id=f"{source}/{i:05d}", text=text, source=source, lang=lang, tokens=toks))
    out = base / "shards"
    buckets: list[list[Document]] = [[] for _ in range(NUM_SHARDS)]
    for d in docs:
        buckets[shard_index(d.id, NUM_SHARDS)].append(d)
    infos = [write_shard(b, str(out), i, NUM_SHARDS, row_group_rows=ROW_GROUP_ROWS) for i, b in enumerate(buckets)]
    manifest = write_manifest(str(out), infos, tokenizer=tokenizer_info(model_path))

    val_dir = base / "val"
    val_dir.mkdir(exist_ok=True)
    code_val_path = val_dir / "code.jsonl"
    code_val_path.write_text("".join(json.dumps({"text": c}) + "\n" for c in code_val), encoding="utf-8")
    dolma = sorted(shared_path(*SOURCES["web_en"]).glob("cc_en_head-*.jsonl"))
    val_sets = {
        "code": str(code_val_path),
        "web_en": str(dolma[0]),
        "zh_news": str(shared_path(*SOURCES["zh_news"])),
        "wiki_en": str(shared_path(*SOURCES["wiki_en_valid"])),
    }
    result = {"dir": str(out), "manifest": manifest, "tokenizer": model_path, "docs": docs, "val_sets": val_sets,
              "eos_id": sp.eos_id()}
    _CACHE[str(base)] = result
    return result


@pytest.fixture(scope="session")
def real_shards(tmp_path_factory, shared) -> dict:
    """``{"dir", "manifest", "tokenizer", "docs", "val_sets", "eos_id"}`` (built once per session)."""
    if "session" in _CACHE:
        return _CACHE["session"]
    base = tmp_path_factory.mktemp("trainer-shards")
    _CACHE["session"] = build_real_shards(base, shared)
    return _CACHE["session"]


def fsdp_init_worker(rank: int, world: int, store: str, out_dir: str) -> None:
    """torch.multiprocessing.spawn target: FSDP2-sharded init must equal a single-process init."""
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    from skypile.trainer.config import ModelConfig
    from skypile.trainer.model import build_model, canonical_name
    from skypile.trainer.parallelize import parallelize

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        cfg = ModelConfig(dim=64, n_layers=2, n_heads=4, vocab_size=515, multiple_of=32, max_seq_len=64)
        sharded = build_model(cfg, "meta")
        parallelize(sharded, init_device_mesh("cpu", (world,)), param_dtype="float32", activation_checkpointing=True)
        sharded.to_empty(device="cpu")
        sharded.init_weights(5)
        ref = build_model(cfg, "cpu")
        ref.init_weights(5)
        ref_sd = ref.state_dict()
        mismatched = [k for k, v in sharded.state_dict().items()
                      if not torch.equal(v.full_tensor(), ref_sd[canonical_name(k)])]
        local_rows = sharded.output.weight.to_local().shape[0]
        x = torch.randint(0, cfg.vocab_size, (2, 33), generator=torch.Generator().manual_seed(0))
        diff = (sharded(x) - ref(x)).abs().max().item()
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(
            {"mismatched": mismatched, "local_rows": local_rows, "max_diff": diff}))
    finally:
        dist.destroy_process_group()
