"""The audit trail of the XDS transactions the hub serves over SOAP (ITI-20), recorded at the edge.

After a handler has answered (or failed), :func:`audit_exchange` reads what the audit message needs
from the request, the reply and :attr:`SoapRequest.notes <xds_hub.soap.types.SoapRequest.notes>`,
and hands the building and storing to the process's :class:`~xds_hub.audit.recorder.AuditRecorder`
(the request thread only extracts a few values; messages, XML and the insert are done off it).
One auditor per wsa:Action (ITI TF-2 "Security Considerations" of each transaction):

==========  =============================================================================
ITI-41      Import (110107, C), EventTypeCode ITI-41: the Document Source -> the repository;
(RAD-68)    on success also the registry's Import for the in-process Register (ITI-42), whose
            Source is the hub's repository endpoint.  A RAD-68 (a KOS) is audited alike.
ITI-42      Import (110107, C), ITI-42: the Document Repository -> the registry
ITI-18      Query (110112, E), ITI-18: the AdhocQueryRequest (base64), its query id, patient
ITI-43      Export (110106, R), ITI-43: the repository -> the consumer; one message per patient
            and outcome (documents returned: success; documents refused: failure)
ITI-57      Import (110107, U), ITI-57: patient and submission set of the update
ITI-62      Patient Record (110110, D), ITI-62: the registry objects removed (logical deletion)
ITI-86      Patient Record (110110, D), ITI-86: the documents removed (permanent erasure)
==========  =============================================================================

The outcome comes from the answer: a SOAP fault or a RegistryResponse Failure is 8 (serious
failure, the error codes in EventOutcomeDescription), PartialSuccess 4, an internal error 12.
The requestor is the node that called: UserID its wsa:ReplyTo (anonymous when absent), its network
address, and as UserName the establishment its TLS certificate belongs to.  The patients of ITI-43
and ITI-86 are looked up in the registry on the writer thread (the request names documents only).

RAD-69 and the PIX transactions are audited by their own handlers; :func:`record_refusal` is the
Security Alert of a request the access rules refuse (:mod:`xds_hub.security.guard`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from lxml import etree
from sqlalchemy import select

from xds_hub import ns
from xds_hub.audit import events
from xds_hub.audit.model import AuditMessage, AuditSource, Outcome
from xds_hub.audit.recorder import recorder_for
from xds_hub.domain.vocabulary import ResponseStatus, SoapAction, SubmissionSetScheme
from xds_hub.log import get_logger
from xds_hub.storage.schema import registry_object

if TYPE_CHECKING:
    from xds_hub.config import Settings
    from xds_hub.soap.types import SoapRequest, SoapResponse
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.audit.soap")

_RIM = partial(ns.qn, ns.RIM)
_XDSB = partial(ns.qn, ns.XDSB)
_RS_RESPONSE = ns.qn(ns.RS, "RegistryResponse")
_RS_ERRORS = ns.qn(ns.RS, "RegistryErrorList")
_RS_ERROR = ns.qn(ns.RS, "RegistryError")
_SUBMIT = ns.qn(ns.LCM, "SubmitObjectsRequest")
#: Stored-query parameters that name the patient (ITI TF-2 3.18.4.1.2.3.7).
_PATIENT_PARAMS = frozenset(
    {"$XDSDocumentEntryPatientId", "$XDSSubmissionSetPatientId", "$XDSFolderPatientId", "$patientId"}
)
_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Ending:
    """How a transaction ended, as the audit message's EventOutcomeIndicator says it."""

    outcome: Outcome
    description: str | None = None
    #: location -> "code: context" of each RegistryError of the reply.
    errors: tuple[tuple[str, str], ...] = ()
    #: The request was answered with a SOAP fault (it was not processed).
    fault: bool = False


def ending(reply: SoapResponse | None, error: BaseException | None) -> Ending:
    """The outcome of an answered request: from the exception, or the reply's RegistryResponse status."""
    if error is not None:
        outcome, why = events.outcome_of(error)
        return Ending(outcome, why, fault=True)
    if reply is None:  # pragma: no cover - a handler always answers or raises
        return Ending(Outcome.MAJOR_FAILURE, "no answer")
    body = reply.body
    response = body if body.get("status") is not None else body.find(_RS_RESPONSE)
    status = response.get("status", "") if response is not None else ""
    errors: list[tuple[str, str]] = []
    if response is not None:
        listing = response.find(_RS_ERRORS)
        if listing is not None:
            for err in listing.iterfind(_RS_ERROR):
                text = f"{err.get('errorCode', '')}: {err.get('codeContext', '')}"
                errors.append((err.get("location") or "", text))
    why = "; ".join(text for _, text in errors)[:1000] or None
    if status == ResponseStatus.SUCCESS:
        return Ending(Outcome.SUCCESS, None, tuple(errors))
    if status == ResponseStatus.PARTIAL_SUCCESS:
        return Ending(Outcome.MINOR_FAILURE, why or "PartialSuccess", tuple(errors))
    return Ending(Outcome.SERIOUS_FAILURE, why or f"status {status or 'missing'}", tuple(errors))


