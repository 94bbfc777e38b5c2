"""SIGKILL in the middle of a stream of ITI-41 submissions (the whole process group, as a crash):
after a restart every acknowledged submission is whole and retrievable, no registry entry points
at a missing blob, and the orphans the crash left are swept."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from tests.hubproc import Hub
from tests.repository_support import (
    content_exists,
    count_blobs,
    count_inline,
    hub_patient,
    hub_stores,
    submission_for,
)
from xds_hub.client.soap import XdsClientError
from xds_hub.client.xds import DocumentRequest, XdsClient
from xds_hub.repository import inline
from xds_hub.repository.sweep import referenced_keys, sweep_orphans
from xds_hub.storage.fs import FsBlobStore
from xds_hub.storage.schema import document_entry, repository_document

REPOSITORY_ID = "1.3.6.1.4.1.21367.13.80.1"


def _wait_for_group_exit(pgid: int, timeout: float = 30) -> None:
    """Until no process of the killed hub's process group is left (its sockets closed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = False
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                raw = (entry / "stat").read_text()
            except OSError:
                continue
            fields = raw[raw.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive = True
                break
        if not alive:
            return
        time.sleep(0.05)
    raise AssertionError(f"process group {pgid} still alive {timeout}s after SIGKILL")


def test_crash_sigkill_mid_stream_loses_no_acknowledged_submission(
    hub_factory: Callable[..., Hub], tmp_path: Path
) -> None:
    hub = hub_factory()
    store = hub_stores(hub)
    pid = hub_patient(hub, store)
    acknowledged: dict[str, str] = {}  # uniqueId -> sha1
    lock = threading.Lock()
    stop = threading.Event()

    def submitter(n: int) -> None:
        with XdsClient(repository_url=hub.url("/xds/repository"), timeout=30) as client:
            i = 0
            while not stop.is_set():
                i += 1
                # Mostly small documents, every fifth one 2 MB so a kill lands mid-upload too.
                size = 2 * 1024 * 1024 if i % 5 == 0 else 2000
                data = os.urandom(size)
                sub, contents = submission_for(pid, [data], mime_type="application/octet-stream")
                try:
                    result = client.provide_and_register(sub, contents)
                except XdsClientError:
                    continue  # the hub died under this request: not acknowledged
                if result.ok:
                    with lock:
                        acknowledged[sub.documents[0].unique_id] = hashlib.sha1(data).hexdigest()

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.process is not None
    group = hub.process.pid
    hub.stop(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join()
    assert len(acknowledged) >= 40
    store.close()

    _wait_for_group_exit(group)
    hub.start()
    store = hub_stores(hub)
    try:
        with XdsClient(repository_url=hub.url("/xds/repository")) as client:
            uids = sorted(acknowledged)
            for start in range(0, len(uids), 25):
                batch = uids[start : start + 25]
                result = client.retrieve([DocumentRequest(REPOSITORY_ID, u) for u in batch], tmp_path / "out")
                assert (result.status_name, result.errors) == ("Success", [])
                assert {d.unique_id: d.sha1 for d in result.documents} == {u: acknowledged[u] for u in batch}
                for d in result.documents:
                    d.path.unlink()
        with store.engine.connect() as conn:
            rows = conn.execute(select(repository_document.c.unique_id, repository_document.c.blob_key)).all()
            entries = set(
                conn.execute(
                    select(document_entry.c.unique_id).where(
                        document_entry.c.repository_unique_id == REPOSITORY_ID
                    )
                ).scalars()
            )
        # Every registry entry of this repository has its document, and every document its blob.
        assert entries == {r.unique_id for r in rows}
        assert all(content_exists(store, r.blob_key) for r in rows)
        # Orphans (blobs of requests cut short) are swept; nothing referenced is.
        sweep_orphans(store, grace_seconds=0, now=time.time() + 1)
        keys = list(store.blobs.iter_keys(older_than=time.time() + 10))
        with store.engine.connect() as conn:
            assert referenced_keys(conn, keys) == set(keys)
        assert count_blobs(store.blobs) == len({r.blob_key for r in rows if not inline.is_inline(r.blob_key)})
        assert count_inline(store.engine) == len({r.blob_key for r in rows if inline.is_inline(r.blob_key)})
        assert isinstance(store.blobs, FsBlobStore)
        assert not any(store.blobs.tmp.iterdir())
    finally:
        store.close()
