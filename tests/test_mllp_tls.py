"""The PIX Manager under mutual TLS, against a live hub (SQLite and PostgreSQL), with certificates
made by `xds-hub certs init`:

- MLLP over TLS 1.2+: a member's certificate feeds and queries; a client without a certificate (or
  speaking plain TCP) is refused in the handshake, before any HL7 is read, and the refusal is a
  Security Alert (ITI-20, node authentication);
- an establishment feeds only under its own assigning authority: a feed asserting another
  establishment's identifier is refused as a whole with AR and ERR 204 (HL7 Table 0357 "unknown key
  identifier") at that identifier's CX-4, for ITI-8 and for ITI-44 over HTTPS (MCCI AR,
  acknowledgementDetail 204 at the XPath of the ``id``), and a Security Alert is recorded;
- ITI-8, ITI-9, ITI-44 and ITI-45 leave their audit messages in the audit trail (``xds-hub audit
  --patient``) and reach the Audit Record Repository (syslog over UDP).
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from lxml import etree
from sqlalchemy import select

from tests.hubproc import TEST_CONFIG, Hub, db_url_for, drop_pg_database
from tests.pix_support import AFFINITY, HOPA, HOPB, NATIONAL, V3, ack_code, adt, cx, errors, new_id, pid3, qbp
from xds_hub import ns
from xds_hub.audit.tables import audit_record
from xds_hub.client.soap import build_envelope
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.pix import hl7v2
from xds_hub.pix.hl7v2 import V2Message
from xds_hub.pix.mllp import MllpClient
from xds_hub.pix.v3 import V
from xds_hub.storage.db import make_engine

#: Establishment name -> file stem of its certificate (`xds-hub certs init`).
STEMS = {"Hopital A": "hopital-a", "Hopital B": "hopital-b", "Clinique C": "clinique-c"}


@dataclass
class Region:
    hub: Hub
    pki: Path
    arr: socket.socket  # the Audit Record Repository (syslog over UDP)

    def cert(self, stem: str) -> tuple[str, str]:
        return str(self.pki / f"{stem}.pem"), str(self.pki / f"{stem}-key.pem")

    def context(self, stem: str | None) -> ssl.SSLContext:
        """A client context trusting the region's CA, presenting ``stem``'s certificate if given."""
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.pem"))
        ctx.check_hostname = False
        if stem is not None:
            ctx.load_cert_chain(*self.cert(stem))
        return ctx

    def send(self, stem: str, text: str) -> V2Message:
        with MllpClient("127.0.0.1", self.hub.mllp_port, timeout=30, context=self.context(stem)) as client:
            return hl7v2.parse(client.request(text))


def _config(pki: Path, arr_port: int) -> str:
    text = TEST_CONFIG
    for name in STEMS:
        authority = {"Hopital A": HOPA, "Hopital B": HOPB, "Clinique C": "1.2.3.300"}[name]
        line = f'name = "{name}"\n'
        text = text.replace(line, line + f'tls_subjects = ["URI:urn:oid:{authority}"]\n')
    admin = "CN=xds-hub demo region Admin,OU=Administration,O=xds-hub demo region"
    return text + (
        f'\n[hub]\ntls_cert = "{pki / "hub.pem"}"\ntls_key = "{pki / "hub-key.pem"}"\n'
        f'tls_ca = "{pki / "ca.pem"}"\n'
        f'\n[security]\nadmin_subjects = ["{admin}"]\n'
        f'\n[audit]\nrepository = "udp://127.0.0.1:{arr_port}"\n'
    )


@pytest.fixture(scope="module")
def region(db_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    folder = tmp_path_factory.mktemp(f"pix-tls-{db_backend}")
    pki = folder / "pki"
    subprocess.run(
        [sys.executable, "-m", "xds_hub", "certs", "init", str(pki)], check=True, capture_output=True
    )
    arr = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    arr.bind(("127.0.0.1", 0))
    arr.settimeout(0.2)
    hub = Hub(
        folder=folder / "hub",
        db_url=db_url_for(db_backend, folder),
        config_text=_config(pki, arr.getsockname()[1]),
        tls_client=(pki / "hopital-a.pem", pki / "hopital-a-key.pem", pki / "ca.pem"),
    ).start()
    yield Region(hub, pki, arr)
    hub.stop()
    arr.close()
    if db_backend == "postgresql":
        drop_pg_database(hub.db_url)


def _poll(check: Callable[[], object], what: str, timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _audit(region: Region, patient: str) -> list[dict[str, object]]:
    out = region.hub.cli("audit", "--patient", patient, "--json").stdout
    return list(json.loads(out))


def _events(region: Region, patient: str, transaction: str, count: int = 1) -> list[dict[str, object]]:
    def found() -> list[dict[str, object]]:
        rows = [a for a in _audit(region, patient) if a["transaction"] == transaction]
        return rows if len(rows) >= count else []

    return list(_poll(found, f"{transaction} audit of {patient}"))  # type: ignore[call-overload]


def _alerts(region: Region, event_type: str) -> int:
    engine = make_engine(region.hub.db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(audit_record.c.id).where(
                    audit_record.c.event_id == "110113", audit_record.c.event_type == event_type
                )
            ).all()
        return len(rows)
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------
# MLLP over TLS
# ---------------------------------------------------------------------------------------------


def test_mllp_tls_member_feeds_and_every_member_queries(region: Region) -> None:
    local, national = cx(new_id(), HOPA), cx(new_id("N"), NATIONAL)
    # Hopital A feeds its own identifier and a national one (a linking authority: any member).
    reply = region.send("hopital-a", adt("A01", local, national))
    assert ack_code(reply) == "AA", reply.text
    # Hopital B (another member) may query: reading is open to members, and audited.
    answer = region.send("hopital-b", qbp(local, [f"^^^&{AFFINITY}&ISO"]))
    assert answer.first("QAK").value(2) == "OK"  # type: ignore[union-attr]
    (regional,) = pid3(answer)
    assert regional.endswith(f"^^^&{AFFINITY}&ISO")

    # Both are in the audit trail, under the local ID and under the regional one.
    (feed,) = _events(region, local, "ITI-8")
    assert (feed["event"], feed["action"], feed["outcome"]) == ("Patient Record", "create", "success")
    assert feed["who"] == "HOPA_ADT|HOPA" and feed["address"] == "127.0.0.1"
    assert "Hopital A" in str(feed["identity"])
    (query,) = _events(region, local, "ITI-9")
    assert (query["event"], query["action"], query["outcome"]) == ("Query", "execute", "success")
    assert query["who"] == "CONSUMER|HOPB" and "Hopital B" in str(query["identity"])
    assert [a["transaction"] for a in _events(region, regional, "ITI-9")] == ["ITI-9"]
    assert _events(region, regional, "ITI-8")[0]["action"] == "create"


def test_mllp_tls_without_client_certificate_is_refused_in_the_handshake(region: Region) -> None:
    before = _alerts(region, "110126")
    port = region.hub.mllp_port
    # TLS without a certificate: the handshake fails; no HL7 is ever answered.
    # (TLS 1.3 reports the refusal on the first read, not in the client's handshake.)
    with (
        pytest.raises((ssl.SSLError, ConnectionError)),
        MllpClient("127.0.0.1", port, timeout=10, context=region.context(None)) as client,
    ):
        client.request(adt("A01", cx(new_id(), HOPA)))
    # Plain MLLP on the TLS port: not a ClientHello; closed without an answer.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"\x0b" + adt("A01", cx(new_id(), HOPA)).encode() + b"\x1c\r")
        try:
            answer = raw.recv(1024)
        except ConnectionError:
            answer = b""
    assert b"MSA" not in answer
    # The refused node is a Security Alert (110113, node authentication 110126).
    _poll(lambda: _alerts(region, "110126") > before, "the node authentication Security Alert")
    # The listener still serves members.
    assert ack_code(region.send("hopital-a", adt("A04", cx(new_id(), HOPA)))) == "AA"


def test_mllp_tls_feed_under_another_establishments_authority_is_ar_204(region: Region) -> None:
    before = _alerts(region, "110132")
    own, foreign = cx(new_id(), HOPA), cx(new_id(), HOPB)
    reply = region.send("hopital-a", adt("A01", own, foreign))
    assert ack_code(reply) == "AR"
    assert errors(reply) == [("204", "PID^1^3^2^4")]  # the foreign identifier's assigning authority
    err = reply.first("ERR")
    assert err is not None
    assert (err.value(3, comp=2), err.value(3, comp=3), err.value(4)) == (
        "Unknown key identifier",
        "HL70357",
        "E",
    )
    assert "Hopital A" in err.value(8) and HOPB in err.value(8)
    # Refused as a whole: neither identifier was recorded.
    for pid in (own, foreign):
        answer = region.send("hopital-b", qbp(pid))
        assert errors(answer) == [("204", "QPD^1^3^1^1")]
    # A merge retiring another establishment's identifier is refused too (MRG-1).
    reply = region.send("hopital-a", adt("A40", cx(new_id(), HOPA), mrg=[foreign]))
    assert ack_code(reply) == "AR" and errors(reply) == [("204", "MRG^1^1^1^4")]
    # Audited: the feed with its failure, and a Security Alert (use of restricted function).
    feeds = _events(region, foreign, "ITI-8", 2)
    assert {f["action"] for f in feeds} == {"create", "delete"}  # the A01, the A40's retired ID
    assert all(f["outcome"] == "serious failure" and "204" in str(f["detail"]) for f in feeds)
    _poll(lambda: _alerts(region, "110132") >= before + 2, "the access Security Alerts")
    # The admin identity may feed any domain.
    assert ack_code(region.send("admin", adt("A01", cx(new_id(), HOPB)))) == "AA"


def test_mllp_merge_is_audited_as_delete_and_update(region: Region) -> None:
    survivor, subsumed = cx(new_id(), HOPA), cx(new_id(), HOPA)
    for pid in (survivor, subsumed):
        assert ack_code(region.send("hopital-a", adt("A01", pid))) == "AA"
    assert ack_code(region.send("hopital-a", adt("A40", survivor, mrg=[subsumed]))) == "AA"
    # Each ID's own records; asking by either also lists the other's (one person after the merge).
    history = _events(region, subsumed, "ITI-8", 4)
    assert {a["action"] for a in history if a["patient_id"] == subsumed} == {"create", "delete"}
    assert {a["action"] for a in history if a["patient_id"] == survivor} == {"create", "update"}
    history = _events(region, survivor, "ITI-8", 4)
    assert {a["action"] for a in history if a["patient_id"] == survivor} == {"create", "update"}


def test_pix_audit_messages_reach_the_audit_record_repository(region: Region) -> None:
    pid = cx(f"ARR-{uuid.uuid4().hex[:10]}", HOPA)
    assert ack_code(region.send("hopital-a", adt("A01", pid, control="ARR-CTRL-1"))) == "AA"
    wanted = pid.replace("&", "&amp;").encode()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            data = region.arr.recv(65536)
        except TimeoutError:
            continue
        if wanted in data:
            assert b'csd-code="110110"' in data and b'csd-code="ITI-8"' in data
            assert b'EventActionCode="C"' in data
            return
    raise AssertionError("no ITI-8 audit message reached the Audit Record Repository")


# ---------------------------------------------------------------------------------------------
# ITI-44 / ITI-45 over HTTPS
# ---------------------------------------------------------------------------------------------


def _v3_feed(ids: list[tuple[str, str]]) -> etree._Element:
    return V.PRPA_IN201301UV02(
        V.id(root=str(uuid.uuid4())),
        V.creationTime(value="20240101120000"),
        V.interactionId(root="2.16.840.1.113883.1.6", extension="PRPA_IN201301UV02"),
        V.processingCode(code="P"),
        V.processingModeCode(code="T"),
        V.acceptAckCode(code="AL"),
        V.receiver(
            V.device(V.id(root="1.2.3.9"), classCode="DEV", determinerCode="INSTANCE"), typeCode="RCV"
        ),
        V.sender(
            V.device(V.id(root="1.2.3.100.7"), classCode="DEV", determinerCode="INSTANCE"), typeCode="SND"
        ),
        V.controlActProcess(
            V.subject(
                V.registrationEvent(
                    V.id(nullFlavor="NA"),
                    V.statusCode(code="active"),
                    V.subject1(
                        V.patient(
                            *[V.id(root=root, extension=ext) for ext, root in ids],
                            V.statusCode(code="active"),
                            V.patientPerson(
                                V.name(V.given("Zoë"), V.family("Müller")),
                                classCode="PSN",
                                determinerCode="INSTANCE",
                            ),
                            classCode="PAT",
                        ),
                        typeCode="SBJ",
                    ),
                    V.custodian(
                        V.assignedEntity(V.id(root="1.2.3.100"), classCode="ASSIGNED"), typeCode="CST"
                    ),
                    classCode="REG",
                    moodCode="EVN",
                ),
                typeCode="SUBJ",
            ),
            classCode="CACT",
            moodCode="EVN",
        ),
        ITSVersion="XML_1.0",
    )


def _post(region: Region, stem: str, action: str, body: etree._Element) -> etree._Element:
    url = region.hub.url("/pix")
    resp = requests.post(
        url,
        data=build_envelope(action, url, body),
        headers={"Content-Type": f'application/soap+xml; charset=UTF-8; action="{action}"'},
        timeout=30,
        cert=region.cert(stem),
        verify=str(region.pki / "ca.pem"),
    )
    env = etree.fromstring(resp.content)
    return env.find(f"{{{ns.SOAP12}}}Body")[0]  # type: ignore[index]


def test_iti44_https_feed_under_another_authority_is_ar_204(region: Region) -> None:
    own, foreign = new_id(), new_id()
    reply = _post(region, "hopital-a", SoapAction.ITI44_ADD, _v3_feed([(own, HOPA), (foreign, HOPB)]))
    ack = "v3:acknowledgement"
    assert reply.xpath(f"{ack}/v3:typeCode/@code", namespaces=V3) == ["AR"]
    assert reply.xpath(f"{ack}/v3:acknowledgementDetail/v3:code/@code", namespaces=V3) == ["204"]
    assert reply.xpath(f"{ack}/v3:acknowledgementDetail/v3:code/@codeSystem", namespaces=V3) == [
        "2.16.840.1.113883.12.357"
    ]
    assert reply.xpath(f"{ack}/v3:acknowledgementDetail/v3:location/text()", namespaces=V3) == [
        "/PRPA_IN201301UV02/controlActProcess/subject/registrationEvent/subject1/patient/id[2]"
    ]
    # Nothing was recorded: Hopital A's identifier is unknown to an ITI-9 query.
    assert errors(region.send("hopital-b", qbp(cx(own, HOPA)))) == [("204", "QPD^1^3^1^1")]
    (feed,) = _events(region, cx(foreign, HOPB), "ITI-44")
    assert feed["outcome"] == "serious failure" and "Hopital A" in str(feed["identity"])

    # Its own identifier alone: AA, audited as ITI-44 Patient Record (create).
    reply = _post(region, "hopital-a", SoapAction.ITI44_ADD, _v3_feed([(own, HOPA)]))
    assert reply.xpath(f"{ack}/v3:typeCode/@code", namespaces=V3) == ["AA"]
    feeds = _events(region, cx(own, HOPA), "ITI-44", 2)  # the refused feed named it too
    assert sorted((f["event"], f["action"], f["outcome"]) for f in feeds) == [
        ("Patient Record", "create", "serious failure"),
        ("Patient Record", "create", "success"),
    ]


def test_iti45_https_query_is_audited(region: Region) -> None:
    local = cx(new_id(), HOPA)
    assert ack_code(region.send("hopital-a", adt("A01", local))) == "AA"
    value, authority = local.split("^^^&")[0], HOPA
    query = V.PRPA_IN201309UV02(
        V.id(root=str(uuid.uuid4())),
        V.creationTime(value="20240101120000"),
        V.interactionId(root="2.16.840.1.113883.1.6", extension="PRPA_IN201309UV02"),
        V.processingCode(code="P"),
        V.processingModeCode(code="T"),
        V.acceptAckCode(code="AL"),
        V.receiver(
            V.device(V.id(root="1.2.3.9"), classCode="DEV", determinerCode="INSTANCE"), typeCode="RCV"
        ),
        V.sender(
            V.device(V.id(root="1.2.3.200.7"), classCode="DEV", determinerCode="INSTANCE"), typeCode="SND"
        ),
        V.controlActProcess(
            V.code(code="PRPA_TE201309UV02", codeSystem="2.16.840.1.113883.1.6"),
            V.queryByParameter(
                V.queryId(root="1.2.3.200.8", extension=uuid.uuid4().hex),
                V.statusCode(code="new"),
                V.responsePriorityCode(code="I"),
                V.parameterList(
                    V.patientIdentifier(
                        V.value(root=authority, extension=value), V.semanticsText("Patient.Id")
                    )
                ),
            ),
            classCode="CACT",
            moodCode="EVN",
        ),
        ITSVersion="XML_1.0",
    )
    reply = _post(region, "hopital-b", SoapAction.ITI45, query)
    assert reply.xpath("v3:acknowledgement/v3:typeCode/@code", namespaces=V3) == ["AA"]
    (audited,) = _events(region, local, "ITI-45")
    assert (audited["event"], audited["action"], audited["outcome"]) == ("Query", "execute", "success")
    assert "Hopital B" in str(audited["identity"])
