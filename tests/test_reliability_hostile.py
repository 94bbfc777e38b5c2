"""Hostile and broken input against a live hub, over real sockets (SQLite and PostgreSQL).

Every case sends its bad bytes to `xds-hub serve`, checks the answer (SOAP fault, RegistryError
code, HL7 ACK code, DICOM status or A-ABORT), checks that nothing of it was stored (rows of the
tables the transaction writes, committed blobs, the blob store's tmp folder) and then proves the
listener still serves with a good transaction of the same kind:

- XML: XXE to a local file and to an http URL (parameter entities, external DTD), billion
  laughs, quadratic blow-up, deep nesting, an 11 MB attribute, processing instructions; floods
  within the limits are answered in bounded time;
- size: a request over ``[hub] max_request_bytes`` (Content-Length, chunked, MTOM);
- MTOM: wrong boundary, garbled delimiter, no close delimiter, missing XOP part, bad base64,
  Content-Length larger than the body, a client hanging up mid-attachment;
- slow clients: partial request heads and bodies held open (slowloris / slow POST), idle floods;
- HL7 v2 over MLLP: start block without end, garbage, a frame over the 4 MiB limit;
- DICOM: a C-STORE cut mid-P-DATA-TF, a cut PDU header, an unknown PDU type, HTTP bytes on the
  DICOM port, a data set truncated inside its framing, a PDU over the negotiated maximum.

Each case is also written to the fault log (bench/faults_support.py, ``XDS_FAULTS_LOG``) that
bench/faults_report.py summarises.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from lxml import etree
from pynetdicom import AE

from bench.faults_support import (
    A_ABORT,
    HubState,
    RawDicom,
    c_store_command,
    dataset_bytes,
    hub_state,
    p_data,
    pdv,
    record_fault,
)
from tests.hubproc import TEST_CONFIG, Hub, db_url_for, drop_pg_database
from tests.imaging_helpers import make_instance
from tests.imaging_helpers import send as c_store
from tests.pix_support import HOPA, ack_code, adt, cx, errors, new_id, read_replies
from tests.pix_support import send as mllp_send
from tests.repository_support import hub_patient, hub_stores, submission_for
from xds_hub import ns
from xds_hub.client.mtom import MultipartBody, OutgoingPart
from xds_hub.client.soap import build_envelope
from xds_hub.client.xds import XdsClient
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.ebxml.render import render_provide_and_register
from xds_hub.pix.mllp import frame
from xds_hub.storage.stores import Stores

MAX_REQUEST = 16 * 1024 * 1024
HOSTILE_CONFIG = TEST_CONFIG + f"\n[hub]\nmax_request_bytes = {MAX_REQUEST}\n"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SOAP = "application/soap+xml; charset=utf-8"
S12 = ns.SOAP12

# ---------------------------------------------------------------------------------------------
# The hub of this module, and what it holds
# ---------------------------------------------------------------------------------------------


@dataclass
class Target:
    hub: Hub
    store: Stores
    pid: str
    backend: str

    def state(self) -> HubState:
        return hub_state(self.store.engine, self.store.blobs)

    def assert_unchanged(self, before: HubState, tables: tuple[str, ...], case: str) -> None:
        """Nothing of the refused input is kept: same rows, same blobs, no tmp leftovers (the hub may
        still be cleaning up after a client that hung up, hence the short wait)."""
        deadline = time.monotonic() + 10
        while True:
            now = self.state()
            same = all(now.rows[t] == before.rows[t] for t in tables) and now.blobs == before.blobs
            if (same and now.tmp_files == 0) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        changed = {t: (before.rows[t], now.rows[t]) for t in tables if now.rows[t] != before.rows[t]}
        assert changed == {}, f"{case}: rows changed {changed}"
        assert (now.blobs, now.tmp_files) == (before.blobs, 0), f"{case}: blobs {before.blobs}->{now.blobs}"


@pytest.fixture(scope="module")
def target(db_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    folder = tmp_path_factory.mktemp(f"hostile-{db_backend}")
    hub = Hub(folder=folder, db_url=db_url_for(db_backend, folder), config_text=HOSTILE_CONFIG).start()
    store = hub_stores(hub)
    try:
        yield Target(hub, store, hub_patient(hub, store), db_backend)
    finally:
        store.close()
        hub.stop(signal.SIGKILL)  # nothing left to check; a SIGTERM stop waits 30 s on the DICOM actor
        if db_backend == "postgresql":
            drop_pg_database(hub.db_url)


def note(t: Target, area: str, case: str, expected: str, observed: str, as_expected: bool = True) -> None:
    """One line of the fault log (bench/faults_report.py)."""
    record_fault(area, case, expected, observed, as_expected, backend=t.backend)


def once(t: Target) -> None:
    """Cases that only exercise a listener (not the database) run on one backend."""
    if t.backend != "sqlite":
        pytest.skip("listener-level case: run on the SQLite hub only")


XDS_TABLES = ("registry_object", "repository_document")
DICOM_TABLES = ("dicom_study", "dicom_series", "dicom_instance")
PIX_TABLES = ("pix_person", "pix_identity")


def good_iti41(t: Target) -> None:
    """A good ITI-41 (MTOM) is accepted: the HTTP listener still serves."""
    sub, contents = submission_for(t.pid, [os.urandom(64)], mime_type="application/octet-stream")
    with XdsClient(repository_url=t.hub.url("/xds/repository"), timeout=60) as client:
        result = client.provide_and_register(sub, contents)
    assert (result.status_name, result.errors) == ("Success", [])


def iti41_envelope(t: Target, size: int = 200) -> bytes:
    """A well-formed ITI-41 envelope with one inline document (the vehicle of the XML attacks)."""
    sub, contents = submission_for(t.pid, [os.urandom(size)], mime_type="application/octet-stream")
    return build_envelope(
        SoapAction.ITI41, t.hub.url("/xds/repository"), render_provide_and_register(sub, contents)
    )


def iti41_mtom(t: Target, sizes: tuple[int, ...] = (5000,)) -> tuple[str, bytes, str]:
    """(Content-Type, body, boundary) of a well-formed ITI-41 MTOM request."""
    sub, contents = submission_for(
        t.pid, [os.urandom(n) for n in sizes], mime_type="application/octet-stream"
    )
    refs: dict[str, str | bytes] = {}
    parts = []
    for i, (entry, data) in enumerate(contents.items()):
        refs[entry] = f"doc{i}@hostile"
        parts.append(OutgoingPart(f"doc{i}@hostile", "application/octet-stream", data=data))
    envelope = build_envelope(
        SoapAction.ITI41, t.hub.url("/xds/repository"), render_provide_and_register(sub, refs)
    )
    body = MultipartBody(envelope, parts, boundary=f"B{uuid.uuid4().hex}")
    return body.content_type(SoapAction.ITI41), b"".join(iter(lambda: body.read(1 << 20), b"")), body.boundary


@dataclass(frozen=True)
class Answer:
    http: int
    fault: list[str]
    reason: str
    status: str
    codes: list[str]


def answer(r: requests.Response) -> Answer:
    """What a SOAP reply says: fault codes and reason, or RegistryResponse status and error codes."""
    content = r.content
    ctype = r.headers.get("Content-Type", "")
    assert not ctype.startswith("text/html"), r.text[:300]
    if ctype.startswith("multipart/"):
        from tests.imaging_helpers import parse_multipart

        content = parse_multipart(content, ctype)[0][1]
    root = etree.fromstring(content)
    fault = [v.text or "" for v in root.iter(ns.qn(S12, "Value"))]
    reason = " ".join(t.text or "" for t in root.iter(ns.qn(S12, "Text")))
    response = next(root.iter(ns.qn(ns.RS, "RegistryResponse")), None)
    status = (response.get("status") or "").rsplit(":", 1)[-1] if response is not None else ""
    codes = [e.get("errorCode", "") for e in root.iter(ns.qn(ns.RS, "RegistryError"))]
    return Answer(r.status_code, fault, reason, status, codes)


def post(t: Target, path: str, data: bytes | Iterator[bytes], ctype: str = SOAP) -> Answer:
    return answer(requests.post(t.hub.url(path), data=data, headers={"Content-Type": ctype}, timeout=120))


# ---------------------------------------------------------------------------------------------
# XML attacks
# ---------------------------------------------------------------------------------------------


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        _Counter.hits.append(self.path)
        body = b'<!ENTITY leak "leaked">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def bait() -> Iterator[str]:
    """An HTTP server that an XXE would make the hub call (it counts every request)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _with_doctype(envelope: bytes, subset: str, reference: str) -> bytes:
    """``envelope`` with an internal DTD ``subset`` and ``reference`` in the text of a slot value."""
    body = envelope.split(b"?>", 1)[1] if envelope.startswith(b"<?xml") else envelope
    marker = b"<rim:Value>"
    at = body.index(marker) + len(marker)
    body = body[:at] + reference.encode() + body[at:]
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE soap:Envelope ' + subset.encode() + b">\n" + body
    )


