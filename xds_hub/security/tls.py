"""TLS for every listener and client of the hub, and who is at the other end (ITI-19).

ITI TF-2 3.19 (Authenticate Node) asks for TLS with mutual authentication between secure nodes;
the "STX: TLS 1.2 floor using BCP195" option asks for TLS 1.2 or later with forward-secret AEAD
cipher suites.  With ``tls_cert`` + ``tls_key`` the hub's listeners speak TLS 1.2+; with
``tls_ca`` too, a client must present a certificate issued by that CA or the handshake fails,
before one byte of HTTP, HL7 or DICOM is read.

Listeners:

- HTTP (gunicorn): :func:`gunicorn_tls_options` gives the options ``run_http`` sets;
- MLLP: accept, then :func:`wrap_server_socket` (in the connection's thread, not the accept loop);
- DICOM (pynetdicom): ``AE.start_server(..., ssl_context=server_ssl_context(settings))``; pynetdicom
  wraps in its accept loop, so the handshake is bounded by :attr:`ServerContext.handshake_timeout`.

Clients (the hub as a TLS client: ARR, C-MOVE destinations, zeep/requests, MLLP):
:func:`client_ssl_context`, :func:`requests_session` / :func:`requests_tls`, :func:`dicom_tls_args`.
The hub presents its own certificate (issued for serverAuth and clientAuth) as client certificate.

Peers: :func:`peer_identity` maps the peer certificate of an SSL socket (``environ["gunicorn.socket"]``
in a WSGI request, ``event.assoc.dul.socket.socket`` in pynetdicom, the MLLP connection) to a
:class:`~xds_hub.security.access.NodeIdentity` using ``tls_subjects`` / ``admin_subjects``.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

from xds_hub.config import AffinityDomain, Settings
from xds_hub.errors import ConfigError
from xds_hub.log import get_logger
from xds_hub.security.access import NodeIdentity

if TYPE_CHECKING:
    import requests

log = get_logger("xds_hub.security.tls")

#: TLS 1.2 cipher suites: ECDHE/DHE key exchange with AES-GCM or ChaCha20-Poly1305 only (BCP 195 /
#: RFC 9325 4.2; includes the four suites of the ATNA "BCP195" option).  TLS 1.3 suites are all AEAD.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS:!PSK:!SRP"
#: Seconds a client has to complete the TLS handshake on a listener.
HANDSHAKE_TIMEOUT = 10.0
_HARDENING = ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION

#: Called with (peer address, error) when a client fails the handshake for a TLS reason (bad or
#: missing certificate, protocol): the audit trail records a Security Alert (ITI-20 node
#: authentication failure).  Connections closed before any handshake (port probes) are not reported.
RefusalHook = Callable[[str | None, BaseException], None]


class ServerContext(ssl.SSLContext):
    """An SSLContext for listeners whose server-side handshakes time out and refusals are reported."""

    handshake_timeout: float = HANDSHAKE_TIMEOUT
    on_refused: RefusalHook | None = None

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        if not server_side:
            return super().wrap_socket(
                sock, server_side, do_handshake_on_connect, suppress_ragged_eofs, server_hostname, session
            )
        previous = sock.gettimeout()
        address = _peer_address(sock)  # before wrapping: a failed wrap detaches ``sock``
        sock.settimeout(self.handshake_timeout)
        try:
            wrapped = super().wrap_socket(
                sock,
                server_side=True,
                do_handshake_on_connect=True,  # always: the handshake runs inside the timeout
                suppress_ragged_eofs=suppress_ragged_eofs,
            )
        except (OSError, ValueError) as exc:
            self._refused(address, exc)
            sock.close()
            raise
        wrapped.settimeout(previous)
        return wrapped

    def _refused(self, address: str | None, exc: BaseException) -> None:
        if not isinstance(exc, ssl.SSLError) or isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return  # closed or timed out before/without a TLS error: a probe, not a refused node
        log.warning("TLS handshake refused", extra={"peer": address, "reason": str(exc)})
        if self.on_refused is not None:
            try:
                self.on_refused(address, exc)
            except Exception:  # reporting must never break the listener
                log.exception("TLS refusal hook failed")


def _peer_address(sock: socket.socket) -> str | None:
    try:
        peer = sock.getpeername()
    except OSError:
        return None
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


# ---------------------------------------------------------------------------------------------
# Contexts
# ---------------------------------------------------------------------------------------------


def _harden(ctx: ssl.SSLContext) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= _HARDENING


def _load_chain(ctx: ssl.SSLContext, cert: str, key: str) -> None:
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate {cert!r} / key {key!r}: {exc}") from exc


def _load_ca(ctx: ssl.SSLContext, ca: str) -> None:
    try:
        ctx.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS CA bundle {ca!r}: {exc}") from exc


def server_context(
    cert: str, key: str, ca: str = "", *, handshake_timeout: float = HANDSHAKE_TIMEOUT
) -> ServerContext:
    """A listener context: TLS 1.2+, AEAD suites; with ``ca``, a client certificate it issued is required."""
    ctx = ServerContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(ctx)
    _load_chain(ctx, cert, key)
    if ca:
        _load_ca(ctx, ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    ctx.handshake_timeout = handshake_timeout
    return ctx


def tls_enabled(settings: Settings) -> bool:
    return bool(settings.tls_cert)


def check_tls_settings(settings: Settings) -> None:
    """Raise ConfigError if the TLS settings are incomplete, unreadable or name subjects wrongly."""
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("tls_cert and tls_key go together: set both or neither")
    if settings.tls_ca and not settings.tls_cert:
        raise ConfigError("tls_ca (mutual TLS) needs tls_cert and tls_key too")
    for pattern in _all_patterns(settings.domain):
        _check_pattern(pattern)
    for sub in settings.domain.pix.subscribers:
        if sub.tls and not settings.tls_cert:
            raise ConfigError(
                f"pix.subscriber {sub.name!r} has tls = true: the hub needs tls_cert and tls_key"
            )
    if settings.tls_cert:
        server_context(settings.tls_cert, settings.tls_key, settings.tls_ca)


def server_ssl_context(settings: Settings, on_refused: RefusalHook | None = None) -> ServerContext | None:
    """The context of the hub's listeners (HTTP, MLLP, DICOM), or None when TLS is off.

    TLS 1.2 minimum, forward-secret AEAD suites, no compression or renegotiation; CERT_REQUIRED
    against ``tls_ca`` when it is set (mutual authentication, ITI-19).
    """
    if not tls_enabled(settings):
        return None
    ctx = server_context(settings.tls_cert, settings.tls_key, settings.tls_ca)
    ctx.on_refused = on_refused
    return ctx


def client_context(
    cert: str | None, key: str | None, ca: str | None, *, check_hostname: bool = False
) -> ssl.SSLContext:
    """A hardened TLS client context presenting ``cert``/``key`` (if given) and trusting ``ca``
    (the system store if None)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(ctx)
    if cert:
        _load_chain(ctx, cert, key or cert)
    if ca:
        _load_ca(ctx, ca)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_ssl_context(settings: Settings, *, check_hostname: bool = False) -> ssl.SSLContext | None:
    """The hub's context as a TLS client (ARR, C-MOVE destinations, MLLP peers), or None if TLS is off.

    It presents the hub's certificate and trusts ``tls_ca`` (the system store if unset).  Host names
    are not checked by default: in an affinity domain nodes are identified by their certificate
    (check the peer with :func:`peer_identity`), and node certificates often carry no DNS name.
    """
    if not tls_enabled(settings):
        return None
    return client_context(settings.tls_cert, settings.tls_key, settings.tls_ca, check_hostname=check_hostname)


