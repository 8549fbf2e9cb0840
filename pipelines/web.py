"""The web-crawl job: WARC in, tokenized Parquet shards + manifest + stats out.

    read → extract → langid → length → exact_dedup → tokenize → write

Every record that enters leaves as a row in a shard or as a line in
``DIR/dropped/`` (stage, reason, id, url), and is counted under that stage and
reason in Beam metrics; :func:`run` turns the metrics into ``DIR/stats.json``.
"""

from __future__ import annotations

import glob
import logging
import os
from typing import Iterator, Sequence

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from skypile import io
from skypile.config import WebPipelineConfig
from skypile.dedup.exact import STAGE as DEDUP_STAGE, dedup_key, resolve_group
from skypile.document import Document
from skypile.extractors.html import HtmlExtractor
from skypile.filters.language import LanguageFilter
from skypile.filters.length import LengthFilter
from skypile.readers.warc import read_warc
from skypile.stage import StageStats
from skypile.tokenizer.spm import Tokenize, tokenizer_info
from skypile.writers.parquet import ShardInfo, shard_index, write_manifest, write_shard

from .beam_stages import DROPPED, NAMESPACE, ReadFileDoFn, _Counters, apply_stage, dropped_to_json

log = logging.getLogger(__name__)
STAGE_ORDER = ["read", "extract", "langid", "length", DEDUP_STAGE, "tokenize", "write"]


class ExactDedupDoFn(beam.DoFn):
    """One group of identical normalized texts in, its survivor out, the rest dropped."""

    def setup(self) -> None:
        self.counters = _Counters(DEDUP_STAGE)

    def process(self, keyed: tuple[str, list[Document]]) -> Iterator:
        _, docs = keyed
        docs = list(docs)
        for _ in docs:
            self.counters.inc("in")
        survivor, drops = resolve_group(docs)
        for out in [survivor, *drops]:
            yield self.counters.route(out)


class WriteShardDoFn(beam.DoFn):
    def __init__(self, output_dir: str, num_shards: int, overwrite: bool):
        self.output_dir, self.num_shards, self.overwrite = output_dir, num_shards, overwrite

    def setup(self) -> None:
        self.counters = _Counters("write")

    def process(self, keyed: tuple[int, list[Document]]) -> Iterator[ShardInfo]:
        index, docs = keyed
        docs = list(docs)
        for _ in docs:
            self.counters.inc("in")
        info = write_shard(docs, self.output_dir, index, self.num_shards, overwrite=self.overwrite)
        for _ in range(info.rows):
            self.counters.inc("kept")
        yield info


def expand_inputs(patterns: Sequence[str]) -> list[str]:
    """Local globs (``**`` allowed) are expanded here; URIs go to Beam's MatchAll."""
    out: list[str] = []
    for pat in patterns:
        if "://" in pat:
            out.append(pat)
            continue
        matches = sorted(p for p in glob.glob(pat, recursive=True) if os.path.isfile(p))
        if not matches:
            raise FileNotFoundError(f"no input file matches {pat!r}")
        out.extend(os.path.abspath(m) for m in matches)
    return out


