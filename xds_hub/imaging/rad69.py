"""RAD-69 Retrieve Imaging Document Set, Imaging Document Source side (RAD TF-3 4.69).

The request (iherad:RetrieveImagingDocumentSetRequest, RAD TF-3 4.69.4.1.2) names studies, their
series and, in each, xdsb:DocumentRequests (RepositoryUniqueId = this Imaging Document Source's
uniqueId, DocumentUniqueId = SOP Instance UID), plus the transfer syntaxes the consumer accepts.
The response has the shape of ITI-43's (4.69.4.2.2): one DocumentResponse per instance returned,
its Part-10 file an MTOM part streamed from the blob store (memory stays flat whatever the study's
size).

Per instance (error location = the SOP Instance UID, 4.69.4.2.3):

- another community: XDSUnknownCommunity; another Imaging Document Source: XDSUnknownRepositoryId;
- no such instance in that study and series: XDSMissingDocument;
- none of the requested transfer syntaxes can be produced (the stored one is returned when it is
  accepted, otherwise the instance is decoded into Explicit / Implicit VR Little Endian where
  pydicom can): XDSRepositoryError.

The status is Success when every instance is returned, PartialSuccess when some are, Failure when
none is.  A request without studies, series, documents or TransferSyntaxUIDList is XDSIRequestError.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lxml import etree

from xds_hub import ns
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.errors import ErrorCode, FaultCode, ParseError, Problem, SoapFault
from xds_hub.imaging import files
from xds_hub.imaging.kos import MIME_DICOM
from xds_hub.imaging.query import StoredInstance, instances
from xds_hub.log import get_logger
from xds_hub.repository.iti43 import (
    DocumentRequest,
    RetrievedDocument,
    read_document_request,
    render_retrieve_response,
)
from xds_hub.repository.store import StoredDocument
from xds_hub.soap.types import OutAttachment, SoapRequest, SoapResponse

if TYPE_CHECKING:
    from xds_hub.config import Settings
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.imaging.rad69")

#: From this many requested instances on, they are looked up by their studies (one bound value)
#: rather than one by one (an IN list of SOP Instance UIDs, rebuilt for every request).
_BY_STUDY = 32


@dataclass(frozen=True, slots=True)
class InstanceRequest:
    """One requested instance: its study and series, and the xdsb:DocumentRequest naming it."""

    study_uid: str
    series_uid: str
    document: DocumentRequest


@dataclass(frozen=True, slots=True)
class ImagingRequest:
    instances: tuple[InstanceRequest, ...]
    transfer_syntaxes: tuple[str, ...]


class RequestError(ParseError):
    """The request is a RetrieveImagingDocumentSetRequest but lacks what RAD TF-3 4.69.4.1.2 requires.

    Answered with XDSIRequestError (RAD TF-3 4.69.4.2.3).
    """


def _i(local: str) -> str:
    return ns.qn(ns.XDSI, local)


def _b(local: str) -> str:
    return ns.qn(ns.XDSB, local)


def parse_request(body: etree._Element) -> ImagingRequest:
    """The request; SoapFault when the body is not one, RequestError when it is incomplete."""
    if body.tag != _i("RetrieveImagingDocumentSetRequest"):
        raise SoapFault(
            FaultCode.SENDER, f"expected iherad:RetrieveImagingDocumentSetRequest, got {body.tag}"
        )
    wanted: list[InstanceRequest] = []
    for study in body.iterchildren(_i("StudyRequest")):
        study_uid = (study.get("studyInstanceUID") or "").strip()
        if not study_uid:
            raise RequestError("a StudyRequest has no studyInstanceUID")
        series_list = list(study.iterchildren(_i("SeriesRequest")))
        if not series_list:
            raise RequestError(f"StudyRequest {study_uid} has no SeriesRequest")
        for series in series_list:
            series_uid = (series.get("seriesInstanceUID") or "").strip()
            if not series_uid:
                raise RequestError(f"a SeriesRequest of study {study_uid} has no seriesInstanceUID")
            docs = list(series.iterchildren(_b("DocumentRequest")))
            if not docs:
                raise RequestError(f"SeriesRequest {series_uid} has no DocumentRequest")
            for doc in docs:
                document = read_document_request(doc)
                if document is None:
                    raise RequestError(
                        "each DocumentRequest needs a RepositoryUniqueId and a DocumentUniqueId"
                    )
                wanted.append(InstanceRequest(study_uid, series_uid, document))
    if not wanted:
        raise RequestError("the request has no StudyRequest")
    syntax_list = body.find(_i("TransferSyntaxUIDList"))
    syntaxes = (
        tuple(
            t.text.strip()
            for t in syntax_list.iterchildren(_i("TransferSyntaxUID"))
            if t.text and t.text.strip()
        )
        if syntax_list is not None
        else ()
    )
    if not syntaxes:
        raise RequestError("TransferSyntaxUIDList with at least one TransferSyntaxUID is required")
    return ImagingRequest(tuple(wanted), syntaxes)


def locate(
    request: ImagingRequest, stores: Stores, settings: Settings
) -> tuple[list[tuple[InstanceRequest, StoredInstance]], list[Problem]]:
    """Each requested instance, in a transfer syntax the consumer accepts, or its problem."""
    domain = settings.domain
    problems: list[Problem] = []
    ours: list[InstanceRequest] = []
    for item in request.instances:
        doc = item.document
        if doc.home_community_id and doc.home_community_id != domain.home_community_id:
            problems.append(
                Problem(
                    ErrorCode.UNKNOWN_COMMUNITY,
                    f"homeCommunityId {doc.home_community_id} is not this community "
                    f"({domain.home_community_id})",
                    doc.document_unique_id,
                )
            )
        elif doc.repository_unique_id != domain.imaging_source_unique_id:
            problems.append(
                Problem(
                    ErrorCode.UNKNOWN_REPOSITORY_ID,
                    f"repositoryUniqueId {doc.repository_unique_id} is not this Imaging Document Source "
                    f"({domain.imaging_source_unique_id})",
                    doc.document_unique_id,
                )
            )
        else:
            ours.append(item)
    stored: dict[str, StoredInstance] = {}
    if ours:
        with stores.engine.connect() as conn:
            if len(ours) >= _BY_STUDY:  # a study or series: its instances, filtered here
                wanted = {i.document.document_unique_id for i in ours}
                found = instances(conn, study_uids=sorted({i.study_uid for i in ours}))
                stored.update(
                    {inst.sop_instance_uid: inst for inst in found if inst.sop_instance_uid in wanted}
                )
            else:
                found = instances(conn, sop_uids=[i.document.document_unique_id for i in ours])
                stored.update({inst.sop_instance_uid: inst for inst in found})
    ready: list[tuple[InstanceRequest, StoredInstance]] = []
    for item in ours:
        uid = item.document.document_unique_id
        inst = stored.get(uid)
        if inst is None or inst.study_uid != item.study_uid or inst.series_uid != item.series_uid:
            problems.append(
                Problem(  # RAD TF-3 4.69.4.2.3 (ITI TF-3 Table 4.2.4.1-2), as the NIST IDS tests expect
                    ErrorCode.DOCUMENT_UNIQUE_ID_ERROR,
                    f"no instance {uid} in study {item.study_uid}, series {item.series_uid}",
                    uid,
                )
            )
            continue
        target = files.choose_syntax(inst.transfer_syntax, request.transfer_syntaxes)
        try:
            if target is None:
                raise files.TranscodeError(
                    f"instance {uid} is stored in {inst.transfer_syntax} and cannot be encoded in any of "
                    f"the requested transfer syntaxes ({', '.join(request.transfer_syntaxes)})"
                )
            ready.append((item, files.derived(stores, inst, target)))
        except files.TranscodeError as exc:
            problems.append(Problem(ErrorCode.REPOSITORY_ERROR, str(exc), uid))
    return ready, problems


def _content_id(index: int) -> str:
    return f"img{index}.{uuid.uuid4().hex}@xds-hub"


def _as_documents(
    ready: list[tuple[InstanceRequest, StoredInstance]], source_id: str
) -> Iterator[tuple[RetrievedDocument, str, StoredInstance]]:
    for index, (item, inst) in enumerate(ready):
        stored = StoredDocument(
            unique_id=inst.sop_instance_uid,
            repository_unique_id=source_id,
            blob_key=inst.blob_key,
            hash="",
            size=inst.size,
            mime_type=MIME_DICOM,
        )
        yield RetrievedDocument(item.document, stored), _content_id(index), inst


def handle(request: SoapRequest, stores: Stores, settings: Settings) -> SoapResponse:
    """RAD-69: every requested instance as an application/dicom MTOM part (response always MTOM)."""
    try:
        parsed = parse_request(request.body)
    except RequestError as exc:
        body = render_retrieve_response([], [Problem(ErrorCode.XDSI_REQUEST_ERROR, str(exc))], 1)
        _audit(request, stores, settings, [], f"{ErrorCode.XDSI_REQUEST_ERROR}: {exc}")
        return SoapResponse(action=SoapAction.RAD69_RESPONSE, body=body, mtom=True)
    try:
        ready, problems = locate(parsed, stores, settings)
    except Exception:
        log.exception("RAD-69 failed unexpectedly")
        ready, problems = (
            [],
            [Problem(ErrorCode.REPOSITORY_ERROR, "internal error of the Imaging Document Source")],
        )
    documents = list(_as_documents(ready, settings.domain.imaging_source_unique_id))
    body = render_retrieve_response([(d, cid) for d, cid, _ in documents], problems, len(parsed.instances))
    attachments = [
        OutAttachment(content_id=cid, content_type=MIME_DICOM, size=inst.size, key=inst.blob_key)
        for _d, cid, inst in documents
    ]
    why = "; ".join(f"{p.code}: {p.context}" for p in problems)[:1000] or None
    _audit(request, stores, settings, [inst for _d, _c, inst in documents], why)
    return SoapResponse(action=SoapAction.RAD69_RESPONSE, body=body, attachments=attachments, mtom=True)


def _audit(
    request: SoapRequest, stores: Stores, settings: Settings, sent: list[StoredInstance], problems: str | None
) -> None:
    """RAD-69's audit message (RAD TF-3 4.69.4.1.4): the instances sent; PartialSuccess / Failure
    when some or all were not (their errors in the outcome description)."""
    from xds_hub.audit import events
    from xds_hub.audit.model import Outcome
    from xds_hub.imaging import audit

    if problems is None:
        outcome = Outcome.SUCCESS
    else:
        outcome = Outcome.MINOR_FAILURE if sent else Outcome.SERIOUS_FAILURE
    requestor = events.soap_peer(request, request.identity)
    hub = events.hub_http(settings, request.path)
    audit.exported(settings, stores, requestor, hub, "RAD-69", sent, outcome, problems)
