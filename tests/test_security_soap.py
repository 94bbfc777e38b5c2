"""Issue 5 on the XDS SOAP side, against a live hub over HTTPS with mutual TLS (one hub per backend):

- access per establishment: a member submits (ITI-41, ITI-42) under its own sourceId only; under
  another establishment's it gets a RegistryResponse Failure with XDSRegistryMetadataError saying
  why, nothing is stored, and a Security Alert is recorded;
- administrative transactions (ITI-57, ITI-62, ITI-86) need the admin identity: anyone else gets a
  SOAP Sender fault with subcode wsse:FailedAuthentication and nothing changes;
- a node without a client certificate is refused in the TLS handshake;
- the audit trail (ITI-20): every transaction's IHE audit message, with the calling establishment,
  in the local table, listed by `xds-hub audit --patient`, and sent as RFC 5424 syslog over UDP.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from lxml import etree
from sqlalchemy import Engine, select

from tests.hubproc import Hub, db_url_for, drop_pg_database, free_port
from tests.repository_support import new_pid, submission_for
from tests.test_iti57_support import new_version, update
from tests.test_tls_hub import tls_config
from xds_hub import ns
from xds_hub.audit.tables import audit_patient, audit_record
from xds_hub.client.soap import build_envelope
from xds_hub.client.xds import DocumentRequest, XdsClient
from xds_hub.config import DEMO_DOMAIN
from xds_hub.domain.metadata import Submission
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.ebxml.render import (
    render_provide_and_register,
    render_remove_objects_request,
    render_submit_objects_request,
)
from xds_hub.repository.iti43 import DocumentRequest as RepoRequest
from xds_hub.repository.iti86 import render_remove_documents_request
from xds_hub.security.certs import DemoPki, IssuedCert, init_pki
from xds_hub.security.tls import read_pem_certificate
from xds_hub.storage.db import make_engine
from xds_hub.storage.schema import registry_object, repository_document

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
HOPB_SOURCE = "1.2.3.200.1"


@dataclass
class Secure:
    hub: Hub
    pki: DemoPki
    engine: Engine
    syslog: socket.socket

    def member(self, index: int = 0) -> IssuedCert:
        return self.pki.establishments[index]

    def client(self, cert: IssuedCert) -> XdsClient:
        session = requests.Session()
        session.cert = (str(cert.cert), str(cert.key))
        return XdsClient(
            registry_url=self.hub.url("/xds/registry"),
            repository_url=self.hub.url("/xds/repository"),
            session=session,
            verify=str(self.pki.ca.cert),
            timeout=60,
        )


@pytest.fixture(scope="module")
def secure(db_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    folder = tmp_path_factory.mktemp(f"secure-{db_backend}")
    pki = init_pki(folder / "pki", DEMO_DOMAIN)
    syslog = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    syslog.bind(("127.0.0.1", 0))
    syslog.settimeout(0.5)
    port = syslog.getsockname()[1]
    config = tls_config(pki) + f'\n[audit]\nrepository = "udp://127.0.0.1:{port}"\n'
    first = pki.establishments[0]
    hub = Hub(
        folder=folder / "hub",
        db_url=db_url_for(db_backend, folder),
        config_text=config,
        http_port=free_port(),
        tls_client=(first.cert, first.key, pki.ca.cert),
    ).start()
    engine = make_engine(hub.db_url)
    try:
        yield Secure(hub, pki, engine, syslog)
    finally:
        engine.dispose()
        hub.stop()
        syslog.close()
        if db_backend == "postgresql":
            drop_pg_database(hub.db_url)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def patient(secure: Secure) -> str:
    pid = new_pid()
    secure.hub.add_patient(pid)
    return pid


def with_source(sub: Submission, source_id: str) -> Submission:
    return dataclasses.replace(
        sub, submission_set=dataclasses.replace(sub.submission_set, source_id=source_id)
    )


@dataclass
class Reply:
    status: int
    body: etree._Element

    @property
    def response_status(self) -> str | None:
        return self.body.get("status")

    def errors(self) -> list[tuple[str, str, str]]:
        return [
            (e.get("errorCode", ""), e.get("codeContext", ""), e.get("location", ""))
            for e in self.body.iter(ns.qn(ns.RS, "RegistryError"))
        ]


def post(secure: Secure, cert: IssuedCert, path: str, action: str, body: etree._Element) -> Reply:
    url = secure.hub.url(path)
    response = requests.post(
        url,
        data=build_envelope(action, url, body, f"urn:uuid:{uuid.uuid4()}"),
        headers={"Content-Type": f'application/soap+xml; charset=UTF-8; action="{action}"'},
        cert=(str(cert.cert), str(cert.key)),
        verify=str(secure.pki.ca.cert),
        timeout=60,
    )
    envelope = etree.fromstring(response.content)
    soap_body = envelope.find(ns.qn(ns.SOAP12, "Body"))
    assert soap_body is not None
    return Reply(response.status_code, soap_body[0])


def provide(secure: Secure, cert: IssuedCert, sub: Submission, data: dict[str, bytes]) -> Reply:
    body = render_provide_and_register(sub, {k: v for k, v in data.items()})
    return post(secure, cert, "/xds/repository", SoapAction.ITI41, body)


def submitted(secure: Secure, pid: str) -> tuple[Submission, dict[str, bytes]]:
    sub, data = submission_for(pid, [f"report {uuid.uuid4()}".encode()])
    reply = provide(secure, secure.member(0), sub, data)
    assert (reply.status, reply.response_status, reply.errors()) == (200, SUCCESS, [])
    return sub, data


def assert_failed_authentication(reply: Reply, node: str) -> None:
    """The refusal of an administrative transaction (see xds_hub.security.access)."""
    assert reply.status == 400
    fault = reply.body
    assert fault.tag == ns.qn(ns.SOAP12, "Fault")
    assert fault.findtext(f"{{{ns.SOAP12}}}Code/{{{ns.SOAP12}}}Value") == "soap:Sender"
    subcode = fault.find(f"{{{ns.SOAP12}}}Code/{{{ns.SOAP12}}}Subcode/{{{ns.SOAP12}}}Value")
    assert subcode is not None and subcode.text == "wsse:FailedAuthentication"
    assert subcode.nsmap["wsse"] == ns.WSSE  # the QName resolves
    reason = fault.findtext(f"{{{ns.SOAP12}}}Reason/{{{ns.SOAP12}}}Text")
    assert reason == (
        f"{node!r} is not authorized for administrative transactions (not one of [security] admin_subjects)"
    )


def rows(secure: Secure, table: object, column: str, value: str) -> int:
    t = table
    with secure.engine.connect() as conn:
        return len(conn.execute(select(t.c[column]).where(t.c[column] == value)).all())  # type: ignore[attr-defined]


def wait_for(check: Callable[[], object], timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@dataclass(frozen=True)
class Event:
    event_id: str
    action: str
    outcome: int
    event_type: str | None
    requestor_name: str | None
    message: str


def audit_events(secure: Secure, pid: str) -> list[Event]:
    r = audit_record
    with secure.engine.connect() as conn:
        found = conn.execute(
            select(r.c.event_id, r.c.action, r.c.outcome, r.c.event_type, r.c.requestor_name, r.c.message)
            .join(audit_patient, audit_patient.c.record_id == r.c.id)
            .where(audit_patient.c.patient_id == pid)
            .order_by(r.c.id)
        )
        return [Event(*row) for row in found]


def alerts(secure: Secure, text: str) -> list[Event]:
    r = audit_record
    with secure.engine.connect() as conn:
        found = conn.execute(
            select(r.c.event_id, r.c.action, r.c.outcome, r.c.event_type, r.c.requestor_name, r.c.message)
            .where(r.c.event_id == "110113", r.c.event_type == "110132")
            .order_by(r.c.id)
        )
        return [Event(*row) for row in found if text in row.message]


def name_of(label: str, cert: IssuedCert) -> str:
    """The UserName of a requestor: its establishment (or "admin") and its certificate's subject."""
    return f"{label} <{read_pem_certificate(cert.cert).subject.rfc4514_string()}>"


