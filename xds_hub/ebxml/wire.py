"""How XDS metadata attributes sit in ebRIM 3.0 (ITI TF-3 4.2.3, Tables 4.2.3.2-1, 4.2.3.3-1, 4.2.3.4-1).

One table per object kind maps each attribute to its Slot, Classification or ExternalIdentifier;
:mod:`.parse` and :mod:`.render` both read these tables, so the two directions cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from xds_hub.domain.vocabulary import DocumentEntryScheme, FolderScheme, SubmissionSetScheme

CLASSIFICATION_TYPE: Final = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification"
EXTERNAL_IDENTIFIER_TYPE: Final = (
    "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier"
)

#: Prefix of a document reference (``Submission.document_refs`` value) whose content is inline
#: base64 in the xdsb:Document element instead of an xop:Include; the rest is the Document/@id.
INLINE_REF_PREFIX: Final = "inline:"

SLOT_CODING_SCHEME: Final = "codingScheme"
SLOT_SUBMISSION_SET_STATUS: Final = "SubmissionSetStatus"


@dataclass(frozen=True, slots=True)
class SlotField:
    """A metadata attribute carried in a Slot: ``name`` on the wire, ``field`` on the dataclass."""

    name: str
    field: str
    multi: bool = False


#: DocumentEntry slots, in the order they are rendered.
DOCUMENT_SLOTS: Final = (
    SlotField("creationTime", "creation_time"),
    SlotField("languageCode", "language_code"),
    SlotField("serviceStartTime", "service_start_time"),
    SlotField("serviceStopTime", "service_stop_time"),
    SlotField("sourcePatientId", "source_patient_id"),
    SlotField("sourcePatientInfo", "source_patient_info", multi=True),
    SlotField("legalAuthenticator", "legal_authenticator"),
    SlotField("hash", "hash"),
    SlotField("size", "size"),
    SlotField("repositoryUniqueId", "repository_unique_id"),
    SlotField("URI", "uri"),
    SlotField("documentAvailability", "document_availability"),
    SlotField("urn:ihe:iti:xds:2013:referenceIdList", "reference_ids", multi=True),
)
SUBMISSION_SET_SLOTS: Final = (
    SlotField("submissionTime", "submission_time"),
    SlotField("intendedRecipient", "intended_recipients", multi=True),
)
FOLDER_SLOTS: Final = (SlotField("lastUpdateTime", "last_update_time"),)

#: Single-valued code attributes: classificationScheme -> dataclass field.
DOCUMENT_CODES: Final[dict[str, str]] = {
    DocumentEntryScheme.CLASS_CODE: "class_code",
    DocumentEntryScheme.FORMAT_CODE: "format_code",
    DocumentEntryScheme.HEALTHCARE_FACILITY_TYPE_CODE: "healthcare_facility_type_code",
    DocumentEntryScheme.PRACTICE_SETTING_CODE: "practice_setting_code",
    DocumentEntryScheme.TYPE_CODE: "type_code",
}
#: Multi-valued code attributes: classificationScheme -> dataclass field.
DOCUMENT_CODE_LISTS: Final[dict[str, str]] = {
    DocumentEntryScheme.CONFIDENTIALITY_CODE: "confidentiality_codes",
    DocumentEntryScheme.EVENT_CODE: "event_codes",
}
SUBMISSION_SET_CODES: Final[dict[str, str]] = {SubmissionSetScheme.CONTENT_TYPE_CODE: "content_type_code"}
FOLDER_CODE_LISTS: Final[dict[str, str]] = {FolderScheme.CODE_LIST: "codes"}

#: ExternalIdentifiers: identificationScheme -> (dataclass field, Name rendered on the wire).
DOCUMENT_IDENTIFIERS: Final[dict[str, tuple[str, str]]] = {
    DocumentEntryScheme.PATIENT_ID: ("patient_id", "XDSDocumentEntry.patientId"),
    DocumentEntryScheme.UNIQUE_ID: ("unique_id", "XDSDocumentEntry.uniqueId"),
}
SUBMISSION_SET_IDENTIFIERS: Final[dict[str, tuple[str, str]]] = {
    SubmissionSetScheme.UNIQUE_ID: ("unique_id", "XDSSubmissionSet.uniqueId"),
    SubmissionSetScheme.SOURCE_ID: ("source_id", "XDSSubmissionSet.sourceId"),
    SubmissionSetScheme.PATIENT_ID: ("patient_id", "XDSSubmissionSet.patientId"),
}
FOLDER_IDENTIFIERS: Final[dict[str, tuple[str, str]]] = {
    FolderScheme.UNIQUE_ID: ("unique_id", "XDSFolder.uniqueId"),
    FolderScheme.PATIENT_ID: ("patient_id", "XDSFolder.patientId"),
}

#: Author classification slots (ITI TF-3 4.2.3.1.4): wire name -> Author field.
AUTHOR_SLOTS: Final = (
    SlotField("authorPerson", "person"),
    SlotField("authorInstitution", "institutions", multi=True),
    SlotField("authorRole", "roles", multi=True),
    SlotField("authorSpecialty", "specialties", multi=True),
    SlotField("authorTelecommunication", "telecoms", multi=True),
)
#: Older spellings still met on the wire.
AUTHOR_SLOT_ALIASES: Final[dict[str, str]] = {"authorSpeciality": "authorSpecialty"}
