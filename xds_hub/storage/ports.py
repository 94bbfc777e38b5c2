"""The small interfaces behind which storage lives; each has a filesystem and an S3 implementation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A stored blob: its content address, SHA-1 (the XDS hash, lower-case hex) and size in bytes."""

    key: str
    sha1: str
    size: int
    #: The octets of a blob not written to the store yet: a small document that goes into the
    #: database with its metadata (:mod:`xds_hub.repository.inline`); None for a stored blob.
    data: bytes | None = field(default=None, repr=False, compare=False)


class BlobWriter(Protocol):
    """Receives a blob chunk by chunk; nothing is visible under its key before :meth:`finish`."""

    def write(self, data: bytes) -> None: ...

    def finish(self) -> BlobInfo:
        """Make the blob durable under its content address (fsynced on return) and describe it."""
        ...

    def abort(self) -> None:
        """Forget what was written (idempotent; also safe after finish, where it does nothing)."""
        ...


class BlobWriters(Protocol):
    """Where a reader of incoming documents gets its writers: a :class:`BlobStore`, or one that
    keeps small documents for the database (:class:`xds_hub.repository.inline.InlineWriters`)."""

    def writer(self) -> BlobWriter: ...


class BlobStore(Protocol):
    """Content-addressed, durable blob storage; blobs are streamed in and out, never held whole."""

    def writer(self) -> BlobWriter: ...

    def open(self, key: str) -> BinaryIO:
        """A binary reader of the blob; raises FileNotFoundError when it is missing."""
        ...

    def size(self, key: str) -> int:
        """Its size in bytes; raises FileNotFoundError when it is missing."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the blob (no error when it is already gone)."""
        ...

    def iter_keys(self, older_than: float) -> Iterator[str]:
        """Keys of blobs last written before the UNIX time ``older_than`` (for the orphan sweep)."""
        ...
