"""Group commit: the registry writes of concurrent requests share one write transaction.

Registering a submission (ITI-41 through :func:`xds_hub.repository.iti41.provide_and_register`)
is a short unit of checks and inserts inside :func:`~xds_hub.storage.db.write_transaction`, which
serialises the hub's writers.  Each transaction also costs a fixed price: taking the writer lock,
``BEGIN``, the commit (an fsync of the WAL on SQLite, of the WAL on PostgreSQL) and SQLAlchemy's
connection bookkeeping.  When requests arrive together, :class:`GroupCommit` runs their units one
after the other in *one* transaction, each inside its own savepoint, and commits once:

- the first request to arrive while no batch is running becomes the leader: it takes every unit
  queued so far (its own first), runs each in a savepoint, commits, and wakes their threads;
  units queued while it waits for the writer lock, or while the units before them run, join its
  batch (up to :data:`MAX_BATCH`); those queued after that wait, and the first of them leads the
  next batch;
- the units run in queue order, each seeing the rows of those before it, exactly as the same
  transactions one after the other would (the uniqueness checks of the registry hold);
- a unit that raises is rolled back to its savepoint and its thread gets the exception; the
  others are unaffected;
- every thread returns only after the commit of its batch, so an acknowledged submission is a
  durable one; if the commit itself fails, every unit of the batch gets that exception and
  nothing of the batch is stored.

A unit alone in its batch when the batch starts runs without a savepoint, i.e. exactly as
``write_transaction`` alone (units that join later run in savepoints of their own).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine

from xds_hub.registry import dbapi
from xds_hub.storage.db import write_transaction

T = TypeVar("T")

#: Most units committed together (a bound on the latency a batch adds to its first unit).
MAX_BATCH = 32

_SAVEPOINT = "xds_group_unit"


@dataclass(eq=False)
class _Unit(Generic[T]):
    work: Callable[[Connection], T]
    done: threading.Event = field(default_factory=threading.Event)
    value: T | None = None
    error: BaseException | None = None
    #: Set (with ``done``) when this unit's thread is to lead the next batch.
    lead: bool = False

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # (set when error is None)


class GroupCommit:
    """Runs units of work of concurrent threads in shared write transactions of ``engine``."""

    def __init__(self, engine: Engine, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Unit[Any]] = []
        self._busy = False
        self._leader: int | None = None  # the thread running a batch

    def after_fork(self) -> None:
        """In a forked child: forget the parent's queue and leader (their threads are not here)."""
        self._lock = threading.Lock()
        self._queue = []
        self._busy = False
        self._leader = None

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run ``work(conn)`` in a write transaction and return its result once committed.

        Raises what ``work`` raised (its changes rolled back), or the error of the commit.
        """
        if self._leader == threading.get_ident():
            raise RuntimeError("a unit of work of a group commit cannot start another one")
        unit: _Unit[T] = _Unit(work)
        with self._lock:
            self._queue.append(unit)
            lead = not self._busy
            self._busy = True
        if not lead:
            unit.done.wait()
            if not unit.lead:
                return unit.outcome()
        self._lead()
        return unit.outcome()

    def _lead(self) -> None:
        with self._lock:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
        self._leader = threading.get_ident()
        try:
            self._commit(batch)
        finally:
            self._leader = None
            with self._lock:
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._busy = False
                else:
                    successor.lead = True
            for unit in batch:
                unit.done.set()
            if successor is not None:
                successor.done.set()

    def _commit(self, batch: list[_Unit[Any]]) -> None:
        """Run ``batch`` in one transaction; units queued meanwhile join it (``batch`` grows in
        place, up to ``max_batch``): those that arrived while its leader waited for the writer
        lock, and those that arrived while the units before them ran."""
        try:
            with write_transaction(self.engine, sync_after_unlock=True) as conn:
                self._join(batch)
                done = 0
                if len(batch) == 1:  # alone: no savepoint (its failure leaves nothing to keep)
                    batch[0].value = batch[0].work(conn)
                    done = 1
                while done < len(batch) or self._join(batch):
                    self._run_in_savepoint(conn, batch[done])
                    done += 1
        except BaseException as exc:  # the unit of a batch of one, or the commit: nothing is stored
            for unit in batch:
                if unit.error is None:
                    unit.value, unit.error = None, exc
            if not isinstance(exc, Exception):
                raise

    def _join(self, batch: list[_Unit[Any]]) -> bool:
        """Move queued units into ``batch`` (up to ``max_batch``); whether any came."""
        with self._lock:
            more = self._queue[: self.max_batch - len(batch)]
            del self._queue[: len(more)]
        batch.extend(more)
        return bool(more)

    @staticmethod
    def _run_in_savepoint(conn: Connection, unit: _Unit[Any]) -> None:
        # The savepoints are never released: ``ROLLBACK TO`` a name goes back to the most recent
        # savepoint of that name (SQL standard; SQLite and PostgreSQL alike), i.e. this unit's, and
        # the commit ends them all.  That saves a statement per unit (a round trip on PostgreSQL,
        # taken while holding the registry's writer lock); a batch holds at most MAX_BATCH.
        with dbapi.cursor(conn) as cur:
            cur.execute(f"SAVEPOINT {_SAVEPOINT}")
        try:
            unit.value = unit.work(conn)
        except Exception as exc:
            unit.error = exc
            with dbapi.cursor(conn) as cur:
                cur.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")


_COMMITTERS: weakref.WeakKeyDictionary[Engine, GroupCommit] = weakref.WeakKeyDictionary()
_COMMITTERS_LOCK = threading.Lock()


def _after_fork() -> None:
    global _COMMITTERS_LOCK
    _COMMITTERS_LOCK = threading.Lock()
    for committer in list(_COMMITTERS.values()):
        committer.after_fork()


os.register_at_fork(after_in_child=_after_fork)


def group_commit(engine: Engine) -> GroupCommit:
    """The group committer of ``engine`` (one per engine and process)."""
    committer = _COMMITTERS.get(engine)
    if committer is None:
        with _COMMITTERS_LOCK:
            committer = _COMMITTERS.get(engine)
            if committer is None:
                committer = _COMMITTERS[engine] = GroupCommit(engine)
    return committer
