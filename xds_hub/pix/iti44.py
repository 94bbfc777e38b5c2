"""ITI-44 Patient Identity Feed HL7 V3 (ITI TF-2b 3.44) at ``/pix``.

- PRPA_IN201301UV02 (Patient Registry Record Added) and PRPA_IN201302UV02 (Record Revised):
  ``patient/id`` are the patient's identifiers, ``patientPerson/asOtherIDs/id`` further ones
  (used for linking when their domain is served, e.g. a national ID; ignored otherwise);
- PRPA_IN201304UV02 (Duplicates Resolved): ``priorRegisteredRole/id`` is merged into
  ``patient/id``.

Each is answered with MCCI_IN000002UV01: AA once committed; AE with an acknowledgementDetail
(HL7 Table 0357 code, text, XPath location) for content the PIX Manager refuses, exactly as the
v2 feed would (:mod:`xds_hub.pix.iti8`); AR with 207 when the database is unavailable.

Under mutual TLS an establishment feeds only its own assigning authority: identifiers of another
establishment's are refused with AR and an acknowledgementDetail 204 at their XPath
(:mod:`xds_hub.pix.guard`), with a Security Alert.  Each feed is audited (ITI TF-2b 3.44.5.1:
Patient Record, C / U, or D + U for a merge; the message id as an II detail) through the process's
audit recorder, off the request's path.
"""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from xds_hub.audit import events as audit_events
from xds_hub.audit.model import AuditMessage, Outcome
from xds_hub.audit.recorder import recorder_for
from xds_hub.audit.soap import record_refusal
from xds_hub.config import Settings
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.errors import AckCode, Hl7Error, Hl7ErrorCode
from xds_hub.log import get_logger
from xds_hub.pix import v3
from xds_hub.pix.audit import failure_outcome
from xds_hub.pix.guard import feed_refusal
from xds_hub.pix.iti8 import feed_records
from xds_hub.pix.model import Demographics, FeedEvent, FeedKind, RawId
from xds_hub.pix.store import database_errors
from xds_hub.pix.xref import CrossReference
from xds_hub.soap.types import SoapRequest, SoapResponse
from xds_hub.storage.db import write_transaction
from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.pix.iti44")

#: wsa:Action -> (interaction, what it does).
INTERACTIONS: dict[str, tuple[str, FeedKind]] = {
    SoapAction.ITI44_ADD: ("PRPA_IN201301UV02", FeedKind.ADD),
    SoapAction.ITI44_REVISE: ("PRPA_IN201302UV02", FeedKind.UPDATE),
    SoapAction.ITI44_MERGE: ("PRPA_IN201304UV02", FeedKind.MERGE),
}

_PATIENT = "v3:controlActProcess/v3:subject/v3:registrationEvent/v3:subject1/v3:patient"
_PRIOR = (
    "v3:controlActProcess/v3:subject/v3:registrationEvent/v3:replacementOf/v3:priorRegistration"
    "/v3:subject1/v3:priorRegisteredRole/v3:id"
)


def _ids(elements: list[etree._Element], root: etree._Element) -> tuple[RawId, ...]:
    found = (v3.raw_id(e, v3.element_path(e, root)) for e in elements)
    return tuple(r for r in found if r is not None)


def _demographics(person: etree._Element | None) -> Demographics:
    if person is None:
        return Demographics()
    name = v3.first(person, "v3:name")
    family = v3.first(name, "v3:family") if name is not None else None
    given = v3.first(name, "v3:given") if name is not None else None
    gender = v3.first(person, "v3:administrativeGenderCode")
    birth = v3.first(person, "v3:birthTime")
    return Demographics(
        family=(family.text or "").strip() if family is not None else "",
        given=(given.text or "").strip() if given is not None else "",
        birth_date=birth.get("value", "") if birth is not None else "",
        sex=gender.get("code", "") if gender is not None else "",
    )


