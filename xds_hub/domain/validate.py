"""Validation of a submission before it touches the database (ITI TF-2 3.42.4.1.3, 3.41.4.1.3).

:func:`validate_submission` applies every rule a Document Registry (ITI-42) or Document
Repository (ITI-41) checks on the metadata alone: attribute rules per object
(:mod:`.validate_objects`), symbolic ids, association rules (ITI TF-3 4.2.2), one patient per
submission, uniqueIds unique within the message, codes of the affinity domain and, for ITI-41,
one document per DocumentEntry.  All problems are collected into one
:class:`~xds_hub.errors.XdsError`.  Rules that need the registry's content (known patient,
uniqueId already registered, RPLC target approved ...) live in the registry package.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TypeVar

from xds_hub.config import AffinityDomain
from xds_hub.domain.evolve import evolve
from xds_hub.domain.metadata import Association, Code, DocumentEntry, Folder, Submission, SubmissionSet
from xds_hub.domain.validate_objects import Findings, check_document, check_folder, check_submission_set
from xds_hub.domain.vocabulary import (
    RELATIONSHIP_ASSOCIATIONS,
    REPLACING_ASSOCIATIONS,
    AssociationType,
    Status,
    SubmissionSetStatus,
)
from xds_hub.errors import ErrorCode, XdsError

__all__ = ["code_allowed", "codes_of", "is_uuid_urn", "new_uuid", "validate_submission"]

#: Association types a Document Source may not submit with ITI-41/42 (Metadata Update only).
_Entry = TypeVar("_Entry", DocumentEntry, Folder, SubmissionSet)

_UPDATE_ONLY = frozenset({AssociationType.UPDATE_AVAILABILITY_STATUS, AssociationType.SUBMIT_ASSOCIATION})


def new_uuid() -> str:
    """A fresh ``urn:uuid:`` id."""
    return f"urn:uuid:{uuid.uuid4()}"


def is_uuid_urn(value: str) -> bool:
    """True for ``urn:uuid:<UUID>`` (a registry id); anything else is a symbolic id."""
    if not value.lower().startswith("urn:uuid:"):
        return False
    try:
        uuid.UUID(value[9:])
    except ValueError:
        return False
    return len(value) == 45


def code_allowed(kind: str, code: Code, domain: AffinityDomain) -> bool:
    """Whether the affinity domain accepts ``code`` for ``kind`` (e.g. "classCode").

    Any code is accepted when the domain has no ``[codes]`` table or no list for this kind.
    """
    if domain.codes is None:
        return True
    allowed = domain.codes.get(kind)
    if allowed is None:
        return True
    return any(entry.code == code.code and entry.scheme == code.scheme for entry in allowed)


def codes_of(obj: DocumentEntry | SubmissionSet | Folder) -> list[tuple[str, Code]]:
    """The coded attributes of an object as (code kind of the ``[codes]`` table, code)."""
    if isinstance(obj, DocumentEntry):
        singles = (
            ("classCode", obj.class_code),
            ("typeCode", obj.type_code),
            ("formatCode", obj.format_code),
            ("healthcareFacilityTypeCode", obj.healthcare_facility_type_code),
            ("practiceSettingCode", obj.practice_setting_code),
        )
        return [
            *((kind, c) for kind, c in singles if c is not None),
            *(("confidentialityCode", c) for c in obj.confidentiality_codes),
            *(("eventCodeList", c) for c in obj.event_codes),
        ]
    if isinstance(obj, SubmissionSet):
        return [("contentTypeCode", obj.content_type_code)] if obj.content_type_code else []
    return [("folderCodeList", c) for c in obj.codes]


def validate_submission(
    sub: Submission,
    domain: AffinityDomain,
    *,
    for_repository: bool,
    new_uuid: Callable[[], str] = new_uuid,
    allow_on_demand: bool = False,
) -> Submission:
    """Check ``sub`` (ITI-42, or ITI-41 when ``for_repository``) and give its objects UUIDs.

    Returns the submission with every symbolic id replaced by a fresh ``urn:uuid:`` (references
    in associations and ``document_refs`` rewritten), lid set to the id, version "1" and status
    Approved.  Raises XdsError with every problem found, each located by the submitted object id.
    """
    f = Findings(for_repository)
    _check_ids(f, sub)
    check_submission_set(f, sub.submission_set)
    for doc in sub.documents:
        check_document(f, doc, allow_on_demand=allow_on_demand)
    for folder in sub.folders:
        check_folder(f, folder)
    _check_associations(f, sub)
    _check_patients(f, sub)
    _check_unique_ids(f, sub)
    _check_codes(f, sub, domain)
    if for_repository:
        _check_documents_attached(f, sub)
    if f.problems:
        raise XdsError(f.problems)
    return _assign_uuids(sub, new_uuid)


def _entries(sub: Submission) -> list[SubmissionSet | DocumentEntry | Folder]:
    return [sub.submission_set, *sub.documents, *sub.folders]


def _check_ids(f: Findings, sub: Submission) -> None:
    """Ids unique in the message; lid absent or equal to the id (a first version)."""
    counts = Counter(sub.all_ids())
    for obj_id, n in counts.items():
        if not obj_id:
            f.meta("an object has an empty id", "")
        elif n > 1:
            f.meta(f"id {obj_id} is used by {n} objects of the submission", obj_id)
    for obj in _entries(sub):
        if obj.logical_id is not None and obj.logical_id != obj.entry_uuid:
            f.meta(
                f"lid '{obj.logical_id}' differs from id; a new object's lid must be absent or equal its id "
                "(new versions are submitted with ITI-57)",
                obj.entry_uuid,
            )


def _check_associations(f: Findings, sub: Submission) -> None:
    """ITI TF-3 4.2.2: HasMember and document relationship rules; every entry is a member."""
    ss_id = sub.submission_set.entry_uuid
    docs = {d.entry_uuid for d in sub.documents}
    folders = {x.entry_uuid for x in sub.folders}
    assocs = {a.entry_uuid for a in sub.associations}
    in_message = docs | folders | assocs | {ss_id}
    members: set[str] = set()
    for a in sub.associations:
        loc = a.entry_uuid
        for role, ref in (("sourceObject", a.source), ("targetObject", a.target)):
            if ref not in in_message and not is_uuid_urn(ref):
                f.meta(
                    f"{role} '{ref}' is neither an object of this submission nor a registry object UUID",
                    loc,
                )
        if a.source == a.target:
            f.meta("an Association cannot link an object to itself", loc)
        if a.association_type in _UPDATE_ONLY:
            f.meta(f"{a.association_type.value} associations belong to Metadata Update (ITI-57)", loc)
        elif a.association_type is AssociationType.HAS_MEMBER:
            if a.source == ss_id:
                members.add(a.target)
            _check_has_member(f, a, ss_id, docs, folders, assocs)
        elif a.association_type in RELATIONSHIP_ASSOCIATIONS:
            _check_relationship(f, a, docs, in_message)
    entries: list[DocumentEntry | Folder] = [*sub.documents, *sub.folders]
    for obj in entries:
        if obj.entry_uuid not in members:
            kind = "DocumentEntry" if isinstance(obj, DocumentEntry) else "Folder"
            f.meta(
                f"{kind} {obj.entry_uuid} is not a member of the SubmissionSet "
                "(no HasMember association from the SubmissionSet to it)",
                obj.entry_uuid,
            )


def _check_has_member(
    f: Findings, a: Association, ss_id: str, docs: set[str], folders: set[str], assocs: set[str]
) -> None:
    loc = a.entry_uuid
    if a.extra_classifications:
        f.meta("a HasMember association carries no documentation classification", loc)
    status = a.submission_set_status
    if status is not None and status not in set(SubmissionSetStatus):
        f.meta(f"SubmissionSetStatus '{status}' is neither Original nor Reference", loc)
        status = None
    if a.source == ss_id:
        if a.target in docs:
            if a.submission_set_status is None:
                f.meta(
                    "a HasMember from the SubmissionSet to a DocumentEntry needs a SubmissionSetStatus slot",
                    loc,
                )
            elif status == SubmissionSetStatus.REFERENCE:
                f.meta(
                    f"SubmissionSetStatus is Reference but {a.target} is submitted in this message",
                    loc,
                )
        elif a.target not in folders | assocs and status == SubmissionSetStatus.ORIGINAL:
            f.meta(f"SubmissionSetStatus is Original but {a.target} is not submitted in this message", loc)
        return
    if a.source in docs | assocs:
        f.meta("a HasMember association must have the SubmissionSet or a Folder as source", loc)
    elif a.target in folders | assocs or a.target == ss_id:
        f.meta("a Folder HasMember association must have a DocumentEntry as target", loc)


def _check_relationship(f: Findings, a: Association, docs: set[str], in_message: set[str]) -> None:
    """RPLC, XFRM, APND, XFRM_RPLC, signs, IsSnapshotOf: source is a new DocumentEntry (ITI TF-3 4.2.2.2)."""
    loc = a.entry_uuid
    name = a.association_type.value.rsplit(":", 1)[-1]
    if a.source not in docs:
        f.meta(f"the source of a {name} association must be a DocumentEntry of this submission", loc)
    if a.target in in_message and a.target not in docs:
        f.meta(f"the target of a {name} association must be a DocumentEntry", loc)
    elif a.target in docs and a.association_type in REPLACING_ASSOCIATIONS:
        f.meta(f"the target of a {name} association must be a document already in the registry", loc)


def _check_patients(f: Findings, sub: Submission) -> None:
    """One patient per submission: every DocumentEntry and Folder has the SubmissionSet's patientId."""
    expected = sub.submission_set.patient_id
    entries: list[DocumentEntry | Folder] = [*sub.documents, *sub.folders]
    for obj in entries:
        if obj.patient_id and expected and obj.patient_id != expected:
            kind = "DocumentEntry" if isinstance(obj, DocumentEntry) else "Folder"
            f.add(
                ErrorCode.PATIENT_ID_DOES_NOT_MATCH,
                f"{kind} patientId '{obj.patient_id}' differs from the SubmissionSet patientId '{expected}'",
                obj.entry_uuid,
            )


