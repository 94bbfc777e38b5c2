"""Security verbs: `xds-hub certs init DIR` (demo PKI for mutual TLS, ITI-19) and
`xds-hub audit --patient ID` (who accessed a patient's documents and images, from the ITI-20 trail)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from xds_hub.cli import add_store_options, settings_from
from xds_hub.config import Settings, load_settings, render_toml


def register(sub: Any) -> None:
    certs = sub.add_parser("certs", help="demo certificates for mutual TLS between the hub and its members")
    certs_sub = certs.add_subparsers(dest="certs_command", metavar="VERB", required=True)
    init = certs_sub.add_parser(
        "init",
        help="create a demo CA and certificates for the hub, each establishment and an admin",
        description="Create (or complete) a demo PKI in DIR and print the configuration that uses it. "
        "Existing files are kept (a new establishment gets its certificate from the existing CA); "
        "--force makes everything anew.",
    )
    init.add_argument("dir", type=Path, metavar="DIR")
    init.add_argument("--config", type=Path, help="affinity-domain TOML file (default: built-in demo domain)")
    init.add_argument(
        "--host-name",
        action="append",
        default=[],
        metavar="NAME",
        help="a DNS name or IP address of the hub for its certificate (repeatable; localhost and "
        "127.0.0.1 are always included)",
    )
    init.add_argument(
        "--org", default="xds-hub demo region", help="organization name (O=) of the certificates"
    )
    init.add_argument("--force", action="store_true", help="overwrite existing files, CA included")
    init.set_defaults(func=certs_init)

    audit = sub.add_parser(
        "audit", help="the local audit trail: who accessed a patient's documents and images"
    )
    add_store_options(audit)
    audit.add_argument(
        "--patient",
        required=True,
        metavar="ID",
        help="patient ID: ID^^^&OID&ISO, or a bare ID under any assigning authority",
    )
    audit.add_argument("--json", action="store_true", help="print JSON (one array) instead of a table")
    audit.set_defaults(func=audit_patient)


# ---------------------------------------------------------------------------------------------
# certs init
# ---------------------------------------------------------------------------------------------


def _secured(settings: Settings, pki: Any) -> Settings:
    subjects = {c.name: c.tls_subject for c in pki.establishments}
    domain = dataclasses.replace(
        settings.domain,
        admin_subjects=(pki.admin.tls_subject,),
        establishments=tuple(
            dataclasses.replace(e, tls_subjects=(subjects[e.name],)) if e.name in subjects else e
            for e in settings.domain.establishments
        ),
    )
    return dataclasses.replace(
        settings,
        domain=domain,
        tls_cert=str(pki.hub.cert.resolve()),
        tls_key=str(pki.hub.key.resolve()),
        tls_ca=str(pki.ca.cert.resolve()),
    )


def _config_text(settings: Settings, original: Path | None) -> str:
    """The complete effective config with TLS: the domain as rendered, the [hub] table as given."""
    doc = tomllib.loads(render_toml(settings))
    hub: dict[str, Any] = {}
    if original is not None:
        hub = dict(tomllib.loads(original.read_text(encoding="utf-8")).get("hub", {}))
    hub.update(tls_cert=settings.tls_cert, tls_key=settings.tls_key, tls_ca=settings.tls_ca)
    doc["hub"] = hub
    return tomli_w.dumps(doc)


def certs_init(args: argparse.Namespace) -> int:
    from xds_hub.security.certs import init_pki

    settings = load_settings(args.config)
    pki = init_pki(args.dir, settings.domain, org=args.org, host_names=args.host_name, force=args.force)
    secured = _secured(settings, pki)
    out = sys.stdout
    out.write(f"Demo PKI in {pki.folder.resolve()}:\n")
    for cert in pki.all:
        state = "created" if cert.created else "kept"
        out.write(f"  {cert.role:<13} {cert.name:<24} {cert.cert.name:<22} {cert.key.name:<26} {state}\n")
    config_path = args.dir / "xds-hub.toml"
    text = _config_text(secured, args.config)
    if not config_path.exists() or args.force or config_path.read_text(encoding="utf-8") == text:
        config_path.write_text(text, encoding="utf-8")
        out.write(f"\nA complete configuration using them: {config_path.resolve()}\n")
    else:
        out.write(f"\n{config_path} exists and differs: kept (use --force to rewrite it).\n")
    out.write("\n# Add to your configuration file (TOML):\n")
    out.write(
        tomli_w.dumps(
            {
                "hub": {"tls_cert": secured.tls_cert, "tls_key": secured.tls_key, "tls_ca": secured.tls_ca},
                "security": {"admin_subjects": list(secured.domain.admin_subjects)},
            }
        )
    )
    out.write("# and, in each [[establishment]]:\n")
    for est in secured.domain.establishments:
        out.write(
            f"#   {est.name}: tls_subjects = {json.dumps(list(est.tls_subjects), ensure_ascii=False)}\n"
        )
    first = pki.establishments[0] if pki.establishments else pki.admin
    out.write(
        f"\n# Then: xds-hub serve --config {config_path}\n"
        f"# A member calls it with its certificate, e.g.:\n"
        f"#   curl --cert {first.cert} --key {first.key} --cacert {pki.ca.cert} "
        f"https://localhost:{settings.http_port}/healthz\n"
    )
    return 0


# ---------------------------------------------------------------------------------------------
# audit --patient
# ---------------------------------------------------------------------------------------------


def _what(objects: tuple[dict[str, str], ...]) -> str:
    return ", ".join(f"{o.get('kind')} {o.get('id')}" for o in objects) or "-"


def audit_patient(args: argparse.Namespace) -> int:
    from xds_hub.audit.store import accesses_for_patient
    from xds_hub.storage.stores import open_stores

    stores = open_stores(settings_from(args))
    try:
        with stores.engine.connect() as conn:
            accesses = accesses_for_patient(conn, args.patient)
    finally:
        stores.close()
    if args.json:
        json.dump([a.as_json() for a in accesses], sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    if not accesses:
        print(f"no audit record about patient {args.patient}")
        return 0
    header = ("TIME", "TRANSACTION", "ACTION", "OUTCOME", "WHO", "FROM", "PATIENT", "WHAT")
    rows = [
        (
            a.time,
            f"{a.transaction} {a.transaction_name}" if a.transaction else a.event,
            a.action,
            a.outcome,
            a.identity or a.who or "-",
            a.address or "-",
            a.patient_id,
            _what(a.objects),
        )
        for a in accesses
    ]
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        print("  ".join([*cells, str(row[-1])]).rstrip())
    return 0
