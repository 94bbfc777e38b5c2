"""ITI-10 over TLS: a subscriber configured with ``tls = true`` receives its PIX Update
Notifications over MLLP/TLS, from a hub that shows its own certificate (ITI-19 between nodes);
``tls = true`` without a hub certificate is a configuration error."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.hubproc import Hub, free_port
from tests.pix_support import AFFINITY, HOPA, NATIONAL, adt, consumer, cx, new_id, pid3
from tests.test_tls_hub import tls_config
from xds_hub.config import DEMO_DOMAIN
from xds_hub.pix import hl7v2
from xds_hub.pix.mllp import MllpClient
from xds_hub.security.certs import DemoPki, init_pki
from xds_hub.security.tls import client_context

SUBSCRIBER = """
[pix]
application = "REGION_PIX"
facility = "REGION"

[[pix.subscriber]]
name = "Hopital B"
host = "127.0.0.1"
port = {port}
domains = ["{affinity}"]
tls = true
"""


def _consumer_context(pki: DemoPki) -> ssl.SSLContext:
    """The consumer's side: a server certificate of the region's CA, clients must show one too."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.hub.cert, pki.hub.key)
    ctx.load_verify_locations(cafile=pki.ca.cert)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def test_iti10_notification_goes_over_tls_with_the_hub_certificate(
    hub_factory: Callable[..., Hub], tmp_path: Path
) -> None:
    pki = init_pki(tmp_path / "pki", DEMO_DOMAIN)
    member = pki.establishments[0]
    port = free_port()
    with consumer(port, tls=_consumer_context(pki)) as c:
        config = tls_config(pki) + SUBSCRIBER.format(port=port, affinity=AFFINITY)
        hub = hub_factory(config_text=config, tls_client=(member.cert, member.key, pki.ca.cert))
        feeder = client_context(str(member.cert), str(member.key), str(pki.ca.cert))
        with MllpClient("127.0.0.1", hub.mllp_port, timeout=30, context=feeder) as mllp:
            reply = hl7v2.parse(mllp.request(adt("A01", cx(new_id(), HOPA), cx(new_id("N"), NATIONAL))))
        assert reply.first("MSA").value(1) == "AA"  # type: ignore[union-attr]
        (notification,) = c.wait_for(1)
    assert (notification.message_type, notification.trigger_event) == ("ADT", "A31")
    assert all(i.endswith(f"&{AFFINITY}&ISO") for i in pid3(notification))
    # The hub presented its own certificate to the consumer.
    subject = dict(x[0] for x in c.peers[0]["subject"])
    assert subject["commonName"] == dict(x[0] for x in _subject(pki.hub.cert))["commonName"]


def _subject(cert: Path) -> tuple[tuple[tuple[str, str], ...], ...]:
    decoded = ssl._ssl._test_decode_cert(str(cert))  # type: ignore[attr-defined]
    return tuple(decoded["subject"])


def test_iti10_tls_subscriber_needs_a_hub_certificate(tmp_path: Path) -> None:
    from tests.hubproc import TEST_CONFIG

    config = tmp_path / "hub.toml"
    ports = {"HOPA_PORT": free_port(), "HOPB_PORT": free_port(), "CLIC_PORT": free_port()}
    text = TEST_CONFIG + SUBSCRIBER.format(port=free_port(), affinity=AFFINITY)
    for name, port in ports.items():
        text = text.replace("{" + name + "}", str(port))
    config.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "xds_hub", "serve", "--config", str(config), "--data", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "pix.subscriber 'Hopital B' has tls = true: the hub needs tls_cert and tls_key" in proc.stderr
