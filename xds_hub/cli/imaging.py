"""Imaging verbs: `xds-hub publish-study`, `xds-hub studies` (operator, on the hub's store) and
`xds-hub fetch-study` (an Imaging Document Consumer talking to any hub over HTTP).

Exit status: 0 success; 1 the study could not be published / the fetch was not complete; 2 bad
arguments or configuration; 3 the hub could not be reached.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xds_hub.cli import add_store_options, settings_from

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TRANSPORT = 0, 1, 2, 3


def register(sub: Any) -> None:
    publish = sub.add_parser(
        "publish-study", help="publish a study's KOS manifest now (RAD-68), instead of after the quiet time"
    )
    add_store_options(publish)
    publish.add_argument("study_uid", metavar="STUDY_UID", help="Study Instance UID")
    publish.add_argument(
        "--force",
        action="store_true",
        help="publish a new manifest even if the current one lists every instance",
    )
    publish.set_defaults(func=publish_study)

    studies = sub.add_parser(
        "studies", help="list the studies received over DICOM and their publication state"
    )
    add_store_options(studies)
    studies.add_argument("--problems", action="store_true", help="only studies that could not be published")
    studies.add_argument("--limit", type=int, default=100, help="at most this many studies (100)")
    studies.set_defaults(func=list_studies)

    fetch = sub.add_parser(
        "fetch-study",
        help="Imaging Document Consumer: find a patient's manifests (ITI-18), read them (ITI-43), "
        "retrieve the images (RAD-69) and write DICOM files",
    )
    fetch.add_argument("--patient", required=True, metavar="ID^^^&OID&ISO", help="affinity-domain patient ID")
    fetch.add_argument("--to", required=True, type=Path, metavar="DIR", help="folder for the DICOM files")
    fetch.add_argument("--url", default="http://127.0.0.1:8080", help="the hub (http://127.0.0.1:8080)")
    fetch.add_argument("--study", metavar="UID", help="only this Study Instance UID")
    fetch.add_argument(
        "--transfer-syntax",
        action="append",
        metavar="UID",
        help="a transfer syntax to accept (repeatable; default Explicit then Implicit VR Little Endian)",
    )
    fetch.add_argument(
        "--registry", metavar="URL", help="Document Registry endpoint (default: URL/xds/registry)"
    )
    fetch.add_argument(
        "--repository", metavar="URL", help="Document Repository endpoint (URL/xds/repository)"
    )
    fetch.add_argument("--source", metavar="URL", help="Imaging Document Source endpoint (URL/xdsi/source)")
    fetch.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for an answer (300)")
    fetch.add_argument("--insecure", action="store_true", help="do not verify the server's TLS certificate")
    fetch.set_defaults(func=fetch_study)


def publish_study(args: argparse.Namespace) -> int:
    from xds_hub.imaging.publisher import Outcome
    from xds_hub.imaging.publisher import publish_study as publish
    from xds_hub.storage.stores import open_stores

    settings = settings_from(args)
    stores = open_stores(settings)
    try:
        result = publish(stores, settings, args.study_uid, force=args.force, wait=120.0)
    finally:
        stores.close()
    if result.outcome in (Outcome.PUBLISHED, Outcome.UP_TO_DATE):
        print(f"{args.study_uid}: {result.outcome} {result.detail}".rstrip())
        return EXIT_OK
    print(f"xds-hub: {args.study_uid}: {result.outcome}: {result.detail}", file=sys.stderr)
    return EXIT_FAILED


def _when(ns: int | None) -> str:
    if not ns:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def list_studies(args: argparse.Namespace) -> int:
    from sqlalchemy import desc, func, select

    from xds_hub.imaging.tables import dicom_instance, dicom_study, imaging_report
    from xds_hub.storage.stores import open_stores

    settings = settings_from(args)
    stores = open_stores(settings)
    try:
        with stores.engine.connect() as conn:
            count = (
                select(func.count())
                .where(dicom_instance.c.study_uid == dicom_study.c.study_uid)
                .scalar_subquery()
            )
            stmt = select(dicom_study, count.label("instances")).order_by(desc(dicom_study.c.last_received))
            if args.problems:
                stmt = stmt.where(dicom_study.c.state.in_(["unresolved", "failed"]))
            rows = conn.execute(stmt.limit(args.limit)).all()
            for row in rows:
                print(
                    f"{row.study_uid}  {row.state:<10}  {row.instances:>6} instances  "
                    f"patient {row.patient_id} ({row.establishment})  last {_when(row.last_received)}"
                )
                if row.state in ("unresolved", "failed"):
                    report = conn.execute(
                        select(imaging_report.c.detail)
                        .where(imaging_report.c.study_uid == row.study_uid)
                        .order_by(desc(imaging_report.c.id))
                        .limit(1)
                    ).scalar()
                    print(f"    {report}")
    finally:
        stores.close()
    return EXIT_OK


def fetch_study(args: argparse.Namespace) -> int:
    from xds_hub.client.imaging import DEFAULT_TRANSFER_SYNTAXES
    from xds_hub.client.imaging import fetch_study as fetch
    from xds_hub.client.soap import TransportError, XdsClientError

    try:
        report = fetch(
            args.url,
            args.patient,
            args.to,
            study_uid=args.study,
            transfer_syntaxes=args.transfer_syntax or DEFAULT_TRANSFER_SYNTAXES,
            registry_url=args.registry,
            repository_url=args.repository,
            source_url=args.source,
            timeout=args.timeout,
            verify=not args.insecure,
        )
    except TransportError as exc:
        print(f"xds-hub: {exc}", file=sys.stderr)
        return EXIT_TRANSPORT
    except XdsClientError as exc:
        print(f"xds-hub: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for error in report.errors:
        print(f"xds-hub: {error.code}: {error.context} [{error.location}]", file=sys.stderr)
    print(f"{len(report.manifests)} manifest(s), {len(report.files)} DICOM file(s) written to {args.to}")
    return EXIT_OK if report.ok and report.manifests else EXIT_FAILED
