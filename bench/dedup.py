"""Dedup benchmark: our MinHash against datasketch, and each rule's precision / recall on planted duplicates.

    python bench/dedup.py                 # both parts, English and Chinese; writes bench/results/dedup.md
    python bench/dedup.py --part speed    # only (1)
    python bench/dedup.py --part planted  # only (2)

(1) Speed and accuracy: the same real documents (shared data) through
    ``skypile.dedup.minhash`` (numpy, per document and batched) and through
    datasketch ``MinHash.update_batch`` on the same 5-gram shingles (shared
    permutations, the fast way to use it), one core each (CPU time, best of 5
    interleaved rounds, OMP_NUM_THREADS=1); then the mean absolute
    error of both Jaccard estimates against the true Jaccard of the same shingle
    sets, on pairs of an article and an edited copy (1–30% of words changed).
(2) Planted duplicates (``skypile.evaluation.dedup``): real articles with exact,
    syndicated and templated copies, deduplicated by the real ``skypile dedup``
    command with several rule sets, and by plain datasketch ``MinHashLSH`` (5-gram
    shingles, thresholds 0.7 and 0.5) for reference; pairwise precision and recall.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core each: set before numpy loads

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skypile.dedup.minhash import MinHasher, jaccard_estimate, normalize, shingle_hashes  # noqa: E402
from skypile.evaluation import dedup as ev  # noqa: E402

NUM_PERM = 128


def _shingle_strings(text: str, lang: str, n: int = 5) -> list[bytes]:
    """What a datasketch user builds: normalized word (en) or character (zh) 5-grams as bytes."""
    norm = normalize(text)
    if lang == "zh":
        s = norm.replace(" ", "")
        grams = [s[i : i + n] for i in range(max(1, len(s) - n + 1))]
    else:
        w = norm.split()
        grams = [" ".join(w[i : i + n]) for i in range(max(1, len(w) - n + 1))]
    return [g.encode("utf-8") for g in grams]


def speed(docs: list[tuple[str, str]]) -> dict:
    from datasketch import MinHash

    hasher = MinHasher(NUM_PERM)
    perms = MinHash(num_perm=NUM_PERM).permutations

    def ours() -> None:
        for text, _ in docs:
            hasher.signature(shingle_hashes(text))

    def ours_batch() -> None:
        for i in range(0, len(docs), 256):
            hasher.signatures([shingle_hashes(t) for t, _ in docs[i : i + 256]])

    def ds() -> None:
        for text, lang in docs:
            m = MinHash(num_perm=NUM_PERM, permutations=perms, scheme="affine32")
            m.update_batch(_shingle_strings(text, lang))

    strings = [_shingle_strings(t, lang) for t, lang in docs]

    def ds_hash_only() -> None:
        for s in strings:
            m = MinHash(num_perm=NUM_PERM, permutations=perms, scheme="affine32")
            m.update_batch(s)

    # CPU seconds of this process (docs/s per core, whatever else the machine runs), best of 5 rounds,
    # the implementations interleaved round by round so load changes hit them alike
    runs = [("skypile per doc", ours), ("skypile batched", ours_batch), ("datasketch (shingling + update_batch)", ds),
            ("datasketch update_batch only", ds_hash_only)]
    best = {name: float("inf") for name, _ in runs}
    for _ in range(5):
        for name, fn in runs:
            t0 = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t0)
    return {name: len(docs) / secs for name, secs in best.items()}


def accuracy(articles: list[tuple[str, str]], seed: int = 0) -> dict:
    """MAE of the Jaccard estimates (ours, datasketch) against the truth, same shingles."""
    from datasketch import MinHash

    rng = random.Random(seed)
    hasher = MinHasher(NUM_PERM)
    perms = MinHash(num_perm=NUM_PERM, scheme="affine32").permutations
    err_ours, err_ds = [], []
    for text, lang in articles:
        spans = ev._units(text, lang)
        if len(spans) < 50:
            continue
        vocab = [text[a:b] for a, b in spans]
        edited = ev._replace(text, spans, rng.sample(range(len(spans)), int(len(spans) * rng.uniform(0.01, 0.3))), vocab, rng)
        a, b = shingle_hashes(text), shingle_hashes(edited)
        sa, sb = set(a.tolist()), set(b.tolist())
        true = len(sa & sb) / len(sa | sb)
        err_ours.append(abs(jaccard_estimate(hasher.signature(a), hasher.signature(b)) - true))
        ma = MinHash(num_perm=NUM_PERM, permutations=perms, scheme="affine32")
        mb = MinHash(num_perm=NUM_PERM, permutations=perms, scheme="affine32")
        ma.update_batch([x.to_bytes(8, "little") for x in sa])
        mb.update_batch([x.to_bytes(8, "little") for x in sb])
        err_ds.append(abs(ma.jaccard(mb) - true))
    return {"pairs": len(err_ours), "mae_skypile": float(np.mean(err_ours)), "mae_datasketch": float(np.mean(err_ds))}


def datasketch_lsh(docs: list[dict], threshold: float) -> list[list[str]]:
    from datasketch import MinHash, MinHashLSH

    perms = MinHash(num_perm=NUM_PERM, scheme="affine32").permutations
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    rows = []
    for d in docs:
        m = MinHash(num_perm=NUM_PERM, permutations=perms, scheme="affine32")
        m.update_batch(_shingle_strings(d["text"], d["lang"]))
        for other in lsh.query(m):
            rows.append((d["id"], other))
        lsh.insert(d["id"], m)
    return ev.clusters_from_rows(rows)


def skypile_dedup(docs: list[dict], rules: str, workdir: str) -> tuple[list[list[str]], float]:
    import pyarrow.parquet as pq

    from skypile.cli import main

    src = os.path.join(workdir, "docs.jsonl")
    with open(src, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    out = os.path.join(workdir, "out-" + rules.replace(",", "-"))
    t0 = time.perf_counter()
    code = main(["dedup", "--input", src, "--output", out, "--rules", rules, "--overwrite", "--no-progress"])
    seconds = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"skypile dedup failed ({code})")
    rows = pq.read_table(os.path.join(out, "clusters.parquet")).to_pylist()
    return ev.clusters_from_rows((r["doc_id"], r["cluster_id"]) for r in rows), seconds


def planted(langs: list[str], seed: int) -> list[dict]:
    results = []
    for lang in langs:
        arts = ev.base_articles(lang, limit=900 if lang == "zh" else None)
        ps = ev.plant(arts, lang, seed=seed)
        print(f"\n[{lang}] {len(arts)} real articles → {len(ps.docs)} documents, {len(ps.clusters)} planted clusters", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            for rules in ["exact", "exact,minhash", "exact,segments,minhash", "exact,segments,minhash,semantic"]:
                clusters, secs = skypile_dedup(ps.docs, rules, tmp)
                s = ev.pairwise_scores(clusters, ps.clusters)
                results.append({"lang": lang, "method": f"skypile dedup --rules {rules}", **s, "by_kind": ev.recall_by_kind(clusters, ps), "seconds": secs})
                print(f"  {results[-1]['method']:<46} P {s['precision']:.3f} R {s['recall']:.3f}  {results[-1]['by_kind']}", flush=True)
        for t in (0.7, 0.5):
            t0 = time.perf_counter()
            clusters = datasketch_lsh(ps.docs, t)
            s = ev.pairwise_scores(clusters, ps.clusters)
            results.append({"lang": lang, "method": f"datasketch MinHashLSH t={t}", **s, "by_kind": ev.recall_by_kind(clusters, ps),
                            "seconds": time.perf_counter() - t0})
            print(f"  {results[-1]['method']:<46} P {s['precision']:.3f} R {s['recall']:.3f}  {results[-1]['by_kind']}", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["speed", "planted", "all"], default="all")
    ap.add_argument("--langs", default="en,zh")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "dedup.json"))
    args = ap.parse_args()
    langs = args.langs.split(",")
    report: dict = {}
    if args.part in ("speed", "all"):
        docs = [(t, lang) for lang in langs for t in ev.base_articles(lang, limit=600)]
        sp = speed(docs)
        base = sp["datasketch (shingling + update_batch)"]
        print(f"\n(1) MinHash, {NUM_PERM} permutations, {len(docs)} real documents ({', '.join(langs)}), one core")
        for name, rate in sp.items():
            print(f"  {name:<40} {rate:>9.0f} docs/s   {rate / base:5.1f}x datasketch")
        acc = accuracy(docs)
        print(f"  Jaccard MAE on {acc['pairs']} article/edited-copy pairs: skypile {acc['mae_skypile']:.4f}, datasketch {acc['mae_datasketch']:.4f}")
        report["speed_docs_per_s"] = sp
        report["accuracy"] = acc
    if args.part in ("planted", "all"):
        print("\n(2) planted duplicates, pairwise precision / recall")
        report["planted"] = planted(langs, args.seed)
    Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    md = Path(args.out).with_suffix(".md")
    md.write_text(markdown(report))
    print(f"\nwrote {args.out} and {md}")


def markdown(report: dict) -> str:
    lines = ["# Dedup benchmark (bench/dedup.py)", ""]
    if "speed_docs_per_s" in report:
        sp, acc = report["speed_docs_per_s"], report["accuracy"]
        base = sp["datasketch (shingling + update_batch)"]
        lines += ["## (1) MinHash: skypile vs datasketch, same documents, one core", "",
                  f"{NUM_PERM} permutations; real English and Chinese articles from ../shared/data; word 5-grams (en),",
                  "character 5-grams (zh). datasketch 2.0 `MinHash.update_batch` with shared permutations.", "",
                  "| implementation | docs/s | vs datasketch |", "|---|---:|---:|"]
        lines += [f"| {name} | {rate:.0f} | {rate / base:.1f}x |" for name, rate in sp.items()]
        lines += ["", f"Mean absolute error of the Jaccard estimate against the true Jaccard of the same shingle sets, "
                  f"{acc['pairs']} article / edited-copy pairs (1–30% of words changed): skypile {acc['mae_skypile']:.4f}, "
                  f"datasketch {acc['mae_datasketch']:.4f}.", ""]
    if "planted" in report:
        lines += ["## (2) Planted duplicates: pairwise precision / recall", "",
                  "Real articles (skypile.evaluation.dedup) with exact, syndicated (new header/footer, 1–3 rewritten spans of",
                  "5–10%) and templated copies (3–6% scattered edits inside a site's navigation/related-links block that also",
                  "wraps unrelated pages); `skypile dedup` (in process) and plain datasketch MinHashLSH on word/char 5-grams.", "",
                  "| lang | method | precision | recall | recall by kind | s |", "|---|---|---:|---:|---|---:|"]
        for r in report["planted"]:
            kinds = ", ".join(f"{k} {v:.3f}" for k, v in r["by_kind"].items())
            lines.append(f"| {r['lang']} | {r['method']} | {r['precision']:.3f} | {r['recall']:.3f} | {kinds} | {r['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
