"""Builders and HTTP helpers for the Metadata Update / Remove Metadata / Remove Documents tests
(ITI-57, ITI-62, ITI-86).  No tests here; test_iti57_*, test_iti62_* and test_iti86_* import it.

Requests are built with the metadata layer (xds_hub.ebxml.render), sent as real SOAP 1.2 messages to
the ``hub`` fixture, and every request and response is checked against the official schemas
(lcm.xsd, rs.xsd; the rmd request against the official xdsb RetrieveDocumentSetRequestType).
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from lxml import etree
from sqlalchemy import Engine, func, select

from tests.hubproc import Hub
from tests.oracle import SCHEMAS, assert_valid, oracle_available
from tests.repository_support import content_exists, hub_stores
from tests.test_registry_support import document, new_pid, new_urn, package, submission_set
from xds_hub import ns
from xds_hub.client.soap import build_envelope
from xds_hub.client.xds import QueryResult, XdsClient
from xds_hub.domain.metadata import Association, DocumentEntry, Folder, Slot, Submission, SubmissionSet
from xds_hub.domain.vocabulary import (
    AssociationType,
    MetadataUpdateSlot,
    SoapAction,
    Status,
    StoredQuery,
    SubmissionSetStatus,
)
from xds_hub.ebxml.render import render_remove_objects_request, render_submit_objects_request
from xds_hub.repository import inline
from xds_hub.storage import schema
from xds_hub.storage.db import make_engine, read_transaction

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
APPROVED, DEPRECATED = Status.APPROVED, Status.DEPRECATED

_ENGINES: dict[str, Engine] = {}


@dataclass
class Reply:
    http_status: int
    action: str | None
    relates_to: str | None
    body: etree._Element

    @property
    def status(self) -> str:
        return self.body.get("status", "")

    @property
    def codes(self) -> list[str]:
        return [
            e.get("errorCode", "")
            for e in self.body.iterfind(f"{{{ns.RS}}}RegistryErrorList/{{{ns.RS}}}RegistryError")
        ]

    @property
    def locations(self) -> list[str]:
        return [
            e.get("location", "")
            for e in self.body.iterfind(f"{{{ns.RS}}}RegistryErrorList/{{{ns.RS}}}RegistryError")
        ]

    @property
    def outcome(self) -> tuple[str, list[str]]:
        return self.status, self.codes


def post(hub: Hub, path: str, action: str, body: etree._Element) -> Reply:
    """POST one SOAP 1.2 request; the reply's body child (a RegistryResponse is checked against rs.xsd)."""
    message_id = f"urn:uuid:{uuid.uuid4()}"
    url = hub.url(path)
    response = requests.post(
        url,
        data=build_envelope(action, url, body, message_id),
        headers={"Content-Type": f'application/soap+xml; charset=UTF-8; action="{action}"'},
        timeout=120,
    )
    env = etree.fromstring(response.content)
    header, soap_body = env.find(ns.qn(ns.SOAP12, "Header")), env.find(ns.qn(ns.SOAP12, "Body"))
    assert header is not None and soap_body is not None
    reply = Reply(
        response.status_code,
        header.findtext(ns.qn(ns.WSA, "Action")),
        header.findtext(ns.qn(ns.WSA, "RelatesTo")),
        soap_body[0],
    )
    if reply.body.tag == ns.qn(ns.RS, "RegistryResponse"):
        assert reply.http_status == 200
        assert reply.relates_to == message_id
        assert_valid("rs.xsd", reply.body)
    return reply


# ---------------------------------------------------------------------------------------------
# ITI-57 Update Document Set
# ---------------------------------------------------------------------------------------------


def post_iti57(hub: Hub, sub: Submission) -> Reply:
    body = render_submit_objects_request(sub)
    assert_valid("lcm.xsd", body)
    reply = post(hub, "/xds/registry", SoapAction.ITI57, body)
    if reply.http_status == 200:
        assert reply.action == SoapAction.ITI57_RESPONSE
    return reply


def new_version(obj: DocumentEntry | Folder, **changes: Any) -> Any:
    """A new version of the registered ``obj`` (its first version): a new id, lid = the logicalID."""
    lid = obj.logical_id or obj.entry_uuid
    return dataclasses.replace(obj, entry_uuid=new_urn(), logical_id=lid, **changes)


