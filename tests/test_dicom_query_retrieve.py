"""C-FIND, C-MOVE and C-GET SCP (DICOM PS3.4 Annex C), Patient Root and Study Root, with pynetdicom."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless
from pynetdicom import AE, build_role, evt

from tests.imaging_helpers import (
    Study,
    free_port,
    make_study,
    region_settings,
    running_actor,
    sample_file,
    send,
    storage_scp,
)
from xds_hub.config import Settings
from xds_hub.imaging.dimse import DicomActor
from xds_hub.storage.stores import Stores

PATIENT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
PATIENT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_GET = "1.2.840.10008.5.1.4.1.2.2.3"
CT, MR = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"


@pytest.fixture
def ports() -> dict[str, int]:
    return {"HOPA_PORT": free_port(), "HOPB_PORT": free_port(), "CLIC_PORT": free_port()}


@pytest.fixture
def region(tmp_path: Path, ports: dict[str, int]) -> Settings:
    return region_settings(tmp_path / "data", node_ports=ports)


@pytest.fixture
def actor(region: Settings, stores: Stores) -> Iterator[DicomActor]:
    with running_actor(region, stores) as a:
        yield a


@pytest.fixture
def loaded(actor: DicomActor, region: Settings) -> tuple[Study, Study]:
    first = make_study(n_series=2, per_series=2, patient_id="QR-1", study_date="20240110")
    second = make_study(
        n_series=1, per_series=3, patient_id="QR-2", study_date="20240320", patient_name="Martin^Paul"
    )
    assert send(region.dicom_port, first.instances + second.instances) == [0] * 7
    return first, second


def _find(port: int, model: str, query: Dataset, calling: str = "HOPB_MR") -> tuple[list[Dataset], int]:
    ae = AE(ae_title=calling)
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", port, ae_title="XDSHUB")
    assert assoc.is_established
    matches: list[Dataset] = []
    final = -1
    for status, identifier in assoc.send_c_find(query, model):
        if status.Status in (0xFF00, 0xFF01):
            matches.append(identifier)
        else:
            final = int(status.Status)
    assoc.release()
    return matches, final


def _query(level: str, **keys: Any) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(ds, k, v)
    return ds


def test_dicom_cfind_study_root_study_level(loaded: tuple[Study, Study], region: Settings) -> None:
    first, _ = loaded
    q = _query(
        "STUDY",
        StudyInstanceUID="",
        PatientID="QR-1",
        PatientName="",
        ModalitiesInStudy="",
        NumberOfStudyRelatedInstances="",
        AccessionNumber="",
        StudyDate="",
    )
    matches, status = _find(region.dicom_port, STUDY_FIND, q)
    assert status == 0x0000
    assert [m.StudyInstanceUID for m in matches] == [first.study_uid]
    m = matches[0]
    assert m.PatientName == "Doe^Jane" and m.AccessionNumber == first.accession
    assert list(m.ModalitiesInStudy) == ["CT", "MR"] and int(m.NumberOfStudyRelatedInstances) == 4
    assert m.RetrieveAETitle == "XDSHUB" and m.QueryRetrieveLevel == "STUDY"


def test_dicom_cfind_wildcard_date_range_and_uid_list(loaded: tuple[Study, Study], region: Settings) -> None:
    first, second = loaded
    wild = _find(region.dicom_port, STUDY_FIND, _query("STUDY", StudyInstanceUID="", PatientName="mart*"))[0]
    assert [m.StudyInstanceUID for m in wild] == [second.study_uid]
    ranged = _find(
        region.dicom_port, STUDY_FIND, _query("STUDY", StudyInstanceUID="", StudyDate="20240301-")
    )[0]
    assert [m.StudyInstanceUID for m in ranged] == [second.study_uid]
    listed = _find(
        region.dicom_port,
        STUDY_FIND,
        _query("STUDY", StudyInstanceUID=f"{first.study_uid}\\{second.study_uid}"),
    )[0]
    assert {m.StudyInstanceUID for m in listed} == {first.study_uid, second.study_uid}
    q = _query("STUDY", StudyInstanceUID="", ModalitiesInStudy="MR", PatientID="QR-*")
    modality = _find(region.dicom_port, STUDY_FIND, q)[0]
    assert [m.StudyInstanceUID for m in modality] == [first.study_uid]


def test_dicom_cfind_series_and_image_levels(loaded: tuple[Study, Study], region: Settings) -> None:
    first, _ = loaded
    series = _find(
        region.dicom_port,
        STUDY_FIND,
        _query(
            "SERIES",
            StudyInstanceUID=first.study_uid,
            SeriesInstanceUID="",
            Modality="",
            NumberOfSeriesRelatedInstances="",
        ),
    )[0]
    assert {s.SeriesInstanceUID for s in series} == set(first.series)
    assert {s.Modality for s in series} == {"CT", "MR"}
    assert all(int(s.NumberOfSeriesRelatedInstances) == 2 for s in series)
    series_uid = next(iter(first.series))
    images = _find(
        region.dicom_port,
        STUDY_FIND,
        _query(
            "IMAGE",
            StudyInstanceUID=first.study_uid,
            SeriesInstanceUID=series_uid,
            SOPInstanceUID="",
            SOPClassUID="",
            InstanceNumber="",
        ),
    )[0]
    assert [i.SOPInstanceUID for i in images] == [ds.SOPInstanceUID for ds in first.series[series_uid]]
    assert all(i.SOPClassUID == CT for i in images)


def test_dicom_cfind_patient_root_patient_level(loaded: tuple[Study, Study], region: Settings) -> None:
    matches, status = _find(
        region.dicom_port, PATIENT_FIND, _query("PATIENT", PatientID="QR-*", PatientName="")
    )
    assert status == 0
    assert sorted((m.PatientID, str(m.PatientName)) for m in matches) == [
        ("QR-1", "Doe^Jane"),
        ("QR-2", "Martin^Paul"),
    ]


def test_dicom_cfind_patient_level_in_study_root_fails_a900(
    loaded: tuple[Study, Study], region: Settings
) -> None:
    matches, status = _find(region.dicom_port, STUDY_FIND, _query("PATIENT", PatientID="QR-1"))
    assert matches == [] and status == 0xA900  # PS3.4 Table C.4-1: Identifier does not match SOP Class


def test_dicom_cfind_unknown_level_fails_a900(loaded: tuple[Study, Study], region: Settings) -> None:
    assert _find(region.dicom_port, PATIENT_FIND, _query("FRAME", PatientID="QR-1"))[1] == 0xA900


def _move(port: int, model: str, query: Dataset, destination: str) -> tuple[int, Dataset]:
    ae = AE(ae_title="HOPB_MR")
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", port, ae_title="XDSHUB")
    assert assoc.is_established
    last: Dataset | None = None
    for status, _identifier in assoc.send_c_move(query, destination, model):
        last = status
    assoc.release()
    assert last is not None
    return int(last.Status), last


def test_dicom_cmove_study_to_configured_node(
    loaded: tuple[Study, Study], region: Settings, ports: dict[str, int]
) -> None:
    first, _ = loaded
    with storage_scp(ports["HOPB_PORT"], "HOPB_PACS") as received:
        status, rsp = _move(
            region.dicom_port, STUDY_MOVE, _query("STUDY", StudyInstanceUID=first.study_uid), "HOPB_PACS"
        )
    assert status == 0x0000 and rsp.NumberOfCompletedSuboperations == 4
    assert set(received.instances) == {ds.SOPInstanceUID for ds in first.instances}
    assert set(received.calling) == {"XDSHUB"}
    sent = {ds.SOPInstanceUID: ds.PixelData for ds in first.instances}
    from io import BytesIO

    from pydicom.filereader import read_dataset

    for uid, (ts, data) in received.instances.items():
        assert ts == ExplicitVRLittleEndian
        assert read_dataset(BytesIO(data), False, True).PixelData == sent[uid]


def test_dicom_cmove_series_level_patient_root(
    loaded: tuple[Study, Study], region: Settings, ports: dict[str, int]
) -> None:
    first, _ = loaded
    series_uid = next(iter(first.series))
    with storage_scp(ports["HOPA_PORT"], "HOPA_PACS") as received:
        q = _query("SERIES", PatientID="QR-1", StudyInstanceUID=first.study_uid, SeriesInstanceUID=series_uid)
        status, _ = _move(region.dicom_port, PATIENT_MOVE, q, "HOPA_PACS")
    assert status == 0 and set(received.instances) == {ds.SOPInstanceUID for ds in first.series[series_uid]}


def test_dicom_cmove_unknown_destination_fails_a801(loaded: tuple[Study, Study], region: Settings) -> None:
    first, _ = loaded
    status, _ = _move(
        region.dicom_port, STUDY_MOVE, _query("STUDY", StudyInstanceUID=first.study_uid), "NOWHERE"
    )
    assert status == 0xA801  # PS3.4 Table C.4-2: Refused, Move Destination unknown


def _get(port: int, query: Dataset, syntaxes: list[str]) -> tuple[int, dict[str, tuple[str, Dataset]]]:
    received: dict[str, tuple[str, Dataset]] = {}

    def on_store(event: evt.Event) -> int:
        ds = event.dataset
        received[str(ds.SOPInstanceUID)] = (str(event.context.transfer_syntax), ds)
        return 0

    ae = AE(ae_title="CLIC_WS")
    ae.add_requested_context(STUDY_GET)
    roles = []
    for sop in (CT, MR):
        ae.add_requested_context(sop, syntaxes)
        roles.append(build_role(sop, scp_role=True))
    assoc = ae.associate(
        "127.0.0.1", port, ae_title="XDSHUB", ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    assert assoc.is_established
    last = None
    for status, _ in assoc.send_c_get(query, STUDY_GET):
        last = status
    assoc.release()
    assert last is not None
    return int(last.Status), received


def test_dicom_cget_study(loaded: tuple[Study, Study], region: Settings) -> None:
    _, second = loaded
    status, received = _get(
        region.dicom_port, _query("STUDY", StudyInstanceUID=second.study_uid), [ExplicitVRLittleEndian]
    )
    assert status == 0
    assert {uid: ds.PixelData for uid, (_, ds) in received.items()} == {
        ds.SOPInstanceUID: ds.PixelData for ds in second.instances
    }


def test_dicom_cget_transcodes_when_stored_syntax_not_accepted(actor: DicomActor, region: Settings) -> None:
    from pydicom import dcmread

    rle = dcmread(sample_file("MR_small_RLE.dcm"))
    assert send(region.dicom_port, [rle]) == [0]
    status, received = _get(
        region.dicom_port,
        _query("STUDY", StudyInstanceUID=rle.StudyInstanceUID),
        [ExplicitVRLittleEndian, ImplicitVRLittleEndian],
    )
    assert status == 0
    ts, ds = received[rle.SOPInstanceUID]
    assert ts in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
    rle.decompress(generate_instance_uid=False)
    assert ds.PixelData == rle.PixelData
    # and as stored when the SCU accepts RLE
    status, received = _get(
        region.dicom_port, _query("STUDY", StudyInstanceUID=rle.StudyInstanceUID), [RLELossless]
    )
    assert status == 0 and received[rle.SOPInstanceUID][0] == RLELossless


def test_dicom_cget_without_unique_key_fails_a900(loaded: tuple[Study, Study], region: Settings) -> None:
    status, received = _get(
        region.dicom_port, _query("SERIES", StudyInstanceUID=loaded[0].study_uid), [ExplicitVRLittleEndian]
    )
    assert status == 0xA900 and received == {}
