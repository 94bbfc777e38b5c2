"""The database connection of one MLLP connection's committer (ITI-8 / ITI-9 over MLLP).

A transaction through :func:`xds_hub.storage.db.write_transaction` checks a connection out of the
pool (on PostgreSQL with a ping: one more round trip) and builds SQLAlchemy's connection state
every time; at thousands of small transactions a second that was a fifth of the work.  A
:class:`DbSession` keeps one connection while its MLLP connection has work and gives it back
when it goes idle (:meth:`release`), with the same transactions as ``xds_hub.storage.db``:

- writes are serialised with every other registry writer: the SQLite writer gate then ``BEGIN
  IMMEDIATE``; on PostgreSQL ``BEGIN`` and the registry's advisory lock in one round trip (the
  connection is in the driver's autocommit mode and the transaction is opened by that statement,
  where psycopg would send its own ``BEGIN`` in a round trip of its own);
- reads take no writer lock: a plain (deferred) ``BEGIN`` on SQLite; on PostgreSQL no explicit
  transaction at all: an ITI-9 answer is one SELECT, a consistent snapshot by itself.

After any error the connection is closed (returned to the pool, invalidated if broken), so the
next transaction starts on a sound one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from xds_hub.storage.db import REGISTRY_LOCK, is_sqlite, writer_gate

#: BEGIN and the registry writers' lock (xds_hub.storage.db.write_transaction) in one round trip.
_PG_BEGIN_WRITE = f"BEGIN; SELECT pg_advisory_xact_lock({int(REGISTRY_LOCK)})"


class DbSession:
    """One connection, kept between transactions while there is work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = is_sqlite(engine)
        self._conn: Connection | None = None

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self.engine.connect()
            if not self.sqlite:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            self._conn = conn
        return self._conn

    def release(self) -> None:
        """Give the connection back to the pool (the MLLP connection has nothing to do)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    #: What opens a write transaction on PostgreSQL (for :meth:`write` with ``begin=False``).
    BEGIN_WRITE = _PG_BEGIN_WRITE

    @contextmanager
    def write(self, begin: bool = True) -> Iterator[Connection]:
        """A serialised write transaction: commits on success, rolls back on error.

        ``begin=False`` (PostgreSQL only; ignored on SQLite): nothing is sent yet, and the caller
        must send :attr:`BEGIN_WRITE` before anything else, in its first round trip (an ITI-8
        batch sends it with its first query: :meth:`xds_hub.pix.xref.CrossReference.batch`)."""
        try:
            if self.sqlite:
                with writer_gate(self.engine).turn():
                    conn = self._connection().execution_options(sqlite_begin="BEGIN IMMEDIATE")
                    with conn.begin():
                        yield conn
                return
            conn = self._connection()
            with conn.begin():
                dbapi = conn.connection.dbapi_connection
                assert dbapi is not None
                # Simple query protocol (no parameters): both statements in one round trip.  The
                # driver's commit() / rollback() end the transaction (it is not idle); after a
                # COMMIT sent by the caller they find it idle and send nothing.
                if begin:
                    dbapi.execute(_PG_BEGIN_WRITE)
                yield conn
        except BaseException:
            self.release()
            raise

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot), without the writers' lock."""
        try:
            conn = self._connection()
            if self.sqlite:
                conn = conn.execution_options(sqlite_begin="BEGIN")
            with conn.begin():
                yield conn
        except BaseException:
            self.release()
            raise