def wrap_server_socket(sock: socket.socket, context: ssl.SSLContext) -> ssl.SSLSocket:
    """Server-side TLS on an accepted connection (MLLP); the handshake completes or this raises OSError.

    Call it in the connection's own thread.  With a :class:`ServerContext` the handshake is bounded
    by its timeout, the socket is closed on failure and the refusal reported.
    """
    return context.wrap_socket(sock, server_side=True)


def dicom_tls_args(settings: Settings, server_hostname: str) -> tuple[ssl.SSLContext, str] | None:
    """``tls_args`` for pynetdicom's ``AE.associate(..., tls_args=...)`` (C-MOVE sub-operations), or None."""
    ctx = client_ssl_context(settings)
    return None if ctx is None else (ctx, server_hostname)


def requests_tls(settings: Settings) -> dict[str, Any]:
    """``cert`` / ``verify`` keyword arguments for requests (and zeep's session); {} if TLS is off."""
    if not tls_enabled(settings):
        return {}
    return {"cert": (settings.tls_cert, settings.tls_key), "verify": settings.tls_ca or True}


def requests_session(settings: Settings) -> requests.Session:
    """A requests session presenting the hub's certificate; zeep: ``Transport(session=...)``."""
    import requests

    session = requests.Session()
    tls = requests_tls(settings)
    if tls:
        session.cert = tls["cert"]
        session.verify = tls["verify"]
    return session


