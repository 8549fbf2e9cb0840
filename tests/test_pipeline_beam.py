"""The Beam job end to end on the DirectRunner: real crawl WARCs in, shards + manifest + stats out."""

from __future__ import annotations

import io as pyio
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from skypile.cli import main
from skypile.dedup.exact import dedup_key
from skypile.document import SHARD_SCHEMA, table_to_documents
from skypile.recipes import RECIPES
from skypile.tokenizer.spm import load_tokenizer

# the web recipe scores pages with the quality models (tests/conftest.py builds small ones)
pytestmark = pytest.mark.usefixtures("quality_models")


def _run(inputs: list[str], out: Path, tokenizer: str, *extra: str) -> dict:
    args = ["run", "--runner", "DirectRunner", "--output", str(out), "--tokenizer", tokenizer, "--direct-num-workers", "2", "--shard-size", "100KB", "--no-progress", *extra]
    for i in inputs:
        args += ["--input", i]
    rc = main(args)
    stats = json.loads((out / "stats.json").read_text())
    assert rc == 0, stats
    return stats


def _dead_letters(out: Path) -> list[dict]:
    rows = []
    for f in sorted((out / "dropped").glob("*.jsonl")):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line]
    return rows


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory, shared, tokenizer_model):
    warc_dir = shared("warc")
    out = tmp_path_factory.mktemp("web")
    stats = _run([f"{warc_dir}/**/*"], out, tokenizer_model)
    return out, stats


def test_every_record_is_accounted_for(shared_run):
    out, stats = shared_run
    assert stats["balanced"] and stats["records_in"] == stats["kept"] + stats["dropped_total"]
    stages = stats["stages"]
    assert list(stages) == ["read", *RECIPES["web"][1], "write"]  # every stage of the recipe reports, in order
    for prev, cur in zip(list(stages)[:-1], list(stages)[1:]):
        assert stages[cur]["in"] == stages[prev]["kept"], (prev, cur)
    # the truncated sample and the non-response records are dropped at read, not crashed on
    read_drops = stages["read"]["dropped"]
    assert read_drops.get("warc_type_request", 0) >= 17 and read_drops.get("warc_type_metadata", 0) >= 16
    assert any(r in read_drops for r in ("truncated_input", "read_error"))
    # ClueWeb's Japanese pages reach langid (kana are measured per character); the language rule drops them
    # (or, most of them being shop-page boilerplate, at extract)
    assert stages["lang_filter"]["dropped"].get("lang_ja", 0) + stages["extract"]["dropped"].get("boilerplate_only", 0) >= 25
    assert stages["lang_filter"]["dropped"].get("lang_ja", 0) >= 1
    assert stages["exact_dedup"]["dropped"] == {"exact_duplicate": 2}
    # per-stage time is reported next to the counts, and the run config with it
    assert stages["extract"]["seconds"] > 0 and stages["extract"]["docs_per_s"] > 0
    assert stats["config"]["lang_filter"] == {"keep": ["en", "zh"], "min_score": 0.5}
    assert stats["config"]["output"]["shard_size"] == 100_000
    # the dead-letter files hold exactly the counted drops
    counted = Counter({(s, r): n for s, v in stages.items() for r, n in v["dropped"].items()})
    written = Counter((d["stage"], d["reason"]) for d in _dead_letters(out))
    assert written == counted


def test_shards_match_schema_manifest_and_text(shared_run, tokenizer_model):
    out, stats = shared_run
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == stats["kept"] > 10
    assert manifest["config"] == stats["config"] and manifest["fingerprint"] == stats["fingerprint"]
    sp = load_tokenizer(tokenizer_model)
    assert manifest["tokenizer"]["eos_id"] == sp.eos_id()
    langs, keys = Counter(), set()
    for shard in manifest["shards"]:
        table = pq.read_table(out / shard["path"])
        assert table.schema.equals(SHARD_SCHEMA, check_metadata=False)
        assert table.num_rows == shard["rows"] and sum(table.column("n_tokens").to_pylist()) == shard["tokens"]
        for doc in table_to_documents(table):
            assert sp.decode(doc.tokens) == doc.text  # tokens are exactly the kept text
            langs[doc.lang] += 1
            key = dedup_key(doc)
            assert key not in keys  # exact dedup held across shards
            keys.add(key)
    assert set(langs) <= {"en", "zh"} and langs["zh"] > 0 and langs["en"] > 0


