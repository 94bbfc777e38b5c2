"""The PIX Manager's audit trail (ITI-20): ITI-8, ITI-9, ITI-44 and ITI-45 as ITI TF-2a 3.8.5.1,
3.9.5.1 and ITI TF-2b 3.44.5.1, 3.45.5.1 describe them, built by :mod:`xds_hub.audit.events`.

- ITI-8 / ITI-44 feed: Patient Record (110110), C for A01/A04/A05 (v3 add), U for A08 (v3 revise);
  a merge (A40, v3 duplicates resolved) is two records: D for the identifiers it retires, U for
  the surviving ones.  Patients: the identifiers fed (CX), MSH-10 (II for v3) as their detail;
  the affinity-domain ID of the person is an alias, so ``xds-hub audit --patient`` finds a feed
  under the regional ID too.
- ITI-9 / ITI-45 query: Query (110112, E), the QPD segment (the queryByParameter element) as the
  query object; patients: the queried identifier and those returned.
- A refusal by the access rules adds a Security Alert (110113, Use of Restricted Function).

Cost: a feed is on the hub's hottest path, and building the message with the audit builders and
lxml costs more than the feed itself (about 300 us).  A successful record of a given kind from a
given sender differs from the previous one only by its time, message id, query and patient IDs, so
:class:`PixAuditor` builds it once per kind with placeholder values (through the same builders and
XML writer) and fills the copy in by string replacement (a few microseconds).  Failures are built
in full.  The rows are inserted with the feed's own transaction (:func:`insert`, one multi-row
statement per table; on PostgreSQL in the same round trip as the rest of the batch's writes), or,
for reads, by an :class:`AuditQueue` writer thread that commits what accumulated.  A failing audit
insert never fails the transaction it describes: it runs in a savepoint, and the rows go to the
queue instead.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from xds_hub.audit import events
from xds_hub.audit.model import Action, AuditMessage, Outcome
from xds_hub.audit.store import _row as audit_row
from xds_hub.audit.tables import audit_patient, audit_record
from xds_hub.config import Settings
from xds_hub.errors import AckCode, Hl7Error, Hl7ErrorCode
from xds_hub.log import get_logger
from xds_hub.pix.store import PixSql, Statement
from xds_hub.storage.db import write_transaction

log = get_logger("xds_hub.pix.audit")

#: audit_record columns, in the order of :attr:`AuditRow.values` (``id`` apart).
COLUMNS = (
    "event_ns",
    "event_id",
    "event_name",
    "action",
    "outcome",
    "event_type",
    "event_type_name",
    "requestor",
    "requestor_name",
    "requestor_address",
    "objects",
    "outcome_description",
    "message",
    "sent_ns",
    "attempts",
)
_XML = COLUMNS.index("message")
_OBJECTS = COLUMNS.index("objects")
_EVENT_NS = COLUMNS.index("event_ns")

#: Placeholders of a template: characters of the private use area never appear in real values.
_TIME = dt.datetime(2001, 2, 3, 4, 5, 6, 789000, tzinfo=dt.UTC)
_TIME_TEXT = _TIME.isoformat(timespec="milliseconds")
_MESSAGE_ID = "\ue000M\ue000"
_QUERY = "\ue000Q\ue000".encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


_MESSAGE_ID_B64 = _b64(_MESSAGE_ID.encode())
_QUERY_B64 = _b64(_QUERY)


def _patient(n: int) -> str:
    return f"\ue000P{n}\ue000"


_ATTRIBUTE_SPECIAL = re.compile('[<>"\n\r\t]')


def _attribute(value: str) -> str:
    """``value`` as lxml writes it in a double-quoted attribute (a CX always holds ``&``)."""
    value = value.replace("&", "&amp;")
    if _ATTRIBUTE_SPECIAL.search(value) is None:
        return value
    return (
        value.replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
        .replace("\t", "&#9;")
    )


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One audit message, ready to insert: the audit_record values and the patients it is about."""

    values: tuple[Any, ...]
    patients: tuple[str, ...]

    @property
    def xml(self) -> str:
        return str(self.values[_XML])


#: What a template's XML is split on: the placeholders.
_SLOTS = re.compile(
    "|".join(re.escape(x) for x in (_TIME_TEXT, _MESSAGE_ID_B64, _MESSAGE_ID, _QUERY_B64))
    + "|\ue000P(\\d+)\ue000"
)


