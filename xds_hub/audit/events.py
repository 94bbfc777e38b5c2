"""The audit message of each transaction the hub serves, as its IHE "Security Considerations" specify.

One builder per kind of event; the transaction code picks the EventTypeCode.  The hub's side is a
:class:`Node` from :func:`hub_http` / :func:`hub_dicom` / :func:`hub_mllp`; the other side is a
:class:`Node` from :func:`peer`.  Sections (ITI TF-2 / RAD TF-3, "Security Considerations" /
"Audit Record Considerations") and the message each builder makes:

==========================  ==========================================================================
builder                     transactions (hub side) -> EventID / action / EventTypeCode
==========================  ==========================================================================
:func:`submission_import`   ITI-41 (3.41.5.1.2, repository), ITI-42 (3.42.5.1.2, registry), RAD-68
                            -> 110107 Import / C; Source = the submitter (requestor), Destination =
                            the hub; Patient; SubmissionSet (2/20)
:func:`metadata_update`     ITI-57 (XDS Metadata Update 3.57.4.1.4.1.2) -> 110107 Import / U
:func:`stored_query`        ITI-18 (3.18.5.1.2) -> 110112 Query / E; Query (2/24, ITI-18, the
                            AdhocQueryRequest base64, QueryEncoding); Patient 0..1
:func:`document_export`     ITI-43 (3.43.5.1.2) -> 110106 Export / R; Source = the hub, Destination =
                            the consumer (requestor); Document 1..n (2/3, id type 9, Repository
                            Unique Id and ihe:homeCommunityID details); Patient 0..1
:func:`metadata_delete`     ITI-62 (RMD 3.62.5) -> 110110 Patient Record / D; registry objects (2/3,
                            urn:ihe:iti:2017:ObjectRef, logical deletion)
:func:`documents_remove`    ITI-86 (RMD 3.86.5) -> 110110 Patient Record / D; Documents (2/3, id 9,
                            permanent erasure)
:func:`imaging_export`      RAD-69 (RAD TF-3 4.69.4.1.4) -> 110104 DICOM Instances Transferred / R
                            with EventTypeCode RAD-69; Study 1..n (2/3, 110180) with SOP classes
:func:`instances_transferred`  C-STORE received (C), C-MOVE / C-GET / WADO sent (R): PS3.15 A.5.3.4
:func:`begin_transferring`  C-MOVE / C-GET start: PS3.15 A.5.3.2 (110102 / E)
:func:`dicom_query`         C-FIND, QIDO-RS: PS3.15 A.5.3.12 (110112 / E; SOP Class UID query object)
:func:`patient_record`      ITI-8 (3.8.5.1.2, detail MSH-10), ITI-44 (3.44.5.1.2, detail II) ->
                            110110 / C (create), U (update), D (merged-away record)
:func:`pix_query`           ITI-9 (3.9.5.1.2, detail MSH-10), ITI-45 (3.45.5.1.2) -> 110112 / E
:func:`node_authentication_failure`  ITI-19 refused TLS peer -> 110113 Security Alert / 110126
:func:`access_denied`       a refused request (access rules) -> 110113 Security Alert / 110132
:func:`application_activity`  hub start / stop (ITI-20 "Actor-start-stop") -> 110100 / 110120, 110121
==========================  ==========================================================================
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from xds_hub.audit import codes
from xds_hub.audit.codes import EventId, EventType, IdType, Role
from xds_hub.audit.model import (
    Action,
    ActiveParticipant,
    AuditMessage,
    AuditSource,
    Coded,
    DicomDescription,
    EventIdentification,
    LifeCycle,
    NapType,
    ObjectRole,
    ObjectType,
    Outcome,
    ParticipantObject,
    SopClass,
)
from xds_hub.config import Settings
from xds_hub.errors import SoapFault, XdsError
from xds_hub.security.access import AccessDenied, NodeIdentity
from xds_hub.soap.types import SoapRequest

# ---------------------------------------------------------------------------------------------
# Who takes part
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    """One end of an exchange: the UserID the IHE section asks for and where it is on the network."""

    user_id: str
    address: str | None = None
    alternative_user_id: str | None = None
    user_name: str | None = None

    def participant(self, role: Coded | None, requestor: bool) -> ActiveParticipant:
        return ActiveParticipant(
            user_id=self.user_id or "unknown",
            requestor=requestor,
            roles=(role,) if role is not None else (),
            alternative_user_id=self.alternative_user_id,
            user_name=self.user_name,
            network_access_point=self.address or None,
            network_access_point_type=_nap_type(self.address) if self.address else None,
        )


@lru_cache(maxsize=1024)
def _nap_type(address: str) -> NapType:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return NapType.MACHINE_NAME
    return NapType.IP_ADDRESS


def peer(
    user_id: str | None,
    address: str | None,
    identity: NodeIdentity | None = None,
    alternative_user_id: str | None = None,
) -> Node:
    """The other side: ``user_id`` as the section says (wsa:ReplyTo, calling AE title, MSH-3|MSH-4)
    or, when absent, its address; the TLS identity, if any, becomes the UserName."""
    name = None
    if identity is not None:
        name = (
            identity.label if identity.label == identity.subject else f"{identity.label} <{identity.subject}>"
        )
    return Node(user_id or address or "unknown", address, alternative_user_id, name)


#: wsa:ReplyTo when the request names none (WS-Addressing 1.0 Core 3.2: the anonymous address).
ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"


def soap_peer(request: SoapRequest, identity: NodeIdentity | None = None) -> Node:
    """The requester of a SOAP transaction: UserID its wsa:ReplyTo (ITI TF-2 3.18.5, 3.41.5, 3.43.5),
    network address the HTTP client's, UserName its TLS identity."""
    return peer(request.reply_to or ANONYMOUS, request.remote_addr, identity)


