"""ITI-41 Provide and Register Document Set-b, Document Repository side (ITI TF-2 3.41.4.1.3).

Each xdsb:Document is matched to its DocumentEntry by id (an entry without a document is
XDSMissingDocument, a document without an entry XDSMissingDocumentMetadata).  MTOM parts are
already read when the handler runs (small ones kept in memory for the database, the others in
the blob store: :mod:`xds_hub.repository.inline`); inline base64 documents are decoded the same
way, chunk by chunk.  The SHA-1 and size are computed while the octets stream in; a hash or size
supplied by the Document Source that disagrees is XDSRepositoryMetadataError (3.41.4.1.3.2).
The repository then sets repositoryUniqueId, hash and size on every entry and registers the
submission (the ITI-42 of 3.41.4.1.3.2, done in process) in the same database transaction that
records its documents, so either everything is stored or nothing is (that transaction may also
carry concurrent submissions, each in its own savepoint: see :mod:`xds_hub.registry.group_commit`).

A DocumentEntry of an XDS-I.b manifest (RAD-68: mimeType application/dicom, formatCode
1.2.840.10008.5.1.4.1.1.88.59) has its KOS checked against its metadata by
:func:`xds_hub.imaging.kos.check_kos_against_metadata` (the code that validates the public KOS
sample); each disagreement is XDSRepositoryMetadataError and nothing is registered.

On failure nothing is registered and the blobs already written are left alone: the store is
content-addressed, so a concurrent submission of the same octets may share a blob that is not yet
referenced by a committed row; deleting it would make that submission fail.  Unreferenced blobs
are collected by the orphan sweep (:mod:`xds_hub.repository.sweep`), whose grace period protects
writes still on their way to a commit.

:func:`provide_and_register` is the same path for callers inside the hub that already stored the
document (the Imaging Document Source's RAD-68 KOS publication).
"""

from __future__ import annotations

import binascii
import io
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, BinaryIO

from lxml import etree
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from xds_hub import ns
from xds_hub.domain.evolve import evolve
from xds_hub.domain.metadata import DocumentEntry, Submission
from xds_hub.domain.validate import validate_submission
from xds_hub.domain.vocabulary import KOS_FORMAT_CODE, KOS_FORMAT_SCHEME, SoapAction
from xds_hub.ebxml import wire
from xds_hub.ebxml.parse import parse_provide_and_register
from xds_hub.errors import ErrorCode, FaultCode, ParseError, Problem, SoapFault, XdsError
from xds_hub.log import get_logger
from xds_hub.registry.group_commit import group_commit
from xds_hub.registry.register import (
    PreparedSubmission,
    RegistrationResult,
    prepare_submission,
    register_prepared,
)
from xds_hub.registry.responses import REPOSITORY_INTERNAL_ERROR, registry_response
from xds_hub.repository import inline
from xds_hub.repository.store import StoredDocument, find_documents, insert_with_registration
from xds_hub.repository.sweep import missing_blobs
from xds_hub.security.guard import authorize_submission
from xds_hub.soap.types import SoapRequest, SoapResponse
from xds_hub.storage.ports import BlobInfo, BlobWriter

if TYPE_CHECKING:
    from xds_hub.config import Settings
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.repository.iti41")

#: Base64 characters decoded per step of an inline document (a multiple of 4).
_B64_CHUNK = 4 * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Inline documents
# ---------------------------------------------------------------------------------------------


def decode_base64_into(text: str, writer: BlobWriter, chunk: int = _B64_CHUNK) -> None:
    """Decode base64 ``text`` (whitespace allowed anywhere) into ``writer`` a chunk at a time.

    Raises ParseError for text that is not base64; never builds the decoded document whole.
    """
    carry = ""
    for start in range(0, len(text), chunk):
        piece = carry + "".join(text[start : start + chunk].split())
        cut = len(piece) - len(piece) % 4
        if cut:
            try:
                writer.write(binascii.a2b_base64(piece[:cut], strict_mode=True))
            except (binascii.Error, ValueError) as exc:
                raise ParseError(f"not valid base64: {exc}") from None
        carry = piece[cut:]
    if carry:
        raise ParseError("not valid base64: length is not a multiple of 4")


def _inline_elements(body: etree._Element) -> dict[str, etree._Element]:
    return {
        doc.get("id") or "": doc
        for doc in body.iterchildren(ns.qn(ns.XDSB, "Document"))
        if doc.find(ns.qn(ns.XOP, "Include")) is None
    }