@dataclass(frozen=True, slots=True)
class _Template:
    """A row built with placeholders; its XML split into text and slots (even / odd items)."""

    row: AuditRow
    parts: tuple[str, ...]

    @classmethod
    def of(cls, row: AuditRow) -> _Template:
        parts: list[str] = []
        last = 0
        for m in _SLOTS.finditer(row.xml):
            parts += [row.xml[last : m.start()], m.group(0)]
            last = m.end()
        parts.append(row.xml[last:])
        return cls(row, tuple(parts))


def row_of(message: AuditMessage, aliases: Sequence[str] = ()) -> AuditRow:
    """The row of ``message`` as :func:`xds_hub.audit.store.record` would insert it."""
    row = audit_row(message)
    patients = tuple(dict.fromkeys(p[:256] for p in (*message.patient_ids, *aliases) if p))
    return AuditRow(tuple(row[c] for c in COLUMNS), patients)


def failure_outcome(failure: Hl7Error) -> tuple[Outcome, str]:
    """EventOutcomeIndicator of a refused message: 12 when the hub failed (207), 8 otherwise."""
    internal = any(p.code is Hl7ErrorCode.APPLICATION_INTERNAL_ERROR for p in failure.problems)
    text = "; ".join(f"{p.code.value} {p.text}" for p in failure.problems)
    ack = "AR" if failure.ack is AckCode.REJECT else "AE"
    return (Outcome.MAJOR_FAILURE if internal else Outcome.SERIOUS_FAILURE), f"{ack}: {text}"[:1000]


