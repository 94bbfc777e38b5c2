"""C-STORE on the fast path of the hub's DICOM upper layer (xds_hub.imaging.dicomnet) and the
group-committed index (xds_hub.imaging.ingest): the C-STORE-RSP command set (PS3.7 9.3.1.2, E.1),
P-DATA-TF fragments (PS3.8 9.3.5, Annex E), what falls back to pynetdicom, PDVs that break a
message (A-ABORT), concurrent associations, and a dropped database connection (SQLite and
PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.uid import CTImageStorage, generate_uid
from pynetdicom import AE
from pynetdicom.dimse_messages import C_ECHO_RQ, C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.service_class import StorageServiceClass
from sqlalchemy import func, select, text

from tests.imaging_helpers import make_instance, make_study, region_settings, running_actor, send
from xds_hub.config import Settings
from xds_hub.imaging import ingest as ingest_module
from xds_hub.imaging.dicomfile import read_attributes
from xds_hub.imaging.dicomnet import parse_command_set, store_response_command
from xds_hub.imaging.dimse import DicomActor
from xds_hub.imaging.ingest import Ingest
from xds_hub.imaging.tables import dicom_instance
from xds_hub.storage.stores import Stores

EXPLICIT_LE = "1.2.840.10008.1.2.1"


@pytest.fixture
def region(tmp_path: Path) -> Settings:
    return region_settings(tmp_path / "data")


@pytest.fixture
def actor(region: Settings, stores: Stores) -> Iterator[DicomActor]:
    with running_actor(region, stores) as a:
        yield a


def _count(stores: Stores) -> int:
    with stores.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(dicom_instance)).scalar_one())


def _stored_dataset(stores: Stores, sop_uid: str) -> bytes:
    with stores.engine.connect() as conn:
        row = conn.execute(
            select(dicom_instance.c.blob_key, dicom_instance.c.dataset_offset).where(
                dicom_instance.c.sop_instance_uid == sop_uid
            )
        ).one()
    with stores.blobs.open(row.blob_key) as fp:
        return fp.read()[row.dataset_offset :]


def _count_pynetdicom_stores(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the C-STOREs served by pynetdicom's Storage service class (not by the fast path)."""
    seen: list[str] = []
    original = StorageServiceClass.SCP

    def spy(self: StorageServiceClass, req: Any, context: Any) -> None:
        seen.append(str(req.AffectedSOPInstanceUID))
        original(self, req, context)

    monkeypatch.setattr(StorageServiceClass, "SCP", spy)
    return seen


# ------------------------------------------------------------------------------------------ encoding


@pytest.mark.parametrize(
    ("status", "comment"), [(0x0000, ""), (0xA900, "the data set has no StudyInstanceUID (Type 1)")]
)
def test_dicom_cstore_rsp_command_set_is_what_pynetdicom_encodes(status: int, comment: str) -> None:
    sop_uid = generate_uid()
    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = 7
    rsp.AffectedSOPClassUID = CTImageStorage
    rsp.AffectedSOPInstanceUID = sop_uid
    rsp.Status = status
    if comment:
        rsp.ErrorComment = comment  # type: ignore[assignment]  # typed None in pynetdicom
    message = C_STORE_RSP()
    message.primitive_to_message(rsp)
    assert store_response_command(CTImageStorage, sop_uid, 7, status, comment) == encode(
        message.command_set, True, True
    )


def test_dicom_cstore_rq_command_set_is_read_back() -> None:
    sop_uid = generate_uid()
    req = C_STORE()
    req.MessageID = 3
    req.AffectedSOPClassUID = CTImageStorage
    req.AffectedSOPInstanceUID = sop_uid
    req.Priority = 2
    message = C_STORE_RQ()
    message.primitive_to_message(req)
    data = encode(message.command_set, True, True)
    assert data is not None
    elements = parse_command_set(data)
    assert elements is not None
    assert elements[0x0100] == b"\x01\x00"  # Command Field: C-STORE-RQ
    assert elements[0x0110] == b"\x03\x00"  # Message ID
    assert elements[0x1000].rstrip(b"\x00").decode() == sop_uid
    assert parse_command_set(data[:-3]) is None  # truncated inside an element
    assert parse_command_set(b"\x08\x00\x10\x00\x02\x00\x00\x00AB") is None  # not group 0000


@given(st.binary(max_size=300))
def test_dicom_command_set_parser_returns_elements_or_none(data: bytes) -> None:
    result = parse_command_set(data)
    assert result is None or all(isinstance(v, bytes) for v in result.values())


# ------------------------------------------------------------------------------------------ network


