"""`xds-hub certs init DIR`: the demo PKI for mutual TLS (ITI-19) in one command, idempotent."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import tomllib
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.hubproc import TEST_CONFIG
from xds_hub.config import load_settings
from xds_hub.security.tls import certificate_names as names
from xds_hub.security.tls import check_tls_settings, identity_for_names


def _run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xds_hub", "certs", "init", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_certs_init_creates_ca_hub_establishment_and_admin_certificates(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    out = _run(pki, "--host-name", "hub.region.example", "--host-name", "10.1.2.3").stdout
    expected = {
        "ca.pem",
        "ca-key.pem",
        "hub.pem",
        "hub-key.pem",
        "hopital-a.pem",
        "hopital-a-key.pem",
        "hopital-b.pem",
        "hopital-b-key.pem",
        "clinique-c.pem",
        "clinique-c-key.pem",
        "admin.pem",
        "admin-key.pem",
        "xds-hub.toml",
    }
    assert {p.name for p in pki.iterdir()} == expected
    assert out.count(" created") == 6
    ca = _cert(pki / "ca.pem")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for name in ("hub", "hopital-a", "hopital-b", "clinique-c", "admin"):
        leaf = _cert(pki / f"{name}.pem")
        leaf.verify_directly_issued_by(ca)
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.CLIENT_AUTH in usages and ExtendedKeyUsageOID.SERVER_AUTH in usages
    hub_san = _cert(pki / "hub.pem").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(hub_san.get_values_for_type(x509.DNSName)) == {"localhost", "hub.region.example"}
    assert set(hub_san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
        ipaddress.ip_address("10.1.2.3"),
    }
    hopa = _cert(pki / "hopital-a.pem")
    assert hopa.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Hopital A"
    assert names(hopa) == ("CN=Hopital A,O=xds-hub demo region", ("URI:urn:oid:1.2.3.100",))
    # the snippet to paste
    assert 'tls_ca = "' in out and "admin_subjects = [" in out
    assert '#   Hopital A: tls_subjects = ["URI:urn:oid:1.2.3.100"]' in out


def test_certs_init_writes_a_config_that_identifies_every_node(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    _run(pki)
    settings = load_settings(pki / "xds-hub.toml")
    check_tls_settings(settings)  # certificate, key and CA load; subjects are well formed
    assert Path(settings.tls_ca) == (pki / "ca.pem").resolve()
    domain = settings.domain
    for cert_file, expected in (("hopital-b.pem", "Hopital B"), ("clinique-c.pem", "Clinique C")):
        subject, alt = names(_cert(pki / cert_file))
        identity = identity_for_names(subject, alt, domain)
        assert identity.establishment is not None and identity.establishment.name == expected
        assert not identity.admin
    subject, alt = names(_cert(pki / "admin.pem"))
    admin = identity_for_names(subject, alt, domain)
    assert admin.admin and admin.establishment is None
    # the hub's own [hub] defaults (ports, database) are not pinned by the generated file
    assert set(tomllib.loads((pki / "xds-hub.toml").read_text())["hub"]) == {"tls_cert", "tls_key", "tls_ca"}


def test_certs_init_is_idempotent_and_completes_with_the_same_ca(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    config = tmp_path / "region.toml"
    config.write_text(
        TEST_CONFIG.replace("{HOPA_PORT}", "1").replace("{HOPB_PORT}", "2").replace("{CLIC_PORT}", "3")
    )
    _run(pki, "--config", config)
    before = _snapshot(pki)
    again = _run(pki, "--config", config).stdout
    assert again.count(" kept") == 6 and " created" not in again
    assert _snapshot(pki) == before

    # A new establishment joins the region: only its certificate is made, by the same CA.
    config.write_text(
        config.read_text() + '\n[[establishment]]\nname = "Centre D"\nassigning_authority = "1.2.3.400"\n'
    )
    out = _run(pki, "--config", config).stdout
    assert out.count(" created") == 1 and "centre-d.pem" in out
    assert _snapshot(pki)["ca.pem"] == before["ca.pem"]
    _cert(pki / "centre-d.pem").verify_directly_issued_by(_cert(pki / "ca.pem"))
    assert "exists and differs: kept" in out  # the generated config is not overwritten silently
    assert "Centre D" not in (pki / "xds-hub.toml").read_text()

    # --force: everything anew, CA included, config rewritten.
    forced = _run(pki, "--config", config, "--force").stdout
    assert forced.count(" created") == 7
    assert _snapshot(pki)["ca.pem"] != before["ca.pem"]
    assert "Centre D" in (pki / "xds-hub.toml").read_text()
    assert load_settings(pki / "xds-hub.toml").domain.establishments[3].tls_subjects == (
        "URI:urn:oid:1.2.3.400",
    )
