"""The DICOM audit message (PS3.15 A.5.1), as frozen objects; :mod:`xds_hub.audit.xml` writes it.

One :class:`AuditMessage` per audited event: what happened (:class:`EventIdentification`), who took
part (:class:`ActiveParticipant`: the requesting node, the hub, a human if known), who reports it
(:class:`AuditSource`) and what it was about (:class:`ParticipantObject`: patient, submission set,
document, study, query).  Field names follow the schema's element and attribute names.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


@dataclass(frozen=True, slots=True)
class Coded:
    """A CodedValueType: ``csd-code``, ``codeSystemName``, ``originalText`` (mandatory in PS3.15)."""

    code: str
    system: str
    text: str


class Action(StrEnum):
    """EventActionCode."""

    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"


class Outcome(IntEnum):
    """EventOutcomeIndicator."""

    SUCCESS = 0
    MINOR_FAILURE = 4  # partial success, a warning
    SERIOUS_FAILURE = 8  # the request failed (an IHE error, a fault)
    MAJOR_FAILURE = 12  # the application failed (internal error)


class NapType(IntEnum):
    """NetworkAccessPointTypeCode."""

    MACHINE_NAME = 1
    IP_ADDRESS = 2
    TELEPHONE = 3
    EMAIL = 4
    URI = 5


class ObjectType(IntEnum):
    """ParticipantObjectTypeCode."""

    PERSON = 1
    SYSTEM_OBJECT = 2
    ORGANIZATION = 3
    OTHER = 4


class ObjectRole(IntEnum):
    """ParticipantObjectTypeCodeRole (the values the hub uses)."""

    PATIENT = 1
    LOCATION = 2
    REPORT = 3
    RESOURCE = 4
    USER = 6
    LIST = 7
    SECURITY_RESOURCE = 13
    DATA_REPOSITORY = 17
    JOB = 20
    QUERY = 24


class LifeCycle(IntEnum):
    """ParticipantObjectDataLifeCycle (the values the hub uses)."""

    ORIGINATION = 1
    IMPORT = 2
    AMENDMENT = 3
    ACCESS = 6
    EXPORT = 10
    DISCLOSURE = 11
    LOGICAL_DELETION = 14
    PERMANENT_ERASURE = 15


@dataclass(frozen=True, slots=True)
class EventIdentification:
    event_id: Coded
    action: Action
    outcome: Outcome
    time: dt.datetime
    type_codes: tuple[Coded, ...] = ()
    outcome_description: str | None = None


@dataclass(frozen=True, slots=True)
class ActiveParticipant:
    user_id: str
    requestor: bool
    roles: tuple[Coded, ...] = ()
    alternative_user_id: str | None = None
    user_name: str | None = None
    network_access_point: str | None = None
    network_access_point_type: NapType | None = None


@dataclass(frozen=True, slots=True)
class AuditSource:
    source_id: str
    enterprise_site_id: str | None = None
    type_codes: tuple[Coded, ...] = ()


@dataclass(frozen=True, slots=True)
class SopClass:
    """ParticipantObjectDescription/SOPClass: the instances of one SOP class in a study."""

    uid: str
    instances: tuple[str, ...] = ()
    count: int | None = None

    @property
    def number_of_instances(self) -> int:
        return self.count if self.count is not None else len(self.instances)


@dataclass(frozen=True, slots=True)
class DicomDescription:
    """ParticipantObjectDescription (DICOMObjectDescriptionContents) of a study."""

    accessions: tuple[str, ...] = ()
    sop_classes: tuple[SopClass, ...] = ()
    mpps: tuple[str, ...] = ()
    encrypted: bool | None = None
    anonymized: bool | None = None


@dataclass(frozen=True, slots=True)
class ParticipantObject:
    object_id: str
    id_type: Coded
    object_type: ObjectType | None = None
    role: ObjectRole | None = None
    life_cycle: LifeCycle | None = None
    sensitivity: str | None = None
    name: str | None = None
    query: bytes | None = None
    #: ParticipantObjectDetail (type, value): values are raw bytes, base64-encoded when written.
    details: tuple[tuple[str, bytes], ...] = ()
    descriptions: tuple[DicomDescription, ...] = ()


@dataclass(frozen=True, slots=True)
class AuditMessage:
    event: EventIdentification
    participants: tuple[ActiveParticipant, ...]
    source: AuditSource
    objects: tuple[ParticipantObject, ...] = field(default=())

    @property
    def patient_ids(self) -> tuple[str, ...]:
        """The ParticipantObjectIDs of the patient objects (role 1)."""
        return tuple(o.object_id for o in self.objects if o.role is ObjectRole.PATIENT)

    @property
    def requestor(self) -> ActiveParticipant | None:
        return next((p for p in self.participants if p.requestor), None)