class PixAuditor:
    """Builds the PIX transactions' audit rows (templates for the successful ones)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.source = events.audit_source(settings)
        self._templates: dict[tuple[Any, ...], _Template] = {}
        self._hubs: dict[str, events.Node] = {}
        self._lock = threading.Lock()

    def hub_mllp(self, application_facility: str) -> events.Node:
        node = self._hubs.get(application_facility)
        if node is None:
            node = self._hubs[application_facility] = events.hub_mllp(self.settings, application_facility)
        return node

    def patient_record(
        self,
        transaction: str,
        requestor: events.Node,
        hub: events.Node,
        action: Action,
        patient_ids: Sequence[str],
        message_id: str,
        aliases: Sequence[str] = (),
        failure: Hl7Error | None = None,
    ) -> AuditRow:
        """ITI-8 / ITI-44 Patient Record."""
        if failure is not None:
            outcome, description = failure_outcome(failure)
            message = events.patient_record(
                self.source,
                transaction,
                requestor,
                hub,
                action,
                patient_ids,
                message_id,
                outcome,
                description,
            )
            return row_of(message, aliases)
        key = ("record", transaction, requestor, hub, action, len(patient_ids))
        template = self._templates.get(key)
        if template is None:
            placeholders = [_patient(n) for n in range(len(patient_ids))]
            message = events.patient_record(
                self.source, transaction, requestor, hub, action, placeholders, _MESSAGE_ID, when=_TIME
            )
            template = self._remember(key, row_of(message))
        return self._fill(template, patient_ids, message_id, None, aliases)

    def query(
        self,
        transaction: str,
        requestor: events.Node,
        hub: events.Node,
        query: bytes,
        message_id: str,
        patient_ids: Sequence[str],
        failure: Hl7Error | None = None,
    ) -> AuditRow:
        """ITI-9 / ITI-45 Query."""
        if failure is not None:
            outcome, description = failure_outcome(failure)
            message = events.pix_query(
                self.source, transaction, requestor, hub, query, message_id, patient_ids, outcome, description
            )
            return row_of(message)
        key = ("query", transaction, requestor, hub, len(patient_ids))
        template = self._templates.get(key)
        if template is None:
            placeholders = [_patient(n) for n in range(len(patient_ids))]
            message = events.pix_query(
                self.source, transaction, requestor, hub, _QUERY, _MESSAGE_ID, placeholders, when=_TIME
            )
            template = self._remember(key, row_of(message))
        return self._fill(template, patient_ids, message_id, query, ())

    def access_denied(self, requestor: events.Node, hub: events.Node, what: str, reason: str) -> AuditRow:
        return row_of(events.access_denied(self.source, requestor, hub, what, reason))

    def _remember(self, key: tuple[Any, ...], row: AuditRow) -> _Template:
        template = _Template.of(row)
        with self._lock:
            if len(self._templates) > 4096:  # many senders: start again rather than grow
                self._templates.clear()
            self._templates[key] = template
        return template

    @staticmethod
    def _fill(
        template: _Template,
        patient_ids: Sequence[str],
        message_id: str,
        query: bytes | None,
        aliases: Sequence[str],
    ) -> AuditRow:
        now = dt.datetime.now(dt.UTC)
        fills = {
            _TIME_TEXT: now.isoformat(timespec="milliseconds"),
            _MESSAGE_ID_B64: _b64(message_id.encode()),
            _MESSAGE_ID: _attribute(message_id),
            _QUERY_B64: _b64(query) if query is not None else "",
        }
        for n, pid in enumerate(patient_ids):
            fills[_patient(n)] = _attribute(pid)
        parts = list(template.parts)
        for i in range(1, len(parts), 2):
            parts[i] = fills[parts[i]]
        values = list(template.row.values)
        values[_XML] = "".join(parts)
        values[_EVENT_NS] = int(now.timestamp() * 1_000_000) * 1000
        objects = values[_OBJECTS]
        if _MESSAGE_ID in objects:
            values[_OBJECTS] = objects.replace(_MESSAGE_ID, json.dumps(message_id, ensure_ascii=False)[1:-1])
        patients = tuple(dict.fromkeys(p[:256] for p in (*patient_ids, *aliases) if p))
        return AuditRow(tuple(values), patients)


# ---------------------------------------------------------------------------------------------
# Storing
# ---------------------------------------------------------------------------------------------

_RECORD = audit_record.name
_PATIENT = audit_patient.name
_SQL: dict[str, PixSql] = {}


def _sql(dialect: str) -> PixSql:
    sql = _SQL.get(dialect)
    if sql is None:
        sql = _SQL[dialect] = PixSql(dialect)
    return sql


def statements(conn: Connection, rows: Sequence[AuditRow]) -> list[Statement]:
    """The statements inserting ``rows`` inside ``conn``'s write transaction.

    SQLite: numbered after ``max(id)`` (the transaction holds the writer lock), one multi-row
    INSERT per table.  PostgreSQL: one statement per 200 records (:func:`_pg_statement`), meant
    for one script (:meth:`~xds_hub.pix.store.PixSql.script`).
    """
    dialect = conn.dialect.name
    sql = _sql(dialect)
    p = sql.p
    one = "(" + ", ".join([p] * (len(COLUMNS) + 1)) + ")"
    head = f"INSERT INTO {_RECORD} (id, {', '.join(COLUMNS)}) VALUES"
    if dialect == "sqlite":
        cur = PixSql.cursor(conn)
        cur.execute(f"SELECT coalesce(max(id), 0) FROM {_RECORD}")
        first = int(cur.fetchone()[0]) + 1
        ids = range(first, first + len(rows))
        out: list[Statement] = []
        for lo in range(0, len(rows), 200):
            chunk = list(zip(ids[lo : lo + 200], rows[lo : lo + 200], strict=True))
            out.append(
                (
                    f"{head} {', '.join([one] * len(chunk))}",
                    [x for i, r in chunk for x in (i, *r.values)],
                )
            )
        links = [(i, pid) for i, r in zip(ids, rows, strict=True) for pid in r.patients]
        out += sql._multi(f"INSERT INTO {_PATIENT} (record_id, patient_id)", 2, links)
        return out
    return [_pg_statement(chunk) for chunk in (rows[lo : lo + 200] for lo in range(0, len(rows), 200))]


_PG_TYPES: list[str] = []


def _pg_statement(rows: Sequence[AuditRow]) -> Statement:
    """PostgreSQL: ``rows`` and their patients in one statement (one parse and plan instead of
    two per record): the records numbered from the table's sequence in a CTE, then inserted
    with their patients (the foreign key is checked at the end of the statement, when both are
    in).  The first row of each VALUES list carries the column types (for NULLs and numbers)."""
    if not _PG_TYPES:
        from sqlalchemy.dialects import postgresql

        dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
        # Strings as text: the INSERT's own assignment checks their length, as before.
        _PG_TYPES.extend(
            "text"
            if audit_record.c[c].type.python_type is str
            else audit_record.c[c].type.compile(dialect=dialect)
            for c in COLUMNS
        )
    columns = ", ".join(COLUMNS)
    first = "(%s::integer, " + ", ".join(f"%s::{t}" for t in _PG_TYPES) + ")"
    other = "(" + ", ".join(["%s"] * (len(COLUMNS) + 1)) + ")"
    links = [(n, pid) for n, r in enumerate(rows) for pid in r.patients]
    sql = (
        f"WITH v (n, {columns}) AS (VALUES {', '.join([first] + [other] * (len(rows) - 1))}), "
        f"ids AS MATERIALIZED (SELECT n, nextval(pg_get_serial_sequence('{_RECORD}', 'id')) AS id FROM v), "
        f"r AS (INSERT INTO {_RECORD} (id, {columns}) "
        f"SELECT ids.id, {', '.join(f'v.{c}' for c in COLUMNS)} FROM v JOIN ids USING (n)) "
    )
    params: list[Any] = [x for n, r in enumerate(rows) for x in (n, *r.values)]
    if links:
        pairs = ", ".join(["(%s::integer, %s::text)"] + ["(%s, %s)"] * (len(links) - 1))
        sql += (
            f"INSERT INTO {_PATIENT} (record_id, patient_id) "
            f"SELECT ids.id, p.patient_id FROM (VALUES {pairs}) AS p (n, patient_id) JOIN ids USING (n)"
        )
        params += [x for link in links for x in link]
    else:
        sql += "SELECT count(*) FROM r"
    return sql, params


def insert(
    conn: Connection, rows: Sequence[AuditRow], before: Sequence[Statement] = (), commit: bool = False
) -> bool:
    """Run the statements ``before`` (a batch's feed writes), then insert ``rows`` inside a
    savepoint, all in one round trip on PostgreSQL.  A failure of the feed writes raises (the
    transaction fails); a failure of the audit insert only undoes the audit rows: False.

    ``commit`` (PostgreSQL, the connection in the driver's autocommit mode with a transaction
    opened by ``BEGIN``): the script ends with COMMIT, saving the commit's own round trip; when it
    returns True the transaction is committed (the caller's commit then finds nothing to do).  When
    the audit rows fail, COMMIT is not reached: they are rolled back and the caller commits."""
    sql = _sql(conn.dialect.name)
    end: list[Statement] = [("COMMIT", ())] if commit and sql.dialect != "sqlite" else []
    if not rows:
        sql.script(conn, [*before, *end])
        return True
    audit = [("SAVEPOINT pix_audit", ()), *statements(conn, rows), ("RELEASE SAVEPOINT pix_audit", ())]
    try:
        sql.script(conn, [*before, *audit, *end])
    except Exception as exc:
        try:
            # The savepoint exists only if every statement before it succeeded (and a failed
            # COMMIT leaves no transaction: this fails too, and the batch fails as it should).
            PixSql.cursor(conn).execute("ROLLBACK TO SAVEPOINT pix_audit")
            PixSql.cursor(conn).execute("RELEASE SAVEPOINT pix_audit")
        except Exception:
            raise exc from None
        log.exception("PIX audit rows could not be stored with the transaction; queued")
        return False
    return True


class AuditQueue:
    """Audit rows written by a thread of their own: those of reads (an ITI-9 answer is a read and
    must not wait on a commit), and those that could not go with their transaction.  Each write
    commits everything queued meanwhile; ``stop`` writes what is left."""

    #: Rows kept while the database is unreachable; older ones are logged and dropped beyond that.
    LIMIT = 100_000
    #: Seconds to let rows accumulate before a write (one commit, one fsync on SQLite, per write:
    #: at 0.05 s the commits of a stream of ITI-9 queries cost as much CPU as the queries).
    LINGER = 0.2

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._rows: deque[AuditRow] = deque()
        self._cv = threading.Condition()
        self._stopping = False
        self._failures = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pix-audit", daemon=True)
        self._thread.start()

    def put(self, rows: Sequence[AuditRow]) -> None:
        if not rows:
            return
        with self._cv:
            self._rows.extend(rows)
            while len(self._rows) > self.LIMIT:
                lost = self._rows.popleft()
                log.error("PIX audit queue full; record dropped", extra={"audit_message": lost.xml})
            self._cv.notify()

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def flush(self) -> None:
        """Write what is queued now (in the caller's thread)."""
        with self._cv:
            rows = list(self._rows)
            self._rows.clear()
        self._write(rows)

    def _write(self, rows: list[AuditRow]) -> bool:
        if not rows:
            return True
        try:
            with write_transaction(self.engine) as conn:
                _sql(conn.dialect.name).script(conn, statements(conn, rows))
        except Exception:
            self._failures += 1
            if self._failures == 1 or self._failures % 60 == 0:  # not once a second while it is down
                log.exception(
                    "PIX audit rows could not be stored; kept for the next attempt",
                    extra={"queued": len(rows), "attempts": self._failures},
                )
            with self._cv:
                self._rows.extendleft(reversed(rows))
            return False
        self._failures = 0
        return True

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._rows and not self._stopping:
                    self._cv.wait()
                stopping = self._stopping
            if not stopping:
                time.sleep(self.LINGER)
            with self._cv:
                rows = list(self._rows)
                self._rows.clear()
            ok = self._write(rows)
            if stopping:
                if not ok:
                    log.error("PIX audit rows lost at shutdown", extra={"count": len(rows)})
                return
            if not ok:
                time.sleep(1.0)