LAUGHS = (
    "["
    + '<!ENTITY l0 "lol">'
    + "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    + "]"
)


def _xml_cases(secret: Path, bait: str) -> dict[str, Callable[[bytes], bytes]]:
    big = "A" * 50_000
    return {
        "xxe-local-file": lambda e: _with_doctype(e, f'[<!ENTITY x SYSTEM "file://{secret}">]', "&x;"),
        "xxe-http-url": lambda e: _with_doctype(e, f'[<!ENTITY x SYSTEM "{bait}/entity">]', "&x;"),
        "xxe-parameter-entity": lambda e: _with_doctype(
            e, f'[<!ENTITY % p SYSTEM "{bait}/param"> %p;]', "&leak;"
        ),
        "external-dtd": lambda e: _with_doctype(e, f'SYSTEM "{bait}/ext.dtd"', ""),
        "billion-laughs": lambda e: _with_doctype(e, LAUGHS, "&l9;"),
        "quadratic-blowup": lambda e: _with_doctype(e, f'[<!ENTITY big "{big}">]', "&big;" * 20_000),
        "deep-nesting": lambda e: e.replace(
            b"<soap:Header>", b"<soap:Header>" + b"<d>" * 10_000 + b"</d>" * 10_000
        ),
        "huge-attribute": lambda e: e.replace(
            b"<soap:Header>", b'<soap:Header><h a="' + b"A" * 11_000_000 + b'"/>'
        ),
        "processing-instruction": lambda e: e.replace(b"<soap:Header>", b"<soap:Header><?evil x?>"),
    }