_GUNICORN_CONTEXTS: dict[tuple[str, str, str], ServerContext] = {}


def gunicorn_tls_options(settings: Settings, on_refused: RefusalHook | None = None) -> dict[str, Any]:
    """gunicorn settings for TLS on the HTTP listener ({} when TLS is off).

    gunicorn wraps each accepted connection with ``ssl_context(conf, factory)``; ours returns one
    :class:`ServerContext` per worker process (built on first use), so the handshake, with its
    timeout, happens before the request is read and a client without a certificate from ``tls_ca``
    never reaches the WSGI application.
    """
    if not tls_enabled(settings):
        return {}
    key = (settings.tls_cert, settings.tls_key, settings.tls_ca)

    def ssl_context(_conf: Any, _default_factory: Any) -> ssl.SSLContext:
        ctx = _GUNICORN_CONTEXTS.get(key)
        if ctx is None:
            ctx = _GUNICORN_CONTEXTS[key] = server_context(*key)
            ctx.on_refused = on_refused
        return ctx

    options: dict[str, Any] = {
        "certfile": settings.tls_cert,
        "keyfile": settings.tls_key,
        "cert_reqs": ssl.CERT_REQUIRED if settings.tls_ca else ssl.CERT_NONE,
        "do_handshake_on_connect": True,
        "ssl_context": ssl_context,
    }
    if settings.tls_ca:
        options["ca_certs"] = settings.tls_ca
    return options


# ---------------------------------------------------------------------------------------------
# Peer identity
# ---------------------------------------------------------------------------------------------

_SAN_KINDS = ("URI", "DNS", "IP", "email")


@lru_cache(maxsize=256)
def _names(der: bytes) -> tuple[str, tuple[str, ...]]:
    cert = x509.load_der_x509_certificate(der)
    return certificate_names(cert)


