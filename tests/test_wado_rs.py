"""WADO-RS and QIDO-RS at /dicomweb (DICOM PS3.18 8, 10.4, 10.6) over both database backends."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from PIL import Image
from pydicom import dcmread
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom.dsutils import encode

from tests.imaging_helpers import (
    Study,
    encoded_dataset,
    ingest,
    make_study,
    parse_multipart,
    region_settings,
    sample_file,
)
from xds_hub.config import Settings
from xds_hub.storage.stores import Stores
from xds_hub.web import create_app

DICOM_ANY = 'multipart/related; type="application/dicom"; transfer-syntax=*'


@pytest.fixture
def region(tmp_path: Path) -> Settings:
    return region_settings(tmp_path / "data")


@pytest.fixture
def client(region: Settings, stores: Stores) -> Iterator[FlaskClient]:
    yield create_app(region, stores).test_client()


@pytest.fixture
def study(region: Settings, stores: Stores) -> Study:
    s = make_study(n_series=2, per_series=2, patient_id="WEB-1")
    ingest(stores, region, s.instances)
    return s


def _sent(study: Study) -> dict[str, bytes]:
    return {ds.SOPInstanceUID: encode(ds, False, True) for ds in study.instances}


def _instances_of(response: object) -> dict[str, bytes]:
    parts = parse_multipart(response.data, response.headers["Content-Type"])  # type: ignore[attr-defined]
    out = {}
    for headers, content in parts:
        assert headers["content-type"].startswith("application/dicom")
        out[dcmread(BytesIO(content), stop_before_pixels=True).SOPInstanceUID] = encoded_dataset(content)
    return out


def test_wado_rs_study_is_returned_byte_for_byte(client: FlaskClient, study: Study) -> None:
    r = client.get(f"/dicomweb/studies/{study.study_uid}", headers={"Accept": DICOM_ANY})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith('multipart/related; type="application/dicom"')
    assert _instances_of(r) == _sent(study)


def test_wado_rs_default_syntax_is_explicit_vr_little_endian(client: FlaskClient, study: Study) -> None:
    r = client.get(f"/dicomweb/studies/{study.study_uid}")  # no Accept: */*
    assert r.status_code == 200 and "transfer-syntax=1.2.840.10008.1.2.1" in r.headers["Content-Type"]
    assert _instances_of(r) == _sent(study)


def test_wado_rs_series_and_instance(client: FlaskClient, study: Study) -> None:
    series_uid, items = next(iter(study.series.items()))
    r = client.get(f"/dicomweb/studies/{study.study_uid}/series/{series_uid}", headers={"Accept": DICOM_ANY})
    assert set(_instances_of(r)) == {ds.SOPInstanceUID for ds in items}
    sop = items[0].SOPInstanceUID
    r = client.get(
        f"/dicomweb/studies/{study.study_uid}/series/{series_uid}/instances/{sop}",
        headers={"Accept": DICOM_ANY},
    )
    assert list(_instances_of(r)) == [sop]


def test_wado_rs_transcodes_to_the_requested_syntax(client: FlaskClient, study: Study) -> None:
    accept = f'multipart/related; type="application/dicom"; transfer-syntax={ImplicitVRLittleEndian}'
    r = client.get(f"/dicomweb/studies/{study.study_uid}", headers={"Accept": accept})
    assert r.status_code == 200
    parts = parse_multipart(r.data, r.headers["Content-Type"])
    pixels = {ds.SOPInstanceUID: ds.PixelData for ds in study.instances}
    for _headers, content in parts:
        ds = dcmread(BytesIO(content))
        assert ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
        assert ds.PixelData == pixels[ds.SOPInstanceUID]


def test_wado_rs_decompresses_rle_for_the_default_syntax(
    client: FlaskClient, region: Settings, stores: Stores
) -> None:
    rle = dcmread(sample_file("MR_small_RLE.dcm"))
    ingest(stores, region, [rle])
    r = client.get(f"/dicomweb/studies/{rle.StudyInstanceUID}")
    assert r.status_code == 200
    ((_, content),) = parse_multipart(r.data, r.headers["Content-Type"])
    got = dcmread(BytesIO(content))
    assert got.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    rle.decompress(generate_instance_uid=False)
    assert got.PixelData == rle.PixelData and got.SOPInstanceUID == rle.SOPInstanceUID
    as_stored = client.get(f"/dicomweb/studies/{rle.StudyInstanceUID}", headers={"Accept": DICOM_ANY})
    ((_, raw),) = parse_multipart(as_stored.data, as_stored.headers["Content-Type"])
    assert dcmread(BytesIO(raw)).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"


def test_wado_rs_unproducible_syntax_is_406(client: FlaskClient, study: Study) -> None:
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    r = client.get(f"/dicomweb/studies/{study.study_uid}", headers={"Accept": accept})
    assert r.status_code == 406 and "error" in r.get_json()
    assert (
        client.get(f"/dicomweb/studies/{study.study_uid}", headers={"Accept": "text/html"}).status_code == 406
    )


def test_wado_rs_unknown_study_is_404(client: FlaskClient) -> None:
    r = client.get("/dicomweb/studies/1.2.3.4.5.6")
    assert r.status_code == 404 and r.is_json


def test_wado_rs_metadata_and_bulkdata(client: FlaskClient, study: Study) -> None:
    r = client.get(f"/dicomweb/studies/{study.study_uid}/metadata")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/dicom+json"
    objects = r.get_json()
    assert len(objects) == 4
    first = objects[0]
    assert first["0020000D"]["Value"] == [study.study_uid]
    assert first["00100010"]["Value"] == [{"Alphabetic": "Doe^Jane"}]
    uri = first["7FE00010"]["BulkDataURI"]
    sop = first["00080018"]["Value"][0]
    bulk = client.get(uri.replace("http://localhost", ""))
    ((_, data),) = parse_multipart(bulk.data, bulk.headers["Content-Type"])
    assert data == next(ds.PixelData for ds in study.instances if ds.SOPInstanceUID == sop)


def _instance_path(study: Study) -> tuple[str, bytes]:
    series_uid, items = next(iter(study.series.items()))
    ds = items[0]
    return (
        f"/dicomweb/studies/{study.study_uid}/series/{series_uid}/instances/{ds.SOPInstanceUID}",
        ds.PixelData,
    )


def test_wado_rs_rendered_jpeg_and_png(client: FlaskClient, study: Study) -> None:
    path, _ = _instance_path(study)
    r = client.get(path + "/rendered")
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg"
    assert Image.open(BytesIO(r.data)).size == (32, 32)
    r = client.get(path + "/rendered", headers={"Accept": "image/png"})
    assert r.headers["Content-Type"] == "image/png" and Image.open(BytesIO(r.data)).format == "PNG"
    r = client.get(path + "/rendered?viewport=16,16&window=1000,500")
    assert Image.open(BytesIO(r.data)).size == (16, 16)
    assert client.get(path + "/rendered", headers={"Accept": "application/pdf"}).status_code == 406


def test_wado_rs_frames(client: FlaskClient, study: Study) -> None:
    path, pixels = _instance_path(study)
    r = client.get(path + "/frames/1")
    assert r.status_code == 200
    ((headers, data),) = parse_multipart(r.data, r.headers["Content-Type"])
    assert headers["content-type"] == "application/octet-stream" and data == pixels
    assert client.get(path + "/frames/2").status_code == 400
    assert client.get(path + "/frames/x").status_code == 400
    rendered = client.get(path + "/frames/1/rendered")
    assert rendered.headers["Content-Type"] == "image/jpeg"


def test_qido_rs_studies_series_instances(
    client: FlaskClient, study: Study, region: Settings, stores: Stores
) -> None:
    other = make_study(n_series=1, per_series=1, patient_id="WEB-2")
    ingest(stores, region, other.instances)
    studies = client.get("/dicomweb/studies?PatientID=WEB-1").get_json()
    assert [s["0020000D"]["Value"][0] for s in studies] == [study.study_uid]
    assert studies[0]["00201208"]["Value"] == [4]
    assert studies[0]["00081190"]["Value"][0].endswith(f"/dicomweb/studies/{study.study_uid}")
    by_tag = client.get("/dicomweb/studies?00100020=WEB-*&limit=1&offset=1").get_json()
    assert len(by_tag) == 1
    series = client.get(f"/dicomweb/studies/{study.study_uid}/series").get_json()
    assert {s["0020000E"]["Value"][0] for s in series} == set(study.series)
    assert {s["00080060"]["Value"][0] for s in series} == {"CT", "MR"}
    insts = client.get(
        f"/dicomweb/instances?StudyInstanceUID={study.study_uid}&SOPClassUID=1.2.840.10008.5.1.4.1.1.2"
    )
    assert len(insts.get_json()) == 4
    assert client.get("/dicomweb/studies?PatientID=NOBODY").get_json() == []
    assert client.get("/dicomweb/studies?NoSuchAttribute=1").status_code == 400
    assert client.get("/dicomweb/studies?limit=-1").status_code == 400


def test_wado_uri_dicom_and_jpeg(client: FlaskClient, study: Study) -> None:
    series_uid, items = next(iter(study.series.items()))
    ds = items[0]
    uids = f"studyUID={study.study_uid}&seriesUID={series_uid}&objectUID={ds.SOPInstanceUID}"
    q = f"/wado?requestType=WADO&{uids}"
    r = client.get(q + "&contentType=application/dicom")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/dicom"
    assert encoded_dataset(r.data) == encode(ds, False, True)
    jpeg = client.get(q)  # PS3.18 9.1.2.1.5: image/jpeg by default
    assert jpeg.headers["Content-Type"] == "image/jpeg" and Image.open(BytesIO(jpeg.data)).format == "JPEG"
    small = client.get(q + "&rows=8&columns=8&windowCenter=1000&windowWidth=2000")
    assert Image.open(BytesIO(small.data)).size == (8, 8)
    implicit = client.get(q + "&contentType=application/dicom&transferSyntax=1.2.840.10008.1.2")
    assert dcmread(BytesIO(implicit.data)).file_meta.TransferSyntaxUID == ImplicitVRLittleEndian


def test_wado_uri_bad_requests(client: FlaskClient, study: Study) -> None:
    series_uid, items = next(iter(study.series.items()))
    base = f"studyUID={study.study_uid}&seriesUID={series_uid}&objectUID={items[0].SOPInstanceUID}"
    assert client.get(f"/wado?{base}").status_code == 400  # no requestType
    assert client.get(f"/wado?requestType=WADO&studyUID={study.study_uid}").status_code == 400
    assert client.get(f"/wado?requestType=WADO&{base}&anonymize=yes").status_code == 400
    assert client.get(f"/wado?requestType=WADO&{base}&contentType=text/plain").status_code == 406
    unknown = "/wado?requestType=WADO&studyUID=1.2&seriesUID=1.3&objectUID=1.4"
    assert client.get(unknown).status_code == 404
