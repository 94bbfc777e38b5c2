"""Small documents kept in the database, written in the transaction that registers them.

An ITI-41 document (an MTOM part, or decoded inline base64) of at most
``[hub] inline_document_bytes`` (64 KiB by default; 0: never) is not written to the blob store.
:class:`InlineWriter` keeps it in memory while the request is read, and it goes into
``inline_blob`` with its ``repository_document`` row (:func:`rows`; on PostgreSQL in the same
statement).  Its durability is then the commit's, which concurrent submissions share
(:mod:`xds_hub.registry.group_commit`).  The blob store would instead create a file, fsync it, link
it and fsync its directory for every document.  Measured for 10 KB documents on this machine kind,
with the SQLite WAL fsynced outside the writer lock (:mod:`xds_hub.storage.db`): 0.6-0.7 ms of CPU
less and 14-17 % more submissions/s (bench/RESULTS.md).  A part that grows past the limit goes on
into the blob store as before, so a large document is never held in memory.

Keys are ``db:<SHA-256 of the content>``: content-addressed like the blob store's keys, in their
own namespace (a blob store key is bare hex).  Readers go through :func:`read`, deletions through
the repository's :func:`xds_hub.repository.sweep.discard_blobs` and the orphan sweep, which
check the rows that refer to blobs first, as they do for files.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from typing import Final

from sqlalchemy import Connection, delete, select

from xds_hub.registry.insert import DependentInsert
from xds_hub.storage.ports import BlobInfo, BlobStore, BlobWriter
from xds_hub.storage.schema import inline_blob

#: Key prefix of a document kept in the database.
PREFIX: Final = "db:"
#: Most octets one request keeps in memory for its inline documents; its parts past that budget
#: go to the blob store whatever their size.
REQUEST_BUDGET: Final = 8 * 1024 * 1024

_COLUMNS: Final = ("key", "data", "created")


def is_inline(key: str) -> bool:
    """Whether ``key`` names a document kept in the database."""
    return key.startswith(PREFIX)


class InlineWriter:
    """A :class:`~xds_hub.storage.ports.BlobWriter` that keeps up to ``limit`` octets in memory.

    :meth:`finish` returns a :class:`BlobInfo` whose ``data`` holds them (nothing is stored yet:
    they go into the database with :func:`rows`).  Past ``limit`` the blob goes on in a writer of
    ``blobs``, and :meth:`finish` returns what that one stored.
    """

    def __init__(self, blobs: BlobStore, limit: int, budget: InlineWriters | None = None) -> None:
        self._blobs = blobs
        self._limit = limit
        self._budget = budget
        self._buffer = bytearray()
        self._spill: BlobWriter | None = None
        self._info: BlobInfo | None = None

    def write(self, data: bytes) -> None:
        fits = self._spill is None and len(self._buffer) + len(data) <= self._limit
        if fits and (self._budget is None or self._budget.take(len(data))):
            self._buffer += data
            return
        if self._spill is None:
            self._spill = self._blobs.writer()
            held, self._buffer = bytes(self._buffer), bytearray()
            if self._budget is not None:
                self._budget.give_back(len(held))
            if held:
                self._spill.write(held)
        self._spill.write(data)

    def finish(self) -> BlobInfo:
        if self._spill is not None:
            return self._spill.finish()
        if self._info is None:
            data = bytes(self._buffer)
            key = PREFIX + hashlib.sha256(data).hexdigest()
            self._info = BlobInfo(key=key, sha1=hashlib.sha1(data).hexdigest(), size=len(data), data=data)
            self._buffer = bytearray()
        return self._info

    def abort(self) -> None:
        if self._spill is not None:
            self._spill.abort()
        self._buffer = bytearray()


class InlineWriters:
    """The writers of one request's documents: :class:`InlineWriter` while its budget lasts.

    Stands in for the blob store where a reader only needs ``writer()`` (the MTOM reader)."""

    def __init__(self, blobs: BlobStore, limit: int, budget: int = REQUEST_BUDGET) -> None:
        self.blobs = blobs
        self.limit = limit
        self._left = budget

    def writer(self) -> BlobWriter:
        if self.limit <= 0:
            return self.blobs.writer()
        return InlineWriter(self.blobs, self.limit, self)

    def take(self, size: int) -> bool:
        if size > self._left:
            return False
        self._left -= size
        return True

    def give_back(self, size: int) -> None:
        self._left += size


def rows(infos: Iterable[BlobInfo]) -> DependentInsert | None:
    """The documents among ``infos`` kept in the database, as rows that go in with the
    ``repository_document`` rows referring to them (ITI-41: one statement on PostgreSQL), or None
    if there are none; one already there (the same content) is kept."""
    kept: dict[str, bytes] = {i.key: i.data for i in infos if i.data is not None and is_inline(i.key)}
    if not kept:
        return None
    now = time.time_ns()
    return DependentInsert(
        inline_blob,
        _COLUMNS,
        [(key, data, now) for key, data in kept.items()],
        on="blob_key",
        suffix="ON CONFLICT (key) DO NOTHING",
    )


def read(conn: Connection, keys: Iterable[str]) -> dict[str, bytes]:
    """The content of each of ``keys`` kept in the database (absent keys are left out)."""
    wanted = sorted({k for k in keys if is_inline(k)})
    found: dict[str, bytes] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        query = select(inline_blob.c.key, inline_blob.c.data).where(inline_blob.c.key.in_(chunk))
        found.update((row.key, bytes(row.data)) for row in conn.execute(query))
    return found


def remove(conn: Connection, keys: Sequence[str]) -> None:
    """Delete the documents ``keys`` (the caller checked that nothing refers to them)."""
    for start in range(0, len(keys), 500):
        conn.execute(delete(inline_blob).where(inline_blob.c.key.in_(keys[start : start + 500])))
