"""`xds-hub validate FILE`: check a message with the hub's own validation code (issue 4).

Exit status: 0 when valid, 1 when it has problems, 2 when it cannot be read or checked.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "validate",
        help="check an ITI-41/42/18/43/44/45 message, an HL7 v2 feed or query the way the hub would",
    )
    p.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="SOAP envelope, raw HTTP/MTOM capture, bare payload XML or HL7 v2 message",
    )
    p.add_argument("--config", type=Path, help="affinity domain (code lists); default: built-in demo domain")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xds_hub.config import load_settings
    from xds_hub.conformance.validator import validate_bytes

    domain = load_settings(args.config).domain
    status = 0
    out: list[dict[str, Any]] = []
    for path in args.files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            print(f"xds-hub validate: {path}: {exc}", file=sys.stderr)
            status = max(status, 2)
            continue
        report = validate_bytes(data, domain)
        if args.json:
            out.append(
                {
                    "file": str(path),
                    "kind": report.kind,
                    "valid": report.valid,
                    "unchecked": report.unchecked,
                    "findings": [asdict(f) for f in report.findings],
                }
            )
        else:
            verdict = "not checked" if report.unchecked else ("valid" if report.valid else "INVALID")
            print(
                f"{path}: {report.kind}: {verdict}"
                + (f" ({len(report.findings)} problems)" if report.findings else "")
            )
            if report.unchecked:
                print(f"  {report.unchecked}")
            for f in report.findings:
                where = f" at {f.location}" if f.location else ""
                print(f"  {f.severity.upper()} {f.code}{where}: {f.rule}")
        status = max(status, 2 if report.unchecked else (0 if report.valid else 1))
    if args.json:
        print(json.dumps(out, indent=2))
    return status