def version_member(
    ss_id: str,
    target: str,
    previous: str | None = "1",
    *,
    status: str | None = SubmissionSetStatus.ORIGINAL.value,
    propagation: str | None = None,
) -> Association:
    """HasMember SubmissionSet -> a new version, with PreviousVersion (and AssociationPropagation)."""
    slots = []
    if previous is not None:
        slots.append(Slot(MetadataUpdateSlot.PREVIOUS_VERSION, (previous,)))
    if propagation is not None:
        slots.append(Slot(MetadataUpdateSlot.ASSOCIATION_PROPAGATION, (propagation,)))
    return Association(
        new_urn(),
        AssociationType.HAS_MEMBER,
        ss_id,
        target,
        submission_set_status=status,
        extra_slots=tuple(slots),
    )


def status_update(ss_id: str, target: str, original: str, new: str) -> Association:
    """UpdateAvailabilityStatus SubmissionSet -> ``target`` (ITI TF-2 3.57.4.1.3.3.2)."""
    return Association(
        new_urn(),
        AssociationType.UPDATE_AVAILABILITY_STATUS,
        ss_id,
        target,
        extra_slots=(
            Slot(MetadataUpdateSlot.ORIGINAL_STATUS, (str(original),)),
            Slot(MetadataUpdateSlot.NEW_STATUS, (str(new),)),
        ),
    )


def submitted(ss_id: str, assoc: Association) -> tuple[Association, Association]:
    """``assoc`` and the SubmitAssociation that submits it."""
    return assoc, Association(new_urn(), AssociationType.SUBMIT_ASSOCIATION, ss_id, assoc.entry_uuid)


def update(
    pid: str,
    versions: Sequence[tuple[DocumentEntry | Folder, str]] = (),
    extra: Iterable[Association] = (),
    *,
    ss: SubmissionSet | None = None,
    propagation: str | None = None,
) -> Submission:
    """An ITI-57 request: a SubmissionSet, new versions (with their PreviousVersion) and ``extra``."""
    ss = ss or submission_set(pid)
    docs = tuple(v for v, _ in versions if isinstance(v, DocumentEntry))
    folders = tuple(v for v, _ in versions if isinstance(v, Folder))
    members = tuple(
        version_member(
            ss.entry_uuid,
            v.entry_uuid,
            previous,
            status="Original" if isinstance(v, DocumentEntry) else None,
            propagation=propagation,
        )
        for v, previous in versions
    )
    return Submission(ss, docs, folders, (*members, *extra))


# ---------------------------------------------------------------------------------------------
# ITI-62 Delete Document Set
# ---------------------------------------------------------------------------------------------


def post_iti62(hub: Hub, ids: Iterable[str]) -> Reply:
    return post_iti62_body(hub, render_remove_objects_request(list(ids)))


def post_iti62_body(hub: Hub, body: etree._Element) -> Reply:
    assert_valid("lcm.xsd", body)
    reply = post(hub, "/xds/registry", SoapAction.ITI62, body)
    if reply.http_status == 200:
        assert reply.action == SoapAction.ITI62_RESPONSE
    return reply


# ---------------------------------------------------------------------------------------------
# ITI-86 Remove Documents: the request checked against the official xdsb type it uses
# ---------------------------------------------------------------------------------------------


class _XmlXsdResolver(etree.Resolver):
    def resolve(self, system_url: str | None, public_id: str | None, context: object) -> object:  # type: ignore[override]
        if system_url == "http://www.w3.org/2001/xml.xsd":
            return self.resolve_filename(str(SCHEMAS / "w3c" / "xml.xsd"), context)  # type: ignore[attr-defined]
        return None


_RMD: list[etree.XMLSchema] = []


