"""ITI-42 Register Document Set-b against a running hub: real SOAP 1.2 messages over HTTP
(plain and MTOM-packaged), on SQLite and PostgreSQL (the ``hub`` fixture)."""

from __future__ import annotations

import email.parser
import email.policy
import threading
import uuid

import pytest
import requests
from lxml import etree

from tests.hubproc import Hub
from tests.test_registry_support import (
    a_folder,
    assoc,
    document,
    member,
    new_pid,
    package,
    submission_set,
)
from xds_hub import ns
from xds_hub.client.xds import XdsClient
from xds_hub.domain.metadata import Folder, Submission
from xds_hub.domain.vocabulary import AssociationType, ResponseStatus, SoapAction, Status, StoredQuery
from xds_hub.ebxml.render import render_submit_objects_request

ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"


def _envelope(body: etree._Element, action: str, to: str, message_id: str) -> bytes:
    env = etree.Element(ns.qn(ns.SOAP12, "Envelope"), nsmap={"soap": ns.SOAP12, "wsa": ns.WSA})
    header = etree.SubElement(env, ns.qn(ns.SOAP12, "Header"))
    must = {ns.qn(ns.SOAP12, "mustUnderstand"): "1"}
    etree.SubElement(header, ns.qn(ns.WSA, "Action"), must).text = action
    etree.SubElement(header, ns.qn(ns.WSA, "MessageID")).text = message_id
    reply = etree.SubElement(header, ns.qn(ns.WSA, "ReplyTo"))
    etree.SubElement(reply, ns.qn(ns.WSA, "Address")).text = ANONYMOUS
    etree.SubElement(header, ns.qn(ns.WSA, "To"), must).text = to
    etree.SubElement(env, ns.qn(ns.SOAP12, "Body")).append(body)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def _mtom(envelope: bytes, action: str) -> tuple[bytes, str]:
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    start = f"<root.{uuid.uuid4().hex}@xds-hub.test>"
    part = (
        (
            f"--{boundary}\r\n"
            f'Content-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"\r\n'
            "Content-Transfer-Encoding: binary\r\n"
            f"Content-ID: {start}\r\n\r\n"
        ).encode()
        + envelope
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = (
        f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; '
        f'start="{start}"; start-info="application/soap+xml"; action="{action}"'
    )
    return part, content_type


def _root_part(response: requests.Response) -> bytes:
    ctype = response.headers.get("Content-Type", "")
    if not ctype.startswith("multipart/"):
        return response.content
    raw = f"Content-Type: {ctype}\r\n\r\n".encode() + response.content
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    first = next(iter(message.iter_parts()))
    payload = first.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


def post_iti42(
    hub: Hub, sub: Submission, *, mtom: bool = False
) -> tuple[int, etree._Element, etree._Element]:
    """POST an ITI-42 request; (HTTP status, soap:Header, first child of soap:Body)."""
    message_id = f"urn:uuid:{uuid.uuid4()}"
    action = SoapAction.ITI42.value
    envelope = _envelope(render_submit_objects_request(sub), action, hub.url("/xds/registry"), message_id)
    if mtom:
        data, ctype = _mtom(envelope, action)
    else:
        data, ctype = envelope, f'application/soap+xml; charset=UTF-8; action="{action}"'
    response = requests.post(hub.url("/xds/registry"), data=data, headers={"Content-Type": ctype}, timeout=60)
    env = etree.fromstring(_root_part(response))
    assert env.tag == ns.qn(ns.SOAP12, "Envelope")
    header = env.find(ns.qn(ns.SOAP12, "Header"))
    body = env.find(ns.qn(ns.SOAP12, "Body"))
    assert header is not None and body is not None
    if response.status_code == 200:
        assert header.findtext(ns.qn(ns.WSA, "Action")) == SoapAction.ITI42_RESPONSE
        assert header.findtext(ns.qn(ns.WSA, "RelatesTo")) == message_id
    return response.status_code, header, body[0]


def outcome(body: etree._Element) -> tuple[str, list[str]]:
    assert body.tag == ns.qn(ns.RS, "RegistryResponse")
    errors = body.findall(f"{{{ns.RS}}}RegistryErrorList/{{{ns.RS}}}RegistryError")
    return body.get("status", ""), [e.get("errorCode", "") for e in errors]


SUCCESS = ResponseStatus.SUCCESS.value
FAILURE = ResponseStatus.FAILURE.value


@pytest.fixture
def patient(hub: Hub) -> str:
    pid = new_pid()
    hub.add_patient(pid)
    return pid


@pytest.mark.parametrize("mtom", [False, True], ids=["plain", "mtom"])
def test_iti42_live_registers_submission(hub: Hub, patient: str, mtom: bool) -> None:
    status, _, body = post_iti42(hub, package(patient, (document(patient), document(patient))), mtom=mtom)
    assert status == 200
    assert outcome(body) == (SUCCESS, [])


def test_iti42_live_rejects_unknown_patient(hub: Hub) -> None:
    pid = new_pid()
    status, _, body = post_iti42(hub, package(pid, (document(pid),)))
    assert (status, outcome(body)) == (200, (FAILURE, ["XDSUnknownPatientId"]))


def test_iti42_live_rejects_missing_hash(hub: Hub, patient: str) -> None:
    status, _, body = post_iti42(hub, package(patient, (document(patient, hash=None),)))
    assert (status, outcome(body)) == (200, (FAILURE, ["XDSRegistryMetadataError"]))


def test_iti42_live_resubmission_rules(hub: Hub, patient: str) -> None:
    first = document(patient, b"report v1")
    assert outcome(post_iti42(hub, package(patient, (first,)))[2]) == (SUCCESS, [])
    same = document(patient, b"report v1", unique_id=first.unique_id)
    assert outcome(post_iti42(hub, package(patient, (same,)))[2]) == (SUCCESS, [])
    other = document(patient, b"report v2", unique_id=first.unique_id)
    assert outcome(post_iti42(hub, package(patient, (other,)))[2]) == (FAILURE, ["XDSNonIdenticalHash"])


def test_iti42_live_replacement_deprecates_original(hub: Hub, patient: str) -> None:
    old = document(patient)
    assert outcome(post_iti42(hub, package(patient, (old,)))[2])[0] == SUCCESS
    new = document(patient)
    rplc = package(patient, (new,), extra=(assoc(AssociationType.RPLC, new.entry_uuid, old.entry_uuid),))
    assert outcome(post_iti42(hub, rplc)[2]) == (SUCCESS, [])
    again = document(patient)
    late = package(patient, (again,), extra=(assoc(AssociationType.RPLC, again.entry_uuid, old.entry_uuid),))
    assert outcome(post_iti42(hub, late)[2]) == (FAILURE, ["XDSRegistryDeprecatedDocumentError"])


def test_iti42_live_duplicate_submission_set_unique_id(hub: Hub, patient: str) -> None:
    first = package(patient, (document(patient),))
    assert outcome(post_iti42(hub, first)[2])[0] == SUCCESS
    dup = package(
        patient, (document(patient),), ss=submission_set(patient, unique_id=first.submission_set.unique_id)
    )
    assert outcome(post_iti42(hub, dup)[2]) == (FAILURE, ["XDSDuplicateUniqueIdInRegistry"])


def test_iti42_live_concurrent_same_unique_id_exactly_one_wins(hub: Hub, patient: str) -> None:
    first = document(patient, b"one")
    subs = [package(patient, (first,))] + [
        package(patient, (document(patient, f"other {i}".encode(), unique_id=first.unique_id),))
        for i in range(3)
    ]
    results: list[tuple[str, list[str]]] = []
    barrier = threading.Barrier(len(subs))

    def send(sub: Submission) -> None:
        barrier.wait()
        results.append(outcome(post_iti42(hub, sub)[2]))

    threads = [threading.Thread(target=send, args=(s,)) for s in subs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(r[0] for r in results) == sorted([SUCCESS] + [FAILURE] * 3)
    assert sorted(c for r in results for c in r[1]) == ["XDSNonIdenticalHash"] * 3


def test_iti42_live_fault_for_a_body_that_is_not_a_submission(hub: Hub) -> None:
    action = SoapAction.ITI42.value
    body = etree.Element(ns.qn(ns.QUERY, "AdhocQueryRequest"))
    envelope = _envelope(body, action, hub.url("/xds/registry"), f"urn:uuid:{uuid.uuid4()}")
    response = requests.post(
        hub.url("/xds/registry"),
        data=envelope,
        headers={"Content-Type": f'application/soap+xml; charset=UTF-8; action="{action}"'},
        timeout=30,
    )
    assert response.status_code == 400
    fault = etree.fromstring(_root_part(response)).find(f"{{{ns.SOAP12}}}Body/{{{ns.SOAP12}}}Fault")
    assert fault is not None
    assert fault.findtext(f"{{{ns.SOAP12}}}Code/{{{ns.SOAP12}}}Value", "").endswith("Sender")


def test_iti42_live_round_trip_through_registry_stored_query(hub: Hub, patient: str) -> None:
    """What ITI-42 registered is what ITI-18 finds: statuses after RPLC, carried-over Folder membership."""
    fol, old = a_folder(patient), document(patient)
    first = package(patient, (old,), (fol,), extra=(member(fol.entry_uuid, old.entry_uuid),))
    assert outcome(post_iti42(hub, first)[2]) == (SUCCESS, [])
    new = document(patient)
    rplc = package(patient, (new,), extra=(assoc(AssociationType.RPLC, new.entry_uuid, old.entry_uuid),))
    assert outcome(post_iti42(hub, rplc)[2]) == (SUCCESS, [])

    with XdsClient(registry_url=hub.url("/xds/registry")) as client:
        found = client.find_documents(patient, (Status.APPROVED, Status.DEPRECATED))
        assert found.ok
        statuses = {d.entry_uuid: d.status for d in found.documents}
        assert statuses == {old.entry_uuid: Status.DEPRECATED, new.entry_uuid: Status.APPROVED}
        folders = client.query(
            StoredQuery.GET_FOLDERS_FOR_DOCUMENT, {"$XDSDocumentEntryEntryUUID": new.entry_uuid}
        )
        assert folders.ok
        [held] = [o for o in folders.objects if isinstance(o, Folder)]
        assert held.entry_uuid == fol.entry_uuid
        assert held.last_update_time is not None
