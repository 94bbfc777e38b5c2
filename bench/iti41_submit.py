"""ITI-41 throughput and memory: the hub against a do-nothing SOAP endpoint, same client, same run.

Usage (from the repository root)::

    python -m bench.iti41_submit [--backend sqlite|postgresql|both] [--count 2000] [--threads 8]
                                 [--runs 3] [--big-mb 50] [--append bench/RESULTS.md]

For each backend it starts a real ``xds-hub serve`` (tests/hubproc.py) and a do-nothing endpoint:
gunicorn with the hub's worker settings serving a WSGI app that reads the whole request and
answers a fixed ITI-41 RegistryResponse (MTOM).  The client pre-builds every MTOM request (one
10 KB document each, fresh uniqueIds) before the clock starts, then POSTs them from ``--threads``
threads over keep-alive connections (http.client), so both endpoints see identical traffic.
Reported per run: submissions/s for each, the ratio, and server CPU seconds per 1,000
submissions (utime+stime of the whole server process group from /proc/PID/stat).  Medians of
``--runs`` runs.  Then one ``--big-mb`` document is submitted while the RSS of the gunicorn
workers is sampled every 20 ms (peak minus idle is reported).
"""

from __future__ import annotations

import argparse
import http.client
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hubproc import TEST_CONFIG, Hub, db_url_for, drop_pg_database, free_port  # noqa: E402
from xds_hub.client.metadata import DocumentInput, SubmissionOptions, build_submission  # noqa: E402
from xds_hub.client.mtom import MultipartBody, OutgoingPart  # noqa: E402
from xds_hub.client.soap import build_envelope  # noqa: E402
from xds_hub.domain.vocabulary import SoapAction  # noqa: E402
from xds_hub.ebxml.render import render_provide_and_register  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SOURCE_ID = "1.2.3.100.1"
AFFINITY = "1.3.6.1.4.1.21367.13.20.1000"

# ------------------------------------------------------------------------------------------------
# /proc helpers
# ------------------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(_stat(int(entry.name))[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = _stat(pid)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except OSError:
        return 0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def gunicorn_workers(root: int) -> list[int]:
    """The gunicorn workers of a hub: the grandchildren of the supervisor (``serve`` spawns the
    http child, whose gunicorn master forks the workers; the actors child forks nothing)."""
    tree = process_tree(root)
    parent = {}
    for pid in tree:
        try:
            parent[pid] = int(_stat(pid)[1])
        except OSError:
            continue
    children = {p for p in tree if parent.get(p) == root}
    return [p for p in tree if parent.get(p) in children]


# ------------------------------------------------------------------------------------------------
# The do-nothing endpoint
# ------------------------------------------------------------------------------------------------

NULL_APP = textwrap.dedent(
    '''
    """A SOAP endpoint that does nothing: reads the request, answers a fixed ITI-41 response."""
    import uuid

    BOUNDARY = "MIMEBoundary_null"
    ROOT = (
        b'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"'
        b' xmlns:wsa="http://www.w3.org/2005/08/addressing"><soap:Header>'
        b'<wsa:Action>urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse</wsa:Action>'
        b'<wsa:RelatesTo>urn:uuid:0</wsa:RelatesTo></soap:Header><soap:Body>'
        b'<rs:RegistryResponse xmlns:rs="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0" '
        b'status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"/></soap:Body></soap:Envelope>'
    )
    BODY = (
        b"--" + BOUNDARY.encode() + b"\\r\\nContent-Type: application/xop+xml; charset=UTF-8; "
        b'type="application/soap+xml"\\r\\nContent-Transfer-Encoding: binary\\r\\n'
        b"Content-ID: <0@null>\\r\\n\\r\\n"
        + ROOT + b"\\r\\n--" + BOUNDARY.encode() + b"--\\r\\n"
    )
    CT = (f'multipart/related; boundary={BOUNDARY}; type="application/xop+xml"; start="<0@null>"; '
          'start-info="application/soap+xml"')

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        while stream.read(1 << 20):
            pass
        start_response("200 OK", [("Content-Type", CT), ("Content-Length", str(len(BODY)))])
        return [BODY]
    '''
)


