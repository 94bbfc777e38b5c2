"""ITI-8 Patient Identity Feed (ITI TF-2a 3.8): ADT^A01/A04/A05/A08 and A40 in, ACK out.

- A01 (admit), A04 (register), A05 (pre-admit): a patient's identifiers (PID-3) are recorded and
  cross-referenced (:meth:`xds_hub.pix.xref.CrossReference.feed`);
- A08 (update patient information): the same, updating the demographics kept;
- A40 (merge patient - patient identifier list): each MRG-1 identifier is merged into PID-3's
  (:meth:`~xds_hub.pix.xref.CrossReference.merge`); several PID/MRG groups are merged in order.

The ACK is AA once the change is committed; AE with ERR segments for bad content (HL7 error
100 missing segment, 101 missing field, 204 unknown assigning authority or identifier, 205 an
identifier already linked elsewhere), AR for an event this transaction does not carry (201).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from xds_hub.audit.events import Node
from xds_hub.audit.model import Action
from xds_hub.config import PixSettings
from xds_hub.errors import AckCode, Hl7Error, Hl7ErrorCode
from xds_hub.pix import ack
from xds_hub.pix.audit import AuditRow, PixAuditor
from xds_hub.pix.hl7v2 import Segment, V2Message
from xds_hub.pix.model import Demographics, FeedEvent, FeedKind, FeedOutcome, RawId, Where
from xds_hub.pix.xref import CrossReference

#: HL7 v2 "null" (delete the value): such identifiers are ignored.
HL7_NULL = '""'

#: Trigger events of ITI-8 and what they do.
EVENTS: dict[str, FeedKind] = {
    "A01": FeedKind.ADD,
    "A04": FeedKind.ADD,
    "A05": FeedKind.ADD,
    "A08": FeedKind.UPDATE,
    "A40": FeedKind.MERGE,
}

WRITES = True


@dataclass(frozen=True, slots=True)
class FeedRequest:
    events: tuple[FeedEvent, ...]

    @property
    def needs_savepoint(self) -> bool:
        """A merge, or several events, may be refused after a first write (a single add/update is
        refused before any: :meth:`~xds_hub.pix.xref.CrossReference.feed`)."""
        return len(self.events) > 1 or self.events[0].kind is FeedKind.MERGE


#: (component, subcomponent) of CX-1 and CX-4.1/4.2/4.3 (ID number, assigning authority).
CX_PARTS = ((1, 1), (4, 1), (4, 2), (4, 3))


def cx_list(seg: Segment, field: int, segment_no: int = 1) -> list[RawId]:
    """The identifiers of a CX field (PID-3, MRG-1), with their ERR locations."""
    ids: list[RawId] = []
    for rep in range(1, seg.repetitions(field) + 1):
        value, namespace, universal_id, universal_id_type = seg.values(field, rep, CX_PARTS)
        if value == HL7_NULL or not (value or namespace or universal_id or universal_id_type):
            continue
        base = f"{seg.id}^{segment_no}^{field}^{rep}"
        ids.append(
            RawId(
                value=value,
                namespace=namespace,
                universal_id=universal_id,
                universal_id_type=universal_id_type,
                where=Where(id=f"{base}^1", authority=f"{base}^4"),
            )
        )
    return ids


def demographics(pid: Segment) -> Demographics:
    family, given = pid.values(5, 1, ((1, 1), (2, 1)))
    return Demographics(family=family, given=given, birth_date=pid.value(7, 1, 1), sex=pid.value(8))


def _patient_ids(pid: Segment, segment_no: int) -> tuple[RawId, ...]:
    ids = cx_list(pid, 3, segment_no)
    if not ids:
        raise Hl7Error.one(
            Hl7ErrorCode.REQUIRED_FIELD_MISSING,
            "PID-3 (patient identifier list) is empty",
            f"PID^{segment_no}^3",
        )
    return tuple(ids)


def prepare(msg: V2Message) -> FeedRequest:
    """The feed events of an ADT message (Hl7Error for what ITI-8 does not accept)."""
    trigger = msg.trigger_event
    kind = EVENTS.get(trigger)
    if kind is None:
        raise Hl7Error.one(
            Hl7ErrorCode.UNSUPPORTED_EVENT_CODE,
            f"ADT^{trigger} is not a Patient Identity Feed event (A01, A04, A05, A08, A40)",
            "MSH^1^9^1^2",
            ack=AckCode.REJECT,
        )
    source = (msg.msh.value(3), msg.msh.value(4))
    pids = msg.all("PID")
    if not pids:
        raise Hl7Error.one(Hl7ErrorCode.SEGMENT_SEQUENCE_ERROR, "the PID segment is missing", "PID^1")
    if kind is not FeedKind.MERGE:
        pid = pids[0]
        return FeedRequest(
            (FeedEvent(kind, _patient_ids(pid, 1), demographics=demographics(pid), source=source),)
        )
    mrgs = msg.all("MRG")
    if len(mrgs) < len(pids):
        raise Hl7Error.one(
            Hl7ErrorCode.SEGMENT_SEQUENCE_ERROR,
            "A40: each PID segment needs its MRG segment",
            f"MRG^{len(mrgs) + 1}",
        )
    events = []
    for n, (pid, mrg) in enumerate(zip(pids, mrgs, strict=False), start=1):
        prior = cx_list(mrg, 1, n)
        if not prior:
            raise Hl7Error.one(
                Hl7ErrorCode.REQUIRED_FIELD_MISSING,
                "MRG-1 (prior patient identifier list) is empty",
                f"MRG^{n}^1",
            )
        events.append(
            FeedEvent(
                FeedKind.MERGE,
                _patient_ids(pid, n),
                prior_ids=tuple(prior),
                demographics=demographics(pid),
                source=source,
            )
        )
    return FeedRequest(tuple(events))


def execute(conn: Connection, request: FeedRequest, xref: CrossReference) -> list[FeedOutcome]:
    """Apply the events (inside the caller's write transaction)."""
    return [xref.merge(conn, e) if e.kind is FeedKind.MERGE else xref.feed(conn, e) for e in request.events]


def respond(msg: V2Message, pix: PixSettings, result: object) -> str:
    return ack.ack(msg, pix, result if isinstance(result, Hl7Error) else None)


#: EventActionCode of the Patient Record audit message per feed kind (ITI TF-2a 3.8.5.1).
ACTIONS = {FeedKind.ADD: Action.CREATE, FeedKind.UPDATE: Action.UPDATE, FeedKind.MERGE: Action.DELETE}


def cx_text(raw: RawId, source: tuple[str, str], xref: CrossReference) -> str:
    """An identifier as the audit trail keeps it: ``value^^^&OID&ISO`` when its domain is known."""
    try:
        return xref.resolve(raw, source).cx
    except Hl7Error:
        authority = "&".join((raw.namespace, raw.universal_id, raw.universal_id_type)).rstrip("&")
        return f"{raw.value}^^^{authority}" if authority else raw.value


def feed_records(
    request_events: Sequence[FeedEvent] | None, kind: FeedKind | None, result: object, xref: CrossReference
) -> list[tuple[Action, list[str], list[str]]]:
    """The Patient Record audit messages of a feed (ITI-8 / ITI-44) as (action, patient IDs,
    aliases): one per event; a merge's retired identifiers (D) and surviving ones (U) apart; the
    person's affinity-domain ID as an alias.  A feed that could not be read is one record."""
    outcomes = [o for o in result if isinstance(o, FeedOutcome)] if isinstance(result, list) else []
    if not request_events:
        return [(ACTIONS[kind] if kind is not None else Action.CREATE, [], [])]
    records = []
    for n, event in enumerate(request_events):
        affinity = outcomes[n].affinity_id if n < len(outcomes) else None
        aliases = [affinity.cx] if affinity is not None else []
        ids = [cx_text(r, event.source, xref) for r in event.ids]
        if event.kind is FeedKind.MERGE:
            records.append(
                (Action.DELETE, [cx_text(r, event.source, xref) for r in event.prior_ids], aliases)
            )
            records.append((Action.UPDATE, ids, aliases))
        else:
            records.append((ACTIONS[event.kind], ids, aliases))
    return records


def audit(
    msg: V2Message,
    request: object,
    result: object,
    requestor: Node,
    hub: Node,
    auditor: PixAuditor,
    xref: CrossReference,
) -> list[AuditRow]:
    events = request.events if isinstance(request, FeedRequest) else None
    failure = result if isinstance(result, Hl7Error) else None
    return [
        auditor.patient_record("ITI-8", requestor, hub, action, ids, msg.control_id, aliases, failure)
        for action, ids, aliases in feed_records(events, EVENTS.get(msg.trigger_event), result, xref)
    ]
