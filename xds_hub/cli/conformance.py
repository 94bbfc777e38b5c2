"""`xds-hub conformance run|list` (the catalogue against any endpoint) and `xds-hub demo` (issue 4)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    conf = sub.add_parser("conformance", help="run the IHE conformance scenarios against an endpoint")
    verbs = conf.add_subparsers(dest="conformance_command", metavar="VERB", required=True)

    run = verbs.add_parser("run", help="run scenarios against --target and report")
    run.add_argument(
        "--target", required=True, help="base URL of the system under test, e.g. http://host:8080"
    )
    run.add_argument(
        "--config", type=Path, help="the target's affinity domain (TOML; default: built-in demo domain)"
    )
    run.add_argument("--pix-mllp", metavar="HOST:PORT", help="the target's HL7 v2 MLLP listener (ITI-8/9)")
    run.add_argument("--dicom", metavar="HOST:PORT", help="the target's DICOM listener")
    run.add_argument("--tls-cert", metavar="FILE", help="PEM certificate shown to a mutual-TLS target")
    run.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    run.add_argument("--tls-ca", metavar="FILE", help="PEM CA bundle that issued the target's certificate")
    run.add_argument("--junit", type=Path, metavar="FILE", help="write a JUnit XML report")
    run.add_argument("--html", type=Path, metavar="FILE", help="write a self-contained HTML report")
    run.add_argument("--jobs", type=int, default=4, help="scenarios run at once (default 4)")
    run.add_argument("-v", "--verbose", action="store_true", help="list every scenario in the summary")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help="catalogue ids, folders (e.g. repository/iti41), globs or .toml files (default: all)",
    )
    run.set_defaults(func=run_command)

    demo = sub.add_parser("demo", help="start a hub and play the region's story end to end (under a minute)")
    demo.add_argument("--data", type=Path, help="folder for the demo hub (default: a temporary one, removed)")
    demo.add_argument(
        "--html", type=Path, metavar="FILE", help="write the HTML report of the demo's exchanges"
    )
    demo.set_defaults(func=demo_command)

    show = verbs.add_parser("list", help="list the scenarios of the catalogue")
    show.add_argument("scenarios", nargs="*", metavar="SCENARIO")
    show.set_defaults(func=list_command)


def demo_command(args: argparse.Namespace) -> int:
    from xds_hub.conformance.demo import run_demo

    return run_demo(sys.stdout, args.data, args.html)


def list_command(args: argparse.Namespace) -> int:
    from xds_hub.conformance.scenario import ScenarioError, select

    try:
        scenarios = select(args.scenarios)
    except ScenarioError as exc:
        print(f"xds-hub conformance: {exc}", file=sys.stderr)
        return 2
    for s in scenarios:
        print(f"{s.id:<60} {', '.join(s.transactions):<24} {s.title}")
    print(f"{len(scenarios)} scenarios", file=sys.stderr)
    return 0


def run_command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from xds_hub.conformance.engine import ERROR, FAILED, Runner, ScenarioResult
    from xds_hub.conformance.report import console_summary, write_html, write_junit
    from xds_hub.conformance.scenario import ScenarioError, select
    from xds_hub.conformance.target import ClientTls, load_target

    tls = None
    if args.tls_cert or args.tls_ca or args.target.startswith("https:"):
        tls = ClientTls(args.tls_cert, args.tls_key, args.tls_ca)
    target = load_target(args.target, args.config, args.pix_mllp, args.dicom, tls)
    try:
        scenarios = select(args.scenarios)
    except ScenarioError as exc:
        print(f"xds-hub conformance: {exc}", file=sys.stderr)
        return 2
    bar = tqdm(total=len(scenarios), unit="scenario", disable=args.no_progress or None, file=sys.stderr)

    def progress(result: ScenarioResult) -> None:
        bar.update(1)
        if result.outcome in (FAILED, ERROR):
            bar.write(f"{result.outcome.upper():<6} {result.scenario.id}", file=sys.stderr)

    results = Runner(target, jobs=args.jobs, on_result=progress).run_all(scenarios)
    bar.close()
    console_summary(results, sys.stdout, verbose=args.verbose)
    if args.junit:
        write_junit(results, args.junit, target)
        print(f"JUnit report: {args.junit}")
    if args.html:
        write_html(results, args.html, target)
        print(f"HTML report: {args.html}")
    return 1 if any(r.outcome in (FAILED, ERROR) for r in results) else 0
