"""Attribute rules of each XDS object (ITI TF-3 4.2.3.2-4.2.3.4 and the optionality table 4.3.1-3).

Pure checks used by :mod:`xds_hub.domain.validate`: each ``check_*`` function appends to a
:class:`Findings` the problems of one DocumentEntry, SubmissionSet or Folder (required attributes,
cardinalities, HL7 v2 data types, uniqueId / OID formats, lengths), located by the object's id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from xds_hub.domain import hl7types as hl7
from xds_hub.domain.metadata import Author, DocumentEntry, Folder, Slot, SubmissionSet
from xds_hub.domain.vocabulary import DocumentAvailability, ObjectType
from xds_hub.errors import ErrorCode, Problem

#: ebRIM LongName: the longest Slot value / nodeRepresentation (rim.xsd).
SLOT_VALUE_MAX = 256
#: ITI TF-3 4.2.3.2.24: DocumentEntry.title is at most 128 characters.
TITLE_MAX = 128
#: ITI TF-3 4.2.3.2.26: DocumentEntry.uniqueId = OID (<= 64) [ "^" extension (<= 16) ].
UNIQUE_ID_EXTENSION_MAX = 16

_HASH_RE = re.compile(r"[0-9a-fA-F]{40}")
_LANGUAGE_RE = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")
_MIME_RE = re.compile(r"[\w!#$&^.+-]+/[\w!#$&^.+-]+(\s*;.*)?")
_PID_RE = re.compile(r"PID-([0-9]+)\|.*", re.DOTALL)
#: sourcePatientInfo must not carry these PID fields (ITI TF-3 4.2.3.2.23).
_PID_FORBIDDEN = frozenset({2, 4, 12, 19})
_HOME_RE = re.compile(r"urn:oid:(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+")


@dataclass
class Findings:
    """Problems found so far; ``meta`` is the code of a plain metadata error for this transaction."""

    for_repository: bool
    problems: list[Problem] = field(default_factory=list)

    def add(self, code: ErrorCode, context: str, location: str) -> None:
        self.problems.append(Problem(code, context, location))

    def meta(self, context: str, location: str) -> None:
        self.add(ErrorCode.REGISTRY_METADATA_ERROR, context, location)

    def all_meta(self, contexts: Iterable[str], location: str) -> None:
        for context in contexts:
            self.meta(context, location)

    @property
    def repository_code(self) -> ErrorCode:
        """Code of a problem with what the repository owns (hash, size) in this transaction."""
        return (
            ErrorCode.REPOSITORY_METADATA_ERROR if self.for_repository else ErrorCode.REGISTRY_METADATA_ERROR
        )


def unique_id_problems(value: str, what: str, allow_extension: bool) -> list[str]:
    """OID of at most 64 characters; for DocumentEntries optionally ``OID^extension``."""
    if allow_extension and "^" in value:
        root, _, extension = value.partition("^")
        problems = hl7.oid_problems(root, f"{what} root")
        if not extension or "^" in extension or len(extension) > UNIQUE_ID_EXTENSION_MAX:
            problems.append(
                f"{what} '{value}': the extension after '^' must have 1 to {UNIQUE_ID_EXTENSION_MAX} "
                "characters and no further '^'"
            )
        return problems
    return hl7.oid_problems(value, what)


def _required(f: Findings, value: object, what: str, location: str) -> bool:
    if value is None or value == "" or value == ():
        f.meta(f"{what} is required", location)
        return False
    return True


def _lengths(f: Findings, values: Iterable[tuple[str, str]], location: str) -> None:
    for name, value in values:
        if len(value) > SLOT_VALUE_MAX:
            f.meta(f"a value of {name} is longer than {SLOT_VALUE_MAX} characters", location)


def _extra_slot_values(slots: Iterable[Slot]) -> list[tuple[str, str]]:
    return [(s.name, v) for s in slots for v in s.values]


def _home(f: Findings, home: str | None, location: str) -> None:
    if home is not None and _HOME_RE.fullmatch(home) is None:
        f.meta(f"homeCommunityId '{home}' is not of the form urn:oid:OID", location)


def check_author(f: Findings, author: Author, location: str) -> None:
    """ITI TF-3 4.2.3.1.4: authorPerson, authorInstitution or authorTelecommunication is needed."""
    if not (author.person or author.institutions or author.telecoms):
        f.meta("an author has none of authorPerson, authorInstitution, authorTelecommunication", location)
    if author.person:
        f.all_meta(hl7.xcn_problems(author.person, "authorPerson"), location)
    for inst in author.institutions:
        f.all_meta(hl7.xon_problems(inst, "authorInstitution"), location)
    for tel in author.telecoms:
        f.all_meta(hl7.xtn_problems(tel, "authorTelecommunication"), location)
    for name, values in (("authorRole", author.roles), ("authorSpecialty", author.specialties)):
        if any(not v for v in values):
            f.meta(f"{name} has an empty value", location)
    _lengths(
        f,
        [
            *(("authorPerson", v) for v in ([author.person] if author.person else [])),
            *(("authorInstitution", v) for v in author.institutions),
            *(("authorRole", v) for v in author.roles),
            *(("authorSpecialty", v) for v in author.specialties),
            *(("authorTelecommunication", v) for v in author.telecoms),
        ],
        location,
    )


def _dtm(f: Findings, value: str | None, name: str, location: str) -> None:
    if value is not None:
        f.all_meta(hl7.dtm_problems(value, name), location)


def _on_demand(f: Findings, doc: DocumentEntry, location: str) -> None:
    """ITI TF-3 Table 4.3.1-3: On-Demand entries carry no hash, size, creationTime, legalAuthenticator."""
    for name, value in (
        ("hash", doc.hash),
        ("size", doc.size),
        ("creationTime", doc.creation_time),
        ("legalAuthenticator", doc.legal_authenticator),
    ):
        if value is not None:
            f.meta(f"{name} must not be present on an On-Demand DocumentEntry", location)


def check_document(f: Findings, doc: DocumentEntry, *, allow_on_demand: bool) -> None:
    """DocumentEntry attributes (ITI TF-3 4.2.3.2), for ITI-42 (registry) or ITI-41 (repository)."""
    loc = doc.entry_uuid
    stable = doc.object_type is ObjectType.STABLE_DOCUMENT
    if not stable:
        if not allow_on_demand:
            f.meta("an On-Demand DocumentEntry cannot be submitted with this transaction (use ITI-61)", loc)
        _on_demand(f, doc, loc)
    if _required(f, doc.unique_id, "DocumentEntry uniqueId", loc):
        f.all_meta(unique_id_problems(doc.unique_id, "DocumentEntry uniqueId", allow_extension=True), loc)
    if _required(f, doc.patient_id, "DocumentEntry patientId", loc):
        f.all_meta(hl7.cx_problems(doc.patient_id, "DocumentEntry patientId"), loc)
    if _required(f, doc.mime_type, "mimeType", loc) and _MIME_RE.fullmatch(doc.mime_type) is None:
        f.meta(f"mimeType '{doc.mime_type}' is not a MIME type (type/subtype)", loc)
    for name, value in (
        ("classCode", doc.class_code),
        ("typeCode", doc.type_code),
        ("formatCode", doc.format_code),
        ("healthcareFacilityTypeCode", doc.healthcare_facility_type_code),
        ("practiceSettingCode", doc.practice_setting_code),
        ("confidentialityCode", doc.confidentiality_codes),
    ):
        _required(f, value, name, loc)
    if stable and _required(f, doc.creation_time, "creationTime", loc):
        _dtm(f, doc.creation_time, "creationTime", loc)
    _dtm(f, doc.service_start_time, "serviceStartTime", loc)
    _dtm(f, doc.service_stop_time, "serviceStopTime", loc)
    _service_times(f, doc, loc)
    language = doc.language_code
    if _required(f, language, "languageCode", loc) and language and _LANGUAGE_RE.fullmatch(language) is None:
        f.meta(f"languageCode '{doc.language_code}' is not an RFC 5646 language tag", loc)
    if _required(f, doc.source_patient_id, "sourcePatientId", loc) and doc.source_patient_id:
        f.all_meta(hl7.cx_problems(doc.source_patient_id, "sourcePatientId"), loc)
    _repository_attributes(f, doc, stable, loc)
    if doc.legal_authenticator is not None:
        f.all_meta(hl7.xcn_problems(doc.legal_authenticator, "legalAuthenticator"), loc)
    for info in doc.source_patient_info:
        match = _PID_RE.fullmatch(info)
        if match is None:
            f.meta(f"sourcePatientInfo value '{info}' is not of the form PID-n|value", loc)
        elif int(match.group(1)) in _PID_FORBIDDEN:
            f.meta(f"sourcePatientInfo must not contain PID-{match.group(1)}", loc)
    for ref in doc.reference_ids:
        f.all_meta(hl7.cxi_problems(ref, "referenceIdList value"), loc)
    if doc.document_availability is not None and doc.document_availability not in set(DocumentAvailability):
        f.meta(f"documentAvailability '{doc.document_availability}' is neither Online nor Offline", loc)
    if doc.uri is not None and not doc.uri:
        f.meta("URI is empty", loc)
    if doc.title is not None and len(doc.title) > TITLE_MAX:
        f.meta(f"title is longer than {TITLE_MAX} characters", loc)
    if doc.limited_metadata:
        f.meta("limitedMetadata DocumentEntries are not accepted by an XDS registry", loc)
    _home(f, doc.home_community_id, loc)
    for author in doc.authors:
        check_author(f, author, loc)
    _lengths(
        f,
        [
            *(
                (name, value)
                for name, value in (
                    ("creationTime", doc.creation_time),
                    ("serviceStartTime", doc.service_start_time),
                    ("serviceStopTime", doc.service_stop_time),
                    ("sourcePatientId", doc.source_patient_id),
                    ("legalAuthenticator", doc.legal_authenticator),
                    ("languageCode", doc.language_code),
                )
                if value is not None
            ),
            *(("sourcePatientInfo", v) for v in doc.source_patient_info),
            *(("referenceIdList", v) for v in doc.reference_ids),
            *_extra_slot_values(doc.extra_slots),
        ],
        loc,
    )


def _service_times(f: Findings, doc: DocumentEntry, loc: str) -> None:
    start, stop = doc.service_start_time, doc.service_stop_time
    if start is None or stop is None or hl7.dtm_problems(start) or hl7.dtm_problems(stop):
        return
    if hl7.DTM(start).as_datetime() > hl7.DTM(stop).as_datetime():
        f.meta(f"serviceStartTime {start} is after serviceStopTime {stop}", loc)


def _repository_attributes(f: Findings, doc: DocumentEntry, stable: bool, loc: str) -> None:
    """hash, size, repositoryUniqueId: required in ITI-42, optional in ITI-41 (the repository sets them)."""
    needed = stable and not f.for_repository
    code = f.repository_code
    if doc.hash is None:
        if needed:
            f.meta("hash is required", loc)
    elif _HASH_RE.fullmatch(doc.hash) is None:
        f.add(code, f"hash '{doc.hash}' is not a SHA-1 digest (40 hexadecimal digits)", loc)
    if doc.size is None:
        if needed:
            f.meta("size is required", loc)
    elif doc.size < 0:
        f.add(code, f"size {doc.size} is negative", loc)
    if doc.repository_unique_id is None:
        if not f.for_repository:
            f.meta("repositoryUniqueId is required", loc)
    else:
        f.all_meta(hl7.oid_problems(doc.repository_unique_id, "repositoryUniqueId"), loc)


def check_submission_set(f: Findings, ss: SubmissionSet) -> None:
    """SubmissionSet attributes (ITI TF-3 4.2.3.3)."""
    loc = ss.entry_uuid
    if _required(f, ss.unique_id, "SubmissionSet uniqueId", loc):
        f.all_meta(unique_id_problems(ss.unique_id, "SubmissionSet uniqueId", allow_extension=False), loc)
    if _required(f, ss.source_id, "SubmissionSet sourceId", loc):
        f.all_meta(hl7.oid_problems(ss.source_id, "SubmissionSet sourceId"), loc)
    if _required(f, ss.patient_id, "SubmissionSet patientId", loc):
        f.all_meta(hl7.cx_problems(ss.patient_id, "SubmissionSet patientId"), loc)
    if _required(f, ss.submission_time, "submissionTime", loc):
        _dtm(f, ss.submission_time, "submissionTime", loc)
    _required(f, ss.content_type_code, "contentTypeCode", loc)
    for recipient in ss.intended_recipients:
        f.all_meta(recipient_problems(recipient), loc)
    if ss.limited_metadata:
        f.meta("limitedMetadata SubmissionSets are not accepted by an XDS registry", loc)
    _home(f, ss.home_community_id, loc)
    for author in ss.authors:
        check_author(f, author, loc)
    _lengths(
        f,
        [
            *(("intendedRecipient", v) for v in ss.intended_recipients),
            *(("submissionTime", v) for v in ([ss.submission_time] if ss.submission_time else [])),
            *_extra_slot_values(ss.extra_slots),
        ],
        loc,
    )


def recipient_problems(value: str) -> list[str]:
    """intendedRecipient ``XON|XCN|XTN`` (ITI TF-3 4.2.3.3.8): at least one part, each well formed."""
    parts = value.split("|")
    if len(parts) > 3 or not any(parts):
        return [f"intendedRecipient '{value}' is not of the form organization|person|telecommunication"]
    checks = (hl7.xon_problems, hl7.xcn_problems, hl7.xtn_problems)
    return [
        p
        for part, check in zip(parts, checks, strict=False)
        if part
        for p in check(part, "intendedRecipient")
    ]


def check_folder(f: Findings, folder: Folder) -> None:
    """Folder attributes (ITI TF-3 4.2.3.4)."""
    loc = folder.entry_uuid
    if _required(f, folder.unique_id, "Folder uniqueId", loc):
        f.all_meta(unique_id_problems(folder.unique_id, "Folder uniqueId", allow_extension=False), loc)
    if _required(f, folder.patient_id, "Folder patientId", loc):
        f.all_meta(hl7.cx_problems(folder.patient_id, "Folder patientId"), loc)
    _required(f, folder.codes, "Folder codeList", loc)
    _required(f, folder.title, "Folder title", loc)
    _dtm(f, folder.last_update_time, "lastUpdateTime", loc)
    if folder.limited_metadata:
        f.meta("limitedMetadata Folders are not accepted by an XDS registry", loc)
    _home(f, folder.home_community_id, loc)
    _lengths(f, _extra_slot_values(folder.extra_slots), loc)
