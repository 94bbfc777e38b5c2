"""The system under test: its URL, its affinity domain and how to reach each of its actors.

The config file is the affinity-domain TOML of the INTERFACE (the same file a hub is started
with; ``[hub]`` is ignored), optionally with a ``[conformance]`` table for the tester::

    [conformance]
    registry_path = "/xds/registry"          # SOAP endpoint paths below --target
    repository_path = "/xds/repository"
    imaging_path = "/xdsi/source"
    pix_path = "/pix"
    patient_feed = "iti8"                    # how scenario patients are registered: iti8 (needs
                                             # --pix-mllp), iti44 (SOAP at pix_path), command, none
    patient_feed_command = ["xds-hub", "patient", "add", "{pid}"]   # for patient_feed = "command"
    source_id = "1.2.3.100.1"                # submission set sourceId (default: first establishment's)
    calling_ae = "HOPA_CT"                   # DICOM calling AE title (default: first establishment's)
    called_ae = "XDSHUB"                     # the target's AE title
    mtom = true                              # ITI-41 / RAD-68 requests as MTOM (else inline base64)
    capabilities = []                        # extra capabilities the target claims (see requires)
"""

from __future__ import annotations

import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from xds_hub.config import DEMO_DOMAIN, AffinityDomain, parse_domain
from xds_hub.errors import ConfigError

FEED_MODES = ("auto", "iti8", "iti44", "command", "none")


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> HostPort:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"expected HOST:PORT, got {text!r}")
        return cls(host or "127.0.0.1", int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class _PinnedCaSession(requests.Session):
    """A session whose ``verify`` (the target's CA) wins over REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE:
    plain requests lets those variables replace a session-level CA (psf/requests#3829)."""

    def merge_environment_settings(self, *args: Any, **kwargs: Any) -> Any:
        settings = super().merge_environment_settings(*args, **kwargs)
        verify = args[3] if len(args) > 3 else kwargs.get("verify")
        if verify is None and isinstance(self.verify, str):
            settings["verify"] = self.verify
        return settings


@dataclass(frozen=True, slots=True)
class ClientTls:
    """The runner's TLS client identity for a secure target (ITI-19): its certificate and key, and
    the CA it trusts for the target (the system store if None)."""

    cert: str | None = None
    key: str | None = None
    ca: str | None = None

    def context(self) -> ssl.SSLContext:
        """A client context (MLLP, DICOM); host names are not checked: nodes are known by certificate."""
        from xds_hub.security.tls import client_context

        return client_context(self.cert, self.key, self.ca)

    def server_context(self) -> ssl.SSLContext | None:
        """The context of the runner's own listener (the C-MOVE destination) for a secure target:
        its certificate, and with ``ca`` the target's certificate required (None without a cert)."""
        if not self.cert:
            return None
        from xds_hub.security.tls import server_context

        return server_context(self.cert, self.key or self.cert, self.ca or "")


@dataclass(frozen=True, slots=True)
class Target:
    """Everything the runner knows about the endpoint under test."""

    base_url: str
    domain: AffinityDomain = DEMO_DOMAIN
    registry_path: str = "/xds/registry"
    repository_path: str = "/xds/repository"
    imaging_path: str = "/xdsi/source"
    pix_path: str = "/pix"
    pix_mllp: HostPort | None = None
    dicom: HostPort | None = None
    patient_feed: str = "auto"
    patient_feed_command: tuple[str, ...] = ()
    source_id: str = ""
    calling_ae: str = ""
    called_ae: str = "XDSHUB"
    mtom: bool = True
    capabilities: frozenset[str] = field(default_factory=frozenset)
    timeout: float = 60.0
    tls: ClientTls | None = None

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def session(self) -> requests.Session:
        """An HTTP session for the target, presenting the runner's certificate when it has one."""
        session = _PinnedCaSession()
        if self.tls is not None:
            if self.tls.cert:
                session.cert = (self.tls.cert, self.tls.key or self.tls.cert)
            if self.tls.ca:
                session.verify = self.tls.ca
        return session

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS client context for MLLP and DICOM, or None for plain connections."""
        return None if self.tls is None else self.tls.context()

    @property
    def feed_mode(self) -> str:
        """How patients get registered: the configured mode, or the best one available."""
        if self.patient_feed != "auto":
            return self.patient_feed
        if self.pix_mllp is not None:
            return "iti8"
        if self.patient_feed_command:
            return "command"
        return "none"

    @property
    def available(self) -> frozenset[str]:
        """Capabilities a scenario may require: feed, pix, dicom, imaging and any claimed."""
        caps = set(self.capabilities) | {"xds"}
        if self.feed_mode != "none":
            caps.add("feed")
        if self.feed_mode == "iti44":
            caps.add("pix")
        if self.pix_mllp is not None:
            caps.update({"pix", "mllp"})
        if self.dicom is not None:
            caps.update({"dicom"})
        return frozenset(caps)

    @property
    def default_source_id(self) -> str:
        if self.source_id:
            return self.source_id
        for est in self.domain.establishments:
            if est.source_ids:
                return est.source_ids[0]
        return "1.3.6.1.4.1.21367.13.90.1"


def _opt_str(table: Mapping[str, Any], key: str, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"conformance.{key} must be a string")
    return value


def load_target(
    base_url: str,
    config: Path | None = None,
    pix_mllp: str | None = None,
    dicom: str | None = None,
    tls: ClientTls | None = None,
) -> Target:
    """The target at ``base_url`` described by ``config`` (default: the built-in demo domain)."""
    doc: dict[str, Any] = {}
    if config is not None:
        try:
            doc = tomllib.loads(Path(config).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config} is not valid TOML: {exc}") from exc
    domain = parse_domain(doc) if doc else DEMO_DOMAIN
    conf = doc.get("conformance", {})
    if not isinstance(conf, Mapping):
        raise ConfigError("[conformance] must be a table")
    feed = _opt_str(conf, "patient_feed", "auto")
    if feed not in FEED_MODES:
        raise ConfigError(f"conformance.patient_feed must be one of {', '.join(FEED_MODES)}")
    command = conf.get("patient_feed_command", [])
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        raise ConfigError("conformance.patient_feed_command must be a list of strings")
    caps = conf.get("capabilities", [])
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        raise ConfigError("conformance.capabilities must be a list of strings")
    first_ae = next((a for e in domain.establishments for a in e.ae_titles), "XDSTEST")
    return Target(
        base_url=base_url,
        domain=domain,
        registry_path=_opt_str(conf, "registry_path", "/xds/registry"),
        repository_path=_opt_str(conf, "repository_path", "/xds/repository"),
        imaging_path=_opt_str(conf, "imaging_path", "/xdsi/source"),
        pix_path=_opt_str(conf, "pix_path", "/pix"),
        pix_mllp=HostPort.parse(pix_mllp) if pix_mllp else None,
        dicom=HostPort.parse(dicom) if dicom else None,
        patient_feed=feed,
        patient_feed_command=tuple(command),
        source_id=_opt_str(conf, "source_id", ""),
        calling_ae=_opt_str(conf, "calling_ae", first_ae),
        called_ae=_opt_str(conf, "called_ae", "XDSHUB"),
        mtom=bool(conf.get("mtom", True)),
        capabilities=frozenset(caps),
        timeout=float(conf.get("timeout", 60.0)),
        tls=tls,
    )
