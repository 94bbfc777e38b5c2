"""The XDS-I.b manifest (DICOM KOS, PS3.3 A.35.4; RAD TF-3 4.68.4.1.2.2): the public sample parses
and validates with the code that checks RAD-68 submissions; each disagreement between a KOS and its
DocumentEntry is XDSRepositoryMetadataError."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread

from xds_hub.domain.metadata import Code, DocumentEntry
from xds_hub.errors import ErrorCode
from xds_hub.imaging.kos import (
    ManifestStudy,
    ReferencedSeries,
    build_kos,
    check_kos_against_metadata,
    is_kos_entry,
    kos_problems,
    parse_kos,
)

SAMPLE = (
    Path(__file__).resolve().parents[1].parent / "shared" / "oracle" / "samples" / "xdsi" / "kos-sample.dcm"
)
KOS_FORMAT = Code("1.2.840.10008.5.1.4.1.1.88.59", "1.2.840.10008.2.6.1")


def _sample() -> bytes:
    if not SAMPLE.exists():
        pytest.skip("the public KOS sample is not available")
    return SAMPLE.read_bytes()


def _entry(**changes: object) -> DocumentEntry:
    base = DocumentEntry(
        entry_uuid="urn:uuid:2b7d5a3b-8a4f-4f0e-9f6c-0d0e8a3f1c11",
        unique_id="2.25.264096862221500429694988291417299542916",
        patient_id="IDC-1^^^&1.3.6.1.4.1.21367.13.20.1000&ISO",
        mime_type="application/dicom",
        format_code=KOS_FORMAT,
        source_patient_id="IDCDEPT001-a^^^&1.3.6.1.4.1.21367.13.20.3000&ISO",
        reference_ids=(
            "IDC001-a^^^&1.3.6.1.4.1.21367.13.20.3000&ISO^urn:ihe:iti:xds:2013:accession",
            "1.3.6.1.4.1.21367.201599.1.201604021948007^^^^urn:ihe:iti:xds:2016:studyInstanceUID",
        ),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_kos_public_sample_parses_and_is_a_valid_manifest() -> None:
    kos = parse_kos(_sample())
    assert kos_problems(kos) == []
    assert kos.title == ("113030", "DCM")
    assert kos.accessions == ("IDC001-a",)
    assert kos.studies == {
        "1.3.6.1.4.1.21367.201599.1.201604021948007": {
            "1.3.6.1.4.1.21367.201599.2.201604021948008": [
                ("1.2.840.10008.5.1.4.1.1.1", "1.3.6.1.4.1.21367.201599.3.201604021948008.1")
            ]
        }
    }
    assert kos.retrieve_locations == {
        "1.3.6.1.4.1.21367.201599.2.201604021948008": "1.3.6.1.4.1.21367.102.1.1"
    }


def test_kos_public_sample_agrees_with_matching_metadata() -> None:
    assert is_kos_entry(_entry())
    assert check_kos_against_metadata(_sample(), _entry()) == []
    assert check_kos_against_metadata(BytesIO(_sample()), _entry()) == []


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"unique_id": "1.2.3.4"}, "is not the KOS SOP Instance UID"),
        ({"mime_type": "application/octet-stream"}, "must have mimeType application/dicom"),
        (
            {"source_patient_id": "OTHER^^^&1.3.6.1.4.1.21367.13.20.3000&ISO"},
            "does not match the KOS Patient ID",
        ),
        ({"reference_ids": ("9.9.9^^^^urn:ihe:iti:xds:2016:studyInstanceUID",)}, "does not reference"),
        ({"reference_ids": ("NOPE^^^&1.2.3&ISO^urn:ihe:iti:xds:2013:accession",)}, "does not carry"),
    ],
)
def test_rad68_kos_disagreeing_with_metadata_is_repository_metadata_error(
    changes: dict[str, object], fragment: str
) -> None:
    problems = check_kos_against_metadata(_sample(), _entry(**changes))
    assert len(problems) == 1
    assert problems[0].code is ErrorCode.REPOSITORY_METADATA_ERROR
    assert fragment in problems[0].context and problems[0].location == _entry().entry_uuid


def test_rad68_document_that_is_not_dicom_is_repository_metadata_error() -> None:
    problems = check_kos_against_metadata(b"%PDF-1.4 not a manifest", _entry())
    assert [p.code for p in problems] == [ErrorCode.REPOSITORY_METADATA_ERROR]
    assert "not a readable DICOM" in problems[0].context


def test_rad68_dicom_image_is_not_a_manifest() -> None:
    from tests.imaging_helpers import make_instance

    buf = BytesIO()
    image = make_instance()
    image.save_as(buf, enforce_file_format=True)
    problems = check_kos_against_metadata(buf.getvalue(), _entry(unique_id=image.SOPInstanceUID))
    text = " | ".join(p.context for p in problems)
    assert "not Key Object Selection Document" in text and "Current Requested Procedure Evidence" in text


def test_rad68_kos_without_retrieve_location_is_rejected() -> None:
    ds = dcmread(BytesIO(_sample()))
    del ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].RetrieveLocationUID
    buf = BytesIO()
    ds.save_as(buf)
    problems = check_kos_against_metadata(buf.getvalue(), _entry())
    assert [p.code for p in problems] == [ErrorCode.REPOSITORY_METADATA_ERROR]
    assert "Retrieve Location UID" in problems[0].context


def test_kos_built_by_the_hub_round_trips() -> None:
    study = ManifestStudy(
        study_uid="1.2.3.1",
        patient_id="LOC-1",
        issuer="HOPA",
        patient_authority="1.2.3.100",
        patient_name="Doe^Jane",
        accession="ACC-9",
        accession_issuer="1.2.3.100",
        study_date="20240101",
        study_time="101010",
    )
    series = [
        ReferencedSeries("1.2.3.1.1", (("1.2.840.10008.5.1.4.1.1.2", "1.2.3.1.1.1"),)),
        ReferencedSeries("1.2.3.1.2", (("1.2.840.10008.5.1.4.1.1.88.22", "1.2.3.1.2.1"),)),
    ]
    data = build_kos(
        study,
        series,
        kos_uid="2.25.1",
        kos_series_uid="2.25.2",
        retrieve_location_uid="1.2.3.4.6",
        retrieve_ae_title="XDSHUB",
        when=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    kos = parse_kos(data)
    assert kos_problems(kos) == []
    assert (
        kos.patient_id == "LOC-1"
        and kos.patient_authorities == ("1.2.3.100",)
        and kos.accessions == ("ACC-9",)
    )
    ds = dcmread(BytesIO(data))
    assert ds.ContentDate == "20240102" and ds.Modality == "KO"
    assert [i.ValueType for i in ds.ContentSequence] == ["IMAGE", "COMPOSITE"]
    assert ds.ReferencedRequestSequence[0].AccessionNumber == "ACC-9"
    entry = _entry(
        unique_id="2.25.1",
        source_patient_id="LOC-1^^^&1.2.3.100&ISO",
        reference_ids=(
            "ACC-9^^^&1.2.3.100&ISO^urn:ihe:iti:xds:2013:accession",
            "1.2.3.1^^^^urn:ihe:iti:xds:2016:studyInstanceUID",
        ),
    )
    assert check_kos_against_metadata(data, entry) == []
