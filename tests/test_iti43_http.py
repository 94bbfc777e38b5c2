"""ITI-43 Retrieve Document Set over real HTTP (SQLite and PostgreSQL hubs): single, multiple,
partial, missing, unknown repository and community, a registered document whose blob vanished,
bytes retrieved == bytes submitted, MTOM responses, and schema validity (ITI TF-2 3.43)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from lxml import etree

from tests.hubproc import Hub
from tests.oracle import assert_valid, oracle_available
from tests.repository_support import hub_patient, lose_content, submission_for
from xds_hub import ns
from xds_hub.client.mtom import MemorySink, PartHeaders, PartSink
from xds_hub.client.soap import SoapEndpoint
from xds_hub.client.xds import DocumentRequest, XdsClient
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.errors import ErrorCode
from xds_hub.repository.store import find_documents
from xds_hub.storage.stores import Stores

REPOSITORY_ID = "1.3.6.1.4.1.21367.13.80.1"
HOME = "urn:oid:1.3.6.1.4.1.21367.13.70.1"


@pytest.fixture
def stored(hub: Hub, store: Stores, client: XdsClient) -> dict[str, bytes]:
    """Three documents submitted for a fresh patient: uniqueId -> bytes."""
    pid = hub_patient(hub, store)
    docs = [b"%PDF-1.4 first", b"second document " * 1000, bytes(range(256))]
    sub, contents = submission_for(pid, docs, mime_type="application/pdf")
    assert client.provide_and_register(sub, contents).ok
    return {d.unique_id: data for d, data in zip(sub.documents, docs, strict=True)}


def test_iti43_retrieves_one_document(client: XdsClient, stored: dict[str, bytes], tmp_path: Path) -> None:
    uid, data = next(iter(stored.items()))
    result = client.retrieve([DocumentRequest(REPOSITORY_ID, uid)], tmp_path)
    assert (result.status_name, result.errors) == ("Success", [])
    (doc,) = result.documents
    assert (doc.unique_id, doc.repository_unique_id, doc.mime_type) == (uid, REPOSITORY_ID, "application/pdf")
    assert doc.path.read_bytes() == data
    assert doc.sha1 == hashlib.sha1(data).hexdigest()
    assert doc.home_community_id is None


def test_iti43_retrieves_many_documents(client: XdsClient, stored: dict[str, bytes], tmp_path: Path) -> None:
    requests_ = [DocumentRequest(REPOSITORY_ID, uid, HOME) for uid in stored]
    result = client.retrieve(requests_, tmp_path)
    assert result.status_name == "Success"
    assert {d.unique_id: d.path.read_bytes() for d in result.documents} == stored
    assert {d.home_community_id for d in result.documents} == {HOME}


def test_iti43_partial_success(client: XdsClient, stored: dict[str, bytes], tmp_path: Path) -> None:
    uid = next(iter(stored))
    result = client.retrieve(
        [
            DocumentRequest(REPOSITORY_ID, uid),
            DocumentRequest(REPOSITORY_ID, "1.2.3.4.999.404"),
            DocumentRequest("1.2.3.4.999", uid),
            DocumentRequest(REPOSITORY_ID, uid, "urn:oid:9.9.9"),
        ],
        tmp_path,
    )
    assert result.status_name == "PartialSuccess"
    assert [d.unique_id for d in result.documents] == [uid]
    assert sorted((e.code, e.location) for e in result.errors) == sorted(
        [
            (ErrorCode.DOCUMENT_UNIQUE_ID_ERROR.value, "1.2.3.4.999.404"),
            (ErrorCode.UNKNOWN_REPOSITORY_ID.value, uid),
            (ErrorCode.UNKNOWN_COMMUNITY.value, uid),
        ]
    )


@pytest.mark.parametrize(
    ("repository", "document", "home", "code"),
    [
        (REPOSITORY_ID, "1.2.3.4.999.1", None, ErrorCode.DOCUMENT_UNIQUE_ID_ERROR),
        ("1.2.3.4.999", None, None, ErrorCode.UNKNOWN_REPOSITORY_ID),
        (REPOSITORY_ID, None, "urn:oid:1.2.3.999", ErrorCode.UNKNOWN_COMMUNITY),
    ],
    ids=["missing", "unknown-repository", "unknown-community"],
)
def test_iti43_failure_codes(
    client: XdsClient,
    stored: dict[str, bytes],
    tmp_path: Path,
    repository: str,
    document: str | None,
    home: str | None,
    code: ErrorCode,
) -> None:
    uid = document or next(iter(stored))
    result = client.retrieve([DocumentRequest(repository, uid, home)], tmp_path)
    assert result.status_name == "Failure"
    assert [(e.code, e.location) for e in result.errors] == [(code.value, uid)]
    assert result.documents == []
    assert not any(tmp_path.iterdir())


def test_iti43_reports_missing_document_for_a_vanished_blob(
    hub: Hub, store: Stores, client: XdsClient, stored: dict[str, bytes], tmp_path: Path
) -> None:
    uid = next(iter(stored))
    with store.engine.connect() as conn:
        key = find_documents(conn, [uid])[uid].blob_key
    lose_content(store, key)  # "should never happen": simulate a lost document
    others = [u for u in stored if u != uid]
    result = client.retrieve([DocumentRequest(REPOSITORY_ID, u) for u in [uid, *others]], tmp_path)
    assert result.status_name == "PartialSuccess"
    assert [(e.code, e.location) for e in result.errors] == [(ErrorCode.MISSING_DOCUMENT.value, uid)]
    assert sorted(d.unique_id for d in result.documents) == sorted(others)
    assert "registered document has no blob" in hub.log_text()


def _request(*uids: str) -> etree._Element:
    req = etree.Element(ns.qn(ns.XDSB, "RetrieveDocumentSetRequest"), nsmap={"xdsb": ns.XDSB})
    for uid in uids:
        dr = etree.SubElement(req, ns.qn(ns.XDSB, "DocumentRequest"))
        etree.SubElement(dr, ns.qn(ns.XDSB, "RepositoryUniqueId")).text = REPOSITORY_ID
        etree.SubElement(dr, ns.qn(ns.XDSB, "DocumentUniqueId")).text = uid
    return req


def test_iti43_answers_mtom_to_a_plain_request_and_validates(hub: Hub, stored: dict[str, bytes]) -> None:
    parts: dict[str, MemorySink] = {}

    def open_part(part: PartHeaders) -> PartSink:
        parts[part.content_id] = sink = MemorySink()
        return sink

    uids = list(stored)
    request = _request(*uids, "1.2.3.4.999.404")
    reply = SoapEndpoint(hub.url("/xds/repository")).call(
        SoapAction.ITI43, request, mtom=False, open_attachment=open_part
    )
    assert reply.action == SoapAction.ITI43_RESPONSE
    assert len(parts) == len(uids)
    # XOP infoset -> schema form: each xop:Include replaced by the base64 of its part.
    for include in list(reply.body.iter(ns.qn(ns.XOP, "Include"))):
        document = include.getparent()
        assert document is not None
        cid = include.get("href", "")[4:]
        document.remove(include)
        document.text = base64.b64encode(bytes(parts[cid].buffer)).decode()
    if oracle_available():
        assert_valid("XDS.b_DocumentRepository.xsd", request)
        assert_valid("XDS.b_DocumentRepository.xsd", reply.body)
    got = {
        r.findtext(ns.qn(ns.XDSB, "DocumentUniqueId")): base64.b64decode(
            r.findtext(ns.qn(ns.XDSB, "Document")) or ""
        )
        for r in reply.body.iter(ns.qn(ns.XDSB, "DocumentResponse"))
    }
    assert got == stored


def test_iti43_rejects_a_request_without_document_requests(hub: Hub) -> None:
    from xds_hub.client.soap import SoapFaultError

    with pytest.raises(SoapFaultError) as exc:
        SoapEndpoint(hub.url("/xds/repository")).call(SoapAction.ITI43, _request(), mtom=True)
    assert exc.value.code.endswith("Sender")