@dataclass(frozen=True, slots=True)
class _Call:
    """One served request, as the auditors see it (everything but the trees is plain data)."""

    request: SoapRequest
    settings: Settings
    stores: Stores
    end: Ending

    def requestor(self) -> events.Node:
        return events.soap_peer(self.request, self.request.identity)

    def hub(self, path: str | None = None) -> events.Node:
        return _hub(self.settings, path or self.request.path)

    def source(self) -> AuditSource:
        return _source(self.settings)


# The hub's side of every message, made once per process (host name and pid are system calls).
_HUBS: dict[tuple[int, str, int], events.Node] = {}
_SOURCES: dict[tuple[int, int], AuditSource] = {}


def _hub(settings: Settings, path: str) -> events.Node:
    key = (id(settings), path, os.getpid())
    node = _HUBS.get(key)
    if node is None:
        node = _HUBS[key] = events.hub_http(settings, path)
    return node


def _source(settings: Settings) -> AuditSource:
    key = (id(settings), os.getpid())
    source = _SOURCES.get(key)
    if source is None:
        source = _SOURCES[key] = events.audit_source(settings)
    return source


Work = Callable[[], Iterable[AuditMessage]]


# ---------------------------------------------------------------------------------------------
# What the request says
# ---------------------------------------------------------------------------------------------


def submission_facts(body: etree._Element) -> tuple[str, str]:
    """(patientId, uniqueId) of the SubmissionSet of an ITI-41 / ITI-42 / ITI-57 body ("" if absent).

    Reads only the RegistryPackages' ExternalIdentifiers (no full parse): the submission set is
    the package identified under the XDSSubmissionSet schemes.
    """
    submit = body if body.tag == _SUBMIT else body.find(_SUBMIT)
    listing = submit.find(_RIM("RegistryObjectList")) if submit is not None else None
    patient = unique = ""
    if listing is None:
        return patient, unique
    for package in listing.iterchildren(_RIM("RegistryPackage")):
        for ident in package.iterchildren(_RIM("ExternalIdentifier")):
            scheme = ident.get("identificationScheme")
            if scheme == SubmissionSetScheme.PATIENT_ID:
                patient = (ident.get("value") or "").strip()
            elif scheme == SubmissionSetScheme.UNIQUE_ID:
                unique = (ident.get("value") or "").strip()
        if patient or unique:
            break
    return patient, unique


def _document_requests(body: etree._Element) -> list[events.DocumentRef]:
    refs: list[events.DocumentRef] = []
    for elem in body.iterchildren(_XDSB("DocumentRequest")):
        doc = (elem.findtext(_XDSB("DocumentUniqueId")) or "").strip()
        if doc:
            repo = (elem.findtext(_XDSB("RepositoryUniqueId")) or "").strip()
            home = (elem.findtext(_XDSB("HomeCommunityId")) or "").strip() or None
            refs.append(events.DocumentRef(doc, repo, home))
    return refs


def _returned_documents(reply: SoapResponse | None) -> set[str]:
    if reply is None:
        return set()
    return {
        (r.findtext(_XDSB("DocumentUniqueId")) or "").strip()
        for r in reply.body.iterchildren(_XDSB("DocumentResponse"))
    }


def _unquote(value: str) -> str:
    value = value.strip()
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == "'" else value


def _query_facts(body: etree._Element) -> tuple[str, str | None, str | None]:
    """(query id, patient id, AdhocQuery/@home) of an AdhocQueryRequest."""
    query = body.find(_RIM("AdhocQuery"))
    if query is None:
        return "", None, None
    patient = None
    for slot in query.iterchildren(_RIM("Slot")):
        if slot.get("name") in _PATIENT_PARAMS:
            value = slot.findtext(f"{_RIM('ValueList')}/{_RIM('Value')}")
            patient = _unquote(_unquote(value or "").strip("()")) or None
            break
    return query.get("id", ""), patient, query.get("home")


