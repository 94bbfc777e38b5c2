"""Remove Documents [ITI-86]: the Document Repository side of Remove Metadata and Documents
(ITI TF-2 3.86; RMD profile).

A Document Administrator sends an ``rmd:RemoveDocumentsRequest`` (namespace
``urn:ihe:iti:rmd:2017``, of type ``xdsb:RetrieveDocumentSetRequestType``: one
``xdsb:DocumentRequest`` per document, each with an optional HomeCommunityId, a
RepositoryUniqueId and a DocumentUniqueId) to ``/xds/repository`` with wsa:Action
``urn:ihe:iti:2017:RemoveDocuments``.  After the administrator check
(:func:`xds_hub.registry.admin.authorize_admin`), each document is handled on its own:

==========================================================  ==============================
the request names                                           RegistryError (location: the
                                                            DocumentUniqueId)
==========================================================  ==============================
another community (a HomeCommunityId that is not the hub's)  XDSUnknownCommunity
another repository (RepositoryUniqueId)                      XDSUnknownRepositoryId
a document this repository does not hold                     XDSDocumentUniqueIdError
==========================================================  ==============================

The documents found are removed from ``repository_document`` in one write transaction; then each
blob that no other row references (the store is content-addressed: a resubmitted or identical
document, or an imaging instance, may share it; see :mod:`xds_hub.repository.sweep`) is deleted.
A blob left behind by a failure there is an orphan that the periodic sweep deletes.  The metadata
stays in the Document Registry: Delete Document Set [ITI-62] removes that.

The answer is an ``rs:RegistryResponse`` (ITI TF-2 3.86.4.2): Success when every document was
removed, PartialSuccess when some were, Failure when none was.  A body that is not a
RemoveDocumentsRequest is answered with a SOAP Sender fault.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lxml import etree
from sqlalchemy import delete

from xds_hub import ns
from xds_hub.domain.vocabulary import ResponseStatus, SoapAction
from xds_hub.ebxml.render import render_registry_response
from xds_hub.errors import FaultCode, Problem, SoapFault, XdsError
from xds_hub.log import get_logger
from xds_hub.registry.admin import authorize_admin
from xds_hub.registry.responses import REPOSITORY_INTERNAL_ERROR, database_errors
from xds_hub.repository.iti43 import DocumentRequest, document_request, foreign_problem, no_document_problem
from xds_hub.repository.store import StoredDocument, find_documents
from xds_hub.repository.sweep import discard_blobs
from xds_hub.soap.types import SoapRequest, SoapResponse
from xds_hub.storage.db import write_transaction
from xds_hub.storage.schema import repository_document

if TYPE_CHECKING:
    from xds_hub.config import Settings
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.repository.iti86")

_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class RemovalOutcome:
    """What :func:`remove_documents` did: the documents removed and the problems of the others."""

    requested: int
    removed: tuple[StoredDocument, ...]
    problems: tuple[Problem, ...]
    #: Blobs deleted because nothing references them any more.
    deleted_blobs: tuple[str, ...] = ()

    @property
    def status(self) -> ResponseStatus:
        if not self.removed:
            return ResponseStatus.FAILURE
        if self.problems or len(self.removed) < self.requested:
            return ResponseStatus.PARTIAL_SUCCESS
        return ResponseStatus.SUCCESS


def _x(local: str) -> str:
    return ns.qn(ns.XDSB, local)


def parse_remove_documents_request(body: etree._Element) -> list[DocumentRequest]:
    """The xdsb:DocumentRequests of an rmd:RemoveDocumentsRequest, duplicates removed; SoapFault
    when the body is not one (wrong element, a DocumentRequest without RepositoryUniqueId or
    DocumentUniqueId, no DocumentRequest)."""
    if body.tag != ns.qn(ns.RMD, "RemoveDocumentsRequest"):
        raise SoapFault(FaultCode.SENDER, f"expected rmd:RemoveDocumentsRequest, got {body.tag}")
    found: dict[tuple[str, str], DocumentRequest] = {}
    for elem in body:
        if not isinstance(elem.tag, str):
            continue
        if elem.tag != _x("DocumentRequest"):
            raise SoapFault(FaultCode.SENDER, f"unexpected element {elem.tag} in rmd:RemoveDocumentsRequest")
        req = document_request(elem)
        found.setdefault((req.repository_unique_id, req.document_unique_id), req)
    if not found:
        raise SoapFault(FaultCode.SENDER, "rmd:RemoveDocumentsRequest has no xdsb:DocumentRequest")
    return list(found.values())


def render_remove_documents_request(requests: Sequence[DocumentRequest]) -> etree._Element:
    """rmd:RemoveDocumentsRequest (ITI TF-2 3.86.4.1.2) for ``requests`` (a Document Administrator's)."""
    root = etree.Element(ns.qn(ns.RMD, "RemoveDocumentsRequest"), nsmap={"rmd": ns.RMD, "xdsb": ns.XDSB})
    for req in requests:
        elem = etree.SubElement(root, _x("DocumentRequest"))
        if req.home_community_id:
            etree.SubElement(elem, _x("HomeCommunityId")).text = req.home_community_id
        etree.SubElement(elem, _x("RepositoryUniqueId")).text = req.repository_unique_id
        etree.SubElement(elem, _x("DocumentUniqueId")).text = req.document_unique_id
    return root


def _delete_rows(stores: Stores, wanted: Sequence[DocumentRequest]) -> list[StoredDocument]:
    """Delete the rows of the documents of ``wanted`` that the repository holds; returns them."""
    t = repository_document
    with write_transaction(stores.engine) as conn:
        held = find_documents(conn, (r.document_unique_id for r in wanted))
        removed = [
            doc
            for r in wanted
            if (doc := held.get(r.document_unique_id)) is not None
            and doc.repository_unique_id == r.repository_unique_id
        ]
        ids = [d.unique_id for d in removed]
        for start in range(0, len(ids), _IN_CHUNK):
            conn.execute(delete(t).where(t.c.unique_id.in_(ids[start : start + _IN_CHUNK])))
    return removed


def remove_documents(
    requests: Sequence[DocumentRequest], stores: Stores, settings: Settings
) -> RemovalOutcome:
    """Remove the documents of ``requests`` from the repository (ITI TF-2 3.86.4.1.3).

    Problems come in the order of the requests.
    """
    refused: dict[int, Problem] = {}
    wanted: list[DocumentRequest] = []
    for index, req in enumerate(requests):
        problem = foreign_problem(req, settings)
        if problem is None:
            wanted.append(req)
        else:
            refused[index] = problem
    removed: list[StoredDocument] = []
    if wanted:
        with database_errors(
            log,
            "ITI-86",
            "the repository cannot remove documents now; please retry later",
            "the repository could not remove documents",
            actor="repository",
        ):
            removed = _delete_rows(stores, wanted)
    gone = {d.unique_id for d in removed}
    for index, req in enumerate(requests):
        if index not in refused and req.document_unique_id not in gone:
            refused[index] = no_document_problem(req)
    problems = [refused[i] for i in sorted(refused)]
    deleted: list[str] = []
    if removed:
        try:
            deleted = discard_blobs(stores, [d.blob_key for d in removed])
        except Exception:  # the rows are gone; the sweep deletes the orphans later
            log.exception("ITI-86: blobs of removed documents not deleted yet")
    return RemovalOutcome(len(requests), tuple(removed), tuple(problems), tuple(deleted))


def handle(request: SoapRequest, stores: Stores, settings: Settings) -> SoapResponse:
    """ITI-86: remove the documents named by ``request``; answer rs:RegistryResponse."""
    authorize_admin(request, settings, stores, "ITI-86")
    requests = parse_remove_documents_request(request.body)
    try:
        outcome = remove_documents(requests, stores, settings)
        status, problems = outcome.status, outcome.problems
    except XdsError as exc:
        status, problems = ResponseStatus.FAILURE, exc.problems
    except Exception:
        log.exception("ITI-86 failed unexpectedly")
        status = ResponseStatus.FAILURE
        problems = (REPOSITORY_INTERNAL_ERROR,)
    else:
        log.info(
            "ITI-86 removed",
            extra={
                "removed": len(outcome.removed),
                "refused": len(outcome.problems),
                "blobs_deleted": len(outcome.deleted_blobs),
            },
        )
    return SoapResponse(action=SoapAction.ITI86_RESPONSE, body=render_registry_response(status, problems))