def build(p: beam.Pipeline, cfg: WebPipelineConfig, inputs: list[str], tok_info: dict) -> None:
    dropped: list[beam.PCollection] = []
    paths = (
        p
        | "inputs" >> beam.Create(inputs)
        | "match" >> fileio.MatchAll()
        | "paths" >> beam.Map(lambda m: m.path)
        | "spread_files" >> beam.Reshuffle()
    )
    read = paths | "read" >> beam.ParDo(ReadFileDoFn(read_warc)).with_outputs(DROPPED, main="kept")
    dropped.append(read[DROPPED])
    records = read["kept"] | "spread_records" >> beam.Reshuffle()

    docs = apply_stage(records, HtmlExtractor(max_bytes=cfg.max_page_bytes), dropped)
    docs = apply_stage(docs, LanguageFilter(keep=tuple(cfg.langs), min_score=cfg.min_lang_score, model_path=cfg.lid_model), dropped)
    docs = apply_stage(docs, LengthFilter(), dropped)

    dedup = (
        docs
        | "dedup_key" >> beam.Map(lambda d: (dedup_key(d), d))
        | "dedup_group" >> beam.GroupByKey()
        | DEDUP_STAGE >> beam.ParDo(ExactDedupDoFn()).with_outputs(DROPPED, main="kept")
    )
    dropped.append(dedup[DROPPED])
    docs = apply_stage(dedup["kept"], Tokenize(cfg.tokenizer), dropped)

    n = cfg.num_shards
    shards = (
        docs
        | "shard_key" >> beam.Map(lambda d: (shard_index(d.id, n), d))
        | "shard_group" >> beam.GroupByKey()
        | "write" >> beam.ParDo(WriteShardDoFn(cfg.output, n, cfg.overwrite))
    )
    _ = (
        shards
        | "collect_shards" >> beam.combiners.ToList()
        | "manifest" >> beam.Map(lambda infos: write_manifest(cfg.output, infos, tok_info))
    )
    _ = (
        dropped
        | "all_dropped" >> beam.Flatten()
        | "dropped_json" >> beam.Map(dropped_to_json)
        | "dead_letter" >> beam.io.WriteToText(io.join(cfg.output, "dropped", "dropped"), file_name_suffix=".jsonl")
    )


def pipeline_options(cfg: WebPipelineConfig, beam_args: Sequence[str]) -> PipelineOptions:
    args = list(beam_args)
    if not any(a.startswith("--runner") for a in args):
        args.append(f"--runner={cfg.runner}")
    if cfg.runner == "DirectRunner":
        if not any(a.startswith("--direct_running_mode") for a in args):
            args.append("--direct_running_mode=multi_processing")
        if not any(a.startswith("--direct_num_workers") for a in args):
            args.append(f"--direct_num_workers={cfg.direct_num_workers or os.cpu_count() or 1}")
        if not any(a.startswith("--default_sdk_harness_log_level") for a in args):
            args.append("--default_sdk_harness_log_level=WARNING")  # local workers: no per-bundle INFO chatter
    return PipelineOptions(args)


def collect_counters(result) -> dict[str, int]:
    counters: dict[str, int] = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + int(value or 0)
    return counters


def wait_with_progress(result, interval_s: float = 15.0) -> None:
    """Block until the job ends; remote runners (Dataflow, Flink, Spark) show live counters meanwhile.

    The local DirectRunner returns from ``run()`` only when finished, so this is a no-op there.
    """
    import time

    from apache_beam.runners.runner import PipelineState
    from tqdm import tqdm

    if not PipelineState.is_terminal(result.state):
        with tqdm(desc="records read", unit="rec") as bar:
            while not PipelineState.is_terminal(result.state):
                time.sleep(interval_s)
                try:
                    c = collect_counters(result)
                except Exception:  # some runners publish metrics only at the end
                    continue
                bar.n = c.get("read.in", 0)
                bar.set_postfix(extracted=c.get("extract.kept", 0), written=c.get("write.kept", 0), refresh=False)
                bar.refresh()
    result.wait_until_finish()


def run(cfg: WebPipelineConfig, beam_args: Sequence[str] = ()) -> dict:
    """Run the job to completion; returns the stats report also written to ``DIR/stats.json``."""
    from skypile.writers.parquet import read_manifest

    inputs = expand_inputs(cfg.inputs)
    tok_info = tokenizer_info(cfg.tokenizer)
    io.makedirs(cfg.output)
    p = beam.Pipeline(options=pipeline_options(cfg, beam_args))
    build(p, cfg, inputs, tok_info)
    result = p.run()
    wait_with_progress(result)
    manifest = read_manifest(cfg.output)
    stats = StageStats.from_counters(collect_counters(result), order=STAGE_ORDER)
    report = stats.write_json(
        io.join(cfg.output, "stats.json"),
        first_stage="read",
        final_kept=manifest["rows"],
        extra={"inputs": inputs, "tokens": manifest["tokens"], "num_shards": manifest["num_shards"]},
    )
    if not report["balanced"]:
        log.error("stats do not balance: %s in, %s kept, %s dropped", report["records_in"], report["kept"], report["dropped_total"])
    return report
