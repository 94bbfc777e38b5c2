"""An XDS-I.b Imaging Document Consumer (RAD TF-1 18.1): find a patient's manifests (ITI-18
FindDocuments with the KOS formatCode), read them (ITI-43), retrieve the images they list
(RAD-69 Retrieve Imaging Document Set) and write them as DICOM Part-10 files.

Each RAD-69 request carries one study (all its series); the instances stream from the response
into files, never held in memory.  Files land as ``DIR/<Study UID>/<Series UID>/<SOP UID>.dcm``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests
from lxml import etree

from xds_hub import ns
from xds_hub.client.mtom import PartHeaders, PartSink, strip_cid
from xds_hub.client.soap import SoapEndpoint, XdsClientError
from xds_hub.client.xds import (
    DocumentRequest,
    RegistryError,
    ResponseError,
    XdsClient,
    _HashingFileSink,
    registry_result,
)
from xds_hub.domain.metadata import DocumentEntry
from xds_hub.domain.vocabulary import KOS_FORMAT_CODE, KOS_FORMAT_SCHEME, SoapAction, Status, StoredQuery
from xds_hub.imaging.kos import Kos, KosError, parse_kos

#: Transfer syntaxes offered by default: Explicit and Implicit VR Little Endian, as stored if either.
DEFAULT_TRANSFER_SYNTAXES = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")


@dataclass
class FetchReport:
    """What :func:`fetch_study` did."""

    manifests: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    errors: list[RegistryError] = field(default_factory=list)
    status: str = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"

    @property
    def ok(self) -> bool:
        return not any(e.is_error for e in self.errors)


def _i(local: str) -> str:
    return ns.qn(ns.XDSI, local)


def _b(local: str) -> str:
    return ns.qn(ns.XDSB, local)


def rad69_request(kos: Kos, study_uid: str, transfer_syntaxes: Sequence[str]) -> etree._Element:
    """iherad:RetrieveImagingDocumentSetRequest for every instance the manifest lists in ``study_uid``."""
    root = etree.Element(_i("RetrieveImagingDocumentSetRequest"), nsmap={"iherad": ns.XDSI, "xdsb": ns.XDSB})
    study = etree.SubElement(root, _i("StudyRequest"), studyInstanceUID=study_uid)
    for series_uid, refs in kos.studies[study_uid].items():
        series = etree.SubElement(study, _i("SeriesRequest"), seriesInstanceUID=series_uid)
        location = kos.retrieve_locations.get(series_uid) or ""
        for _sop_class, sop_uid in refs:
            doc = etree.SubElement(series, _b("DocumentRequest"))
            etree.SubElement(doc, _b("RepositoryUniqueId")).text = location
            etree.SubElement(doc, _b("DocumentUniqueId")).text = sop_uid
    syntaxes = etree.SubElement(root, _i("TransferSyntaxUIDList"))
    for ts in transfer_syntaxes:
        etree.SubElement(syntaxes, _i("TransferSyntaxUID")).text = ts
    return root


def retrieve_images(
    endpoint: SoapEndpoint,
    kos: Kos,
    study_uid: str,
    out_dir: Path,
    transfer_syntaxes: Sequence[str] = DEFAULT_TRANSFER_SYNTAXES,
    on_download: Callable[[int], None] | None = None,
) -> tuple[list[Path], list[RegistryError], str]:
    """RAD-69 for one study of a manifest; the files written, the RegistryErrors and the status."""
    where = {sop: series for series, refs in kos.studies[study_uid].items() for _c, sop in refs}
    out_dir.mkdir(parents=True, exist_ok=True)
    sinks: dict[str, _HashingFileSink] = {}

    def open_attachment(part: PartHeaders) -> PartSink:
        sink = _HashingFileSink(out_dir / f".rad69-part-{len(sinks)}-{os.getpid()}", on_download)
        sinks[part.content_id] = sink
        return sink

    written: list[Path] = []
    try:
        reply = endpoint.call(
            SoapAction.RAD69,
            rad69_request(kos, study_uid, transfer_syntaxes),
            mtom=True,
            open_attachment=open_attachment,
        )
        resp = reply.body
        if resp is None or resp.tag != _b("RetrieveDocumentSetResponse"):
            raise ResponseError("the Imaging Document Source did not answer a RetrieveDocumentSetResponse")
        registry_response = resp.find(ns.qn(ns.RS, "RegistryResponse"))
        if registry_response is None:
            raise ResponseError("RetrieveDocumentSetResponse has no rs:RegistryResponse")
        result = registry_result(registry_response)
        for doc in resp.iterchildren(_b("DocumentResponse")):
            sop = (doc.findtext(_b("DocumentUniqueId")) or "").strip()
            include = doc.find(f"{_b('Document')}/{ns.qn(ns.XOP, 'Include')}")
            sink = sinks.get(strip_cid(include.get("href", ""))) if include is not None else None
            if sink is None or sop not in where:
                raise ResponseError(f"instance {sop} is not an MTOM part of the response or not asked for")
            sink.close()
            target = out_dir / study_uid / where[sop] / f"{_safe(sop)}.dcm"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(sink.path, target)
            written.append(target)
    finally:
        for sink in sinks.values():
            sink.close()
            sink.path.unlink(missing_ok=True)
    return written, result.errors, result.status


def _safe(uid: str) -> str:
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in uid)[:200] or "instance"


def find_manifests(client: XdsClient, patient_id: str) -> list[DocumentEntry]:
    """ITI-18 FindDocuments: the patient's approved KOS manifests."""
    params: dict[str, str | int | Sequence[str | int]] = {
        "$XDSDocumentEntryPatientId": patient_id,
        "$XDSDocumentEntryStatus": [str(Status.APPROVED)],
        "$XDSDocumentEntryFormatCode": [f"{KOS_FORMAT_CODE}^^{KOS_FORMAT_SCHEME}"],
    }
    result = client.query(StoredQuery.FIND_DOCUMENTS, params)
    if not result.ok:
        detail = "; ".join(f"{e.code}: {e.context}" for e in result.errors) or result.status
        raise XdsClientError(f"FindDocuments failed: {detail}")
    return result.documents