def _store_inline(writers: inline.InlineWriters, elem: etree._Element, doc_id: str) -> BlobInfo:
    writer = writers.writer()
    try:
        decode_base64_into(elem.text or "", writer)
        info = writer.finish()
    except ParseError as exc:
        writer.abort()
        raise XdsError.one(ErrorCode.REPOSITORY_ERROR, f"xdsb:Document {doc_id}: {exc}", doc_id) from None
    except BaseException:
        writer.abort()
        raise
    elem.text = None  # the base64 text is no longer needed; let it go before the commit
    return info


def _gather_contents(
    request: SoapRequest, submission: Submission, stores: Stores, settings: Settings
) -> tuple[dict[str, BlobInfo], list[Problem]]:
    """DocumentEntry id -> stored content for the xdsb:Documents of the request, and the problems met.

    Only documents that have a DocumentEntry are read (the others are reported by
    :func:`attach_contents`).  A document whose xop:Include names no MIME part of the message is
    XDSMissingDocument; inline content that is not base64 is XDSRepositoryError.  Decoded inline
    content is kept for the database up to ``inline_document_bytes``, as MTOM parts are
    (:mod:`xds_hub.repository.inline`).
    """
    entry_ids = {d.entry_uuid for d in submission.documents}
    in_body = _inline_elements(request.body)
    writers = inline.InlineWriters(stores.blobs, settings.inline_document_bytes)
    contents: dict[str, BlobInfo] = {}
    problems: list[Problem] = []
    for doc_id, ref in submission.document_refs.items():
        if doc_id not in entry_ids:
            continue
        if ref.startswith(wire.INLINE_REF_PREFIX):
            elem = in_body.get(doc_id)
            if elem is not None:
                try:
                    contents[doc_id] = _store_inline(writers, elem, doc_id)
                except XdsError as exc:
                    problems.extend(exc.problems)
            continue
        attachment = request.attachments.get(ref)
        if attachment is None:
            problems.append(
                Problem(
                    ErrorCode.MISSING_DOCUMENT,
                    f"xdsb:Document {doc_id} refers to MIME part cid:{ref}, which is not in the message",
                    doc_id,
                )
            )
            continue
        contents[doc_id] = attachment.blob
    return contents, problems


# ---------------------------------------------------------------------------------------------
# The repository's part of the metadata (3.41.4.1.3.2)
# ---------------------------------------------------------------------------------------------


def attach_contents(
    submission: Submission,
    contents: Mapping[str, BlobInfo],
    repository_unique_id: str,
    problems: Iterable[Problem] = (),
) -> Submission:
    """Match contents to DocumentEntries and set repositoryUniqueId, hash and size on each.

    ``contents`` maps DocumentEntry ids to stored blobs; ``submission.document_refs`` (when set)
    names every xdsb:Document of the message.  Raises XdsError with every problem found (plus
    ``problems`` already met): XDSMissingDocument, XDSMissingDocumentMetadata,
    XDSRepositoryMetadataError (supplied hash/size differ from the content),
    XDSRepositoryDuplicateUniqueIdInMessage.
    """
    found = list(problems)
    reported = {p.location for p in found}
    entry_ids = {d.entry_uuid for d in submission.documents}
    for doc_id in dict.fromkeys([*submission.document_refs, *contents]):
        if doc_id not in entry_ids:
            found.append(
                Problem(
                    ErrorCode.MISSING_DOCUMENT_METADATA,
                    f"xdsb:Document {doc_id} has no DocumentEntry (ExtrinsicObject) in the metadata",
                    doc_id,
                )
            )
    seen_unique: set[str] = set()
    documents: list[DocumentEntry] = []
    for entry in submission.documents:
        if entry.unique_id in seen_unique:
            found.append(
                Problem(
                    ErrorCode.REPOSITORY_DUPLICATE_UNIQUE_ID_IN_MESSAGE,
                    f"DocumentEntry uniqueId {entry.unique_id} is used by more than one document",
                    entry.entry_uuid,
                )
            )
        seen_unique.add(entry.unique_id)
        info = contents.get(entry.entry_uuid)
        if info is None:
            if entry.entry_uuid not in reported:
                found.append(
                    Problem(
                        ErrorCode.MISSING_DOCUMENT,
                        f"DocumentEntry {entry.entry_uuid} (uniqueId {entry.unique_id}) has no xdsb:Document",
                        entry.entry_uuid,
                    )
                )
            documents.append(entry)
            continue
        if entry.hash is not None and entry.hash.lower() != info.sha1:
            found.append(
                Problem(
                    ErrorCode.REPOSITORY_METADATA_ERROR,
                    f"DocumentEntry {entry.entry_uuid}: hash {entry.hash} was supplied but the document's "
                    f"SHA-1 is {info.sha1}",
                    entry.entry_uuid,
                )
            )
        if entry.size is not None and entry.size != info.size:
            found.append(
                Problem(
                    ErrorCode.REPOSITORY_METADATA_ERROR,
                    f"DocumentEntry {entry.entry_uuid}: size {entry.size} was supplied but the document "
                    f"has {info.size} bytes",
                    entry.entry_uuid,
                )
            )
        documents.append(
            evolve(entry, hash=info.sha1, size=info.size, repository_unique_id=repository_unique_id)
        )
    if found:
        raise XdsError(found)
    refs = {d: submission.document_refs.get(d, "blob:" + info.key) for d, info in contents.items()}
    return evolve(submission, documents=tuple(documents), document_refs=refs)


