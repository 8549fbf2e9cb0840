"""No record lost silently, no run that lies about its output: damaged and unusual inputs end to end.

Every test counts the records it actually wrote into its input file and checks
``records_in == kept + Σ dropped`` against that number, not only against what
the reader saw.
"""

from __future__ import annotations

import gzip
import io as pyio
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from skypile.cli import main
from skypile.readers.warc_builder import shared_pages

# the web recipe scores pages with the quality models (tests/conftest.py builds small ones)
pytestmark = pytest.mark.usefixtures("quality_models")


def _response(writer: WARCWriter, url: str, body: bytes, record_id: str | None) -> None:
    http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
    rec = writer.create_warc_record(url, "response", payload=pyio.BytesIO(body), http_headers=http)
    if record_id is None:
        rec.rec_headers.remove_header("WARC-Record-ID")
    else:
        rec.rec_headers.replace_header("WARC-Record-ID", record_id)
    writer.write_record(rec)


def _run(inputs: list[Path], out: Path, tokenizer: str, *extra: str) -> dict:
    # every quality bucket kept: these tests follow records and ids, not quality (tests/test_quality_models.py)
    args = ["run", "--runner", "local", "--output", str(out), "--tokenizer", tokenizer, "--no-progress",
            "--set", "quality_bucket.keep=[head,middle,tail]", *extra]
    for i in inputs:
        args += ["--input", str(i)]
    assert main(args) == 0
    return json.loads((out / "stats.json").read_text())


@pytest.fixture(scope="module")
def pages(shared) -> list:
    shared("html-en", "trafilatura-eval")
    return list(shared_pages(limit=12))


def test_repeated_and_missing_record_ids_become_unique_stable_ids(pages, tokenizer_model, tmp_path):
    warc = tmp_path / "ids.warc.gz"
    with open(warc, "wb") as f:
        w = WARCWriter(f, gzip=True)
        for i, page in enumerate(pages):
            # pages 0-3 share one id, 4-7 have none, the rest keep their own
            rid = "<urn:uuid:00000000-0000-0000-0000-000000000001>" if i < 4 else None if i < 8 else f"<urn:uuid:{i:036d}>"
            _response(w, page.url, page.body, rid)
    stats = _run([warc], tmp_path / "a", tokenizer_model)
    assert stats["balanced"] and stats["records_in"] == len(pages)
    ids = [i for s in sorted((tmp_path / "a" / "shards").iterdir()) for i in pq.read_table(s).column("id").to_pylist()]
    assert len(ids) == len(set(ids)) == stats["kept"] and all(ids)
    shared_id = "<urn:uuid:00000000-0000-0000-0000-000000000001>"
    kept_shared = [i for i in ids if i.startswith(shared_id)]
    assert kept_shared.count(shared_id) == 1 and stats["stages"]["unique_ids"]["changed"]["id_renamed"] == len(kept_shared) - 1
    again = _run([warc], tmp_path / "b", tokenizer_model)
    ids_b = [i for s in sorted((tmp_path / "b" / "shards").iterdir()) for i in pq.read_table(s).column("id").to_pylist()]
    assert ids_b == ids and again["kept"] == stats["kept"]  # derived and renamed ids are stable


def test_a_stage_that_raises_on_one_document_costs_that_document_only(pages, tokenizer_model, tmp_path, monkeypatch):
    from skypile.filters import length

    real = length.LengthFilter.__call__

    def flaky(self, doc):
        if doc.url == pages[3].url:
            raise RuntimeError("boom on one page")
        return real(self, doc)

    monkeypatch.setattr(length.LengthFilter, "__call__", flaky)
    warc = tmp_path / "p.warc.gz"
    with open(warc, "wb") as f:
        w = WARCWriter(f, gzip=True)
        for i, page in enumerate(pages):
            _response(w, page.url, page.body, f"<urn:uuid:{i:036d}>")
    stats = _run([warc], tmp_path / "out", tokenizer_model)
    assert stats["balanced"] and stats["records_in"] == len(pages)
    assert stats["stages"]["length"]["dropped"].get("stage_error") == 1
    letters = [json.loads(line) for f in (tmp_path / "out" / "dropped").glob("*.jsonl") for line in f.read_text().splitlines()]
    (err,) = [d for d in letters if d["reason"] == "stage_error"]
    assert err["stage"] == "length" and err["url"] == pages[3].url and "boom on one page" in err["detail"]


