"""ITI-19 node authentication on the hub's listeners, over real sockets: the TLS contexts and helpers the
HTTP, MLLP and DICOM listeners use, the peer identity they derive, and refusals being reported."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.hubproc import free_port
from xds_hub.config import DEMO_DOMAIN, AffinityDomain, Settings, load_settings
from xds_hub.security.access import NodeIdentity
from xds_hub.security.certs import DemoPki, init_pki
from xds_hub.security.tls import (
    ServerContext,
    client_ssl_context,
    dicom_tls_args,
    peer_identity,
    requests_tls,
    server_context,
    server_ssl_context,
    wrap_server_socket,
)


@dataclass
class Pkis:
    good: DemoPki
    rogue: DemoPki  # same names, another CA

    def settings_for(self, who: str, pki: DemoPki | None = None) -> Settings:
        pki = pki or self.good
        cert = {c.name: c for c in pki.all}[who]
        return load_settings(None, tls_cert=str(cert.cert), tls_key=str(cert.key), tls_ca=str(pki.ca.cert))


@pytest.fixture(scope="module")
def pkis(tmp_path_factory: pytest.TempPathFactory) -> Pkis:
    return Pkis(
        good=init_pki(tmp_path_factory.mktemp("pki"), DEMO_DOMAIN),
        rogue=init_pki(tmp_path_factory.mktemp("rogue"), DEMO_DOMAIN, org="rogue"),
    )


def secured_domain(pki: DemoPki) -> AffinityDomain:
    subjects = {c.name: c.tls_subject for c in pki.establishments}
    return dataclasses.replace(
        DEMO_DOMAIN,
        establishments=tuple(
            dataclasses.replace(e, tls_subjects=(subjects[e.name],)) for e in DEMO_DOMAIN.establishments
        ),
        admin_subjects=(pki.admin.tls_subject,),
    )


@dataclass
class Listener:
    """A TLS listener like the MLLP one: accept, then wrap in the connection's thread."""

    context: ssl.SSLContext
    domain: AffinityDomain
    port: int = field(default_factory=free_port)
    identities: list[NodeIdentity | None] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    refused: list[tuple[str | None, BaseException]] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        if isinstance(self.context, ServerContext):
            self.context.on_refused = lambda addr, exc: self.refused.append((addr, exc))
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            tls = wrap_server_socket(conn, self.context)
        except OSError as exc:
            self.errors.append(exc)
            return
        with tls:
            identity = peer_identity(tls, self.domain)
            self.identities.append(identity)
            data = tls.recv(100)
            self.payloads.append(data)
            tls.sendall(b"hello " + (identity.label.encode() if identity else b"anonymous"))

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def listener(pkis: Pkis) -> Iterator[Listener]:
    hub = pkis.settings_for("hub")
    ctx = server_ssl_context(hub)
    assert ctx is not None
    ctx.handshake_timeout = 1.0
    lst = Listener(ctx, secured_domain(pkis.good))
    yield lst
    lst.close()


def _talk(port: int, ctx: ssl.SSLContext) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
        tls.sendall(b"ping")
        return tls.recv(100)


def _client(settings: Settings | None, pki: DemoPki) -> ssl.SSLContext:
    if settings is not None:
        ctx = client_ssl_context(settings)
        assert ctx is not None
        return ctx
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # trusts the hub, presents nothing
    ctx.load_verify_locations(str(pki.ca.cert))
    ctx.check_hostname = False
    return ctx


