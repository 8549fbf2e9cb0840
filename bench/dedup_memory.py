"""Peak memory of ``skypile dedup`` over 25k and 100k documents (issue: dedup at corpus scale).

    python bench/dedup_memory.py [--sizes 25000,100000] [--runner local|DirectRunner] [--rules R] [--out FILE]

The documents are paragraphs of real sentences (English and Chinese articles of
../shared/data) drawn at random, so documents are distinct as in a crawl, plus
10% planted copies (exact and edited) so every rule has work.  Each size runs ``skypile dedup`` (default
rules ``exact,segments,minhash``; in process, or on Beam's DirectRunner with ``--runner DirectRunner``, its
worker processes included) under ``../shared/tools/peak-mem``:
the peak PSS of the whole process tree.  Target: under 1.5 GiB at 100k, and
less than 25% growth from 25k to 100k.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_memory import SKYPILE, peak  # noqa: E402

from skypile.evaluation import dedup as ev  # noqa: E402


def _sentences(lang: str) -> list[str]:
    texts = ev.base_articles(lang, limit=900 if lang == "zh" else None)
    pattern = r"(?<=[。！？])" if lang == "zh" else r"(?<=[.!?])\s+"
    out = [s.strip() for t in texts for s in re.split(pattern, t.replace("\n", " ")) if len(s.strip()) > 10]
    return out


def write_corpus(path: Path, n: int, seed: int = 0) -> int:
    """``n`` documents of 2–6 paragraphs, each paragraph 3–6 real sentences drawn at random (so documents are
    distinct, as in a crawl), plus 10% copies of recent documents, half of them with a few words changed."""
    rng = random.Random(seed)
    pools = {lang: _sentences(lang) for lang in ("en", "zh")}
    size = 0
    with path.open("w", encoding="utf-8") as f:
        recent: list[tuple[str, str]] = []
        for i in range(n):
            if recent and rng.random() < 0.1:  # a planted copy of a recent document
                lang, text = rng.choice(recent)
                if rng.random() < 0.5:
                    spans = ev._units(text, lang)
                    text = ev._replace(text, spans, rng.sample(range(len(spans)), max(1, len(spans) // 30)), ["edit"], rng)
            else:
                lang = "en" if i % 2 else "zh"
                joiner = "" if lang == "zh" else " "
                text = "\n".join(joiner.join(rng.choice(pools[lang]) for _ in range(rng.randint(3, 6)))
                                 for _ in range(rng.randint(2, 6)))
            recent = (recent + [(lang, text)])[-50:]
            line = json.dumps({"id": f"doc-{i:08d}", "text": text}, ensure_ascii=False) + "\n"
            size += len(line.encode("utf-8"))
            f.write(line)
    return size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="25000,100000")
    ap.add_argument("--runner", default="local", help="local (in process) or DirectRunner (Beam, 2 workers)")
    ap.add_argument("--rules", default="", help="dedup rules (default: skypile dedup's, exact,segments,minhash)")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    suffix = ("" if args.runner == "local" else "_" + args.runner.lower()) + ("_" + args.rules.replace(",", "-") if args.rules else "")
    args.out = args.out or str(Path(__file__).parent / "results" / f"dedup_memory{suffix}.md")
    runner = ["--runner", args.runner] + ([] if args.runner == "local" else ["--workers", "2"])
    runner += ["--rules", args.rules] if args.rules else []
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            src = Path(tmp) / f"docs-{n}.jsonl"
            nbytes = write_corpus(src, n)
            out = Path(tmp) / f"out-{n}"
            mib, secs = peak([SKYPILE, "dedup", "--input", str(src), "--output", str(out), "--no-progress", *runner])
            stats = json.loads((out / "stats.json").read_text())
            kept = stats["kept"]
            rows.append((n, nbytes, mib, secs, kept))
            print(f"{n:>8} docs {nbytes / 1e6:7.1f} MB  peak {mib:5d} MiB  {secs:6.1f} s  kept {kept}", flush=True)
    base = rows[0][2]
    lines = [
        "# Peak memory of `skypile dedup` (bench/dedup_memory.py)",
        "",
        "Whole process tree (peak PSS, ../shared/tools/peak-mem), "
        + ("in-process executor" if args.runner == "local" else f"Beam {args.runner}, 2 worker processes")
        + (f", rules `{args.rules}`;" if args.rules else ", default rules `exact,segments,minhash`;"),
        "documents of random real sentences (../shared/data), 10% planted copies.",
        "",
        "| documents | input MB | peak MiB | growth vs first | seconds | kept |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n, nbytes, mib, secs, kept in rows:
        lines.append(f"| {n:,} | {nbytes / 1e6:.1f} | {mib} | {100 * (mib / base - 1):+.0f}% | {secs:.0f} | {kept:,} |")
    lines += ["", "Target: < 1.5 GiB at 100k documents, < 25% growth from 25k to 100k."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
