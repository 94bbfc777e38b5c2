"""ITI-45 PIXV3 Query (ITI TF-2b 3.45) at ``/pix``: PRPA_IN201309UV02 in, PRPA_IN201310UV02 out.

``parameterList/patientIdentifier/value`` names the identifier, ``dataSource/value`` (0..n) the
domains wanted.  The reply (3.45.4.2.3) is:

- AA and queryResponseCode OK, one registrationEvent whose ``patient/id`` are the identifiers
  cross-referenced with the queried one in those domains (the queried one excluded);
- AA and NF, no registrationEvent, when the identifier is known but has no such alias;
- AE and AE with an acknowledgementDetail 204 whose location is the XPath of the
  patientIdentifier value (unknown identifier or assigning authority) or of each unknown
  ``dataSource[n]/value``.

``queryByParameter`` is echoed, and ``queryAck/queryId`` repeats its queryId.  Each query is audited
(ITI TF-2b 3.45.5.1: Query, E, the queryByParameter element as the query, the queried and returned
identifiers as patients) through the process's audit recorder, off the request's path.
"""

from __future__ import annotations

import copy

from lxml import etree

from xds_hub.audit import events as audit_events
from xds_hub.audit.model import AuditMessage, Outcome
from xds_hub.audit.recorder import recorder_for
from xds_hub.config import Settings
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.errors import AckCode, Hl7Error, Hl7ErrorCode
from xds_hub.log import get_logger
from xds_hub.pix import v3
from xds_hub.pix.audit import failure_outcome
from xds_hub.pix.iti8 import cx_text
from xds_hub.pix.iti44 import message_id
from xds_hub.pix.model import PixAnswer, PixQuery, RawId, Where
from xds_hub.pix.store import database_errors
from xds_hub.pix.v3 import V
from xds_hub.pix.xref import CrossReference
from xds_hub.soap.types import SoapRequest, SoapResponse
from xds_hub.storage.db import read_transaction
from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.pix.iti45")

REQUEST = "PRPA_IN201309UV02"
RESPONSE = "PRPA_IN201310UV02"
_PARAMS = "v3:controlActProcess/v3:queryByParameter/v3:parameterList"
_PARAMS_PATH = f"/{REQUEST}/controlActProcess/queryByParameter/parameterList"


def parse_query(body: etree._Element) -> PixQuery:
    values = v3.xpath(body, f"{_PARAMS}/v3:patientIdentifier/v3:value")
    where = f"{_PARAMS_PATH}/patientIdentifier/value"
    pid = v3.raw_id(values[0], where) if values else None
    if pid is None:
        raise Hl7Error.one(
            Hl7ErrorCode.REQUIRED_FIELD_MISSING, "parameterList/patientIdentifier/value is missing", where
        )
    domains = []
    sources = v3.xpath(body, f"{_PARAMS}/v3:dataSource")
    for n, source in enumerate(sources, start=1):
        value = v3.first(source, "v3:value")
        path = f"{_PARAMS_PATH}/dataSource" + (f"[{n}]" if len(sources) > 1 else "") + "/value"
        root = value.get("root", "") if value is not None else ""
        domains.append(
            RawId(
                "",
                universal_id=root,
                universal_id_type="ISO" if root else "",
                where=Where(id=path, authority=path),
            )
        )
    return PixQuery(pid, tuple(domains))


def _registration(answer: PixAnswer, custodian: str) -> etree._Element:
    return V.subject(
        V.registrationEvent(
            V.id(nullFlavor="NA"),
            V.statusCode(code="active"),
            V.subject1(
                V.patient(
                    *[V.id(root=i.authority, extension=i.value) for i in answer.identifiers],
                    V.statusCode(code="active"),
                    V.patientPerson(V.name(nullFlavor="NA"), classCode="PSN", determinerCode="INSTANCE"),
                    classCode="PAT",
                ),
                typeCode="SBJ",
            ),
            V.custodian(V.assignedEntity(V.id(root=custodian), classCode="ASSIGNED"), typeCode="CST"),
            classCode="REG",
            moodCode="EVN",
        ),
        typeCode="SUBJ",
    )


def handle(request: SoapRequest, stores: Stores, settings: Settings) -> SoapResponse:
    """ITI-45: answer a PIXV3 query."""
    wrapper = v3.read_wrapper(request.body, REQUEST)
    failure: Hl7Error | None = None
    answer: PixAnswer | None = None
    query: PixQuery | None = None
    try:
        query = parse_query(request.body)
        with read_transaction(stores.engine) as conn:
            answer = CrossReference(settings.domain).query(conn, query)
    except Hl7Error as exc:
        failure = exc
    except database_errors(stores.engine):
        log.exception("ITI-45 query failed")
        failure = Hl7Error.one(
            Hl7ErrorCode.APPLICATION_INTERNAL_ERROR,
            "the PIX Manager cannot answer now; ask again",
            ack=AckCode.REJECT,
        )
    query_by_parameter = v3.first(request.body, "v3:controlActProcess/v3:queryByParameter")
    query_id = v3.first(request.body, "v3:controlActProcess/v3:queryByParameter/v3:queryId")
    custodian = next((r.root for r in wrapper.receiver if r.root), settings.domain.assigning_authority)
    # QueryResponse (HL7 v3): OK, NF, AE, QE; a rejected query is an application error too.
    response_code = answer.status.value if answer is not None else "AE"
    control_act = V.controlActProcess(
        V.code(code="PRPA_TE201310UV02", codeSystem=v3.INTERACTION_ROOT),
        *([_registration(answer, custodian)] if answer is not None and answer.identifiers else []),
        V.queryAck(
            *([copy.deepcopy(query_id)] if query_id is not None else []),
            V.statusCode(code="deliveredResponse"),
            V.queryResponseCode(code=response_code),
        ),
        *([copy.deepcopy(query_by_parameter)] if query_by_parameter is not None else []),
        classCode="CACT",
        moodCode="EVN",
    )
    _audit(request, settings, stores, message_id(wrapper), query_by_parameter, query, answer, failure)
    return SoapResponse(SoapAction.ITI45_RESPONSE, v3.reply(RESPONSE, wrapper, failure, control_act))


def _audit(
    request: SoapRequest,
    settings: Settings,
    stores: Stores,
    mid: str,
    query_by_parameter: etree._Element | None,
    query: PixQuery | None,
    answer: PixAnswer | None,
    failure: Hl7Error | None,
) -> None:
    """Queue the query's audit message (never raises)."""
    try:
        xref = CrossReference(settings.domain)
        ids = [cx_text(query.id, ("", ""), xref)] if query is not None else []
        ids += [i.cx for i in answer.identifiers] if answer is not None else []
        text = etree.tostring(query_by_parameter) if query_by_parameter is not None else b""
        requestor = audit_events.soap_peer(request, request.identity)
        outcome, description = failure_outcome(failure) if failure is not None else (Outcome.SUCCESS, None)

        def build() -> list[AuditMessage]:
            source = audit_events.audit_source(settings)
            hub = audit_events.hub_http(settings, request.path)
            return [
                audit_events.pix_query(source, "ITI-45", requestor, hub, text, mid, ids, outcome, description)
            ]

        recorder_for(stores.engine).submit(build)
    except Exception:
        log.exception("ITI-45 audit could not be queued")
