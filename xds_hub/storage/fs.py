"""A content-addressed filesystem blob store that writes durably.

Layout: ``<root>/<k[0:2]>/<k[2:4]>/<k>`` with ``k`` the SHA-256 of the content; in-progress
writes go to ``<root>/tmp`` and are renamed into place after an fsync (then the directory is
fsynced), so a blob is either whole under its key or absent.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from xds_hub.storage.ports import BlobInfo

CHUNK = 1024 * 1024


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FsBlobWriter:
    def __init__(self, store: FsBlobStore) -> None:
        self._store = store
        fd, name = tempfile.mkstemp(dir=store.tmp, prefix="w-")
        self._file: BinaryIO | None = os.fdopen(fd, "wb", buffering=0)
        self._path = Path(name)
        self._sha1 = hashlib.sha1()
        self._sha256 = hashlib.sha256()
        self._size = 0
        self._info: BlobInfo | None = None

    def write(self, data: bytes) -> None:
        if self._file is None:
            raise ValueError("blob writer is closed")
        self._file.write(data)
        self._sha1.update(data)
        self._sha256.update(data)
        self._size += len(data)

    def finish(self) -> BlobInfo:
        if self._info is not None:
            return self._info
        if self._file is None:
            raise ValueError("blob writer was aborted")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        key = self._sha256.hexdigest()
        final = self._store.path(key)
        if final.exists():
            # Same content already stored: keep the existing file, refresh its time (sweep grace).
            self._path.unlink(missing_ok=True)
            os.utime(final)
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._path, final)
            _fsync_dir(final.parent)
        self._info = BlobInfo(key=key, sha1=self._sha1.hexdigest(), size=self._size)
        return self._info

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._info is None:
            self._path.unlink(missing_ok=True)


class FsBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise FileNotFoundError(f"no blob {key!r}")
        return self.root / key[:2] / key[2:4] / key

    def writer(self) -> FsBlobWriter:
        return FsBlobWriter(self)

    def open(self, key: str) -> BinaryIO:
        return self.path(key).open("rb")

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def exists(self, key: str) -> bool:
        try:
            return self.path(key).is_file()
        except FileNotFoundError:
            return False

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def iter_keys(self, older_than: float) -> Iterator[str]:
        for first in sorted(self.root.iterdir()):
            if first.name == "tmp" or not first.is_dir():
                continue
            for second in sorted(first.iterdir()):
                for blob in second.iterdir():
                    if blob.stat().st_mtime < older_than:
                        yield blob.name

    def sweep_tmp(self, older_than: float) -> int:
        """Remove abandoned in-progress writes (e.g. after a crash); returns how many."""
        removed = 0
        for leftover in self.tmp.iterdir():
            if leftover.stat().st_mtime < older_than:
                leftover.unlink(missing_ok=True)
                removed += 1
        return removed
