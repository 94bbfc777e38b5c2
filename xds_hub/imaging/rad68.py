"""The metadata of a manifest the hub publishes: Provide and Register Imaging Document Set - MTOM/XOP
[RAD-68] (RAD TF-3 4.68.4.1.2.3), done in process through the Document Repository.

DocumentEntry (RAD TF-3 Table 4.68.4.1.2.3.2-1): mimeType application/dicom; formatCode the KOS
SOP Class UID (1.2.840.10008.5.1.4.1.1.88.59, scheme 1.2.840.10008.2.6.1); uniqueId the KOS SOP
Instance UID; patientId the affinity-domain ID; sourcePatientId / sourcePatientInfo the
establishment's patient; eventCodeList the modalities of the study (DICOM CID 29, coding scheme DCM
1.2.840.10008.2.16.4); referenceIdList the accession number (urn:ihe:iti:xds:2013:accession) and the
Study Instance UID (urn:ihe:iti:xds:2016:studyInstanceUID); serviceStartTime the study date and
time; creationTime the KOS content date and time.  A manifest that supersedes an earlier one
replaces it with an RPLC association (ITI TF-3 4.2.2.2.1).

The class, type, confidentiality, facility and practice codes are the defaults below; when the
affinity domain restricts a code kind (``[codes]``) and the default is not allowed there, the
first allowed code of that kind is used instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from xds_hub.config import AffinityDomain, CodeEntry
from xds_hub.domain.metadata import Association, Code, DocumentEntry, Submission, SubmissionSet
from xds_hub.domain.vocabulary import KOS_FORMAT_CODE, KOS_FORMAT_SCHEME, AssociationType, SubmissionSetStatus
from xds_hub.imaging.kos import ACCESSION_TYPE, MIME_DICOM, STUDY_UID_TYPE
from xds_hub.imaging.patients import LocalPatient

LOINC = "2.16.840.1.113883.6.1"
SNOMED = "2.16.840.1.113883.6.96"
DCM = "1.2.840.10008.2.16.4"

#: Default codes per [codes] kind.
DEFAULT_CODES: Mapping[str, Code] = {
    "classCode": Code("18726-0", LOINC, "Radiology studies (set)"),
    "typeCode": Code("18748-4", LOINC, "Diagnostic imaging study"),
    "confidentialityCode": Code("N", "2.16.840.1.113883.5.25", "normal"),
    "healthcareFacilityTypeCode": Code("22232009", SNOMED, "Hospital"),
    "practiceSettingCode": Code("394914008", SNOMED, "Radiology"),
    "contentTypeCode": Code("18748-4", LOINC, "Diagnostic imaging study"),
}

#: DICOM CID 29 Acquisition Modality: code meanings.
MODALITY_MEANINGS: Mapping[str, str] = {
    "CR": "Computed Radiography",
    "CT": "Computed Tomography",
    "DX": "Digital Radiography",
    "ES": "Endoscopy",
    "IO": "Intra-oral Radiography",
    "MG": "Mammography",
    "MR": "Magnetic Resonance",
    "NM": "Nuclear Medicine",
    "OCT": "Optical Coherence Tomography",
    "OP": "Ophthalmic Photography",
    "PT": "Positron emission tomography",
    "PX": "Panoramic X-Ray",
    "RF": "Radio Fluoroscopy",
    "US": "Ultrasound",
    "XA": "X-Ray Angiography",
    "XC": "External-camera Photography",
    "ECG": "Electrocardiography",
    "SM": "Slide Microscopy",
    "OT": "Other",
}


def pick_code(kind: str, domain: AffinityDomain) -> Code:
    """The default code of ``kind``, or the affinity domain's first allowed one when it is not allowed."""
    default = DEFAULT_CODES[kind]
    allowed: Sequence[CodeEntry] | None = domain.codes.get(kind) if domain.codes is not None else None
    if not allowed or any(c.code == default.code and c.scheme == default.scheme for c in allowed):
        return default
    first = allowed[0]
    return Code(first.code, first.scheme, first.display or first.code)


