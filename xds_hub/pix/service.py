"""The HL7 v2 side of the PIX Manager, without sockets: frames in, replies out (ITI TF-2x C.2).

:func:`prepare` parses the MLLP payloads read from one connection (several when the sender
pipelines) with python-hl7 and dispatches each on MSH-9 (:data:`TRANSACTIONS`); :func:`run` runs
all of them in one database transaction (add/update feeds together in a
:class:`~xds_hub.pix.unit.FeedUnit`, a savepoint for a merge, so one refused message never undoes
another) and builds the replies only after the commit: every AA is durable.
:func:`handle_frames` does both.

Messages that cannot be read get an ACK with AR and an ERR (100 when there is no MSH, 102 when
MSH is unreadable); MSH problems get AR with 101 (MSH-9/10/11/12 missing), 200 (message type),
201 (event), 202 (processing ID) or 203 (version).  A database failure answers AR with 207, so
the sender retries.

Under mutual TLS the MLLP listener passes the peer's identity (:class:`Peer`): a feed asserting
identifiers of a domain its establishment may not feed is refused with AR and ERR 204 before it
runs (:func:`xds_hub.pix.guard.feed_refusal`).  With a :class:`~xds_hub.pix.audit.PixAuditor`, every
message that could be read gets its audit record (ITI-20; each transaction's ``audit``): inserted
with the batch's write transaction (committed with the feeds it describes), or queued to the
:class:`~xds_hub.pix.audit.AuditQueue` for reads and for what failed outside a transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from xds_hub.audit.events import Node
from xds_hub.audit.events import peer as peer_node
from xds_hub.config import PixSettings, Settings
from xds_hub.errors import AckCode, Hl7Error, Hl7ErrorCode, ParseError
from xds_hub.log import get_logger
from xds_hub.pix import ack, audit, iti8, iti9
from xds_hub.pix.audit import AuditQueue, AuditRow, PixAuditor
from xds_hub.pix.guard import feed_refusal
from xds_hub.pix.hl7v2 import V2Message, parse
from xds_hub.pix.model import FeedOutcome
from xds_hub.pix.session import DbSession
from xds_hub.pix.store import PixSql
from xds_hub.pix.xref import CrossReference
from xds_hub.security.access import NodeIdentity

log = get_logger("xds_hub.pix.service")

E = Hl7ErrorCode


@dataclass(frozen=True, slots=True)
class Transaction:
    """An HL7 v2 transaction the MLLP listener serves: parse, run, answer."""

    name: str
    writes: bool
    prepare: Callable[[V2Message], Any]
    execute: Callable[[Connection, Any, CrossReference], Any]
    respond: Callable[[V2Message, PixSettings, object], str]
    #: (message, request or None, result, requestor, hub, auditor, xref) -> its audit rows.
    audit: Callable[[V2Message, Any, object, Node, Node, PixAuditor, CrossReference], list[AuditRow]]


#: MSH-9.1 -> transaction.
TRANSACTIONS: dict[str, Transaction] = {
    "ADT": Transaction("ITI-8", iti8.WRITES, iti8.prepare, iti8.execute, iti8.respond, iti8.audit),
    "QBP": Transaction("ITI-9", iti9.WRITES, iti9.prepare, iti9.execute, iti9.respond, iti9.audit),
}


@dataclass(frozen=True, slots=True)
class Peer:
    """The other end of an MLLP connection: its address and, under mutual TLS, its identity."""

    address: str | None = None
    identity: NodeIdentity | None = None


@dataclass(frozen=True, slots=True)
class Auditing:
    """Where a connection's audit rows go (None: not audited, e.g. in-process tests)."""

    auditor: PixAuditor
    queue: AuditQueue


NOBODY = Peer()

PROCESSING_IDS = frozenset({"P", "T", "D"})

#: The segments the transactions read (others, PV1, NK1, OBX ..., are not parsed).
READ_SEGMENTS = frozenset({"MSH", "PID", "MRG", "QPD", "RCP"})

#: MSH-18 values (HL7 Table 0211) -> Python codecs; anything else is read as UTF-8 (or Latin-1).
CHARSETS = {
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
}


def decode(frame: bytes) -> tuple[str, str]:
    """The text of a frame and the codec to answer in (MSH-18, else UTF-8, else Latin-1)."""
    head = frame[:1024].split(b"\r", 1)[0]
    fields = head.split(b"|")
    if len(fields) > 17:
        codec = CHARSETS.get(fields[17].split(b"^")[0].decode("ascii", "replace").strip())
        if codec:
            try:
                return frame.decode(codec), codec
            except UnicodeDecodeError:
                pass
    try:
        return frame.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return frame.decode("latin-1"), "latin-1"