def kinds(events: list[Event]) -> list[tuple[str, str, int, str | None]]:
    return [(e.event_id, e.action, e.outcome, e.event_type) for e in events]


# ---------------------------------------------------------------------------------------------
# Node authentication
# ---------------------------------------------------------------------------------------------


def test_node_without_client_certificate_is_refused_in_the_handshake(secure: Secure) -> None:
    pid = patient(secure)
    sub, data = submission_for(pid, [b"never read"])
    url = secure.hub.url("/xds/repository")
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(
            url,
            data=build_envelope(SoapAction.ITI41, url, render_provide_and_register(sub, data)),
            headers={"Content-Type": "application/soap+xml"},
            verify=str(secure.pki.ca.cert),
            timeout=30,
        )
    assert rows(secure, registry_object, "patient_id", pid) == 0


# ---------------------------------------------------------------------------------------------
# Submissions per establishment
# ---------------------------------------------------------------------------------------------


def test_member_submits_under_its_own_source_id(secure: Secure) -> None:
    pid = patient(secure)
    sub, _ = submitted(secure, pid)
    assert rows(secure, repository_document, "unique_id", sub.documents[0].unique_id) == 1


def test_submission_under_another_establishments_source_id_is_refused(secure: Secure) -> None:
    pid = patient(secure)
    sub, data = submission_for(pid, [b"not mine to submit"])
    sub = with_source(sub, HOPB_SOURCE)
    reply = provide(secure, secure.member(0), sub, data)
    why = "sourceId '1.2.3.200.1' is not one of 'Hopital A''s sourceIds (1.2.3.100.1)"
    assert (reply.status, reply.response_status) == (200, FAILURE)
    assert reply.errors() == [("XDSRegistryMetadataError", why, sub.submission_set.entry_uuid)]
    assert rows(secure, registry_object, "patient_id", pid) == 0
    assert rows(secure, repository_document, "unique_id", sub.documents[0].unique_id) == 0

    # ITI-42 straight to the registry: the same rule, the same answer.
    reply = post(
        secure, secure.member(0), "/xds/registry", SoapAction.ITI42, render_submit_objects_request(sub)
    )
    assert (reply.status, reply.response_status) == (200, FAILURE)
    assert reply.errors() == [("XDSRegistryMetadataError", why, sub.submission_set.entry_uuid)]
    assert rows(secure, registry_object, "patient_id", pid) == 0

    # Each refusal is a Security Alert (Use of Restricted Function) naming the node and the reason,
    # and the ITI-41 Import is audited with outcome 8 (serious failure) without a registry Import.
    found = wait_for(lambda: len(alerts(secure, "1.2.3.200.1")) >= 2)
    assert found, alerts(secure, "1.2.3.200.1")
    refusals = alerts(secure, "1.2.3.200.1")
    assert {e.requestor_name for e in refusals} == {name_of("Hopital A", secure.member(0))}
    assert any("ITI-41 Provide and Register Document Set-b" in e.message for e in refusals)
    assert any("ITI-42 Register Document Set-b" in e.message for e in refusals)
    events = wait_for(lambda: len(audit_events(secure, pid)) >= 2) and audit_events(secure, pid)
    assert kinds(events) == [("110107", "C", 8, "ITI-41"), ("110107", "C", 8, "ITI-42")]