def _hub_address(settings: Settings) -> str:
    return socket.gethostname() if settings.host in ("", "0.0.0.0", "::") else settings.host


def hub_http(settings: Settings, path: str) -> Node:
    """The hub as a SOAP / HTTP endpoint: UserID the endpoint URI, AlternativeUserID the process id."""
    scheme = "https" if settings.tls_cert else "http"
    host = _hub_address(settings)
    shown = f"[{host}]" if ":" in host else host
    return Node(f"{scheme}://{shown}:{settings.http_port}{path}", host, str(os.getpid()))


def hub_dicom(settings: Settings) -> Node:
    """The hub as a DICOM node: UserID its AE title."""
    return Node(settings.ae_title, _hub_address(settings), str(os.getpid()))


def hub_mllp(settings: Settings, application_facility: str) -> Node:
    """The hub as an HL7 v2 receiver: UserID its MSH-5|MSH-6 (receiving application|facility)."""
    return Node(application_facility, _hub_address(settings), str(os.getpid()))


def audit_source(settings: Settings) -> AuditSource:
    """AuditSourceIdentification of the hub (``[audit] source_id`` / ``enterprise_site_id``)."""
    return AuditSource(
        source_id=settings.audit_source_id or f"xds-hub@{socket.gethostname()}",
        enterprise_site_id=settings.audit_enterprise_site_id or settings.domain.home_community_id,
        type_codes=(codes.SOURCE_TYPE_APPLICATION_SERVER,),
    )


def outcome_of(exc: BaseException | None, partial: bool = False) -> tuple[Outcome, str | None]:
    """EventOutcomeIndicator and description of a transaction that ended with ``exc`` (None: success).

    PartialSuccess -> 4; an IHE failure (XdsError, SOAP fault, access refused) -> 8; anything
    else (an internal error) -> 12.
    """
    if exc is None:
        return (Outcome.MINOR_FAILURE, "PartialSuccess") if partial else (Outcome.SUCCESS, None)
    if isinstance(exc, XdsError | SoapFault | AccessDenied):
        return Outcome.SERIOUS_FAILURE, str(exc)[:1000]
    return Outcome.MAJOR_FAILURE, f"{type(exc).__name__}: {exc}"[:1000]


# ---------------------------------------------------------------------------------------------
# What it is about
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DocumentRef:
    """A document of an ITI-43 / ITI-86 request."""

    unique_id: str
    repository_unique_id: str
    home_community_id: str | None = None


@dataclass(frozen=True, slots=True)
class StudyRef:
    """A study whose instances were transferred: SOP class UID -> its SOP instance UIDs."""

    study_uid: str
    sop_classes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    accessions: tuple[str, ...] = ()


def patient_object(patient_id: str, details: tuple[tuple[str, bytes], ...] = ()) -> ParticipantObject:
    return ParticipantObject(
        object_id=patient_id,
        id_type=IdType.PATIENT,
        object_type=ObjectType.PERSON,
        role=ObjectRole.PATIENT,
        details=details,
    )


