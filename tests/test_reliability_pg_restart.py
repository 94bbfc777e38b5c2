"""PostgreSQL goes away under a running hub, and comes back (a private cluster: the machine's shared
PostgreSQL is never touched).

While the database is down (stopped with ``pg_ctl stop -m fast``, then ``-m immediate``), every
listener still answers, with an error of its protocol and without crashing:

- ``/healthz`` 503 naming the database;
- ITI-41 a RegistryResponse Failure (XDSRepositoryError / XDSRegistryNotAvailable / ...Busy);
- ITI-18 and ITI-43 RegistryResponse Failures;
- HL7 v2 (ITI-8 feed, ITI-9 query) an ACK AR/AE with ERR 207 (application internal error);
- DICOM C-STORE a failure status (C-ECHO still succeeds).

When it is started again the hub serves again without a restart (pool_pre_ping), the submissions
refused meanwhile left no row, and their orphaned blobs are swept.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from pynetdicom import AE
from sqlalchemy import func, select

from bench.faults_support import PrivatePostgres, record_fault
from tests.hubproc import Hub
from tests.imaging_helpers import make_instance
from tests.pix_support import HOPA, ack_code, adt, cx, errors, new_id, qbp
from tests.pix_support import send as mllp_send
from tests.repository_support import content_keys, hub_patient, hub_stores, submission_for
from xds_hub.client.xds import DocumentRequest, XdsClient
from xds_hub.errors import ErrorCode
from xds_hub.repository.sweep import referenced_keys, sweep_orphans
from xds_hub.storage.fs import FsBlobStore
from xds_hub.storage.schema import repository_document

REPOSITORY_ID = "1.3.6.1.4.1.21367.13.80.1"
UNAVAILABLE = {
    ErrorCode.REGISTRY_NOT_AVAILABLE,
    ErrorCode.REGISTRY_BUSY,
    ErrorCode.REGISTRY_ERROR,
    ErrorCode.REPOSITORY_ERROR,
    ErrorCode.REPOSITORY_BUSY,
}


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    if not PrivatePostgres.available():
        pytest.skip("no PostgreSQL server binaries (initdb) on this machine")
    pg = PrivatePostgres().init()
    pg.start()
    try:
        yield pg
    finally:
        pg.destroy()


@dataclass
class Probe:
    """One answer of each listener: ``name -> (ok, what was answered)``."""

    answers: dict[str, tuple[bool, str]]

    def failed(self) -> list[str]:
        return [f"{name}: {what}" for name, (ok, what) in self.answers.items() if not ok]


def _codes(result: object) -> list[str]:
    return [str(e.code) for e in getattr(result, "errors", [])]


def _c_store(hub: Hub) -> int:
    ae = AE(ae_title="HOPA_CT")
    ds = make_instance()
    ae.add_requested_context(ds.SOPClassUID, ["1.2.840.10008.1.2.1"])
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", hub.dicom_port, ae_title="XDSHUB")
    assert assoc.is_established
    try:
        echo = assoc.send_c_echo()
        assert int(echo.Status) == 0  # the listener itself is fine
        rsp = assoc.send_c_store(ds)
        return int(rsp.Status) if "Status" in rsp else -1
    finally:
        assoc.release()


def _probe(hub: Hub, pid: str, tmp_path: Path, expect_up: bool) -> Probe:
    """Every listener once; each answer judged against ``expect_up``."""
    answers: dict[str, tuple[bool, str]] = {}

    def judge(name: str, call: Callable[[], tuple[bool, bool, str]]) -> None:
        try:
            up_ok, down_ok, what = call()
        except Exception as exc:  # a crash, a dropped connection: never acceptable
            answers[name] = (False, f"{type(exc).__name__}: {exc}")
            return
        answers[name] = (up_ok if expect_up else down_ok, what)

    def healthz() -> tuple[bool, bool, str]:
        r = requests.get(hub.url("/healthz"), timeout=30)
        checks = r.json().get("checks", {})
        what = f"HTTP {r.status_code} database={checks.get('database')}"
        down = r.status_code == 503 and str(checks.get("database", "")).startswith("down")
        return r.status_code == 200, down and checks.get("dicom") == "ok", what

    client = XdsClient(
        repository_url=hub.url("/xds/repository"), registry_url=hub.url("/xds/registry"), timeout=60
    )

    def iti41() -> tuple[bool, bool, str]:
        sub, contents = submission_for(pid, [os.urandom(3000)], mime_type="application/octet-stream")
        r = client.provide_and_register(sub, contents)
        codes = _codes(r)
        return (
            r.status_name == "Success",
            r.status_name == "Failure" and bool(set(codes) & UNAVAILABLE),
            (f"{r.status_name} {codes}"),
        )

    def iti18() -> tuple[bool, bool, str]:
        r = client.find_documents(pid)
        codes = _codes(r)
        return (
            r.status_name == "Success",
            r.status_name == "Failure" and bool(set(codes) & UNAVAILABLE),
            (f"{r.status_name} {codes}"),
        )

    def iti43() -> tuple[bool, bool, str]:
        r = client.retrieve([DocumentRequest(REPOSITORY_ID, "1.2.3.4.404")], tmp_path / "out")
        codes = _codes(r)
        up = codes == [ErrorCode.DOCUMENT_UNIQUE_ID_ERROR]  # unknown document: the database answered
        return up, r.status_name == "Failure" and bool(set(codes) & UNAVAILABLE), f"{r.status_name} {codes}"

    def feed() -> tuple[bool, bool, str]:
        reply = mllp_send(hub.mllp_port, adt("A01", cx(new_id(), HOPA)))
        code, errs = ack_code(reply), errors(reply)
        return code == "AA", code in ("AR", "AE") and any(e[0] == "207" for e in errs), f"{code} {errs}"

    def query() -> tuple[bool, bool, str]:
        reply = mllp_send(hub.mllp_port, qbp(cx(new_id(), HOPA)))
        code, errs = ack_code(reply), errors(reply)
        return (
            code in ("AA", "AE") and not any(e[0] == "207" for e in errs),
            code in ("AR", "AE") and any(e[0] == "207" for e in errs),
            f"{code} {errs}",
        )

    def dicom() -> tuple[bool, bool, str]:
        status = _c_store(hub)
        return status == 0, status > 0, f"C-STORE 0x{status:04X}"

    try:
        for name, call in (
            ("healthz", healthz),
            ("ITI-41", iti41),
            ("ITI-18", iti18),
            ("ITI-43", iti43),
            ("ITI-8 feed", feed),
            ("ITI-9 query", query),
            ("DICOM C-STORE", dicom),
        ):
            judge(name, call)
    finally:
        client.close()
    return Probe(answers)


def _probe_until_up(hub: Hub, pid: str, tmp_path: Path, timeout: float = 20) -> Probe:
    """The first request after the restart may still meet a dead pooled connection: allow a few."""
    deadline = time.monotonic() + timeout
    while True:
        probe = _probe(hub, pid, tmp_path, expect_up=True)
        if not probe.failed() or time.monotonic() > deadline:
            return probe
        time.sleep(0.5)


def test_postgresql_stops_under_the_hub_it_answers_errors_then_recovers_without_restart(
    private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    hub = Hub(folder=tmp_path / "hub", db_url=private_pg.create_database("xds_hub")).start()
    try:
        store = hub_stores(hub)
        pid = hub_patient(hub, store)
        store.close()
        assert _probe(hub, pid, tmp_path, expect_up=True).failed() == []
        for mode in ("fast", "immediate"):
            private_pg.stop(mode)
            down = _probe(hub, pid, tmp_path, expect_up=False)
            assert hub.process is not None and hub.process.poll() is None, "the hub exited"
            assert down.failed() == [], f"while PostgreSQL was down ({mode}): {down.failed()}"
            record_fault(
                "Database outage (private PostgreSQL)",
                f"pg_ctl stop -m {mode} under a running hub",
                "protocol errors, no crash; /healthz 503",
                "; ".join(f"{k}: {v[1]}" for k, v in down.answers.items()),
                backend="postgresql",
            )
            private_pg.start()
            up = _probe_until_up(hub, pid, tmp_path)
            assert up.failed() == [], f"after PostgreSQL came back ({mode}): {up.failed()}"
        record_fault(
            "Database outage (private PostgreSQL)",
            "PostgreSQL started again",
            "hub serves again without a restart",
            "every listener answered normally again",
            backend="postgresql",
        )
        _check_nothing_half_stored(hub)
    finally:
        hub.stop(signal.SIGKILL)


def _check_nothing_half_stored(hub: Hub) -> None:
    """The submissions refused while the database was down left no row; their blobs are orphans
    that the sweep removes, and nothing referenced is removed."""
    store = hub_stores(hub)
    try:
        assert isinstance(store.blobs, FsBlobStore)
        sweep_orphans(store, grace_seconds=0, now=time.time() + 1)
        keys = content_keys(store)
        with store.engine.connect() as conn:
            documents = conn.execute(select(func.count()).select_from(repository_document)).scalar_one()
            assert referenced_keys(conn, keys) == set(keys)
            referenced = set(conn.execute(select(repository_document.c.blob_key)).scalars())
        assert referenced <= set(keys)
        # one accepted submission per "up" probe round: 1 before, then after each of the 2 restarts
        assert documents >= 3
        assert not any(store.blobs.tmp.iterdir())
    finally:
        store.close()
