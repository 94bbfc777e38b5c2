"""ITI-9 PIX Query (ITI TF-2a 3.9): QBP^Q23 in, RSP^K23 out.

QPD-3 names the identifier, QPD-4 (WhatDomainsReturned) optionally the domains wanted.  The
answer (3.9.4.2.2.6) is:

- AA, QAK-2 ``OK`` and one PID whose PID-3 lists the other identifiers of the patient in the
  wanted domains (PID-5 is the empty name ``~^^^^^^S``);
- AA, QAK-2 ``NF`` and no PID when the identifier is known but has no alias in those domains;
- AE, QAK-2 ``AE`` and an ERR per problem: 204 at ``QPD^1^3^1^1`` for an unknown identifier,
  at ``QPD^1^3^1^4`` for an unknown assigning authority, at ``QPD^1^4^n`` for each unknown
  domain of QPD-4; 101 at ``QPD^1^3`` when QPD-3 is empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from xds_hub.audit.events import Node
from xds_hub.config import PixSettings
from xds_hub.errors import AckCode, Hl7Error, Hl7ErrorCode
from xds_hub.pix import ack, hl7v2
from xds_hub.pix.audit import AuditRow, PixAuditor
from xds_hub.pix.hl7v2 import Segment, V2Message
from xds_hub.pix.model import PixAnswer, PixQuery, RawId, Where
from xds_hub.pix.xref import CrossReference

WRITES = False


@dataclass(frozen=True, slots=True)
class QueryRequest:
    query: PixQuery
    source: tuple[str, str]


#: (component, subcomponent) of CX-1 and CX-4.1/4.2/4.3 (ID number, assigning authority).
CX_PARTS = ((1, 1), (4, 1), (4, 2), (4, 3))


def _domains(qpd: Segment) -> tuple[RawId, ...]:
    domains = []
    for rep in range(1, qpd.repetitions(4) + 1):
        ns, uid, kind = qpd.values(4, rep, CX_PARTS[1:])
        if not (ns or uid or kind):
            continue
        where = Where(id=f"QPD^1^4^{rep}", authority=f"QPD^1^4^{rep}")
        domains.append(RawId("", ns, uid, kind, where))
    return tuple(domains)


def prepare(msg: V2Message) -> QueryRequest:
    if msg.trigger_event != "Q23":
        raise Hl7Error.one(
            Hl7ErrorCode.UNSUPPORTED_EVENT_CODE,
            f"QBP^{msg.trigger_event} is not a PIX Query (QBP^Q23)",
            "MSH^1^9^1^2",
            ack=AckCode.REJECT,
        )
    qpd = msg.first("QPD")
    if qpd is None:
        raise Hl7Error.one(Hl7ErrorCode.SEGMENT_SEQUENCE_ERROR, "the QPD segment is missing", "QPD^1")
    value, namespace, universal_id, universal_id_type = qpd.values(3, 1, CX_PARTS)
    if not value and not namespace:
        raise Hl7Error.one(
            Hl7ErrorCode.REQUIRED_FIELD_MISSING, "QPD-3 (the patient identifier) is empty", "QPD^1^3"
        )
    pid = RawId(
        value=value,
        namespace=namespace,
        universal_id=universal_id,
        universal_id_type=universal_id_type,
        where=Where(id="QPD^1^3^1^1", authority="QPD^1^3^1^4"),
    )
    return QueryRequest(PixQuery(pid, _domains(qpd)), (msg.msh.value(3), msg.msh.value(4)))


def execute(conn: Connection, request: QueryRequest, xref: CrossReference) -> PixAnswer:
    return xref.query(conn, request.query, request.source)


def respond(msg: V2Message, pix: PixSettings, result: object) -> str:
    """RSP^K23^RSP_K23: MSH, MSA, [ERR], QAK, QPD (echoed), [PID]."""
    qpd = msg.first("QPD")
    tag = qpd.value(2) if qpd is not None else ""
    segments: list[Any] = [ack.reply_msh(msg, pix, ("RSP", "K23", "RSP_K23"))]
    if isinstance(result, Hl7Error):
        segments += [ack.msa(result.ack, msg, result.problems[0].text), *ack.errors(result)]
        segments.append(hl7v2.segment("QAK", tag, result.ack.value))
    else:
        assert isinstance(result, PixAnswer)
        segments += [ack.msa(AckCode.ACCEPT, msg), hl7v2.segment("QAK", tag, result.status.value)]
    if qpd is not None:
        segments.append(qpd.text)  # echoed as received, not rendered again
    if isinstance(result, PixAnswer) and result.identifiers:
        ids = [hl7v2.cx(i.value, i.authority) for i in result.identifiers]
        segments.append(hl7v2.segment("PID", "", "", ids, "", hl7v2.EMPTY_NAME))
    return hl7v2.render(segments)


def audit(
    msg: V2Message,
    request: object,
    result: object,
    requestor: Node,
    hub: Node,
    auditor: PixAuditor,
    xref: CrossReference,
) -> list[AuditRow]:
    """The Query audit row (ITI TF-2a 3.9.5.1): the QPD segment as the query, the queried and
    returned identifiers as patients."""
    from xds_hub.pix.iti8 import cx_text

    qpd = msg.first("QPD")
    ids = []
    if isinstance(request, QueryRequest):
        ids.append(cx_text(request.query.id, request.source, xref))
    if isinstance(result, PixAnswer):
        ids += [i.cx for i in result.identifiers]
    failure = result if isinstance(result, Hl7Error) else None
    query = qpd.text.encode("utf-8") if qpd is not None else b""
    return [auditor.query("ITI-9", requestor, hub, query, msg.control_id, ids, failure)]
