"""Quality scoring speed: documents per second per core for LID + perplexity + classifier.

    python bench/quality.py [--models models/build] [--docs 3000] [--repeat 3] [--out bench/results/quality.md]

Rows, each on one core (one process, one thread) over the same documents (real
English and Chinese web text and Wikipedia paragraphs from ../shared/data,
cycled to ``--docs``):

* **plain loop** (baseline): the library calls one document at a time — fastText
  ``predict`` for the language, per paragraph CCNet normalization + SentencePiece
  ``encode`` + KenLM ``score``, fastText ``predict`` for the classifier;
* **SkyPile stages**: ``langid`` → ``perplexity`` → ``ref_prob`` as the pipeline
  runs them (:func:`skypile.stage.run_stage`: counting and timing every document);
* **KenLM scoring alone** (per paragraph pieces already made), the ceiling.

Ratios are against the plain loop, so they show our overhead.  Times are CPU seconds of the process
(``time.process_time``: on a shared machine, wall time measures the neighbours), best of ``--repeat``
interleaved rounds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from skypile.data_paths import models_build_dir, shared_data_dir
from skypile.document import Document
from skypile.filters.language import LanguageId
from skypile.quality.corpora import chunks, web_texts, wiki_articles
from skypile.quality.perplexity import Perplexity, load_language_model
from skypile.quality.ref_classifier import RefProb, load_classifier, probability
from skypile.quality.text import paragraphs
from skypile.stage import StageStats, run_stage


def documents(n: int) -> list[tuple[str, str]]:
    data = shared_data_dir()
    texts = []
    for lang in ("en", "zh"):
        texts += [(t.text, lang) for t in web_texts(data, lang, max_reviews=100, max_pages=40)]
        texts += [(c.text, lang) for a in wiki_articles(data, lang)[:10] for c in chunks(a, 2000)]
    return [texts[i % len(texts)] for i in range(n)]


def plain_loop(docs: list[tuple[str, str]], models: Path) -> None:
    lid = LanguageId().model
    lms = {lang: load_language_model(str(models / "kenlm"), lang) for lang in ("en", "zh")}
    clf = load_classifier(str(models / "wikiref" / "wikiref.bin"))
    for text, _ in docs:
        labels, _p = lid.predict(" ".join(text[:10_000].split()), k=1)
        lang = labels[0].removeprefix("__label__") if labels else ""
        lm = lms.get(lang)
        if lm is not None:
            total = n = 0
            for para in paragraphs(text):
                line = " ".join(lm.sp.encode(para, out_type=str))
                total += lm.lm.score(line)
                n += line.count(" ") + 2
        probability(clf, text)


def stages(docs: list[tuple[str, str]], models: Path) -> StageStats:
    chain = [LanguageId(), Perplexity(str(models / "kenlm")), RefProb(str(models / "wikiref" / "wikiref.bin"))]
    stats = StageStats()
    items = (Document(id=str(i), text=t, source="bench") for i, (t, _) in enumerate(docs))
    for stage in chain:
        items = run_stage(stage, items, stats)
    for _ in items:
        pass
    return stats


def kenlm_alone(docs: list[tuple[str, str]], models: Path) -> int:
    lms = {lang: load_language_model(str(models / "kenlm"), lang) for lang in ("en", "zh")}
    lines = [(lms[lang], [" ".join(lms[lang].sp.encode(p, out_type=str)) for p in paragraphs(t)]) for t, lang in docs]
    t0 = time.process_time()
    for lm, ls in lines:
        for line in ls:
            lm.lm.score(line)
    return time.process_time() - t0


def best_interleaved(fns: list, repeat: int) -> list[float]:
    """Best time of each function over ``repeat`` rounds, the functions alternating within a round
    (so a busy spell on a shared machine hits every row alike)."""
    times = [[] for _ in fns]
    for _ in range(repeat):
        for t, fn in zip(times, fns):
            t0 = time.process_time()
            fn()
            t.append(time.process_time() - t0)
    return [min(t) for t in times]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=str(models_build_dir()))
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    models = Path(args.models)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    docs = documents(args.docs)
    chars = sum(len(t) for t, _ in docs) / len(docs)
    plain_loop(docs[:50], models)  # load every model once, outside the timings
    base, ours = best_interleaved([lambda: plain_loop(docs, models), lambda: stages(docs, models)], args.repeat)
    alone = min(kenlm_alone(docs, models) for _ in range(args.repeat))
    rows = [("plain loop (baseline)", base), ("SkyPile stages langid → perplexity → ref_prob", ours), ("KenLM score() alone", alone)]
    lines = [
        "# Quality scoring: documents/s per core",
        "",
        f"{len(docs)} documents (real en + zh web text and Wikipedia pieces, mean {chars:.0f} chars), one process, "
        f"best of {args.repeat} interleaved rounds; models from `skypile models build`; load average while measuring "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs. Command: `python bench/quality.py`.",
        "",
        "| row | CPU seconds | docs/s/core | vs plain loop |",
        "|---|---:|---:|---:|",
    ]
    for name, sec in rows:
        lines.append(f"| {name} | {sec:.2f} | {len(docs) / sec:,.0f} | {base / sec:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
