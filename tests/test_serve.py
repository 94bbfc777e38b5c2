"""`xds-hub serve`, `config show`, `patient add`: the process-level contract of INTERFACE.md."""

from __future__ import annotations

import signal
import tomllib

import requests

from tests.conftest import new_patient_id
from tests.hubproc import Hub


def test_healthz_answers_json_once_ready(hub: Hub) -> None:
    r = requests.get(hub.url("/healthz"), timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["status"] == "ok"


def test_config_show_prints_effective_toml(hub: Hub) -> None:
    out = hub.cli("config", "show").stdout
    doc = tomllib.loads(out)
    assert doc["affinity_domain"]["repository_unique_id"] == "1.3.6.1.4.1.21367.13.80.1"
    assert [e["name"] for e in doc["establishment"]] == ["Hopital A", "Hopital B", "Clinique C"]


def test_config_show_without_config_is_the_demo_domain(hub: Hub) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "xds_hub", "config", "show"], capture_output=True, text=True, check=True
    ).stdout
    doc = tomllib.loads(out)
    assert len(doc["establishment"]) == 3
    assert doc["affinity_domain"]["assigning_authority"] == "1.3.6.1.4.1.21367.13.20.1000"


def test_patient_add_registers_affinity_domain_ids_only(hub: Hub) -> None:
    pid = new_patient_id()
    assert "registered" in hub.cli("patient", "add", pid).stdout
    assert "already known" in hub.cli("patient", "add", pid).stdout
    foreign = hub.cli("patient", "add", new_patient_id("1.2.3.100"), check=False)
    assert foreign.returncode == 1
    assert "XDSUnknownPatientId" in foreign.stderr


def test_sigterm_stops_cleanly(hub_factory) -> None:  # type: ignore[no-untyped-def]
    h = hub_factory()
    assert h.stop(signal.SIGTERM) == 0


def _raw_http(hub: Hub, request: bytes) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", hub.http_port), timeout=10) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_unparseable_http_gets_a_soap_fault_not_html(hub: Hub) -> None:
    from lxml import etree

    answer = _raw_http(
        hub, b"POST /xds/registry HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n"
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"application/soap+xml" in head
    assert b"<html" not in body.lower()
    fault = etree.fromstring(body)
    code = fault.find(
        ".//{http://www.w3.org/2003/05/soap-envelope}Code/{http://www.w3.org/2003/05/soap-envelope}Value"
    )
    assert code is not None and code.text and code.text.endswith("Sender")


def test_hub_keeps_serving_after_garbage_bytes(hub: Hub) -> None:
    answer = _raw_http(hub, b"\x00\x01garbage\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"<html" not in answer.lower()
    assert b"application/soap+xml" in answer
    assert requests.get(hub.url("/healthz"), timeout=5).status_code == 200
