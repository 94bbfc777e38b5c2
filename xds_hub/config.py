"""Settings: one frozen object built from defaults, a TOML file and the command line; passed in, never global.

The TOML file describes the affinity domain (``[affinity_domain]``, ``[[establishment]]``,
``[imaging]``, ``[codes]``) and may also carry the server options under ``[hub]``.  Command-line
options override the file, which overrides the defaults below.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomli_w

from xds_hub.errors import ConfigError

#: The code kinds a ``[codes]`` table may restrict (ITI TF-3 4.2.3.2 / 4.2.3.3 / 4.2.3.4).
CODE_KINDS = (
    "classCode",
    "typeCode",
    "formatCode",
    "healthcareFacilityTypeCode",
    "practiceSettingCode",
    "confidentialityCode",
    "eventCodeList",
    "contentTypeCode",
    "folderCodeList",
)


#: Defaults of the orphan-blob sweep (see Settings.blob_sweep_*).
BLOB_SWEEP_GRACE_SECONDS = 3600.0
BLOB_SWEEP_INTERVAL_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class CodeEntry:
    code: str
    scheme: str
    display: str = ""


@dataclass(frozen=True, slots=True)
class DicomNode:
    ae_title: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Establishment:
    name: str
    assigning_authority: str
    ae_titles: tuple[str, ...] = ()
    source_ids: tuple[str, ...] = ()
    dicom_nodes: tuple[DicomNode, ...] = ()
    #: How its nodes' TLS client certificates name it (ITI-19): RFC 4514 subjects ("CN=Hopital A,O=...")
    #: or subjectAltNames ("URI:urn:oid:1.2.3.100", "DNS:pacs.hopital-a.example", "IP:10.0.0.5").
    tls_subjects: tuple[str, ...] = ()


#: What the PIX Manager does with a feed that neither carries nor links to an affinity-domain ID.
PIX_ALLOCATION_POLICIES = ("allocate", "wait")


@dataclass(frozen=True, slots=True)
class PixSubscriber:
    """A PIX Consumer receiving ITI-10 PIX Update Notifications (ADT^A31) over MLLP (ITI TF-2a 3.10)."""

    name: str
    host: str
    port: int
    #: Patient identifier domains of interest (assigning-authority OIDs); empty: every known domain.
    domains: tuple[str, ...] = ()
    #: MSH-5 / MSH-6 of the notifications (receiving application / facility).
    application: str = ""
    facility: str = ""
    #: Deliver over TLS, presenting the hub's certificate (``tls_cert``) and trusting ``tls_ca``.
    tls: bool = False


@dataclass(frozen=True, slots=True)
class PixSettings:
    """The PIX Manager (``[pix]``): linking policy, names and ITI-10 subscribers."""

    #: A feed that neither carries nor links to an affinity-domain ID: "allocate" a new one at once,
    #: or "wait" until the affinity domain's identity source feeds one.
    allocation: str = "allocate"
    #: Prefix of the affinity-domain IDs the hub allocates (followed by a number).
    id_prefix: str = "XH"
    #: MSH-3 / MSH-4 of the HL7 v2 messages the hub originates (ADT^A31, and ACKs when the request
    #: names no receiving application).
    application: str = "XDSHUB"
    facility: str = ""
    #: Namespace IDs (CX-4.1, v3 assigningAuthorityName) that stand for an assigning-authority OID,
    #: for sources that send no universal ID.
    namespaces: Mapping[str, str] = field(default_factory=dict)
    #: MSH-3 (or "MSH-3|MSH-4") of a Patient Identity Source -> the assigning authority the PIX
    #: Manager fills in for its identifiers without CX-4 (ITI TF-2a 3.8.4.1.3).
    sources: Mapping[str, str] = field(default_factory=dict)
    #: ITI-10 subscribers.
    subscribers: tuple[PixSubscriber, ...] = ()


@dataclass(frozen=True, slots=True)
class AffinityDomain:
    assigning_authority: str = "1.3.6.1.4.1.21367.13.20.1000"
    home_community_id: str = "urn:oid:1.2.3.4"
    repository_unique_id: str = "1.2.3.4.5"
    imaging_source_unique_id: str = "1.2.3.4.6"
    linking_authorities: tuple[str, ...] = ()
    establishments: tuple[Establishment, ...] = ()
    study_quiet_seconds: float = 30.0
    #: None: any code accepted.  Otherwise, per code kind present, the allowed codes.
    codes: Mapping[str, tuple[CodeEntry, ...]] | None = None
    #: The PIX Manager's settings (``[pix]``).
    pix: PixSettings = field(default_factory=PixSettings)
    #: ``[security] admin_subjects``: certificates (same forms as ``tls_subjects``) allowed to run the
    #: administrative transactions (ITI-57 update, ITI-62 delete, ITI-86 remove).
    admin_subjects: tuple[str, ...] = ()

    def establishment_for_ae(self, ae_title: str) -> Establishment | None:
        return next((e for e in self.establishments if ae_title in e.ae_titles), None)

    def establishment_for_authority(self, oid: str) -> Establishment | None:
        return next((e for e in self.establishments if e.assigning_authority == oid), None)

    def establishment_for_source(self, source_id: str) -> Establishment | None:
        return next((e for e in self.establishments if source_id in e.source_ids), None)

    def dicom_node(self, ae_title: str) -> DicomNode | None:
        for est in self.establishments:
            for node in est.dicom_nodes:
                if node.ae_title == ae_title:
                    return node
        return None


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the hub, with its default.  Build with :func:`load_settings`."""

    host: str = "127.0.0.1"
    http_port: int = 8080
    dicom_port: int = 11112
    mllp_port: int = 2575
    #: Data folder: SQLite database and filesystem blobs live here unless --db / --blobs say otherwise.
    data: Path = Path("xds-data")
    #: SQLAlchemy URL; default ``sqlite:///<data>/xds-hub.sqlite``.
    db: str = ""
    #: Blob store URL: ``file:///path`` or ``s3://bucket?endpoint=http://host:port``; default ``file://<data>/blobs``.
    blobs: str = ""
    #: DICOM AE title of the hub.
    ae_title: str = "XDSHUB"
    #: HTTP worker processes and threads per worker.
    http_workers: int = 2
    http_threads: int = 8
    #: Stored queries returning more objects than this fail with XDSTooManyResults.
    max_query_results: int = 5000
    #: Largest HTTP request body accepted, in bytes (documents included).
    max_request_bytes: int = 2 * 1024**3
    #: ITI-41 documents (MTOM parts or inline base64) of at most this many bytes are kept in the
    #: database with their metadata instead of the blob store (0: never); see
    #: xds_hub/repository/inline.py.
    inline_document_bytes: int = 64 * 1024
    #: Log level for the structured (JSON lines) log on stderr.
    log_level: str = "WARNING"
    #: Orphan blobs (stored but referenced by nothing) are deleted once older than this (seconds);
    #: the grace protects submissions still in flight.
    blob_sweep_grace_seconds: float = BLOB_SWEEP_GRACE_SECONDS
    #: How often the orphan-blob sweep runs (seconds; it also runs at start-up).
    blob_sweep_interval_seconds: float = BLOB_SWEEP_INTERVAL_SECONDS
    # -- security (ITI-19 node authentication, ITI-20 audit); see xds_hub/security, xds_hub/audit --
    #: PEM certificate (chain) and private key of the hub: when set, the listeners speak TLS 1.2+.
    tls_cert: str = ""
    tls_key: str = ""
    #: PEM CA bundle: when set, every client must present a certificate it issued (mutual TLS).
    tls_ca: str = ""
    #: ``[audit] repository``: the Audit Record Repository, ``udp://host:port`` (RFC 5426) or
    #: ``tls://host:port`` (RFC 5425); empty: audit messages are kept in the local table only.
    audit_repository: str = ""
    #: ``[audit] source_id``: AuditSourceIdentification/@AuditSourceID; empty: ``xds-hub@<host name>``.
    audit_source_id: str = ""
    #: ``[audit] enterprise_site_id``: @AuditEnterpriseSiteID; empty: the home community id.
    audit_enterprise_site_id: str = ""
    #: The config file these settings were read from, if any.
    config_file: Path | None = None
    domain: AffinityDomain = field(default_factory=AffinityDomain)

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{(self.data / 'xds-hub.sqlite').resolve()}"

    @property
    def blobs_url(self) -> str:
        return self.blobs or f"file://{(self.data / 'blobs').resolve()}"


