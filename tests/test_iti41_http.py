"""ITI-41 Provide and Register over real HTTP (SQLite and PostgreSQL hubs): MTOM and inline
documents, every Document Repository error with its exact code and nothing half-stored, the
public MTOM wire captures of the NIST toolkit, and schema validity of requests and responses."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from lxml import etree

from tests.hubproc import Hub
from tests.oracle import SAMPLES, assert_valid, oracle_available
from tests.repository_support import counts, hub_patient, new_pid, submission_for, with_entry
from xds_hub import ns
from xds_hub.client.soap import SoapEndpoint
from xds_hub.client.xds import DocumentRequest, XdsClient
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.ebxml.render import render_provide_and_register
from xds_hub.errors import ErrorCode
from xds_hub.repository.sweep import referenced_keys
from xds_hub.storage.stores import Stores

REPOSITORY_ID = "1.3.6.1.4.1.21367.13.80.1"  # tests/hubproc.py TEST_CONFIG


@pytest.mark.parametrize("mtom", [True, False], ids=["mtom", "inline"])
def test_iti41_http_documents_roundtrip(
    hub: Hub, store: Stores, client: XdsClient, tmp_path: Path, mtom: bool
) -> None:
    pid = hub_patient(hub, store)
    docs = [b"<ClinicalDocument/>", bytes(range(256)) * 400, b""]
    sub, contents = submission_for(pid, docs, mime_type="text/xml", include_hash=False)
    result = client.provide_and_register(sub, contents, mtom=mtom)
    assert (result.status_name, result.errors) == ("Success", [])
    found = {d.unique_id: d for d in client.find_documents(pid).documents}
    for entry, data in zip(sub.documents, docs, strict=True):
        registered = found[entry.unique_id]
        assert registered.hash == hashlib.sha1(data).hexdigest()
        assert registered.size == len(data)
        assert registered.repository_unique_id == REPOSITORY_ID
    retrieved = client.retrieve(
        [DocumentRequest(REPOSITORY_ID, d.unique_id) for d in sub.documents], tmp_path
    )
    assert retrieved.status_name == "Success"
    assert [d.path.read_bytes() for d in retrieved.documents] == docs
    assert {d.mime_type for d in retrieved.documents} == {"text/xml"}


def _missing_document(sub, contents):  # type: ignore[no-untyped-def]
    del contents[sub.documents[1].entry_uuid]
    return sub, contents


def _document_without_entry(sub, contents):  # type: ignore[no-untyped-def]
    contents["urn:uuid:" + str(uuid.uuid4())] = b"no metadata for me"
    return sub, contents


def _hash_mismatch(sub, contents):  # type: ignore[no-untyped-def]
    return with_entry(sub, 0, hash=hashlib.sha1(b"something else").hexdigest()), contents


def _size_mismatch(sub, contents):  # type: ignore[no-untyped-def]
    return with_entry(sub, 0, size=1), contents


def _unknown_patient(sub, contents):  # type: ignore[no-untyped-def]
    stranger = new_pid()
    return (
        replace(
            sub,
            submission_set=replace(sub.submission_set, patient_id=stranger),
            documents=tuple(replace(d, patient_id=stranger) for d in sub.documents),
        ),
        contents,
    )


def _duplicate_unique_id(sub, contents):  # type: ignore[no-untyped-def]
    return with_entry(sub, 1, unique_id=sub.documents[0].unique_id), contents


BREAKERS = {
    "missing-document": (_missing_document, ErrorCode.MISSING_DOCUMENT),
    "document-without-entry": (_document_without_entry, ErrorCode.MISSING_DOCUMENT_METADATA),
    "hash-mismatch": (_hash_mismatch, ErrorCode.REPOSITORY_METADATA_ERROR),
    "size-mismatch": (_size_mismatch, ErrorCode.REPOSITORY_METADATA_ERROR),
    "unknown-patient": (_unknown_patient, ErrorCode.UNKNOWN_PATIENT_ID),
    "duplicate-unique-id": (_duplicate_unique_id, ErrorCode.REPOSITORY_DUPLICATE_UNIQUE_ID_IN_MESSAGE),
}


@pytest.mark.parametrize("mtom", [True, False], ids=["mtom", "inline"])
@pytest.mark.parametrize("case", sorted(BREAKERS))
def test_iti41_http_rejects_with_exact_code_and_stores_nothing(
    hub: Hub, store: Stores, client: XdsClient, case: str, mtom: bool
) -> None:
    breaker, code = BREAKERS[case]
    pid = hub_patient(hub, store)
    sub, contents = breaker(
        *submission_for(pid, [f"one {uuid.uuid4()}".encode(), f"two {uuid.uuid4()}".encode()])
    )
    before = counts(store.engine, store.blobs)
    result = client.provide_and_register(sub, contents, mtom=mtom)
    assert result.status_name == "Failure"
    assert {e.code for e in result.errors} == {code.value}
    after = counts(store.engine, store.blobs)
    assert (after.documents, after.registry_objects) == (before.documents, before.registry_objects)
    # The octets are not deleted on the spot (another submission may share the content-addressed
    # blob); nothing refers to them, so the orphan sweep collects them.
    with store.engine.connect() as conn:
        assert referenced_keys(conn, [hashlib.sha256(c).hexdigest() for c in contents.values()]) == set()


def test_iti41_http_request_and_response_validate_against_official_schemas(hub: Hub, store: Stores) -> None:
    if not oracle_available():
        pytest.skip("official schemas not available")
    pid = hub_patient(hub, store)
    sub, contents = submission_for(pid, [b"schema-checked document"])
    body = render_provide_and_register(sub, dict(contents))
    assert_valid("XDS.b_DocumentRepository.xsd", body)
    reply = SoapEndpoint(hub.url("/xds/repository")).call(SoapAction.ITI41, body, mtom=True)
    assert reply.action == SoapAction.ITI41_RESPONSE
    assert_valid("rs.xsd", reply.body)
    failed = SoapEndpoint(hub.url("/xds/repository")).call(
        SoapAction.ITI41, render_provide_and_register(with_entry(sub, 0, size=3), dict(contents))
    )
    assert_valid("rs.xsd", failed.body)
    assert [e.get("errorCode") for e in failed.body.iter(ns.qn(ns.RS, "RegistryError"))] == [
        ErrorCode.REPOSITORY_METADATA_ERROR.value
    ]


# ---------------------------------------------------------------------------------------------
# Public wire captures (NIST iheos-toolkit2): Axis2 MTOM with bare LF line ends
# ---------------------------------------------------------------------------------------------

_UID_SCHEMES = "2e82c1f6-a085-4c72-9da3-8640a32e42ab|96fdda7c-d067-4183-912e-bf5ee74998a8"


def _fresh_ids(text: str, pid: str, old_pids: list[str]) -> str:
    """Give the capture fresh ids and uniqueIds and our registered patient (the only edits)."""

    def uid(m: re.Match[str]) -> str:
        return m.group(0).replace(m.group("v"), f"2.25.{uuid.uuid4().int}")

    # Object ids (entryUUIDs, and every reference to them) become fresh UUIDs too, so the capture
    # can be sent to a hub that already holds it.
    for old in dict.fromkeys(re.findall(r' id="(urn:uuid:[0-9a-fA-F-]{36})"', text)):
        text = text.replace(old, f"urn:uuid:{uuid.uuid4()}")
    text = re.sub(rf'identificationScheme="urn:uuid:(?:{_UID_SCHEMES})" value="(?P<v>[^"]*)"', uid, text)
    text = re.sub(rf'value="(?P<v>[^"]*)" identificationScheme="urn:uuid:(?:{_UID_SCHEMES})"', uid, text)
    for old in old_pids:
        text = text.replace(old, pid.replace("&", "&amp;"))
    return text


def _status(reply: requests.Response) -> tuple[str, list[str]]:
    data = reply.content
    if reply.headers["Content-Type"].startswith("multipart/related"):
        start = data.index(b"<?xml") if b"<?xml" in data else data.index(b"<soap")
        data = data[start : data.rindex(b"Envelope>") + len(b"Envelope>")]
    env = etree.fromstring(data)
    resp = next(env.iter(ns.qn(ns.RS, "RegistryResponse")))
    return resp.get("status", "").rsplit(":", 1)[-1], [
        e.get("errorCode", "") for e in resp.iter(ns.qn(ns.RS, "RegistryError"))
    ]


@pytest.mark.skipif(not (SAMPLES / "wire").is_dir(), reason="public samples not available")
def test_iti41_accepts_nist_axis2_capture_http_mtom_pnr(hub: Hub, store: Stores) -> None:
    pid = hub_patient(hub, store)
    raw = (SAMPLES / "wire" / "http-mtom-pnr.txt").read_bytes().decode("utf-8")
    head, _, body = raw.partition("\n\n")
    content_type = next(
        line.split(":", 1)[1].strip()
        for line in head.splitlines()
        if line.lower().startswith("content-type:")
    )
    body = _fresh_ids(body, pid, ["11^^^&amp;1.1&amp;ISO"])
    reply = requests.post(
        hub.url("/xds/repository"), data=body.encode("utf-8"), headers={"Content-Type": content_type}
    )
    assert reply.status_code == 200
    assert _status(reply) == ("Success", [])


@pytest.mark.skipif(not (SAMPLES / "wire").is_dir(), reason="public samples not available")
def test_iti41_nist_sim_proxy_capture(hub: Hub, store: Stores, client: XdsClient) -> None:
    """The sim-proxy capture: its xop:Include names a Content-ID its MIME part does not carry, and
    it replaces (RPLC) a document the hub does not know.  As captured: a Sender fault naming the
    dangling cid.  With the cid repaired and the replaced document registered first: Success."""
    from xds_hub.client.metadata import DocumentInput, SubmissionOptions, build_submission

    pid = hub_patient(hub, store)
    old_pid = "P20170823094140.2^^^&amp;1.3.6.1.4.1.21367.2005.13.20.1000&amp;ISO"
    text = _fresh_ids((SAMPLES / "wire" / "sample_mtom_message.txt").read_text(), pid, [old_pid])
    boundary = text.split("\n", 1)[0][2:].strip()
    content_type = (
        f'multipart/related; boundary={boundary}; type="application/xop+xml"; '
        'start="<1.694859fac46e21a68c012f8f4fe208a370fc32b6e07ae79f>"; start-info="application/soap+xml"'
    )
    url = hub.url("/xds/repository")
    before = counts(store.engine, store.blobs)
    reply = requests.post(url, data=text.encode(), headers={"Content-Type": content_type})
    assert reply.status_code == 400
    assert b"cid:1.694859fac46e21a68c012f8f4fe208a370fc32b6e07ae79f@apache.org" in reply.content
    assert counts(store.engine, store.blobs) == before
    # The replaced document, registered first under the entryUUID the capture's RPLC names.
    target = f"urn:uuid:{uuid.uuid4()}"
    text = text.replace("urn:uuid:934e4ab6-6e61-471a-b265-da54ddf06bed", target)
    sub, contents = build_submission(
        [DocumentInput(b"first version", "text/plain")], SubmissionOptions(pid, "1.2.3.100.1")
    )
    old_id = sub.documents[0].entry_uuid
    sub = replace(
        sub,
        documents=(replace(sub.documents[0], entry_uuid=target),),
        associations=tuple(replace(a, target=target) for a in sub.associations),
    )
    assert client.provide_and_register(sub, {target: contents[old_id].content}).ok  # type: ignore[dict-item]
    repaired = text.replace(
        "cid:1.694859fac46e21a68c012f8f4fe208a370fc32b6e07ae79f@apache.org",
        "cid:2.694859fac46e21a68c012f8f4fe208a370fc32b6e07ae79f",
    )
    reply = requests.post(url, data=repaired.encode(), headers={"Content-Type": content_type})
    assert reply.status_code == 200
    assert _status(reply) == ("Success", [])
    assert [
        d.status.name
        for d in client.find_documents(
            pid, ["urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"]
        ).documents
    ] == ["DEPRECATED"]
