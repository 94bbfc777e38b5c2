"""XDS metadata as typed, frozen objects (ITI TF-3 4.1 and 4.2.3).

These are what the ebRIM parser produces and the renderer consumes; handlers, validation, the
registry store and the stored queries work on them only.  Attribute values keep their wire form
(CX, XCN, DTM strings ...); :mod:`xds_hub.domain.hl7types` parses and checks those.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xds_hub.domain.vocabulary import AssociationType, ObjectType, Status


@dataclass(frozen=True, slots=True)
class Code:
    """A coded value: a Classification with nodeRepresentation, codingScheme slot and Name."""

    code: str
    scheme: str
    display: str = ""


@dataclass(frozen=True, slots=True)
class Slot:
    name: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Author:
    """One author classification (ITI TF-3 4.2.3.1.4)."""

    person: str | None = None  # XCN
    institutions: tuple[str, ...] = ()  # XON
    roles: tuple[str, ...] = ()
    specialties: tuple[str, ...] = ()
    telecoms: tuple[str, ...] = ()  # XTN


@dataclass(frozen=True, slots=True)
class DocumentEntry:
    """An XDSDocumentEntry (ITI TF-3 4.2.3.2); stable or on-demand by ``object_type``."""

    entry_uuid: str
    unique_id: str
    patient_id: str  # CX, affinity domain
    mime_type: str
    object_type: ObjectType = ObjectType.STABLE_DOCUMENT
    status: Status = Status.APPROVED
    logical_id: str | None = None
    version: str = "1"
    home_community_id: str | None = None
    title: str | None = None
    comments: str | None = None
    class_code: Code | None = None
    type_code: Code | None = None
    format_code: Code | None = None
    healthcare_facility_type_code: Code | None = None
    practice_setting_code: Code | None = None
    confidentiality_codes: tuple[Code, ...] = ()
    event_codes: tuple[Code, ...] = ()
    authors: tuple[Author, ...] = ()
    creation_time: str | None = None  # DTM
    service_start_time: str | None = None
    service_stop_time: str | None = None
    hash: str | None = None  # SHA-1, lower-case hex
    size: int | None = None
    language_code: str | None = None
    legal_authenticator: str | None = None  # XCN
    source_patient_id: str | None = None  # CX
    source_patient_info: tuple[str, ...] = ()  # PID-x lines
    repository_unique_id: str | None = None
    uri: str | None = None
    reference_ids: tuple[str, ...] = ()  # CXi
    document_availability: str | None = None
    limited_metadata: bool = False
    #: Slots the hub does not interpret; kept and returned as submitted.
    extra_slots: tuple[Slot, ...] = ()


@dataclass(frozen=True, slots=True)
class SubmissionSet:
    """An XDSSubmissionSet (ITI TF-3 4.2.3.3)."""

    entry_uuid: str
    unique_id: str
    source_id: str
    patient_id: str
    submission_time: str | None = None  # DTM
    content_type_code: Code | None = None
    status: Status = Status.APPROVED
    logical_id: str | None = None
    version: str = "1"
    home_community_id: str | None = None
    title: str | None = None
    comments: str | None = None
    authors: tuple[Author, ...] = ()
    intended_recipients: tuple[str, ...] = ()
    limited_metadata: bool = False
    extra_slots: tuple[Slot, ...] = ()


@dataclass(frozen=True, slots=True)
class Folder:
    """An XDSFolder (ITI TF-3 4.2.3.4)."""

    entry_uuid: str
    unique_id: str
    patient_id: str
    codes: tuple[Code, ...] = ()
    status: Status = Status.APPROVED
    logical_id: str | None = None
    version: str = "1"
    home_community_id: str | None = None
    title: str | None = None
    comments: str | None = None
    last_update_time: str | None = None  # DTM, set by the registry
    limited_metadata: bool = False
    extra_slots: tuple[Slot, ...] = ()


@dataclass(frozen=True, slots=True)
class Association:
    """An ebRIM Association between two registry objects (ITI TF-3 4.2.2)."""

    entry_uuid: str
    association_type: AssociationType
    source: str
    target: str
    status: Status = Status.APPROVED
    home_community_id: str | None = None
    #: The value of the SubmissionSetStatus slot ("Original" / "Reference") on HasMember from a SubmissionSet.
    submission_set_status: str | None = None
    #: Slots other than SubmissionSetStatus (e.g. PreviousVersion, NewStatus of ITI-57).
    extra_slots: tuple[Slot, ...] = ()
    #: Classifications of the association itself (e.g. the documentation of an XFRM).
    extra_classifications: tuple[Code, ...] = ()


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """A reference to a registry object not carried in the message."""

    id: str
    home_community_id: str | None = None


RegistryObject = DocumentEntry | SubmissionSet | Folder | Association


@dataclass(frozen=True, slots=True)
class Submission:
    """The content of a SubmitObjectsRequest (ITI-41 / ITI-42) after parsing.

    Symbolic ids are still as submitted; :func:`xds_hub.domain.validate` assigns UUIDs.
    """

    submission_set: SubmissionSet
    documents: tuple[DocumentEntry, ...] = ()
    folders: tuple[Folder, ...] = ()
    associations: tuple[Association, ...] = ()
    object_refs: tuple[ObjectRef, ...] = ()
    #: ITI-41 only: DocumentEntry id -> attachment reference (XOP cid or inline key) of its document.
    document_refs: dict[str, str] = field(default_factory=dict)

    def all_ids(self) -> list[str]:
        return [
            self.submission_set.entry_uuid,
            *(d.entry_uuid for d in self.documents),
            *(f.entry_uuid for f in self.folders),
            *(a.entry_uuid for a in self.associations),
        ]