def _patients(
    patient_ids: Sequence[str | None], details: tuple[tuple[str, bytes], ...] = ()
) -> list[ParticipantObject]:
    return [patient_object(p, details) for p in dict.fromkeys(p for p in patient_ids if p)]


def _document(doc: DocumentRef, home: str, life_cycle: LifeCycle | None = None) -> ParticipantObject:
    return ParticipantObject(
        object_id=doc.unique_id,
        id_type=IdType.REPORT,
        object_type=ObjectType.SYSTEM_OBJECT,
        role=ObjectRole.REPORT,
        life_cycle=life_cycle,
        details=(
            (codes.REPOSITORY_UNIQUE_ID, doc.repository_unique_id.encode()),
            (codes.HOME_COMMUNITY_ID, (doc.home_community_id or home).encode()),
        ),
    )


def _study(study: StudyRef) -> ParticipantObject:
    description = DicomDescription(
        accessions=study.accessions,
        sop_classes=tuple(SopClass(uid, tuple(instances)) for uid, instances in study.sop_classes.items()),
    )
    return ParticipantObject(
        object_id=study.study_uid,
        id_type=IdType.STUDY,
        object_type=ObjectType.SYSTEM_OBJECT,
        role=ObjectRole.REPORT,
        descriptions=(description,),
    )


def _message(
    source: AuditSource,
    event_id: Coded,
    action: Action,
    outcome: Outcome,
    description: str | None,
    type_codes: Sequence[Coded],
    participants: Sequence[ActiveParticipant],
    objects: Sequence[ParticipantObject],
    when: dt.datetime | None,
) -> AuditMessage:
    return AuditMessage(
        event=EventIdentification(
            event_id=event_id,
            action=action,
            outcome=outcome,
            time=when or dt.datetime.now(dt.UTC),
            type_codes=tuple(type_codes),
            outcome_description=description if outcome is not Outcome.SUCCESS else None,
        ),
        participants=tuple(participants),
        source=source,
        objects=tuple(objects),
    )


def _requested(requestor: Node, hub: Node, human: str | None) -> list[ActiveParticipant]:
    """Source = the requesting node, Destination = the hub (the request is "pushed" to the hub)."""
    parts = [requestor.participant(Role.SOURCE, True)]
    if human:
        parts.append(ActiveParticipant(user_id=human, requestor=True))
    parts.append(hub.participant(Role.DESTINATION, False))
    return parts


def _exported(requestor: Node, hub: Node, human: str | None) -> list[ActiveParticipant]:
    """Source = the hub (it sends the data), Destination = the requesting node."""
    parts = [hub.participant(Role.SOURCE, False), requestor.participant(Role.DESTINATION, True)]
    if human:
        parts.append(ActiveParticipant(user_id=human, requestor=True))
    return parts


# ---------------------------------------------------------------------------------------------
# XDS.b / XDS-I.b
# ---------------------------------------------------------------------------------------------


def submission_import(
    source: AuditSource,
    transaction: str,
    requestor: Node,
    hub: Node,
    patient_id: str,
    submission_set_uid: str,
    outcome: Outcome = Outcome.SUCCESS,
    description: str | None = None,
    human: str | None = None,
    when: dt.datetime | None = None,
) -> AuditMessage:
    """ITI-41 / ITI-42 / RAD-68 received by the hub (110107 Import, C)."""
    return _message(
        source,
        EventId.IMPORT,
        Action.CREATE,
        outcome,
        description,
        [codes.transaction(transaction)],
        _requested(requestor, hub, human),
        [*_patients([patient_id]), _submission_set(submission_set_uid)],
        when,
    )


def _submission_set(uid: str) -> ParticipantObject:
    return ParticipantObject(
        object_id=uid,
        id_type=IdType.SUBMISSION_SET,
        object_type=ObjectType.SYSTEM_OBJECT,
        role=ObjectRole.JOB,
    )


def metadata_update(
    source: AuditSource,
    requestor: Node,
    hub: Node,
    patient_id: str,
    submission_set_uid: str,
    outcome: Outcome = Outcome.SUCCESS,
    description: str | None = None,
    human: str | None = None,
    when: dt.datetime | None = None,
) -> AuditMessage:
    """ITI-57 Update Document Set at the registry (110107 Import, U)."""
    return _message(
        source,
        EventId.IMPORT,
        Action.UPDATE,
        outcome,
        description,
        [codes.transaction("ITI-57")],
        _requested(requestor, hub, human),
        [*_patients([patient_id]), _submission_set(submission_set_uid)],
        when,
    )


