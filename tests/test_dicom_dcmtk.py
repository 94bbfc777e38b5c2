"""The DICOM services of a running hub driven by DCMTK's storescu / findscu / movescu / getscu."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from tests.hubproc import Hub
from tests.imaging_helpers import DCMTK, dcmtk, file_dataset_bytes, make_study, storage_scp, write_files

pytestmark = pytest.mark.skipif(not DCMTK, reason="DCMTK (Debian package dcmtk) is not installed")


def _store(hub: Hub, folder: Path, calling: str = "HOPA_CT") -> None:
    result = dcmtk(
        "storescu", "-aet", calling, "-aec", "XDSHUB", "127.0.0.1", str(hub.dicom_port), "+sd", str(folder)
    )
    assert result.returncode == 0, result.stderr


def test_dicom_dcmtk_storescu_findscu_getscu_round_trip(hub: Hub, tmp_path: Path) -> None:
    study = make_study(n_series=2, per_series=3)
    paths = write_files(study.instances, tmp_path / "in")
    _store(hub, tmp_path / "in")

    out = tmp_path / "find"
    out.mkdir()
    found = dcmtk(
        "findscu",
        "-S",
        "-aet",
        "HOPB_MR",
        "-aec",
        "XDSHUB",
        "-X",
        "-od",
        str(out),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"PatientID={study.patient_id}",
        "-k",
        "StudyInstanceUID",
        "-k",
        "NumberOfStudyRelatedInstances",
        "-k",
        "ModalitiesInStudy",
        "127.0.0.1",
        str(hub.dicom_port),
    )
    assert found.returncode == 0, found.stderr
    responses = [dcmread(p) for p in sorted(out.iterdir())]
    assert [r.StudyInstanceUID for r in responses] == [study.study_uid]
    assert int(responses[0].NumberOfStudyRelatedInstances) == 6

    got = tmp_path / "get"
    got.mkdir()
    result = dcmtk(
        "getscu",
        "-S",
        "-aet",
        "CLIC_WS",
        "-aec",
        "XDSHUB",
        "-od",
        str(got),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={study.study_uid}",
        "127.0.0.1",
        str(hub.dicom_port),
    )
    assert result.returncode == 0, result.stderr
    sent = {dcmread(p, stop_before_pixels=True).SOPInstanceUID: file_dataset_bytes(p) for p in paths}
    received = {
        dcmread(p, stop_before_pixels=True).SOPInstanceUID: file_dataset_bytes(p) for p in got.iterdir()
    }
    assert received == sent  # byte for byte: no transcoding was asked for


def test_dicom_dcmtk_movescu_to_configured_node(hub: Hub, tmp_path: Path) -> None:
    study = make_study(n_series=1, per_series=4)
    paths = write_files(study.instances, tmp_path / "in")
    _store(hub, tmp_path / "in", calling="HOPB_MR")
    with storage_scp(hub.node_ports["CLIC_PORT"], "CLIC_WS") as received:
        result = dcmtk(
            "movescu",
            "-S",
            "-aet",
            "HOPA_PACS",
            "-aec",
            "XDSHUB",
            "-aem",
            "CLIC_WS",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={study.study_uid}",
            "127.0.0.1",
            str(hub.dicom_port),
        )
    assert result.returncode == 0, result.stderr
    sent = {dcmread(p, stop_before_pixels=True).SOPInstanceUID: file_dataset_bytes(p) for p in paths}
    assert {uid: data for uid, (_ts, data) in received.instances.items()} == sent


def test_dicom_dcmtk_movescu_unknown_destination_is_refused(hub: Hub) -> None:
    result = dcmtk(
        "movescu",
        "-S",
        "-aet",
        "HOPA_PACS",
        "-aec",
        "XDSHUB",
        "-aem",
        "NOWHERE",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "StudyInstanceUID=1.2.3.4",
        "127.0.0.1",
        str(hub.dicom_port),
    )
    assert result.returncode != 0
    assert "Refused: MoveDestinationUnknown" in result.stderr  # status A801


def test_dicom_dcmtk_storescu_from_unknown_ae_is_rejected(hub: Hub, tmp_path: Path) -> None:
    write_files(make_study(n_series=1, per_series=1).instances, tmp_path / "in")
    result = dcmtk(
        "storescu",
        "-aet",
        "INTRUDER",
        "-aec",
        "XDSHUB",
        "127.0.0.1",
        str(hub.dicom_port),
        "+sd",
        str(tmp_path / "in"),
    )
    assert result.returncode != 0
    assert "Calling AE Title Not Recognized" in result.stderr
