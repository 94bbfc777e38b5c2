"""End to end on a running hub: DICOM in (DCMTK storescu), PIX feed, KOS published by RAD-68
semantics, images out by RAD-69 at /xdsi/source and WADO-RS, `xds-hub fetch-study`."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pytest
import requests
from lxml import etree
from pydicom import dcmread

from tests.hubproc import Hub
from tests.imaging_helpers import (
    DCMTK,
    Study,
    dcmtk,
    encoded_dataset,
    file_dataset_bytes,
    make_study,
    parse_multipart,
    write_files,
)
from tests.pix_support import ack_code, adt, cx, send
from xds_hub import ns
from xds_hub.client.imaging import find_manifests, rad69_request, retrieve_images
from xds_hub.client.soap import SoapEndpoint
from xds_hub.client.xds import DocumentRequest, XdsClient
from xds_hub.domain.vocabulary import ResponseStatus, SoapAction
from xds_hub.imaging.kos import Kos, parse_kos

pytestmark = pytest.mark.skipif(not DCMTK, reason="DCMTK (Debian package dcmtk) is not installed")

AFFINITY = "1.3.6.1.4.1.21367.13.20.1000"
HOPA = "1.2.3.100"
SOURCE_ID = "1.3.6.1.4.1.21367.13.80.2"  # imaging_source_unique_id of tests/hubproc.py


@dataclass
class Published:
    study: Study
    files: list[Path]
    patient: str
    kos: Kos


def _store(hub: Hub, folder: Path, calling: str = "HOPA_CT") -> None:
    r = dcmtk(
        "storescu", "-aet", calling, "-aec", "XDSHUB", "127.0.0.1", str(hub.dicom_port), "+sd", str(folder)
    )
    assert r.returncode == 0, r.stderr


def _link(hub: Hub, local_id: str) -> str:
    affinity = f"AFF{local_id}"
    reply = send(hub.mllp_port, adt("A01", cx(local_id, HOPA), cx(affinity, AFFINITY)))
    assert ack_code(reply) == "AA"
    return cx(affinity, AFFINITY)


def _client(hub: Hub) -> XdsClient:
    return XdsClient(registry_url=hub.url("/xds/registry"), repository_url=hub.url("/xds/repository"))


def _manifest(hub: Hub, patient: str, tmp: Path) -> Kos:
    with _client(hub) as client:
        entries = find_manifests(client, patient)
        assert len(entries) == 1
        got = client.retrieve(
            [DocumentRequest(entries[0].repository_unique_id or "", entries[0].unique_id)], tmp
        )
    assert got.ok, got.errors
    return parse_kos(got.documents[0].path.read_bytes())


@pytest.fixture(scope="module")
def published(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Published:
    tmp_path = tmp_path_factory.mktemp("published")
    local = f"L{int(time.time() * 1000) % 10**9}"
    study = make_study(n_series=2, per_series=3, patient_id=local)
    files = write_files(study.instances, tmp_path / "sent")
    patient = _link(hub, local)
    _store(hub, tmp_path / "sent")
    out = hub.cli("publish-study", study.study_uid)  # or the quiet time already did
    assert "published" in out.stdout or "up-to-date" in out.stdout
    return Published(study, files, patient, _manifest(hub, patient, tmp_path / "kos"))


def _sent(p: Published) -> dict[str, bytes]:
    return {dcmread(f, stop_before_pixels=True).SOPInstanceUID: file_dataset_bytes(f) for f in p.files}


def test_rad69_retrieves_the_study_byte_for_byte(hub: Hub, published: Published, tmp_path: Path) -> None:
    assert published.kos.studies.keys() == {published.study.study_uid}
    endpoint = SoapEndpoint(hub.url("/xdsi/source"))
    files, errors, status = retrieve_images(
        endpoint, published.kos, published.study.study_uid, tmp_path / "out"
    )
    assert status == ResponseStatus.SUCCESS and errors == []
    got = {dcmread(f, stop_before_pixels=True).SOPInstanceUID: file_dataset_bytes(f) for f in files}
    assert got == _sent(published)


def _rad69(hub: Hub, body: etree._Element) -> etree._Element:
    return SoapEndpoint(hub.url("/xdsi/source")).call(SoapAction.RAD69, body, mtom=True).body


def _errors(resp: etree._Element) -> list[tuple[str, str]]:
    return [(e.get("errorCode", ""), e.get("location", "")) for e in resp.iter(ns.qn(ns.RS, "RegistryError"))]


def _status(resp: etree._Element) -> str:
    return resp.find(ns.qn(ns.RS, "RegistryResponse")).get("status")  # type: ignore[union-attr]


def test_rad69_unknown_instance_is_partial_success_xds_missing_document(
    hub: Hub, published: Published
) -> None:
    body = rad69_request(published.kos, published.study.study_uid, ["1.2.840.10008.1.2.1"])
    series = body.find(f"{ns.qn(ns.XDSI, 'StudyRequest')}/{ns.qn(ns.XDSI, 'SeriesRequest')}")
    assert series is not None
    extra = etree.SubElement(series, ns.qn(ns.XDSB, "DocumentRequest"))
    etree.SubElement(extra, ns.qn(ns.XDSB, "RepositoryUniqueId")).text = SOURCE_ID
    etree.SubElement(extra, ns.qn(ns.XDSB, "DocumentUniqueId")).text = "1.2.3.4.5.6.7.8.9"
    resp = _rad69(hub, body)
    assert _status(resp) == ResponseStatus.PARTIAL_SUCCESS
    assert _errors(resp) == [("XDSDocumentUniqueIdError", "1.2.3.4.5.6.7.8.9")]
    assert len(resp.findall(ns.qn(ns.XDSB, "DocumentResponse"))) == 6


def test_rad69_all_unknown_is_failure(hub: Hub, published: Published) -> None:
    study_uid = published.study.study_uid
    kos = Kos(
        "", "", "", None, (), (), None, {study_uid: {"1.2.3": [("1.2", "9.8.7")]}}, {"1.2.3": SOURCE_ID}
    )
    resp = _rad69(hub, rad69_request(kos, study_uid, ["1.2.840.10008.1.2.1"]))
    assert _status(resp) == ResponseStatus.FAILURE
    assert _errors(resp) == [("XDSDocumentUniqueIdError", "9.8.7")]


def test_rad69_other_source_is_xds_unknown_repository_id(hub: Hub, published: Published) -> None:
    study_uid = published.study.study_uid
    series_uid, refs = next(iter(published.kos.studies[study_uid].items()))
    kos = Kos(
        "", "", "", None, (), (), None, {study_uid: {series_uid: refs[:1]}}, {series_uid: "1.2.3.4.999"}
    )
    resp = _rad69(hub, rad69_request(kos, study_uid, ["1.2.840.10008.1.2.1"]))
    assert _errors(resp) == [("XDSUnknownRepositoryId", refs[0][1])]


def test_rad69_transfer_syntaxes_honoured(hub: Hub, published: Published, tmp_path: Path) -> None:
    study_uid = published.study.study_uid
    endpoint = SoapEndpoint(hub.url("/xdsi/source"))
    files, errors, _ = retrieve_images(
        endpoint, published.kos, study_uid, tmp_path / "impl", ["1.2.840.10008.1.2"]
    )
    assert errors == [] and len(files) == 6
    pixels = {ds.SOPInstanceUID: ds.PixelData for ds in published.study.instances}
    for f in files:
        ds = dcmread(f)
        assert (
            ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
            and ds.PixelData == pixels[ds.SOPInstanceUID]
        )
    resp = _rad69(hub, rad69_request(published.kos, study_uid, ["1.2.840.10008.1.2.4.50"]))
    assert _status(resp) == ResponseStatus.FAILURE
    assert {code for code, _ in _errors(resp)} == {"XDSRepositoryError"}


def test_rad69_request_without_transfer_syntaxes_is_xdsi_request_error(
    hub: Hub, published: Published
) -> None:
    body = rad69_request(published.kos, published.study.study_uid, [])
    resp = _rad69(hub, body)
    assert _status(resp) == ResponseStatus.FAILURE and [c for c, _ in _errors(resp)] == ["XDSIRequestError"]


def test_wado_rs_from_the_running_hub(hub: Hub, published: Published) -> None:
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    url = hub.url(f"/dicomweb/studies/{published.study.study_uid}")
    r = requests.get(url, timeout=60, headers={"Accept": accept})
    assert r.status_code == 200
    parts = parse_multipart(r.content, r.headers["Content-Type"])
    got = {dcmread(BytesIO(c), stop_before_pixels=True).SOPInstanceUID: encoded_dataset(c) for _h, c in parts}
    assert got == _sent(published)


def test_fetch_study_cli_writes_the_images(hub: Hub, published: Published, tmp_path: Path) -> None:
    out = tmp_path / "fetched"
    cmd = [
        sys.executable,
        "-m",
        "xds_hub",
        "fetch-study",
        "--patient",
        published.patient,
        "--to",
        str(out),
        "--url",
        hub.base_url,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    written = sorted(out.rglob("*.dcm"))
    assert len(written) == 6
    got = {dcmread(f, stop_before_pixels=True).SOPInstanceUID: file_dataset_bytes(f) for f in written}
    assert got == _sent(published)
    assert all(f.parent.parent.name == published.study.study_uid for f in written)


def test_rad68_quiet_time_publishes_without_the_cli(hub: Hub, tmp_path: Path) -> None:
    local = f"Q{int(time.time() * 1000) % 10**9}"
    study = make_study(n_series=1, per_series=2, patient_id=local)
    write_files(study.instances, tmp_path / "sent")
    patient = _link(hub, local)
    _store(hub, tmp_path / "sent")
    deadline = time.monotonic() + 30
    with _client(hub) as client:
        while time.monotonic() < deadline:
            if find_manifests(client, patient):
                break
            time.sleep(0.5)
        else:
            pytest.fail("the study was not published after its quiet time")


def test_rad68_unknown_patient_is_kept_and_reported(hub: Hub, tmp_path: Path) -> None:
    study = make_study(n_series=1, per_series=1, patient_id=f"U{int(time.time() * 1000) % 10**9}")
    write_files(study.instances, tmp_path / "sent")
    _store(hub, tmp_path / "sent")
    result = hub.cli("publish-study", study.study_uid, check=False)
    assert result.returncode == 1 and "unresolved" in result.stderr
    listed = hub.cli("studies", "--problems").stdout
    assert study.study_uid in listed and "no registered affinity-domain ID" in listed
    # the study is kept: it can be queried and retrieved over DICOM
    found = dcmtk(
        "findscu",
        "-S",
        "-aet",
        "HOPB_MR",
        "-aec",
        "XDSHUB",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={study.study_uid}",
        "127.0.0.1",
        str(hub.dicom_port),
    )
    assert found.returncode == 0