def check_msh(msg: V2Message) -> Transaction:
    """The transaction of ``msg``, or Hl7Error AR for a message header the hub cannot serve."""
    for number, value in (
        (9, msg.message_type),
        (10, msg.control_id),
        (11, msg.processing_id),
        (12, msg.version),
    ):
        if not value:
            raise Hl7Error.one(
                E.REQUIRED_FIELD_MISSING, f"MSH-{number} is empty", f"MSH^1^{number}", ack=AckCode.REJECT
            )
    if msg.processing_id not in PROCESSING_IDS:
        raise Hl7Error.one(
            E.UNSUPPORTED_PROCESSING_ID,
            f"processing ID {msg.processing_id!r} is not P, T or D",
            "MSH^1^11",
            ack=AckCode.REJECT,
        )
    if not msg.version.startswith("2."):
        raise Hl7Error.one(
            E.UNSUPPORTED_VERSION_ID,
            f"HL7 version {msg.version!r} is not 2.x",
            "MSH^1^12",
            ack=AckCode.REJECT,
        )
    tx = TRANSACTIONS.get(msg.message_type)
    if tx is None:
        raise Hl7Error.one(
            E.UNSUPPORTED_MESSAGE_TYPE,
            f"message type {msg.message_type} is not served (ADT for ITI-8, QBP for ITI-9)",
            "MSH^1^9",
            ack=AckCode.REJECT,
        )
    return tx


@dataclass
class Item:
    """One frame on its way: parsed, prepared, run, answered."""

    codec: str
    msg: V2Message | None = None
    tx: Transaction | None = None
    request: Any = None
    result: object = None
    reply: str | None = None
    #: Refused by the access rules (a Security Alert goes with its audit record).
    denied: bool = False
    #: Its audit record went with its transaction.
    audited: bool = False


def _garbage_reply(text: str, exc: ParseError, pix: PixSettings) -> str:
    code = E.SEGMENT_SEQUENCE_ERROR if not text.lstrip("\r\n\t ").startswith("MSH") else E.DATA_TYPE_ERROR
    failure = Hl7Error.one(
        code,
        f"not an HL7 v2 message: {exc}",
        "MSH^1" if code is E.DATA_TYPE_ERROR else "",
        ack=AckCode.REJECT,
    )
    return ack.ack(None, pix, failure)


@dataclass
class Batch:
    """What a batch of frames produced: the encoded replies, and whether ITI-10 has work."""

    replies: list[bytes]
    notifications: int


def prepare(frames: list[bytes], settings: Settings) -> list[Item]:
    """Parse, check and prepare each frame (no database): the part of the work that the MLLP
    reader does while the committer waits on the previous batch's commit."""
    pix = settings.domain.pix
    items: list[Item] = []
    for frame in frames:
        text, codec = decode(frame)
        item = Item(codec)
        items.append(item)
        try:
            item.msg = parse(text, READ_SEGMENTS)
        except ParseError as exc:
            item.reply = _garbage_reply(text, exc, pix)
            continue
        try:
            item.tx = check_msh(item.msg)
        except Hl7Error as exc:
            item.reply = ack.ack(item.msg, pix, exc)
            continue
        try:
            item.request = item.tx.prepare(item.msg)
        except Hl7Error as exc:
            item.result = exc
    return items


def _deferrable(item: Item) -> bool:
    """An add/update feed, refused (if at all) before its first write: it runs in the batch's
    :class:`~xds_hub.pix.unit.FeedUnit`."""
    return item.tx is not None and item.tx.writes and not getattr(item.request, "needs_savepoint", True)


def _execute(item: Item, conn: Connection, xref: CrossReference) -> None:
    assert item.tx is not None
    try:
        item.result = item.tx.execute(conn, item.request, xref)
    except Hl7Error as exc:
        item.result = exc


def _run(
    db: DbSession,
    items: list[Item],
    xref: CrossReference,
    peer: Peer = NOBODY,
    auditing: Auditing | None = None,
) -> None:
    writes = any(i.tx is not None and i.tx.writes for i in items)
    feeds = [i.request.events[0] for i in items if _deferrable(i)]
    # A unit saves round trips from two feeds on; on PostgreSQL from one (its reads and writes go
    # in fewer, larger statements, the transaction's BEGIN with its first query and the COMMIT
    # with its writes).  SQLite's statements cost no round trip.
    unit = len(feeds) >= (2 if db.sqlite else 1)
    with db.write(begin=not unit) if writes else db.read() as conn:
        if not unit:
            _run_each(conn, items, xref)
            if writes:
                _audit_within(conn, items, peer, auditing, xref, [], commit=not db.sqlite)
        else:
            with xref.batch(conn, feeds, "" if db.sqlite else db.BEGIN_WRITE) as batch:
                for item in items:
                    if _deferrable(item):
                        _execute(item, conn, xref)
                        continue
                    with xref.outside_batch(conn):
                        _run_each(conn, [item], xref)
                # The unit's writes, the audit rows and the commit go together (one round trip on
                # PostgreSQL).
                _audit_within(conn, items, peer, auditing, xref, batch.take(), commit=not db.sqlite)