def stored_query(
    source: AuditSource,
    requestor: Node,
    hub: Node,
    query_id: str,
    query_request: bytes,
    patient_id: str | None = None,
    outcome: Outcome = Outcome.SUCCESS,
    description: str | None = None,
    home_community_id: str | None = None,
    human: str | None = None,
    when: dt.datetime | None = None,
) -> AuditMessage:
    """ITI-18 Registry Stored Query at the registry (110112 Query, E).

    ``query_request``: the AdhocQueryRequest element as sent (it is base64-encoded in the message).
    """
    details: list[tuple[str, bytes]] = [(codes.QUERY_ENCODING, b"UTF-8")]
    if home_community_id:
        details.append(("urn:ihe:iti:xca:2010:homeCommunityId", home_community_id.encode()))
    query = ParticipantObject(
        object_id=query_id,
        id_type=codes.transaction("ITI-18"),
        object_type=ObjectType.SYSTEM_OBJECT,
        role=ObjectRole.QUERY,
        query=query_request,
        details=tuple(details),
    )
    return _message(
        source,
        EventId.QUERY,
        Action.EXECUTE,
        outcome,
        description,
        [codes.transaction("ITI-18")],
        _requested(requestor, hub, human),
        [*_patients([patient_id]), query],
        when,
    )


def document_export(
    source: AuditSource,
    requestor: Node,
    hub: Node,
    documents: Sequence[DocumentRef],
    home_community_id: str,
    patient_id: str | None = None,
    outcome: Outcome = Outcome.SUCCESS,
    description: str | None = None,
    human: str | None = None,
    when: dt.datetime | None = None,
) -> AuditMessage:
    """ITI-43 Retrieve Document Set at the repository (110106 Export, R); one message per outcome."""
    return _message(
        source,
        EventId.EXPORT,
        Action.READ,
        outcome,
        description,
        [codes.transaction("ITI-43")],
        _exported(requestor, hub, human),
        [*_patients([patient_id]), *(_document(d, home_community_id) for d in documents)],
        when,
    )


def metadata_delete(
    source: AuditSource,
    requestor: Node,
    hub: Node,
    object_ids: Sequence[str],
    patient_ids: Sequence[str] = (),
    outcome: Outcome = Outcome.SUCCESS,
    description: str | None = None,
    human: str | None = None,
    when: dt.datetime | None = None,
) -> AuditMessage:
    """ITI-62 Remove Metadata (Delete Document Set) at the registry (110110 Patient Record, D)."""
    objects = [
        ParticipantObject(
            object_id=oid,
            id_type=IdType.OBJECT_REF,
            object_type=ObjectType.SYSTEM_OBJECT,
            role=ObjectRole.REPORT,
            life_cycle=LifeCycle.LOGICAL_DELETION,
        )
        for oid in object_ids
    ]
    return _message(
        source,
        EventId.PATIENT_RECORD,
        Action.DELETE,
        outcome,
        description,
        [codes.transaction("ITI-62")],
        _requested(requestor, hub, human),
        [*_patients(patient_ids), *objects],
        when,
    )


def documents_remove(
    source: AuditSource,
    requestor: Node,
    hub: Node,
    documents: Sequence[DocumentRef],
    home_community_id: str,
    patient_ids: Sequence[str] = (),
    outcome: Outcome = Outcome.SUCCESS,
    description: str | None = None,
    human: str | None = None,
    when: dt.datetime | None = None,
) -> AuditMessage:
    """ITI-86 Remove Documents at the repository (110110 Patient Record, D)."""
    return _message(
        source,
        EventId.PATIENT_RECORD,
        Action.DELETE,
        outcome,
        description,
        [codes.transaction("ITI-86")],
        _requested(requestor, hub, human),
        [
            *_patients(patient_ids),
            *(_document(d, home_community_id, LifeCycle.PERMANENT_ERASURE) for d in documents),
        ],
        when,
    )


