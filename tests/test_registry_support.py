"""Builders for registry tests: known-good submissions made in Python (no ebXML), and helpers to
register them and count rows.  (No tests here; the registry test modules import it.)
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from xds_hub.config import Settings
from xds_hub.domain.metadata import (
    Association,
    Author,
    Code,
    DocumentEntry,
    Folder,
    Submission,
    SubmissionSet,
)
from xds_hub.domain.vocabulary import AssociationType, ObjectType, SubmissionSetStatus
from xds_hub.errors import ErrorCode, XdsError
from xds_hub.registry.patients import add_patient
from xds_hub.registry.register import RegistrationResult, register_submission
from xds_hub.storage import schema
from xds_hub.storage.db import read_transaction, write_transaction
from xds_hub.storage.stores import Stores

SETTINGS = Settings()
AUTHORITY = SETTINGS.domain.assigning_authority
REPOSITORY = "1.3.6.1.4.1.21367.13.80.1"
REGISTRY_TABLES = (
    schema.registry_object,
    schema.document_entry,
    schema.submission_set,
    schema.folder,
    schema.association,
    schema.object_code,
    schema.object_author,
    schema.object_reference_id,
)


def new_uid() -> str:
    return f"2.25.{uuid.uuid4().int}"


def new_urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def new_pid() -> str:
    return f"P{uuid.uuid4().hex[:10].upper()}^^^&{AUTHORITY}&ISO"


def document(pid: str, content: bytes | None = None, **changes: Any) -> DocumentEntry:
    """A complete Stable DocumentEntry as a Document Repository would register it."""
    data = content if content is not None else uuid.uuid4().bytes
    doc = DocumentEntry(
        entry_uuid=new_urn(),
        unique_id=new_uid(),
        patient_id=pid,
        mime_type="text/plain",
        title="Discharge summary",
        class_code=Code("REPORTS", "1.3.6.1.4.1.19376.1.2.6.1", "Reports"),
        type_code=Code("18842-5", "2.16.840.1.113883.6.1", "Discharge summary"),
        format_code=Code("urn:ihe:iti:xds:2017:mimeTypeSufficient", "1.3.6.1.4.1.19376.1.2.3", "Mime"),
        healthcare_facility_type_code=Code("HOSP", "2.16.840.1.113883.5.11", "Hospital"),
        practice_setting_code=Code("394802001", "2.16.840.1.113883.6.96", "General medicine"),
        confidentiality_codes=(Code("N", "2.16.840.1.113883.5.25", "normal"),),
        event_codes=(Code("T-D4909", "1.2.3", "Kidney"), Code("F-00001", "1.2.3", "Fever")),
        authors=(Author(person="^Welby^Marcus^^^Dr", institutions=("Hopital A",)),),
        creation_time="20240102030405",
        service_start_time="20240101",
        service_stop_time="20240102",
        hash=hashlib.sha1(data).hexdigest(),
        size=len(data),
        language_code="en-US",
        source_patient_id="L123^^^&1.2.3.100&ISO",
        repository_unique_id=REPOSITORY,
        reference_ids=("ORD-1^^^&1.2.3.100&ISO^urn:ihe:iti:xds:2013:order",),
    )
    return replace(doc, **changes)


def on_demand(pid: str, **changes: Any) -> DocumentEntry:
    return document(pid, object_type=ObjectType.ON_DEMAND_DOCUMENT, hash=None, size=None, **changes)


def submission_set(pid: str, **changes: Any) -> SubmissionSet:
    ss = SubmissionSet(
        entry_uuid=new_urn(),
        unique_id=new_uid(),
        source_id="1.2.3.100.1",
        patient_id=pid,
        submission_time="20240102030405",
        content_type_code=Code("34133-9", "2.16.840.1.113883.6.1", "Summary"),
        authors=(Author(person="^Welby^Marcus^^^Dr"),),
    )
    return replace(ss, **changes)


def a_folder(pid: str, **changes: Any) -> Folder:
    fol = Folder(
        entry_uuid=new_urn(),
        unique_id=new_uid(),
        patient_id=pid,
        title="Episode",
        codes=(Code("EPI", "1.2.3.4", "Episode"),),
    )
    return replace(fol, **changes)


def assoc(kind: AssociationType, source: str, target: str, **changes: Any) -> Association:
    return replace(Association(new_urn(), kind, source, target), **changes)


def member(source: str, target: str, status: SubmissionSetStatus | None = None) -> Association:
    return Association(
        new_urn(),
        AssociationType.HAS_MEMBER,
        source,
        target,
        submission_set_status=status.value if status else None,
    )


def package(
    pid: str,
    documents: tuple[DocumentEntry, ...] = (),
    folders: tuple[Folder, ...] = (),
    extra: tuple[Association, ...] = (),
    ss: SubmissionSet | None = None,
) -> Submission:
    """A SubmissionSet holding ``documents`` and ``folders`` (HasMember Original), plus ``extra``
    associations, each of which (and each Folder->document membership) the SubmissionSet also holds."""
    ss = ss or submission_set(pid)
    assocs: list[Association] = []
    contents: list[DocumentEntry | Folder] = [*documents, *folders]
    for obj in contents:
        assocs.append(member(ss.entry_uuid, obj.entry_uuid, SubmissionSetStatus.ORIGINAL))
    for extra_assoc in extra:
        assocs.append(extra_assoc)
        if extra_assoc.association_type is AssociationType.HAS_MEMBER and extra_assoc.source != ss.entry_uuid:
            assocs.append(member(ss.entry_uuid, extra_assoc.entry_uuid))
    return Submission(ss, documents, folders, tuple(assocs))


def known_patient(stores: Stores, pid: str | None = None) -> str:
    pid = pid or new_pid()
    with write_transaction(stores.engine) as conn:
        add_patient(conn, pid, SETTINGS.domain)
    return pid


def register(stores: Stores, sub: Submission, now: datetime | None = None) -> RegistrationResult:
    with write_transaction(stores.engine) as conn:
        return register_submission(conn, sub, SETTINGS, now=now)


def rejected(stores: Stores, sub: Submission) -> XdsError:
    with pytest.raises(XdsError) as info:
        register(stores, sub)
    return info.value


def codes(error: XdsError) -> list[ErrorCode]:
    return [p.code for p in error.problems]


def counts(engine: Engine) -> dict[str, int]:
    with read_transaction(engine) as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in REGISTRY_TABLES
        }


def status_of(engine: Engine, object_id: str) -> str:
    with read_transaction(engine) as conn:
        return str(
            conn.execute(
                select(schema.registry_object.c.status).where(schema.registry_object.c.id == object_id)
            ).scalar_one()
        )


def fixed_now() -> datetime:
    return datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
