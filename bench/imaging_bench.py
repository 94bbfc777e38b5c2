"""Imaging throughput: the hub against Orthanc (Debian packages), same data, same clients, same run.

Usage (from the repository root, as root: it needs a network namespace)::

    python -m bench.imaging_bench [--runs 3] [--small 1000] [--large 200] [--study 200]
                                  [--parallel 4] [--backend sqlite|postgresql|both]
                                  [--append bench/RESULTS.md]

The whole benchmark runs inside a fresh loopback-only network namespace (``unshare -n``): Orthanc
1.10 binds its DICOM port on every interface (../shared/BENCHMARKING.md), and nothing here talks to
anything but 127.0.0.1 (PostgreSQL through its Unix socket).  Every DCMTK tool and Orthanc run with
``TCP_NODELAY=1``; DCMTK's /usr/bin/storescu is used, not pynetdicom's.

Scenarios, each a median of ``--runs`` runs on fresh servers:

- C-STORE ingest: ``storescu`` sends ``--small`` instances of 33 KB, then ``--large`` of 513 KB, on
  one association each, to ``xds-hub serve`` (SQLite or PostgreSQL index) and to Orthanc (SQLite
  index, or PostgreSQL index with the PostgreSQL plugin).  Instances/s and MB/s, and server CPU
  ms per instance (utime+stime of the server process tree from /proc).
- With ``--parallel N`` (N > 1), also ``--small`` instances sent by N ``storescu`` at once (N
  associations, ``--small / N`` instances each, as N modalities would), to each server.
- Before each run, a flush probe: the median time to create, write (34 KB) and fsync a file in the
  temporary folder the servers use (the machine's disk latency under its current load).
- Retrieval of a ``--study``-instance study of 513 KB instances: RAD-69 (MTOM) and WADO-RS
  (multipart/related, stored transfer syntax) from the hub, WADO-RS from Orthanc's DICOMweb
  plugin, ``--requests`` times each per server (the first one included); the client streams each
  body and counts its bytes.  MB/s, and the growth of the hub's
  HTTP workers' peak RSS while the study streams (VmHWM reset through /proc/PID/clear_refs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from lxml import etree  # noqa: E402

from tests.hubproc import TEST_CONFIG, free_port  # noqa: E402
from xds_hub import ns  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PG_SOCKET = "/var/run/postgresql"
SOURCE_ID = "1.3.6.1.4.1.21367.13.80.2"  # imaging_source_unique_id of TEST_CONFIG
RAD69_CONTENT_TYPE = (
    'application/soap+xml; charset=utf-8; action="urn:ihe:rad:2009:RetrieveImagingDocumentSet"'
)
DICOM_ANY = 'multipart/related; type="application/dicom"; transfer-syntax=*'


# ------------------------------------------------------------------------------------------------
# processes
# ------------------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids = (task / "children").read_text().split()
            for kid in kids:
                out.extend(_children(int(kid)))
    except OSError:
        pass
    return out


def tree_cpu(pid: int) -> float:
    """utime+stime (seconds) of ``pid`` and its descendants."""
    total = 0
    for p in _children(pid):
        try:
            raw = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def wait_http(url: str, timeout: float = 60.0, ok: Callable[[requests.Response], bool] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = requests.get(url, timeout=2)
            if (ok or (lambda resp: resp.status_code == 200))(r):
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def pg_create() -> str:
    import psycopg

    name = f"bench_{os.urandom(6).hex()}"
    with psycopg.connect(f"host={PG_SOCKET} user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def pg_drop(name: str) -> None:
    import psycopg

    with psycopg.connect(f"host={PG_SOCKET} user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    http_port: int
    dicom_port: int
    ae_title: str
    folder: Path
    pg_db: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.pg_db:
            pg_drop(self.pg_db)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_hub(backend: str) -> Server:
    folder = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    http_port, dicom_port, mllp_port = free_port(), free_port(), free_port()
    config = TEST_CONFIG.replace("study_quiet_seconds = 2", "study_quiet_seconds = 3600")
    for key in ("HOPA_PORT", "HOPB_PORT", "CLIC_PORT"):
        config = config.replace("{" + key + "}", str(free_port()))
    (folder / "hub.toml").write_text(config)
    pg_db = pg_create() if backend == "postgresql" else None
    db = (
        f"postgresql+psycopg://postgres@/{pg_db}?host={PG_SOCKET}"
        if pg_db
        else f"sqlite:///{folder / 'hub.sqlite'}"
    )
    log = (folder / "hub.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "xds_hub", "serve", "--config", str(folder / "hub.toml"), "--data",
         str(folder / "data"), "--db", db, "--http-port", str(http_port), "--dicom-port", str(dicom_port),
         "--mllp-port", str(mllp_port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    server = Server(f"xds-hub+{backend}", process, http_port, dicom_port, "XDSHUB", folder, pg_db)
    wait_http(f"http://127.0.0.1:{http_port}/healthz", 90)
    return server


def start_orthanc(backend: str) -> Server:
    folder = Path(tempfile.mkdtemp(prefix="bench-orthanc-"))
    http_port, dicom_port = free_port(), free_port()
    plugins = ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"]
    config: dict[str, Any] = {
        "Name": "bench",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowGet": True,
        "DicomCheckCalledAet": False,
        "StorageCompression": False,
        "Plugins": plugins,
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    pg_db = None
    if backend == "postgresql":
        pg_db = pg_create()
        plugins.append("/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so")
        config["PostgreSQL"] = {
            "EnableIndex": True, "EnableStorage": False, "Host": PG_SOCKET, "Port": 5432,
            "Database": pg_db, "Username": "postgres", "Password": "", "Lock": False,
        }  # fmt: skip
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = (folder / "orthanc.log").open("ab")
    process = subprocess.Popen(
        ["Orthanc", str(folder / "orthanc.json")],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, TCP_NODELAY="1"), start_new_session=True,
    )  # fmt: skip
    server = Server(f"orthanc+{backend}", process, http_port, dicom_port, "ORTHANC", folder, pg_db)
    wait_http(f"http://127.0.0.1:{http_port}/system", 90)
    return server


@contextmanager
def running(start: Callable[[str], Server], backend: str) -> Iterator[Server]:
    server = start(backend)
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------


def make_series(folder: Path, count: int, size: int, seed: int) -> Path:
    """``count`` CT instances of ``size`` x ``size`` 16-bit pixels (one study, one series)."""
    import numpy as np
    from pydicom.uid import generate_uid

    from tests.imaging_helpers import make_instance

    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    rng = np.random.default_rng(seed)
    template = make_instance(study_uid=study, series_uid=series, size=size, patient_id="BENCH-1")
    for i in range(count):
        template.SOPInstanceUID = generate_uid()
        template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
        template.InstanceNumber = i + 1
        template.PixelData = rng.integers(0, 4000, (size, size), dtype=np.uint16).tobytes()
        template.save_as(folder / f"{i:05d}.dcm", enforce_file_format=True)
    return folder


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir())


# ------------------------------------------------------------------------------------------------
# scenarios
# ------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    rate: float  # per second (instances or MB)
    mb_s: float
    cpu_ms: float  # server CPU per instance
    extra: float = 0.0


def storescu(server: Server, folder: Path) -> Sample:
    count = sum(1 for _ in folder.iterdir())
    cpu0, t0 = tree_cpu(server.pid), time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/storescu", "-aet", "HOPA_CT", "-aec", server.ae_title, "127.0.0.1", str(server.dicom_port),
         "+sd", str(folder)],
        capture_output=True, text=True, env=dict(os.environ, TCP_NODELAY="1"), timeout=1800,
    )  # fmt: skip
    wall, cpu = time.perf_counter() - t0, tree_cpu(server.pid) - cpu0
    if result.returncode != 0:
        raise RuntimeError(f"storescu to {server.name} failed: {result.stderr[-2000:]}")
    return Sample(count / wall, folder_bytes(folder) / wall / 1e6, cpu / count * 1000)


def storescu_parallel(server: Server, folders: Sequence[Path]) -> Sample:
    """One storescu per folder, all at once (one association each)."""
    count = sum(sum(1 for _ in f.iterdir()) for f in folders)
    env = dict(os.environ, TCP_NODELAY="1")
    cpu0, t0 = tree_cpu(server.pid), time.perf_counter()
    command = ["/usr/bin/storescu", "-aet", "HOPA_CT", "-aec", server.ae_title, "127.0.0.1"]
    procs = [
        subprocess.Popen(
            [*command, str(server.dicom_port), "+sd", str(folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        for folder in folders
    ]
    failed = [p.communicate(timeout=1800)[1] for p in procs if p.wait(timeout=1800) != 0]
    wall, cpu = time.perf_counter() - t0, tree_cpu(server.pid) - cpu0
    if failed:
        raise RuntimeError(f"storescu to {server.name} failed: {failed[0][-2000:]!r}")
    size = sum(folder_bytes(f) for f in folders)
    return Sample(count / wall, size / wall / 1e6, cpu / count * 1000)


def flush_probe(folder: Path, count: int = 40) -> float:
    """Median ms to create, write 34 KB to and fsync a new file in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    data = os.urandom(34_000)
    times = []
    for i in range(count):
        t0 = time.perf_counter()
        fd = os.open(folder / f"p{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        times.append((time.perf_counter() - t0) * 1000)
    shutil.rmtree(folder, ignore_errors=True)
    return float(statistics.median(times))


def _rad69_body(study_uid: str, series: dict[str, list[str]]) -> bytes:
    from xds_hub.client.soap import build_envelope
    from xds_hub.domain.vocabulary import SoapAction

    root = etree.Element(
        ns.qn(ns.XDSI, "RetrieveImagingDocumentSetRequest"), nsmap={"i": ns.XDSI, "b": ns.XDSB}
    )
    study = etree.SubElement(root, ns.qn(ns.XDSI, "StudyRequest"), studyInstanceUID=study_uid)
    for series_uid, sops in series.items():
        s = etree.SubElement(study, ns.qn(ns.XDSI, "SeriesRequest"), seriesInstanceUID=series_uid)
        for sop in sops:
            d = etree.SubElement(s, ns.qn(ns.XDSB, "DocumentRequest"))
            etree.SubElement(d, ns.qn(ns.XDSB, "RepositoryUniqueId")).text = SOURCE_ID
            etree.SubElement(d, ns.qn(ns.XDSB, "DocumentUniqueId")).text = sop
    tsl = etree.SubElement(root, ns.qn(ns.XDSI, "TransferSyntaxUIDList"))
    etree.SubElement(tsl, ns.qn(ns.XDSI, "TransferSyntaxUID")).text = "1.2.840.10008.1.2.1"
    return build_envelope(SoapAction.RAD69, "http://127.0.0.1/xdsi/source", root)


def _stream(method: str, url: str, **kw: Any) -> int:
    total = 0
    with requests.request(method, url, stream=True, timeout=600, **kw) as r:
        r.raise_for_status()
        for chunk in r.iter_content(1024 * 1024):
            total += len(chunk)
    return total


def retrieve(server: Server, url: str, method: str, payload: dict[str, Any], count: int) -> Sample:
    pids = _children(server.pid)
    for p in pids:  # reset the peak RSS (VmHWM) of every process of the server
        with suppress(OSError):
            Path(f"/proc/{p}/clear_refs").write_text("5")
    rss0 = {p: _status_kb(p, "VmRSS") for p in pids}
    cpu0, t0 = tree_cpu(server.pid), time.perf_counter()
    total = _stream(method, url, **payload)
    wall, cpu = time.perf_counter() - t0, tree_cpu(server.pid) - cpu0
    growth = 0
    for p in pids:
        try:
            growth = max(growth, _status_kb(p, "VmHWM") - rss0.get(p, 0))
        except OSError:
            continue
    return Sample(total / wall / 1e6, total / wall / 1e6, cpu / count * 1000, extra=growth / 1024)


# ------------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------------


def median(samples: Sequence[Sample], attr: str) -> float:
    return float(statistics.median(getattr(s, attr) for s in samples))


def run(args: argparse.Namespace) -> str:
    work = Path(tempfile.mkdtemp(prefix="bench-imaging-"))
    small = make_series(work / "small", args.small, 128, 1)
    large = make_series(work / "large", args.large, 512, 2)
    study_dir = make_series(work / "study", args.study, 512, 3)
    from pydicom import dcmread

    first = dcmread(next(study_dir.iterdir()), stop_before_pixels=True)
    study_uid = str(first.StudyInstanceUID)
    sops: dict[str, list[str]] = {}
    for path in sorted(study_dir.iterdir()):
        ds = dcmread(path, stop_before_pixels=True)
        sops.setdefault(str(ds.SeriesInstanceUID), []).append(str(ds.SOPInstanceUID))
    study_mb = folder_bytes(study_dir) / 1e6
    each = args.small // max(args.parallel, 1)
    parallel = [make_series(work / f"par{k}", each, 128, 10 + k) for k in range(args.parallel)]
    if args.parallel < 2:
        parallel = []
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    ingest: dict[tuple[str, str], list[Sample]] = {}
    fetch: dict[str, list[Sample]] = {}
    probes: list[float] = []
    for _ in range(args.runs):
        probes.append(flush_probe(Path(tempfile.gettempdir()) / f"bench-probe-{os.getpid()}"))
        for backend in backends:
            for start in (start_hub, start_orthanc):
                with running(start, backend) as server:
                    kind = server.name
                    ingest.setdefault((kind, "small"), []).append(storescu(server, small))
                    ingest.setdefault((kind, "large"), []).append(storescu(server, large))
                    if parallel:
                        ingest.setdefault((kind, "parallel"), []).append(storescu_parallel(server, parallel))
                    if backend != backends[0]:
                        continue
                    storescu(server, study_dir)
                    base = f"http://127.0.0.1:{server.http_port}"
                    for _request in range(args.requests):
                        if start is start_hub:
                            body = _rad69_body(study_uid, sops)
                            headers = {"Content-Type": RAD69_CONTENT_TYPE}
                            fetch.setdefault("xds-hub RAD-69", []).append(
                                retrieve(server, f"{base}/xdsi/source", "POST",
                                         {"data": body, "headers": headers}, args.study)
                            )  # fmt: skip
                            fetch.setdefault("xds-hub WADO-RS", []).append(
                                retrieve(server, f"{base}/dicomweb/studies/{study_uid}", "GET",
                                         {"headers": {"Accept": DICOM_ANY}}, args.study)
                            )  # fmt: skip
                        else:
                            fetch.setdefault("Orthanc WADO-RS", []).append(
                                retrieve(server, f"{base}/dicom-web/studies/{study_uid}", "GET",
                                         {"headers": {"Accept": DICOM_ANY}}, args.study)
                            )  # fmt: skip
    small_kb = folder_bytes(small) / args.small / 1e3
    shutil.rmtree(work, ignore_errors=True)
    return report(args, ingest, fetch, small_kb, study_mb, probes)


def report(
    args: argparse.Namespace,
    ingest: dict[tuple[str, str], list[Sample]],
    fetch: dict[str, list[Sample]],
    small_kb: float,
    study_mb: float,
    probes: Sequence[float] = (),
) -> str:
    lines = [
        f"## Imaging (IMAGING helper, {time.strftime('%Y-%m-%d')})",
        "",
        f"`python -m bench.imaging_bench --runs {args.runs} --small {args.small} --large {args.large} "
        f"--study {args.study} --parallel {args.parallel} --requests {args.requests} "
        f"--backend {args.backend}`, in a loopback-only network namespace, DCMTK 3.6.7 storescu "
        "(`TCP_NODELAY=1`, one association), Orthanc 1.10.1 "
        "from Debian (older than upstream 1.12) with DICOMweb 1.7 and PostgreSQL 4.0 plugins. "
        f"Fresh servers per run; medians of {args.runs} runs; CPU = utime+stime of the server's process "
        "tree per instance.",
        "",
        "| C-STORE ingest | small inst/s | ratio to Orthanc (same index) | CPU ms/inst | large MB/s | ratio "
        "| CPU ms/inst |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for backend in ("sqlite", "postgresql"):
        hub, orth = f"xds-hub+{backend}", f"orthanc+{backend}"
        if (hub, "small") not in ingest:
            continue
        for name in (hub, orth):
            s, lg = ingest[(name, "small")], ingest[(name, "large")]
            ratio_s = median(s, "rate") / median(ingest[(orth, "small")], "rate")
            ratio_l = median(lg, "mb_s") / median(ingest[(orth, "large")], "mb_s")
            lines.append(
                f"| {name} | {median(s, 'rate'):.0f} | {ratio_s:.2f}x | {median(s, 'cpu_ms'):.2f} | "
                f"{median(lg, 'mb_s'):.1f} | {ratio_l:.2f}x | {median(lg, 'cpu_ms'):.2f} |"
            )
    if any(key[1] == "parallel" for key in ingest):
        lines += [
            "",
            f"| {args.parallel} associations at once, {args.small} x {small_kb:.0f} KB in all | inst/s "
            "| ratio to Orthanc (same index) | CPU ms/inst |",
            "| --- | --- | --- | --- |",
        ]
        for backend in ("sqlite", "postgresql"):
            hub, orth = f"xds-hub+{backend}", f"orthanc+{backend}"
            if (hub, "parallel") not in ingest:
                continue
            for name in (hub, orth):
                p = ingest[(name, "parallel")]
                ratio = median(p, "rate") / median(ingest[(orth, "parallel")], "rate")
                lines.append(
                    f"| {name} | {median(p, 'rate'):.0f} | {ratio:.2f}x | {median(p, 'cpu_ms'):.2f} |"
                )
    lines += [
        "",
        f"Small = {args.small} x {small_kb:.0f} KB CT, large = {args.large} x 513 KB CT. Flush probe "
        "(median ms to create, write 34 KB to and fsync a new file, before each run): "
        + ", ".join(f"{p:.2f}" for p in probes)
        + ".",
        "",
        f"| retrieval of a {args.study}-instance study ({study_mb:.0f} MB), median of {args.requests} "
        f"requests x {args.runs} runs | MB/s | ratio to Orthanc "
        "WADO-RS | server CPU ms/inst | peak RSS growth of a server process (MB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    base = median(fetch["Orthanc WADO-RS"], "mb_s") if "Orthanc WADO-RS" in fetch else 0.0
    for name, samples in fetch.items():
        ratio = median(samples, "mb_s") / base if base else 0.0
        lines.append(
            f"| {name} | {median(samples, 'mb_s'):.0f} | {ratio:.2f}x | {median(samples, 'cpu_ms'):.2f} | "
            f"{median(samples, 'extra'):.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=200)
    parser.add_argument("--study", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=0, help="also N associations at once (N > 1)")
    parser.add_argument("--requests", type=int, default=3, help="retrievals of the study per server")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--append", type=Path, help="append the report to this Markdown file")
    parser.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.in_netns:
        inner = " ".join([sys.executable, "-m", "bench.imaging_bench", *sys.argv[1:], "--in-netns"])
        return subprocess.call(["unshare", "-n", "sh", "-c", f"ip link set lo up && {inner}"], cwd=ROOT)
    text = run(args)
    print(text)
    if args.append:
        with args.append.open("a", encoding="utf-8") as fp:
            fp.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
