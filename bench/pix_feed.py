"""ITI-8 feed throughput and ITI-9 query latency of the PIX Manager with 1,000,000 cross-referenced
identities, on SQLite and PostgreSQL.

Usage (from the repository root)::

    python -m bench.pix_feed [--backend sqlite|postgresql|both] [--identities 1000000]
                             [--feeds 20000] [--window 32] [--queries 5000] [--runs 3]

For each backend: a fresh database is created with the hub's schema and bulk-loaded with
``--identities`` persons, each a local ID of Hopital A cross-referenced with a regional ID (and the
registry's patient row), straight through the driver (SQLite executemany / PostgreSQL COPY); then
a real ``xds-hub serve`` (tests/hubproc.py) is started on it.  Each run then measures, over one
MLLP connection:

- ITI-8, durable (every ACK after its commit): ``--feeds`` ADT^A01 of new patients (a Hopital B ID
  and a national ID; the hub allocates a regional ID and registers it), sent one at a time
  (``sync``: send, wait for the ACK) and pipelined (``--window`` messages in flight);
- the same client against a do-nothing MLLP responder (answers every frame with a fixed ACK, no
  parsing): the ceiling of client + loopback;
- ITI-9: ``--queries`` QBP^Q23 for random bulk-loaded patients, one at a time, latency p50 / p99;
- server CPU seconds per 1,000 messages of each phase (utime+stime of the hub's process group,
  /proc).

Medians of ``--runs`` runs are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hubproc import TEST_CONFIG, Hub, db_url_for, drop_pg_database, free_port  # noqa: E402
from xds_hub.pix.mllp import FrameReader, frame  # noqa: E402
from xds_hub.storage.db import make_engine  # noqa: E402
from xds_hub.storage.migrate import upgrade  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
AFFINITY = "1.3.6.1.4.1.21367.13.20.1000"
HOPA, HOPB, NATIONAL = "1.2.3.100", "1.2.3.200", "1.2.250.1.213.1.4.8"

# ------------------------------------------------------------------------------------------------
# /proc
# ------------------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def postgres_pids(database: str) -> list[int]:
    """The local PostgreSQL server's backends serving ``database`` (their process titles name it):
    the server-side CPU of a feed or a query.  Other databases' backends (other work on the same
    server) and the server's shared processes (WAL writer, checkpointer) are not counted."""
    import pwd

    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        return []
    out = []
    needle = f" {database} ".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid and needle in (entry / "cmdline").read_bytes():
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = _stat(pid)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def cpu_snapshot(pids: Sequence[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            fields = _stat(pid)
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def pg_cpu_since(before: dict[int, float], database: str) -> float:
    """CPU seconds the backends of ``database`` used since ``before`` (a new backend counts from
    zero; one that exited meanwhile is lost)."""
    after = cpu_snapshot(postgres_pids(database))
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


# ------------------------------------------------------------------------------------------------
# Bulk load
# ------------------------------------------------------------------------------------------------


def bulk_load(url: str, count: int) -> float:
    """``count`` persons: local L<i> (Hopital A) + regional XH<i>, and the registry patient row."""
    started = time.monotonic()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    now = "2024-01-01T00:00:00+00:00"
    chunk = 100_000
    if url.startswith("sqlite"):
        import sqlite3

        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        db.execute("PRAGMA synchronous=OFF")
        for lo in range(1, count + 1, chunk):
            ids = range(lo, min(lo + chunk, count + 1))
            db.executemany("INSERT INTO pix_person (id, created) VALUES (?, ?)", ((i, now) for i in ids))
            db.executemany(
                "INSERT INTO pix_identity (authority, value, person_id, merged_into, demographics, updated) "
                "VALUES (?, ?, ?, NULL, NULL, ?)",
                ((a, v, i, now) for i in ids for a, v in ((HOPA, f"L{i:09d}"), (AFFINITY, f"XH{i}"))),
            )
            db.executemany(
                "INSERT INTO patient (patient_id, created, merged_into) VALUES (?, ?, NULL)",
                ((f"XH{i}^^^&{AFFINITY}&ISO", now) for i in ids),
            )
            db.commit()
        db.execute("ANALYZE")
        db.commit()
        db.close()
    else:
        import psycopg

        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as db, db.cursor() as cur:
            with cur.copy("COPY pix_person (id, created) FROM STDIN") as copy:
                for i in range(1, count + 1):
                    copy.write_row((i, now))
            with cur.copy(
                "COPY pix_identity (authority, value, person_id, merged_into, demographics, updated) "
                "FROM STDIN"
            ) as copy:
                for i in range(1, count + 1):
                    copy.write_row((HOPA, f"L{i:09d}", i, None, None, now))
                    copy.write_row((AFFINITY, f"XH{i}", i, None, None, now))
            with cur.copy("COPY patient (patient_id, created, merged_into) FROM STDIN") as copy:
                for i in range(1, count + 1):
                    copy.write_row((f"XH{i}^^^&{AFFINITY}&ISO", now, None))
            cur.execute("SELECT setval(pg_get_serial_sequence('pix_person', 'id'), %s)", (count,))
            db.commit()
        # VACUUM as well: where autovacuum runs, it would otherwise visit the fresh 2 M rows during
        # the first run (this machine kind's server runs without it).
        # Only the loaded tables: an ANALYZE of the still empty audit tables records them as empty,
        # and the plan of the audit_patient foreign-key check that each server backend then caches
        # is a sequential scan of audit_record, kept while that table grows (found in this
        # benchmark's first runs: 360-490 feeds/s, 1.8 ms of PostgreSQL CPU per feed, for as long as
        # the backends lived; a new hub's tables, never analysed, are planned by their real size).
        with psycopg.connect(dsn, autocommit=True) as db:
            db.execute("VACUUM ANALYZE pix_person, pix_identity, patient")
    return time.monotonic() - started


# ------------------------------------------------------------------------------------------------
# Client
# ------------------------------------------------------------------------------------------------


def a01(control: str, local: str, national: str) -> bytes:
    return frame(
        (
            f"MSH|^~\\&|HOPB_ADT|HOPB|XDSHUB|REGION|20240101120000||ADT^A01^ADT_A01|{control}|P|2.3.1\r"
            "EVN|A01|20240101120000\r"
            f"PID|1||{local}^^^&{HOPB}&ISO~{national}^^^&{NATIONAL}&ISO||DUPONT^JEAN^^^^^L||19700101|M\r"
            "PV1||O\r"
        ).encode()
    )


def qbp(control: str, local: str) -> bytes:
    return frame(
        (
            f"MSH|^~\\&|CONSUMER|HOPA|XDSHUB|REGION|20240101120000||QBP^Q23^QBP_Q21|{control}|P|2.5\r"
            f"QPD|IHE PIX Query|{control}|{local}^^^&{HOPA}&ISO|^^^&{AFFINITY}&ISO\rRCP|I\r"
        ).encode()
    )


class Connection:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = FrameReader()
        self.pending: list[bytes] = []

    def replies(self, count: int) -> list[bytes]:
        while len(self.pending) < count:
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("closed")
            self.pending += self.reader.feed(data)
        out, self.pending = self.pending[:count], self.pending[count:]
        return out

    def some(self) -> list[bytes]:
        """At least one reply: all those received so far."""
        while not self.pending:
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("closed")
            self.pending += self.reader.feed(data)
        out, self.pending = self.pending, []
        return out

    def close(self) -> None:
        self.sock.close()


def drive(port: int, messages: list[bytes], window: int) -> tuple[float, int]:
    """Send ``messages`` with at most ``window`` in flight; (seconds, non-AA replies)."""
    conn = Connection(port)
    bad = sent = received = 0
    started = time.perf_counter()
    while received < len(messages):
        room = min(len(messages), received + window) - sent
        if room > 0:
            conn.sock.sendall(b"".join(messages[sent : sent + room]))
            sent += room
        for reply in conn.some():
            received += 1
            if b"MSA|AA|" not in reply:
                bad += 1
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, bad


def latencies(port: int, messages: list[bytes]) -> tuple[list[float], int]:
    conn = Connection(port)
    out, bad = [], 0
    for m in messages:
        t = time.perf_counter()
        conn.sock.sendall(m)
        (reply,) = conn.replies(1)
        out.append(time.perf_counter() - t)
        if b"QAK|" not in reply or b"|OK" not in reply:
            bad += 1
    conn.close()
    return out, bad


NULL_SERVER = textwrap.dedent(
    """
    import socket, sys, threading
    ACK = b"\\x0bMSH|^~\\\\&|NULL||||20240101||ACK^A01^ACK|1|P|2.5\\rMSA|AA|1\\r\\x1c\\r"
    def serve(c):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = c.recv(1 << 20)
            if not data:
                return
            n = data.count(b"\\x1c")
            if n:
                c.sendall(ACK * n)
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
    """
)


# ------------------------------------------------------------------------------------------------
# Runs
# ------------------------------------------------------------------------------------------------


@dataclass
class Run:
    sync_rate: float
    pipelined_rate: float
    null_sync_rate: float
    null_pipelined_rate: float
    sync_cpu_per_1000: float
    pipelined_cpu_per_1000: float
    query_cpu_per_1000: float
    p50_ms: float
    p99_ms: float
    failures: int
    #: The slowest 0.1 % and the slowest query (ms): where the tail is.
    p999_ms: float = 0.0
    max_ms: float = 0.0
    #: PostgreSQL server CPU seconds per 1,000 pipelined feeds / queries (0 on SQLite).
    pg_pipelined_cpu_per_1000: float = 0.0
    pg_query_cpu_per_1000: float = 0.0
    #: 1-minute load average of the machine at the end of the run.
    load: float = 0.0


def one_run(hub: Hub, null_port: int, args: argparse.Namespace, run: int) -> Run:
    assert hub.process is not None
    postgres = not hub.db_url.startswith("sqlite")
    database = hub.db_url.rsplit("/", 1)[1] if postgres else ""
    tree = process_tree(hub.process.pid)
    tag = uuid.uuid4().hex[:6]
    sync_msgs = [a01(f"S{tag}{i}", f"BS{tag}{i:08d}", f"NS{tag}{i:08d}") for i in range(args.feeds // 4)]
    pipe_msgs = [a01(f"P{tag}{i}", f"BP{tag}{i:08d}", f"NP{tag}{i:08d}") for i in range(args.feeds)]
    if postgres:
        # Each run starts from a checkpoint (no full-page writes left over from the previous one).
        import psycopg

        with psycopg.connect(
            hub.db_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
        ) as db:
            db.execute("CHECKPOINT")
    drive(hub.mllp_port, [a01(f"W{tag}{i}", f"BW{tag}{i}", f"NW{tag}{i}") for i in range(200)], 1)  # warm-up
    cpu0 = cpu_seconds(tree)
    sync_s, bad1 = drive(hub.mllp_port, sync_msgs, 1)
    cpu1 = cpu_seconds(tree)
    pg1 = cpu_snapshot(postgres_pids(database))
    pipe_s, bad2 = drive(hub.mllp_port, pipe_msgs, args.window)
    cpu2 = cpu_seconds(tree)
    pg_pipe = pg_cpu_since(pg1, database)
    null_sync_s, _ = drive(null_port, sync_msgs, 1)
    null_pipe_s, _ = drive(null_port, pipe_msgs, args.window)
    rng = random.Random(run)
    queries = [qbp(f"Q{tag}{i}", f"L{rng.randint(1, args.identities):09d}") for i in range(args.queries)]
    latencies(hub.mllp_port, queries[:200])  # warm-up
    cpu3 = cpu_seconds(tree)
    pg3 = cpu_snapshot(postgres_pids(database))
    lat, bad3 = latencies(hub.mllp_port, queries)
    cpu4 = cpu_seconds(tree)
    pg_query = pg_cpu_since(pg3, database)
    lat.sort()
    return Run(
        sync_rate=len(sync_msgs) / sync_s,
        pipelined_rate=len(pipe_msgs) / pipe_s,
        null_sync_rate=len(sync_msgs) / null_sync_s,
        null_pipelined_rate=len(pipe_msgs) / null_pipe_s,
        sync_cpu_per_1000=(cpu1 - cpu0) / len(sync_msgs) * 1000,
        pipelined_cpu_per_1000=(cpu2 - cpu1) / len(pipe_msgs) * 1000,
        query_cpu_per_1000=(cpu4 - cpu3) / len(queries) * 1000,
        p50_ms=lat[len(lat) // 2] * 1000,
        p99_ms=lat[int(len(lat) * 0.99)] * 1000,
        p999_ms=lat[int(len(lat) * 0.999)] * 1000,
        max_ms=lat[-1] * 1000,
        failures=bad1 + bad2 + bad3,
        load=os.getloadavg()[0],
        pg_pipelined_cpu_per_1000=pg_pipe / len(pipe_msgs) * 1000 if postgres else 0.0,
        pg_query_cpu_per_1000=pg_query / len(queries) * 1000 if postgres else 0.0,
    )


PG_DATASET = "pix_bench_dataset"


def _dataset(backend: str, args: argparse.Namespace) -> tuple[Path, str, bool, bool]:
    """(folder, URL, whether it must be bulk-loaded, whether to delete it afterwards).

    Without ``--data`` a fresh dataset per invocation, deleted afterwards; with ``--data DIR`` the
    dataset is kept (SQLite file in DIR, PostgreSQL database ``pix_bench_dataset``) and reused by
    the next invocation with the same DIR, so that before/after measurements share it.
    """
    if not args.data:
        folder = Path(tempfile.mkdtemp(prefix=f"pix-bench-{backend}-"))
        return folder, db_url_for(backend, folder), True, True
    folder = Path(args.data) / backend
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"loaded-{args.identities}"
    if backend == "postgresql":
        import psycopg

        from tests.hubproc import PG_ADMIN_URL

        url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        url += f"/{PG_DATASET}"
        if not marker.exists():
            drop_pg_database(url)
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{PG_DATASET}"')
    else:
        url = f"sqlite:///{folder / 'hub.sqlite'}"
    return folder, url, not marker.exists(), False


def drop_datasets(data: str) -> None:
    """Delete what ``--data DIR`` kept (``--drop-data``)."""
    import shutil

    from tests.hubproc import PG_ADMIN_URL

    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    drop_pg_database(f"{url}/{PG_DATASET}")
    shutil.rmtree(data, ignore_errors=True)


def run_backend(backend: str, args: argparse.Namespace) -> tuple[float, list[Run]]:
    folder, url, load, temporary = _dataset(backend, args)
    null_port = free_port()
    null = subprocess.Popen([sys.executable, "-c", NULL_SERVER, str(null_port)])
    hub: Hub | None = None
    try:
        load_s = 0.0
        if load:
            load_s = bulk_load(url, args.identities)
            (folder / f"loaded-{args.identities}").touch()
            print(f"[{backend}] bulk-loaded {args.identities:,} identities in {load_s:.0f} s", flush=True)
        hub = Hub(folder=folder / "hub", db_url=url, config_text=TEST_CONFIG).start(timeout=120)
        runs = []
        for r in range(args.runs):
            result = one_run(hub, null_port, args, r)
            print(f"[{backend}] run {r + 1}: {result}", flush=True)
            runs.append(result)
        return load_s, runs
    finally:
        if hub is not None:
            hub.stop()
        null.terminate()
        null.wait(10)
        if temporary and backend == "postgresql":
            drop_pg_database(url)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--identities", type=int, default=1_000_000)
    parser.add_argument("--feeds", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--queries", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", help="keep the bulk-loaded dataset here and reuse it (see --drop-data)")
    parser.add_argument("--drop-data", action="store_true", help="delete the dataset of --data and exit")
    args = parser.parse_args()
    if args.drop_data:
        if not args.data:
            parser.error("--drop-data needs --data DIR")
        drop_datasets(args.data)
        return 0
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    rows = []

    def pg(cpu: float) -> str:
        return f" + PG {cpu:.2f}" if cpu else ""

    for backend in backends:
        load_s, runs = run_backend(backend, args)

        def med(attr: str, runs: list[Run] = runs) -> float:
            return statistics.median(getattr(r, attr) for r in runs)

        rows.append(
            f"| {backend} | {load_s:.0f} s | {med('sync_rate'):,.0f} ({med('sync_cpu_per_1000'):.2f}) "
            f"| {med('pipelined_rate'):,.0f} ({med('pipelined_cpu_per_1000'):.2f}"
            f"{pg(med('pg_pipelined_cpu_per_1000'))}) "
            f"| {med('null_sync_rate'):,.0f} | {med('null_pipelined_rate'):,.0f} "
            f"| {med('p50_ms'):.2f} | {med('p99_ms'):.2f} ({med('query_cpu_per_1000'):.2f}"
            f"{pg(med('pg_query_cpu_per_1000'))}) "
            f"| {sum(r.failures for r in runs)} "
            f"| {min(r.load for r in runs):.1f}-{max(r.load for r in runs):.1f} |"
        )
    print()
    print(
        f"| backend | bulk load ({args.identities:,}) | ITI-8 sync msg/s (hub CPU s/1000) "
        f"| ITI-8 pipelined ({args.window}) msg/s (hub [+ PG server] CPU s/1000) "
        "| do-nothing sync | do-nothing pipelined | ITI-9 p50 ms "
        "| ITI-9 p99 ms (hub [+ PG server] CPU s/1000) | failures | load avg |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
