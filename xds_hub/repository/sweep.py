"""Crash safety of the blob store: which blobs are referenced, discarding unreferenced ones, and the
periodic orphan sweep.

Blobs are content-addressed and made durable (fsynced) *before* the database commit that refers
to them, so after a crash a row never points at a missing blob; the reverse can happen: a blob
written by a request that then failed, or that was cut short by a crash, has no row.  Such
orphans are deleted here.

Tables that keep blob keys register themselves in :data:`BLOB_REFERRERS` (the repository's
``repository_document.blob_key`` is there from the start; the imaging instance table adds its
own with :func:`register_blob_referrer`).  A blob is an orphan when no referrer names it and it
was last written more than a grace period ago, so a write still on its way to its commit is
never swept.

Documents kept in the database (:mod:`xds_hub.repository.inline`) are written in the transaction
of their row and go the same way: discarded when unreferenced, swept when unreferenced and older
than the grace period.

Deletion and the reference check happen inside :func:`xds_hub.storage.db.write_transaction`
(which serialises writers), and writers check that their blobs still exist inside that same
transaction before committing rows (:func:`missing_blobs`), so a sweep racing a submission of
the same content can make that submission fail cleanly, never leave a dangling row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Table, exists, select

from xds_hub.config import BLOB_SWEEP_GRACE_SECONDS, BLOB_SWEEP_INTERVAL_SECONDS
from xds_hub.log import get_logger
from xds_hub.repository import inline
from xds_hub.storage.db import read_transaction, write_transaction
from xds_hub.storage.schema import inline_blob, repository_document

if TYPE_CHECKING:
    from xds_hub.config import Settings
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.repository.sweep")

#: A blob younger than this (seconds since it was last written) is never swept.
DEFAULT_GRACE_SECONDS = BLOB_SWEEP_GRACE_SECONDS
#: How often the sweeper actor runs after its start-up pass.
DEFAULT_INTERVAL_SECONDS = BLOB_SWEEP_INTERVAL_SECONDS
#: Blobs checked and deleted per write transaction (keeps the writer lock short).
BATCH = 200

#: (table, column) pairs whose column holds blob keys.  Append with :func:`register_blob_referrer`
#: from the module that defines the table (imported by ``xds_hub.storage.tables``).
BLOB_REFERRERS: list[tuple[Table, str]] = [(repository_document, "blob_key")]


def register_blob_referrer(table: Table, column: str) -> None:
    """Declare that ``table.column`` holds blob keys, so the sweep never deletes those blobs."""
    if column not in table.c:
        raise ValueError(f"{table.name} has no column {column!r}")
    if (table, column) not in BLOB_REFERRERS:
        BLOB_REFERRERS.append((table, column))


def _referrers() -> list[tuple[Table, str]]:
    # Make sure every module that defines tables (and may register a referrer) is imported.
    from xds_hub.storage import tables  # noqa: F401

    return list(BLOB_REFERRERS)


def referenced_keys(conn: Connection, keys: Collection[str]) -> set[str]:
    """The subset of ``keys`` that some registered referrer row names."""
    wanted = sorted(set(keys))
    found: set[str] = set()
    for table, column in _referrers():
        col = table.c[column]
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            found.update(k for (k,) in conn.execute(select(col).where(col.in_(chunk)).distinct()))
    return found


def _inline_orphans(conn: Connection, cutoff: float) -> list[str]:
    """Keys of the documents kept in the database before ``cutoff`` (UNIX time) that no referrer
    row names (normally none: they are written with their row)."""
    query = select(inline_blob.c.key).where(inline_blob.c.created < int(cutoff * 1e9))
    for table, column in _referrers():
        query = query.where(~exists().where(table.c[column] == inline_blob.c.key))
    return [row.key for row in conn.execute(query)]


def missing_blobs(stores: Stores, keys: Iterable[str]) -> list[str]:
    """Keys among ``keys`` whose blob is absent (call inside the write transaction before commit)."""
    return [k for k in dict.fromkeys(keys) if not stores.blobs.exists(k)]


def discard_blobs(stores: Stores, keys: Iterable[str]) -> list[str]:
    """Delete the blobs among ``keys`` that nothing references; returns the keys deleted.

    Used when a request fails after its blobs were written.  A blob that another document (or
    an imaging instance) already refers to, because it has the same content, is kept.
    """
    pending = list(dict.fromkeys(k for k in keys if k))
    deleted: list[str] = []
    for start in range(0, len(pending), BATCH):
        batch = pending[start : start + BATCH]
        with write_transaction(stores.engine) as conn:
            gone = _delete_unreferenced(stores, conn, batch)
        deleted.extend(gone)
    return deleted


def _delete_unreferenced(stores: Stores, conn: Connection, keys: list[str]) -> list[str]:
    """Delete those of ``keys`` that nothing references (files, and documents kept in the
    database: those in ``conn``'s transaction); returns them."""
    keep = referenced_keys(conn, keys)
    gone = [k for k in keys if k not in keep]
    inline.remove(conn, [k for k in gone if inline.is_inline(k)])
    for key in gone:
        if not inline.is_inline(key):
            stores.blobs.delete(key)
    return gone


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep did."""

    checked: int
    deleted: int
    tmp_removed: int


def _batches(keys: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for key in keys:
        batch.append(key)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def sweep_orphans(
    stores: Stores, grace_seconds: float = DEFAULT_GRACE_SECONDS, now: float | None = None
) -> SweepReport:
    """Delete every blob last written more than ``grace_seconds`` ago that nothing references.

    Also removes abandoned in-progress writes (a crash mid-upload) of stores that keep them.
    Safe while the hub runs: see the module docstring.
    """
    cutoff = (time.time() if now is None else now) - grace_seconds
    checked = deleted = 0
    with read_transaction(stores.engine) as conn:
        unreferenced = _inline_orphans(conn, cutoff)
    for batch in _batches(chain(unreferenced, stores.blobs.iter_keys(older_than=cutoff)), BATCH):
        checked += len(batch)
        with write_transaction(stores.engine) as conn:
            deleted += len(_delete_unreferenced(stores, conn, batch))
    tmp_removed = 0
    sweep_tmp = getattr(stores.blobs, "sweep_tmp", None)
    if callable(sweep_tmp):
        tmp_removed = int(sweep_tmp(cutoff))
    if deleted or tmp_removed:
        log.warning(
            "orphan blobs swept",
            extra={"checked": checked, "deleted": deleted, "tmp_removed": tmp_removed},
        )
    return SweepReport(checked=checked, deleted=deleted, tmp_removed=tmp_removed)


class OrphanSweeper:
    """The sweeper :class:`~xds_hub.server.Actor`: one pass at start-up, then one per interval."""

    def __init__(
        self,
        stores: Stores,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
    ) -> None:
        self.stores = stores
        self.grace_seconds = grace_seconds
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sweep_orphans(self.stores, self.grace_seconds)
            except Exception:  # a failed pass (database down ...) is retried next interval
                log.exception("orphan sweep failed")
            self.passes += 1
            self._stop.wait(self.interval_seconds)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="xds-hub-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None


def make_sweeper(settings: Settings, stores: Stores) -> OrphanSweeper:
    """ActorSpec factory (``xds_hub.server.ACTORS``)."""
    return OrphanSweeper(
        stores,
        grace_seconds=settings.blob_sweep_grace_seconds,
        interval_seconds=settings.blob_sweep_interval_seconds,
    )
