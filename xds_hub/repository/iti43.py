"""ITI-43 Retrieve Document Set, Document Repository side (ITI TF-2 3.43.4.1.3, 3.43.4.2).

Each xdsb:DocumentRequest names a RepositoryUniqueId, a DocumentUniqueId and optionally a
HomeCommunityId.  A request for another community is XDSUnknownCommunity, for another
repository XDSUnknownRepositoryId, for a document this repository does not hold
XDSDocumentUniqueIdError, and for one it registered whose stored content is gone
XDSMissingDocument; each error's location is the DocumentUniqueId.  Every document found is
returned as an MTOM part streamed from the blob store, with the mimeType it was submitted with.
The RegistryResponse status is Success when every document is returned, PartialSuccess when
some are, Failure when none is (3.43.4.2.3).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from lxml import etree

from xds_hub import ns
from xds_hub.domain.vocabulary import ResponseStatus, SoapAction
from xds_hub.ebxml.render import render_registry_response
from xds_hub.errors import ErrorCode, FaultCode, Problem, Severity, SoapFault
from xds_hub.log import get_logger
from xds_hub.registry.responses import REPOSITORY_INTERNAL_ERROR
from xds_hub.repository import inline
from xds_hub.repository.store import StoredDocument, find_documents
from xds_hub.soap.types import OutAttachment, SoapRequest, SoapResponse
from xds_hub.storage.db import read_transaction

if TYPE_CHECKING:
    from xds_hub.config import Settings
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.repository.iti43")


@dataclass(frozen=True, slots=True)
class DocumentRequest:
    """One xdsb:DocumentRequest (ITI TF-2 3.43.4.1.2)."""

    repository_unique_id: str
    document_unique_id: str
    home_community_id: str | None = None


@dataclass(frozen=True, slots=True)
class RetrievedDocument:
    """One document to return: what was asked and where its octets are."""

    request: DocumentRequest
    stored: StoredDocument
    #: The octets of a document kept in the database (see xds_hub.repository.inline), else None.
    data: bytes | None = None


def _x(local: str) -> str:
    return ns.qn(ns.XDSB, local)


def _text(parent: etree._Element, local: str) -> str | None:
    child = parent.find(_x(local))
    if child is None or child.text is None:
        return None
    return child.text.strip() or None


def read_document_request(elem: etree._Element) -> DocumentRequest | None:
    """The ids an xdsb:DocumentRequest element names (ITI TF-2 3.43.4.1.2; also in ITI-86 and RAD-69
    requests), each stripped; None when it lacks a RepositoryUniqueId or a DocumentUniqueId."""
    repo = _text(elem, "RepositoryUniqueId")
    doc = _text(elem, "DocumentUniqueId")
    if repo is None or doc is None:
        return None
    return DocumentRequest(repo, doc, _text(elem, "HomeCommunityId"))


def document_request(elem: etree._Element) -> DocumentRequest:
    """:func:`read_document_request`, with a SOAP Sender fault where it finds no ids (ITI-43, ITI-86)."""
    req = read_document_request(elem)
    if req is None:
        raise SoapFault(
            FaultCode.SENDER,
            "each xdsb:DocumentRequest needs a RepositoryUniqueId and a DocumentUniqueId",
        )
    return req


def parse_retrieve_request(body: etree._Element) -> list[DocumentRequest]:
    """The DocumentRequests of an xdsb:RetrieveDocumentSetRequest; SoapFault when it is not one."""
    if body.tag != _x("RetrieveDocumentSetRequest"):
        raise SoapFault(FaultCode.SENDER, f"expected xdsb:RetrieveDocumentSetRequest, got {body.tag}")
    requests = [document_request(elem) for elem in body.iterchildren(_x("DocumentRequest"))]
    if not requests:
        raise SoapFault(FaultCode.SENDER, "xdsb:RetrieveDocumentSetRequest has no xdsb:DocumentRequest")
    return requests


def _content_id(index: int) -> str:
    return f"doc{index}.{uuid.uuid4().hex}@xds-hub"


def render_retrieve_response(
    documents: Sequence[tuple[RetrievedDocument, str]], problems: Sequence[Problem], requested: int
) -> etree._Element:
    """xdsb:RetrieveDocumentSetResponse; ``documents`` pairs each document with its MIME part cid.

    Also the body of a RAD-69 response (RAD TF-3 4.69.4.2), which has the same shape.
    """
    errors = any(p.severity is Severity.ERROR for p in problems)
    if not documents:
        status = ResponseStatus.FAILURE
    elif errors or len(documents) < requested:
        status = ResponseStatus.PARTIAL_SUCCESS
    else:
        status = ResponseStatus.SUCCESS
    root = etree.Element(
        _x("RetrieveDocumentSetResponse"), nsmap={"xdsb": ns.XDSB, "rs": ns.RS, "xop": ns.XOP}
    )
    root.append(render_registry_response(status, problems))
    for doc, cid in documents:
        resp = etree.SubElement(root, _x("DocumentResponse"))
        if doc.request.home_community_id:
            etree.SubElement(resp, _x("HomeCommunityId")).text = doc.request.home_community_id
        etree.SubElement(resp, _x("RepositoryUniqueId")).text = doc.stored.repository_unique_id
        etree.SubElement(resp, _x("DocumentUniqueId")).text = doc.stored.unique_id
        etree.SubElement(resp, _x("mimeType")).text = doc.stored.mime_type
        content = etree.SubElement(resp, _x("Document"))
        etree.SubElement(content, ns.qn(ns.XOP, "Include"), {"href": "cid:" + quote(cid, safe="@.-_")})
    return root


def foreign_problem(req: DocumentRequest, settings: Settings) -> Problem | None:
    """The problem of a request for another community (XDSUnknownCommunity) or another repository
    (XDSUnknownRepositoryId), located at its DocumentUniqueId; None when it is for this repository."""
    domain = settings.domain
    if req.home_community_id and req.home_community_id != domain.home_community_id:
        return Problem(
            ErrorCode.UNKNOWN_COMMUNITY,
            f"homeCommunityId {req.home_community_id} is not this community ({domain.home_community_id})",
            req.document_unique_id,
        )
    if req.repository_unique_id != domain.repository_unique_id:
        return Problem(
            ErrorCode.UNKNOWN_REPOSITORY_ID,
            f"repositoryUniqueId {req.repository_unique_id} is not this repository "
            f"({domain.repository_unique_id})",
            req.document_unique_id,
        )
    return None


def no_document_problem(req: DocumentRequest) -> Problem:
    """The problem of a request for a document this repository does not hold (ITI TF-2 3.43.4.2.3,
    3.86.4.1.3; ITI TF-3 Table 4.2.4.1-2)."""
    return Problem(
        ErrorCode.DOCUMENT_UNIQUE_ID_ERROR,
        f"repository {req.repository_unique_id} holds no document {req.document_unique_id}",
        req.document_unique_id,
    )


def locate(
    requests: Sequence[DocumentRequest], stores: Stores, settings: Settings
) -> tuple[list[RetrievedDocument], list[Problem]]:
    """Resolve each request to a stored document, or to the problem that prevents it."""
    problems: list[Problem] = []
    wanted: list[DocumentRequest] = []
    for req in requests:
        problem = foreign_problem(req, settings)
        if problem is None:
            wanted.append(req)
        else:
            problems.append(problem)
    found: list[RetrievedDocument] = []
    if wanted:
        with read_transaction(stores.engine) as conn:
            stored = find_documents(conn, (r.document_unique_id for r in wanted))
            kept = inline.read(conn, (d.blob_key for d in stored.values()))
        for req in wanted:
            doc = stored.get(req.document_unique_id)
            if doc is None:
                problems.append(no_document_problem(req))
            elif doc.blob_key in kept:
                found.append(RetrievedDocument(req, doc, kept[doc.blob_key]))
            elif inline.is_inline(doc.blob_key) or not stores.blobs.exists(doc.blob_key):
                log.error(
                    "registered document has no blob",
                    extra={"unique_id": doc.unique_id, "blob_key": doc.blob_key},
                )
                problems.append(
                    Problem(  # the entry exists, its document does not (Table 4.2.4.1-2)
                        ErrorCode.MISSING_DOCUMENT,
                        f"the content of document {doc.unique_id} cannot be read",
                        req.document_unique_id,
                    )
                )
            else:
                found.append(RetrievedDocument(req, doc))
    return found, problems


def handle(request: SoapRequest, stores: Stores, settings: Settings) -> SoapResponse:
    """ITI-43: return each requested document as an MTOM part (response always MTOM)."""
    requests = parse_retrieve_request(request.body)
    try:
        found, problems = locate(requests, stores, settings)
    except Exception:
        log.exception("ITI-43 failed unexpectedly")
        found, problems = [], [REPOSITORY_INTERNAL_ERROR]
    parts = [(doc, _content_id(i)) for i, doc in enumerate(found)]
    body = render_retrieve_response(parts, problems, len(requests))
    attachments = [
        OutAttachment(
            content_id=cid,
            content_type=doc.stored.mime_type,
            size=doc.stored.size,
            key=None if doc.data is not None else doc.stored.blob_key,
            data=doc.data,
        )
        for doc, cid in parts
    ]
    return SoapResponse(action=SoapAction.ITI43_RESPONSE, body=body, attachments=attachments, mtom=True)
