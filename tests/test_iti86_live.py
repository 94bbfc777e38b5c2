"""ITI-86 Remove Documents against a running hub: real SOAP 1.2 requests over HTTP on SQLite and
PostgreSQL.  The rmd:RemoveDocumentsRequest is checked against the official xdsb type the RMD schema
gives it (no official rmd XSD is at hand), responses against rs.xsd; documents are stored with real
ITI-41 requests first."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.hubproc import Hub
from tests.repository_support import submission_for
from tests.test_iti57_support import (
    FAILURE,
    PARTIAL,
    SUCCESS,
    assert_valid_rmd,
    client,
    content_kept,
    get_documents,
    patient,
    post,
    post_iti86,
)
from xds_hub import ns
from xds_hub.client.xds import DocumentRequest as RetrieveRequest
from xds_hub.domain.metadata import Submission
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.errors import SoapFault
from xds_hub.repository.iti43 import DocumentRequest
from xds_hub.repository.iti86 import parse_remove_documents_request, render_remove_documents_request


@pytest.fixture
def pid(hub: Hub) -> str:
    return patient(hub)


def repository(hub: Hub) -> str:
    return hub.settings.domain.repository_unique_id


def provide(hub: Hub, pid: str, *contents: bytes) -> Submission:
    sub, data = submission_for(pid, list(contents))
    with client(hub) as c:
        result = c.provide_and_register(sub, data)
    assert result.ok, result.errors
    return sub


def removal(hub: Hub, *unique_ids: str, repo: str | None = None, home: str | None = None) -> etree._Element:
    return render_remove_documents_request(
        [DocumentRequest(repo or repository(hub), uid, home) for uid in unique_ids]
    )


def retrieve_codes(hub: Hub, unique_id: str, tmp: Path) -> tuple[bool, list[str]]:
    with client(hub) as c:
        result = c.retrieve([RetrieveRequest(repository(hub), unique_id)], tmp)
    return result.ok, [e.code for e in result.errors]


def test_iti86_removes_a_document_and_keeps_its_metadata(hub: Hub, pid: str, tmp_path: Path) -> None:
    content = f"remove me {uuid.uuid4()}".encode()
    sub = provide(hub, pid, content)
    doc = sub.documents[0]
    assert retrieve_codes(hub, doc.unique_id, tmp_path)[0]
    assert content_kept(hub, content)

    reply = post_iti86(hub, removal(hub, doc.unique_id))

    assert (reply.http_status, reply.action, reply.outcome) == (200, SoapAction.ITI86_RESPONSE, (SUCCESS, []))
    assert retrieve_codes(hub, doc.unique_id, tmp_path) == (False, ["XDSDocumentUniqueIdError"])
    assert not content_kept(hub, content)
    assert [d.unique_id for d in get_documents(hub, uid=[doc.unique_id]).values()] == [doc.unique_id]


def test_iti86_unknown_document(hub: Hub) -> None:
    reply = post_iti86(hub, removal(hub, f"2.25.{uuid.uuid4().int}"))
    assert reply.outcome == (FAILURE, ["XDSDocumentUniqueIdError"])


def test_iti86_unknown_repository_and_community(hub: Hub, pid: str) -> None:
    doc = provide(hub, pid, b"stays here").documents[0]
    assert post_iti86(hub, removal(hub, doc.unique_id, repo="1.2.3.999")).outcome == (
        FAILURE,
        ["XDSUnknownRepositoryId"],
    )
    assert post_iti86(hub, removal(hub, doc.unique_id, home="urn:oid:1.2.3.999")).outcome == (
        FAILURE,
        ["XDSUnknownCommunity"],
    )


def test_iti86_partial_success(hub: Hub, pid: str, tmp_path: Path) -> None:
    sub = provide(hub, pid, f"a {uuid.uuid4()}".encode(), f"b {uuid.uuid4()}".encode())
    first, second = (d.unique_id for d in sub.documents)
    missing = f"2.25.{uuid.uuid4().int}"
    body = render_remove_documents_request(
        [
            DocumentRequest(repository(hub), first),
            DocumentRequest(repository(hub), missing),
            DocumentRequest("1.2.3.999", second),
        ]
    )
    reply = post_iti86(hub, body)
    assert reply.outcome == (PARTIAL, ["XDSDocumentUniqueIdError", "XDSUnknownRepositoryId"])
    assert reply.locations == [missing, second]
    assert not retrieve_codes(hub, first, tmp_path)[0]
    assert retrieve_codes(hub, second, tmp_path)[0]


def test_iti86_keeps_a_blob_another_document_shares(hub: Hub, pid: str, tmp_path: Path) -> None:
    content = f"identical octets {uuid.uuid4()}".encode()
    first = provide(hub, pid, content).documents[0]
    second = provide(hub, pid, content).documents[0]
    assert post_iti86(hub, removal(hub, first.unique_id)).outcome == (SUCCESS, [])
    assert content_kept(hub, content)
    assert retrieve_codes(hub, second.unique_id, tmp_path) == (True, [])
    assert post_iti86(hub, removal(hub, second.unique_id)).outcome == (SUCCESS, [])
    assert not content_kept(hub, content)


def test_iti86_twice_is_an_error_the_second_time(hub: Hub, pid: str) -> None:
    doc = provide(hub, pid, f"once {uuid.uuid4()}".encode()).documents[0]
    assert post_iti86(hub, removal(hub, doc.unique_id, doc.unique_id)).outcome == (SUCCESS, [])
    assert post_iti86(hub, removal(hub, doc.unique_id)).outcome == (FAILURE, ["XDSDocumentUniqueIdError"])


def test_iti86_fault_for_a_body_that_is_not_a_remove_request(hub: Hub) -> None:
    body = etree.Element(ns.qn(ns.XDSB, "RetrieveDocumentSetRequest"))
    reply = post_iti86(hub, body, validate=False)
    assert reply.http_status == 400 and reply.body.tag == ns.qn(ns.SOAP12, "Fault")
    empty = etree.Element(ns.qn(ns.RMD, "RemoveDocumentsRequest"))
    reply = post(hub, "/xds/repository", SoapAction.ITI86, empty)
    assert reply.http_status == 400


def test_iti86_request_has_the_official_structure() -> None:
    body = render_remove_documents_request([DocumentRequest("1.2.3", "1.2.3.4", "urn:oid:1.2")])
    assert_valid_rmd(body)
    order = [c.tag for c in body[0]]
    assert order == [ns.qn(ns.XDSB, n) for n in ("HomeCommunityId", "RepositoryUniqueId", "DocumentUniqueId")]
    assert parse_remove_documents_request(body) == [DocumentRequest("1.2.3", "1.2.3.4", "urn:oid:1.2")]


_names = st.sampled_from(
    [
        ns.qn(ns.XDSB, "DocumentRequest"),
        ns.qn(ns.XDSB, "RepositoryUniqueId"),
        ns.qn(ns.XDSB, "DocumentUniqueId"),
        ns.qn(ns.XDSB, "HomeCommunityId"),
        ns.qn(ns.RMD, "DocumentRequest"),
        "x",
    ]
)


@st.composite
def _trees(draw: st.DrawFn) -> etree._Element:
    root = etree.Element(draw(st.sampled_from([ns.qn(ns.RMD, "RemoveDocumentsRequest"), "other"])))
    for _ in range(draw(st.integers(0, 3))):
        child = etree.SubElement(root, draw(_names))
        for _ in range(draw(st.integers(0, 4))):
            etree.SubElement(child, draw(_names)).text = draw(st.sampled_from(["", " 1.2.3 ", "4.5", None]))
    return root


@settings(max_examples=200, deadline=None)
@given(_trees())
def test_iti86_parser_returns_requests_or_a_sender_fault(tree: etree._Element) -> None:
    try:
        requests = parse_remove_documents_request(tree)
    except SoapFault:
        return
    assert requests and all(r.repository_unique_id and r.document_unique_id for r in requests)