@dataclass
class NullEndpoint:
    folder: Path
    workers: int
    threads: int
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> NullEndpoint:
        self.port = free_port()
        (self.folder / "nullapp.py").write_text(NULL_APP)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--chdir",
                str(self.folder),
                "-k",
                "gthread",
                "-w",
                str(self.workers),
                "--threads",
                str(self.threads),
                "-b",
                f"127.0.0.1:{self.port}",
                "--keep-alive",
                "30",
                "--log-level",
                "warning",
                "nullapp:app",
            ],
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("POST", "/", body=b"x")
                conn.getresponse().read()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("do-nothing endpoint did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/null"

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)
            self.process = None


# ------------------------------------------------------------------------------------------------
# Client
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    body: bytes
    content_type: str


def prepare(url: str, pid: str, count: int, size: int) -> list[Prepared]:
    """``count`` ITI-41 MTOM requests of one ``size``-byte document each (fresh uniqueIds)."""
    out = []
    for i in range(count):
        data = (f"document {i} ".encode() * (size // 10 + 1))[:size]
        sub, contents = build_submission(
            [DocumentInput(data, mime_type="text/plain")],
            SubmissionOptions(patient_id=pid, source_id=SOURCE_ID),
        )
        refs: dict[str, str | bytes] = {k: f"doc{i}@bench" for k in contents}
        envelope = build_envelope(SoapAction.ITI41, url, render_provide_and_register(sub, refs))
        body = MultipartBody(envelope, [OutgoingPart(f"doc{i}@bench", "text/plain", data=data)])
        out.append(Prepared(body.read(), body.content_type(SoapAction.ITI41)))
    return out


def drive(
    url: str, requests_: Sequence[Prepared], threads: int, check: Callable[[bytes], bool]
) -> tuple[float, int]:
    """POST every request from ``threads`` keep-alive connections; (seconds, failures)."""
    parts = urlsplit(url)
    work: queue.Queue[Prepared] = queue.Queue()
    for r in requests_:
        work.put(r)
    failures = [0]
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        while True:
            try:
                r = work.get_nowait()
            except queue.Empty:
                break
            conn.request("POST", parts.path, body=r.body, headers={"Content-Type": r.content_type})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200 or not check(data):
                with lock:
                    failures[0] += 1
        conn.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - start, failures[0]


def is_success(data: bytes) -> bool:
    return b"ResponseStatusType:Success" in data


# ------------------------------------------------------------------------------------------------
# Scenarios
# ------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    hub_rate: float
    null_rate: float
    hub_cpu_per_1000: float
    null_cpu_per_1000: float
    failures: int


def throughput(hub: Hub, null: NullEndpoint, pid: str, count: int, threads: int) -> RunResult:
    assert hub.process is not None and null.process is not None
    hub_url, null_url = hub.url("/xds/repository"), null.url
    hub_reqs = prepare(hub_url, pid, count, 10 * 1024)
    null_reqs = prepare(null_url, pid, count, 10 * 1024)
    drive(hub_url, hub_reqs[:50], threads, is_success)  # warm-up (imports, connections)
    hub_tree = process_tree(hub.process.pid)
    cpu0 = cpu_seconds(hub_tree)
    hub_s, hub_fail = drive(hub_url, hub_reqs[50:], threads, is_success)
    hub_cpu = cpu_seconds(process_tree(hub.process.pid)) - cpu0
    null_tree = process_tree(null.process.pid)
    drive(null_url, null_reqs[:50], threads, is_success)
    cpu0 = cpu_seconds(null_tree)
    null_s, _ = drive(null_url, null_reqs[50:], threads, is_success)
    null_cpu = cpu_seconds(process_tree(null.process.pid)) - cpu0
    n = count - 50
    return RunResult(n / hub_s, n / null_s, hub_cpu / n * 1000, null_cpu / n * 1000, hub_fail)


def big_document(hub: Hub, pid: str, size_mb: int, folder: Path) -> tuple[float, float, int]:
    """(seconds, MB/s, peak RSS growth of the gunicorn workers in bytes) for one big ITI-41."""
    from xds_hub.client.xds import XdsClient

    assert hub.process is not None
    path = folder / "big.bin"
    with path.open("wb") as f:
        block = os.urandom(1024 * 1024)
        for _ in range(size_mb):
            f.write(block)
    workers = gunicorn_workers(hub.process.pid)
    idle = {w: rss_bytes(w) for w in workers}
    peak = dict(idle)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for w in workers:
                peak[w] = max(peak[w], rss_bytes(w))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    sub, contents = build_submission(
        [DocumentInput(path, mime_type="application/octet-stream")], SubmissionOptions(pid, SOURCE_ID)
    )
    start = time.perf_counter()
    with XdsClient(repository_url=hub.url("/xds/repository")) as client:
        result = client.provide_and_register(sub, {k: v.content for k, v in contents.items()})
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    if not result.ok:
        raise RuntimeError(f"big submission failed: {result.errors}")
    growth = max(peak[w] - idle[w] for w in workers)
    return elapsed, size_mb / elapsed, growth


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-iti41-{backend}-"))
    config = TEST_CONFIG
    if args.hub_workers or args.hub_threads:
        lines = ["[hub]"]
        if args.hub_workers:
            lines.append(f"http_workers = {args.hub_workers}")
        if args.hub_threads:
            lines.append(f"http_threads = {args.hub_threads}")
        config = "\n".join(lines) + "\n" + TEST_CONFIG
    hub = Hub(folder=folder, db_url=db_url_for(backend, folder), config_text=config).start()
    null = NullEndpoint(folder, workers=hub.settings.http_workers, threads=hub.settings.http_threads).start()
    try:
        pid = f"BENCH{os.getpid()}^^^&{AFFINITY}&ISO"
        hub.add_patient(pid)
        runs = [throughput(hub, null, pid, args.count, args.threads) for _ in range(args.runs)]
        for r in runs:
            print(
                f"  {backend}: hub {r.hub_rate:.0f}/s, null {r.null_rate:.0f}/s, "
                f"ratio {r.hub_rate / r.null_rate:.2f}, "
                f"CPU/1000 hub {r.hub_cpu_per_1000:.2f}s null {r.null_cpu_per_1000:.2f}s, "
                f"failures {r.failures}",
                flush=True,
            )
        big = big_document(hub, pid, args.big_mb, folder)
        print(
            f"  {backend}: {args.big_mb} MB in {big[0]:.2f}s ({big[1]:.0f} MB/s), worker RSS growth "
            f"{big[2] / 1e6:.1f} MB",
            flush=True,
        )
        return {
            "backend": backend,
            "hub_rate": statistics.median(r.hub_rate for r in runs),
            "null_rate": statistics.median(r.null_rate for r in runs),
            "ratio": statistics.median(r.hub_rate / r.null_rate for r in runs),
            "hub_cpu": statistics.median(r.hub_cpu_per_1000 for r in runs),
            "null_cpu": statistics.median(r.null_cpu_per_1000 for r in runs),
            "failures": sum(r.failures for r in runs),
            "big_s": big[0],
            "big_mbs": big[1],
            "big_rss": big[2],
        }
    finally:
        null.stop()
        hub.stop()
        if backend == "postgresql":
            drop_pg_database(hub.db_url)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big-mb", type=int, default=50)
    parser.add_argument("--append", type=Path, help="append a Markdown section with the figures")
    parser.add_argument("--hub-workers", type=int, help="http_workers of hub and do-nothing")
    parser.add_argument("--hub-threads", type=int, help="http_threads of hub and do-nothing")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = [run_backend(b, args) for b in backends]
    lines = [
        "",
        f"## ITI-41 Provide and Register ({time.strftime('%Y-%m-%d')}, `python -m bench.iti41_submit`)",
        "",
        f"{args.count - 50} submissions of one 10 KB document (MTOM) per run, {args.threads} client threads, "
        f"keep-alive; median of {args.runs} runs; the do-nothing endpoint is gunicorn with the hub's worker "
        "settings answering a fixed RegistryResponse. CPU: utime+stime of the whole server process group.",
        "",
        "| backend | hub subm/s | do-nothing/s | ratio | hub CPU s/1000 | do-nothing CPU s/1000 | failures "
        f"| {args.big_mb} MB doc | worker RSS growth |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {r['hub_rate']:.0f} | {r['null_rate']:.0f} | {r['ratio']:.2f}x "
            f"| {r['hub_cpu']:.2f} "
            f"| {r['null_cpu']:.2f} | {r['failures']} | {r['big_s']:.2f} s ({r['big_mbs']:.0f} MB/s) "
            f"| {float(str(r['big_rss'])) / 1e6:.1f} MB |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.append:
        with args.append.open("a") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
