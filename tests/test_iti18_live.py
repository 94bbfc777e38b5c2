"""ITI-18 Registry Stored Query against a running hub: real SOAP 1.2 requests over HTTP, on SQLite
and PostgreSQL (the ``hub`` fixture); requests and responses checked against the official query.xsd.
Documents are registered first with real ITI-42 requests (the hub's own client).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
import requests
from lxml import etree

from tests.hubproc import Hub
from tests.iti18_data import APPROVED, q, ql, request_xml
from tests.oracle import SAMPLES, assert_valid, sample_paths
from tests.test_registry_support import a_folder, document, member, new_pid, package
from xds_hub import ns
from xds_hub.client.soap import build_envelope
from xds_hub.client.xds import XdsClient
from xds_hub.domain.metadata import DocumentEntry, Folder, ObjectRef
from xds_hub.domain.vocabulary import ResponseStatus, SoapAction, StoredQuery
from xds_hub.ebxml.parse import parse_registry_object_list

SQ = StoredQuery
OBJECT_LIST = ns.qn(ns.RIM, "RegistryObjectList")


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
    def errors(self) -> list[str]:
        return [
            e.get("errorCode", "")
            for e in self.body.iterfind(f"{{{ns.RS}}}RegistryErrorList/{{{ns.RS}}}RegistryError")
        ]

    def objects(self) -> list[object]:
        found = self.body.find(OBJECT_LIST)
        return list(parse_registry_object_list(found)) if found is not None and len(found) else []


def post_iti18(hub: Hub, body: etree._Element) -> Reply:
    assert_valid("query.xsd", body)
    message_id = f"urn:uuid:{uuid.uuid4()}"
    url = hub.url("/xds/registry")
    action = SoapAction.ITI18.value
    response = requests.post(
        url,
        data=build_envelope(action, url, body, message_id),
        headers={"Content-Type": f'application/soap+xml; charset=UTF-8; action="{action}"'},
        timeout=60,
    )
    env = etree.fromstring(response.content)
    header, soap_body = env.find(ns.qn(ns.SOAP12, "Header")), env.find(ns.qn(ns.SOAP12, "Body"))
    assert header is not None and soap_body is not None
    return Reply(
        response.status_code,
        header.findtext(ns.qn(ns.WSA, "Action")),
        header.findtext(ns.qn(ns.WSA, "RelatesTo")),
        soap_body[0],
    )


@dataclass
class Registered:
    pid: str
    docs: tuple[DocumentEntry, ...]
    folder: Folder
    member_id: str


@pytest.fixture(scope="module")
def registered(hub: Hub) -> Registered:
    pid = new_pid()
    hub.add_patient(pid)
    d1, d2 = document(pid), document(pid)
    fol = a_folder(pid)
    link = member(fol.entry_uuid, d1.entry_uuid)
    with XdsClient(registry_url=hub.url("/xds/registry")) as client:
        result = client.register(package(pid, (d1, d2), (fol,), extra=(link,)))
    assert result.ok, result.errors
    return Registered(pid, (d1, d2), fol, link.entry_uuid)


def home_of(hub: Hub) -> str:
    return hub.settings.domain.home_community_id


def test_iti18_live_find_documents_leaf_class(hub: Hub, registered: Registered) -> None:
    slots = [("$XDSDocumentEntryPatientId", q(registered.pid)), ("$XDSDocumentEntryStatus", ql(APPROVED))]
    reply = post_iti18(hub, request_xml(SQ.FIND_DOCUMENTS, slots))
    assert (reply.http_status, reply.action, reply.status) == (
        200,
        SoapAction.ITI18_RESPONSE,
        ResponseStatus.SUCCESS,
    )
    assert reply.relates_to
    assert_valid("query.xsd", reply.body)
    docs = {o.entry_uuid: o for o in reply.objects() if isinstance(o, DocumentEntry)}
    assert set(docs) == {d.entry_uuid for d in registered.docs}
    first = docs[registered.docs[0].entry_uuid]
    assert first.home_community_id == home_of(hub)
    assert first.unique_id == registered.docs[0].unique_id
    assert first.event_codes == registered.docs[0].event_codes


def test_iti18_live_find_documents_object_ref(hub: Hub, registered: Registered) -> None:
    slots = [
        ("$XDSDocumentEntryPatientId", q(registered.pid)),
        ("$XDSDocumentEntryStatus", ql(APPROVED)),
        ("$XDSDocumentEntryClassCode", ql("REPORTS^^1.3.6.1.4.1.19376.1.2.6.1")),
        ("$XDSDocumentEntryCreationTimeFrom", "2024"),
        ("$XDSDocumentEntryCreationTimeTo", "2025"),
    ]
    reply = post_iti18(hub, request_xml(SQ.FIND_DOCUMENTS, slots, "ObjectRef"))
    assert reply.status == ResponseStatus.SUCCESS
    assert_valid("query.xsd", reply.body)
    refs = reply.objects()
    assert all(isinstance(r, ObjectRef) for r in refs)
    assert {r.id for r in refs if isinstance(r, ObjectRef)} == {d.entry_uuid for d in registered.docs}


def test_iti18_live_get_folder_and_contents(hub: Hub, registered: Registered) -> None:
    reply = post_iti18(
        hub, request_xml(SQ.GET_FOLDER_AND_CONTENTS, [("$XDSFolderUniqueId", q(registered.folder.unique_id))])
    )
    assert reply.status == ResponseStatus.SUCCESS
    assert_valid("query.xsd", reply.body)
    got = {getattr(o, "entry_uuid", None) for o in reply.objects()}
    assert got == {registered.folder.entry_uuid, registered.docs[0].entry_uuid, registered.member_id}


def test_iti18_live_the_hub_client_reads_the_answer(hub: Hub, registered: Registered) -> None:
    with XdsClient(registry_url=hub.url("/xds/registry")) as client:
        result = client.find_documents(registered.pid)
    assert result.ok
    assert {d.entry_uuid for d in result.documents} == {d.entry_uuid for d in registered.docs}


@pytest.mark.parametrize(
    ("query", "slots", "code"),
    [
        ("urn:uuid:00000000-0000-0000-0000-000000000000", [], "XDSUnknownStoredQuery"),
        (SQ.FIND_DOCUMENTS, [("$XDSDocumentEntryStatus", ql(APPROVED))], "XDSStoredQueryMissingParam"),
        (
            SQ.GET_FOLDERS,
            [("$XDSFolderEntryUUID", q("urn:uuid:1")), ("$XDSFolderUniqueId", q("1"))],
            "XDSStoredQueryParamNumber",
        ),
        (SQ.GET_ASSOCIATIONS, [("$uuid", "('urn:uuid:1'")], "XDSRegistryMetadataError"),
        (
            SQ.GET_DOCUMENTS,
            [("$XDSDocumentEntryUniqueId", q("1")), ("$homeCommunityId", q("urn:oid:9"))],
            "XDSUnknownCommunity",
        ),
    ],
)
def test_iti18_live_failures(hub: Hub, query: str, slots: list[tuple[str, str]], code: str) -> None:
    reply = post_iti18(hub, request_xml(query, slots))
    assert (reply.http_status, reply.status, reply.errors) == (200, ResponseStatus.FAILURE, [code])
    assert_valid("query.xsd", reply.body)


@pytest.mark.skipif(not sample_paths("ebrim30", "iti18request.xml"), reason="oracle samples not available")
def test_iti18_live_accepts_the_public_sample_request(hub: Hub) -> None:
    body = etree.parse(str(SAMPLES / "ebrim30" / "iti18request.xml")).getroot()
    reply = post_iti18(hub, body)
    assert (reply.http_status, reply.status, reply.errors) == (200, ResponseStatus.SUCCESS, [])
    assert_valid("query.xsd", reply.body)


def test_iti18_live_other_body_is_a_soap_fault(hub: Hub) -> None:
    url = hub.url("/xds/registry")
    action = SoapAction.ITI18.value
    body = etree.Element(ns.qn(ns.LCM, "SubmitObjectsRequest"))
    response = requests.post(
        url,
        data=build_envelope(action, url, body),
        headers={"Content-Type": f'application/soap+xml; charset=UTF-8; action="{action}"'},
        timeout=30,
    )
    assert response.status_code == 400
    assert etree.fromstring(response.content).find(f"{{{ns.SOAP12}}}Body/{{{ns.SOAP12}}}Fault") is not None
