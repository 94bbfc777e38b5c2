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
    )
    return serve(settings)