# ---------------------------------------------------------------------------------------------
# The built-in demo domain: three establishments of one region.
# ---------------------------------------------------------------------------------------------

DEMO_DOMAIN = AffinityDomain(
    assigning_authority="1.3.6.1.4.1.21367.13.20.1000",
    home_community_id="urn:oid:1.2.3.4",
    repository_unique_id="1.2.3.4.5",
    imaging_source_unique_id="1.2.3.4.6",
    linking_authorities=("1.2.250.1.213.1.4.8",),
    establishments=(
        Establishment(
            name="Hopital A",
            assigning_authority="1.2.3.100",
            ae_titles=("HOPA_CT", "HOPA_PACS"),
            source_ids=("1.2.3.100.1",),
            dicom_nodes=(DicomNode("HOPA_PACS", "127.0.0.1", 11113),),
        ),
        Establishment(
            name="Hopital B",
            assigning_authority="1.2.3.200",
            ae_titles=("HOPB_MR", "HOPB_PACS"),
            source_ids=("1.2.3.200.1",),
            dicom_nodes=(DicomNode("HOPB_PACS", "127.0.0.1", 11114),),
        ),
        Establishment(
            name="Clinique C",
            assigning_authority="1.2.3.300",
            ae_titles=("CLIC_WS",),
            source_ids=("1.2.3.300.1",),
            dicom_nodes=(DicomNode("CLIC_WS", "127.0.0.1", 11115),),
        ),
    ),
    study_quiet_seconds=30.0,
    codes=None,
)

