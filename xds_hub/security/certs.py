"""`xds-hub certs init DIR`: a demo PKI for the affinity domain, so mutual TLS (ITI-19) takes one command.

Made with the ``cryptography`` package, all RSA 2048 / SHA-256 (the ATNA "BCP195" TLS 1.2 suites
are ECDHE-RSA / DHE-RSA ones):

=============================  ===============================================================
file                           what
=============================  ===============================================================
``ca.pem`` / ``ca-key.pem``    the demo CA (``CN=<org> Demo CA``); trust anchor of every node
``hub.pem`` / ``hub-key.pem``  the hub: ``CN=<first host name>``; SAN DNS:localhost, IP:127.0.0.1,
                               IP:::1 and every ``--host-name``; serverAuth + clientAuth (the hub
                               is also a client: audit repository, C-MOVE destinations)
``<slug>.pem`` / ``-key.pem``  one per establishment: ``CN=<name>,O=<org>``, SAN
                               ``URI:urn:oid:<its assigning authority>``; clientAuth + serverAuth
``admin.pem`` / ``-key.pem``   the administrator: ``CN=<org> Admin,O=<org>,OU=Administration``
=============================  ===============================================================

An establishment is recognised by its SAN URI (``tls_subjects = ["URI:urn:oid:1.2.3.100"]``): its
assigning authority OID names it uniquely in the affinity domain and survives a change of the
display name.  The admin is recognised by its subject (``admin_subjects = ["CN=...,O=...,OU=..."]``),
to show both forms.  Private keys are written with mode 0600.

Running it again is idempotent: existing files are kept, the existing CA signs the certificates
that are missing (a new establishment); ``force=True`` makes everything anew, CA included.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from xds_hub.config import AffinityDomain

#: Validity of the demo certificates.
CA_DAYS = 3650
LEAF_DAYS = 825
KEY_BITS = 2048


def slug(name: str) -> str:
    """A file-name-safe form of an establishment name ("Hôpital A" -> "hopital-a")."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "establishment"


@dataclass(frozen=True, slots=True)
class IssuedCert:
    """One certificate of the demo PKI, where it lives and how the config names it."""

    role: str  # "ca", "hub", "establishment", "admin"
    name: str
    cert: Path
    key: Path
    subject: str
    tls_subject: str  # the tls_subjects / admin_subjects entry that recognises it
    created: bool


@dataclass(frozen=True, slots=True)
class DemoPki:
    folder: Path
    ca: IssuedCert
    hub: IssuedCert
    admin: IssuedCert
    establishments: tuple[IssuedCert, ...] = field(default=())

    @property
    def all(self) -> tuple[IssuedCert, ...]:
        return (self.ca, self.hub, *self.establishments, self.admin)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp, path)


def _name(cn: str, org: str, unit: str = "") -> x509.Name:
    """O, [OU,] CN in DER order, so that the RFC 4514 form reads "CN=...,OU=...,O=..."."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _make_ca(org: str) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = _new_key()
    name = _name(f"{org} Demo CA", org)
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    subject: x509.Name,
    alt_names: Sequence[x509.GeneralName],
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = _new_key()
    now = _now()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(alt_names)), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _host_name(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value)


def _load(cert_path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cert_path.read_bytes())


def init_pki(
    folder: Path,
    domain: AffinityDomain,
    *,
    org: str = "xds-hub demo region",
    host_names: Sequence[str] = (),
    force: bool = False,
) -> DemoPki:
    """Create (or complete) the demo PKI of ``domain`` in ``folder``; see the module docstring."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_pem, ca_key_pem = folder / "ca.pem", folder / "ca-key.pem"
    if force or not (ca_pem.exists() and ca_key_pem.exists()):
        ca_cert, ca_key = _make_ca(org)
        _write_key(ca_key_pem, ca_key)
        _write_cert(ca_pem, ca_cert)
        ca_created = True
    else:
        ca_cert = _load(ca_pem)
        loaded = serialization.load_pem_private_key(ca_key_pem.read_bytes(), password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ValueError(f"{ca_key_pem} is not an RSA private key")
        ca_key = loaded
        ca_created = False
    renew = force or ca_created

    def leaf(
        role: str, name: str, stem: str, subject: x509.Name, alt: Sequence[x509.GeneralName], tls_subject: str
    ) -> IssuedCert:
        cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}-key.pem"
        created = renew or not (cert_path.exists() and key_path.exists())
        if created:
            cert, key = _make_leaf(ca_cert, ca_key, subject, alt)
            _write_key(key_path, key)
            _write_cert(cert_path, cert)
        subject_text = _load(cert_path).subject.rfc4514_string()
        return IssuedCert(role, name, cert_path, key_path, subject_text, tls_subject or subject_text, created)

    names = list(dict.fromkeys(["localhost", "127.0.0.1", "::1", *host_names]))
    hub_cn = host_names[0] if host_names else "xds-hub"
    hub = leaf("hub", "hub", "hub", _name(hub_cn, org, "Hub"), [_host_name(n) for n in names], "")
    establishments: list[IssuedCert] = []
    stems: set[str] = set()
    for est in domain.establishments:
        stem = slug(est.name)
        while stem in stems or stem in ("ca", "hub", "admin"):
            stem += "-x"
        stems.add(stem)
        uri = f"urn:oid:{est.assigning_authority}"
        establishments.append(
            leaf(
                "establishment",
                est.name,
                stem,
                _name(est.name, org),
                [x509.UniformResourceIdentifier(uri)],
                f"URI:{uri}",
            )
        )
    admin = leaf("admin", "admin", "admin", _name(f"{org} Admin", org, "Administration"), [], "")
    ca = IssuedCert(
        "ca",
        "ca",
        ca_pem,
        ca_key_pem,
        ca_cert.subject.rfc4514_string(),
        ca_cert.subject.rfc4514_string(),
        ca_created,
    )
    return DemoPki(folder=folder, ca=ca, hub=hub, admin=admin, establishments=tuple(establishments))