def test_a_rerun_with_other_input_never_keeps_the_old_shards(pages, tokenizer_model, tmp_path):
    a, b = tmp_path / "a.warc.gz", tmp_path / "b.warc.gz"
    for path, chunk in ((a, pages[:6]), (b, pages[6:])):
        with open(path, "wb") as f:
            w = WARCWriter(f, gzip=True)
            for i, page in enumerate(chunk):
                _response(w, page.url, page.body, f"<urn:uuid:{path.stem}{i:034d}>")
    out = tmp_path / "out"
    _run([a], out, tokenizer_model)
    assert main(["run", "--runner", "local", "--input", str(b), "--output", str(out), "--tokenizer", tokenizer_model, "--no-progress"]) == 2
    stats = _run([b], out, tokenizer_model, "--overwrite")
    urls = {u for s in (out / "shards").iterdir() for u in pq.read_table(s).column("url").to_pylist()}
    assert urls and urls <= {p.url for p in pages[6:]} and stats["inputs"] == [str(b)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fingerprint"] == stats["fingerprint"] and manifest["rows"] == stats["kept"]


def test_unwritable_output_is_a_one_line_error(tokenizer_model, tmp_path, capsys):
    src = tmp_path / "d.jsonl"
    src.write_text('{"text": "some text"}\n')
    rc = main(["export", "--input", str(src), "--output", "/sys/kernel/skypile-test-out", "--tokenizer", tokenizer_model])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: cannot create output") and len(err.splitlines()) == 1


def test_truncated_jsonl_gz_keeps_what_was_read_and_counts_the_rest(tokenizer_model, tmp_path):
    lines = [json.dumps({"id": f"d{i}", "text": f"document number {i} " * 50}) + "\n" for i in range(2000)]
    blob = gzip.compress("".join(lines).encode())
    src = tmp_path / "cut.jsonl.gz"
    src.write_bytes(blob[: len(blob) // 2])
    out = tmp_path / "out"
    assert main(["export", "--input", str(src), "--output", str(out), "--tokenizer", tokenizer_model, "--no-progress"]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["balanced"] and stats["stages"]["read"]["dropped"] == {"truncated_input": 1}
    assert 0 < stats["kept"] < 2000
    assert Counter(json.loads(line)["reason"] for f in (out / "dropped").glob("*.jsonl") for line in f.read_text().splitlines()) == {"truncated_input": 1}


def test_a_missing_or_corrupt_language_model_stops_the_run_at_start(pages, tokenizer_model, tmp_path, capsys):
    warc = tmp_path / "p.warc.gz"
    with open(warc, "wb") as f:
        _response(WARCWriter(f, gzip=True), pages[0].url, pages[0].body, "<urn:uuid:1>")
    corrupt = tmp_path / "lid.ftz"
    corrupt.write_bytes(b"not a fasttext model")
    for model in (tmp_path / "missing.ftz", corrupt):
        out = tmp_path / f"out-{model.stem}"
        rc = main(["run", "--runner", "local", "--input", str(warc), "--output", str(out), "--tokenizer", tokenizer_model,
                   "--lid-model", str(model), "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and "language-ID model" in err and len(err.splitlines()) == 1, err
        assert not (out / "_work").exists()


def test_one_damaged_record_costs_one_record_end_to_end(pages, tokenizer_model, tmp_path):
    """100 records, the second with a negative Content-Length: 99 read, 1 counted drop, nothing lost."""
    from fastwarc.warc import WarcRecord, WarcRecordType

    blobs = []
    for i in range(100):
        page = pages[i % len(pages)]
        http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + page.body
        rec = WarcRecord()
        rec.init_headers(record_type=WarcRecordType.response, record_urn=f"uuid:{i:08d}-0000-0000-0000-000000000000".encode())
        rec.headers["WARC-Target-URI"] = f"{page.url}?copy={i}"
        rec.set_bytes_content(http)
        rec.is_http = True
        buf = pyio.BytesIO()
        rec.write(buf)
        raw = buf.getvalue()
        if i == 1:
            raw = raw.replace(f"Content-Length: {len(http)}".encode(), b"Content-Length: -10", 1)
        blobs.append(gzip.compress(raw))
    warc = tmp_path / "damaged.warc.gz"
    warc.write_bytes(b"".join(blobs))
    stats = _run([warc], tmp_path / "out", tokenizer_model)
    assert stats["records_in"] == 100 and stats["balanced"]
    assert stats["stages"]["read"]["kept"] == 99 and stats["stages"]["read"]["dropped"] == {"bad_content_length": 1}
    assert stats["kept"] > 0