# ---------------------------------------------------------------------------------------------
# Administrative transactions
# ---------------------------------------------------------------------------------------------


def test_administrative_transactions_need_the_admin_identity(secure: Secure) -> None:
    pid = patient(secure)
    member, admin = secure.member(0), secure.pki.admin
    node = "Hopital A"
    sub, _ = submitted(secure, pid)
    doc = sub.documents[0]
    repo = secure.hub.settings.domain.repository_unique_id

    with secure.client(admin) as client:
        registered = client.find_documents(pid).documents
    assert [d.unique_id for d in registered] == [doc.unique_id]
    iti57 = render_submit_objects_request(update(pid, [(new_version(registered[0], title="renamed"), "1")]))
    iti62 = render_remove_objects_request(sub.all_ids())
    iti86 = render_remove_documents_request([RepoRequest(repo, doc.unique_id)])
    for path, action, body in (
        ("/xds/registry", SoapAction.ITI57, iti57),
        ("/xds/registry", SoapAction.ITI62, iti62),
        ("/xds/repository", SoapAction.ITI86, iti86),
    ):
        assert_failed_authentication(post(secure, member, path, action, body), node)
    # Nothing changed: one version, the document still held.
    assert rows(secure, registry_object, "unique_id", doc.unique_id) == 1
    assert rows(secure, repository_document, "unique_id", doc.unique_id) == 1

    # The admin identity is served.
    reply = post(secure, admin, "/xds/registry", SoapAction.ITI57, iti57)
    assert (reply.status, reply.response_status, reply.errors()) == (200, SUCCESS, []), reply.errors()
    assert rows(secure, registry_object, "unique_id", doc.unique_id) == 2
    reply = post(secure, admin, "/xds/repository", SoapAction.ITI86, iti86)
    assert (reply.status, reply.response_status, reply.errors()) == (200, SUCCESS, [])
    assert rows(secure, repository_document, "unique_id", doc.unique_id) == 0
    other, _ = submitted(secure, pid)
    reply = post(
        secure, admin, "/xds/registry", SoapAction.ITI62, render_remove_objects_request(other.all_ids())
    )
    assert (reply.status, reply.response_status, reply.errors()) == (200, SUCCESS, [])
    assert rows(secure, registry_object, "unique_id", other.documents[0].unique_id) == 0

    # Audit: three refusals (alerts and failed events), then the admin's query and three transactions.
    def complete() -> bool:
        return len(audit_events(secure, pid)) >= 11  # 2 submissions (4), the admin's query, 3 + 3

    assert wait_for(complete), kinds(audit_events(secure, pid))
    events = audit_events(secure, pid)
    refused = [e for e in events if e.outcome == 8]
    assert sorted(kinds(refused)) == [
        ("110107", "U", 8, "ITI-57"),
        ("110110", "D", 8, "ITI-62"),
        ("110110", "D", 8, "ITI-86"),
    ]
    assert {e.requestor_name for e in refused} == {name_of("Hopital A", member)}
    done = [e for e in events if e.outcome == 0 and e.event_type in ("ITI-57", "ITI-62", "ITI-86")]
    assert sorted(kinds(done)) == [
        ("110107", "U", 0, "ITI-57"),
        ("110110", "D", 0, "ITI-62"),
        ("110110", "D", 0, "ITI-86"),
    ]
    assert {e.requestor_name for e in done} == {name_of("admin", admin)}
    removed = next(e for e in done if e.event_type == "ITI-86")
    assert doc.unique_id in removed.message and 'ParticipantObjectDataLifeCycle="15"' in removed.message
    assert len(alerts(secure, "not authorized for administrative transactions")) >= 3


