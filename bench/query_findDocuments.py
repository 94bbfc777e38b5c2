"""ITI-18 FindDocuments latency at 100 k and 1 M DocumentEntries, on SQLite and PostgreSQL.

Usage (from the repository root)::

    python -m bench.query_findDocuments [--docs 100000] [--backend sqlite|postgresql|both]
        [--queries 1000] [--runs 3] [--http] [--keep DIR] [--append bench/RESULTS.md]

Load: ``--docs`` DocumentEntries spread over ``docs/10`` patients with a skewed (log-normal,
sigma 1) number of documents each, capped at 2,000; 95 % Approved, 5 % Deprecated; submitted in
SubmissionSets of 1-3 documents (SubmissionSet + HasMember rows too); each DocumentEntry has the
JSON body the registry stores (xds_hub.storage.codec) and its index rows (document_entry, 8 codes
in object_code, an author).  The rows go straight into the tables (sqlite3 executemany / psycopg
COPY) with the secondary indexes dropped, which are then rebuilt, and the database is ANALYZEd.
``--keep DIR`` keeps (and on the next run reuses) the SQLite file of that size there.

Measure: patients are drawn uniformly; each query goes through the ITI-18 query function
(``xds_hub.registry.iti18.run``: parameter parsing, one read transaction, the SQL, decoding the
LeafClass objects) exactly as the SOAP handler calls it.  Three shapes:

- ``patient``: $XDSDocumentEntryPatientId + $XDSDocumentEntryStatus (Approved), LeafClass;
- ``objectref``: the same, ObjectRef;
- ``filtered``: + $XDSDocumentEntryClassCode (2 codes) + a creation time range, LeafClass.

With ``--http`` the ``patient`` shape is also sent as SOAP 1.2 over HTTP to a real ``xds-hub
serve`` on the same database (one keep-alive client), and the server CPU seconds per 1,000
queries are read from /proc.  In the same run, alternating with the hub's runs, the same client
sends the same requests to a do-nothing endpoint: gunicorn with the hub's worker class and
worker/thread counts, answering every request with one fixed AdhocQueryResponse captured from
the hub: one endpoint with a typical answer (10 DocumentEntries), one with an answer as large as
the p99 patient's (64, ~420 KB: the hub's p99 queries return about that much).  Their latencies
are the floor that the machine, gunicorn and the client (reading the answer) set; on a shared
machine quote the hub against them.

Reported: median, p90, p99 and max latency (ms) and rows per query, the median over ``--runs``
runs of ``--queries`` queries each (after 200 warm-up queries).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402
from lxml import etree  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402
from sqlalchemy.exc import SQLAlchemyError  # noqa: E402
from tqdm import tqdm  # noqa: E402

from tests.hubproc import PG_ADMIN_URL, Hub, create_pg_database, drop_pg_database, free_port  # noqa: E402
from xds_hub import ns  # noqa: E402
from xds_hub.client.soap import build_envelope  # noqa: E402
from xds_hub.client.xds import encode_query_value  # noqa: E402
from xds_hub.config import Settings  # noqa: E402
from xds_hub.domain.metadata import Author, Code, DocumentEntry, SubmissionSet  # noqa: E402
from xds_hub.domain.query import AdhocQuery, parse_request  # noqa: E402
from xds_hub.domain.vocabulary import AssociationType, SoapAction, Status, StoredQuery  # noqa: E402
from xds_hub.registry import iti18  # noqa: E402
from xds_hub.storage import codec  # noqa: E402
from xds_hub.storage.db import make_engine  # noqa: E402
from xds_hub.storage.fs import FsBlobStore  # noqa: E402
from xds_hub.storage.migrate import upgrade  # noqa: E402
from xds_hub.storage.schema import (  # noqa: E402
    association,
    document_entry,
    object_author,
    object_code,
    patient,
    registry_object,
    submission_set,
)
from xds_hub.storage.stores import Stores  # noqa: E402

AFFINITY = "1.3.6.1.4.1.21367.13.20.1000"
APPROVED, DEPRECATED = Status.APPROVED.value, Status.DEPRECATED.value
LOADED_TABLES = (
    registry_object,
    document_entry,
    submission_set,
    association,
    object_code,
    object_author,
    patient,
)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _codes(kind: str, scheme: str, n: int) -> list[Code]:
    return [Code(f"{kind}{i}", scheme, f"{kind} {i}") for i in range(n)]


CLASSES = _codes("CLASS", "1.3.6.1.4.1.19376.1.2.6.1", 12)
TYPES = _codes("TYPE", "2.16.840.1.113883.6.1", 40)
FORMATS = _codes("FMT", "1.3.6.1.4.1.19376.1.2.3", 6)
FACILITIES = _codes("HCFT", "2.16.840.1.113883.5.11", 8)
PRACTICES = _codes("PS", "2.16.840.1.113883.6.96", 20)
CONFIDENTIALITY = [Code(c, "2.16.840.1.113883.5.25", c) for c in ("N", "R", "V")]
EVENTS = _codes("EV", "1.2.3.4.5", 50)
AUTHORS = [f"^Author{i}^Given{i}^^^Dr" for i in range(500)]


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


def docs_per_patient(rng: random.Random, total: int) -> list[int]:
    """Log-normal counts with mean 10 (sigma 1), at least 1, at most 2,000, summing to ``total``."""
    mu = math.log(10) - 0.5
    counts: list[int] = []
    left = total
    while left > 0:
        n = min(left, 2000, max(1, round(rng.lognormvariate(mu, 1.0))))
        counts.append(n)
        left -= n
    return counts


def _uuid(rng: random.Random) -> str:
    return f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"


def _dtm(rng: random.Random) -> str:
    t = rng.randint(946684800, 1735689599)  # 2000 .. 2024
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t))


@dataclass
class Batch:
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)

    def add(self, table: str, *rows: tuple[Any, ...]) -> None:
        self.rows.setdefault(table, []).extend(rows)


def _document(rng: random.Random, pid: str, seq: int, batch: Batch) -> str:
    created = _dtm(rng)
    status = DEPRECATED if rng.random() < 0.05 else APPROVED
    doc = DocumentEntry(
        entry_uuid=_uuid(rng),
        unique_id=f"2.25.{rng.getrandbits(100)}",
        patient_id=pid,
        mime_type="text/xml",
        status=Status(status),
        title="Report",
        class_code=rng.choice(CLASSES),
        type_code=rng.choice(TYPES),
        format_code=rng.choice(FORMATS),
        healthcare_facility_type_code=rng.choice(FACILITIES),
        practice_setting_code=rng.choice(PRACTICES),
        confidentiality_codes=(rng.choice(CONFIDENTIALITY),),
        event_codes=tuple(rng.sample(EVENTS, rng.randint(1, 2))),
        authors=(Author(person=rng.choice(AUTHORS), institutions=("Hopital A^^^^^^^^^1.2.3.100",)),),
        creation_time=created,
        service_start_time=created[:12],
        service_stop_time=created[:12],
        hash=f"{rng.getrandbits(160):040x}",
        size=rng.randint(1000, 500000),
        language_code="fr-FR",
        source_patient_id=f"L{seq}^^^&1.2.3.100&ISO",
        repository_unique_id="1.2.3.4.5",
    )
    d = doc.entry_uuid
    batch.add("registry_object", (d, "D", d, 1, status, pid, doc.unique_id, codec.dumps(doc), seq))
    batch.add(
        "document_entry",
        (d, pid, status, doc.object_type.value, doc.unique_id, created, created[:12], created[:12],
         "1.2.3.4.5", doc.hash, doc.size, "text/xml"),
    )  # fmt: skip
    codes = [
        ("classCode", doc.class_code),
        ("typeCode", doc.type_code),
        ("formatCode", doc.format_code),
        ("healthcareFacilityTypeCode", doc.healthcare_facility_type_code),
        ("practiceSettingCode", doc.practice_setting_code),
        *(("confidentialityCode", c) for c in doc.confidentiality_codes),
        *(("eventCodeList", c) for c in doc.event_codes),
    ]
    batch.add("object_code", *((d, kind, c.code, c.scheme) for kind, c in codes if c is not None))
    batch.add("object_author", (d, doc.authors[0].person))
    return d


def _submission_set(rng: random.Random, pid: str, seq: int, doc_ids: Sequence[str], batch: Batch) -> None:
    ss = SubmissionSet(
        entry_uuid=_uuid(rng),
        unique_id=f"2.25.{rng.getrandbits(100)}",
        source_id="1.2.3.100.1",
        patient_id=pid,
        submission_time=_dtm(rng),
        content_type_code=Code("34133-9", "2.16.840.1.113883.6.1", "Summary"),
        authors=(Author(person=rng.choice(AUTHORS)),),
    )
    s = ss.entry_uuid
    batch.add("registry_object", (s, "S", s, 1, APPROVED, pid, ss.unique_id, codec.dumps(ss), seq))
    batch.add("submission_set", (s, pid, APPROVED, ss.source_id, ss.submission_time, ss.unique_id))
    batch.add("object_code", (s, "contentTypeCode", "34133-9", "2.16.840.1.113883.6.1"))
    for d in doc_ids:
        a = _uuid(rng)
        batch.add("association", (a, AssociationType.HAS_MEMBER.value, s, d, APPROVED))
        body = f'{{"entry_uuid":"{a}","association_type":"{AssociationType.HAS_MEMBER.value}","source":"{s}","target":"{d}","submission_set_status":"Original"}}'  # noqa: E501
        batch.add("registry_object", (a, "A", a, 1, APPROVED, None, None, body, seq))


def generate(docs: int, seed: int = 18, batch_docs: int = 20_000) -> Iterator[tuple[int, Batch]]:
    """Batches of rows (and the number of documents in each) for ``docs`` documents."""
    rng = random.Random(seed)
    batch, in_batch, seq = Batch(), 0, 0
    for n in docs_per_patient(rng, docs):
        pid = f"P{seq:09d}^^^&{AFFINITY}&ISO"
        batch.add("patient", (pid, "2024-01-01T00:00:00Z", None))
        left = n
        while left:
            size = min(left, rng.randint(1, 3))
            seq += 1
            ids = [_document(rng, pid, seq, batch) for _ in range(size)]
            _submission_set(rng, pid, seq, ids, batch)
            left -= size
            in_batch += size
        if in_batch >= batch_docs:
            yield in_batch, batch
            batch, in_batch = Batch(), 0
    if in_batch:
        yield in_batch, batch


def patients_of(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT patient_id FROM patient")).scalars())


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------

COLUMNS = {t.name: [c.name for c in t.columns] for t in LOADED_TABLES}


def _drop_indexes(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in LOADED_TABLES:
            for index in table.indexes:
                conn.execute(text(f"DROP INDEX IF EXISTS {index.name}"))


def _create_indexes(engine: Engine) -> None:
    indexes = [i for t in LOADED_TABLES for i in t.indexes]
    for index in tqdm(indexes, desc="indexes", unit="index"):
        index.create(engine, checkfirst=True)
    # Only the loaded tables: an ANALYZE of the empty audit tables would leave each PostgreSQL
    # backend a sequential-scan plan for the audit_patient foreign-key check (bench/pix_feed.py).
    with engine.begin() as conn:
        for table in LOADED_TABLES:
            conn.execute(text(f"ANALYZE {table.name}"))


def load_sqlite(path: Path, docs: int) -> None:
    db = sqlite3.connect(path)
    db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-1000000;")
    with tqdm(total=docs, desc=f"load sqlite {docs:,}", unit="doc", unit_scale=True) as bar:
        for count, batch in generate(docs):
            db.execute("BEGIN")
            for table, rows in batch.rows.items():
                cols = COLUMNS[table]
                db.executemany(
                    f"INSERT INTO {table} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})", rows
                )
            db.execute("COMMIT")
            bar.update(count)
    db.execute("PRAGMA journal_mode=WAL")
    db.close()


def load_postgresql(url: str, docs: int) -> None:
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with (
        psycopg.connect(dsn) as db,
        tqdm(total=docs, desc=f"load postgresql {docs:,}", unit="doc", unit_scale=True) as bar,
    ):
        for count, batch in generate(docs):
            with db.cursor() as cur:
                for table, rows in batch.rows.items():
                    with cur.copy(f"COPY {table} ({','.join(COLUMNS[table])}) FROM STDIN") as cp:
                        for row in rows:
                            cp.write_row(row)
            db.commit()
            bar.update(count)


def _kept_pg_database(docs: int) -> tuple[str, bool]:
    """The URL of the kept PostgreSQL database for ``docs`` documents, and whether it is loaded."""
    name = f"xds_bench_find_documents_{docs}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    if not exists:
        return url, False
    engine = make_engine(url)
    try:  # a half-made database (no rows, no indexes yet) is made again
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM document_entry")).scalar()
            index = conn.execute(
                text("SELECT 1 FROM pg_indexes WHERE indexname = 'ix_document_entry_patient'")
            )
            loaded = rows == docs and index.first() is not None
    except SQLAlchemyError:
        loaded = False
    engine.dispose()
    if not loaded:
        drop_pg_database(url)
        return _kept_pg_database(docs)
    return url, True


def prepare(backend: str, docs: int, keep: Path | None, work: Path) -> tuple[str, bool]:
    """A loaded database of ``docs`` documents; (SQLAlchemy URL, drop it afterwards?).

    With ``keep``, the SQLite file lives in that folder and the PostgreSQL database is named
    after ``docs``; both are kept and reused by the next run.
    """
    if backend == "sqlite":
        folder = keep or work
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"findDocuments-{docs}.sqlite"
        url = f"sqlite:///{path}"
        if path.exists():
            return url, False
        engine = make_engine(url)
        upgrade(engine)
        _drop_indexes(engine)
        engine.dispose()
        load_sqlite(path, docs)
    else:
        if keep:
            url, loaded = _kept_pg_database(docs)
            if loaded:
                return url, False
        else:
            url = create_pg_database()
        engine = make_engine(url)
        upgrade(engine)
        _drop_indexes(engine)
        load_postgresql(url, docs)
    engine = make_engine(url)
    _create_indexes(engine)
    engine.dispose()
    return url, backend == "postgresql" and not keep


# ------------------------------------------------------------------------------------------------
# Measuring
# ------------------------------------------------------------------------------------------------

SHAPES: dict[str, tuple[str, Callable[[str], list[tuple[str, tuple[str, ...]]]]]] = {
    "patient": ("LeafClass", lambda pid: []),
    "objectref": ("ObjectRef", lambda pid: []),
    "filtered": (
        "LeafClass",
        lambda pid: [
            (
                "$XDSDocumentEntryClassCode",
                (encode_query_value([f"{c.code}^^{c.scheme}" for c in CLASSES[:2]]),),
            ),
            ("$XDSDocumentEntryCreationTimeFrom", ("2010",)),
            ("$XDSDocumentEntryCreationTimeTo", ("2020",)),
        ],
    ),
}


def _slots(pid: str, extra: list[tuple[str, tuple[str, ...]]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return (
        ("$XDSDocumentEntryPatientId", (encode_query_value(pid),)),
        ("$XDSDocumentEntryStatus", (encode_query_value([APPROVED]),)),
        *extra,
    )


@dataclass
class Stats:
    latencies_ms: list[float]
    rows: list[int]
    cpu_per_1000: float | None = None
    #: 1-minute load average of the machine when the run ended (other work inflates latencies).
    load: float = field(default_factory=lambda: os.getloadavg()[0])

    def pct(self, p: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, round(p / 100 * (len(data) - 1)))]


def measure_function(
    stores: Stores, settings: Settings, pids: list[str], shape: str, n: int, seed: int
) -> Stats:
    return_type, extra = SHAPES[shape]
    rng = random.Random(seed)
    lat, rows = [], []
    cpu0 = time.process_time()
    for _ in range(n):
        pid = rng.choice(pids)
        adhoc = AdhocQuery(str(StoredQuery.FIND_DOCUMENTS), _slots(pid, extra(pid)), return_type)
        t0 = time.perf_counter()
        found = iti18.run(stores, settings, parse_request(adhoc))
        lat.append((time.perf_counter() - t0) * 1000)
        rows.append(len(found))
    return Stats(lat, rows, cpu_per_1000=(time.process_time() - cpu0) * 1000 / n)


def _request_bytes(url: str, pid: str) -> bytes:
    req = etree.Element(ns.qn(ns.QUERY, "AdhocQueryRequest"), nsmap={"query": ns.QUERY, "rim": ns.RIM})
    etree.SubElement(
        req, ns.qn(ns.QUERY, "ResponseOption"), returnComposedObjects="true", returnType="LeafClass"
    )
    aq = etree.SubElement(req, ns.qn(ns.RIM, "AdhocQuery"), id=str(StoredQuery.FIND_DOCUMENTS))
    for name, values in _slots(pid, []):
        vl = etree.SubElement(
            etree.SubElement(aq, ns.qn(ns.RIM, "Slot"), name=name), ns.qn(ns.RIM, "ValueList")
        )
        for v in values:
            etree.SubElement(vl, ns.qn(ns.RIM, "Value")).text = v
    return build_envelope(SoapAction.ITI18.value, url, req)


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


def warm_up(hub: Hub | NullEndpoint, pids: list[str], n: int, clients: int = 4) -> None:
    """``n`` queries from ``clients`` concurrent connections, so that every gunicorn worker has
    imported its handlers and filled its caches before the clock starts (one connection is served
    by one worker; a run's new connection may land on a worker that has not answered yet)."""
    threads = [
        threading.Thread(target=measure_http, args=(hub, pids, n // clients, 1000 + i))
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def measure_http(hub: Hub | NullEndpoint, pids: list[str], n: int, seed: int) -> Stats:
    url = hub.url("/xds/registry")
    headers = {"Content-Type": f'application/soap+xml; charset=UTF-8; action="{SoapAction.ITI18.value}"'}
    rng = random.Random(seed)
    lat, rows = [], []
    assert hub.process is not None
    with requests.Session() as session:
        bodies = [_request_bytes(url, rng.choice(pids)) for _ in range(n)]
        cpu0 = _group_cpu(hub.process.pid)
        for body in bodies:
            t0 = time.perf_counter()
            response = session.post(url, data=body, headers=headers, timeout=60)
            lat.append((time.perf_counter() - t0) * 1000)
            rows.append(
                response.content.count(b"ExtrinsicObject ") or response.content.count(b"ExtrinsicObject>")
            )
            if response.status_code != 200 or b"ResponseStatusType:Success" not in response.content:
                raise RuntimeError(f"query failed: HTTP {response.status_code} {response.content[:500]!r}")
        cpu = _group_cpu(hub.process.pid) - cpu0
    return Stats(lat, rows, cpu_per_1000=cpu * 1000 / n)


NULL_APP = """\
\"\"\"A SOAP endpoint that does nothing: reads the request, answers one fixed AdhocQueryResponse.\"\"\"
import pathlib

BODY = pathlib.Path(__file__).with_name("answer.xml").read_bytes()
HEADERS = [
    ("Content-Type", "application/soap+xml; charset=utf-8"),
    ("Content-Length", str(len(BODY))),
]


def app(environ, start_response):
    stream = environ["wsgi.input"]
    while stream.read(1 << 20):
        pass
    start_response("200 OK", HEADERS)
    return [BODY]
"""


@dataclass
class NullEndpoint:
    """gunicorn with the hub's worker class and counts, answering ``answer`` to every request."""

    folder: Path
    answer: bytes
    settings: Settings
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> NullEndpoint:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "nullapp.py").write_text(NULL_APP)
        (self.folder / "answer.xml").write_bytes(self.answer)
        self.port = free_port()
        cmd = [
            sys.executable, "-m", "gunicorn", "--chdir", str(self.folder),
            "-k", "xds_hub.httpworker.HubWorker", "-w", str(self.settings.http_workers),
            "--threads", str(self.settings.http_threads), "-b", f"127.0.0.1:{self.port}",
            "--keep-alive", "30", "--log-level", "warning", "nullapp:app",
        ]  # fmt: skip
        self.process = subprocess.Popen(cmd, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.post(self.url("/xds/registry"), data=b"x", timeout=1)
                return self
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the do-nothing endpoint did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)
        self.process = None


#: Sizes of the do-nothing endpoint's fixed answers: a typical patient's, the p99 patient's.
FLOOR_DOCS = (10, 64)


def typical_answer(hub: Hub, pids: list[str], docs: int = 10) -> bytes:
    """A real FindDocuments answer of the hub with ``docs`` DocumentEntries (or the closest found)."""
    url = hub.url("/xds/registry")
    headers = {"Content-Type": f'application/soap+xml; charset=UTF-8; action="{SoapAction.ITI18.value}"'}
    best = b""
    for pid in random.Random(10).sample(pids, min(len(pids), 200)):
        answer = requests.post(url, data=_request_bytes(url, pid), headers=headers, timeout=60).content
        if abs(answer.count(b"ExtrinsicObject ") - docs) < abs(best.count(b"ExtrinsicObject ") - docs):
            best = answer
        if best.count(b"ExtrinsicObject ") == docs:
            break
    return best


def summarize(runs: list[Stats]) -> dict[str, float]:
    def med(f: Callable[[Stats], float]) -> float:
        return statistics.median(f(s) for s in runs)

    out = {
        "p50": med(lambda s: s.pct(50)),
        "p90": med(lambda s: s.pct(90)),
        "p99": med(lambda s: s.pct(99)),
        "max": med(lambda s: max(s.latencies_ms)),
        "rows": med(lambda s: statistics.mean(s.rows)),
        "load": med(lambda s: s.load),
    }
    if runs[0].cpu_per_1000 is not None:
        out["cpu"] = med(lambda s: s.cpu_per_1000 or 0.0)
    return out


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------


def run_backend(backend: str, args: argparse.Namespace, work: Path) -> list[tuple[str, dict[str, float]]]:
    t0 = time.monotonic()
    url, drop = prepare(backend, args.docs, args.keep, work)
    load_s = time.monotonic() - t0
    results: list[tuple[str, dict[str, float]]] = []
    try:
        engine = make_engine(url)
        stores = Stores(engine=engine, blobs=FsBlobStore(work / "blobs"))
        pids = patients_of(engine)
        settings = Settings(max_query_results=5000)
        print(
            f"{backend}: {args.docs:,} documents, {len(pids):,} patients ready in {load_s:.0f} s", flush=True
        )
        for shape in SHAPES:
            measure_function(stores, settings, pids, shape, 200, seed=0)  # warm-up
            runs = [
                measure_function(stores, settings, pids, shape, args.queries, seed=r + 1)
                for r in range(args.runs)
            ]
            results.append((f"{backend} · function · {shape}", summarize(runs)))
            print(results[-1], flush=True)
        stores.close()
        if args.http:
            folder = work / f"hub-{backend}"
            folder.mkdir(exist_ok=True)
            hub = Hub(folder=folder, db_url=url).start()
            nulls: list[NullEndpoint] = []
            try:
                for docs in FLOOR_DOCS:  # a typical answer, and one as large as the p99 patient's
                    answer = typical_answer(hub, pids, docs)
                    nulls.append(NullEndpoint(work / f"null{docs}", answer, hub.settings).start())
                for endpoint in (hub, *nulls):
                    warm_up(endpoint, pids, 400)
                runs: list[Stats] = []
                floors: list[list[Stats]] = [[] for _ in nulls]
                for r in range(args.runs):  # alternating, so all see the same machine load
                    runs.append(measure_http(hub, pids, args.queries, seed=r + 1))
                    for null, floor in zip(nulls, floors, strict=True):
                        floor.append(measure_http(null, pids, args.queries, seed=r + 1))
                results.append((f"{backend} · HTTP · patient", summarize(runs)))
                print(results[-1], flush=True)
                for null, floor in zip(nulls, floors, strict=True):
                    docs = null.answer.count(b"ExtrinsicObject ")
                    name = f"{backend} · HTTP · do-nothing endpoint (fixed {docs}-document answer)"
                    results.append((name, summarize(floor)))
                    print(results[-1], flush=True)
            finally:
                for null in nulls:
                    null.stop()
                hub.stop()
    finally:
        if drop:
            drop_pg_database(url)
    return results


def report(args: argparse.Namespace, results: list[tuple[str, dict[str, float]]]) -> str:
    lines = [
        f"### ITI-18 FindDocuments, {args.docs:,} DocumentEntries ({time.strftime('%Y-%m-%d')})",
        "",
        f"`python -m bench.query_findDocuments --docs {args.docs} --queries {args.queries} --runs {args.runs}"
        f"{' --http' if args.http else ''}` on {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}.  Medians of {args.runs} runs of {args.queries:,} queries "
        "(uniformly drawn patients; ~10 documents per patient, log-normal skew).",
        "",
        "| backend · path · shape | p50 ms | p90 ms | p99 ms | max ms | objects/query "
        "| CPU s/1000 queries | load avg |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results:
        cpu = f"{r['cpu']:.2f}" if "cpu" in r else ""
        cells = [
            name,
            *(f"{r[k]:.2f}" for k in ("p50", "p90", "p99")),
            f"{r['max']:.1f}",
            f"{r['rows']:.1f}",
            cpu,
            f"{r['load']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--http", action="store_true", help="also measure over HTTP against xds-hub serve")
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep (and reuse) the databases: the SQLite file in this folder, a named PG database",
    )
    parser.add_argument("--append", type=Path, help="append the Markdown table to this file")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-iti18-") as tmp:
        for backend in backends:
            results.extend(run_backend(backend, args, Path(tmp)))
    table = report(args, results)
    print(table)
    if args.append:
        with args.append.open("a", encoding="utf-8") as out:
            out.write("\n" + table)


if __name__ == "__main__":
    main()
