"""PIX verbs: `xds-hub pix feed FILE --to HOST:PORT` (ITI-8) and
`xds-hub pix query 'ID^^^&OID&ISO' --to HOST:PORT|URL [--domain OID]` (ITI-9 / ITI-45).

Both talk to any PIX Manager.  Exit status: 0 success (every message AA; the query answered OK),
1 the PIX Manager refused something (AE/AR) or the query found no identifier (NF), 2 bad
arguments, 3 the PIX Manager could not be reached or did not answer HL7.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TRANSPORT = 0, 1, 2, 3


def register(sub: Any) -> None:
    pix = sub.add_parser("pix", help="PIX Manager client: feed identities, query cross-references")
    verbs = pix.add_subparsers(dest="pix_command", metavar="VERB", required=True)

    feed = verbs.add_parser("feed", help="send the HL7 v2 messages of FILE (ITI-8) over MLLP")
    feed.add_argument("file", type=Path, metavar="FILE", help="one or more HL7 v2 messages ('-' for stdin)")
    feed.add_argument("--to", required=True, metavar="HOST:PORT", help="the PIX Manager's MLLP address")
    feed.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each ACK (30)")
    feed.add_argument("--no-progress", action="store_true", help="no progress bar on a terminal")
    feed.set_defaults(func=pix_feed)

    query = verbs.add_parser("query", help="ask for the identifiers cross-referenced with one (ITI-9/45)")
    query.add_argument("patient_id", metavar="ID^^^&OID&ISO")
    query.add_argument(
        "--to",
        required=True,
        metavar="HOST:PORT|URL",
        help="the PIX Manager: HOST:PORT for ITI-9 over MLLP, an http(s) URL for ITI-45 over SOAP",
    )
    query.add_argument(
        "--domain",
        action="append",
        default=[],
        metavar="OID",
        help="return identifiers of this assigning authority only (repeatable; default: all)",
    )
    query.add_argument("--json", action="store_true", help="print the answer as JSON")
    query.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer (30)")
    query.set_defaults(func=pix_query)


def pix_feed(args: argparse.Namespace) -> int:
    from xds_hub.client.pix import PixClientError, iter_feed_v2, parse_target
    from xds_hub.pix.hl7v2 import split_messages

    try:
        target = parse_target(args.to)
        text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text(encoding="utf-8")
    except (ValueError, OSError) as exc:
        print(f"xds-hub pix feed: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(target, str):
        print("xds-hub pix feed: --to must be HOST:PORT (ITI-8 is sent over MLLP)", file=sys.stderr)
        return EXIT_USAGE
    messages = split_messages(text)
    if not messages:
        print(f"xds-hub pix feed: {args.file} holds no HL7 v2 message", file=sys.stderr)
        return EXIT_USAGE
    from tqdm import tqdm

    status = EXIT_OK
    # A bar on a terminal only (stdout keeps one line per result), shown after 2 s of feeding.
    bar = tqdm(total=len(messages), unit="msg", file=sys.stderr, disable=args.no_progress or None, delay=2.0)
    try:
        for r in iter_feed_v2(target[0], target[1], messages, timeout=args.timeout):
            bar.update()
            bar.write(f"{r.control_id}\t{r.ack}", file=sys.stdout)
            for e in r.errors:
                bar.write(f"  {e}", file=sys.stderr)
            if r.ack not in ("AA", "CA"):
                status = EXIT_FAILED
    except PixClientError as exc:
        bar.close()
        print(f"xds-hub pix feed: {exc}", file=sys.stderr)
        return EXIT_TRANSPORT
    bar.close()
    return status


def pix_query(args: argparse.Namespace) -> int:
    from xds_hub.client.pix import PixClientError, parse_cx, query

    try:
        pid = parse_cx(args.patient_id)
        result = query(args.to, pid, args.domain, timeout=args.timeout)
    except ValueError as exc:
        print(f"xds-hub pix query: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PixClientError as exc:
        print(f"xds-hub pix query: {exc}", file=sys.stderr)
        return EXIT_TRANSPORT
    if args.json:
        print(
            json.dumps(
                {
                    "ack": result.ack,
                    "status": result.status,
                    "identifiers": [i.cx for i in result.identifiers],
                    "errors": list(result.errors),
                },
                indent=2,
            )
        )
    else:
        for ident in result.identifiers:
            print(ident.cx)
    if result.status == "OK":
        return EXIT_OK
    if not args.json:
        if result.status == "NF":
            print(f"xds-hub pix query: no identifier cross-referenced with {pid.cx} (NF)", file=sys.stderr)
        else:
            print(f"xds-hub pix query: the PIX Manager refused the query ({result.status})", file=sys.stderr)
            for e in result.errors:
                print(f"  {e}", file=sys.stderr)
    return EXIT_FAILED