def _object_refs(body: etree._Element) -> list[str]:
    refs = body.find(_RIM("ObjectRefList"))
    return (
        [] if refs is None else [r.get("id", "") for r in refs.iterchildren(_RIM("ObjectRef")) if r.get("id")]
    )


def patients_of_documents(stores: Stores, unique_ids: Iterable[str]) -> dict[str, str]:
    """DocumentEntry uniqueId -> its patient ID, from the registry (entries it no longer has are absent)."""
    t = registry_object
    ids = list(dict.fromkeys(unique_ids))
    found: dict[str, str] = {}
    with stores.engine.connect() as conn:
        for start in range(0, len(ids), _IN_CHUNK):
            rows = conn.execute(
                select(t.c.unique_id, t.c.patient_id).where(
                    t.c.kind == "D", t.c.unique_id.in_(ids[start : start + _IN_CHUNK])
                )
            )
            for uid, pid in rows:
                if pid:
                    found.setdefault(uid, pid)
    return found


def patients_of_objects(stores: Stores, entry_uuids: Iterable[str]) -> tuple[str, ...]:
    """The patient IDs of registry objects (by id), e.g. those an ITI-62 is about to remove."""
    t = registry_object
    ids = list(dict.fromkeys(entry_uuids))
    found: dict[str, None] = {}
    with stores.engine.connect() as conn:
        for start in range(0, len(ids), _IN_CHUNK):
            for (pid,) in conn.execute(
                select(t.c.patient_id).where(t.c.id.in_(ids[start : start + _IN_CHUNK]))
            ):
                if pid:
                    found[pid] = None
    return tuple(found)


# ---------------------------------------------------------------------------------------------
# One auditor per transaction: extract now, build later
# ---------------------------------------------------------------------------------------------


def _iti41(call: _Call, reply: SoapResponse | None) -> Work:
    patient, unique = submission_facts(call.request.body)
    # The registry took part unless the request was refused or not understood (a SOAP fault).
    registered = call.request.notes.refused is None and not call.end.fault

    def build() -> list[AuditMessage]:
        source = call.source()
        end = call.end
        repository = call.hub()
        messages = [
            events.submission_import(
                source, "ITI-41", call.requestor(), repository, patient, unique, end.outcome, end.description
            )
        ]
        if registered:  # the repository's in-process Register Document Set-b at the registry
            registry = call.hub("/xds/registry")
            messages.append(
                events.submission_import(
                    source, "ITI-42", repository, registry, patient, unique, end.outcome, end.description
                )
            )
        return messages

    return build


def _iti42(call: _Call, reply: SoapResponse | None) -> Work:
    patient, unique = submission_facts(call.request.body)

    def build() -> list[AuditMessage]:
        end = call.end
        return [
            events.submission_import(
                call.source(),
                "ITI-42",
                call.requestor(),
                call.hub(),
                patient,
                unique,
                end.outcome,
                end.description,
            )
        ]

    return build


def _iti57(call: _Call, reply: SoapResponse | None) -> Work:
    patient, unique = submission_facts(call.request.body)

    def build() -> list[AuditMessage]:
        end = call.end
        return [
            events.metadata_update(
                call.source(),
                call.requestor(),
                call.hub(),
                patient,
                unique,
                end.outcome,
                end.description,
            )
        ]

    return build


def _iti18(call: _Call, reply: SoapResponse | None) -> Work:
    query_id, patient, home = _query_facts(call.request.body)
    query = etree.tostring(call.request.body, encoding="UTF-8")

    def build() -> list[AuditMessage]:
        end = call.end
        return [
            events.stored_query(
                call.source(),
                call.requestor(),
                call.hub(),
                query_id,
                query,
                patient,
                end.outcome,
                end.description,
                home_community_id=home,
            )
        ]

    return build


def _iti62(call: _Call, reply: SoapResponse | None) -> Work:
    object_ids = _object_refs(call.request.body)
    patients = call.request.notes.patient_ids

    def build() -> list[AuditMessage]:
        end = call.end
        # Removed objects' patients were noted before the removal; otherwise they are still there.
        found = patients
        if not found and object_ids:
            try:
                found = patients_of_objects(call.stores, object_ids)
            except Exception:  # the registry cannot be read now: the message goes without them
                log.warning("audit: the patients of the registry objects could not be read")
        return [
            events.metadata_delete(
                call.source(),
                call.requestor(),
                call.hub(),
                object_ids,
                found,
                end.outcome,
                end.description,
            )
        ]

    return build


