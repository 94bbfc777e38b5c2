"""The XDS-I.b manifest: a DICOM Key Object Selection (KOS) document.

- :func:`build_kos`: the manifest of a study as the Imaging Document Source publishes it
  (PS3.3 A.35.4 Key Object Selection Document IOD, TID 2010; RAD TF-3 4.68.4.1.2.2): document
  title (113030, DCM, "Manifest"), the Current Requested Procedure Evidence Sequence listing every
  series and instance with Retrieve Location UID = the hub's Imaging Document Source uniqueId and
  Retrieve AE Title = the hub's AE, and the Referenced Request Sequence carrying the accession.
- :func:`parse_kos` / :func:`kos_problems`: read a KOS and check it against the IOD and the
  XDS-I.b manifest rules.
- :func:`check_kos_against_metadata`: what the Document Repository checks on a RAD-68
  submission (a DocumentEntry with mimeType application/dicom and the KOS formatCode): the KOS is a
  valid manifest and its DocumentEntry agrees with it (uniqueId = SOP Instance UID, sourcePatientId
  = Patient ID, referenceIdList accession and Study Instance UID), each disagreement an
  XDSRepositoryMetadataError (ITI TF-2 3.41.4.1.3.2 "Repository detected metadata error").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from io import BytesIO
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from xds_hub.domain.metadata import DocumentEntry
from xds_hub.domain.vocabulary import KOS_FORMAT_CODE, KOS_FORMAT_SCHEME
from xds_hub.errors import ErrorCode, ParseError, Problem
from xds_hub.imaging.dicomfile import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION

KOS_SOP_CLASS = KOS_FORMAT_CODE  # Key Object Selection Document Storage
MANIFEST_TITLE = ("113030", "DCM", "Manifest")
MIME_DICOM = "application/dicom"
#: referenceIdList identifier types (ITI TF-3 Table 4.2.3.1.7-2, CP-ITI-1016 / CP-RAD-370).
ACCESSION_TYPE = "urn:ihe:iti:xds:2013:accession"
STUDY_UID_TYPE = "urn:ihe:iti:xds:2016:studyInstanceUID"

#: Storage SOP classes whose references are IMAGE content items (the rest are COMPOSITE).
_NON_IMAGE_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.88.",
    "1.2.840.10008.5.1.4.1.1.9.",
    "1.2.840.10008.5.1.4.1.1.104.",
)


@dataclass(frozen=True, slots=True)
class ManifestStudy:
    """The study a manifest describes (patient as the establishment identifies it)."""

    study_uid: str
    patient_id: str
    issuer: str | None
    patient_authority: str | None
    patient_name: str | None = None
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    accession: str | None = None
    accession_issuer: str | None = None
    study_date: str | None = None
    study_time: str | None = None
    study_id: str | None = None
    study_description: str | None = None
    referring_physician: str | None = None


@dataclass(frozen=True, slots=True)
class ReferencedSeries:
    series_uid: str
    #: (SOP Class UID, SOP Instance UID) of each instance.
    instances: tuple[tuple[str, str], ...]


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _sop_ref(sop_class: str, sop_uid: str) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = sop_class
    ref.ReferencedSOPInstanceUID = sop_uid
    return ref


def build_kos(
    study: ManifestStudy,
    series: Sequence[ReferencedSeries],
    *,
    kos_uid: str,
    kos_series_uid: str,
    retrieve_location_uid: str,
    retrieve_ae_title: str,
    when: datetime,
    retrieve_url: str | None = None,
) -> bytes:
    """The manifest of ``study`` as a DICOM Part-10 file (Explicit VR Little Endian)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(KOS_SOP_CLASS)
    meta.MediaStorageSOPInstanceUID = UID(kos_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 192"
    # SOP Common, Patient, General Study
    ds.SOPClassUID = KOS_SOP_CLASS
    ds.SOPInstanceUID = kos_uid
    ds.StudyDate = study.study_date or ""
    ds.StudyTime = study.study_time or ""
    ds.ContentDate = when.strftime("%Y%m%d")
    ds.ContentTime = when.strftime("%H%M%S")
    ds.AccessionNumber = study.accession or ""
    ds.Modality = "KO"
    ds.Manufacturer = "xds-hub"
    ds.ReferringPhysicianName = study.referring_physician or ""
    if study.study_description:
        ds.StudyDescription = study.study_description
    ds.PatientName = study.patient_name or ""
    ds.PatientID = study.patient_id
    if study.issuer:
        ds.IssuerOfPatientID = study.issuer
    if study.patient_authority:
        qualifiers = Dataset()
        qualifiers.UniversalEntityID = study.patient_authority
        qualifiers.UniversalEntityIDType = "ISO"
        ds.IssuerOfPatientIDQualifiersSequence = DicomSequence([qualifiers])
    ds.PatientBirthDate = study.patient_birth_date or ""
    ds.PatientSex = study.patient_sex or ""
    ds.StudyInstanceUID = study.study_uid
    ds.StudyID = study.study_id or ""
    # Key Object Document Series
    ds.SeriesInstanceUID = kos_series_uid
    ds.SeriesNumber = 9999
    ds.ReferencedPerformedProcedureStepSequence = DicomSequence()
    # Key Object Document
    ds.InstanceNumber = 1
    if study.accession:
        request = Dataset()
        request.StudyInstanceUID = study.study_uid
        request.AccessionNumber = study.accession
        if study.accession_issuer:
            issuer = Dataset()
            issuer.UniversalEntityID = study.accession_issuer
            issuer.UniversalEntityIDType = "ISO"
            request.IssuerOfAccessionNumberSequence = DicomSequence([issuer])
        request.RequestedProcedureID = study.study_id or ""
        request.PlacerOrderNumberImagingServiceRequest = ""
        request.FillerOrderNumberImagingServiceRequest = ""
        ds.ReferencedRequestSequence = DicomSequence([request])
    evidence_series = []
    for s in series:
        item = Dataset()
        item.RetrieveAETitle = retrieve_ae_title
        if retrieve_url:
            item.RetrieveURL = f"{retrieve_url}/studies/{study.study_uid}/series/{s.series_uid}"
        item.ReferencedSOPSequence = DicomSequence([_sop_ref(c, u) for c, u in s.instances])
        item.SeriesInstanceUID = s.series_uid
        item.RetrieveLocationUID = retrieve_location_uid
        evidence_series.append(item)
    evidence = Dataset()
    evidence.ReferencedSeriesSequence = DicomSequence(evidence_series)
    evidence.StudyInstanceUID = study.study_uid
    ds.CurrentRequestedProcedureEvidenceSequence = DicomSequence([evidence])
    # SR Document Content (TID 2010 Key Object Selection)
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = DicomSequence([_code(*MANIFEST_TITLE)])
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "2010"
    ds.ContentTemplateSequence = DicomSequence([template])
    content = []
    for s in series:
        for sop_class, sop_uid in s.instances:
            item = Dataset()
            item.RelationshipType = "CONTAINS"
            item.ValueType = "COMPOSITE" if sop_class.startswith(_NON_IMAGE_PREFIXES) else "IMAGE"
            item.ReferencedSOPSequence = DicomSequence([_sop_ref(sop_class, sop_uid)])
            content.append(item)
    ds.ContentSequence = DicomSequence(content)
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


# -------------------------------------------------------------------------------------------
# Reading and checking a manifest
# -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Kos:
    """What a manifest says."""

    sop_class_uid: str
    sop_instance_uid: str
    patient_id: str
    issuer: str | None
    patient_authorities: tuple[str, ...]
    accessions: tuple[str, ...]
    title: tuple[str, str] | None
    #: Study Instance UID -> series UID -> (SOP Class UID, SOP Instance UID) of each instance.
    studies: dict[str, dict[str, list[tuple[str, str]]]] = field(default_factory=dict)
    #: Retrieve Location UID of each referenced series (None where absent).
    retrieve_locations: dict[str, str | None] = field(default_factory=dict)
    #: (SOP Class UID, SOP Instance UID) of the content items (TID 2010).
    content_refs: tuple[tuple[str, str], ...] = ()
    dataset: Dataset | None = None


class KosError(ParseError):
    """The octets are not a readable DICOM object."""


def _str(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _refs(seq: object) -> list[tuple[str, str]]:
    out = []
    for ref in seq or []:  # type: ignore[attr-defined]
        out.append((_str(ref, "ReferencedSOPClassUID"), _str(ref, "ReferencedSOPInstanceUID")))
    return out


def parse_kos(data: bytes | BinaryIO) -> Kos:
    """Read a manifest; raises KosError when it is not a readable DICOM Part-10 object."""
    try:
        ds = dcmread(BytesIO(data) if isinstance(data, bytes) else data, force=False)
        ds.get("SOPClassUID")  # force the first values to be read
    except Exception as exc:
        raise KosError(f"the document is not a readable DICOM Part-10 file: {exc}") from None
    try:
        title_item = (ds.get("ConceptNameCodeSequence") or [None])[0]
        title = (
            (_str(title_item, "CodeValue"), _str(title_item, "CodingSchemeDesignator"))
            if title_item
            else None
        )
        studies: dict[str, dict[str, list[tuple[str, str]]]] = {}
        locations: dict[str, str | None] = {}
        for study in ds.get("CurrentRequestedProcedureEvidenceSequence") or []:
            series_map = studies.setdefault(_str(study, "StudyInstanceUID"), {})
            for series in study.get("ReferencedSeriesSequence") or []:
                series_uid = _str(series, "SeriesInstanceUID")
                series_map.setdefault(series_uid, []).extend(_refs(series.get("ReferencedSOPSequence")))
                locations[series_uid] = _str(series, "RetrieveLocationUID") or None
        accessions = [_str(r, "AccessionNumber") for r in ds.get("ReferencedRequestSequence") or []]
        if _str(ds, "AccessionNumber"):
            accessions.append(_str(ds, "AccessionNumber"))
        authorities = [
            _str(q, "UniversalEntityID")
            for q in ds.get("IssuerOfPatientIDQualifiersSequence") or []
            if _str(q, "UniversalEntityID")
        ]
        content: list[tuple[str, str]] = []
        for item in ds.get("ContentSequence") or []:
            content.extend(_refs(item.get("ReferencedSOPSequence")))
        return Kos(
            sop_class_uid=_str(ds, "SOPClassUID"),
            sop_instance_uid=_str(ds, "SOPInstanceUID"),
            patient_id=_str(ds, "PatientID"),
            issuer=_str(ds, "IssuerOfPatientID") or None,
            patient_authorities=tuple(authorities),
            accessions=tuple(dict.fromkeys(a for a in accessions if a)),
            title=title,
            studies=studies,
            retrieve_locations=locations,
            content_refs=tuple(content),
            dataset=ds,
        )
    except Exception as exc:  # a value that cannot be read
        raise KosError(f"the KOS cannot be read: {exc}") from None


def kos_problems(kos: Kos) -> list[str]:
    """What keeps ``kos`` from being an XDS-I.b manifest (PS3.3 A.35.4, RAD TF-3 4.68.4.1.2.2)."""
    problems: list[str] = []
    if kos.sop_class_uid != KOS_SOP_CLASS:
        problems.append(
            f"SOP Class UID is {kos.sop_class_uid or '(none)'}, not Key Object Selection Document"
        )
    if not kos.sop_instance_uid or not UID(kos.sop_instance_uid).is_valid:
        problems.append("the KOS has no valid SOP Instance UID")
    if kos.title != MANIFEST_TITLE[:2]:
        problems.append(f"the document title is {kos.title}, not (113030, DCM) Manifest")
    if not kos.studies:
        problems.append("the Current Requested Procedure Evidence Sequence is empty or missing")
    for study_uid, series in kos.studies.items():
        if not study_uid:
            problems.append("an evidence item has no Study Instance UID")
        if not series:
            problems.append(f"study {study_uid} lists no series in the evidence")
        for series_uid, refs in series.items():
            if not series_uid:
                problems.append(f"a referenced series of study {study_uid} has no Series Instance UID")
            if not refs:
                problems.append(f"series {series_uid} lists no instances")
            if any(not c or not u for c, u in refs):
                problems.append(f"series {series_uid} has a reference without SOP Class or Instance UID")
            if not kos.retrieve_locations.get(series_uid):
                problems.append(f"series {series_uid} has no Retrieve Location UID (0040,E011)")
    evidence = {u for s in kos.studies.values() for refs in s.values() for _c, u in refs}
    stray = [u for _c, u in kos.content_refs if u not in evidence]
    if stray:
        problems.append(
            f"{len(stray)} content item(s) reference instances absent from the evidence, e.g. {stray[0]}"
        )
    return problems


def is_kos_entry(entry: DocumentEntry) -> bool:
    """A DocumentEntry of an XDS-I.b manifest (RAD-68): application/dicom with the KOS formatCode."""
    fc = entry.format_code
    return fc is not None and fc.code == KOS_FORMAT_CODE and fc.scheme == KOS_FORMAT_SCHEME


def _cx_parts(value: str) -> tuple[str, str, str]:
    """(ID, assigning-authority OID, identifier type code) of a CX / CXi value."""
    parts = value.split("^")
    authority = parts[3].split("&") if len(parts) > 3 else []
    oid = authority[1] if len(authority) > 1 else ""
    return parts[0], oid, parts[4] if len(parts) > 4 else ""


def check_kos_against_metadata(blob: bytes | BinaryIO, entry: DocumentEntry) -> list[Problem]:
    """RAD-68 at the Document Repository: problems of the KOS ``blob`` and of ``entry`` against it.

    Empty when all is well.  Every problem is XDSRepositoryMetadataError located at the entry.
    """
    loc = entry.entry_uuid
    found: list[str] = []
    if entry.mime_type != MIME_DICOM:
        found.append(f"a KOS manifest (formatCode {KOS_FORMAT_CODE}) must have mimeType {MIME_DICOM}")
    try:
        kos = parse_kos(blob)
    except KosError as exc:
        return [Problem(ErrorCode.REPOSITORY_METADATA_ERROR, *_ctx([*found, str(exc)], loc))]
    found.extend(kos_problems(kos))
    if kos.sop_instance_uid and entry.unique_id != kos.sop_instance_uid:
        found.append(
            f"uniqueId {entry.unique_id} is not the KOS SOP Instance UID {kos.sop_instance_uid} "
            "(RAD TF-3 4.68.4.1.2.3.2)"
        )
    if entry.source_patient_id:
        pid, oid, _ = _cx_parts(entry.source_patient_id)
        if pid != kos.patient_id:
            found.append(
                f"sourcePatientId {entry.source_patient_id} does not match the KOS Patient ID "
                f"{kos.patient_id!r}"
            )
        elif oid and kos.patient_authorities and oid not in kos.patient_authorities:
            found.append(
                f"sourcePatientId's assigning authority {oid} differs from the KOS issuer "
                f"{', '.join(kos.patient_authorities)}"
            )
    for ref in entry.reference_ids:
        value, _oid, kind = _cx_parts(ref)
        if kind == STUDY_UID_TYPE and value not in kos.studies:
            found.append(f"referenceIdList names study {value}, which the KOS does not reference")
        if kind == ACCESSION_TYPE and value not in kos.accessions:
            found.append(f"referenceIdList names accession {value!r}, which the KOS does not carry")
    return [Problem(ErrorCode.REPOSITORY_METADATA_ERROR, f"KOS manifest: {text}", loc) for text in found]


def _ctx(texts: list[str], loc: str) -> tuple[str, str]:
    return "KOS manifest: " + "; ".join(texts), loc