def test_dicom_cstore_fragmented_over_many_pdus_is_kept_whole(
    actor: DicomActor, region: Settings, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _count_pynetdicom_stores(monkeypatch)
    actor.ae.maximum_pdu_size = 1024  # the SCU sends P-DATA-TF PDUs of at most this size
    ds = make_instance(size=64)  # 8 KB of pixels: a dozen PDUs
    assert send(region.dicom_port, [ds]) == [0]
    assert _stored_dataset(stores, ds.SOPInstanceUID) == encode(ds, False, True)
    assert seen == []  # served by the fast path


def test_dicom_cstore_with_a_fragmented_command_set_goes_through_pynetdicom(
    actor: DicomActor, region: Settings, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _count_pynetdicom_stores(monkeypatch)
    actor.ae.maximum_pdu_size = 64  # the command set itself is split over several PDVs
    ds = make_instance(size=16)
    assert send(region.dicom_port, [ds]) == [0]
    assert seen == [ds.SOPInstanceUID]
    assert _stored_dataset(stores, ds.SOPInstanceUID) == encode(ds, False, True)


def test_dicom_echo_store_and_find_share_an_association(
    actor: DicomActor, region: Settings, stores: Stores
) -> None:
    study = make_study(n_series=1, per_series=3)
    ae = AE(ae_title="HOPA_CT")
    ae.add_requested_context("1.2.840.10008.1.1")
    ae.add_requested_context(CTImageStorage, [EXPLICIT_LE])
    ae.add_requested_context("1.2.840.10008.5.1.4.1.2.2.1")  # Study Root C-FIND
    assoc = ae.associate("127.0.0.1", region.dicom_port, ae_title="XDSHUB")
    assert assoc.is_established
    try:
        assert assoc.send_c_echo().Status == 0
        for ds in study.instances:
            assert assoc.send_c_store(ds).Status == 0
            assert assoc.send_c_echo().Status == 0
        from pydicom.dataset import Dataset

        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = study.study_uid
        query.NumberOfStudyRelatedInstances = ""
        answers = list(assoc.send_c_find(query, "1.2.840.10008.5.1.4.1.2.2.1"))
    finally:
        assoc.release()
    matches = [ident for status, ident in answers if status and status.Status == 0xFF00 and ident]
    assert len(matches) == 1 and int(matches[0].NumberOfStudyRelatedInstances) == 3
    assert answers[-1][0].Status == 0


def _p_data(context_id: int, control: int, data: bytes) -> P_DATA:
    primitive = P_DATA()
    pdv: Any = [context_id, bytes([control]) + data]
    primitive.presentation_data_value_list = [pdv]
    return primitive


def test_dicom_cstore_interrupted_by_another_command_aborts_and_stores_nothing(
    actor: DicomActor, region: Settings, stores: Stores
) -> None:
    ds = make_instance()
    ae = AE(ae_title="HOPA_CT")
    ae.add_requested_context(CTImageStorage, [EXPLICIT_LE])
    assoc = ae.associate("127.0.0.1", region.dicom_port, ae_title="XDSHUB")
    assert assoc.is_established
    context_id = assoc.accepted_contexts[0].context_id
    assert context_id is not None
    req = C_STORE()
    req.MessageID = 1
    req.AffectedSOPClassUID = CTImageStorage
    req.AffectedSOPInstanceUID = ds.SOPInstanceUID
    req.Priority = 2
    store = C_STORE_RQ()
    store.primitive_to_message(req)
    store.command_set.CommandDataSetType = 0x0001
    echo_req = C_ECHO()
    echo_req.MessageID = 2
    echo_req.AffectedSOPClassUID = "1.2.840.10008.1.1"
    echo = C_ECHO_RQ()
    echo.primitive_to_message(echo_req)
    data_set = encode(ds, False, True)
    store_command = encode(store.command_set, True, True)
    echo_command = encode(echo.command_set, True, True)
    assert data_set is not None and store_command is not None and echo_command is not None
    # PS3.8 Annex E: a command fragment in the middle of a data set breaks the message
    assoc.dul.send_pdu(_p_data(context_id, 0x03, store_command))
    assoc.dul.send_pdu(_p_data(context_id, 0x00, data_set[:100]))
    assoc.dul.send_pdu(_p_data(context_id, 0x03, echo_command))
    deadline = time.monotonic() + 10
    while not assoc.is_aborted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert assoc.is_aborted
    assert _count(stores) == 0
    assert send(region.dicom_port, [ds]) == [0]  # the listener carries on


def test_dicom_cstore_concurrent_associations_are_all_kept(
    actor: DicomActor, region: Settings, stores: Stores
) -> None:
    studies = [make_study(n_series=1, per_series=8) for _ in range(4)]
    shared = studies[0].instances[0]  # sent by every association: kept once
    results: dict[int, list[int]] = {}

    def push(k: int) -> None:
        results[k] = send(region.dicom_port, [*studies[k].instances, shared])

    threads = [threading.Thread(target=push, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(results[k] == [0] * 9 for k in range(4)), results
    assert _count(stores) == 32
    for study in studies:
        for ds in study.instances:
            assert _stored_dataset(stores, ds.SOPInstanceUID) == encode(ds, False, True)


def test_dicom_cstore_survives_a_dropped_database_connection(
    actor: DicomActor, region: Settings, stores: Stores, db_backend: str
) -> None:
    if db_backend != "postgresql":
        pytest.skip("a server-side disconnect needs PostgreSQL")
    first, second = make_instance(), make_instance()
    assert send(region.dicom_port, [first]) == [0]
    with stores.engine.connect() as conn:  # drop every other session, the kept ones included
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert send(region.dicom_port, [second]) == [0]
    assert _count(stores) == 2


# ------------------------------------------------------------------------------------------ index


def test_dicom_index_batch_with_a_vanished_blob_fails_that_instance_only(
    region: Settings, stores: Stores
) -> None:
    ingest = Ingest(stores, region)
    instances = make_study(n_series=1, per_series=3).instances
    jobs = []
    for n, ds in enumerate(instances):
        data = encode(ds, False, True)
        assert data is not None
        attrs = read_attributes(data, EXPLICIT_LE)
        writer = stores.blobs.writer()
        writer.write(data)
        info = writer.finish()
        if n == 1:
            stores.blobs.delete(info.key)  # swept between the write and the index transaction
        rows = ingest.rows("HOPA_CT", EXPLICIT_LE, attrs, info, 0, time.time_ns())
        jobs.append(ingest_module._Job(info.key, rows))
    ingest._indexer._run(jobs)  # one transaction for the three, as a leader would run them
    assert [job.done for job in jobs] == [True] * 3
    assert jobs[0].result() and jobs[2].result()
    with pytest.raises(OSError, match="vanished"):
        jobs[1].result()
    assert _count(stores) == 2
    ingest.close()
