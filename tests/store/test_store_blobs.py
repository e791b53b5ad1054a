"""The content-addressed blob store."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlm_engine.store import BlobNotFoundError, BlobStore, LocalBlobStore, StoreError, sha256_bytes


def test_round_trip_and_dedup(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    assert isinstance(blobs, BlobStore)
    data = bytes(range(256)) * 1000
    ref = blobs.put(data)
    assert ref == sha256_bytes(data)
    assert blobs.exists(ref) and blobs.get(ref) == data
    assert blobs.put(data) == ref
    assert blobs.path(ref).read_bytes() == data
    stored = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert stored == [blobs.path(ref)]  # one copy, no temp files left behind
    with blobs.open(ref) as stream:
        assert stream.read(3) == bytes([0, 1, 2])
    blobs.delete(ref)
    assert not blobs.exists(ref)


def test_put_file_streams(tmp_path: Path) -> None:
    source = tmp_path / "context.txt"
    source.write_bytes(b"line\n" * 500_000)
    blobs = LocalBlobStore(tmp_path / "blobs")
    ref = blobs.put_file(source)
    assert ref == sha256_bytes(source.read_bytes())
    assert blobs.get(ref) == source.read_bytes()


def test_missing_and_malformed_refs(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    with pytest.raises(BlobNotFoundError):
        blobs.get("0" * 64)
    with pytest.raises(BlobNotFoundError):
        blobs.open("0" * 64)
    with pytest.raises(StoreError):
        blobs.get("../../etc/passwd")
    assert not blobs.exists("a" * 64)


def test_the_store_uses_blobs_under_home(store_home: Path, tmp_path: Path) -> None:
    from rlm_engine.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'x.db'}", store_home)
    try:
        ref = store.blobs.put(b"v")
        assert (store_home / "blobs" / ref[:2] / ref[2:4] / ref).exists()
    finally:
        store.close()