def fetch_study(
    base_url: str,
    patient_id: str,
    to_dir: Path,
    *,
    study_uid: str | None = None,
    transfer_syntaxes: Sequence[str] = DEFAULT_TRANSFER_SYNTAXES,
    registry_url: str | None = None,
    repository_url: str | None = None,
    source_url: str | None = None,
    timeout: float = 300.0,
    verify: bool | str = True,
    on_download: Callable[[int], None] | None = None,
) -> FetchReport:
    """Fetch every study (or ``study_uid``) published for ``patient_id`` into ``to_dir``.

    ``base_url`` is the hub (``http://host:8080``); the three endpoint URLs default to its paths.
    """
    base = base_url.rstrip("/")
    session = requests.Session()
    client = XdsClient(
        registry_url=registry_url or f"{base}/xds/registry",
        repository_url=repository_url or f"{base}/xds/repository",
        session=session,
        timeout=timeout,
        verify=verify,
    )
    source = SoapEndpoint(
        source_url or f"{base}/xdsi/source", session=session, timeout=timeout, verify=verify
    )
    report = FetchReport()
    try:
        for entry in find_manifests(client, patient_id):
            with tempfile.TemporaryDirectory(prefix="xds-hub-kos-") as tmp:
                got = client.retrieve(
                    [
                        DocumentRequest(
                            entry.repository_unique_id or "", entry.unique_id, entry.home_community_id
                        )
                    ],
                    Path(tmp),
                )
                report.errors.extend(got.errors)
                if not got.documents:
                    continue
                try:
                    kos = parse_kos(got.documents[0].path.read_bytes())
                except KosError as exc:
                    report.errors.append(RegistryError("XDSRepositoryError", str(exc), entry.unique_id))
                    continue
            report.manifests.append(entry.unique_id)
            for uid in kos.studies:
                if study_uid and uid != study_uid:
                    continue
                written, errors, status = retrieve_images(
                    source, kos, uid, to_dir, transfer_syntaxes, on_download
                )
                report.files.extend(written)
                report.errors.extend(errors)
                if status != report.status and "Success" not in status.rsplit(":", 1)[-1]:
                    report.status = status
    finally:
        client.close()
    return report
