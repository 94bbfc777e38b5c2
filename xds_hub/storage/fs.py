"""A content-addressed filesystem blob store that writes durably.

Layout: ``<root>/<k[0:2]>/<k[2:4]>/<k>`` with ``k`` the SHA-256 of the content.  An in-progress
write is an anonymous file (``O_TMPFILE``) in ``<root>/tmp``: after an fsync it is linked under
its key (``linkat`` of ``/proc/self/fd/N``) and the directory is fsynced, so a blob is either whole
under its key or absent, and a write cut short by a crash leaves nothing behind (the kernel frees
an unlinked inode).  Where the filesystem or the platform cannot do that (probed once per store),
in-progress writes are named files in ``<root>/tmp`` renamed into place after the fsync; the
orphan sweep removes those a crash left.  A fan-out directory created for a blob is fsynced into
its parent before the blob is linked into it, so the path to a blob that
:meth:`FsBlobWriter.finish` returned survives a crash as well.

(Measured on this machine kind, 10 KB blobs: the same CPU either way, ~0.5-0.9 ms, most of it
the kernel creating the inode; the anonymous file saves the temporary directory entry and its
rename, ~35 % of the wall time of a durable write.)
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
_ANON_FLAGS = getattr(os, "O_TMPFILE", 0) | os.O_WRONLY | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


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


def _anonymous_files_work(tmp_dir: str) -> bool:
    """Whether ``tmp_dir`` takes ``O_TMPFILE`` files that can then be linked by name."""
    if not getattr(os, "O_TMPFILE", 0):
        return False
    probe = f"probe-{os.urandom(8).hex()}"
    try:
        fd = os.open(tmp_dir, _ANON_FLAGS, 0o600)
    except OSError:  # EOPNOTSUPP, EISDIR (kernel without O_TMPFILE) ...
        return False
    try:
        return _link_anonymous(fd, tmp_dir, probe)
    except OSError:  # no /proc, a filesystem that refuses linkat of an anonymous file ...
        return False
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(tmp_dir, probe))


def _link_anonymous(fd: int, folder: str, key: str) -> bool:
    """Link the anonymous file ``fd`` as ``folder/key`` and fsync ``folder``; False if a file of
    that name exists already (same content: the caller keeps that one)."""
    dir_fd = os.open(folder, _DIR_FLAGS)
    try:
        try:
            # dst_dir_fd makes os.link use linkat(); AT_SYMLINK_FOLLOW resolves the /proc link.
            os.link(f"/proc/self/fd/{fd}", key, dst_dir_fd=dir_fd, follow_symlinks=True)
        except FileExistsError:
            return False
        os.fsync(dir_fd)
        return True
    finally:
        os.close(dir_fd)


class FsBlobWriter:
    def __init__(self, store: FsBlobStore) -> None:
        self._store = store
        self._name: str | None = None  # the named temporary file (when anonymous files are not used)
        if store.anonymous_tmp:
            self._fd: int | None = os.open(store.tmp_dir, _ANON_FLAGS, 0o600)
        else:
            while True:
                name = os.path.join(store.tmp_dir, f"w-{os.urandom(8).hex()}")
                try:
                    self._fd = os.open(name, _TMP_FLAGS, 0o600)
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
        fd = self._fd
        if fd is None:
            raise ValueError("blob writer was aborted")
        key = self._sha256.hexdigest()
        folder = os.path.join(self._store.root_dir, key[:2], key[2:4])
        final = os.path.join(folder, key)
        try:
            os.fsync(fd)
            if self._name is None:
                try:
                    linked = _link_anonymous(fd, folder, key)
                except FileNotFoundError:  # the fan-out directory does not exist yet
                    _make_dirs(folder)
                    linked = _link_anonymous(fd, folder, key)
                if not linked:  # same content already stored: keep it, refresh its time (sweep grace)
                    os.utime(final)
            else:
                self._finish_named(self._name, folder, final)
        finally:
            self._fd = None
            os.close(fd)
        self._info = BlobInfo(key=key, sha1=self._sha1.hexdigest(), size=self._size)
        return self._info

    @staticmethod
    def _finish_named(name: str, folder: str, final: str) -> None:
        if os.path.exists(final):
            # Same content already stored: keep the existing file, refresh its time (sweep grace).
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            os.utime(final)
            return
        try:
            os.replace(name, final)
        except FileNotFoundError:  # the fan-out directory does not exist yet
            _make_dirs(folder)
            os.replace(name, final)
        _fsync_dir(folder)

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._info is None and self._name is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._name)


class FsBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.root_dir = str(root)
        self.tmp_dir = str(self.tmp)
        #: In-progress writes are anonymous files (see the module docstring).
        self.anonymous_tmp = _anonymous_files_work(self.tmp_dir)

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
