"""ITI-20 Record Audit Event: the local audit table and its sender, against real syslog receivers over
UDP (RFC 5426) and mutually-authenticated TLS (RFC 5425); records queue while the repository is down
and are re-sent when it comes back, without the audited transactions ever waiting."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import func, select

from tests.conftest import new_patient_id
from tests.hubproc import free_port
from xds_hub.audit import events
from xds_hub.audit.model import AuditMessage
from xds_hub.audit.sender import AuditSender, make_sender
from xds_hub.audit.store import record
from xds_hub.audit.syslog import BOM, octet_counted, parse_repository, syslog_message, transport_for
from xds_hub.audit.tables import audit_patient, audit_record
from xds_hub.config import DEMO_DOMAIN, Settings, load_settings
from xds_hub.errors import ConfigError
from xds_hub.registry.patients import add_patient, is_known
from xds_hub.security.certs import DemoPki, init_pki
from xds_hub.security.tls import peer_identity, server_context
from xds_hub.storage.db import write_transaction
from xds_hub.storage.stores import Stores

SETTINGS = load_settings(None, audit_source_id="XDSHUB-TEST")


def _message(patient: str, uid: str = "1.2.3.4") -> AuditMessage:
    return events.submission_import(
        events.audit_source(SETTINGS),
        "ITI-41",
        events.peer("urn:anon", "10.0.0.7"),
        events.hub_http(SETTINGS, "/xds/repository"),
        patient,
        uid,
    )


def _parse_syslog(data: bytes) -> tuple[list[str], etree._Element]:
    header, _, rest = data.partition(b" - ")
    assert rest.startswith(BOM)
    return header.decode("ascii").split(" "), etree.fromstring(rest[len(BOM) :])


# ---------------------------------------------------------------------------------------------
# Receivers
# ---------------------------------------------------------------------------------------------


@dataclass
class UdpReceiver:
    port: int = field(default_factory=free_port)
    messages: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                data, _ = self.sock.recvfrom(70000)
            except TimeoutError:
                continue
            self.messages.append(data)

    def close(self) -> None:
        self.stop_event.set()
        self.thread.join()
        self.sock.close()


@dataclass
class TlsReceiver:
    """An RFC 5425 receiver that demands a client certificate of the demo CA."""

    pki: DemoPki
    port: int = field(default_factory=free_port)
    messages: list[bytes] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)

    def start(self) -> TlsReceiver:
        arr = self.pki.admin  # any certificate of the CA will do for the repository
        self.context = server_context(str(arr.cert), str(arr.key), str(self.pki.ca.cert))
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.stop_event = threading.Event()
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return self

    def _accept(self) -> None:
        while not self.stop_event.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except OSError:
            return
        self.conns.append(tls)
        identity = peer_identity(tls, DEMO_DOMAIN)
        self.peers.append(identity.subject if identity else "")
        buf = b""
        try:
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while b" " in buf:
                    length, _, rest = buf.partition(b" ")
                    if len(rest) < int(length):
                        break
                    self.messages.append(rest[: int(length)])
                    buf = rest[int(length) :]
        except OSError:
            return

    def stop(self) -> None:
        """The repository goes down: listener and connections closed."""
        self.stop_event.set()
        self.thread.join()
        self.sock.close()
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _unsent(stores: Stores) -> int:
    with stores.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(audit_record).where(audit_record.c.sent_ns.is_(None))
            ).scalar_one()
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    return init_pki(tmp_path_factory.mktemp("pki"), DEMO_DOMAIN)


def _tls_settings(pki: DemoPki, port: int) -> Settings:
    return load_settings(
        None,
        tls_cert=str(pki.hub.cert),
        tls_key=str(pki.hub.key),
        tls_ca=str(pki.ca.cert),
        audit_repository=f"tls://127.0.0.1:{port}",
        audit_source_id="XDSHUB-TEST",
    )


# ---------------------------------------------------------------------------------------------
# Format
# ---------------------------------------------------------------------------------------------


def test_iti20_syslog_message_is_rfc5424_with_ihe_msgid() -> None:
    import datetime as dt

    xml = b"<AuditMessage/>"
    when = dt.datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=dt.UTC)
    msg = syslog_message(xml, timestamp=when, hostname="hub.example.org", procid="42")
    assert msg == b"<85>1 2024-05-01T10:00:00.123Z hub.example.org xds-hub 42 IHE+RFC-3881 - " + BOM + xml
    assert octet_counted(msg) == str(len(msg)).encode() + b" " + msg
    odd = syslog_message(xml, timestamp=when, hostname="my host", procid="")
    assert odd.startswith(b"<85>1 2024-05-01T10:00:00.123Z my_host xds-hub - IHE+RFC-3881 - ")


def test_iti20_repository_urls() -> None:
    assert parse_repository("udp://arr.example").port == 514
    assert parse_repository("tls://arr.example").port == 6514
    assert parse_repository("tls://10.0.0.1:7000").host == "10.0.0.1"
    for bad in ("tcp://arr:514", "arr:514", "udp://:514"):
        with pytest.raises(ConfigError):
            parse_repository(bad)
    with pytest.raises(ConfigError, match="needs tls_cert"):
        transport_for(load_settings(None, audit_repository="tls://127.0.0.1:6514"))
    assert transport_for(load_settings(None)) is None


# ---------------------------------------------------------------------------------------------
# Local table
# ---------------------------------------------------------------------------------------------


def test_iti20_record_commits_and_rolls_back_with_the_callers_transaction(stores: Stores) -> None:
    patient = new_patient_id()
    with pytest.raises(RuntimeError), write_transaction(stores.engine) as conn:
        assert record(_message(patient), conn) is not None
        raise RuntimeError("the submission failed after auditing")
    with write_transaction(stores.engine) as conn:
        record_id = record(_message(patient), conn, aliases=["L9^^^&1.2.3.100&ISO"])
    assert record_id is not None
    with stores.engine.connect() as conn:
        rows = conn.execute(
            select(audit_record.c.id, audit_record.c.event_type, audit_record.c.requestor)
        ).all()
        assert [(r.event_type, r.requestor) for r in rows] == [("ITI-41", "urn:anon")]
        patients = conn.execute(
            select(audit_patient.c.patient_id).order_by(audit_patient.c.patient_id)
        ).scalars()
        assert sorted(patients) == sorted([patient, "L9^^^&1.2.3.100&ISO"])


def test_iti20_failing_audit_insert_does_not_fail_the_transaction(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    import xds_hub.audit.store as store

    def broken(*_: object) -> int:
        raise RuntimeError("audit table unavailable")

    monkeypatch.setattr(store, "_insert", broken)
    patient = new_patient_id()
    with write_transaction(stores.engine) as conn:
        add_patient(conn, patient, DEMO_DOMAIN)
        assert record(_message(patient), conn) is None
    with stores.engine.connect() as conn:
        assert is_known(conn, patient)
    assert record(_message(patient), stores.engine) is None


# ---------------------------------------------------------------------------------------------
# Sending
# ---------------------------------------------------------------------------------------------


def test_iti20_udp_repository_receives_each_record(stores: Stores) -> None:
    receiver = UdpReceiver()
    try:
        settings = load_settings(None, audit_repository=f"udp://127.0.0.1:{receiver.port}")
        patients = [new_patient_id() for _ in range(3)]
        for p in patients:
            record(_message(p), stores.engine)
        sender = make_sender(settings, stores)
        assert sender.flush_once() == 3
        _wait(lambda: len(receiver.messages) == 3)
        for data, patient in zip(receiver.messages, patients, strict=True):
            header, root = _parse_syslog(data)
            assert header[0] == "<85>1" and header[3] == "xds-hub" and header[5] == "IHE+RFC-3881"
            assert (
                root.xpath(
                    "string(ParticipantObjectIdentification[@ParticipantObjectTypeCodeRole='1']"
                    "/@ParticipantObjectID)"
                )
                == patient
            )
        assert _unsent(stores) == 0
        assert sender.flush_once() == 0
    finally:
        receiver.close()


def test_iti20_tls_repository_mutual_authentication_and_octet_counting(stores: Stores, pki: DemoPki) -> None:
    receiver = TlsReceiver(pki).start()
    try:
        sender = make_sender(_tls_settings(pki, receiver.port), stores)
        for _ in range(5):
            record(_message(new_patient_id()), stores.engine)
        assert sender.flush_once() == 5
        _wait(lambda: len(receiver.messages) == 5)
        assert receiver.peers == [pki.hub.subject]  # one kept connection, the hub's certificate
        for data in receiver.messages:
            header, root = _parse_syslog(data)
            assert header[5] == "IHE+RFC-3881" and root.tag == "AuditMessage"
    finally:
        receiver.stop()


def test_iti20_queued_records_survive_the_repository_being_down(stores: Stores, pki: DemoPki) -> None:
    receiver = TlsReceiver(pki).start()
    settings = _tls_settings(pki, receiver.port)
    sender = AuditSender(
        settings, stores, transport_for(settings), poll_seconds=0.05, max_backoff_seconds=0.3
    )
    sender.start()  # records Application Start
    try:
        first = new_patient_id()
        record(_message(first), stores.engine)
        _wait(lambda: len(receiver.messages) >= 2)  # Application Start + the first record

        receiver.stop()  # the Audit Record Repository goes down
        queued = [new_patient_id() for _ in range(4)]
        started = time.monotonic()
        for p in queued:
            assert record(_message(p), stores.engine) is not None
        assert time.monotonic() - started < 2  # recording never waits for the repository
        _wait(lambda: sender.failures >= 2)
        assert _unsent(stores) == 4

        receiver = TlsReceiver(pki, port=receiver.port).start()  # it comes back on the same address
        _wait(lambda: len(receiver.messages) == 4)
        got = [_parse_syslog(m)[1] for m in receiver.messages]
        ids = [
            r.xpath(
                "string(ParticipantObjectIdentification[@ParticipantObjectTypeCodeRole='1']"
                "/@ParticipantObjectID)"
            )
            for r in got
        ]
        assert ids == queued  # in order, none lost
        _wait(lambda: _unsent(stores) == 0)
    finally:
        sender.stop()  # records Application Stop and flushes it
        receiver.stop()
    assert [
        _parse_syslog(m)[1].xpath("string(EventIdentification/EventTypeCode/@csd-code)")
        for m in receiver.messages
    ][-1] == "110121"


def test_iti20_records_queued_with_no_sender_are_sent_after_a_restart(stores: Stores, pki: DemoPki) -> None:
    receiver = TlsReceiver(pki)  # down for now
    settings = _tls_settings(pki, receiver.port)
    first = AuditSender(settings, stores, transport_for(settings), poll_seconds=0.05, max_backoff_seconds=0.2)
    first.start()
    patients = [new_patient_id() for _ in range(3)]
    for p in patients:
        record(_message(p), stores.engine)
    first.stop()  # the hub stops with the repository still down: 5 records stay queued
    assert _unsent(stores) == 5
    receiver.start()
    second = AuditSender(settings, stores, transport_for(settings), poll_seconds=0.05)
    second.start()
    try:
        _wait(lambda: len(receiver.messages) == 6)  # the 5 queued + the new Application Start
        _wait(lambda: _unsent(stores) == 0)  # marked sent once written
    finally:
        second.stop()
        receiver.stop()


def test_iti20_without_repository_records_stay_local(stores: Stores, tmp_path: Path) -> None:
    sender = make_sender(load_settings(None), stores)
    sender.start()
    record(_message(new_patient_id()), stores.engine)
    sender.stop()
    assert sender.sent == 0 and _unsent(stores) == 3  # start, the record, stop


def test_iti20_udp_message_larger_than_a_datagram_is_truncated(stores: Stores) -> None:
    receiver = UdpReceiver()
    try:
        settings = load_settings(None, audit_repository=f"udp://127.0.0.1:{receiver.port}")
        huge = events.stored_query(
            events.audit_source(settings),
            events.peer("x", "10.0.0.1"),
            events.hub_http(settings, "/xds/registry"),
            "urn:uuid:q",
            b"x" * 70000,
        )
        record(huge, stores.engine)
        assert make_sender(settings, stores).flush_once() == 1
        _wait(lambda: len(receiver.messages) == 1)
        assert len(receiver.messages[0]) == 65507
    finally:
        receiver.close()


def test_iti20_tls_sender_refused_by_repository_of_another_ca(
    stores: Stores, pki: DemoPki, tmp_path: Path
) -> None:
    rogue = init_pki(tmp_path / "rogue", DEMO_DOMAIN, org="rogue")
    receiver = TlsReceiver(rogue).start()  # a repository the hub does not trust
    try:
        record(_message(new_patient_id()), stores.engine)
        sender = make_sender(_tls_settings(pki, receiver.port), stores)
        with pytest.raises(ssl.SSLError):
            sender.flush_once()
        assert receiver.messages == [] and _unsent(stores) == 1
    finally:
        receiver.stop()


def test_iti20_record_outcome_after_a_failed_transaction(stores: Stores) -> None:
    import functools

    from xds_hub.audit.store import record_outcome
    from xds_hub.errors import ErrorCode, XdsError

    patient = new_patient_id()
    build = functools.partial(
        events.submission_import,
        events.audit_source(SETTINGS),
        "ITI-42",
        events.peer("urn:anon", "10.0.0.7"),
        events.hub_http(SETTINGS, "/xds/registry"),
        patient,
        "1.2.3.9",
    )
    failure = XdsError.one(ErrorCode.UNKNOWN_PATIENT_ID, f"{patient} is not known")
    assert record_outcome(build, stores.engine, failure) is not None
    with write_transaction(stores.engine) as conn:
        assert record_outcome(build, conn) is not None
    with stores.engine.connect() as conn:
        rows = conn.execute(
            select(audit_record.c.outcome, audit_record.c.outcome_description).order_by(audit_record.c.id)
        ).all()
    assert rows[0].outcome == 8 and "XDSUnknownPatientId" in rows[0].outcome_description
    assert (rows[1].outcome, rows[1].outcome_description) == (0, None)