def imaging_export(
    source: AuditSource,
    requestor: Node,
    hub: Node,
    studies: Sequence[StudyRef],
    patient_id: str | None = None,
    outcome: Outcome = Outcome.SUCCESS,
    description: str | None = None,
    transaction: str = "RAD-69",
    human: str | None = None,
    when: dt.datetime | None = None,
) -> AuditMessage:
    """RAD-69 Retrieve Imaging Document Set (or a WADO transaction) served by the hub (110104, R)."""
    return _message(
        source,
        EventId.INSTANCES_TRANSFERRED,
        Action.READ,
        outcome,
        description,
        [codes.transaction(transaction)],
        _exported(requestor, hub, human),
        [*_patients([patient_id]), *(_study(s) for s in studies)],
        when,
    )


# ---------------------------------------------------------------------------------------------
# DICOM (PS3.15 A.5.3)
# ---------------------------------------------------------------------------------------------


def _transfer_parties(sender: Node, receiver: Node, requestor: Node | None) -> list[ActiveParticipant]:
    """Sender (110153) and receiver (110152); ``requestor`` is one of them or a third party (C-MOVE SCU)."""
    parts = [
        sender.participant(Role.SOURCE, requestor is sender),
        receiver.participant(Role.DESTINATION, requestor is receiver),
    ]
    if requestor is not None and requestor is not sender and requestor is not receiver:
        parts.append(requestor.participant(None, True))
    return parts


def instances_transferred(
    source: AuditSource,
    sender: Node,
    receiver: Node,
    studies: Sequence[StudyRef],
    patient_id: str | None,
    action: Action,
    requestor: Node | None = None,
    outcome: Outcome = Outcome.SUCCESS,
    description: str | None = None,
    transaction: str | None = None,
    when: dt.datetime | None = None,
) -> AuditMessage:
    """DICOM Instances Transferred (110104): C-STORE received (``Action.CREATE``, requestor = sender),
    C-MOVE / C-GET / WADO sent (``Action.READ``; requestor = the C-MOVE SCU / C-GET SCU / HTTP client)."""
    types = [codes.transaction(transaction)] if transaction else []
    return _message(
        source,
        EventId.INSTANCES_TRANSFERRED,
        action,
        outcome,
        description,
        types,
        _transfer_parties(sender, receiver, requestor),
        [*_patients([patient_id]), *(_study(s) for s in studies)],
        when,
    )


def begin_transferring(
    source: AuditSource,
    sender: Node,
    receiver: Node,
    studies: Sequence[StudyRef],
    patient_id: str | None,
    requestor: Node | None = None,
    outcome: Outcome = Outcome.SUCCESS,
    description: str | None = None,
    when: dt.datetime | None = None,
) -> AuditMessage:
    """Begin Transferring DICOM Instances (110102, E): at the start of a C-MOVE / C-GET."""
    return _message(
        source,
        EventId.BEGIN_TRANSFERRING,
        Action.EXECUTE,
        outcome,
        description,
        [],
        _transfer_parties(sender, receiver, requestor),
        [*_patients([patient_id]), *(_study(s) for s in studies)],
        when,
    )


def dicom_query(
    source: AuditSource,
    requestor: Node,
    hub: Node,
    sop_class_uid: str,
    query: bytes,
    transfer_syntax: str | None = None,
    patient_id: str | None = None,
    outcome: Outcome = Outcome.SUCCESS,
    description: str | None = None,
    when: dt.datetime | None = None,
) -> AuditMessage:
    """Query (110112, E) for a C-FIND (``query`` the identifier data set as received) or QIDO-RS
    (``query`` the query string)."""
    details = (("TransferSyntax", transfer_syntax.encode()),) if transfer_syntax else ()
    obj = ParticipantObject(
        object_id=sop_class_uid,
        id_type=IdType.SOP_CLASS,
        object_type=ObjectType.SYSTEM_OBJECT,
        role=ObjectRole.REPORT,
        query=query,
        details=details,
    )
    return _message(
        source,
        EventId.QUERY,
        Action.EXECUTE,
        outcome,
        description,
        [],
        _requested(requestor, hub, None),
        [*_patients([patient_id]), obj],
        when,
    )


# ---------------------------------------------------------------------------------------------
# PIX (HL7 v2 and v3)
# ---------------------------------------------------------------------------------------------

#: Message-id detail type per transaction: MSH-10 for HL7 v2, II (message id root^extension) for v3.
_MESSAGE_ID_DETAIL = {
    "ITI-8": "MSH-10",
    "ITI-9": "MSH-10",
    "ITI-10": "MSH-10",
    "ITI-44": "II",
    "ITI-45": "II",
}


