"""The PIX Manager's SQL, run on the DB-API cursor of the caller's SQLAlchemy connection.

The feed is the hub's hottest write path (ITI-8 aims at thousands of messages a second), and
SQLAlchemy Core costs about ten times the driver's own work for these one-row statements, so the
handful of statements a feed needs are plain SQL here, written once for both SQLite and
PostgreSQL (positional placeholders, ``INSERT ... RETURNING`` and
``ON CONFLICT DO NOTHING`` exist in both).  They run inside the caller's transaction
(:func:`xds_hub.storage.db.write_transaction`); tables are those of :mod:`xds_hub.pix.tables` and
the registry's ``patient`` table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from xds_hub.pix.tables import pix_identity, pix_notification, pix_person
from xds_hub.storage.schema import patient

_ID = pix_identity.name
_PERSON = pix_person.name
_OUTBOX = pix_notification.name
_PATIENT = patient.name

Key = tuple[str, str]  # (authority, value)
#: A new identifier: (authority, value, person_id, demographics, updated).
Row = tuple[str, str, int, str | None, str]
#: A statement for a batch: (SQL, parameters).
Statement = tuple[str, Sequence[Any]]
#: Rows per multi-row INSERT (each row is at most five parameters).
ROWS_PER_INSERT = 500


def database_errors(engine: Engine) -> tuple[type[BaseException], ...]:
    """What a failing database raises here: SQLAlchemy's wrapper and the driver's own DB-API
    errors (the statements below run on the driver directly)."""
    return (DBAPIError, engine.dialect.loaded_dbapi.Error)


def render(conn: Connection, statements: Sequence[Statement]) -> bytes:
    """PostgreSQL: ``statements`` as one script, each ``%s`` replaced by the literal of its
    parameter as psycopg writes it (:meth:`psycopg.adapt.Transformer.as_literal`, the driver's
    own quoting and escaping, in the connection's encoding).

    psycopg's :class:`~psycopg.ClientCursor` does the same, but parses the query text for
    placeholders in Python, which for a batch's thousand parameters cost more than the rest of
    the batch's work; the text here is the module's own SQL, whose only ``%s`` are placeholders.
    A repeated string (an OID, a template's column) is quoted once.  When the server reads
    strings with standard_conforming_strings and the client encoding is UTF-8 (PostgreSQL's
    defaults), a string's literal is its UTF-8 text with quotes doubled (what libpq's
    PQescapeStringConn does then; a NUL, which no literal can hold, goes to psycopg's own
    quoting, which refuses it), and an int is its digits."""
    import psycopg
    from psycopg.adapt import Transformer

    dbapi = conn.connection.dbapi_connection
    assert isinstance(dbapi, psycopg.Connection)
    literal = Transformer(dbapi).as_literal
    plain = (
        dbapi.info.parameter_status("standard_conforming_strings") == b"on" and dbapi.info.encoding == "utf-8"
    )
    quoted: dict[str, bytes] = {}
    out: list[bytes] = []
    for sql, params in statements:
        parts = sql.encode().split(b"%s")
        if len(parts) != len(params) + 1:
            raise ValueError(f"{len(parts) - 1} placeholders for {len(params)} parameters: {sql[:80]}")
        if out:
            out.append(b"; ")
        out.append(parts[0])
        for value, part in zip(params, parts[1:], strict=True):
            kind = type(value)
            if value is None:
                out.append(b"NULL")
            elif kind is str:
                text = quoted.get(value)
                if text is None:
                    data = value.encode()
                    if plain and b"\x00" not in data:
                        text = b"'" + data.replace(b"'", b"''") + b"'"
                    else:
                        text = literal(value)
                    quoted[value] = text
                out.append(text)
            elif kind is int:
                out.append(b"%d" % value)
            else:
                out.append(literal(value))
            out.append(part)
    return b"".join(out)


class PixSql:
    """The statements, with the placeholder style of one database driver."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.p = p = "?" if dialect == "sqlite" else "%s"
        self.demographics_one_sql = (
            f"UPDATE {_ID} SET demographics = {p}, updated = {p} WHERE authority = {p} AND value = {p}"
        )
        self.enqueue_sql = (
            f"INSERT INTO {_OUTBOX} "
            "(subscriber, message, created, status, attempts, next_attempt, last_error) "
            f"VALUES ({p}, {p}, {p}, 'pending', 0, 0.0, NULL)"
        )

    @staticmethod
    def cursor(conn: Connection) -> Any:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        return dbapi.cursor()

    def _keys(self, count: int) -> str:
        """A WHERE clause for ``count`` (authority, value) keys: ORed equalities, which SQLite
        answers from the primary key (it would scan the table for a row-value IN list)."""
        return " OR ".join([f"(authority = {self.p} AND value = {self.p})"] * count)

    def load(self, conn: Connection, keys: Sequence[Key]) -> list[tuple[str, str, int, str | None]]:
        """(authority, value, person_id, merged_into) of the identifiers ``keys`` that exist."""
        p = self.p
        cur = self.cursor(conn)
        if len(keys) == 1:
            cur.execute(
                f"SELECT authority, value, person_id, merged_into FROM {_ID} "
                f"WHERE authority = {p} AND value = {p}",
                keys[0],
            )
        else:
            cur.execute(
                f"SELECT authority, value, person_id, merged_into FROM {_ID} WHERE {self._keys(len(keys))}",
                [x for k in keys for x in k],
            )
        return [(str(r[0]), str(r[1]), int(r[2]), r[3]) for r in cur.fetchall()]

    def members(self, conn: Connection, person_id: int) -> list[Key]:
        cur = self.cursor(conn)
        cur.execute(
            f"SELECT authority, value FROM {_ID} WHERE person_id = {self.p} AND merged_into IS NULL",
            (person_id,),
        )
        return [(str(r[0]), str(r[1])) for r in cur.fetchall()]

    def members_of(self, conn: Connection, person_ids: Sequence[int]) -> dict[int, list[Key]]:
        """The active identifiers of several persons, in one query."""
        cur = self.cursor(conn)
        cur.execute(
            f"SELECT person_id, authority, value FROM {_ID} "
            f"WHERE person_id IN ({', '.join([self.p] * len(person_ids))}) AND merged_into IS NULL",
            list(person_ids),
        )
        out: dict[int, list[Key]] = {}
        for person, authority, value in cur.fetchall():
            out.setdefault(int(person), []).append((str(authority), str(value)))
        return out

    def max_person(self, conn: Connection) -> int:
        """The highest person number (SQLite numbers the next one after it)."""
        cur = self.cursor(conn)
        cur.execute(f"SELECT coalesce(max(id), 0) FROM {_PERSON}")
        return int(cur.fetchone()[0])

    def next_persons(
        self, conn: Connection, count: int, authority: str, prefix: str
    ) -> list[tuple[int, tuple[int, str | None] | None]]:
        """``count`` person numbers from the PostgreSQL sequence, each with the (person_id,
        merged_into) of the identifier ``prefix<number>`` of ``authority`` if it exists (the one
        the hub would allocate), in one query."""
        cur = self.cursor(conn)
        cur.execute(
            # MATERIALIZED: each number drawn once (a flattened subquery would call nextval in
            # the join condition too, checking another number than the one returned).
            f"WITH s AS MATERIALIZED (SELECT nextval(pg_get_serial_sequence('{_PERSON}', 'id')) AS id "
            "FROM generate_series(1, %s)) "
            f"SELECT s.id, i.person_id, i.merged_into FROM s "
            f"LEFT JOIN {_ID} i ON i.authority = %s AND i.value = %s || s.id",
            (count, authority, prefix),
        )
        return sorted((int(r[0]), (int(r[1]), r[2]) if r[1] is not None else None) for r in cur.fetchall())

    def _multi(self, head: str, width: int, rows: Sequence[Sequence[Any]], tail: str = "") -> list[Statement]:
        p = self.p
        one = "(" + ", ".join([p] * width) + ")"
        out: list[Statement] = []
        for lo in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[lo : lo + ROWS_PER_INSERT]
            out.append(
                (f"{head} VALUES {', '.join([one] * len(chunk))}{tail}", [x for r in chunk for x in r])
            )
        return out

    def insert_persons_sql(self, persons: Sequence[tuple[int, str]]) -> list[Statement]:
        return self._multi(f"INSERT INTO {_PERSON} (id, created)", 2, persons)

    def insert_rows_sql(self, rows: Sequence[Row]) -> list[Statement]:
        return self._multi(f"INSERT INTO {_ID} (authority, value, person_id, demographics, updated)", 5, rows)

    def add_patients_sql(self, patients: Sequence[tuple[str, str]]) -> list[Statement]:
        return self._multi(
            f"INSERT INTO {_PATIENT} (patient_id, created)",
            2,
            patients,
            " ON CONFLICT (patient_id) DO NOTHING",
        )

    def enqueue_rows_sql(self, rows: Sequence[tuple[str, str, str]]) -> list[Statement]:
        """ITI-10 outbox rows (subscriber, message, created), pending."""
        return self._multi(
            f"INSERT INTO {_OUTBOX} "
            "(subscriber, message, created, status, attempts, next_attempt, last_error)",
            7,
            [(*r, "pending", 0, 0.0, None) for r in rows],
        )

    def script(self, conn: Connection, statements: Sequence[Statement]) -> None:
        """Run ``statements`` in order.  On PostgreSQL they go as one script in one round trip
        (:func:`render`: the parameters bound on the client, with psycopg's own literals, and the
        text sent with the simple query protocol, which runs several statements, each seeing the
        previous ones' changes)."""
        if not statements:
            return
        if self.dialect == "sqlite":
            cur = self.cursor(conn)
            for sql, params in statements:
                cur.execute(sql, params)
            return
        self.cursor(conn).execute(render(conn, statements))

    def load_members(
        self,
        conn: Connection,
        keys: Sequence[Key],
        begin: str = "",
        reserve: tuple[Sequence[int], str, str] | None = None,
    ) -> tuple[
        list[tuple[str, str, int, str | None]],
        dict[int, list[Key]],
        list[tuple[int, tuple[int, str | None] | None]],
    ]:
        """PostgreSQL: the identifiers ``keys`` that exist (as :meth:`load`) and the active
        identifiers of their persons (as :meth:`members_of`), in one query; ``begin`` (the write
        transaction's opening statements) goes in the same round trip.

        ``reserve`` = (the feed number of each key, authority, prefix): as many person numbers as
        there are feeds none of whose keys exist (the persons the batch will create), drawn in the
        same query, each with the identifier ``prefix<number>`` of ``authority`` if it exists
        (as :meth:`next_persons`)."""
        p = self.p
        if reserve is None:
            rows = ", ".join([f"(0, {p}, {p})"] * len(keys))
            params: list[Any] = [x for k in keys for x in k]
        else:
            rows = ", ".join(
                [f"({p}::integer, {p}::text, {p}::text)"] + [f"({p}, {p}, {p})"] * (len(keys) - 1)
            )
            params = [x for f, k in zip(reserve[0], keys, strict=True) for x in (f, *k)]
        sql = (
            f"WITH k (f, authority, value) AS (VALUES {rows}), "
            "q AS MATERIALIZED (SELECT k.f, i.authority, i.value, i.person_id, i.merged_into "
            f"FROM k JOIN {_ID} i ON i.authority = k.authority AND i.value = k.value) "
        )
        if reserve is not None:
            # MATERIALIZED: each number drawn once (see next_persons).
            sql += (
                ", s AS MATERIALIZED (SELECT nextval(pg_get_serial_sequence("
                f"'{_PERSON}', 'id')) AS id FROM generate_series(1, "
                "(SELECT count(DISTINCT f) FROM k) - (SELECT count(DISTINCT f) FROM q))) "
            )
        sql += (
            "SELECT 0, q.authority, q.value, q.person_id, q.merged_into, m.authority, m.value "
            f"FROM q LEFT JOIN {_ID} m ON m.person_id = q.person_id AND m.merged_into IS NULL"
        )
        if reserve is not None:
            sql += (
                " UNION ALL SELECT 1, NULL, NULL, s.id, i.merged_into, i.person_id::text, NULL "
                f"FROM s LEFT JOIN {_ID} i ON i.authority = {p} AND i.value = {p} || s.id"
            )
            params += [reserve[1], reserve[2]]
        cur = self.cursor(conn)
        cur.execute(render(conn, [*([(begin, ())] if begin else []), (sql, params)]))
        while cur.nextset():  # the result of the last statement
            pass
        found: dict[Key, tuple[str, str, int, str | None]] = {}
        members: dict[int, list[Key]] = {}
        reserved: list[tuple[int, tuple[int, str | None] | None]] = []
        for kind, authority, value, person, merged, m_authority, m_value in cur.fetchall():
            if kind == 1:  # a reserved number; m_authority: the person of its allocated ID
                reserved.append(
                    (int(person), (int(m_authority), merged) if m_authority is not None else None)
                )
                continue
            found[(str(authority), str(value))] = (str(authority), str(value), int(person), merged)
            known = members.setdefault(int(person), [])
            if m_authority is not None and (str(m_authority), str(m_value)) not in known:
                known.append((str(m_authority), str(m_value)))
        return list(found.values()), members, sorted(reserved)

    def aliases(self, conn: Connection, key: Key) -> tuple[bool, str | None, list[Key]]:
        """(known, merged_into, active identifiers of its person) of one identifier, in one query."""
        p = self.p
        cur = self.cursor(conn)
        cur.execute(
            f"SELECT q.merged_into, m.authority, m.value FROM {_ID} q "
            f"LEFT JOIN {_ID} m ON m.person_id = q.person_id AND m.merged_into IS NULL "
            f"WHERE q.authority = {p} AND q.value = {p}",
            key,
        )
        rows = cur.fetchall()
        if not rows:
            return False, None, []
        return True, rows[0][0], [(str(r[1]), str(r[2])) for r in rows if r[1] is not None]

    def new_person(self, conn: Connection, now: str) -> int:
        cur = self.cursor(conn)
        cur.execute(f"INSERT INTO {_PERSON} (created) VALUES ({self.p}) RETURNING id", (now,))
        return int(cur.fetchone()[0])

    def insert(self, conn: Connection, rows: Sequence[tuple[str, str, int, str | None, str]]) -> None:
        """New identifiers: (authority, value, person_id, demographics, updated)."""
        if not rows:
            return
        p = self.p
        sql = (
            f"INSERT INTO {_ID} (authority, value, person_id, merged_into, demographics, updated) "
            f"VALUES ({p}, {p}, {p}, NULL, {p}, {p})"
        )
        cur = self.cursor(conn)
        if len(rows) == 1:
            cur.execute(sql, rows[0])
        else:
            cur.executemany(sql, rows)

    def insert_new(self, conn: Connection, rows: Sequence[tuple[str, str, int, str | None, str]]) -> set[Key]:
        """Insert identifiers that may already exist; the keys actually inserted (one statement)."""
        if not rows:
            return set()
        p = self.p
        values = ", ".join([f"({p}, {p}, {p}, NULL, {p}, {p})"] * len(rows))
        cur = self.cursor(conn)
        cur.execute(
            f"INSERT INTO {_ID} (authority, value, person_id, merged_into, demographics, updated) "
            f"VALUES {values} ON CONFLICT DO NOTHING RETURNING authority, value",
            [x for row in rows for x in row],
        )
        return {(str(r[0]), str(r[1])) for r in cur.fetchall()}

    def demographics(self, conn: Connection, keys: Sequence[Key], demographics: str, now: str) -> None:
        p = self.p
        self.cursor(conn).execute(
            f"UPDATE {_ID} SET demographics = {p}, updated = {p} WHERE {self._keys(len(keys))}",
            [demographics, now, *(x for k in keys for x in k)],
        )

    def move(self, conn: Connection, from_person: int, to_person: int, now: str) -> None:
        p = self.p
        self.cursor(conn).execute(
            f"UPDATE {_ID} SET person_id = {p}, updated = {p} WHERE person_id = {p}",
            (to_person, now, from_person),
        )

    def retire(self, conn: Connection, key: Key, merged_into: str, person_id: int, now: str) -> None:
        p = self.p
        self.cursor(conn).execute(
            f"UPDATE {_ID} SET merged_into = {p}, person_id = {p}, updated = {p} "
            f"WHERE authority = {p} AND value = {p}",
            (merged_into, person_id, now, *key),
        )

    def add_patient(self, conn: Connection, pid: str, now: str) -> None:
        """The registry's patient table learns an affinity-domain ID (no-op when known)."""
        p = self.p
        self.cursor(conn).execute(
            f"INSERT INTO {_PATIENT} (patient_id, created, merged_into) VALUES ({p}, {p}, NULL) "
            "ON CONFLICT (patient_id) DO NOTHING",
            (pid, now),
        )

    def enqueue(self, conn: Connection, rows: Iterable[tuple[str, str, str]]) -> None:
        """ITI-10 outbox rows: (subscriber, message, created)."""
        self.cursor(conn).executemany(self.enqueue_sql, list(rows))
