"""Characters per token of the base and the extended SkyPile vocabulary, and tokenize-stage throughput.

    python bench/tokenizer.py [--model models/build/tokenizer/skypile-sp.model] [--out bench/results/tokenizer.md]

* chars/token on held-out English (CleanEval gold texts), Chinese (Skywork's zh domain
  loss sets) and code (GitHub linguist samples; these are also in the base's training
  text) from ``../shared/data``: the BPE base (``base.model``, written beside the built
  model) against the 65,536-piece extension.  Skywork's point: Chinese needs far fewer
  tokens per character once the vocabulary has Chinese characters and words.
* encode throughput of the pipeline's ``tokenize`` stage (Document in, int32 id array
  out), and of the stage plus the writer's uint16 ``tokens`` column, against a bare
  ``sp.encode`` loop over the same texts (target: stage >= 0.8x the bare loop).
  Best of ``--repeat`` runs, the three taking turns.

Without a built model (``skypile models build``) the recipe is built into a temporary folder first.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from skypile.data_paths import REPO_ROOT, models_build_dir, shared_data_dir, shared_path
from skypile.document import Document
from skypile.readers.jsonl import iter_texts
from skypile.schema import tokens_column
from skypile.tokenizer.build import BASE_NAME, build_vocabulary
from skypile.tokenizer.spm import Tokenize, load_tokenizer

GOLD_TAG = re.compile(r"^\s*<[phl]>\s*", re.M)


def texts() -> dict[str, list[str]]:
    gold = sorted(shared_path("html-en", "cleaneval", "gold").glob("*.txt.gz"))[:100]
    en = []
    for path in gold:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            body = f.read().split("\n", 1)[-1]  # first line: "URL: ..."
        en.append(GOLD_TAG.sub("", body).strip())
    zh_dir = shared_path("domains", "zh", "skywork-eval-loss")
    zh = [json.loads(line)["text"] for path in sorted(zh_dir.glob("zh_*.jsonl")) for line in path.read_text().splitlines()[:50]]
    code = [t for _, t in zip(range(300), iter_texts(str(shared_path("code", "linguist-samples.jsonl.gz"))))]
    return {"English (CleanEval gold)": [t for t in en if t], "Chinese (Skywork zh domains)": zh, "code (linguist)": code}


def chars_per_token(sp, docs: list[str]) -> float:
    return sum(map(len, docs)) / max(1, sum(map(len, sp.encode(docs))))


def best_interleaved(fns: list, repeat: int) -> list[float]:
    """Best time of each function, the functions taking turns (a busy machine slows all alike)."""
    times = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i] = min(times[i], time.perf_counter() - t0)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(models_build_dir() / "tokenizer" / "skypile-sp.model"))
    ap.add_argument("--out", default=None, help="write the results as Markdown here")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    model = Path(args.model)
    scratch = None
    if not (model.exists() and (model.parent / BASE_NAME).exists()):
        scratch = tempfile.TemporaryDirectory()
        recipe = json.loads((REPO_ROOT / "models" / "tokenizer" / "recipe.json").read_text())
        t0 = time.perf_counter()
        model = Path(build_vocabulary(recipe, shared_data_dir(), scratch.name))
        print(f"built the recipe in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    ext, base = load_tokenizer(str(model)), load_tokenizer(str(model.parent / BASE_NAME))
    data = texts()

    lines = [f"# Tokenizer: base vs extended vocabulary, and tokenize-stage throughput\n",
             f"Model: `{model.name}` ({ext.get_piece_size():,} pieces) vs its BPE base ({base.get_piece_size():,} pieces).\n",
             "| text | docs | chars | base chars/token | extended chars/token | tokens, extended / base |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, docs in data.items():
        b, e = chars_per_token(base, docs), chars_per_token(ext, docs)
        lines.append(f"| {name} | {len(docs)} | {sum(map(len, docs)):,} | {b:.2f} | {e:.2f} | {b / e:.2f} |")

    all_docs = [t for docs in data.values() for t in docs]
    n_chars = sum(map(len, all_docs))
    stage = Tokenize(str(model))
    sp = stage.sp
    documents = [Document(id=str(i), text=t, source="bench") for i, t in enumerate(all_docs)]

    def bare():
        for t in all_docs:
            sp.encode(t)

    def tokenize_stage():
        for d in documents:
            stage(d)

    def stage_and_column():
        for d in documents:
            stage(d)
        tokens_column(documents, "uint16")

    names = ["bare `sp.encode` loop (baseline)", "pipeline `tokenize` stage", "`tokenize` stage + uint16 `tokens` column"]
    rows = list(zip(names, best_interleaved([bare, tokenize_stage, stage_and_column], args.repeat)))
    lines += ["", f"Encode throughput over all {len(all_docs)} texts ({n_chars:,} characters), best of {args.repeat}:", "",
              "| what | seconds | MB chars/s | vs bare loop |", "|---|---:|---:|---:|"]
    for name, sec in rows:
        lines.append(f"| {name} | {sec:.3f} | {n_chars / sec / 1e6:.2f} | {rows[0][1] / sec:.2f}x |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        Path(args.out).write_text(report)
    if scratch:
        scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