def patient_record(
    source: AuditSource,
    transaction: str,
    requestor: Node,
    hub: Node,
    action: Action,
    patient_ids: Sequence[str],
    message_id: str,
    outcome: Outcome = Outcome.SUCCESS,
    description: str | None = None,
    when: dt.datetime | None = None,
) -> AuditMessage:
    """ITI-8 / ITI-44 Patient Identity Feed received (110110 Patient Record): C for A01/A04/A05 and
    v3 add, U for A08 and revise, D for the record a merge (A40, v3 duplicates resolved) retires.
    ``patient_ids`` are CX strings (a v3 II as ``extension^^^&root&ISO``)."""
    detail = ((_MESSAGE_ID_DETAIL[transaction], message_id.encode()),)
    return _message(
        source,
        EventId.PATIENT_RECORD,
        action,
        outcome,
        description,
        [codes.transaction(transaction)],
        _requested(requestor, hub, None),
        _patients(patient_ids, detail),
        when,
    )


def pix_query(
    source: AuditSource,
    transaction: str,
    requestor: Node,
    hub: Node,
    query: bytes,
    message_id: str,
    patient_ids: Sequence[str] = (),
    outcome: Outcome = Outcome.SUCCESS,
    description: str | None = None,
    when: dt.datetime | None = None,
) -> AuditMessage:
    """ITI-9 (``query`` the QPD segment) / ITI-45 (``query`` the queryByParameter element) (110112, E).

    ``patient_ids``: the identifiers queried and returned.
    """
    obj = ParticipantObject(
        object_id=message_id,
        id_type=codes.transaction(transaction),
        object_type=ObjectType.SYSTEM_OBJECT,
        role=ObjectRole.QUERY,
        query=query,
        details=((_MESSAGE_ID_DETAIL[transaction], message_id.encode()),),
    )
    return _message(
        source,
        EventId.QUERY,
        Action.EXECUTE,
        outcome,
        description,
        [codes.transaction(transaction)],
        _requested(requestor, hub, None),
        [*_patients(patient_ids), obj],
        when,
    )


# ---------------------------------------------------------------------------------------------
# Security and application events
# ---------------------------------------------------------------------------------------------


def _alert_subject(subject: str, why: str) -> ParticipantObject:
    return ParticipantObject(
        object_id=subject,
        id_type=IdType.NODE,
        object_type=ObjectType.SYSTEM_OBJECT,
        role=ObjectRole.SECURITY_RESOURCE,
        name=subject,
        details=(("Alert Description", why.encode()),),
    )


def node_authentication_failure(
    source: AuditSource, hub: Node, peer_node: Node, reason: str, when: dt.datetime | None = None
) -> AuditMessage:
    """A node failed TLS node authentication (ITI-19): Security Alert (110113, E), type 110126."""
    return _message(
        source,
        EventId.SECURITY_ALERT,
        Action.EXECUTE,
        Outcome.MINOR_FAILURE,
        reason,
        [EventType.NODE_AUTHENTICATION],
        [hub.participant(None, False), peer_node.participant(None, True)],
        [_alert_subject(peer_node.address or peer_node.user_id, reason)],
        when,
    )


def access_denied(
    source: AuditSource, requestor: Node, hub: Node, what: str, reason: str, when: dt.datetime | None = None
) -> AuditMessage:
    """An authenticated node asked for something the access rules refuse: Security Alert (110113, E),
    type 110132 Use of Restricted Function; ``what`` names the transaction or operation."""
    return _message(
        source,
        EventId.SECURITY_ALERT,
        Action.EXECUTE,
        Outcome.MINOR_FAILURE,
        reason,
        [EventType.USE_OF_RESTRICTED_FUNCTION],
        [requestor.participant(None, True), hub.participant(None, False)],
        [_alert_subject(what, reason)],
        when,
    )


def application_activity(
    source: AuditSource, hub: Node, start: bool, when: dt.datetime | None = None
) -> AuditMessage:
    """Application Start / Stop of the hub (110100, E; 110120 / 110121)."""
    return _message(
        source,
        EventId.APPLICATION_ACTIVITY,
        Action.EXECUTE,
        Outcome.SUCCESS,
        None,
        [EventType.APPLICATION_START if start else EventType.APPLICATION_STOP],
        [hub.participant(Role.APPLICATION, False)],
        [],
        when,
    )
