"""Database engines and transactions for SQLite (embedded default) and PostgreSQL.

Writes go through :func:`write_transaction`, which serialises registry writers: ``BEGIN IMMEDIATE``
on SQLite, a transaction-scoped advisory lock on PostgreSQL.  Registry rules such as "uniqueId not
yet registered" are checked and acted on inside it, so two concurrent submissions cannot both pass.

On SQLite, writers of the hub first queue at a :class:`WriterGate` (a thread lock, then an
``flock`` on ``<database>.writelock`` shared by every process of the hub), so the next writer is
woken the moment the previous one commits.  Without it, a writer finding the database locked
sleeps in SQLite's busy handler (1, 2, 5 ... 100 ms) and polls; under concurrent submissions most
of the time went there.  The gate only orders the hub's own writers: ``BEGIN IMMEDIATE`` (with the
busy timeout) still excludes any other writer of the file.

The group committer of the registry (:mod:`xds_hub.registry.group_commit`) asks for
``sync_after_unlock``: its COMMIT does not wait for the disk, the gate is released, and then the
WAL is fsynced before anyone is told the data is stored.  The fsync of a commit then overlaps the
next writer's work instead of holding the gate (ITI-41 on a loaded 2-core machine: the gate was
held about 90 % of the time, most of it waiting for the disk, the GIL and a core).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError

#: The advisory lock key that serialises registry writers on PostgreSQL.
REGISTRY_LOCK = 0x5844_5348  # "XDSH"
#: BEGIN and the lock, sent as one simple query (see :func:`_lock_registry`).
_BEGIN_AND_LOCK = f"BEGIN; SELECT pg_advisory_xact_lock({REGISTRY_LOCK})".encode()
_TUPLES_OK = 2  # libpq's PGRES_TUPLES_OK (psycopg.pq.ExecStatus.TUPLES_OK)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the hub's connection settings."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, **kwargs)
        _configure_sqlite(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    kwargs.setdefault("pool_size", 4)
    kwargs.setdefault("max_overflow", 8)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        record.info[_WAL_INFO] = _set_wal(cur)
        cur.execute("PRAGMA synchronous=FULL")  # acknowledged == durable
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Straight on the DB-API connection: this runs for every transaction, and SQLAlchemy's
        # statement machinery cost more than the BEGIN itself.  Errors are SQLAlchemy's still.
        begin = conn.get_execution_options().get("sqlite_begin", "BEGIN")
        dbapi_conn = conn.connection.dbapi_connection
        assert dbapi_conn is not None
        try:
            dbapi_conn.execute(begin)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(begin, None, exc, conn.dialect.loaded_dbapi.Error) from exc


#: Key of the pool record's info: whether the connection's database is in WAL mode.
_WAL_INFO = "xds_hub_wal"


def _set_wal(cur: Any, patience: float = 60.0) -> bool:
    """``PRAGMA journal_mode=WAL``, retried while the database is locked.  Switching a new database
    to WAL reads its header and then writes it: when several processes open it for the first time
    at once, SQLite answers "database is locked" at once instead of calling the busy handler (seen:
    6 times in 200 starts of 8 processes).  Once the database is in WAL mode this is one read.
    Returns whether the database is in WAL mode (an in-memory database, or a filesystem without
    shared memory, keeps another journal mode)."""
    deadline = time.monotonic() + patience
    delay = 0.001
    while True:
        try:
            row = cur.execute("PRAGMA journal_mode=WAL").fetchone()
            return bool(row) and str(row[0]).lower() == "wal"
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class WriterGate:
    """The queue of the hub's SQLite writers: a re-entrant thread lock, then an exclusive
    ``flock`` on a lock file next to the database (one open file per process, reopened after a
    fork so that forked workers exclude each other).  Blocking on either wakes the waiter as soon
    as the holder leaves.  A nested turn of the same thread only takes the thread lock again."""

    def __init__(self, lock_path: Path | None) -> None:
        self.lock_path = lock_path
        self._lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def after_fork(self) -> None:
        """In a forked child: the parent's lock state and open file are not this process's."""
        self._lock = threading.RLock()
        self._depth = 0
        self._fd = None  # the inherited descriptor shares the parent's flock: never use it

    def _file(self) -> int | None:
        if self.lock_path is None:
            return None
        if self._fd is None:
            try:
                self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:  # e.g. a read-only folder: rely on SQLite's busy handler alone
                self.lock_path = None
                return None
        return self._fd

    @contextmanager
    def turn(self) -> Iterator[None]:
        with self._lock:
            fd = self._file() if self._depth == 0 else None
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)


_GATES: weakref.WeakKeyDictionary[Engine, WriterGate] = weakref.WeakKeyDictionary()
_GATES_LOCK = threading.Lock()


def _after_fork() -> None:
    global _GATES_LOCK
    _GATES_LOCK = threading.Lock()
    for gate in list(_GATES.values()):
        gate.after_fork()


os.register_at_fork(after_in_child=_after_fork)


def writer_gate(engine: Engine) -> WriterGate:
    """The gate of a SQLite ``engine`` (a file database gets a lock file; in-memory ones none)."""
    gate = _GATES.get(engine)
    if gate is None:
        with _GATES_LOCK:
            gate = _GATES.get(engine)
            if gate is None:
                database = engine.url.database
                plain_file = database and database != ":memory:" and not database.startswith("file:")
                gate = WriterGate(Path(f"{database}.writelock") if plain_file else None)
                _GATES[engine] = gate
    return gate


@contextmanager
def write_transaction(engine: Engine, *, sync_after_unlock: bool = False) -> Iterator[Connection]:
    """A connection in a serialised write transaction; commits on success, rolls back on error.

    ``sync_after_unlock`` (SQLite in WAL mode with a database file; otherwise ignored): COMMIT
    writes the WAL without waiting for the disk, the writer lock is released, and only then is the
    WAL fsynced; the context returns once it is.  On return the transaction is as durable as with
    the default (SQLite's ``synchronous=FULL`` COMMIT does the same fsync, under the lock), but
    the next writer does not wait for this one's disk flush.  Other connections see the
    transaction from its COMMIT, one fsync before it is durable (a crash in between loses it, and
    its writer was never told it was stored).  Raises OSError (after the commit, which is then
    visible but maybe not durable: not to be acknowledged) if the fsync fails.
    """
    if not is_sqlite(engine):
        with engine.connect() as conn, conn.begin():
            _lock_registry(conn)
            yield conn
        return
    with engine.connect() as conn:
        wal = _wal_path(engine, conn) if sync_after_unlock else None
        if wal is None:
            with writer_gate(engine).turn():
                locked = conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
                with locked.begin():
                    yield locked
            return
        raw = conn.connection.dbapi_connection
        assert raw is not None
        # NORMAL in WAL mode: COMMIT appends to the WAL and does not fsync it.  Checkpoints still
        # fsync the WAL before copying it into the database, and the database before the WAL is
        # reused, so what they move is durable already.
        raw.execute("PRAGMA synchronous=NORMAL")
        try:
            with writer_gate(engine).turn():
                locked = conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
                with locked.begin():
                    yield locked
            _fsync_file(wal)
        finally:
            try:
                raw.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error:  # never hand a NORMAL connection back to the pool
                conn.invalidate()
                raise


def _wal_path(engine: Engine, conn: Connection) -> str | None:
    """The WAL file of ``conn``'s database when it is in WAL mode and a plain file, else None."""
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if not conn.connection.info.get(_WAL_INFO):
        return None
    return f"{database}-wal"


def _fsync_file(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:  # no WAL left: the last connection checkpointed it into the database
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock_registry(conn: Connection) -> None:
    """Begin the transaction and take the registry's advisory lock, PostgreSQL, in one round trip:
    both statements in one simple query on the libpq connection (psycopg would otherwise send its
    implicit ``BEGIN`` on its own first: a round trip of ~70-100 µs plus ~50 µs of CPU on either
    side, before every registry write).  libpq releases the GIL while it waits; psycopg then finds
    the transaction open, and its commit() / rollback() end it as usual."""
    dbapi_conn = conn.connection.dbapi_connection
    assert dbapi_conn is not None
    error: type[Exception] = conn.dialect.loaded_dbapi.Error
    try:
        result = dbapi_conn.pgconn.exec_(_BEGIN_AND_LOCK)
        if result.status != _TUPLES_OK:
            errors = conn.dialect.loaded_dbapi.errors
            raise errors.error_from_result(result, encoding=dbapi_conn.info.encoding)
    except error as exc:
        raise DBAPIError.instance(_BEGIN_AND_LOCK.decode(), None, exc, error, dialect=conn.dialect) from exc


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a read transaction (a consistent snapshot for multi-statement queries)."""
    with engine.connect() as conn, conn.begin():
        yield conn
