"""Input expansion: local globs and object-store style URIs (file:// stands in for gs:// / s3://)."""

from __future__ import annotations

import pytest

from skypile.readers.sources import InputError, _expand_uri, expand_inputs


def test_uri_globs_list_below_the_glob_free_folder(tmp_path):
    for rel in ("a.warc.gz", "b.warc.gz", "sub/c.warc.gz", "notes.txt"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    base = f"file://{tmp_path}"
    assert _expand_uri(f"{base}/*.warc.gz") == [f"{base}/a.warc.gz", f"{base}/b.warc.gz", f"{base}/sub/c.warc.gz"]
    assert _expand_uri(f"{base}/[a]*.gz") == [f"{base}/a.warc.gz"]
    assert _expand_uri(f"{base}/b.warc.gz") == [f"{base}/b.warc.gz"]
    assert _expand_uri(f"{base}/missing.warc.gz") == []
    assert expand_inputs([str(tmp_path / "*.warc.gz"), str(tmp_path / "a.warc.gz")]) == [str(tmp_path / "a.warc.gz"), str(tmp_path / "b.warc.gz")]
    with pytest.raises(InputError, match="no input file matches"):
        expand_inputs([str(tmp_path / "*.parquet")])
