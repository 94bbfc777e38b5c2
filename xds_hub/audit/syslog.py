"""ITI-20 Record Audit Event transport: RFC 5424 syslog messages over UDP (RFC 5426) or TLS (RFC 5425).

ITI TF-2 3.20.6: the audit message XML is the MSG part of an RFC 5424 message with MSGID
``IHE+RFC-3881``; facility 10 (security/authorization) and severity 5 (notice): PRI 85.  The MSG
starts with the UTF-8 BOM (RFC 5424 6.4, MSG-UTF8).

- UDP: one message per datagram.  A message longer than the largest UDP payload is truncated
  (RFC 5426 3.2) and a warning logged.
- TLS: one persistent mutually-authenticated connection (the hub's certificate; the repository's
  checked against ``tls_ca``); each message framed by octet counting, ``MSG-LEN SP SYSLOG-MSG``
  (RFC 5425 4.3).  Before writing on a kept connection, a peer that closed it is detected, so a
  message is not written into a dead socket.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import select
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlparse

from xds_hub.config import Settings
from xds_hub.errors import ConfigError
from xds_hub.log import get_logger

log = get_logger("xds_hub.audit.syslog")

#: facility 10 (security/authorization messages) * 8 + severity 5 (notice).
PRI = 85
MSGID = "IHE+RFC-3881"
APP_NAME = "xds-hub"
BOM = b"\xef\xbb\xbf"
#: Largest UDP payload over IPv4 (65535 - 8 UDP header - 20 IP header).
MAX_UDP = 65507
DEFAULT_PORTS = {"udp": 514, "tls": 6514}
_PRINTABLE = re.compile(r"[^!-~]")


def _field(value: str, limit: int) -> str:
    """An RFC 5424 header field: printable US-ASCII without spaces, at most ``limit`` characters, or "-"."""
    return _PRINTABLE.sub("_", value)[:limit] or "-"


def syslog_message(
    xml: bytes,
    *,
    timestamp: dt.datetime,
    hostname: str,
    procid: str,
    app_name: str = APP_NAME,
    msgid: str = MSGID,
) -> bytes:
    """``<85>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - BOM<xml>`` (RFC 5424 6)."""
    ts = timestamp.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    header = (
        f"<{PRI}>1 {ts} {_field(hostname, 255)} {_field(app_name, 48)} {_field(procid, 128)} "
        f"{_field(msgid, 32)} -"
    )
    return header.encode("ascii") + b" " + BOM + xml


def octet_counted(message: bytes) -> bytes:
    """RFC 5425 4.3 framing: ``MSG-LEN SP SYSLOG-MSG``."""
    return str(len(message)).encode("ascii") + b" " + message


class Transport(Protocol):
    """Sends one syslog message; raises OSError when the repository cannot be reached."""

    def send(self, message: bytes) -> None: ...

    def close(self) -> None: ...


class UdpTransport:
    """RFC 5426: one datagram per message."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self._sock: socket.socket | None = None

    def send(self, message: bytes) -> None:
        if len(message) > MAX_UDP:
            log.warning("audit message truncated to the UDP maximum", extra={"size": len(message)})
            message = message[:MAX_UDP]
        if self._sock is None:
            family = socket.getaddrinfo(*self.address, type=socket.SOCK_DGRAM)[0][0]
            self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.sendto(message, self.address)
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class TlsTransport:
    """RFC 5425: a kept TLS connection, octet-counted frames."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.context = context
        self.timeout = timeout
        self._sock: ssl.SSLSocket | None = None

    def _connect(self) -> ssl.SSLSocket:
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            return self.context.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise

    def _alive(self, sock: ssl.SSLSocket) -> bool:
        """False if the repository closed the connection (a syslog receiver never writes to it)."""
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return True
        try:
            sock.setblocking(False)
            return bool(sock.recv(1))
        except (ssl.SSLWantReadError, BlockingIOError):
            return True
        except OSError:
            return False
        finally:
            sock.settimeout(self.timeout)

    def send(self, message: bytes) -> None:
        if self._sock is not None and not self._alive(self._sock):
            self.close()
        if self._sock is None:
            self._sock = self._connect()
        try:
            self._sock.sendall(octet_counted(message))
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


@dataclass(frozen=True, slots=True)
class Repository:
    """A parsed ``[audit] repository`` URL."""

    scheme: str  # "udp" or "tls"
    host: str
    port: int


def parse_repository(url: str) -> Repository:
    """``udp://host[:514]`` or ``tls://host[:6514]``; ConfigError otherwise."""
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parsed.hostname:
        raise ConfigError(f"audit repository {url!r}: expected udp://host:port or tls://host:port")
    try:
        port = parsed.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ConfigError(f"audit repository {url!r}: bad port") from exc
    return Repository(scheme, parsed.hostname, port)


def transport_for(settings: Settings) -> Callable[[], Transport] | None:
    """A factory of transports to ``settings.audit_repository``, or None when none is configured.

    A ``tls://`` repository needs the hub's TLS certificate and key (ITI-20 over TLS is mutually
    authenticated, ITI-19); ConfigError otherwise.
    """
    if not settings.audit_repository:
        return None
    repo = parse_repository(settings.audit_repository)
    if repo.scheme == "udp":
        return lambda: UdpTransport(repo.host, repo.port)
    from xds_hub.security.tls import client_ssl_context

    context = client_ssl_context(settings)
    if context is None:
        raise ConfigError("a tls:// audit repository needs tls_cert and tls_key (mutual TLS, ITI-19)")
    return lambda: TlsTransport(repo.host, repo.port, context)