def _check_unique_ids(f: Findings, sub: Submission) -> None:
    """ITI TF-3 4.2.4.1: no uniqueId twice within the message (any object kind)."""
    code = (
        ErrorCode.REPOSITORY_DUPLICATE_UNIQUE_ID_IN_MESSAGE
        if f.for_repository
        else ErrorCode.REGISTRY_DUPLICATE_UNIQUE_ID_IN_MESSAGE
    )
    first: dict[str, str] = {}
    for obj in _entries(sub):
        if not obj.unique_id:
            continue
        if obj.unique_id in first:
            f.add(code, f"uniqueId {obj.unique_id} is also used by {first[obj.unique_id]}", obj.entry_uuid)
        else:
            first[obj.unique_id] = obj.entry_uuid


def _check_codes(f: Findings, sub: Submission, domain: AffinityDomain) -> None:
    """Codes must come from the affinity domain's lists where it has them (ITI TF-3 4.2.3.1.6)."""
    for obj in _entries(sub):
        for kind, code in codes_of(obj):
            if not code.code or not code.scheme:
                f.meta(f"{kind} needs a code and a codingScheme", obj.entry_uuid)
            elif not code_allowed(kind, code, domain):
                f.meta(
                    f"{kind} '{code.code}' (codingScheme '{code.scheme}') is not in the affinity domain's "
                    f"{kind} list",
                    obj.entry_uuid,
                )