def _per_document(
    call: _Call,
    documents: Sequence[events.DocumentRef],
    done: set[str],
    make: Callable[[Sequence[events.DocumentRef], str | None, Outcome, str | None], AuditMessage],
) -> list[AuditMessage]:
    """One message per (patient, outcome): the documents in ``done`` succeeded, the others failed;
    one failure message without documents when the request named none (a fault)."""
    if not documents:
        return [make((), None, call.end.outcome, call.end.description)]
    try:
        patients = patients_of_documents(call.stores, (d.unique_id for d in documents))
    except Exception:  # the registry cannot be read now: the message goes without its patients
        log.warning("audit: the patients of the documents could not be read")
        patients = {}
    errors = dict(call.end.errors)
    groups: dict[tuple[str | None, bool], list[events.DocumentRef]] = {}
    for doc in documents:
        groups.setdefault((patients.get(doc.unique_id), doc.unique_id in done), []).append(doc)
    messages: list[AuditMessage] = []
    for (patient, ok), docs in groups.items():
        if ok:
            messages.append(make(docs, patient, Outcome.SUCCESS, None))
        else:
            why = "; ".join(dict.fromkeys(errors.get(d.unique_id, "") for d in docs)).strip("; ")
            outcome = (
                Outcome.MAJOR_FAILURE
                if call.end.outcome is Outcome.MAJOR_FAILURE
                else Outcome.SERIOUS_FAILURE
            )
            messages.append(make(docs, patient, outcome, why or call.end.description))
    return messages


def _iti43(call: _Call, reply: SoapResponse | None) -> Work:
    documents = _document_requests(call.request.body)
    returned = _returned_documents(reply)
    home = call.settings.domain.home_community_id

    def build() -> list[AuditMessage]:
        source = call.source()
        requestor, hub = call.requestor(), call.hub()
        return _per_document(
            call,
            documents,
            returned,
            lambda docs, patient, outcome, why: events.document_export(
                source, requestor, hub, docs, home, patient, outcome, why
            ),
        )

    return build


def _iti86(call: _Call, reply: SoapResponse | None) -> Work:
    documents = _document_requests(call.request.body)
    failed = {location for location, _ in call.end.errors}
    if call.end.outcome is Outcome.SUCCESS or call.end.outcome is Outcome.MINOR_FAILURE:
        removed = {d.unique_id for d in documents} - failed
    else:
        removed = set()
    home = call.settings.domain.home_community_id

    def build() -> list[AuditMessage]:
        source = call.source()
        requestor, hub = call.requestor(), call.hub()
        return _per_document(
            call,
            documents,
            removed,
            lambda docs, patient, outcome, why: events.documents_remove(
                source, requestor, hub, docs, home, (patient,) if patient else (), outcome, why
            ),
        )

    return build


Auditor = Callable[[_Call, "SoapResponse | None"], Work]

#: wsa:Action -> its auditor (the XDS transactions of /xds/registry and /xds/repository).
AUDITORS: dict[str, Auditor] = {
    SoapAction.ITI41: _iti41,
    SoapAction.ITI42: _iti42,
    SoapAction.ITI18: _iti18,
    SoapAction.ITI43: _iti43,
    SoapAction.ITI57: _iti57,
    SoapAction.ITI62: _iti62,
    SoapAction.ITI86: _iti86,
}


def audit_exchange(
    request: SoapRequest,
    reply: SoapResponse | None,
    error: BaseException | None,
    settings: Settings,
    stores: Stores,
) -> None:
    """Queue the audit message(s) of a served request (no-op for actions audited elsewhere).

    Never raises: a failure to audit is logged, the transaction's answer is not touched.
    """
    auditor = AUDITORS.get(request.action)
    if auditor is None:
        return
    try:
        work = auditor(_Call(request, settings, stores, ending(reply, error)), reply)
    except Exception:
        log.exception("audit facts could not be read", extra={"action": request.action})
        return
    recorder_for(stores.engine).submit(work)


def record_refusal(request: SoapRequest, settings: Settings, stores: Stores, what: str, reason: str) -> None:
    """Queue the Security Alert (110113 / 110132 Use of Restricted Function) of a refused request."""
    requestor = events.soap_peer(request, request.identity)

    def build() -> list[AuditMessage]:
        hub = events.hub_http(settings, request.path)
        return [events.access_denied(events.audit_source(settings), requestor, hub, what, reason[:1000])]

    recorder_for(stores.engine).submit(build)
