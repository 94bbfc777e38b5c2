"""Helpers of the PIX tests: HL7 v2 / v3 messages, MLLP and SOAP calls, a fake PIX Consumer."""

from __future__ import annotations

import socket
import ssl
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import requests
from lxml import etree

from tests.hubproc import Hub
from xds_hub import ns
from xds_hub.client.soap import build_envelope
from xds_hub.pix import hl7v2
from xds_hub.pix.hl7v2 import V2Message
from xds_hub.pix.mllp import FrameReader, MllpClient, frame

AFFINITY = "1.3.6.1.4.1.21367.13.20.1000"
HOPA = "1.2.3.100"
HOPB = "1.2.3.200"
CLIC = "1.2.3.300"
NATIONAL = "1.2.250.1.213.1.4.8"


def new_id(prefix: str = "L") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12].upper()}"


def cx(value: str, authority: str) -> str:
    return f"{value}^^^&{authority}&ISO"


def adt(
    event: str,
    *pid3: str,
    mrg: Sequence[str] = (),
    control: str | None = None,
    version: str = "2.3.1",
    sending: tuple[str, str] = ("HOPA_ADT", "HOPA"),
    name: str = "DUPONT^JEAN^^^^^L",
    msh9: str | None = None,
    processing: str = "P",
    extra: str = "",
) -> str:
    """An ITI-8 ADT message (PID-3 = ``pid3``; MRG-1 = ``mrg`` for A40)."""
    control = uuid.uuid4().hex[:16] if control is None else control
    structure = "ADT_A39" if event == "A40" else "ADT_A01"
    msh9 = msh9 or f"ADT^{event}^{structure}"
    segs = [
        f"MSH|^~\\&|{sending[0]}|{sending[1]}|XDSHUB|REGION|20240101120000||{msh9}|{control}|{processing}|{version}",
        f"EVN|{event}|20240101120000",
        f"PID|1||{'~'.join(pid3)}||{name}||19700101|M",
    ]
    if mrg:
        segs.append(f"MRG|{'~'.join(mrg)}")
    segs.append("PV1||O")
    return "\r".join(segs) + "\r" + extra


def qbp(pid: str, domains: Sequence[str] = (), control: str | None = None, tag: str = "Q1") -> str:
    control = control or uuid.uuid4().hex[:16]
    return (
        f"MSH|^~\\&|CONSUMER|HOPB|XDSHUB|REGION|20240101120000||QBP^Q23^QBP_Q21|{control}|P|2.5\r"
        f"QPD|IHE PIX Query|{tag}|{pid}|{'~'.join(domains)}\r"
        "RCP|I\r"
    )


def send(port: int, text: str, timeout: float = 30.0) -> V2Message:
    """One message over a fresh MLLP connection; the parsed reply."""
    with MllpClient("127.0.0.1", port, timeout=timeout) as client:
        return hl7v2.parse(client.request(text))


def send_raw(port: int, data: bytes, replies: int, timeout: float = 30.0) -> list[V2Message]:
    """Raw bytes over one connection; the first ``replies`` replies, parsed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_replies(sock, replies)


def read_replies(sock: socket.socket, count: int) -> list[V2Message]:
    reader = FrameReader()
    frames: list[bytes] = []
    while len(frames) < count:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed after {len(frames)} of {count} replies")
        frames += reader.feed(data)
    return [hl7v2.parse(f.decode("utf-8")) for f in frames]


def ack_code(msg: V2Message) -> str:
    msa = msg.first("MSA")
    assert msa is not None, msg.text
    return msa.value(1)


def errors(msg: V2Message) -> list[tuple[str, str]]:
    """(ERR-3 code, ERR-2 location) of each ERR segment."""
    out = []
    for err in msg.all("ERR"):
        location = "^".join(p for p in (err.value(2, comp=c) for c in range(1, 6)) if p)
        out.append((err.value(3, comp=1), location))
    return out


def pid3(msg: V2Message) -> set[str]:
    """The identifiers of the PID segment of a reply, as CX strings."""
    pid = msg.first("PID")
    if pid is None:
        return set()
    return {cx(pid.value(3, r, 1), pid.value(3, r, 4, 2)) for r in range(1, pid.repetitions(3) + 1)}


def query_ids(port: int, pid: str, domains: Sequence[str] = ()) -> tuple[str, set[str]]:
    """(QAK-2, identifiers) of an ITI-9 query."""
    reply = send(port, qbp(pid, [f"^^^&{d}&ISO" for d in domains]))
    qak = reply.first("QAK")
    assert qak is not None
    return qak.value(2), pid3(reply)


# ---------------------------------------------------------------------------------------------
# HL7 v3 over SOAP
# ---------------------------------------------------------------------------------------------

V3 = {"v3": ns.HL7V3}


def post_v3(hub: Hub, action: str, body: etree._Element) -> etree._Element:
    """POST an HL7 v3 interaction to /pix; the soap:Body child of the reply."""
    url = hub.url("/pix")
    data = build_envelope(action, url, body)
    resp = requests.post(
        url,
        data=data,
        headers={"Content-Type": f'application/soap+xml; charset=UTF-8; action="{action}"'},
        timeout=30,
    )
    env = etree.fromstring(resp.content)
    child = env.find(f"{{{ns.SOAP12}}}Body")[0]  # type: ignore[index]
    return child


def v3_text(el: etree._Element, path: str) -> list[str]:
    return [str(x) for x in el.xpath(path, namespaces=V3)]


# ---------------------------------------------------------------------------------------------
# A PIX Consumer receiving ITI-10 notifications
# ---------------------------------------------------------------------------------------------


class FakeConsumer:
    """An MLLP server that records what it receives and answers each message with ``ack``."""

    def __init__(self, port: int, ack: str = "AA", tls: ssl.SSLContext | None = None) -> None:
        """``tls``: a server context: the consumer speaks MLLP over TLS and records peer certificates."""
        self.port = port
        self.ack = ack
        self.tls = tls
        self.peers: list[dict[str, Any]] = []
        self.received: list[V2Message] = []
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._got = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.tls is not None:
                try:
                    conn.settimeout(5)
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except OSError:
                    conn.close()
                    continue
                self.peers.append(conn.getpeercert() or {})
            with conn:
                conn.settimeout(5)
                reader = FrameReader()
                try:
                    while True:
                        data = conn.recv(65536)
                        if not data:
                            break
                        for f in reader.feed(data):
                            msg = hl7v2.parse(f.decode())
                            reply = (
                                f"MSH|^~\\&|CONS|X|XDSHUB||20240101||ACK^A31^ACK|{uuid.uuid4().hex[:10]}|P|2.5\r"
                                f"MSA|{self.ack}|{msg.control_id}\r"
                            )
                            conn.sendall(frame(reply.encode()))
                            with self._got:
                                self.received.append(msg)
                                self._got.notify_all()
                except OSError:
                    continue

    def wait_for(self, count: int, timeout: float = 20.0) -> list[V2Message]:
        with self._got:
            self._got.wait_for(lambda: len(self.received) >= count, timeout=timeout)
            return list(self.received)

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=5)


@contextmanager
def consumer(port: int, ack: str = "AA", tls: ssl.SSLContext | None = None) -> Iterator[FakeConsumer]:
    c = FakeConsumer(port, ack, tls)
    try:
        yield c
    finally:
        c.close()