def _check_documents_attached(f: Findings, sub: Submission) -> None:
    """ITI TF-2 3.41.4.1.3: one attached document per DocumentEntry and no document without one."""
    doc_ids = {d.entry_uuid for d in sub.documents}
    for doc in sub.documents:
        if doc.entry_uuid not in sub.document_refs:
            f.add(
                ErrorCode.MISSING_DOCUMENT,
                f"DocumentEntry {doc.entry_uuid} has no attached document",
                doc.entry_uuid,
            )
    for ref_id in sub.document_refs:
        if ref_id not in doc_ids:
            f.add(ErrorCode.MISSING_DOCUMENT_METADATA, f"document {ref_id} has no DocumentEntry", ref_id)


def _assign_uuids(sub: Submission, make: Callable[[], str]) -> Submission:
    ids: Iterable[str] = sub.all_ids()
    mapping = {old: make() for old in ids if not is_uuid_urn(old)}

    def m(value: str) -> str:
        return mapping.get(value, value)

    def entry(obj: _Entry) -> _Entry:
        new_id = m(obj.entry_uuid)
        unchanged = (obj.entry_uuid, obj.logical_id, obj.version) == (new_id, new_id, "1")
        if unchanged and obj.status is Status.APPROVED:
            return obj
        return evolve(obj, entry_uuid=new_id, logical_id=new_id, version="1", status=Status.APPROVED)

    def association(a: Association) -> Association:
        ends = (m(a.entry_uuid), m(a.source), m(a.target))
        if ends == (a.entry_uuid, a.source, a.target) and a.status is Status.APPROVED:
            return a
        return evolve(a, entry_uuid=ends[0], source=ends[1], target=ends[2], status=Status.APPROVED)

    return evolve(
        sub,
        submission_set=entry(sub.submission_set),
        documents=tuple(entry(d) for d in sub.documents),
        folders=tuple(entry(x) for x in sub.folders),
        associations=tuple(association(a) for a in sub.associations),
        document_refs={m(k): v for k, v in sub.document_refs.items()},
    )
