"""Document Source metadata for plain files (ITI TF-3 4.2.3, Tables 4.2.3.2-1 and 4.2.3.3-1).

:func:`build_submission` turns files (or byte strings) and a patient ID into a complete
Submission: one SubmissionSet, one stable DocumentEntry per document with every attribute a
Document Source must send (R in the tables), and the HasMember associations with
SubmissionSetStatus "Original".  Codes default to widely used LOINC / SNOMED CT / HL7 values;
an affinity domain that restricts codes needs its own (``CodeSet``).
"""

from __future__ import annotations

import hashlib
import mimetypes
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from xds_hub.domain.metadata import Association, Author, Code, DocumentEntry, Submission, SubmissionSet
from xds_hub.domain.vocabulary import AssociationType, SubmissionSetStatus


def new_oid() -> str:
    """A fresh OID for a uniqueId: the UUID arc 2.25 (ITU-T X.667), at most 44 characters."""
    return f"2.25.{uuid.uuid4().int}"


def new_entry_uuid() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def dtm_now() -> str:
    """Now as an XDS DTM (UTC, to the second)."""
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def parse_code(text: str) -> Code:
    """``CODE^SCHEME[^DISPLAY]`` (the command-line form of a coded value) as a Code."""
    parts = text.split("^")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError(f"a code is written CODE^SCHEME[^DISPLAY], not {text!r}")
    return Code(parts[0], parts[1], "^".join(parts[2:]))


_LOINC = "2.16.840.1.113883.6.1"
_SNOMED = "2.16.840.1.113883.6.96"
CONSULT_NOTE = Code("11488-4", _LOINC, "Consult note")
MIME_TYPE_SUFFICIENT = Code(
    "urn:ihe:iti:xds:2017:mimeTypeSufficient", "1.3.6.1.4.1.19376.1.2.3", "mimeType Sufficient"
)
NORMAL_CONFIDENTIALITY = Code("N", "2.16.840.1.113883.5.25", "normal")
HOSPITAL = Code("22232009", _SNOMED, "Hospital")
GENERAL_MEDICINE = Code("394802001", _SNOMED, "General medicine")
SUMMARY_OF_EPISODE = Code("34133-9", _LOINC, "Summary of episode note")


@dataclass(frozen=True, slots=True)
class CodeSet:
    """The coded attributes given to every document of a submission (and its contentTypeCode)."""

    class_code: Code = CONSULT_NOTE
    type_code: Code = CONSULT_NOTE
    format_code: Code = MIME_TYPE_SUFFICIENT
    confidentiality_codes: tuple[Code, ...] = (NORMAL_CONFIDENTIALITY,)
    healthcare_facility_type_code: Code = HOSPITAL
    practice_setting_code: Code = GENERAL_MEDICINE
    content_type_code: Code = SUMMARY_OF_EPISODE
    event_codes: tuple[Code, ...] = ()


@dataclass(frozen=True, slots=True)
class DocumentInput:
    """One document to submit: a file or bytes, with what the source knows about it."""

    content: Path | bytes
    mime_type: str | None = None
    title: str | None = None
    unique_id: str | None = None
    #: Per-document codes (default: the submission's CodeSet).
    codes: CodeSet | None = None
    language_code: str = "en-US"
    creation_time: str | None = None

    @property
    def guessed_mime_type(self) -> str:
        if self.mime_type:
            return self.mime_type
        if isinstance(self.content, Path):
            guessed, _ = mimetypes.guess_type(self.content.name)
            if guessed:
                return guessed
        return "application/octet-stream"

    def size(self) -> int:
        return len(self.content) if isinstance(self.content, bytes) else self.content.stat().st_size

    def sha1(self) -> str:
        if isinstance(self.content, bytes):
            return hashlib.sha1(self.content).hexdigest()
        digest = hashlib.sha1()
        with self.content.open("rb") as f:
            while block := f.read(1024 * 1024):
                digest.update(block)
        return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class SubmissionOptions:
    """What the submission set says about its source."""

    patient_id: str
    source_id: str
    source_patient_id: str | None = None
    codes: CodeSet = field(default_factory=CodeSet)
    author: Author | None = None
    title: str | None = None
    #: Send hash and size so the repository can check the transfer (3.41.4.1.3.2).
    include_hash: bool = True


def build_submission(
    documents: Sequence[DocumentInput], options: SubmissionOptions
) -> tuple[Submission, dict[str, DocumentInput]]:
    """A Submission for ``documents`` and the map DocumentEntry id -> document to send with it."""
    now = dtm_now()
    ss_id = new_entry_uuid()
    entries: list[DocumentEntry] = []
    associations: list[Association] = []
    contents: dict[str, DocumentInput] = {}
    for doc in documents:
        codes = doc.codes or options.codes
        entry_id = new_entry_uuid()
        title = doc.title or (doc.content.name if isinstance(doc.content, Path) else None)
        entries.append(
            DocumentEntry(
                entry_uuid=entry_id,
                unique_id=doc.unique_id or new_oid(),
                patient_id=options.patient_id,
                mime_type=doc.guessed_mime_type,
                title=title,
                class_code=codes.class_code,
                type_code=codes.type_code,
                format_code=codes.format_code,
                healthcare_facility_type_code=codes.healthcare_facility_type_code,
                practice_setting_code=codes.practice_setting_code,
                confidentiality_codes=codes.confidentiality_codes,
                event_codes=codes.event_codes,
                authors=(options.author,) if options.author else (),
                creation_time=doc.creation_time or now,
                language_code=doc.language_code,
                source_patient_id=options.source_patient_id or options.patient_id,
                hash=doc.sha1() if options.include_hash else None,
                size=doc.size() if options.include_hash else None,
            )
        )
        associations.append(
            Association(
                entry_uuid=new_entry_uuid(),
                association_type=AssociationType.HAS_MEMBER,
                source=ss_id,
                target=entry_id,
                submission_set_status=SubmissionSetStatus.ORIGINAL.value,
            )
        )
        contents[entry_id] = doc
    submission_set = SubmissionSet(
        entry_uuid=ss_id,
        unique_id=new_oid(),
        source_id=options.source_id,
        patient_id=options.patient_id,
        submission_time=now,
        content_type_code=options.codes.content_type_code,
        authors=(options.author,) if options.author else (),
        title=options.title,
    )
    return (
        Submission(submission_set=submission_set, documents=tuple(entries), associations=tuple(associations)),
        contents,
    )