# ---------------------------------------------------------------------------------------------
# The audit trail of a patient
# ---------------------------------------------------------------------------------------------


def _syslog_messages(secure: Secure, wanted: str, timeout: float = 30) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data, _ = secure.syslog.recvfrom(65535)
        except TimeoutError:
            continue
        got.append(data)
        if wanted.encode() in data:
            break
    return got


def test_submission_query_and_retrieve_are_audited_for_the_patient(secure: Secure, tmp_path: Path) -> None:
    pid = patient(secure)
    member = secure.member(1)  # Hopital B reads Hopital A's document: members may read
    sub, _ = submitted(secure, pid)
    doc = sub.documents[0]
    with secure.client(member) as client:
        found = client.find_documents(pid)
        assert found.ok and [d.unique_id for d in found.documents] == [doc.unique_id]
        got = client.retrieve(
            [DocumentRequest(secure.hub.settings.domain.repository_unique_id, doc.unique_id)], tmp_path
        )
        assert got.ok, got.errors

    def complete() -> bool:
        return len(audit_events(secure, pid)) >= 4

    assert wait_for(complete), kinds(audit_events(secure, pid))
    events = audit_events(secure, pid)
    assert kinds(events) == [
        ("110107", "C", 0, "ITI-41"),
        ("110107", "C", 0, "ITI-42"),
        ("110112", "E", 0, "ITI-18"),
        ("110106", "R", 0, "ITI-43"),
    ]
    hopa = name_of("Hopital A", secure.member(0))
    hopb = name_of("Hopital B", member)
    assert [e.requestor_name for e in events] == [hopa, None, hopb, hopb]

    imported, registered, queried, exported = (etree.fromstring(e.message.encode()) for e in events)
    ss_uid = sub.submission_set.unique_id
    for message in (imported, registered):
        ids = {o.get("ParticipantObjectID") for o in message.iter("ParticipantObjectIdentification")}
        assert ids == {pid, ss_uid}
    assert (
        registered.find("ActiveParticipant[@UserIsRequestor='true']")
        .get("UserID")
        .endswith("/xds/repository")
    )
    query = queried.find("ParticipantObjectIdentification/ParticipantObjectQuery")
    assert query is not None
    adhoc = etree.fromstring(base64.b64decode(query.text or ""))
    assert adhoc.tag == ns.qn(ns.QUERY, "AdhocQueryRequest") and f"'{pid}'" in adhoc.itertext()
    document = next(
        o
        for o in exported.iter("ParticipantObjectIdentification")
        if o.get("ParticipantObjectID") == doc.unique_id
    )
    details = {
        d.get("type"): base64.b64decode(d.get("value") or "").decode()
        for d in document.iter("ParticipantObjectDetail")
    }
    assert details["Repository Unique Id"] == secure.hub.settings.domain.repository_unique_id
    destination = exported.find("ActiveParticipant[@UserIsRequestor='true']")
    assert destination is not None and destination.get("NetworkAccessPointID") == "127.0.0.1"

    # `xds-hub audit --patient` lists them.
    listed = json.loads(secure.hub.cli("audit", "--patient", pid, "--json").stdout)
    assert [(a["transaction"], a["action"], a["outcome"], a["identity"]) for a in listed] == [
        ("ITI-41", "create", "success", hopa),
        ("ITI-42", "create", "success", None),
        ("ITI-18", "execute", "success", hopb),
        ("ITI-43", "read", "success", hopb),
    ]
    table = secure.hub.cli("audit", "--patient", pid).stdout
    assert "ITI-43 Retrieve Document Set" in table and doc.unique_id in table

    # The Audit Record Repository receives them as RFC 5424 syslog messages over UDP (RFC 5426).
    received = _syslog_messages(secure, doc.unique_id)
    mine = [m for m in received if doc.unique_id.encode() in m]
    assert mine, received[-3:]
    header, _, xml = mine[0].partition(b" \xef\xbb\xbf")
    assert header.startswith(b"<85>1 ") and header.split(b" ")[5] == b"IHE+RFC-3881"
    assert etree.fromstring(xml).tag == "AuditMessage"


def test_a_refused_retrieve_is_audited_as_a_failure(secure: Secure) -> None:
    """A request answered with a SOAP fault still gets its audit message, outcome 8 with the reason."""
    empty = etree.Element(ns.qn(ns.XDSB, "RetrieveDocumentSetRequest"))
    reply = post(secure, secure.member(2), "/xds/repository", SoapAction.ITI43, empty)
    assert reply.status == 400 and reply.body.tag == ns.qn(ns.SOAP12, "Fault")
    r = audit_record

    def failures() -> list[tuple[str | None, str | None]]:
        with secure.engine.connect() as conn:
            rows = conn.execute(
                select(r.c.requestor_name, r.c.outcome_description).where(
                    r.c.event_type == "ITI-43", r.c.outcome == 8
                )
            )
            return [(name, why) for name, why in rows if why and "has no xdsb:DocumentRequest" in why]

    found = wait_for(failures)
    assert found == [
        (
            name_of("Clinique C", secure.member(2)),
            "xdsb:RetrieveDocumentSetRequest has no xdsb:DocumentRequest",
        )
    ]
