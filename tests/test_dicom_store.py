"""C-STORE SCP (DICOM PS3.4 Annex B): durable ingest, index, statuses of bad input (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, _config
from sqlalchemy import func, select

from tests.imaging_helpers import (
    encoded_dataset,
    file_dataset_bytes,
    make_instance,
    make_study,
    region_settings,
    running_actor,
    sample_file,
    send,
)
from xds_hub.config import Settings
from xds_hub.imaging.dimse import DicomActor
from xds_hub.imaging.tables import dicom_instance, dicom_series, dicom_study
from xds_hub.storage.stores import Stores


@pytest.fixture
def region(tmp_path: Path) -> Settings:
    return region_settings(tmp_path / "data")


@pytest.fixture
def actor(region: Settings, stores: Stores) -> Iterator[DicomActor]:
    with running_actor(region, stores) as a:
        yield a


def _store_audits(stores: Stores, outcome: int, want: int = 1, timeout: float = 10) -> list[tuple[str, str]]:
    """(patient ids, description) of the C-STORE audit messages (Instances Transferred, create) with
    ``outcome``, polled until ``want`` are recorded (the recorder writes every 0.2 s, off the path)."""
    import time

    from xds_hub.audit.tables import audit_patient, audit_record

    deadline = time.monotonic() + timeout
    while True:
        with stores.engine.connect() as conn:
            rows = conn.execute(
                select(audit_record.c.id, audit_record.c.outcome_description).where(
                    audit_record.c.event_id == "110104",
                    audit_record.c.action == "C",
                    audit_record.c.outcome == outcome,
                )
            ).all()
            found = [
                (
                    " ".join(
                        conn.execute(
                            select(audit_patient.c.patient_id).where(audit_patient.c.record_id == rid)
                        ).scalars()
                    ),
                    str(why or ""),
                )
                for rid, why in rows
            ]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _count(stores: Stores, table: object) -> int:
    with stores.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_dicom_echo_answers_success(actor: DicomActor, region: Settings) -> None:
    ae = AE(ae_title="HOPA_CT")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", region.dicom_port, ae_title="XDSHUB")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


def test_dicom_association_rejects_unknown_calling_ae(actor: DicomActor, region: Settings) -> None:
    ae = AE(ae_title="STRANGER")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", region.dicom_port, ae_title="XDSHUB")
    assert assoc.is_rejected
    # PS3.8 Table 9-21: rejected-permanent (1), service-user (1), calling AE title not recognized (3)
    rj = assoc.acceptor.primitive
    assert (rj.result, rj.result_source, rj.diagnostic) == (0x01, 0x01, 0x03)


def test_dicom_association_rejects_wrong_called_ae(actor: DicomActor, region: Settings) -> None:
    ae = AE(ae_title="HOPA_CT")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", region.dicom_port, ae_title="NOT_THE_HUB")
    assert assoc.is_rejected
    assert assoc.acceptor.primitive.diagnostic == 0x07  # called AE title not recognized


def test_dicom_cstore_indexes_study_series_and_instances(
    actor: DicomActor, region: Settings, stores: Stores
) -> None:
    study = make_study(n_series=2, per_series=3, patient_id="PAT-42", issuer="HOPA")
    assert send(region.dicom_port, study.instances) == [0] * 6
    with stores.engine.connect() as conn:
        row = conn.execute(select(dicom_study).where(dicom_study.c.study_uid == study.study_uid)).one()
        series = conn.execute(select(dicom_series).where(dicom_series.c.study_uid == study.study_uid)).all()
        insts = conn.execute(
            select(dicom_instance).where(dicom_instance.c.study_uid == study.study_uid)
        ).all()
    assert row.patient_id == "PAT-42" and row.issuer == "HOPA"
    assert row.patient_name == "Doe^Jane" and row.accession == study.accession
    assert row.establishment == "Hopital A" and row.calling_ae == "HOPA_CT"
    assert row.study_date == "20240115" and row.state == "receiving"
    assert sorted(s.modality for s in series) == ["CT", "MR"]
    assert len(insts) == 6 and {i.rows for i in insts} == {32}
    assert all(i.transfer_syntax == "1.2.840.10008.1.2.1" for i in insts)


def test_dicom_cstore_keeps_the_data_set_as_received(
    actor: DicomActor, region: Settings, stores: Stores
) -> None:
    ds = make_instance()
    assert send(region.dicom_port, [ds]) == [0]
    with stores.engine.connect() as conn:
        inst = conn.execute(
            select(dicom_instance).where(dicom_instance.c.sop_instance_uid == ds.SOPInstanceUID)
        ).one()
    with stores.blobs.open(inst.blob_key) as fp:
        stored = fp.read()
    from pynetdicom.dsutils import encode

    assert encoded_dataset(stored) == encode(ds, False, True)
    back = dcmread(stores.blobs.open(inst.blob_key))
    assert back.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert back.file_meta.SourceApplicationEntityTitle == "HOPA_CT"
    assert back.PixelData == ds.PixelData


@pytest.mark.parametrize(
    "name",
    ["MR_small_RLE.dcm", "JPEG2000.dcm", "SC_rgb_jpeg_gdcm.dcm", "image_dfl.dcm", "MR_small_bigendian.dcm"],
)
def test_dicom_cstore_keeps_compressed_syntaxes_as_received(
    actor: DicomActor, region: Settings, stores: Stores, name: str
) -> None:
    path = sample_file(name)
    ds = dcmread(path)
    ds.StudyInstanceUID = ds.get("StudyInstanceUID") or generate_uid()
    ds.SeriesInstanceUID = ds.get("SeriesInstanceUID") or generate_uid()
    assert send(region.dicom_port, [ds]) == [0]
    with stores.engine.connect() as conn:
        inst = conn.execute(
            select(dicom_instance).where(dicom_instance.c.sop_instance_uid == ds.SOPInstanceUID)
        ).one()
    assert inst.transfer_syntax == ds.file_meta.TransferSyntaxUID
    stored = dcmread(stores.blobs.open(inst.blob_key))
    assert stored.PixelData == ds.PixelData  # encapsulated fragments untouched


def test_dicom_cstore_duplicate_is_idempotent(actor: DicomActor, region: Settings, stores: Stores) -> None:
    ds = make_instance()
    assert send(region.dicom_port, [ds, ds]) == [0, 0]
    assert send(region.dicom_port, [ds]) == [0]
    with stores.engine.connect() as conn:
        n = conn.execute(
            select(func.count()).where(dicom_instance.c.sop_instance_uid == ds.SOPInstanceUID)
        ).scalar_one()
    assert n == 1


def test_dicom_cstore_without_study_uid_fails_a900_and_stores_nothing(
    actor: DicomActor, region: Settings, stores: Stores
) -> None:
    ds = make_instance()
    del ds.StudyInstanceUID
    before = _count(stores, dicom_instance)
    # PS3.4 Table B.2-1: A900 "Error: Data Set does not match SOP Class"
    assert send(region.dicom_port, [ds]) == [0xA900]
    assert _count(stores, dicom_instance) == before
    assert _count(stores, dicom_study) == 0
    # ITI-20: the refusal is audited (serious failure), the instance named, no study to name
    [(patients, why)] = _store_audits(stores, outcome=8)
    assert patients == ""
    assert why.startswith("1 instance(s) refused, data set unreadable: " + ds.SOPInstanceUID), why


def _send_raw(port: int, path: Path) -> Dataset:
    """C-STORE the bytes of a Part-10 file exactly as they are (no decoding by pynetdicom)."""
    ae = AE(ae_title="HOPA_CT")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", ["1.2.840.10008.1.2.1"])
    assoc = ae.associate("127.0.0.1", port, ae_title="XDSHUB")
    assert assoc.is_established
    old = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        return assoc.send_c_store(path)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = old
        assoc.release()


def test_dicom_cstore_corrupt_stream_fails_c000_and_stores_nothing(
    actor: DicomActor, region: Settings, stores: Stores, tmp_path: Path
) -> None:
    ds = make_instance()
    good = tmp_path / "good.dcm"
    ds.save_as(good, enforce_file_format=True)
    data = good.read_bytes()
    offset = len(data) - len(file_dataset_bytes(good))
    # a data element whose length runs far past the end of the data set
    corrupt = data[:offset] + b"\x08\x00\x05\x00CS\xff\x7f" + b"ISO_IR 100" + data[offset + 18 : offset + 60]
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(corrupt)
    rsp = _send_raw(region.dicom_port, bad)
    assert rsp.Status == 0xC000  # PS3.4 Table B.2-1: "Error: Cannot understand"
    assert _count(stores, dicom_instance) == 0
    # the association survives and the next good instance is kept
    assert send(region.dicom_port, [ds]) == [0]


def test_dicom_cstore_mismatched_affected_sop_instance_fails_a900(
    actor: DicomActor, region: Settings, stores: Stores, tmp_path: Path
) -> None:
    ds = make_instance()
    path = tmp_path / "x.dcm"
    ds.save_as(path, enforce_file_format=True)
    data = bytearray(path.read_bytes())
    wrong = generate_uid()[: len(ds.SOPInstanceUID)].ljust(len(ds.SOPInstanceUID), "9")
    meta_end = len(data) - len(file_dataset_bytes(path))
    data[:meta_end] = data[:meta_end].replace(ds.SOPInstanceUID.encode(), wrong.encode())
    path.write_bytes(bytes(data))
    assert _send_raw(region.dicom_port, path).Status == 0xA900
    assert _count(stores, dicom_instance) == 0
    # ITI-20: audited as a serious failure under the study's patient, with the reason
    [(patients, why)] = _store_audits(stores, outcome=8)
    assert patients.startswith(ds.PatientID + "^^^"), patients
    assert why.startswith("1 instance(s) refused: the data set's SOP Class/Instance UID"), why
    assert _store_audits(stores, outcome=0, want=0) == []