def rmd_schema() -> etree.XMLSchema:
    """rmd:RemoveDocumentsRequest as the IHE RMD schema declares it: an element of the official
    ``xdsb:RetrieveDocumentSetRequestType`` (compiled against the oracle's XDS.b_DocumentRepository.xsd)."""
    if not _RMD:
        xdsb = (SCHEMAS / "schema" / "IHE" / "XDS.b_DocumentRepository.xsd").resolve().as_uri()
        text = f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xdsb="{ns.XDSB}"
            targetNamespace="{ns.RMD}" elementFormDefault="qualified">
          <xs:import namespace="{ns.XDSB}" schemaLocation="{xdsb}"/>
          <xs:element name="RemoveDocumentsRequest" type="xdsb:RetrieveDocumentSetRequestType"/>
        </xs:schema>"""
        parser = etree.XMLParser(no_network=True)
        parser.resolvers.add(_XmlXsdResolver())
        _RMD.append(etree.XMLSchema(etree.fromstring(text.encode(), parser, base_url=str(SCHEMAS) + "/")))
    return _RMD[0]


def assert_valid_rmd(element: etree._Element) -> None:
    assert oracle_available()
    copy = etree.fromstring(etree.tostring(element))
    schema = rmd_schema()
    assert schema.validate(copy), schema.error_log


def post_iti86(hub: Hub, body: etree._Element, *, validate: bool = True) -> Reply:
    if validate:
        assert_valid_rmd(body)
    reply = post(hub, "/xds/repository", SoapAction.ITI86, body)
    if reply.http_status == 200:
        assert reply.action == SoapAction.ITI86_RESPONSE
    return reply


# ---------------------------------------------------------------------------------------------
# The hub's state
# ---------------------------------------------------------------------------------------------


def client(hub: Hub) -> XdsClient:
    return XdsClient(registry_url=hub.url("/xds/registry"), repository_url=hub.url("/xds/repository"))


def register(hub: Hub, sub: Submission) -> Submission:
    with client(hub) as c:
        result = c.register(sub)
    assert result.ok, result.errors
    return sub


def patient(hub: Hub) -> str:
    pid = new_pid()
    hub.add_patient(pid)
    return pid


def registered_document(hub: Hub, pid: str, **changes: Any) -> DocumentEntry:
    doc = document(pid, **changes)
    register(hub, package(pid, (doc,)))
    return doc


def query(hub: Hub, sq: StoredQuery, params: dict[str, Any]) -> QueryResult:
    with client(hub) as c:
        result = c.query(sq, params)
    assert result.ok, result.errors
    return result


def get_documents(hub: Hub, **params: Any) -> dict[str, DocumentEntry]:
    """GetDocuments, e.g. ``get_documents(hub, uid=[...])``, ``lid=[...], level=2``, ``uuid=[...]``."""
    names = {"uuid": "$XDSDocumentEntryEntryUUID", "uid": "$XDSDocumentEntryUniqueId"}
    names |= {"lid": "$XDSDocumentEntryLogicalID", "level": "$MetadataLevel"}
    result = query(hub, StoredQuery.GET_DOCUMENTS, {names[k]: v for k, v in params.items()})
    return {d.entry_uuid: d for d in result.documents}


def find_documents(hub: Hub, pid: str, statuses: Sequence[Status] = (APPROVED,)) -> dict[str, DocumentEntry]:
    with client(hub) as c:
        result = c.find_documents(pid, statuses)
    assert result.ok, result.errors
    return {d.entry_uuid: d for d in result.documents}


def folder_contents(hub: Hub, folder_id: str) -> tuple[Folder | None, set[str]]:
    """GetFolderAndContents: the Folder (None if not found) and its DocumentEntry ids."""
    result = query(hub, StoredQuery.GET_FOLDER_AND_CONTENTS, {"$XDSFolderEntryUUID": folder_id})
    folders = [o for o in result.objects if isinstance(o, Folder)]
    return (folders[0] if folders else None), {d.entry_uuid for d in result.documents}


def engine_of(hub: Hub) -> Engine:
    if hub.db_url not in _ENGINES:
        _ENGINES[hub.db_url] = make_engine(hub.db_url)
    return _ENGINES[hub.db_url]


_INDEX_TABLES = (
    (schema.registry_object, "id"),
    (schema.document_entry, "id"),
    (schema.submission_set, "id"),
    (schema.folder, "id"),
    (schema.association, "id"),
    (schema.object_code, "object_id"),
    (schema.object_author, "object_id"),
    (schema.object_reference_id, "object_id"),
)


def rows_of(hub: Hub, ids: Iterable[str]) -> dict[str, int]:
    """How many rows of each registry table belong to the objects ``ids`` (tables with none left out)."""
    wanted = list(ids)
    counts: dict[str, int] = {}
    with read_transaction(engine_of(hub)) as conn:
        for table, column in _INDEX_TABLES:
            n = conn.execute(select(func.count()).select_from(table).where(table.c[column].in_(wanted)))
            if (count := int(n.scalar_one())) > 0:
                counts[table.name] = count
    return counts


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def blob_file(hub: Hub, content: bytes) -> Path:
    """Where the hub's filesystem blob store keeps ``content`` (content-addressed by SHA-256)."""
    key = hashlib.sha256(content).hexdigest()
    return hub.data / "blobs" / key[0:2] / key[2:4] / key


def content_kept(hub: Hub, content: bytes) -> bool:
    """Whether the hub keeps ``content``: as a blob file, or (a small document) in its database."""
    if blob_file(hub, content).is_file():
        return True
    stores = hub_stores(hub)
    try:
        return content_exists(stores, inline.PREFIX + hashlib.sha256(content).hexdigest())
    finally:
        stores.close()
