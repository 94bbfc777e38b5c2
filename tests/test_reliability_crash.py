"""Nothing lost: SIGKILL (the whole process group) in the middle of concurrent streams of ITI-41
submissions, DICOM C-STOREs, RAD-68 publications (by the quiet-time publisher and by
`xds-hub publish-study`, killed at the same instant), on SQLite and on PostgreSQL.

After a restart on the same data and database:

- every acknowledged ITI-41 document is retrievable (ITI-43) with its hash, and its metadata;
- every acknowledged C-STORE instance is indexed and its blob holds the data set as sent;
- every `publish-study` that exited 0 left a registered manifest; every registered manifest (KOS)
  is whole (document entry, repository row, blob with the registered hash) and lists only
  instances the hub holds;
- no registry entry, repository row or DICOM instance points at a missing blob or a blob whose
  content differs from its recorded hash;
- the orphans of the interrupted writes are swept (``sweep_orphans`` with no grace) and the blob
  store's tmp folder is empty; nothing referenced is swept.

tests/test_crash_sigkill.py covers ITI-41 alone; this file mixes the three streams.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.dsutils import encode
from sqlalchemy import select

from bench.faults_support import record_fault, wait_for_group_exit
from tests.hubproc import TEST_CONFIG, Hub, db_url_for, drop_pg_database
from tests.imaging_helpers import link_patient, make_study
from tests.repository_support import (
    content_exists,
    content_keys,
    hub_patient,
    hub_stores,
    read_content,
    submission_for,
)
from xds_hub.client.soap import XdsClientError
from xds_hub.client.xds import DocumentRequest, XdsClient
from xds_hub.imaging.kos import parse_kos
from xds_hub.imaging.tables import dicom_instance, imaging_manifest
from xds_hub.repository.sweep import referenced_keys, sweep_orphans
from xds_hub.storage.fs import FsBlobStore
from xds_hub.storage.schema import document_entry, repository_document
from xds_hub.storage.stores import Stores

REPOSITORY_ID = "1.3.6.1.4.1.21367.13.80.1"
HOPA = "1.2.3.100"
#: Stop the streams (kill) once this much has been acknowledged, or after STREAM_SECONDS.
WANT_DOCUMENTS, WANT_INSTANCES, WANT_PUBLISHED = 30, 30, 2
STREAM_SECONDS = 30.0


@dataclass
class Acks:
    """What the hub acknowledged before it was killed."""

    documents: dict[str, str] = field(default_factory=dict)  # uniqueId -> sha1
    instances: dict[str, str] = field(default_factory=dict)  # SOP Instance UID -> sha256 of the data set
    studies: dict[str, set[str]] = field(default_factory=dict)  # study -> its acknowledged instances
    published: set[str] = field(default_factory=set)  # studies `publish-study` exited 0 for
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def crash_hub(db_backend: str, tmp_path: Path) -> Iterator[Hub]:
    hub = Hub(folder=tmp_path / "hub", db_url=db_url_for(db_backend, tmp_path), config_text=TEST_CONFIG)
    try:
        yield hub.start()
    finally:
        hub.stop(signal.SIGKILL)  # nothing to drain; a SIGTERM stop waits 30 s on the DICOM actor
        if db_backend == "postgresql":
            drop_pg_database(hub.db_url)


def _submitter(hub: Hub, pid: str, acks: Acks, stop: threading.Event) -> None:
    with XdsClient(repository_url=hub.url("/xds/repository"), timeout=30) as client:
        i = 0
        while not stop.is_set():
            i += 1
            data = os.urandom(1024 * 1024 if i % 5 == 0 else 2000)  # some land mid-upload
            sub, contents = submission_for(pid, [data], mime_type="application/octet-stream")
            try:
                result = client.provide_and_register(sub, contents)
            except XdsClientError:
                continue  # the hub died under it: not acknowledged
            if result.ok:
                with acks.lock:
                    acks.documents[sub.documents[0].unique_id] = hashlib.sha1(data).hexdigest()
            time.sleep(0.05)  # a steady stream, not a flood: the checks after the restart stay short


def _dataset_sha256(ds: Dataset) -> str:
    data = encode(ds, False, True)  # Explicit VR Little Endian, as the association sends it
    assert data is not None
    return hashlib.sha256(data).hexdigest()


def _modality(hub: Hub, local_id: str, acks: Acks, stop: threading.Event) -> None:
    """A CT of Hopital A pushing studies of 3 instances, one association per study."""
    while not stop.is_set():
        study = make_study(n_series=1, per_series=3, patient_id=local_id)
        ae = AE(ae_title="HOPA_CT")
        ae.add_requested_context(study.instances[0].SOPClassUID, ["1.2.840.10008.1.2.1"])
        assoc = ae.associate("127.0.0.1", hub.dicom_port, ae_title="XDSHUB")
        if not assoc.is_established:
            time.sleep(0.2)
            continue
        try:
            for ds in study.instances:
                rsp = assoc.send_c_store(ds)
                if "Status" not in rsp or int(rsp.Status) != 0:
                    break
                with acks.lock:
                    acks.instances[str(ds.SOPInstanceUID)] = _dataset_sha256(ds)
                    acks.studies.setdefault(study.study_uid, set()).add(str(ds.SOPInstanceUID))
        except Exception:  # the hub died mid-association
            pass
        finally:
            if assoc.is_established:
                assoc.release()


def _publisher(hub: Hub, acks: Acks, stop: threading.Event, running: list[subprocess.Popen[str]]) -> None:
    """`xds-hub publish-study` of the studies received so far, one after the other."""
    done: set[str] = set()
    while not stop.is_set():
        with acks.lock:
            todo = [s for s, sops in acks.studies.items() if len(sops) == 3 and s not in done]
        if not todo:
            time.sleep(0.2)
            continue
        study = todo[0]
        done.add(study)
        cmd = [sys.executable, "-m", "xds_hub", "publish-study", study, *hub.store_args()]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        running.append(proc)
        proc.wait()
        if proc.returncode == 0 and not stop.is_set():
            with acks.lock:
                acks.published.add(study)


def _registered_manifests(store: Stores) -> int:
    with store.engine.connect() as conn:
        return len(
            conn.execute(
                select(imaging_manifest.c.kos_uid).where(imaging_manifest.c.status == "registered")
            ).all()
        )


def test_crash_sigkill_mid_iti41_cstore_and_rad68_streams_loses_nothing_acknowledged(
    crash_hub: Hub, db_backend: str, tmp_path: Path
) -> None:
    hub = crash_hub
    store = hub_stores(hub)
    pid = hub_patient(hub, store)
    local_id = f"LOC{os.urandom(4).hex().upper()}"
    link_patient(store, hub.settings, local_id, HOPA)  # so the studies resolve and get published
    acks = Acks()
    stop = threading.Event()
    clis: list[subprocess.Popen[str]] = []
    threads = [
        *(threading.Thread(target=_submitter, args=(hub, pid, acks, stop)) for _ in range(2)),
        *(threading.Thread(target=_modality, args=(hub, local_id, acks, stop)) for _ in range(2)),
        threading.Thread(target=_publisher, args=(hub, acks, stop, clis)),
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + STREAM_SECONDS
    while time.monotonic() < deadline:
        with acks.lock:
            enough = len(acks.documents) >= WANT_DOCUMENTS and len(acks.instances) >= WANT_INSTANCES
            enough = enough and len(acks.published) >= 1
        if enough and _registered_manifests(store) >= WANT_PUBLISHED:
            break
        time.sleep(0.1)
    assert hub.process is not None
    group = hub.process.pid
    with acks.lock:
        print(
            f"kill after {STREAM_SECONDS - (deadline - time.monotonic()):.1f} s: "
            f"{len(acks.documents)} documents, "
            f"{len(acks.instances)} instances, {len(acks.published)} publish-study, "
            f"{_registered_manifests(store)} manifests"
        )
    hub.stop(signal.SIGKILL)
    for proc in clis:  # the operator's publish-study dies with the machine
        if proc.poll() is None:
            proc.kill()
    stop.set()
    for t in threads:
        t.join(60)
    store.close()
    with acks.lock:
        documents, instances, published = dict(acks.documents), dict(acks.instances), set(acks.published)
    assert len(documents) >= 10 and len(instances) >= 9, (len(documents), len(instances))

    wait_for_group_exit(group)
    hub.start()
    store = hub_stores(hub)
    try:
        _check_documents(hub, store, documents, tmp_path)
        _check_instances(store, instances)
        manifests = _check_manifests(store, published)
        # The restarted hub's study publisher may still be writing a manifest: stop every writer
        # before checking what the sweep leaves (a blob written after the sweep is not its orphan).
        assert hub.process is not None
        restarted = hub.process.pid
        hub.stop(signal.SIGKILL)
        wait_for_group_exit(restarted)
        swept = _check_sweep(store)
    finally:
        store.close()
    record_fault(
        "Crash (SIGKILL of the process group)",
        f"mid-stream: 2 ITI-41 + 2 C-STORE + RAD-68 publisher + publish-study CLI ({db_backend})",
        "every acknowledged item whole after restart; orphans swept",
        f"{len(documents)} documents, {len(instances)} instances, {manifests} manifests whole; "
        f"{swept} orphan blobs swept",
        backend=db_backend,
    )


def _check_documents(hub: Hub, store: Stores, documents: dict[str, str], tmp_path: Path) -> None:
    with XdsClient(
        repository_url=hub.url("/xds/repository"), registry_url=hub.url("/xds/registry")
    ) as client:
        uids = sorted(documents)
        for start in range(0, len(uids), 25):
            batch = uids[start : start + 25]
            result = client.retrieve([DocumentRequest(REPOSITORY_ID, u) for u in batch], tmp_path / "out")
            assert (result.status_name, result.errors) == ("Success", [])
            assert {d.unique_id: d.sha1 for d in result.documents} == {u: documents[u] for u in batch}
            for d in result.documents:
                d.path.unlink()
    assert isinstance(store.blobs, FsBlobStore)
    with store.engine.connect() as conn:
        entries = {
            r.unique_id: r
            for r in conn.execute(
                select(document_entry.c.unique_id, document_entry.c.hash, document_entry.c.size).where(
                    document_entry.c.repository_unique_id == REPOSITORY_ID
                )
            )
        }
        rows = {r.unique_id: r for r in conn.execute(select(repository_document))}
    assert set(documents) <= set(entries)
    for uid, sha1 in documents.items():
        assert entries[uid].hash == sha1, uid
    # Every registry entry of this repository has its document; every document its whole blob.
    assert set(entries) == set(rows)
    for uid, row in rows.items():
        assert content_exists(store, row.blob_key), f"{uid}: blob missing"
        data = read_content(store, row.blob_key)
        assert (hashlib.sha1(data).hexdigest(), len(data)) == (row.hash, row.size), f"{uid}: blob differs"
        assert (entries[uid].hash, entries[uid].size) == (row.hash, row.size), uid


def _check_instances(store: Stores, instances: dict[str, str]) -> None:
    assert isinstance(store.blobs, FsBlobStore)
    with store.engine.connect() as conn:
        rows = {r.sop_instance_uid: r for r in conn.execute(select(dicom_instance))}
    assert set(instances) <= set(rows), sorted(set(instances) - set(rows))[:3]
    for uid, row in rows.items():
        assert store.blobs.exists(row.blob_key), f"instance {uid}: blob missing"
        with store.blobs.open(row.blob_key) as stream:
            data = stream.read()
        assert len(data) == row.size, uid
        if uid in instances:
            assert hashlib.sha256(data[row.dataset_offset :]).hexdigest() == instances[uid], uid


def _check_manifests(store: Stores, published: set[str]) -> int:
    assert isinstance(store.blobs, FsBlobStore)
    with store.engine.connect() as conn:
        manifests = conn.execute(
            select(imaging_manifest).where(imaging_manifest.c.status == "registered")
        ).all()
        held = set(conn.execute(select(dicom_instance.c.sop_instance_uid)).scalars())
        registered = {
            r.unique_id: r
            for r in conn.execute(
                select(repository_document).where(
                    repository_document.c.unique_id.in_([m.kos_uid for m in manifests])
                )
            )
        }
    assert published <= {m.study_uid for m in manifests}, "a publish-study that exited 0 left no manifest"
    for m in manifests:
        row = registered.get(m.kos_uid)
        assert row is not None, f"manifest {m.kos_uid} registered without its document"
        kos = parse_kos(read_content(store, row.blob_key))
        listed = {sop for series in kos.studies.get(m.study_uid, {}).values() for _, sop in series}
        assert listed and listed <= held, f"manifest {m.kos_uid} lists instances the hub lacks"
        assert len(listed) == m.instance_count
    return len(manifests)


def _check_sweep(store: Stores) -> int:
    assert isinstance(store.blobs, FsBlobStore)
    report = sweep_orphans(store, grace_seconds=0, now=time.time() + 1)
    keys = content_keys(store)
    with store.engine.connect() as conn:
        assert referenced_keys(conn, keys) == set(keys), "an unreferenced blob survived the sweep"
        referenced = set(conn.execute(select(repository_document.c.blob_key)).scalars())
        referenced |= set(conn.execute(select(dicom_instance.c.blob_key)).scalars())
    assert referenced <= set(keys), "the sweep removed a referenced blob"
    assert not any(store.blobs.tmp.iterdir()), "temporary files left after the sweep"
    return int(report.deleted + report.tmp_removed)