def certificate_names(cert: x509.Certificate) -> tuple[str, tuple[str, ...]]:
    """(RFC 4514 subject, subjectAltNames as "URI:...", "DNS:...", "IP:...", "email:...")."""
    alt: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        alt += [f"URI:{v}" for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
        alt += [f"DNS:{v}" for v in san.get_values_for_type(x509.DNSName)]
        alt += [f"IP:{v}" for v in san.get_values_for_type(x509.IPAddress)]
        alt += [f"email:{v}" for v in san.get_values_for_type(x509.RFC822Name)]
    return cert.subject.rfc4514_string(), tuple(alt)


def _normal_dn(name: x509.Name) -> tuple[tuple[tuple[str, str], ...], ...]:
    return tuple(
        tuple(sorted((a.oid.dotted_string, " ".join(str(a.value).split()).casefold()) for a in rdn))
        for rdn in name.rdns
    )


def _tidy_dn(text: str) -> str:
    """Upper-case attribute types and drop blanks around separators, as people write DNs in configs
    ("cn=Hopital A, o=Region" -> "CN=Hopital A,O=Region"); escaped characters are kept."""
    parts: list[str] = []
    seps: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch in ",+":
            parts.append("".join(current))
            seps.append(ch)
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    tidy: list[str] = []
    for part in parts:
        kind, eq, value = part.partition("=")
        kind = kind.strip()
        tidy.append((kind.upper() if kind.isalpha() else kind) + eq + value.strip() if eq else part.strip())
    return "".join(p + sep for p, sep in zip(tidy, [*seps, ""], strict=True))


@lru_cache(maxsize=1024)
def _pattern_dn(pattern: str) -> tuple[tuple[tuple[str, str], ...], ...]:
    return _normal_dn(x509.Name.from_rfc4514_string(_tidy_dn(pattern)))


def _check_pattern(pattern: str) -> None:
    kind, sep, value = pattern.partition(":")
    if sep and kind in _SAN_KINDS:
        if not value:
            raise ConfigError(f"TLS subject {pattern!r} has no value after {kind}:")
        if kind == "IP":
            try:
                ipaddress.ip_address(value)
            except ValueError as exc:
                raise ConfigError(f"TLS subject {pattern!r}: {value!r} is not an IP address") from exc
        return
    try:
        _pattern_dn(pattern)
    except ValueError as exc:
        raise ConfigError(
            f"TLS subject {pattern!r} is neither an RFC 4514 name (CN=...,O=...) nor URI:/DNS:/IP:/email:"
        ) from exc


def subject_matches(pattern: str, subject: str, alt_names: Iterable[str]) -> bool:
    """Whether a ``tls_subjects`` / ``admin_subjects`` entry names a certificate with these names.

    ``URI:`` matches exactly, ``DNS:`` and ``email:`` ignoring case, ``IP:`` as an address; anything
    else is an RFC 4514 distinguished name, compared RDN by RDN ignoring case and extra spaces.
    """
    kind, sep, value = pattern.partition(":")
    if sep and kind in _SAN_KINDS:
        for alt in alt_names:
            akind, _, avalue = alt.partition(":")
            if akind != kind:
                continue
            if kind == "URI" and avalue == value:
                return True
            if kind in ("DNS", "email") and avalue.casefold() == value.casefold():
                return True
            if kind == "IP" and _same_ip(avalue, value):
                return True
        return False
    try:
        return _pattern_dn(pattern) == _pattern_dn(subject)
    except ValueError:
        return False


def _same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def _all_patterns(domain: AffinityDomain) -> list[str]:
    return [*domain.admin_subjects, *(p for e in domain.establishments for p in e.tls_subjects)]


def identity_for_names(subject: str, alt_names: tuple[str, ...], domain: AffinityDomain) -> NodeIdentity:
    """The identity the affinity domain gives a certificate with these names (first establishment wins)."""
    est = next(
        (
            e
            for e in domain.establishments
            if any(subject_matches(p, subject, alt_names) for p in e.tls_subjects)
        ),
        None,
    )
    admin = any(subject_matches(p, subject, alt_names) for p in domain.admin_subjects)
    return NodeIdentity(subject=subject, alt_names=alt_names, establishment=est, admin=admin)


def peer_certificate(source: Any) -> bytes | None:
    """DER of the peer certificate of ``source``: an SSL socket (anything with ``getpeercert``),
    a cryptography Certificate, or DER bytes.  None when there is none (plain socket, no client cert)."""
    if isinstance(source, bytes | bytearray):
        return bytes(source)
    if isinstance(source, x509.Certificate):
        from cryptography.hazmat.primitives.serialization import Encoding

        return source.public_bytes(Encoding.DER)
    getpeercert = getattr(source, "getpeercert", None)
    if getpeercert is None:
        return None
    try:
        der = getpeercert(binary_form=True)
    except (ValueError, OSError):  # not connected / handshake not done
        return None
    return bytes(der) if der else None


def peer_identity(source: Any, domain: AffinityDomain) -> NodeIdentity | None:
    """The :class:`NodeIdentity` of the peer certificate of ``source``, or None if there is none.

    None means "no client certificate": TLS off, or server-only TLS (no ``tls_ca``); the access
    rules then let everything through (see :mod:`xds_hub.security.access`).  A certificate from the
    CA that no ``tls_subjects`` / ``admin_subjects`` names is a member without an establishment:
    it may read and query, not submit or administer.
    """
    der = peer_certificate(source)
    if der is None:
        return None
    subject, alt_names = _names(der)
    return identity_for_names(subject, alt_names, domain)


def identity_from_environ(environ: Mapping[str, Any], domain: AffinityDomain) -> NodeIdentity | None:
    """The peer identity of a WSGI request served by gunicorn (``environ["gunicorn.socket"]``)."""
    return peer_identity(environ.get("gunicorn.socket"), domain)


def read_pem_certificate(path: str | Path) -> x509.Certificate:
    """Load one PEM certificate (used by tests and `xds-hub certs`)."""
    return x509.load_pem_x509_certificate(Path(path).read_bytes())
