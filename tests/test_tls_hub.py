"""ITI-19 against a live hub (`xds-hub serve` with TLS in its config): a node without a certificate from
the configured CA is refused during the TLS handshake, before any HTTP is read; a member's certificate
works; each refusal is a Security Alert in the audit trail (ITI-20)."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from tests.hubproc import TEST_CONFIG, Hub
from xds_hub.audit.tables import audit_record
from xds_hub.config import DEMO_DOMAIN
from xds_hub.security.certs import DemoPki, init_pki
from xds_hub.storage.db import make_engine


def tls_config(pki: DemoPki) -> str:
    """The test region with TLS on, establishments named by their certificates, one admin."""
    text = TEST_CONFIG
    for est in pki.establishments:
        line = f'name = "{est.name}"\n'
        text = text.replace(line, line + f'tls_subjects = ["{est.tls_subject}"]\n')
    return text + (
        f'\n[hub]\ntls_cert = "{pki.hub.cert}"\ntls_key = "{pki.hub.key}"\ntls_ca = "{pki.ca.cert}"\n'
        f'\n[security]\nadmin_subjects = ["{pki.admin.tls_subject}"]\n'
    )


@pytest.fixture
def tls_hub(hub_factory: Callable[..., Hub], tmp_path: Path) -> tuple[Hub, DemoPki, DemoPki]:
    pki = init_pki(tmp_path / "pki", DEMO_DOMAIN)
    rogue = init_pki(tmp_path / "rogue", DEMO_DOMAIN, org="rogue")
    hopa = pki.establishments[0]
    hub = hub_factory(config_text=tls_config(pki), tls_client=(hopa.cert, hopa.key, pki.ca.cert))
    return hub, pki, rogue


def _alerts(hub: Hub, event_id: str) -> int:
    engine = make_engine(hub.db_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(audit_record).where(audit_record.c.event_id == event_id)
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_iti19_hub_refuses_nodes_without_a_certificate_of_its_ca(
    tls_hub: tuple[Hub, DemoPki, DemoPki],
) -> None:
    hub, pki, rogue = tls_hub
    # A member with its establishment certificate: served; so are the other members and the admin.
    ok = requests.get(hub.url("/healthz"), timeout=10, **hub.requests_tls())  # type: ignore[arg-type]
    assert ok.status_code == 200 and ok.json()["status"] == "ok"
    for cert in (*pki.establishments[1:], pki.admin):
        r = requests.get(
            hub.url("/healthz"), timeout=10, verify=str(pki.ca.cert), cert=(str(cert.cert), str(cert.key))
        )
        assert r.status_code == 200

    # Plain HTTP on the TLS port: the bytes are not a ClientHello; no HTTP answer ever comes back.
    with socket.create_connection(("127.0.0.1", hub.http_port), timeout=10) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
        try:
            answer = raw.recv(1024)
        except ConnectionError:
            answer = b""
    assert b"HTTP/" not in answer

    # TLS without a client certificate: refused in the handshake.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(hub.url("/healthz"), timeout=10, verify=str(pki.ca.cert))

    # A certificate with the right names, from another CA: refused too.
    fake = rogue.establishments[0]
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(
            hub.url("/healthz"), timeout=10, verify=str(pki.ca.cert), cert=(str(fake.cert), str(fake.key))
        )

    # At the socket level: the handshake itself fails, the request is never written.
    ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
    ctx.check_hostname = False
    with (
        socket.create_connection(("127.0.0.1", hub.http_port), timeout=10) as raw,
        pytest.raises((ssl.SSLError, ConnectionError)),
        ctx.wrap_socket(raw) as tls,
    ):
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
        assert tls.recv(1024) == b""  # TLS 1.3: the refusal alert arrives after the client's Finished

    # Each TLS-level refusal is a Security Alert (node authentication) in the hub's audit trail.
    # The audit sender (started after the other actors) records the hub's Application Start.
    deadline = time.monotonic() + 60
    while (_alerts(hub, "110113") < 3 or _alerts(hub, "110100") < 1) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alerts(hub, "110113") >= 3
    assert _alerts(hub, "110100") >= 1
