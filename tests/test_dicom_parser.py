"""The ingest parser (xds_hub.imaging.dicomfile): index attributes of any data set, and property
tests: on arbitrary bytes it returns a value or raises the project's ParseError, nothing else."""

from __future__ import annotations

import contextlib
from io import BytesIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pynetdicom.dsutils import encode

from tests.imaging_helpers import make_instance, sample_file
from xds_hub.errors import ParseError
from xds_hub.imaging.dicomfile import DatasetProblem, file_meta_bytes, read_attributes, read_file_meta

SYNTAXES = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.4.50",
]


def test_dicom_parser_reads_index_attributes_in_every_uncompressed_syntax() -> None:
    ds = make_instance(patient_id="P-1", issuer="HOPA", accession="A-1", modality="MR", number=7)
    for implicit, little in ((True, True), (False, True), (False, False)):
        data = encode(ds, implicit, little)
        ts = "1.2.840.10008.1.2" if implicit else ("1.2.840.10008.1.2.1" if little else "1.2.840.10008.1.2.2")
        attrs = read_attributes(data, ts)
        assert (attrs.patient_id, attrs.issuer, attrs.accession, attrs.modality) == (
            "P-1",
            "HOPA",
            "A-1",
            "MR",
        )
        assert (attrs.instance_number, attrs.rows, attrs.columns) == (7, 32, 32)
        assert attrs.sop_instance_uid == ds.SOPInstanceUID and attrs.study_uid == ds.StudyInstanceUID


@pytest.mark.parametrize("name", ["image_dfl.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "rtplan.dcm"])
def test_dicom_parser_reads_sample_files(name: str) -> None:
    data = sample_file(name).read_bytes()
    meta = read_file_meta(BytesIO(data))
    ds = dcmread(sample_file(name), stop_before_pixels=True)
    if "StudyInstanceUID" not in ds:
        with pytest.raises(DatasetProblem) as exc:
            read_attributes(data[meta.dataset_offset :], meta.transfer_syntax)
        assert exc.value.missing
        return
    attrs = read_attributes(data[meta.dataset_offset :], meta.transfer_syntax)
    assert attrs.sop_instance_uid == ds.SOPInstanceUID and attrs.study_uid == ds.StudyInstanceUID


def test_dicom_parser_decodes_specific_character_sets() -> None:
    ds = make_instance(patient_name="Müller^Jürgen")
    ds.SpecificCharacterSet = "ISO_IR 100"
    assert read_attributes(encode(ds, False, True), "1.2.840.10008.1.2.1").patient_name == "Müller^Jürgen"


def test_file_meta_round_trip() -> None:
    meta = file_meta_bytes("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5", "1.2.840.10008.1.2.1", "HOPA_CT")
    parsed = read_file_meta(BytesIO(meta + b"\x08\x00"))
    assert (parsed.sop_class_uid, parsed.sop_instance_uid, parsed.transfer_syntax) == (
        "1.2.840.10008.5.1.4.1.1.2",
        "1.2.3.4.5",
        "1.2.840.10008.1.2.1",
    )
    assert parsed.dataset_offset == len(meta)
    assert (
        dcmread(BytesIO(meta + encode(make_instance(), False, True))).file_meta.SourceApplicationEntityTitle
        == "HOPA_CT"
    )


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=512), ts=st.sampled_from(SYNTAXES))
def test_dicom_parser_never_fails_otherwise_on_random_bytes(data: bytes, ts: str) -> None:
    with contextlib.suppress(ParseError):
        read_attributes(data, ts)


_GOOD = encode(make_instance(), False, True)


# A flipped byte of Specific Character Set names an unknown or misspelt one, or of a value an unknown
# ISO 2022 escape sequence: pydicom's charset module warns and decodes with a default encoding.
@pytest.mark.filterwarnings("ignore::UserWarning:pydicom.charset")
@settings(max_examples=300, deadline=None)
@given(
    cut=st.integers(min_value=0, max_value=len(_GOOD)),
    flip=st.integers(min_value=0, max_value=len(_GOOD) - 1),
    value=st.integers(min_value=0, max_value=255),
)
def test_dicom_parser_on_damaged_data_sets(cut: int, flip: int, value: int) -> None:
    damaged = bytearray(_GOOD[:cut] if cut < len(_GOOD) // 2 else _GOOD)
    if flip < len(damaged):
        damaged[flip] = value
    with contextlib.suppress(ParseError):
        read_attributes(bytes(damaged), "1.2.840.10008.1.2.1")


@pytest.mark.parametrize("name", ["JPEG2000.dcm", "MR_small_RLE.dcm"])
def test_dicom_parser_refuses_a_data_set_cut_anywhere(name: str) -> None:
    """Cut inside Pixel Data (native or encapsulated) or between elements: "cannot understand"
    (C000 at the C-STORE, missing=False), never indexed as if whole."""
    native = {
        ts: encode(make_instance(size=64), ts == "1.2.840.10008.1.2", ts != "1.2.840.10008.1.2.2")
        for ts in SYNTAXES[:3]
    }
    data = sample_file(name).read_bytes()
    meta = read_file_meta(BytesIO(data))
    encapsulated = data[meta.dataset_offset :]
    cases = [(ts, whole) for ts, whole in native.items()] + [(meta.transfer_syntax, encapsulated)]
    for ts, whole in cases:
        read_attributes(whole, ts)  # whole: read
        for cut in (1, 2, 7, 100, len(whole) // 3):
            with pytest.raises(DatasetProblem) as exc:
                read_attributes(whole[: len(whole) - cut], ts)
            assert not exc.value.missing, (ts, cut)
