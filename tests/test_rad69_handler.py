"""RAD-69 handler in process: a 1,000-instance study is answered with parts that stream from the
blob store (no instance held in memory), and bad requests get their error codes."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from lxml import etree
from pydicom.uid import generate_uid

from tests.imaging_helpers import ingest, make_instance, region_settings
from xds_hub import ns
from xds_hub.client.imaging import rad69_request
from xds_hub.domain.vocabulary import ResponseStatus, SoapAction
from xds_hub.imaging import rad69
from xds_hub.imaging.kos import Kos
from xds_hub.soap.types import SoapRequest
from xds_hub.storage.stores import Stores


def _kos(study: str, series: str, sops: list[str], location: str) -> Kos:
    return Kos(
        "",
        "",
        "",
        None,
        (),
        (),
        None,
        {study: {series: [("1.2.840.10008.5.1.4.1.1.2", s) for s in sops]}},
        {series: location},
    )


def test_rad69_1000_instances_stream_from_the_blob_store(tmp_path: Path, stores: Stores) -> None:
    settings = region_settings(tmp_path / "data")
    study, series = generate_uid(), generate_uid()
    instances = [
        make_instance(study_uid=study, series_uid=series, number=i, size=16, seed=i) for i in range(1000)
    ]
    ingest(stores, settings, instances)
    body = rad69_request(
        _kos(
            study, series, [ds.SOPInstanceUID for ds in instances], settings.domain.imaging_source_unique_id
        ),
        study,
        ["1.2.840.10008.1.2.1"],
    )
    tracemalloc.start()
    response = rad69.handle(SoapRequest(action=SoapAction.RAD69, body=body), stores, settings)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert response.mtom and len(response.attachments) == 1000
    assert all(
        a.key and a.data is None and a.content_type == "application/dicom" for a in response.attachments
    )
    assert peak < 16 * 1024 * 1024  # metadata only: the instances stay in the blob store
    status = response.body.find(ns.qn(ns.RS, "RegistryResponse"))
    assert status is not None and status.get("status") == ResponseStatus.SUCCESS


def test_rad69_not_a_rad69_request_is_a_soap_fault(tmp_path: Path, stores: Stores) -> None:
    import pytest

    from xds_hub.errors import SoapFault

    with pytest.raises(SoapFault):
        rad69.handle(
            SoapRequest(action=SoapAction.RAD69, body=etree.Element("x")), stores, region_settings(tmp_path)
        )


def test_rad69_study_without_series_is_xdsi_request_error(tmp_path: Path, stores: Stores) -> None:
    root = etree.Element(ns.qn(ns.XDSI, "RetrieveImagingDocumentSetRequest"))
    etree.SubElement(root, ns.qn(ns.XDSI, "StudyRequest"), studyInstanceUID="1.2.3")
    response = rad69.handle(
        SoapRequest(action=SoapAction.RAD69, body=root), stores, region_settings(tmp_path)
    )
    errors = [e.get("errorCode") for e in response.body.iter(ns.qn(ns.RS, "RegistryError"))]
    assert errors == ["XDSIRequestError"]
