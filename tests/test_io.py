"""Local copies of files named by URI (what fastText and KenLM load on a cluster worker), and atomic writes."""

from __future__ import annotations

import os

import pytest

from skypile import io


def test_a_path_is_used_in_place_and_a_uri_is_fetched_once(tmp_path):
    src = tmp_path / "models" / "m.bin"
    src.parent.mkdir()
    src.write_bytes(b"first version")
    cache = tmp_path / "cache"
    assert io.local_copy(str(src), str(cache)) == str(src)  # a plain path: no copy
    copy = io.local_copy(f"file://{src}", str(cache))
    assert copy != str(src) and open(copy, "rb").read() == b"first version" and copy.endswith("-m.bin")
    assert io.local_copy(f"file://{src}", str(cache)) == copy  # fetched once
    src.write_bytes(b"second, longer version")  # a changed file (size, mtime) is fetched again
    again = io.local_copy(f"file://{src}", str(cache))
    assert again != copy and open(again, "rb").read() == b"second, longer version"
    assert not [n for n in os.listdir(cache) if ".tmp-" in n]  # no half-written copy left behind
    with pytest.raises(FileNotFoundError):
        io.local_copy(f"file://{tmp_path}/missing.bin", str(cache))


def test_local_path_of_plain_paths_file_uris_and_object_stores(tmp_path):
    assert io.local_path("rel/x") == os.path.abspath("rel/x")
    assert io.local_path(f"file://{tmp_path}/x") == f"{tmp_path}/x"
    assert io.local_path("gs://bucket/x") is None


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_atomic_output_appears_whole_or_not_at_all(tmp_path, as_uri):
    """A local path is written with os, a URI through pyarrow's filesystem: the same contract either way."""
    name = (lambda p: f"file://{p}") if as_uri else str
    with io.atomic_output(name(tmp_path / "new" / "done.bin")) as out:
        out.write(b"whole")
    with pytest.raises(KeyError):
        with io.atomic_output(name(tmp_path / "new" / "failed.bin")) as out:
            out.write(b"half")
            raise KeyError("killed mid-write")
    assert sorted(os.listdir(tmp_path / "new")) == ["done.bin"]
    assert (tmp_path / "new" / "done.bin").read_bytes() == b"whole"