def modality_codes(modalities: Sequence[str], domain: AffinityDomain) -> tuple[Code, ...]:
    codes = [Code(m, DCM, MODALITY_MEANINGS.get(m, m)) for m in sorted(set(modalities)) if m and m != "KO"]
    allowed = domain.codes.get("eventCodeList") if domain.codes is not None else None
    if allowed:
        codes = [c for c in codes if any(a.code == c.code and a.scheme == c.scheme for a in allowed)]
    return tuple(codes)


def _dtm(date: str | None, time: str | None) -> str | None:
    """Study Date (DA) and Time (TM) as an XDS DTM (to the second), or None."""
    if not date or len(date) != 8 or not date.isdigit():
        return None
    digits = "".join(ch for ch in (time or "").split(".")[0] if ch.isdigit())[:6]
    return date + (digits if len(digits) in (2, 4, 6) else "")


@dataclass(frozen=True, slots=True)
class ManifestMetadata:
    """What the submission of one manifest needs to know."""

    kos_uid: str
    study_uid: str
    patient_id: str  # affinity domain CX
    local: LocalPatient
    source_id: str
    submission_set_uid: str
    doc_id: str  # urn:uuid of the new DocumentEntry
    set_id: str  # urn:uuid of the SubmissionSet
    modalities: tuple[str, ...]
    created: datetime
    accession: str | None = None
    accession_authority: str | None = None
    patient_name: str | None = None
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    study_date: str | None = None
    study_time: str | None = None
    title: str | None = None
    #: entryUUIDs of the manifests this one replaces (RPLC).
    replaces: tuple[str, ...] = ()


def build_submission(m: ManifestMetadata, domain: AffinityDomain, make_id: Callable[[], str]) -> Submission:
    """The ITI-41 submission of a manifest; ``make_id()`` gives fresh ``urn:uuid:`` ids."""
    from xds_hub.registry.register import dtm

    refs = [f"{m.study_uid}^^^^{STUDY_UID_TYPE}"]
    if m.accession and m.accession_authority:
        refs.insert(0, f"{m.accession}^^^&{m.accession_authority}&ISO^{ACCESSION_TYPE}")
    info = [f"PID-3|{m.local.cx}"]
    if m.patient_name:
        info.append(f"PID-5|{m.patient_name}")
    if m.patient_birth_date:
        info.append(f"PID-7|{m.patient_birth_date}")
    if m.patient_sex:
        info.append(f"PID-8|{m.patient_sex}")
    entry = DocumentEntry(
        entry_uuid=m.doc_id,
        unique_id=m.kos_uid,
        patient_id=m.patient_id,
        mime_type=MIME_DICOM,
        title=(m.title or "Imaging study manifest")[:128],
        class_code=pick_code("classCode", domain),
        type_code=pick_code("typeCode", domain),
        format_code=Code(KOS_FORMAT_CODE, KOS_FORMAT_SCHEME, "Key Object Selection Document"),
        healthcare_facility_type_code=pick_code("healthcareFacilityTypeCode", domain),
        practice_setting_code=pick_code("practiceSettingCode", domain),
        confidentiality_codes=(pick_code("confidentialityCode", domain),),
        event_codes=modality_codes(m.modalities, domain),
        creation_time=dtm(m.created),
        service_start_time=_dtm(m.study_date, m.study_time),
        language_code="en-US",
        source_patient_id=m.local.cx,
        source_patient_info=tuple(info),
        reference_ids=tuple(refs),
    )
    submission_set = SubmissionSet(
        entry_uuid=m.set_id,
        unique_id=m.submission_set_uid,
        source_id=m.source_id,
        patient_id=m.patient_id,
        submission_time=dtm(m.created),
        content_type_code=pick_code("contentTypeCode", domain),
        title="XDS-I.b imaging manifest",
    )
    associations = [
        Association(
            entry_uuid=make_id(),
            association_type=AssociationType.HAS_MEMBER,
            source=m.set_id,
            target=m.doc_id,
            submission_set_status=SubmissionSetStatus.ORIGINAL,
        ),
        *(
            Association(
                entry_uuid=make_id(),
                association_type=AssociationType.RPLC,
                source=m.doc_id,
                target=old,
            )
            for old in m.replaces
        ),
    ]
    return Submission(
        submission_set=submission_set,
        documents=(entry,),
        associations=tuple(associations),
    )
