"""Mixed load: N concurrent clients submitting (ITI-41), querying (ITI-18) and retrieving (ITI-43).

Usage (from the repository root)::

    python -m bench.load_mixed [--backend sqlite|postgresql|both] [--clients 50] [--seconds 60]
                               [--append bench/RESULTS.md]

For each backend a real ``xds-hub serve`` (tests/hubproc.py) is started; each client is a thread
with its own keep-alive XdsClient and its own affinity-domain patient.  In a loop it picks an
operation: 40 % ITI-41 (one 4 KB document, MTOM), 30 % ITI-18 FindDocuments for its patient,
30 % ITI-43 of one of its own documents (verifying the SHA-1).  Every request must succeed.

Afterwards the run is verified against the registry: for every client, FindDocuments returns
exactly the documents whose submission was acknowledged (none lost, none extra), each uniqueId
has exactly one DocumentEntry row (no duplicate), and the repository holds each document whole.

Reported per transaction: count, requests/s, p50 / p99 / max latency, failures; and the CPU
seconds of the hub's process group per 1,000 requests (utime+stime from /proc/PID/stat).
tests/test_load_mixed.py runs the same code for ~10 s against the test suite's hub.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from tests.hubproc import Hub, db_url_for, drop_pg_database  # noqa: E402
from tests.repository_support import hub_patient, hub_stores, submission_for  # noqa: E402
from xds_hub.client.xds import DocumentRequest, XdsClient  # noqa: E402
from xds_hub.storage.schema import document_entry, repository_document  # noqa: E402

REPOSITORY_ID = "1.3.6.1.4.1.21367.13.80.1"
OPERATIONS = ("ITI-41", "ITI-18", "ITI-43")
WEIGHTS = (0.4, 0.3, 0.3)
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class ClientLog:
    """What one client did: latencies per operation, failures, acknowledged documents."""

    patient: str
    latencies: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPERATIONS})
    failures: list[str] = field(default_factory=list)
    documents: dict[str, str] = field(default_factory=dict)  # uniqueId -> sha1


@dataclass
class LoadResult:
    backend: str
    clients: int
    seconds: float
    logs: list[ClientLog]
    cpu_seconds: float

    def latencies(self, op: str) -> list[float]:
        return sorted(x for log in self.logs for x in log.latencies[op])

    @property
    def failures(self) -> list[str]:
        return [f for log in self.logs for f in log.failures]

    @property
    def requests(self) -> int:
        return sum(len(self.latencies(op)) for op in OPERATIONS)


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def _client(
    hub: Hub, log: ClientLog, deadline: list[float], seed: int, out_dir: Path, start: threading.Barrier
) -> None:
    rng = random.Random(seed)
    client = XdsClient(
        repository_url=hub.url("/xds/repository"), registry_url=hub.url("/xds/registry"), timeout=120
    )
    start.wait()
    try:
        while time.monotonic() < deadline[0]:
            op = rng.choices(OPERATIONS, WEIGHTS)[0]
            if op == "ITI-43" and not log.documents:
                op = "ITI-41"
            began = time.monotonic()
            try:
                problem = _OPS[op](client, log, rng, out_dir)
            except Exception as exc:  # a transport error is a failed request too
                problem = f"{type(exc).__name__}: {exc}"
            took = time.monotonic() - began
            if problem:
                log.failures.append(f"{op}: {problem}")
            else:
                log.latencies[op].append(took)
    finally:
        client.close()


def _submit(client: XdsClient, log: ClientLog, rng: random.Random, _out: Path) -> str | None:
    data = rng.randbytes(4096)
    sub, contents = submission_for(log.patient, [data], mime_type="application/octet-stream")
    result = client.provide_and_register(sub, contents)
    if not result.ok:
        return f"{result.status_name} {[e.code for e in result.errors]}"
    log.documents[sub.documents[0].unique_id] = hashlib.sha1(data).hexdigest()
    return None


def _query(client: XdsClient, log: ClientLog, _rng: random.Random, _out: Path) -> str | None:
    result = client.find_documents(log.patient)
    if result.status_name != "Success":
        return f"{result.status_name} {[e.code for e in result.errors]}"
    return None


def _retrieve(client: XdsClient, log: ClientLog, rng: random.Random, out_dir: Path) -> str | None:
    unique_id = rng.choice(sorted(log.documents))
    result = client.retrieve([DocumentRequest(REPOSITORY_ID, unique_id)], out_dir)
    if result.status_name != "Success" or len(result.documents) != 1:
        return f"{result.status_name} {[e.code for e in result.errors]}"
    doc = result.documents[0]
    doc.path.unlink(missing_ok=True)
    if doc.sha1 != log.documents[unique_id]:
        return f"document {unique_id} came back with another SHA-1"
    return None


_OPS: dict[str, Callable[[XdsClient, ClientLog, random.Random, Path], str | None]] = {
    "ITI-41": _submit,
    "ITI-18": _query,
    "ITI-43": _retrieve,
}


def _group_cpu(pgid: int) -> float:
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def run_load(hub: Hub, clients: int, seconds: float, backend: str, seed: int = 1) -> LoadResult:
    """``clients`` threads against ``hub`` for ``seconds``; every patient registered first."""
    store = hub_stores(hub)
    try:
        logs = [ClientLog(hub_patient(hub, store)) for _ in range(clients)]
    finally:
        store.close()
    out_dir = Path(tempfile.mkdtemp(prefix="xds-load-"))
    deadline: list[float] = []  # set when every client is ready (the barrier's action)
    start = threading.Barrier(clients + 1, action=lambda: deadline.append(time.monotonic() + seconds))
    group = hub.process.pid if hub.process is not None else 0
    threads = [
        threading.Thread(target=_client, args=(hub, log, deadline, seed * 1000 + i, out_dir, start))
        for i, log in enumerate(logs)
    ]
    for t in threads:
        t.start()
    cpu_before = _group_cpu(group) if group else 0.0
    start.wait()
    began = deadline[0] - seconds
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    shutil.rmtree(out_dir, ignore_errors=True)
    cpu = (_group_cpu(group) - cpu_before) if group else 0.0
    return LoadResult(backend, clients, elapsed, logs, cpu)


def verify(hub: Hub, result: LoadResult) -> list[str]:
    """Problems found in the registry after the run: lost, extra or duplicated documents."""
    problems: list[str] = []
    with XdsClient(registry_url=hub.url("/xds/registry"), timeout=120) as client:
        for log in result.logs:
            found = [d.unique_id for d in client.find_documents(log.patient).documents]
            if len(found) != len(set(found)):
                problems.append(f"{log.patient}: FindDocuments returned a document twice")
            if set(found) != set(log.documents):
                lost = sorted(set(log.documents) - set(found))
                extra = sorted(set(found) - set(log.documents))
                problems.append(
                    f"{log.patient}: lost {lost[:3]} ({len(lost)}), extra {extra[:3]} ({len(extra)})"
                )
    acknowledged = {u for log in result.logs for u in log.documents}
    store = hub_stores(hub)
    try:
        with store.engine.connect() as conn:
            counts: dict[str, int] = dict(
                conn.execute(
                    select(document_entry.c.unique_id, func.count())
                    .where(document_entry.c.unique_id.in_(sorted(acknowledged)))
                    .group_by(document_entry.c.unique_id)
                ).all()
            )
            stored = set(
                conn.execute(
                    select(repository_document.c.unique_id).where(
                        repository_document.c.unique_id.in_(sorted(acknowledged))
                    )
                ).scalars()
            )
    finally:
        store.close()
    duplicated = [u for u, n in counts.items() if n != 1]
    if duplicated:
        problems.append(f"{len(duplicated)} uniqueIds registered more than once, e.g. {duplicated[:3]}")
    if stored != acknowledged:
        problems.append(f"{len(acknowledged - stored)} acknowledged documents missing from the repository")
    return problems


def table(results: list[LoadResult]) -> str:
    """Markdown table of the figures of ``results``."""
    lines = [
        "| backend | transaction | requests | req/s | p50 ms | p99 ms | max ms | failures |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        for op in OPERATIONS:
            lat = r.latencies(op)
            lines.append(
                f"| {r.backend} | {op} | {len(lat)} | {len(lat) / r.seconds:.1f} | "
                f"{_percentile(lat, 50) * 1000:.0f} | {_percentile(lat, 99) * 1000:.0f} | "
                f"{(lat[-1] if lat else 0) * 1000:.0f} | "
                f"{sum(1 for f in r.failures if f.startswith(op))} |"
            )
        per_k = r.cpu_seconds / r.requests * 1000 if r.requests else 0.0
        lines.append(
            f"| {r.backend} | **all** | {r.requests} | {r.requests / r.seconds:.1f} | "
            f"{_percentile(sorted(x for op in OPERATIONS for x in r.latencies(op)), 50) * 1000:.0f} | "
            f"{_percentile(sorted(x for op in OPERATIONS for x in r.latencies(op)), 99) * 1000:.0f} | "
            f"- | {len(r.failures)} (hub CPU {per_k:.1f} s / 1000 req) |"
        )
    return "\n".join(lines)


def run_backend(backend: str, clients: int, seconds: float) -> tuple[LoadResult, list[str]]:
    folder = Path(tempfile.mkdtemp(prefix=f"xds-load-{backend}-"))
    hub = Hub(folder=folder, db_url=db_url_for(backend, folder)).start()
    try:
        result = run_load(hub, clients, seconds, backend)
        problems = verify(hub, result)
    finally:
        hub.stop(signal.SIGKILL)  # verified already; a SIGTERM stop waits 30 s on the DICOM actor
        if backend == "postgresql":
            drop_pg_database(hub.db_url)
        shutil.rmtree(folder, ignore_errors=True)
    return result, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--append", type=Path, help="append a Markdown section with the figures")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results, all_problems = [], []
    for backend in backends:
        result, problems = run_backend(backend, args.clients, args.seconds)
        results.append(result)
        all_problems += [f"{backend}: {p}" for p in problems]
        print(
            f"{backend}: {result.requests} requests in {result.seconds:.1f} s, "
            f"{len(result.failures)} failures"
        )
        for failure in result.failures[:10]:
            print(f"  {failure}")
    figures = table(results)
    print(figures)
    verdict = "none lost, none duplicated" if not all_problems else "; ".join(all_problems)
    print(f"registry check: {verdict}")
    if args.append:
        load = os.getloadavg()
        section = (
            f"\n## Mixed load: {args.clients} clients, ITI-41 / ITI-18 / ITI-43 for {args.seconds:.0f} s "
            f"(RELIABILITY helper, {time.strftime('%Y-%m-%d')})\n\n"
            f"`python -m bench.load_mixed --backend {args.backend} --clients {args.clients} "
            f"--seconds {args.seconds:.0f} --append bench/RESULTS.md`: {args.clients} client threads, each "
            "with its own keep-alive connection and patient, loop over ITI-41 (one 4 KB document, MTOM, "
            "40 %), ITI-18 FindDocuments for their patient (30 %) and ITI-43 of one of their own documents "
            "(30 %, SHA-1 checked), against `xds-hub serve` (2 gunicorn workers x 8 threads, durable "
            "writes). Latency is per request as the client sees it (queueing included: 50 clients share "
            "16 server threads). After the run the registry is checked per patient: FindDocuments "
            "returns exactly the acknowledged documents, each uniqueId has one DocumentEntry row, and the "
            f"repository holds each one. **Registry check: {verdict}.**\n\n"
            f"**Caveat: 2 cores shared with the other helpers' test suites and benchmarks during the run "
            f"(load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end); the client "
            "threads run on the same two cores as the hub. Figures are for orientation, one run.**\n\n"
            f"{figures}\n"
        )
        with args.append.open("a", encoding="utf-8") as out:
            out.write(section)
    failed = any(r.failures for r in results) or bool(all_problems)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
