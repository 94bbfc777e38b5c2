"""A batch of ITI-8 feeds in a few SQL round trips (ITI TF-2a 3.8.4.1.3: the PIX Manager's
cross-referencing, unchanged; only how it reaches the database).

When the MLLP listener commits several pipelined feeds in one transaction, each feed
(:meth:`xds_hub.pix.xref.CrossReference.feed`) would run its own four or five statements, one round
trip each: on PostgreSQL the batch then waits on the network far longer than it computes.  A
:class:`FeedUnit` stands in for :class:`~xds_hub.pix.store.PixSql` during such a batch:

- reads: the identifiers of every feed of the batch are loaded with one query before the first
  feed runs (:meth:`preload`), with the members of the persons they belong to (one more query);
  later reads are answered from what was loaded plus what the batch itself wrote;
- person numbers: reserved a block at a time (a PostgreSQL sequence, or after ``max(id)`` on
  SQLite, whose writer lock the transaction holds), with the affinity-domain IDs the hub would
  allocate for them checked in the same query;
- writes: kept in order and sent at :meth:`flush`, as one multi-row statement per table (all in one
  round trip on PostgreSQL), before anything else runs on the connection and before the commit.

Only add/update feeds, which refuse before their first write, run through a unit; merges and
queries run on the connection directly after a flush (:mod:`xds_hub.pix.service`).  The whole
batch runs inside the registry's write transaction, so nothing else changes these rows meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection

from xds_hub.pix.store import Key, PixSql, Row

#: Keys per SELECT (each key is two parameters).
CHUNK = 200


class FeedUnit:
    """Deferred writes and cached reads of one batch, with :class:`PixSql`'s interface."""

    def __init__(self, sql: PixSql, allocated: tuple[str, str], expected: int) -> None:
        self.sql = sql
        self.p = sql.p
        #: (affinity domain OID, prefix): the hub allocates ``prefix<person number>``.
        self._allocated = allocated
        #: How many persons the batch may still create (the size of the next reservation).
        self.expected = max(1, expected)
        self._rows: dict[Key, tuple[int, str | None] | None] = {}  # None: known not to exist
        self._members: dict[int, list[Key]] = {}
        self._reserved: list[int] = []
        self._sqlite_next: int | None = None
        self._persons: list[tuple[int, str]] = []
        self._identities: list[Row] = []
        self._updates: list[tuple[str | None, str, str, str]] = []
        self._patients: dict[str, str] = {}
        self._outbox: list[tuple[str, str, str]] = []

    # -----------------------------------------------------------------------------------------
    # Reads
    # -----------------------------------------------------------------------------------------

    def preload(self, conn: Connection, keys: Iterable[Key], begin: str = "") -> None:
        """Load ``keys`` (and the members of their persons) in as few queries as possible;
        ``begin`` (PostgreSQL: the statements opening the write transaction) goes with the first."""
        self._preload(conn, list(keys), begin, None)

    def preload_feeds(self, conn: Connection, feeds: Sequence[Sequence[Key]], begin: str = "") -> None:
        """:meth:`preload` the keys of the batch's feeds; on PostgreSQL, when they fit in one
        query, the person numbers of the feeds that are new are reserved in the same query."""
        keys = [k for feed in feeds for k in feed]
        numbers = [n for n, feed in enumerate(feeds) for _ in feed]
        self._preload(conn, keys, begin, numbers if len(keys) <= CHUNK else None)

    def _preload(self, conn: Connection, keys: list[Key], begin: str, numbers: list[int] | None) -> None:
        if self.sql.dialect != "sqlite":
            # One query per chunk for the identifiers and their persons' members.
            if numbers is not None and keys:
                found, members, reserved = self.sql.load_members(
                    conn, keys, begin, (numbers, *self._allocated)
                )
                for key in keys:
                    self._rows.setdefault(key, None)
                self._take(found, members)
                authority, prefix = self._allocated
                for person, row in reserved:
                    self._rows[(authority, f"{prefix}{person}")] = row
                self._reserved += [person for person, _ in reserved]
                return
            missing = list(dict.fromkeys(k for k in keys if k not in self._rows))
            if not missing and begin:
                self.sql.script(conn, [(begin, ())])
            for lo in range(0, len(missing), CHUNK):
                chunk = missing[lo : lo + CHUNK]
                for key in chunk:
                    self._rows[key] = None
                found, members, _ = self.sql.load_members(conn, chunk, begin if lo == 0 else "")
                self._take(found, members)
            return
        missing = list(dict.fromkeys(k for k in keys if k not in self._rows))
        persons: set[int] = set()
        for lo in range(0, len(missing), CHUNK):
            chunk = missing[lo : lo + CHUNK]
            for key in chunk:
                self._rows[key] = None
            for a, v, person, merged in self.sql.load(conn, chunk):
                self._rows[(a, v)] = (person, merged)
                persons.add(person)
        todo = sorted(p for p in persons if p not in self._members)
        for lo in range(0, len(todo), CHUNK):
            for person, keys_of in self.sql.members_of(conn, todo[lo : lo + CHUNK]).items():
                self._members[person] = keys_of
            for person in todo[lo : lo + CHUNK]:
                self._members.setdefault(person, [])

    def _take(self, found: list[tuple[str, str, int, str | None]], members: dict[int, list[Key]]) -> None:
        for a, v, person, merged in found:
            self._rows[(a, v)] = (person, merged)
        for person, keys_of in members.items():
            # What this batch wrote for an already known person is in its own list.
            self._members.setdefault(person, keys_of)

    def load(self, conn: Connection, keys: Sequence[Key]) -> list[tuple[str, str, int, str | None]]:
        self.preload(conn, keys)
        out = []
        for key in keys:
            row = self._rows[key]
            if row is not None:
                out.append((key[0], key[1], row[0], row[1]))
        return out

    def members(self, conn: Connection, person_id: int) -> list[Key]:
        if person_id not in self._members:
            self._members[person_id] = self.sql.members(conn, person_id) + [
                (r[0], r[1]) for r in self._identities if r[2] == person_id
            ]
        return list(self._members[person_id])

    # -----------------------------------------------------------------------------------------
    # Writes (deferred)
    # -----------------------------------------------------------------------------------------

    def new_person(self, conn: Connection, now: str) -> int:
        if not self._reserved:
            self._reserve(conn)
        person = self._reserved.pop(0)
        self.expected = max(1, self.expected - 1)
        self._persons.append((person, now))
        self._members[person] = []
        return person

    def _reserve(self, conn: Connection) -> None:
        """A block of person numbers, and whether the IDs the hub would allocate for them exist."""
        count = self.expected
        authority, prefix = self._allocated
        if self.sql.dialect == "sqlite":
            if self._sqlite_next is None:
                self._sqlite_next = self.sql.max_person(conn) + 1
            ids = list(range(self._sqlite_next, self._sqlite_next + count))
            self._sqlite_next += count
            self.preload(conn, [(authority, f"{prefix}{i}") for i in ids])
        else:
            reserved = self.sql.next_persons(conn, count, authority, prefix)
            ids = [person for person, _ in reserved]
            for person, row in reserved:
                self._rows[(authority, f"{prefix}{person}")] = row
        self._reserved = ids

    def _add(self, rows: Sequence[Row]) -> None:
        for row in rows:
            key = (row[0], row[1])
            self._rows[key] = (row[2], None)
            known = self._members.get(row[2])
            if known is not None:  # else members() reads the person's rows and adds the pending ones
                known.append(key)
            self._identities.append(row)

    def insert(self, conn: Connection, rows: Sequence[Row]) -> None:
        self._add(rows)

    def insert_new(self, conn: Connection, rows: Sequence[Row]) -> set[Key]:
        self.preload(conn, [(r[0], r[1]) for r in rows])
        fresh: list[Row] = []
        for row in rows:
            key = (row[0], row[1])
            if self._rows[key] is None and all((r[0], r[1]) != key for r in fresh):
                fresh.append(row)
        self._add(fresh)
        return {(r[0], r[1]) for r in fresh}

    def demographics(self, conn: Connection, keys: Sequence[Key], demographics: str, now: str) -> None:
        self._updates += [(demographics, now, a, v) for a, v in keys]

    def add_patient(self, conn: Connection, pid: str, now: str) -> None:
        self._patients.setdefault(pid, now)

    def enqueue(self, conn: Connection, rows: Iterable[tuple[str, str, str]]) -> None:
        self._outbox += rows

    # -----------------------------------------------------------------------------------------
    # Flush
    # -----------------------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        return bool(self._persons or self._identities or self._updates or self._patients or self._outbox)

    def flush(self, conn: Connection) -> None:
        """Send the deferred writes in order (inserts first, then updates): one round trip on
        PostgreSQL (:meth:`~xds_hub.pix.store.PixSql.script`)."""
        self.sql.script(conn, self.take())

    def take(self) -> list[tuple[str, Sequence[Any]]]:
        """The statements of the deferred writes, in order, for the caller to send (with more of
        its own in the same round trip); the unit no longer holds them."""
        if not self.pending:
            return []
        sql = self.sql
        statements: list[tuple[str, Sequence[Any]]] = []
        if self._persons:
            statements += sql.insert_persons_sql(self._persons)
        if self._identities:
            statements += sql.insert_rows_sql(self._identities)
        if self._patients:
            statements += sql.add_patients_sql(list(self._patients.items()))
        statements += [(sql.demographics_one_sql, u) for u in self._updates]
        if self._outbox:
            statements += sql.enqueue_rows_sql(self._outbox)
        self._persons, self._identities, self._updates, self._patients, self._outbox = [], [], [], {}, []
        return statements

    def forget(self) -> None:
        """Drop what was loaded (after something ran on the connection outside the unit)."""
        assert not self.pending
        self._rows.clear()
        self._members.clear()
        self._sqlite_next = None
        self._reserved = []