def parse_feed(body: etree._Element, interaction: str, kind: FeedKind) -> FeedEvent:
    """The feed event of an ITI-44 message (Hl7Error 101/100 when the patient is missing)."""
    root = f"/{interaction}/controlActProcess/subject/registrationEvent/subject1/patient"
    patient = v3.first(body, _PATIENT)
    if patient is None:
        raise Hl7Error.one(
            Hl7ErrorCode.SEGMENT_SEQUENCE_ERROR,
            "controlActProcess/subject/registrationEvent/subject1/patient is missing",
            root,
        )
    ids = _ids(v3.xpath(patient, "v3:id"), body)
    if not ids:
        raise Hl7Error.one(Hl7ErrorCode.REQUIRED_FIELD_MISSING, "patient/id is missing", f"{root}/id")
    person = v3.first(patient, "v3:patientPerson")
    others = _ids(v3.xpath(patient, "v3:patientPerson/v3:asOtherIDs/v3:id"), body)
    prior: tuple[RawId, ...] = ()
    if kind is FeedKind.MERGE:
        prior = _ids(v3.xpath(body, _PRIOR), body)
        if not prior:
            raise Hl7Error.one(
                Hl7ErrorCode.REQUIRED_FIELD_MISSING,
                "replacementOf/priorRegistration/subject1/priorRegisteredRole/id is missing",
                f"/{interaction}/controlActProcess/subject/registrationEvent/replacementOf",
            )
    return FeedEvent(
        kind,
        ids,
        other_ids=() if kind is FeedKind.MERGE else others,
        prior_ids=prior,
        demographics=_demographics(person),
    )


def message_id(wrapper: v3.Wrapper) -> str:
    """The request's message id as the audit trail's II detail: ``root^extension``."""
    return f"{wrapper.id.root}^{wrapper.id.extension}" if wrapper.id.extension else wrapper.id.root


def handle(request: SoapRequest, stores: Stores, settings: Settings) -> SoapResponse:
    """ITI-44: record the feed, answer MCCI_IN000002UV01."""
    interaction, kind = INTERACTIONS[request.action]
    wrapper = v3.read_wrapper(request.body, interaction)
    xref = CrossReference(settings.domain)
    failure: Hl7Error | None = None
    event: FeedEvent | None = None
    result: object = None
    try:
        event = parse_feed(request.body, interaction, kind)
        refusal = feed_refusal(request.identity, [event], xref)
        if refusal is not None:
            reason = "; ".join(p.text for p in refusal.problems)
            record_refusal(request, settings, stores, "ITI-44 Patient Identity Feed", reason)
            raise refusal
        apply: Callable[..., object] = xref.merge if kind is FeedKind.MERGE else xref.feed
        with write_transaction(stores.engine) as conn:
            result = [apply(conn, event)]
    except Hl7Error as exc:
        failure = exc
    except database_errors(stores.engine):
        log.exception("ITI-44 feed could not be stored")
        failure = Hl7Error.one(
            Hl7ErrorCode.APPLICATION_INTERNAL_ERROR,
            "the PIX Manager could not store the feed; send it again",
            ack=AckCode.REJECT,
        )
    _audit(request, settings, stores, wrapper, event, kind, failure or result, xref)
    return SoapResponse(SoapAction.ITI44_RESPONSE, v3.reply("MCCI_IN000002UV01", wrapper, failure))


def _audit(
    request: SoapRequest,
    settings: Settings,
    stores: Stores,
    wrapper: v3.Wrapper,
    event: FeedEvent | None,
    kind: FeedKind,
    result: object,
    xref: CrossReference,
) -> None:
    """Queue the feed's Patient Record messages (never raises)."""
    try:
        records = feed_records([event] if event is not None else None, kind, result, xref)
        requestor = audit_events.soap_peer(request, request.identity)
        failure = result if isinstance(result, Hl7Error) else None
        outcome, description = failure_outcome(failure) if failure is not None else (Outcome.SUCCESS, None)
        mid = message_id(wrapper)

        def build() -> list[AuditMessage]:
            source = audit_events.audit_source(settings)
            hub = audit_events.hub_http(settings, request.path)
            return [
                audit_events.patient_record(
                    source, "ITI-44", requestor, hub, action, ids, mid, outcome, description
                )
                for action, ids, _aliases in records
            ]

        recorder_for(stores.engine).submit(build)
    except Exception:
        log.exception("ITI-44 audit could not be queued")
