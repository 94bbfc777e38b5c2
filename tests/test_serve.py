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