def _documents_to_record(
    registered: Submission, by_unique_id: Mapping[str, BlobInfo], repo_id: str
) -> list[StoredDocument]:
    return [
        StoredDocument(
            unique_id=entry.unique_id,
            repository_unique_id=repo_id,
            blob_key=by_unique_id[entry.unique_id].key,
            hash=by_unique_id[entry.unique_id].sha1,
            size=by_unique_id[entry.unique_id].size,
            mime_type=entry.mime_type,
        )
        for entry in registered.documents
        if entry.unique_id in by_unique_id
    ]


def _register_and_record(
    conn: Connection,
    stores: Stores,
    prepared: PreparedSubmission,
    rows: list[StoredDocument],
    contents: Mapping[str, BlobInfo],
) -> RegistrationResult:
    """Register ``prepared`` and record its documents (``rows``; their contents by uniqueId) in the
    repository, in ``conn``'s transaction (the repository's rows go with the registry's: one
    statement on PostgreSQL; the documents kept in the database go in with them)."""
    on_files = (r.blob_key for r in rows if not inline.is_inline(r.blob_key))
    blob_gone = bool(missing_blobs(stores, on_files))
    # The documents kept in the database go in with their repository rows (those inserted).
    extra = None if blob_gone else insert_with_registration(rows, (contents[r.unique_id] for r in rows))
    result = register_prepared(conn, prepared, extra=extra)
    if blob_gone:  # (after the registry's checks, whose errors come first)
        raise XdsError.one(
            ErrorCode.REPOSITORY_ERROR,
            "a document's content was removed while the submission was being stored; please resubmit",
        )
    inserted = {row[0] for row in result.extra_returned}
    held_already = [r for r in rows if r.unique_id not in inserted]
    if held_already:
        # The same document submitted again (ITI TF-3 4.2.4.1, XDSNonIdenticalHash): the registry
        # records a further DocumentEntry and the repository keeps the octets it holds.  Different
        # octets under a held uniqueId (the registry reports it first when it has the entry; this
        # covers an entry deleted by ITI-62 while the repository kept the document) are refused.
        existing = find_documents(conn, (r.unique_id for r in held_already))
        problems = [
            Problem(
                ErrorCode.NON_IDENTICAL_HASH
                if existing[r.unique_id].hash != r.hash
                else ErrorCode.NON_IDENTICAL_SIZE,
                f"the repository already holds a different document with uniqueId {r.unique_id}",
                r.unique_id,
            )
            for r in held_already
            if (existing[r.unique_id].hash, existing[r.unique_id].size) != (r.hash, r.size)
        ]
        if problems:
            raise XdsError(problems)
    return result