XML_CASES = list(_xml_cases(Path("/x"), "http://x"))


@pytest.mark.parametrize("case", XML_CASES)
def test_hostile_xml_is_a_sender_fault_reads_nothing_and_stores_nothing(
    target: Target, bait: str, tmp_path: Path, case: str
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    attack = _xml_cases(secret, bait)[case]
    _Counter.hits = []
    before = target.state()
    started = time.monotonic()
    replies = {path: post(target, path, attack(iti41_envelope(target))) for path in ("/xds/repository",)}
    # the same attack on the registry (ITI-18 vehicle) and the PIX Manager (HL7 v3) endpoints
    for path, action in (("/xds/registry", SoapAction.ITI18), ("/pix", SoapAction.ITI44_ADD)):
        envelope = iti41_envelope(target).replace(SoapAction.ITI41.encode(), action.encode())
        replies[path] = post(target, path, attack(envelope))
    took = time.monotonic() - started
    for path, a in replies.items():
        assert (a.http, a.fault[:1]) == (400, ["soap:Sender"]), (path, a)
        assert "TOP-SECRET" not in a.reason and "leaked" not in a.reason, (path, a.reason)
    time.sleep(0.2)
    assert _Counter.hits == [], f"the hub fetched {_Counter.hits}"
    assert took < 20, f"{case}: {took:.1f} s"
    target.assert_unchanged(before, XDS_TABLES, case)
    good_iti41(target)
    note(
        target,
        "XML (ITI-41, ITI-18, ITI-44 endpoints)",
        case,
        "HTTP 400 soap:Sender, nothing fetched",
        f"400 soap:Sender: {replies['/xds/repository'].reason[:90]}",
    )


@pytest.mark.parametrize(("case", "count"), [("10k-slots", 10_000), ("1M-empty-header-elements", 1_000_000)])
def test_hostile_xml_floods_within_the_limits_are_answered_in_bounded_time(
    target: Target, case: str, count: int
) -> None:
    envelope = iti41_envelope(target)
    if case == "10k-slots":
        slots = b"".join(
            b'<rim:Slot name="urn:test:s%d"><rim:ValueList>' % i
            + b"<rim:Value>v</rim:Value></rim:ValueList></rim:Slot>"
            for i in range(count)
        )
        at = envelope.index(b"<rim:Slot")
        data = envelope[:at] + slots + envelope[at:]
    else:
        data = envelope.replace(b"<soap:Header>", b"<soap:Header><f>" + b"<e/>" * count + b"</f>")
    started = time.monotonic()
    a = post(target, "/xds/repository", data)
    took = time.monotonic() - started
    assert (a.http, a.status, a.codes) == (200, "Success", []), a
    assert took < 60, f"{case}: {took:.1f} s"
    note(
        target,
        "XML (ITI-41)",
        f"{case} ({len(data) // 1024} KiB)",
        "processed in bounded time",
        f"Success in {took:.1f} s",
    )


# ---------------------------------------------------------------------------------------------
# Request size
# ---------------------------------------------------------------------------------------------


def test_hostile_request_over_max_request_bytes_is_413_and_stores_nothing(target: Target) -> None:
    before = target.state()
    big = iti41_envelope(target, size=MAX_REQUEST)  # base64 inline: ~1.33x the limit
    a = post(target, "/xds/repository", big)
    assert (a.http, a.fault) == (413, ["soap:Sender"]), a
    chunked = post(target, "/xds/repository", iter([big[i : i + 65536] for i in range(0, len(big), 65536)]))
    assert (chunked.http, chunked.fault) == (413, ["soap:Sender"]), chunked
    ctype, body, _ = iti41_mtom(target, sizes=(MAX_REQUEST + 1024,))
    mtom = post(target, "/xds/repository", body, ctype)
    assert (mtom.http, mtom.fault) == (413, ["soap:Sender"]), mtom
    target.assert_unchanged(before, XDS_TABLES, "max_request_bytes")
    good_iti41(target)
    note(
        target,
        "HTTP size",
        "request over max_request_bytes (plain, chunked, MTOM)",
        "HTTP 413 soap:Sender",
        f"413 soap:Sender: {a.reason[:80]}",
    )


# ---------------------------------------------------------------------------------------------
# Broken MTOM
# ---------------------------------------------------------------------------------------------


def _mtom_cases() -> dict[str, Callable[[str, bytes, str], tuple[str, bytes]]]:
    def missing_part(ctype: str, body: bytes, boundary: str) -> tuple[str, bytes]:
        start = body.index(b"Content-ID: <doc1@hostile>")
        head = body.rindex(b"\r\n--" + boundary.encode(), 0, start)
        tail = body.index(b"\r\n--" + boundary.encode(), start)
        return ctype, body[:head] + body[tail:]

    def bad_base64(ctype: str, body: bytes, boundary: str) -> tuple[str, bytes]:
        head = body.index(b"Content-ID: <doc0@hostile>")
        end = body.index(b"\r\n\r\n", head) + 4
        body = (
            body[:head]
            + b"Content-Transfer-Encoding: base64\r\n"
            + body[head:end]
            + b"!!not base64!!"
            + body[body.index(b"\r\n--" + boundary.encode(), end) :]
        )
        return ctype, body.replace(
            b"Content-Transfer-Encoding: binary\r\nContent-Transfer-Encoding: base64",
            b"Content-Transfer-Encoding: base64",
        )

    return {
        "wrong boundary parameter": lambda c, b, bd: (c.replace(bd, bd + "X"), b),
        "garbled delimiter": lambda c, b, bd: (
            c,
            b.replace(
                b"--" + bd.encode() + b"\r\nContent-Type: application/octet",
                b"--" + bd[:-3].encode() + b"\r\nContent-Type: application/octet",
            ),
        ),
        "no close delimiter": lambda c, b, bd: (c, b[: b.rindex(b"\r\n--" + bd.encode())]),
        "missing XOP part": missing_part,
        "invalid base64 part": bad_base64,
        "body cut in half": lambda c, b, bd: (c, b[: len(b) // 2]),
        "no boundary parameter": lambda c, b, bd: (c.split("boundary=")[0] + 'type="application/xop+xml"', b),
    }


@pytest.mark.parametrize("case", list(_mtom_cases()))
def test_hostile_broken_mtom_is_a_sender_fault_and_stores_nothing(target: Target, case: str) -> None:
    before = target.state()
    ctype, body, boundary = iti41_mtom(target, sizes=(300_000, 5000))
    ctype, body = _mtom_cases()[case](ctype, body, boundary)
    a = post(target, "/xds/repository", body, ctype)
    assert (a.http, a.fault) == (400, ["soap:Sender"]), a
    target.assert_unchanged(before, XDS_TABLES, case)
    good_iti41(target)
    note(
        target,
        "MTOM (ITI-41)",
        case,
        "HTTP 400 soap:Sender, no blob kept",
        f"400 soap:Sender: {a.reason[:90]}",
    )


def _raw_request(port: int, path: str, ctype: str, length: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
    head += f"Content-Length: {length}\r\n\r\n"
    sock.sendall(head.encode())
    return sock


def _read_reply(sock: socket.socket) -> bytes:
    reply = b""
    while chunk := sock.recv(65536):
        reply += chunk
    sock.close()
    return reply


@pytest.mark.parametrize("case", ["hang-up mid-attachment", "body cut short, then half-close"])
def test_hostile_truncated_mtom_body_stores_nothing(target: Target, case: str) -> None:
    before = target.state()
    ctype, body, _ = iti41_mtom(target, sizes=(3_000_000,))
    sock = _raw_request(target.hub.http_port, "/xds/repository", ctype, len(body))
    if case == "hang-up mid-attachment":
        sock.sendall(body[: len(body) // 2])
        time.sleep(0.3)
        sock.close()
        observed = "connection dropped by the client"
    else:
        sock.sendall(body[:-1000])  # the end of the attachment and the close delimiter never come
        sock.shutdown(socket.SHUT_WR)
        reply = _read_reply(sock)
        status = reply.split(b"\r\n", 1)[0].decode()
        assert status.startswith("HTTP/1.1 400"), reply[:300]
        assert b"soap:Sender" in reply
        observed = f"{status}, soap:Sender"
    target.assert_unchanged(before, XDS_TABLES, case)
    good_iti41(target)
    note(target, "MTOM (ITI-41)", case, "nothing stored, tmp empty", observed)


def test_hostile_mtom_without_its_epilogue_is_whole_and_accepted(target: Target) -> None:
    """Content-Length promises 1,000 more bytes than sent, but the multipart message is complete
    (its close delimiter arrived): the document is whole, the hub takes it (RFC 2046 ignores the
    epilogue)."""
    before = target.state()
    ctype, body, _ = iti41_mtom(target, sizes=(300_000,))
    sock = _raw_request(target.hub.http_port, "/xds/repository", ctype, len(body) + 1000)
    sock.sendall(body)
    sock.shutdown(socket.SHUT_WR)
    reply = _read_reply(sock)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
    assert b"ResponseStatusType:Success" in reply
    assert target.state().rows["repository_document"] == before.rows["repository_document"] + 1
    note(
        target,
        "MTOM (ITI-41)",
        "Content-Length 1,000 bytes over a complete multipart body",
        "whole message accepted",
        "Success (document whole)",
    )


# ---------------------------------------------------------------------------------------------
# Slow clients
# ---------------------------------------------------------------------------------------------

SLOW_HEADS = {
    "partial request head": b"POST /xds/repository HTTP/1.1\r\nHost: x\r\n",
    "partial small body": b"POST /xds/repository HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/soap+xml\r\nContent-Length: 100000\r\n\r\n<soap:Env",
    "idle connection": b"",
}


def test_hostile_slow_heads_and_small_bodies_do_not_hold_the_listener(target: Target) -> None:
    """Three times as many slowloris connections as the hub has HTTP threads (2 x 8)."""
    once(target)
    held: list[socket.socket] = []
    for data in SLOW_HEADS.values():
        for _ in range(48):
            sock = socket.create_connection(("127.0.0.1", target.hub.http_port), timeout=30)
            if data:
                sock.sendall(data)
            held.append(sock)
    try:
        time.sleep(1.0)
        started = time.monotonic()
        assert requests.get(target.hub.url("/healthz"), timeout=30).status_code == 200
        good_iti41(target)
        took = time.monotonic() - started
        expected = target.state()  # with the good submission; the slow ones may never add to it
        assert took < 10, f"served in {took:.1f} s while 144 slow connections were open"
    finally:
        for sock in held:
            sock.close()
    target.assert_unchanged(expected, XDS_TABLES, "slowloris")
    note(
        target,
        "HTTP slow clients",
        "48 partial heads + 48 partial small bodies + 48 idle connections held open",
        "listener keeps serving",
        f"healthz + ITI-41 served in {took:.1f} s",
    )


def test_hostile_slow_large_bodies_are_cut_and_the_listener_recovers(target: Target) -> None:
    """Slow POST: 16 requests (as many as HTTP threads) announcing 8 MB and sending 1 KB hold
    threads only until the watchdog's rate limit cuts them (a few seconds); nothing is stored."""
    once(target)
    ctype, body, _ = iti41_mtom(target, sizes=(8_000_000,))
    held = []
    for _ in range(16):
        sock = _raw_request(target.hub.http_port, "/xds/repository", ctype, len(body))
        sock.sendall(body[:1024])
        held.append(sock)
    try:
        started = time.monotonic()
        good_iti41(target)
        took = time.monotonic() - started
        expected = target.state()
        assert took < 45, f"ITI-41 took {took:.1f} s behind 16 slow POSTs"
        cut = [_cut_by_server(sock, 30) for sock in held]
        assert all(cut), f"{cut.count(False)} slow POSTs still open"
    finally:
        for sock in held:
            sock.close()
    target.assert_unchanged(expected, XDS_TABLES, "slow POST")
    note(
        target,
        "HTTP slow clients",
        "16 slow POSTs (8 MB announced, 1 KB sent)",
        "cut by the server, listener keeps serving",
        f"ITI-41 served in {took:.1f} s; all 16 cut",
    )


def _cut_by_server(sock: socket.socket, timeout: float) -> bool:
    """Whether the hub answers (a fault) or closes ``sock`` within ``timeout`` seconds."""
    sock.settimeout(timeout)
    try:
        sock.recv(65536)
        return True
    except TimeoutError:
        return False
    except OSError:
        return True


# ---------------------------------------------------------------------------------------------
# HL7 v2 over MLLP
# ---------------------------------------------------------------------------------------------


def _good_feed(t: Target) -> None:
    reply = mllp_send(t.hub.mllp_port, adt("A01", cx(new_id(), HOPA)))
    assert ack_code(reply) == "AA"


def test_hostile_mllp_start_block_without_end_is_dropped(target: Target) -> None:
    message = adt("A01", cx(new_id(), HOPA)).encode()
    cut = socket.create_connection(("127.0.0.1", target.hub.mllp_port), timeout=30)
    cut.sendall(b"\x0b" + message)  # no <FS><CR>
    held = socket.create_connection(("127.0.0.1", target.hub.mllp_port), timeout=30)
    held.sendall(b"\x0b" + message[:40])  # left open while others are served
    _good_feed(target)
    expected = target.state()  # with the good feed, without the broken frames
    cut.close()
    held.close()
    time.sleep(0.3)
    target.assert_unchanged(expected, PIX_TABLES, "MLLP start block without end")
    _good_feed(target)
    note(
        target,
        "HL7 v2 / MLLP",
        "start block without end block, then hang-up (and one held open)",
        "frame dropped, nothing stored",
        "dropped; other connections served meanwhile",
    )


@pytest.mark.parametrize(
    ("case", "payload"),
    [
        ("binary garbage", b"\x00\xff\xfe garbage \x01\x02"),
        ("no MSH segment", b"PID|1||X\r"),
        ("MSH only, no fields", b"MSH|"),
    ],
)
def test_hostile_mllp_garbage_frame_gets_ar(target: Target, case: str, payload: bytes) -> None:
    before = target.state()
    with socket.create_connection(("127.0.0.1", target.hub.mllp_port), timeout=30) as sock:
        sock.sendall(frame(payload))
        (reply,) = read_replies(sock, 1)
        assert ack_code(reply) in ("AR", "AE"), reply.text
        assert errors(reply), reply.text
    target.assert_unchanged(before, PIX_TABLES, case)
    with socket.create_connection(("127.0.0.1", target.hub.mllp_port), timeout=30) as sock:
        sock.sendall(frame(payload) + frame(adt("A01", cx(new_id(), HOPA)).encode()))
        _, good = read_replies(sock, 2)  # on the same connection, the next message is fed
        assert ack_code(good) == "AA"
    note(target, "HL7 v2 / MLLP", case, "ACK AR/AE with ERR", f"{ack_code(reply)} ERR {errors(reply)[0][0]}")


def test_hostile_mllp_frame_over_the_limit_closes_only_that_connection(target: Target) -> None:
    before = target.state()
    message = adt("A01", cx(new_id(), HOPA)).encode()
    with socket.create_connection(("127.0.0.1", target.hub.mllp_port), timeout=30) as sock:
        try:
            sock.sendall(b"\x0b" + message + b"X" * (5 * 1024 * 1024) + b"\x1c\r")
            closed = sock.recv(1000) == b""
        except OSError:
            closed = True
    assert closed
    target.assert_unchanged(before, PIX_TABLES, "MLLP frame over 4 MiB")
    _good_feed(target)
    note(
        target,
        "HL7 v2 / MLLP",
        "5 MiB frame (limit 4 MiB)",
        "connection closed, listener serves",
        "connection closed; next feed AA",
    )


# ---------------------------------------------------------------------------------------------
# DICOM upper layer
# ---------------------------------------------------------------------------------------------


def _good_store(t: Target) -> None:
    assert c_store(t.hub.dicom_port, [make_instance()]) == [0]


def _associated(t: Target) -> RawDicom:
    peer = RawDicom(t.hub.dicom_port)
    assert peer.associate("HOPA_CT", "XDSHUB", CT_IMAGE)
    return peer


def _store_request(size: int = 256) -> tuple[bytes, bytes]:
    ds = make_instance(size=size)
    return c_store_command(CT_IMAGE, ds.SOPInstanceUID), dataset_bytes(ds)


def test_hostile_dicom_cstore_cut_mid_pdata_stores_nothing(target: Target) -> None:
    before = target.state()
    command, data = _store_request()
    cut_pdu = _associated(target)
    cut_pdu.send(p_data(pdv(1, 0x03, command)))
    pdu = p_data(pdv(1, 0x02, data))
    cut_pdu.send(pdu[: len(pdu) // 2])  # half a P-DATA-TF, then the connection ends
    cut_pdu.close()
    cut_header = _associated(target)
    cut_header.send(p_data(pdv(1, 0x03, command)) + pdu[:3])  # half a PDU header
    cut_header.close()
    many = _associated(target)  # the first fragments of a data set, then the end
    many.send(p_data(pdv(1, 0x03, command)) + p_data(pdv(1, 0x00, data[:4000])))
    many.close()
    target.assert_unchanged(before, DICOM_TABLES, "C-STORE cut mid-P-DATA")
    _good_store(target)
    note(
        target,
        "DICOM",
        "C-STORE cut mid-P-DATA-TF / mid-PDU header / after first fragments, then hang-up",
        "association aborted, nothing stored",
        "nothing stored; next C-STORE Success",
    )


@pytest.mark.parametrize(
    ("case", "payload", "associate"),
    [
        ("unknown PDU type after association", b"\xff\x00\x00\x00\x00\x04abcd", True),
        ("HTTP request on the DICOM port", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False),
        ("0xFF garbage instead of A-ASSOCIATE-RQ", b"\xff" * 1000, False),
        ("garbage announcing a 33 MB PDU", bytes(range(256)) * 4, False),
    ],
)
def test_hostile_dicom_bad_pdu_is_aborted(target: Target, case: str, payload: bytes, associate: bool) -> None:
    if case.startswith("garbage announcing"):
        once(target)
    before = target.state()
    peer = _associated(target) if associate else RawDicom(target.hub.dicom_port)
    peer.send(payload)
    peer.sock.settimeout(5)
    try:
        kind, _ = peer.read_pdu()
        observed = "A-ABORT" if kind == A_ABORT else f"PDU 0x{kind:02X}"
    except TimeoutError:
        observed = "no answer within 5 s"
    except (ConnectionError, OSError):
        observed = "connection closed"
    peer.close()
    note(
        target,
        "DICOM",
        case,
        "A-ABORT (PS3.8 9.3.8) or close",
        observed,
        as_expected=observed in ("A-ABORT", "connection closed"),
    )
    assert observed in ("A-ABORT", "connection closed"), observed
    target.assert_unchanged(before, DICOM_TABLES, case)
    _good_store(target)


def test_hostile_dicom_dataset_truncated_inside_pixel_data_fails_c000_and_stores_nothing(
    target: Target,
) -> None:
    once(target)
    before = target.state()
    command, data = _store_request(size=128)
    peer = _associated(target)
    peer.send(p_data(pdv(1, 0x03, command)) + p_data(pdv(1, 0x02, data[: len(data) - 10_000])))
    status = peer.read_status()
    peer.release()
    note(
        target,
        "DICOM",
        "data set cut inside Pixel Data (framing intact)",
        "C-STORE 0xC000, nothing stored",
        f"status 0x{status:04X}",
        as_expected=status == 0xC000,
    )
    assert status == 0xC000
    target.assert_unchanged(before, DICOM_TABLES, "truncated data set")


def test_hostile_dicom_pdu_over_the_negotiated_maximum_is_aborted(target: Target) -> None:
    once(target)
    peer = _associated(target)
    peer.send(struct.pack(">BBI", 0x04, 0, 512 * 1024 * 1024))  # announces 512 MiB
    aborted = False
    try:
        for _ in range(16):
            peer.send(bytes(1024 * 1024))
        peer.sock.settimeout(3)
        kind, _ = peer.read_pdu()
        aborted = kind == A_ABORT
    except TimeoutError:
        aborted = False  # still reading the 512 MiB
    except (ConnectionError, OSError):
        aborted = True  # the hub hung up on us: refused too
    finally:
        peer.close()
    note(
        target,
        "DICOM",
        "P-DATA-TF announcing 512 MiB (negotiated max 4 MiB)",
        "A-ABORT before reading it",
        "aborted" if aborted else "buffered (16 MiB sent, no abort)",
        as_expected=aborted,
    )
    _good_store(target)
    assert aborted


# Last: the idle connections it opens hold pynetdicom's association slots for a while after.
def test_hostile_dicom_idle_connections_do_not_lock_out_members(target: Target) -> None:
    once(target)
    held = [socket.create_connection(("127.0.0.1", target.hub.dicom_port), timeout=30) for _ in range(70)]
    try:
        time.sleep(0.5)
        ae = AE(ae_title="HOPA_CT")
        ae.acse_timeout = ae.network_timeout = 3
        ae.add_requested_context(CT_IMAGE, ["1.2.840.10008.1.2.1"])
        assoc = ae.associate("127.0.0.1", target.hub.dicom_port, ae_title="XDSHUB")
        statuses: list[int] = []
        if assoc.is_established:
            statuses = [int(assoc.send_c_store(make_instance()).Status)]
            assoc.release()
        observed = f"C-STORE statuses {statuses}" if statuses else "association rejected"
    finally:
        for sock in held:
            sock.close()
    note(
        target,
        "DICOM",
        "70 idle TCP connections held open",
        "members still associate",
        observed,
        as_expected=statuses == [0],
    )
    assert statuses == [0]