_HUB_KEYS = {f.name for f in fields(Settings)} - {"domain", "config_file"}


def _str_tuple(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a list of strings")
    return tuple(value)


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false")
    return value


def _require_str(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key} is required and must be a non-empty string")
    return value


def _parse_establishment(raw: Mapping[str, Any], index: int) -> Establishment:
    where = f"establishment[{index}]"
    nodes = []
    for n, node in enumerate(raw.get("dicom_nodes", [])):
        try:
            nodes.append(DicomNode(str(node["ae_title"]), str(node["host"]), int(node["port"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}.dicom_nodes[{n}] needs ae_title, host and port") from exc
    return Establishment(
        name=_require_str(raw, "name", where),
        assigning_authority=_require_str(raw, "assigning_authority", where),
        ae_titles=_str_tuple(raw.get("ae_titles", []), f"{where}.ae_titles"),
        source_ids=_str_tuple(raw.get("source_ids", []), f"{where}.source_ids"),
        dicom_nodes=tuple(nodes),
        tls_subjects=_str_tuple(raw.get("tls_subjects", []), f"{where}.tls_subjects"),
    )


def _parse_codes(raw: Mapping[str, Any]) -> dict[str, tuple[CodeEntry, ...]]:
    codes: dict[str, tuple[CodeEntry, ...]] = {}
    for kind, entries in raw.items():
        if kind not in CODE_KINDS:
            raise ConfigError(f"codes.{kind} is not a code kind; expected one of {', '.join(CODE_KINDS)}")
        try:
            codes[kind] = tuple(
                CodeEntry(str(e["code"]), str(e["scheme"]), str(e.get("display", ""))) for e in entries
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"codes.{kind}: each entry needs code and scheme") from exc
    return codes


def _str_map(value: Any, key: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"{key} must be a table of strings")
    return dict(value)


def _parse_subscriber(raw: Mapping[str, Any], index: int) -> PixSubscriber:
    where = f"pix.subscriber[{index}]"
    try:
        port = int(raw["port"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}.port is required and must be an integer") from exc
    return PixSubscriber(
        name=_require_str(raw, "name", where),
        host=_require_str(raw, "host", where),
        port=port,
        domains=_str_tuple(raw.get("domains", []), f"{where}.domains"),
        application=str(raw.get("application", "")),
        facility=str(raw.get("facility", "")),
        tls=_bool(raw.get("tls", False), f"{where}.tls"),
    )


def _parse_pix(raw: Mapping[str, Any], base: PixSettings) -> PixSettings:
    allocation = str(raw.get("allocation", base.allocation))
    if allocation not in PIX_ALLOCATION_POLICIES:
        raise ConfigError(f"pix.allocation must be one of {', '.join(PIX_ALLOCATION_POLICIES)}")
    id_prefix = str(raw.get("id_prefix", base.id_prefix))
    if not all(c.isascii() and (c.isalnum() or c in "._-") for c in id_prefix):
        raise ConfigError("pix.id_prefix may only hold ASCII letters, digits, '.', '_' and '-'")
    subscribers = raw.get("subscriber")
    return PixSettings(
        allocation=allocation,
        id_prefix=id_prefix,
        application=str(raw.get("application", base.application)),
        facility=str(raw.get("facility", base.facility)),
        namespaces=_str_map(raw.get("namespaces", dict(base.namespaces)), "pix.namespaces"),
        sources=_str_map(raw.get("sources", dict(base.sources)), "pix.sources"),
        subscribers=(
            tuple(_parse_subscriber(r, i) for i, r in enumerate(subscribers))
            if subscribers is not None
            else base.subscribers
        ),
    )


def parse_domain(doc: Mapping[str, Any]) -> AffinityDomain:
    """The affinity domain described by a parsed TOML document."""
    ad = doc.get("affinity_domain", {})
    base = DEMO_DOMAIN if not ad and "establishment" not in doc else AffinityDomain()
    est_raw = doc.get("establishment")
    establishments = (
        tuple(_parse_establishment(e, i) for i, e in enumerate(est_raw))
        if est_raw is not None
        else base.establishments
    )
    imaging = doc.get("imaging", {})
    domain = AffinityDomain(
        assigning_authority=ad.get("assigning_authority", base.assigning_authority),
        home_community_id=ad.get("home_community_id", base.home_community_id),
        repository_unique_id=ad.get("repository_unique_id", base.repository_unique_id),
        imaging_source_unique_id=ad.get("imaging_source_unique_id", base.imaging_source_unique_id),
        linking_authorities=_str_tuple(
            ad.get("linking_authorities", list(base.linking_authorities)),
            "affinity_domain.linking_authorities",
        ),
        establishments=establishments,
        study_quiet_seconds=float(imaging.get("study_quiet_seconds", base.study_quiet_seconds)),
        codes=_parse_codes(doc["codes"]) if "codes" in doc else None,
        pix=_parse_pix(doc.get("pix", {}), base.pix),
        admin_subjects=_str_tuple(
            doc.get("security", {}).get("admin_subjects", list(base.admin_subjects)),
            "security.admin_subjects",
        ),
    )
    if not domain.home_community_id.startswith("urn:oid:"):
        raise ConfigError("affinity_domain.home_community_id must be of the form urn:oid:OID")
    return domain


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Defaults, then the TOML file (if any), then the overrides (CLI options; None means unset)."""
    values: dict[str, Any] = {}
    domain = DEMO_DOMAIN
    if config_file is not None:
        try:
            doc = tomllib.loads(Path(config_file).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from exc
        domain = parse_domain(doc)
        hub = doc.get("hub", {})
        unknown = set(hub) - _HUB_KEYS
        if unknown:
            raise ConfigError(f"unknown [hub] keys: {', '.join(sorted(unknown))}")
        values.update(hub)
        values.update(_audit_values(doc.get("audit", {})))
        values["config_file"] = Path(config_file)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "data" in values:
        values["data"] = Path(values["data"])
    try:
        return replace(Settings(domain=domain), **values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from exc


def render_toml(settings: Settings) -> str:
    """The effective configuration, in the format :func:`load_settings` reads."""
    d = settings.domain
    doc: dict[str, Any] = {
        "hub": {
            "host": settings.host,
            "http_port": settings.http_port,
            "dicom_port": settings.dicom_port,
            "mllp_port": settings.mllp_port,
            "data": str(settings.data),
            "db": settings.db_url,
            "blobs": settings.blobs_url,
            "ae_title": settings.ae_title,
            "http_workers": settings.http_workers,
            "http_threads": settings.http_threads,
            "max_query_results": settings.max_query_results,
            "max_request_bytes": settings.max_request_bytes,
            "inline_document_bytes": settings.inline_document_bytes,
            "log_level": settings.log_level,
            "blob_sweep_grace_seconds": settings.blob_sweep_grace_seconds,
            "blob_sweep_interval_seconds": settings.blob_sweep_interval_seconds,
        },
        "affinity_domain": {
            "assigning_authority": d.assigning_authority,
            "home_community_id": d.home_community_id,
            "repository_unique_id": d.repository_unique_id,
            "imaging_source_unique_id": d.imaging_source_unique_id,
            "linking_authorities": list(d.linking_authorities),
        },
        "establishment": [
            {
                "name": e.name,
                "assigning_authority": e.assigning_authority,
                "ae_titles": list(e.ae_titles),
                "source_ids": list(e.source_ids),
                "dicom_nodes": [
                    {"ae_title": n.ae_title, "host": n.host, "port": n.port} for n in e.dicom_nodes
                ],
            }
            for e in d.establishments
        ],
        "imaging": {"study_quiet_seconds": d.study_quiet_seconds},
        "pix": {
            "allocation": d.pix.allocation,
            "id_prefix": d.pix.id_prefix,
            "application": d.pix.application,
            "facility": d.pix.facility,
            "namespaces": dict(d.pix.namespaces),
            "sources": dict(d.pix.sources),
            "subscriber": [
                {
                    "name": s.name,
                    "host": s.host,
                    "port": s.port,
                    "domains": list(s.domains),
                    "application": s.application,
                    "facility": s.facility,
                    "tls": s.tls,
                }
                for s in d.pix.subscribers
            ],
        },
    }
    _render_security(settings, doc)
    if d.codes is not None:
        doc["codes"] = {
            kind: [{"code": c.code, "scheme": c.scheme, "display": c.display} for c in entries]
            for kind, entries in d.codes.items()
        }
    return tomli_w.dumps(doc)


# ---------------------------------------------------------------------------------------------
# Security settings (issue 5): [audit] keys, and what render_toml adds for TLS / audit / admins.
# ---------------------------------------------------------------------------------------------

#: ``[audit]`` keys -> Settings fields.
AUDIT_KEYS = {
    "repository": "audit_repository",
    "source_id": "audit_source_id",
    "enterprise_site_id": "audit_enterprise_site_id",
}


def _audit_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(raw) - set(AUDIT_KEYS)
    if unknown:
        raise ConfigError(f"unknown [audit] keys: {', '.join(sorted(unknown))}")
    for key, value in raw.items():
        if not isinstance(value, str):
            raise ConfigError(f"audit.{key} must be a string")
    return {AUDIT_KEYS[k]: v for k, v in raw.items()}


def _render_security(settings: Settings, doc: dict[str, Any]) -> None:
    """Add the TLS, audit and admin settings that differ from their defaults to ``doc``."""
    for key in ("tls_cert", "tls_key", "tls_ca"):
        if getattr(settings, key):
            doc["hub"][key] = getattr(settings, key)
    audit = {k: getattr(settings, f) for k, f in AUDIT_KEYS.items() if getattr(settings, f)}
    if audit:
        doc["audit"] = audit
    if settings.domain.admin_subjects:
        doc["security"] = {"admin_subjects": list(settings.domain.admin_subjects)}
    for est, rendered in zip(settings.domain.establishments, doc["establishment"], strict=True):
        if est.tls_subjects:
            rendered["tls_subjects"] = list(est.tls_subjects)