def test_rerun_of_a_finished_run_does_nothing(shared_run, shared, tokenizer_model, capsys):
    out, stats = shared_run
    before = {p: p.stat().st_mtime_ns for p in (out / "shards").glob("*.parquet")}
    again = _run([f"{shared('warc')}/**/*"], out, tokenizer_model)
    assert "already holds this run" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (out / "shards").glob("*.parquet")} == before
    assert again["kept"] == stats["kept"] and again["balanced"]


def _record(writer: WARCWriter, url: str, body: bytes, content_type: str) -> None:
    headers = StatusAndHeaders("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))], protocol="HTTP/1.1")
    writer.write_record(writer.create_warc_record(url, "response", payload=pyio.BytesIO(body), http_headers=headers))


def test_bad_input_is_dropped_with_reasons(tmp_path, tokenizer_model, shared):
    good = ("<html><body><article>" + "<p>" + "This is a long paragraph of ordinary English prose about rivers and towns. " * 8 + "</p>" * 1 + "</article></body></html>")
    warc = tmp_path / "bad.warc.gz"
    with open(warc, "wb") as f:
        w = WARCWriter(f, gzip=True)
        _record(w, "http://ok.example/", good.encode(), "text/html; charset=utf-8")
        _record(w, "http://img.example/x.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "image/png")
        _record(w, "http://empty.example/", b"", "text/html")
        _record(w, "http://garbage.example/", bytes((i * 7919) % 256 for i in range(20000)), "text/html; charset=utf-8")
        _record(w, "http://huge.example/", b"<html><body><p>" + b"a" * (50 * 1024 * 1024) + b"</p></body></html>", "text/html")
    # a truncated gzip: the first half of a real compressed WARC
    real = (shared("warc", "dolma", "sample-0000.warc.gz")).read_bytes()
    (tmp_path / "truncated.warc.gz").write_bytes(real[: len(real) // 2])
    out = tmp_path / "out"
    stats = _run([str(warc), str(tmp_path / "truncated.warc.gz")], out, tokenizer_model)
    assert stats["balanced"]
    drops = Counter()
    for stage in stats["stages"].values():
        drops.update(stage["dropped"])
    assert drops["not_html"] >= 1
    assert drops["empty"] >= 1
    assert drops["too_large"] == 1
    assert drops["undecodable"] + drops["no_main_text"] + drops["low_lang_score"] + sum(v for k, v in drops.items() if k.startswith("lang_")) >= 1
    assert drops["truncated_input"] + drops["read_error"] == 1
    assert stats["kept"] >= 1  # the good page (and the pages before the truncation) survive


def test_input_glob_matching_nothing_is_a_clear_error(tmp_path, tokenizer_model, capsys):
    rc = main(["run", "--input", str(tmp_path / "nothing-*.warc.gz"), "--output", str(tmp_path / "o"), "--tokenizer", tokenizer_model])
    assert rc == 2 and "no input file matches" in capsys.readouterr().err


def test_six_hundred_real_pages_at_volume_in_many_small_shards(tmp_path, shared, tokenizer_model):
    """~600 real pages (en + zh, GBK/GB2312/UTF-8) as one WARC through the whole job, 64 KB shards."""
    from skypile.readers.warc_builder import build_warc_from_shared

    shared("html-zh", "cleaneval-zh")
    warc = tmp_path / "pages.warc.gz"
    pages = build_warc_from_shared(str(warc))
    assert pages > 550
    # every quality bucket kept: this test is about volume, encodings and shard sizes
    stats = _run([str(warc)], tmp_path / "out", tokenizer_model, "--shard-size", "64KB", "--set", "quality_bucket.keep=[head,middle,tail]")
    assert stats["balanced"] and stats["records_in"] == pages + 1  # + the warcinfo record
    assert stats["kept"] > 0.85 * pages
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["num_shards"] >= 20 and len(list((tmp_path / "out" / "shards").iterdir())) == manifest["num_shards"]
    for shard in manifest["shards"]:
        size = (tmp_path / "out" / shard["path"]).stat().st_size
        assert size == shard["bytes"]
        assert size <= 64_000 * 1.1 or shard["rows"] == 1, shard  # only a single huge document may exceed the bound
    charsets, langs = Counter(), Counter()
    for shard in manifest["shards"]:
        for doc in table_to_documents(pq.read_table(tmp_path / "out" / shard["path"])):
            charsets[doc.metadata.charset] += 1
            langs[doc.lang] += 1
    assert charsets["gb18030"] >= 10  # GBK/GB2312 pages decoded and kept, not mangled
    assert langs["zh"] >= 80 and langs["en"] >= 400
