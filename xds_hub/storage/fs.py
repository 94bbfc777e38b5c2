"""A content-addressed filesystem blob store that writes durably.

Layout: ``<root>/<k[0:2]>/<k[2:4]>/<k>`` with ``k`` the SHA-256 of the content; in-progress
writes go to ``<root>/tmp`` and are renamed into place after an fsync (then the directory is
fsynced), so a blob is either whole under its key or absent.  A fan-out directory created for a
blob is fsynced into its parent before the blob is renamed into it, so the path to a blob that
:meth:`FsBlobWriter.finish` returned survives a crash as well.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from xds_hub.storage.ports import BlobInfo

CHUNK = 1024 * 1024

_KEY = re.compile(r"[0-9a-f]{64}")
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def _fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(path: str) -> None:
    """Create ``path`` and missing parents, fsyncing the parent of each directory created."""
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        _make_dirs(parent)
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    _fsync_dir(parent)


class FsBlobWriter:
    def __init__(self, store: FsBlobStore) -> None:
        self._store = store
        while True:
            name = os.path.join(store.tmp_dir, f"w-{os.urandom(8).hex()}")
            try:
                self._fd: int | None = os.open(name, _TMP_FLAGS, 0o600)
                break
            except FileExistsError:  # 64 random bits: practically never
                continue
        self._name = name
        self._sha1 = hashlib.sha1()
        self._sha256 = hashlib.sha256()
        self._size = 0
        self._info: BlobInfo | None = None

    def write(self, data: bytes) -> None:
        if self._fd is None:
            raise ValueError("blob writer is closed")
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self._sha1.update(data)
        self._sha256.update(data)
        self._size += len(data)

    def finish(self) -> BlobInfo:
        if self._info is not None:
            return self._info
        if self._fd is None:
            raise ValueError("blob writer was aborted")
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        key = self._sha256.hexdigest()
        folder = os.path.join(self._store.root_dir, key[:2], key[2:4])
        final = os.path.join(folder, key)
        if os.path.exists(final):
            # Same content already stored: keep the existing file, refresh its time (sweep grace).
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._name)
            os.utime(final)
        else:
            try:
                os.replace(self._name, final)
            except FileNotFoundError:  # the fan-out directory does not exist yet
                _make_dirs(folder)
                os.replace(self._name, final)
            _fsync_dir(folder)
        self._info = BlobInfo(key=key, sha1=self._sha1.hexdigest(), size=self._size)
        return self._info

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._info is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._name)


class FsBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.root_dir = str(root)
        self.tmp_dir = str(self.tmp)

    def path(self, key: str) -> Path:
        if _KEY.fullmatch(key) is None:
            raise FileNotFoundError(f"no blob {key!r}")
        return self.root / key[:2] / key[2:4] / key

    def writer(self) -> FsBlobWriter:
        return FsBlobWriter(self)

    def open(self, key: str) -> BinaryIO:
        return self.path(key).open("rb")

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def exists(self, key: str) -> bool:
        if _KEY.fullmatch(key) is None:
            return False
        return os.path.isfile(os.path.join(self.root_dir, key[:2], key[2:4], key))

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