def check_manifests(stores: Stores, submission: Submission, contents: Mapping[str, BlobInfo]) -> None:
    """RAD-68 at the Document Repository: check each KOS manifest against its DocumentEntry.

    Raises XdsError with every XDSRepositoryMetadataError found (RAD TF-3 4.68.4.1.3; ITI TF-2
    3.41.4.1.3.2): content that is not a DICOM KOS manifest, a uniqueId that is not its SOP Instance
    UID, a sourcePatientId, accession or Study Instance UID in referenceIdList the KOS disagrees with.
    """
    manifests = [
        e
        for e in submission.documents
        if e.format_code is not None
        and e.format_code.code == KOS_FORMAT_CODE
        and e.format_code.scheme == KOS_FORMAT_SCHEME
        and e.entry_uuid in contents
    ]
    if not manifests:
        return
    from xds_hub.imaging.kos import check_kos_against_metadata  # pydicom: only for manifests

    problems: list[Problem] = []
    for entry in manifests:
        content = contents[entry.entry_uuid]
        if content.data is not None:  # kept for the database (see xds_hub.repository.inline)
            problems.extend(check_kos_against_metadata(io.BytesIO(content.data), entry))
            continue
        with stores.blobs.open(content.key) as stream:
            source: BinaryIO = stream if stream.seekable() else io.BytesIO(stream.read())
            problems.extend(check_kos_against_metadata(source, entry))
    if problems:
        raise XdsError(problems)


def provide_and_register(
    stores: Stores,
    settings: Settings,
    submission: Submission,
    contents: Mapping[str, BlobInfo],
    *,
    problems: Iterable[Problem] = (),
) -> RegistrationResult:
    """Store and register ``submission`` whose documents' contents are already blobs.

    ``contents`` maps each DocumentEntry id (as in ``submission``) to its stored blob;
    ``problems`` are those the caller already met reading the documents.  Returns what the
    registry registered (the submission with its UUIDs, any warnings).  Raises XdsError when
    anything is wrong; then nothing is registered and the blobs stay for the orphan sweep.
    """
    repo_id = settings.domain.repository_unique_id
    try:
        attached = attach_contents(submission, contents, repo_id, problems)
        check_manifests(stores, attached, contents)
        by_unique_id = {
            entry.unique_id: contents[entry.entry_uuid]
            for entry in attached.documents
            if entry.entry_uuid in contents
        }
        validated = validate_submission(attached, settings.domain, for_repository=True)
        # Parsing, validation, the blobs and the rows to insert are done before the writer lock:
        # only the checks and inserts run under it, committed together with those of concurrent
        # submissions (group commit).
        prepared = prepare_submission(validated)
        rows = _documents_to_record(validated, by_unique_id, repo_id)  # (uniqueId, mimeType kept)

        def store(conn: Connection) -> RegistrationResult:
            return _register_and_record(conn, stores, prepared, rows, by_unique_id)

        return group_commit(stores.engine).run(store)
    except IntegrityError as exc:
        log.warning("ITI-41 lost a race on a uniqueId", extra={"error": str(exc.orig)})
        raise XdsError.one(
            ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY,
            "a uniqueId of this submission was registered concurrently",
        ) from None
    except SQLAlchemyError:
        log.exception("ITI-41 database failure")
        raise XdsError.one(
            ErrorCode.REPOSITORY_ERROR, "the repository could not store the submission"
        ) from None


# ---------------------------------------------------------------------------------------------
# The SOAP handler
# ---------------------------------------------------------------------------------------------


def handle(request: SoapRequest, stores: Stores, settings: Settings) -> SoapResponse:
    """ITI-41: store the documents and register their metadata; answer rs:RegistryResponse.

    Blobs of a refused request (and MIME parts no document uses) are left to the orphan sweep.
    """
    try:
        try:
            submission = parse_provide_and_register(request.body)
        except ParseError as exc:
            raise SoapFault(FaultCode.SENDER, f"not a ProvideAndRegisterDocumentSetRequest: {exc}") from None
        authorize_submission(request, submission, settings, stores, "ITI-41")  # sourceId, patients
        contents, problems = _gather_contents(request, submission, stores, settings)
        result = provide_and_register(stores, settings, submission, contents, problems=problems)
    except XdsError as exc:
        log.info("ITI-41 rejected", extra={"codes": sorted({p.code.value for p in exc.problems})})
        return registry_response(SoapAction.ITI41_RESPONSE, exc.problems)
    except SoapFault:
        raise
    except Exception:
        log.exception("ITI-41 failed unexpectedly")
        return registry_response(SoapAction.ITI41_RESPONSE, (REPOSITORY_INTERNAL_ERROR,))
    return registry_response(SoapAction.ITI41_RESPONSE, result.warnings)