def _wait(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_iti19_establishment_certificate_is_accepted_and_identified(pkis: Pkis, listener: Listener) -> None:
    assert _talk(listener.port, _client(pkis.settings_for("Hopital A"), pkis.good)) == b"hello Hopital A"
    identity = listener.identities[0]
    assert identity is not None and identity.establishment is not None
    assert identity.establishment.name == "Hopital A"
    assert identity.alt_names == ("URI:urn:oid:1.2.3.100",)
    assert identity.subject == "CN=Hopital A,O=xds-hub demo region"
    assert _talk(listener.port, _client(pkis.settings_for("admin"), pkis.good)) == b"hello admin"
    assert listener.identities[1] is not None and listener.identities[1].admin


def test_iti19_client_without_certificate_is_refused_before_any_data(pkis: Pkis, listener: Listener) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _talk(listener.port, _client(None, pkis.good))
    _wait(lambda: listener.errors)
    assert isinstance(listener.errors[0], ssl.SSLError)
    assert listener.payloads == [] and listener.identities == []
    _wait(lambda: listener.refused)
    assert listener.refused[0][0] == "127.0.0.1"


def test_iti19_certificate_from_another_ca_is_refused(pkis: Pkis, listener: Listener) -> None:
    rogue = pkis.settings_for("Hopital A", pkis.rogue)
    ctx = _client(rogue, pkis.rogue)
    ctx.load_verify_locations(str(pkis.good.ca.cert))  # trusts the hub; presents a rogue certificate
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _talk(listener.port, ctx)
    _wait(lambda: listener.refused)
    assert "certificate" in str(listener.refused[0][1]).lower()
    assert listener.payloads == []


def test_iti19_tls_below_1_2_is_refused(pkis: Pkis, listener: Listener) -> None:
    ctx = _client(pkis.settings_for("Hopital A"), pkis.good)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _talk(listener.port, ctx)
    assert listener.payloads == []


def test_iti19_silent_client_times_out_and_port_probe_is_not_an_alert(listener: Listener) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", listener.port)):
        _wait(lambda: listener.errors, timeout=5)
    assert time.monotonic() - started < 4  # the handshake timeout (1 s) freed the connection
    assert isinstance(listener.errors[0], TimeoutError)
    with socket.create_connection(("127.0.0.1", listener.port)):
        pass  # connect and close, as a health probe does
    _wait(lambda: len(listener.errors) == 2)
    time.sleep(0.1)
    assert listener.refused == []


def test_iti19_server_only_tls_has_no_peer_identity(pkis: Pkis) -> None:
    hub = pkis.good.hub
    ctx = server_context(str(hub.cert), str(hub.key))  # no CA: no client certificate asked
    lst = Listener(ctx, secured_domain(pkis.good))
    try:
        assert _talk(lst.port, _client(None, pkis.good)) == b"hello anonymous"
        assert lst.identities == [None]
    finally:
        lst.close()


def test_iti19_unmapped_certificate_of_the_ca_is_a_member_without_establishment(
    pkis: Pkis, listener: Listener
) -> None:
    listener.domain = DEMO_DOMAIN  # no tls_subjects configured
    assert _talk(listener.port, _client(pkis.settings_for("Hopital A"), pkis.good)).startswith(b"hello CN=")
    identity = listener.identities[0]
    assert identity is not None and identity.establishment is None and not identity.admin


def test_tls_client_helpers(pkis: Pkis) -> None:
    settings = pkis.settings_for("hub")
    assert requests_tls(settings) == {
        "cert": (settings.tls_cert, settings.tls_key),
        "verify": settings.tls_ca,
    }
    args = dicom_tls_args(settings, "pacs.example")
    assert args is not None and isinstance(args[0], ssl.SSLContext) and args[1] == "pacs.example"
    assert args[0].minimum_version == ssl.TLSVersion.TLSv1_2
    plain = load_settings(None)
    assert requests_tls(plain) == {} and dicom_tls_args(plain, "x") is None
    assert server_ssl_context(plain) is None and client_ssl_context(plain) is None


def test_iti19_dicom_listener_with_pynetdicom(pkis: Pkis) -> None:
    """What the DICOM listener does: ``AE.start_server(ssl_context=...)``; the C-ECHO handler sees the
    establishment behind the association; a node without a certificate gets no association."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    domain = secured_domain(pkis.good)
    seen: list[NodeIdentity | None] = []

    def on_echo(event: evt.Event) -> int:
        assert event.assoc.dul.socket is not None
        seen.append(peer_identity(event.assoc.dul.socket.socket, domain))
        return 0x0000

    server_ae = AE(ae_title="XDSHUB")
    server_ae.add_supported_context(Verification)
    ctx = server_ssl_context(pkis.settings_for("hub"))
    assert ctx is not None
    ctx.handshake_timeout = 2.0
    port = free_port()
    server = server_ae.start_server(
        ("127.0.0.1", port), block=False, ssl_context=ctx, evt_handlers=[(evt.EVT_C_ECHO, on_echo)]
    )
    try:
        client = AE(ae_title="HOPA_CT")
        client.add_requested_context(Verification)
        client.network_timeout = client.acse_timeout = 5
        assoc = client.associate(
            "127.0.0.1", port, ae_title="XDSHUB", tls_args=dicom_tls_args(pkis.settings_for("Hopital A"), "x")
        )
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0x0000
        assoc.release()
        assert seen and seen[0] is not None and seen[0].establishment is not None
        assert seen[0].establishment.name == "Hopital A"
        anonymous = _client(None, pkis.good)
        assoc = client.associate("127.0.0.1", port, ae_title="XDSHUB", tls_args=(anonymous, "x"))
        assert not assoc.is_established
        assert len(seen) == 1
    finally:
        assert server is not None
        server.shutdown()


def test_certs_keys_are_private(pkis: Pkis) -> None:
    for cert in pkis.good.all:
        assert cert.key.stat().st_mode & 0o077 == 0, cert.key
        assert Path(cert.cert).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
