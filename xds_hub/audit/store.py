"""Recording audit messages in the local audit trail, and reading it back (ITI-20, `xds-hub audit`).

:func:`record` never makes the audited transaction fail:

- given the transaction's ``Connection``, it inserts in a SAVEPOINT of that transaction, so the record
  commits (or rolls back) with the data it describes and a failing insert leaves the transaction
  usable;
- given an ``Engine``, it commits on its own (reads, failures recorded after a rollback).

If the insert itself fails, the message is written to the log (ERROR, with the XML) and None is
returned.  The :mod:`xds_hub.audit.sender` actor ships the queued rows to the Audit Record
Repository; a row is never deleted here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, Engine, String, Table, func, insert, select, update
from sqlalchemy.dialects import postgresql

from xds_hub.audit.codes import IdType
from xds_hub.audit.model import AuditMessage, Outcome, ParticipantObject
from xds_hub.audit.tables import audit_patient, audit_record
from xds_hub.audit.xml import to_xml
from xds_hub.log import get_logger
from xds_hub.registry import dbapi
from xds_hub.storage.db import is_sqlite, write_transaction

log = get_logger("xds_hub.audit")

#: ParticipantObjectIDTypeCode csd-code -> the kind `xds-hub audit` shows.
_KINDS = {
    IdType.REPORT.code: "document",
    IdType.SUBMISSION_SET.code: "submission-set",
    IdType.OBJECT_REF.code: "registry-object",
    IdType.STUDY.code: "study",
    IdType.SOP_CLASS.code: "query",
    IdType.NODE.code: "node",
    IdType.URI.code: "uri",
}


def _kind(obj: ParticipantObject) -> str:
    if obj.query is not None:
        return "query"
    return _KINDS.get(obj.id_type.code, obj.id_type.text)


def _ns(when: dt.datetime) -> int:
    return int(when.timestamp() * 1_000_000) * 1000


def _row(message: AuditMessage) -> dict[str, object]:
    event = message.event
    requestor = message.requestor
    first_type = event.type_codes[0] if event.type_codes else None
    objects = [{"kind": _kind(o), "id": o.object_id} for o in message.objects if o.id_type != IdType.PATIENT]
    return {
        "event_ns": _ns(event.time),
        "event_id": event.event_id.code,
        "event_name": event.event_id.text[:64],
        "action": event.action.value,
        "outcome": int(event.outcome),
        "event_type": first_type.code[:32] if first_type else None,
        "event_type_name": first_type.text[:128] if first_type else None,
        "requestor": requestor.user_id[:512] if requestor else None,
        "requestor_name": (requestor.user_name or "")[:512] or None if requestor else None,
        "requestor_address": (requestor.network_access_point or "")[:256] or None if requestor else None,
        "objects": json.dumps(objects, ensure_ascii=False),
        "outcome_description": event.outcome_description,
        "message": to_xml(message).decode("utf-8"),
        "sent_ns": None,
        "attempts": 0,
    }


_INSERT_RECORD = insert(audit_record)
_INSERT_PATIENT = insert(audit_patient)


def _insert(conn: Connection, message: AuditMessage, aliases: Iterable[str]) -> int:
    # One prebuilt statement with the row as parameters: compiled once (a ``.values(**row)`` per
    # message made SQLAlchemy build and cache-key a statement each time: ~10x the CPU per record).
    result = conn.execute(_INSERT_RECORD, _row(message))
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the audit record got no id")
    record_id = int(key[0])
    patients = list(dict.fromkeys(p[:256] for p in (*message.patient_ids, *aliases) if p))
    if patients:
        conn.execute(_INSERT_PATIENT, [{"record_id": record_id, "patient_id": p} for p in patients])
    return record_id


def record(message: AuditMessage, target: Connection | Engine, *, aliases: Iterable[str] = ()) -> int | None:
    """Keep ``message`` in the audit trail (queued for the repository); returns its id, None on failure.

    ``target``: the audited transaction's connection (insert in a savepoint of it) or an engine
    (insert and commit now).  ``aliases``: other IDs of the same patient to index the record under
    (e.g. the affinity-domain ID of a study stored under a local patient ID).
    """
    try:
        if isinstance(target, Connection):
            with target.begin_nested():
                return _insert(target, message, aliases)
        with target.begin() as conn:
            return _insert(conn, message, aliases)
    except Exception:
        try:
            xml = to_xml(message).decode("utf-8", "replace")
        except Exception:  # a message that cannot even be written: log what we have
            xml = repr(message)
        log.exception("audit record could not be stored", extra={"audit_message": xml})
        return None


def record_many(messages: Sequence[AuditMessage], engine: Engine) -> None:
    """Store ``messages`` in one transaction (the :mod:`xds_hub.audit.recorder`'s batches); raises
    on a database error (nothing of the batch is stored then)."""
    if not messages:
        return
    rows = [_row(m) for m in messages]  # (the XML and JSON: before the SQLite writer lock)
    if is_sqlite(engine):
        with write_transaction(engine) as conn:  # queue with the hub's other SQLite writers
            _insert_batch(conn, messages, rows)
        return
    with engine.begin() as conn:
        _insert_batch(conn, messages, rows)


#: The columns of ``audit_record`` an insert fills, ``id`` first (in :func:`_row`'s keys after it).
_RECORD_COLUMNS: Final = tuple(c.name for c in audit_record.columns)
_PATIENT_COLUMNS: Final = ("record_id", "patient_id")
#: PostgreSQL: ``count`` fresh ids of audit_record's sequence (ascending).
_PG_NEW_IDS: Final = (
    "SELECT nextval(pg_get_serial_sequence('audit_record', 'id')) FROM generate_series(1, %s)"
)


def _pg_unnest_insert(table: Table, columns: tuple[str, ...]) -> str:
    """``INSERT ... SELECT * FROM unnest(%s::type[], ...)``: one array parameter per column, so the
    text is the same whatever the number of rows (psycopg prepares it once).  Strings go as
    ``text[]``: a cast to ``varchar(n)`` would truncate silently, the insert refuses what is too long.
    """
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]

    def sql_type(name: str) -> str:
        kind = table.c[name].type
        return "text" if isinstance(kind, String) else str(kind.compile(dialect=dialect))

    arrays = ", ".join(f"%s::{sql_type(name)}[]" for name in columns)
    return f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"


def _sqlite_insert(table: Table, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join(['?'] * len(columns))})"


_PG_INSERT_RECORDS: Final = _pg_unnest_insert(audit_record, _RECORD_COLUMNS)
_PG_INSERT_PATIENTS: Final = _pg_unnest_insert(audit_patient, _PATIENT_COLUMNS)
_SQLITE_INSERT_RECORDS: Final = _sqlite_insert(audit_record, _RECORD_COLUMNS)
_SQLITE_INSERT_PATIENTS: Final = _sqlite_insert(audit_patient, _PATIENT_COLUMNS)


def _insert_batch(
    conn: Connection, messages: Sequence[AuditMessage], rows: Sequence[dict[str, object]]
) -> None:
    """The whole batch (``rows``: :func:`_row` of each message) in a few statements on the DB-API
    cursor, ids assigned before the insert.

    (Through SQLAlchemy's multi-row ``INSERT ... RETURNING`` each batch was a new statement text of
    hundreds of parameters that psycopg parsed and PostgreSQL planned afresh: ~1 ms of hub CPU and
    ~0.5 ms of PostgreSQL CPU per ITI-41 submission.)  SQLite: this runs inside the hub's write
    transaction (``BEGIN IMMEDIATE``), so ids after the current largest are free, as SQLite itself
    would pick them; PostgreSQL: ids from the table's sequence.
    """
    sqlite = conn.dialect.name == "sqlite"
    with dbapi.cursor(conn) as cur:
        if sqlite:
            cur.execute("SELECT COALESCE(MAX(id), 0) FROM audit_record")
            first = int(cur.fetchone()[0]) + 1
            ids = list(range(first, first + len(rows)))
        else:
            cur.execute(_PG_NEW_IDS, [len(rows)])
            ids = sorted(int(r[0]) for r in cur.fetchall())
        records = [
            (record_id, *(row[c] for c in _RECORD_COLUMNS[1:]))
            for record_id, row in zip(ids, rows, strict=True)
        ]
        links = [
            (record_id, pid)
            for record_id, message in zip(ids, messages, strict=True)
            for pid in dict.fromkeys(p[:256] for p in message.patient_ids if p)
        ]
        if sqlite:
            cur.executemany(_SQLITE_INSERT_RECORDS, records)
            if links:
                cur.executemany(_SQLITE_INSERT_PATIENTS, links)
            return
        cur.execute(_PG_INSERT_RECORDS, [list(column) for column in zip(*records, strict=True)])
        if links:
            cur.execute(_PG_INSERT_PATIENTS, [list(column) for column in zip(*links, strict=True)])


def record_outcome(
    build: Callable[[Outcome, str | None], AuditMessage],
    target: Connection | Engine,
    exc: BaseException | None = None,
    *,
    partial: bool = False,
    aliases: Iterable[str] = (),
) -> int | None:
    """Build the transaction's message for how it ended (``exc``: None on success) and record it.

    ``build(outcome, description)`` is typically a ``functools.partial`` of a builder of
    :mod:`xds_hub.audit.events`.  On success pass the transaction's connection (the record commits
    with the data); after a failure pass the engine (the transaction was rolled back).  Never raises.
    """
    from xds_hub.audit.events import outcome_of

    outcome, description = outcome_of(exc, partial)
    try:
        message = build(outcome, description)
    except Exception:
        log.exception("audit message could not be built")
        return None
    return record(message, target, aliases=aliases)


# ---------------------------------------------------------------------------------------------
# The sender's queue
# ---------------------------------------------------------------------------------------------


def pending(conn: Connection, limit: int = 100) -> list[tuple[int, int, str]]:
    """The oldest queued records: (id, event time in ns, XML)."""
    rows = conn.execute(
        select(audit_record.c.id, audit_record.c.event_ns, audit_record.c.message)
        .where(audit_record.c.sent_ns.is_(None))
        .order_by(audit_record.c.id)
        .limit(limit)
    )
    return [(int(r.id), int(r.event_ns), str(r.message)) for r in rows]


def mark_sent(conn: Connection, ids: Sequence[int], now_ns: int | None = None) -> None:
    if ids:
        conn.execute(
            update(audit_record)
            .where(audit_record.c.id.in_(list(ids)))
            .values(sent_ns=now_ns or time.time_ns(), attempts=audit_record.c.attempts + 1)
        )


def note_attempt(conn: Connection, ids: Sequence[int]) -> None:
    if ids:
        conn.execute(
            update(audit_record)
            .where(audit_record.c.id.in_(list(ids)))
            .values(attempts=audit_record.c.attempts + 1)
        )


def queue_length(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).where(audit_record.c.sent_ns.is_(None))).scalar_one())


# ---------------------------------------------------------------------------------------------
# `xds-hub audit --patient`
# ---------------------------------------------------------------------------------------------

_OUTCOMES = {o.value: o.name.lower().replace("_", " ") for o in Outcome}
_ACTIONS = {"C": "create", "R": "read", "U": "update", "D": "delete", "E": "execute"}


@dataclass(frozen=True, slots=True)
class Access:
    """One audited event about a patient, as `xds-hub audit` shows it."""

    time: str  # ISO 8601 UTC
    event: str  # "Export", "Query", ...
    transaction: str | None  # "ITI-43"
    transaction_name: str | None
    action: str  # "read", ...
    outcome: str  # "success", "serious failure", ...
    who: str | None  # requestor UserID
    identity: str | None  # its TLS identity (UserName)
    address: str | None
    patient_id: str
    objects: tuple[dict[str, str], ...]
    detail: str | None
    sent: bool

    def as_json(self) -> dict[str, object]:
        return {
            "time": self.time,
            "event": self.event,
            "transaction": self.transaction,
            "transaction_name": self.transaction_name,
            "action": self.action,
            "outcome": self.outcome,
            "who": self.who,
            "identity": self.identity,
            "address": self.address,
            "patient_id": self.patient_id,
            "objects": list(self.objects),
            "detail": self.detail,
            "sent": self.sent,
        }


def _cross_referenced(conn: Connection, patient: str) -> list[str]:
    """``patient`` and the CX of every identifier of its person in the PIX cross-reference
    (merged-away identifiers included: their history is the patient's)."""
    from xds_hub.domain.hl7types import CX, parse_cx
    from xds_hub.errors import ParseError
    from xds_hub.pix.tables import pix_identity

    try:
        cx = parse_cx(patient)
    except ParseError:
        return [patient]
    authority = cx.assigning_authority.universal_id
    if not authority:
        return [patient]
    same = pix_identity.alias("same")
    rows = conn.execute(
        select(same.c.authority, same.c.value)
        .select_from(pix_identity.join(same, same.c.person_id == pix_identity.c.person_id))
        .where(pix_identity.c.authority == authority, pix_identity.c.value == cx.id_number)
    )
    return list(dict.fromkeys([patient, *(CX.of(r.value, r.authority).render() for r in rows)]))


def accesses_for_patient(conn: Connection, patient: str) -> list[Access]:
    """Every audited event about ``patient``, oldest first.

    ``patient`` is a CX (``ID^^^&OID&ISO``, matched exactly, together with every identifier the
    PIX cross-reference links to the same person: a study is audited under the establishment's
    local ID, a document under the affinity-domain ID) or a bare ID (matched under any assigning
    authority).
    """
    where = (
        audit_patient.c.patient_id.in_(_cross_referenced(conn, patient))
        if "^" in patient
        else audit_patient.c.patient_id.like(
            patient.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "^%", escape="\\"
        )
    )
    rows = conn.execute(
        select(audit_record, audit_patient.c.patient_id.label("pid"))
        .join(audit_patient, audit_patient.c.record_id == audit_record.c.id)
        .where(where)
        .order_by(audit_record.c.event_ns, audit_record.c.id)
    )
    out: list[Access] = []
    seen: dict[int, int] = {}  # record id -> index in out: one line per record
    for r in rows:
        if r.id in seen:
            if r.pid == patient:  # a record indexed under several IDs shows the one asked for
                i = seen[r.id]
                out[i] = dataclasses.replace(out[i], patient_id=r.pid)
            continue
        seen[r.id] = len(out)
        when = dt.datetime.fromtimestamp(r.event_ns / 1e9, dt.UTC)
        out.append(
            Access(
                time=when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                event=r.event_name,
                transaction=r.event_type,
                transaction_name=r.event_type_name,
                action=_ACTIONS.get(r.action, r.action),
                outcome=_OUTCOMES.get(r.outcome, str(r.outcome)),
                who=r.requestor,
                identity=r.requestor_name,
                address=r.requestor_address,
                patient_id=r.pid,
                objects=tuple(json.loads(r.objects or "[]")),
                detail=r.outcome_description,
                sent=r.sent_ns is not None,
            )
        )
    return out
