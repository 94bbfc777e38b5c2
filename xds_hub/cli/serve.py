"""`xds-hub serve`."""

from __future__ import annotations

import argparse
from typing import Any

from xds_hub.cli import add_store_options, settings_from


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("serve", help="start every actor of the hub")
    add_store_options(p)
    p.add_argument("--host", help="listen address (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, help="HTTP port: SOAP, WADO, DICOMweb (default 8080)")
    p.add_argument("--dicom-port", type=int, help="DICOM port (default 11112)")
    p.add_argument("--mllp-port", type=int, help="HL7 v2 MLLP port (default 2575)")
    p.add_argument("--http-workers", type=int, help="HTTP worker processes (default 2)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING (default), ERROR")
    # Security (ITI-19 / ITI-20): see `xds-hub certs init` and the README's Security section.
    p.add_argument("--tls-cert", help="PEM certificate of the hub: TLS 1.2+ on every listener")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--tls-ca", help="PEM CA bundle: clients must show a certificate it issued (mutual TLS)")
    p.add_argument("--audit-repository", help="Audit Record Repository: udp://host:port or tls://host:port")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xds_hub.server import serve

    settings = settings_from(
        args,
        host=args.host,
        http_port=args.http_port,
        dicom_port=args.dicom_port,
        mllp_port=args.mllp_port,
        http_workers=args.http_workers,
        log_level=args.log_level,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_ca=args.tls_ca,
        audit_repository=args.audit_repository,
    )
    return serve(settings)
