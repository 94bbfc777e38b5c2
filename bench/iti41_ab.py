"""ITI-41 A/B: an older tree of the hub against this one, side by side, alternating rounds.

Usage (from the repository root)::

    git archive <commit> | tar -x -C /tmp/before
    python -m bench.iti41_ab --before /tmp/before [--backend sqlite|postgresql] [--rounds 5]
                             [--count 500] [--threads 8]
    python -m bench.iti41_ab --before-hub "http_workers = 2" --after-hub "http_workers = 4"

On a machine whose load drifts (other jobs on the same cores), comparing two runs made minutes
apart says little.  This runs the hub of ``--before`` (started in that folder, which is also put
first on PYTHONPATH) and the hub of this tree at the same time, with the same client
(bench/iti41_submit.py: pre-built MTOM requests of one 10 KB document, keep-alive connections),
alternating rounds, and prints each hub's submissions/s and server CPU seconds per 1,000
submissions (medians over the rounds) and the load average.  ``--before`` may also be a folder
holding only a ``sitecustomize.py`` that patches this tree (e.g. to switch a feature off).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from bench.iti41_submit import AFFINITY, cpu_seconds, drive, is_success, prepare, process_tree
from tests.hubproc import TEST_CONFIG, Hub, db_url_for, drop_pg_database
from xds_hub.storage.db import make_engine


def _config(hub_lines: list[str]) -> str:
    """TEST_CONFIG with ``key = value`` lines (e.g. ``http_workers = 4``) in its [hub] table."""
    return ("[hub]\n" + "\n".join(hub_lines) + "\n" if hub_lines else "") + TEST_CONFIG


def _start(backend: str, tree: str | None, tag: str, hub_lines: list[str]) -> Hub:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-ab-{tag}-{backend}-"))
    saved, cwd = os.environ.get("PYTHONPATH"), os.getcwd()
    if tree is not None:
        os.environ["PYTHONPATH"] = tree
        if (Path(tree) / "xds_hub").is_dir():
            os.chdir(tree)  # `python -m xds_hub` looks in its working directory first
    try:
        return Hub(folder=folder, db_url=db_url_for(backend, folder), config_text=_config(hub_lines)).start()
    finally:
        os.chdir(cwd)
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def postmaster_pid(db_url: str) -> int | None:
    """The PID of the PostgreSQL server of ``db_url`` when it runs on this machine (else None)."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            folder = conn.execute(text("SHOW data_directory")).scalar_one()
        return int((Path(folder) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, SQLAlchemyError):
        return None
    finally:
        engine.dispose()


Figures = tuple[float, float, int, float]


def _round(hub: Hub, pid: str, count: int, threads: int, server: int | None) -> Figures:
    """(submissions/s, hub CPU s/1000, failures, database server CPU s/1000: every backend of the
    server, so other users of the same PostgreSQL count too)."""
    assert hub.process is not None
    url = hub.url("/xds/repository")
    reqs = prepare(url, pid, count, 10 * 1024)
    tree = process_tree(hub.process.pid)
    cpu0 = cpu_seconds(tree)
    db0 = cpu_seconds(process_tree(server)) if server else 0.0
    seconds, failures = drive(url, reqs, threads, is_success)
    cpu = cpu_seconds(process_tree(hub.process.pid)) - cpu0
    db = cpu_seconds(process_tree(server)) - db0 if server else 0.0
    return count / seconds, cpu / count * 1000, failures, db / count * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--before", help="PYTHONPATH of the older tree (its root); default: this tree (compare settings)"
    )
    parser.add_argument(
        "--before-hub",
        action="append",
        default=[],
        metavar="LINE",
        help="a [hub] setting of the 'before' hub",
    )
    parser.add_argument(
        "--after-hub", action="append", default=[], metavar="LINE", help="a [hub] setting of the 'after' hub"
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    hubs = {
        "before": _start(args.backend, args.before, "before", args.before_hub),
        "after": _start(args.backend, None, "after", args.after_hub),
    }
    figures: dict[str, list[Figures]] = {k: [] for k in hubs}
    server = postmaster_pid(hubs["after"].db_url) if args.backend == "postgresql" else None
    loads = []
    try:
        pid = f"AB{os.getpid()}^^^&{AFFINITY}&ISO"
        for hub in hubs.values():
            hub.add_patient(pid)
            drive(
                hub.url("/xds/repository"),
                prepare(hub.url("/xds/repository"), pid, 50, 10 * 1024),
                8,
                is_success,
            )
        for i in range(args.rounds):
            order = list(hubs) if i % 2 == 0 else list(reversed(hubs))
            for tag in order:
                rate, cpu, failures, db = _round(hubs[tag], pid, args.count, args.threads, server)
                figures[tag].append((rate, cpu, failures, db))
                loads.append(os.getloadavg()[0])
                extra = f", database server CPU {db:.2f} s/1000" if server else ""
                print(
                    f"  round {i + 1} {tag}: {rate:.0f}/s, CPU {cpu:.2f} s/1000{extra}, failures {failures}",
                    flush=True,
                )
        for tag, rows in figures.items():
            print(
                f"{args.backend} {tag}: median {statistics.median(r[0] for r in rows):.0f}/s, "
                f"CPU {statistics.median(r[1] for r in rows):.2f} s/1000, "
                + (f"database CPU {statistics.median(r[3] for r in rows):.2f} s/1000, " if server else "")
                + f"failures {sum(r[2] for r in rows)}"
            )
        print(f"load average during the rounds: {min(loads):.1f}-{max(loads):.1f}")
    finally:
        for hub in hubs.values():
            hub.stop()
            if args.backend == "postgresql":
                drop_pg_database(hub.db_url)
            shutil.rmtree(hub.folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