def _audit_within(
    conn: Connection,
    items: list[Item],
    peer: Peer,
    auditing: Auditing | None,
    xref: CrossReference,
    before: list[tuple[str, Any]],
    commit: bool = False,
) -> None:
    """Send ``before`` and the audit rows of ``items`` in their write transaction (the records
    commit with the feeds they describe); rows that cannot be stored go to the queue.
    ``commit``: PostgreSQL, end the transaction in the same round trip (:func:`audit.insert`)."""
    if auditing is None:
        audit.insert(conn, [], before, commit)
        return
    rows = audit_rows(items, peer, auditing.auditor, xref)
    if not audit.insert(conn, rows, before, commit):
        auditing.queue.put(rows)
    for item in items:
        item.audited = True


def _run_each(conn: Connection, items: list[Item], xref: CrossReference) -> None:
    """Run ``items`` on ``conn``; a feed that may be refused half-way gets a savepoint."""
    cursor = None
    for item in items:
        assert item.tx is not None
        if not item.tx.writes or _deferrable(item):
            _execute(item, conn, xref)
            continue
        # A savepoint for a feed that may be refused half-way (plain SQL: cheaper than
        # SQLAlchemy's begin_nested, and the feed's statements run on the driver anyway).
        cursor = cursor or PixSql.cursor(conn)
        cursor.execute("SAVEPOINT pix_message")
        _execute(item, conn, xref)
        if isinstance(item.result, Hl7Error):
            cursor.execute("ROLLBACK TO SAVEPOINT pix_message")
        cursor.execute("RELEASE SAVEPOINT pix_message")


def run(
    items: list[Item],
    db: DbSession,
    settings: Settings,
    xref: CrossReference,
    peer: Peer = NOBODY,
    auditing: Auditing | None = None,
) -> Batch:
    """Run the prepared ``items`` in one transaction and build their replies (in order) after the
    commit: every AA is durable.  A batch that fails is run again one message at a time, so that
    one bad message does not fail the others.  Feeds the peer may not send are refused first."""
    pix = settings.domain.pix
    if peer.identity is not None:
        for item in items:
            if item.tx is not None and item.tx.writes and isinstance(item.request, iti8.FeedRequest):
                refusal = feed_refusal(peer.identity, item.request.events, xref)
                if refusal is not None:
                    item.result, item.denied = refusal, True
    pending = [
        i for i in items if i.reply is None and i.tx is not None and not isinstance(i.result, Hl7Error)
    ]
    if pending:
        try:
            _run(db, pending, xref, peer, auditing)
        except Exception:
            for item in pending:
                item.audited = False
            if len(pending) > 1:
                for item in pending:
                    item.result = None
                    try:
                        _run(db, [item], xref, peer, auditing)
                    except Exception:
                        log.exception(
                            "HL7 v2 message failed", extra={"control_id": item.msg and item.msg.control_id}
                        )
                        item.result = _internal_error()
                        item.audited = False
            else:
                log.exception("HL7 v2 message failed")
                pending[0].result = _internal_error()
    if auditing is not None:
        # Reads, refusals and failures: written by the queue, off the reply path.
        auditing.queue.put(audit_rows([i for i in items if not i.audited], peer, auditing.auditor, xref))
    notifications = 0
    replies = []
    for item in items:
        if item.reply is None:
            assert item.tx is not None and item.msg is not None
            item.reply = item.tx.respond(item.msg, pix, item.result)
            if isinstance(item.result, list):
                notifications += sum(o.notifications for o in item.result if isinstance(o, FeedOutcome))
        replies.append(item.reply.encode(item.codec, errors="replace"))
    return Batch(replies, notifications)


def audit_rows(items: list[Item], peer: Peer, auditor: PixAuditor, xref: CrossReference) -> list[AuditRow]:
    """The audit rows of ``items`` (messages that could not be read as HL7 have none); never raises."""
    rows: list[AuditRow] = []
    for item in items:
        msg, tx = item.msg, item.tx
        if msg is None or tx is None:
            continue
        try:
            field = msg.msh.value
            requestor = peer_node(f"{field(3)}|{field(4)}", peer.address, peer.identity)
            hub = auditor.hub_mllp(f"{field(5)}|{field(6)}")
            rows += tx.audit(msg, item.request, item.result, requestor, hub, auditor, xref)
            if item.denied and isinstance(item.result, Hl7Error):
                reason = "; ".join(p.text for p in item.result.problems)
                rows.append(
                    auditor.access_denied(requestor, hub, f"{tx.name} from {field(3)}|{field(4)}", reason)
                )
        except Exception:
            log.exception("audit record could not be built", extra={"control_id": msg.control_id})
    return rows


def _internal_error() -> Hl7Error:
    return Hl7Error.one(
        E.APPLICATION_INTERNAL_ERROR,
        "the PIX Manager could not store the message; send it again",
        ack=AckCode.REJECT,
    )


def handle_frames(frames: list[bytes], engine: Engine, settings: Settings, xref: CrossReference) -> Batch:
    """Replies (in order) to the MLLP payloads ``frames``; acknowledges only committed work."""
    db = DbSession(engine)
    try:
        return run(prepare(frames, settings), db, settings, xref)
    finally:
        db.release()
