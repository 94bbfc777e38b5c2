"""`xds-hub conformance run` against a secure node (ITI-19): the runner presents its certificate on
HTTP, MLLP and DICOM; without one the target refuses it and every step errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conformance_support import not_passed
from tests.hubproc import Hub
from tests.test_tls_hub import tls_config
from xds_hub.config import DEMO_DOMAIN
from xds_hub.conformance.engine import PASSED, Runner
from xds_hub.conformance.scenario import select
from xds_hub.conformance.target import ClientTls, Target, load_target
from xds_hub.security.certs import init_pki

SCENARIOS = [
    "repository/iti41/single-document",
    "registry/iti18/find-documents-class-code",
    "pix/iti9/all-domains",
    "pix/iti9/unknown-domain",
    "imaging/dicom/echo",
    "imaging/dicom/store-and-find-study",
    "imaging/dicom/move-study",  # the hub's sub-association reaches the runner's receiver over TLS
]


def test_conformance_runner_speaks_mutual_tls(hub_factory: Callable[..., Hub], tmp_path: Path) -> None:
    pki = init_pki(tmp_path / "pki", DEMO_DOMAIN)
    member = pki.establishments[0]
    # The tester's node is Hopital A and, to register the scenarios' patients under every assigning
    # authority (regional IDs included), also an admin identity, as a Connectathon test node is.
    config = tls_config(pki).replace(
        f'admin_subjects = ["{pki.admin.tls_subject}"]',
        f'admin_subjects = ["{pki.admin.tls_subject}", "{member.tls_subject}"]',
    )
    assert member.tls_subject in config.split("[security]")[1]
    hub = hub_factory(config_text=config, tls_client=(member.cert, member.key, pki.ca.cert))
    assert hub.base_url.startswith("https://")

    def target(tls: ClientTls) -> Target:
        return load_target(
            hub.base_url,
            hub.config,
            pix_mllp=f"127.0.0.1:{hub.mllp_port}",
            dicom=f"127.0.0.1:{hub.dicom_port}",
            tls=tls,
        )

    scenarios = select(SCENARIOS)
    assert len(scenarios) == len(SCENARIOS)
    good = Runner(target(ClientTls(str(member.cert), str(member.key), str(pki.ca.cert))), jobs=2)
    results = good.run_all(scenarios)
    assert not_passed(results) == {}
    assert all(r.outcome == PASSED for r in results)

    # No client certificate: refused in the handshake on every listener, so nothing passes.
    anonymous = Runner(target(ClientTls(None, None, str(pki.ca.cert))), jobs=2)
    refused = anonymous.run_all(scenarios)
    assert PASSED not in {r.outcome for r in refused}, [
        (r.scenario.id, r.outcome, r.message) for r in refused
    ]
    assert all("SSL" in r.message or "rejected or aborted" in r.message for r in refused), [
        (r.scenario.id, r.message) for r in refused
    ]

    # The CLI passes --tls-cert/--tls-key/--tls-ca through.
    junit = tmp_path / "tls.xml"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "xds_hub",
            "conformance",
            "run",
            "--target",
            hub.base_url,
            "--config",
            str(hub.config),
            "--pix-mllp",
            f"127.0.0.1:{hub.mllp_port}",
            "--dicom",
            f"127.0.0.1:{hub.dicom_port}",
            "--tls-cert",
            str(member.cert),
            "--tls-key",
            str(member.key),
            "--tls-ca",
            str(pki.ca.cert),
            "--junit",
            str(junit),
            "--no-progress",
            "pix/iti9/all-domains",
            "imaging/dicom/echo",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'failures="0"' in junit.read_text() and 'errors="0"' in junit.read_text()
