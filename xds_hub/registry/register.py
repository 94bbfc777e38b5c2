"""Registering a validated submission in the Document Registry.

This is the database half of Register Document Set-b [ITI-42] (ITI TF-2 3.42.4.1.3 "Expected
Actions"), shared in-process by Provide and Register Document Set-b [ITI-41] and the imaging
RAD-68 publisher: they call :func:`register_submission` inside the same
:func:`~xds_hub.storage.db.write_transaction` in which they insert their ``repository_document``
rows, so a submission is registered whole or not at all.  Everything that can be checked without
the database (structure, symbolic ids, codes, one patient per submission, uniqueIds unique within
the message ...) is :func:`xds_hub.domain.validate.validate_submission`'s job and has been done.

Rules (each problem found is reported; nothing is written if there is any):

=====================================================================  ==================================
rule                                                                   error code
=====================================================================  ==================================
every patient ID is known to the affinity domain and not merged away   XDSUnknownPatientId
  (ITI TF-2 3.42.4.1.3, Patient Identity Feed)
an entryUUID of the submission is already registered                   XDSRegistryMetadataError
a logicalID different from the entryUUID (only ITI-57 makes versions)  XDSRegistryMetadataError
SubmissionSet / Folder uniqueId already registered                     XDSDuplicateUniqueIdInRegistry
DocumentEntry uniqueId registered with another hash / size             XDSNonIdenticalHash / ...Size
DocumentEntry uniqueId registered to a SubmissionSet or Folder         XDSRegistryMetadataError
an Association end is neither in the submission nor in the registry    UnresolvedReferenceException
an Association references a Deprecated DocumentEntry                   XDSRegistryDeprecatedDocumentError
RPLC/XFRM/APND/XFRM_RPLC/signs/IsSnapshotOf source is not a new        XDSRegistryMetadataError
  DocumentEntry, target not a DocumentEntry, or (RPLC, XFRM_RPLC,
  IsSnapshotOf) target not a registered DocumentEntry
source and target DocumentEntries (relationships; Folder membership)   XDSPatientIdDoesNotMatch
  of different patients
IsSnapshotOf target not On-Demand, or source not Stable (4.2.2.2.6)    XDSRegistryMetadataError
the same document replaced twice in one submission                     XDSRegistryMetadataError
HasMember SubmissionSet -> registered DocumentEntry not "Reference"    XDSRegistryMetadataError
HasMember from anything but this SubmissionSet or a Folder, Folder     XDSRegistryMetadataError
  member that is not a DocumentEntry, member of a non-Approved Folder
UpdateAvailabilityStatus / SubmitAssociation (ITI-57 only)             XDSRegistryMetadataError
a value longer than the registry stores (see registry.store)           XDSRegistryMetadataError
=====================================================================  ==================================

Error codes follow ITI TF-3 Table 4.2.4.1-2: *UnresolvedReferenceException* "the recipient cannot
resolve an entryUUID reference in the transaction" (for any reference, replaced documents
included); *XDSRegistryDeprecatedDocumentError* "an Association referencing a deprecated
document".

What the registry does on success (ITI TF-2 3.42.4.1.3, ITI TF-3 4.2.2):

- every new object becomes Approved, with logicalID = entryUUID and version 1 (Metadata Update);
- Folders of the submission get lastUpdateTime = now; so do registered Folders that gain members;
- RPLC and XFRM_RPLC targets become Deprecated, and so, transitively, do the Approved addenda
  (APND) and transformations (XFRM) of a replaced document, as the NIST registry simulator and
  dcm4chee-xds do;
- the replacement document is added to every Folder of the replaced one (a HasMember from the
  Folder, and one from the SubmissionSet to that Association, as if the source had sent them).

A DocumentEntry whose uniqueId is registered with the same hash and size is a resubmission of the
same document and is registered as a further DocumentEntry (see
``_Registration._check_document_unique_id`` for the rule and its sources).

A SubmissionSet may reference (HasMember, SubmissionSetStatus=Reference) a registered DocumentEntry
of another patient: the TF only requires one patient for the objects *submitted* together, and the
NIST registry simulator accepts such references.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from sqlalchemy import Connection

from xds_hub.config import Settings
from xds_hub.domain.evolve import evolve
from xds_hub.domain.metadata import (
    Association,
    DocumentEntry,
    Folder,
    RegistryObject,
    Submission,
    SubmissionSet,
)
from xds_hub.domain.vocabulary import (
    REPLACING_ASSOCIATIONS,
    AssociationType,
    ObjectType,
    Status,
    SubmissionSetStatus,
)
from xds_hub.errors import ErrorCode, Problem, XdsError
from xds_hub.registry import store
from xds_hub.registry.index_rows import Tables, index_rows, length_problems, merged, with_seq
from xds_hub.registry.insert import ExtraInsert, insert_rows
from xds_hub.storage import codec

KIND_NAMES: Final = {"D": "DocumentEntry", "S": "SubmissionSet", "F": "Folder", "A": "Association"}


@dataclass(frozen=True, slots=True)
class RegistrationResult:
    """What :func:`register_submission` registered."""

    #: The submission as stored: registry-assigned attributes filled in, and the HasMember
    #: associations the registry added (replacement documents joining their predecessor's Folders).
    submission: Submission
    #: registry_object.seq shared by the objects of this submission.
    seq: int
    #: Registered DocumentEntries that this submission made Deprecated.
    deprecated_ids: tuple[str, ...] = ()
    #: Registered Folders whose lastUpdateTime this submission set.
    updated_folder_ids: tuple[str, ...] = ()
    #: Warnings for the RegistryResponse (none today: every submitted attribute is kept).
    warnings: tuple[Problem, ...] = ()
    #: What the ``extra`` insert's RETURNING returned (see :func:`register_submission`).
    extra_returned: tuple[tuple[Any, ...], ...] = ()

    @property
    def submission_set_id(self) -> str:
        return self.submission.submission_set.entry_uuid

    @property
    def document_ids(self) -> tuple[str, ...]:
        return tuple(d.entry_uuid for d in self.submission.documents)

    @property
    def folder_ids(self) -> tuple[str, ...]:
        return tuple(f.entry_uuid for f in self.submission.folders)

    @property
    def association_ids(self) -> tuple[str, ...]:
        return tuple(a.entry_uuid for a in self.submission.associations)


def dtm(moment: datetime) -> str:
    """``moment`` as an XDS DTM in UTC to the second (YYYYMMDDhhmmss)."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def _seq(moment: datetime | None) -> int:
    if moment is None:
        return time.time_ns()
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


@dataclass(frozen=True, slots=True)
class _End:
    """An association end, new (in the submission) or registered."""

    id: str
    kind: str
    patient_id: str | None
    status: str
    object_type: str | None
    new: bool

    @property
    def approved(self) -> bool:
        return self.status == Status.APPROVED

    @property
    def label(self) -> str:
        return f"{'' if self.new else 'registered '}{KIND_NAMES[self.kind]} {self.id}"


class _Registration:
    """The checks of one submission against the registry; collects problems, then writes."""

    def __init__(self, conn: Connection, submission: Submission) -> None:
        self.conn = conn
        self.sub = submission
        self.ss = submission.submission_set
        objects: list[RegistryObject] = [
            self.ss,
            *submission.documents,
            *submission.folders,
            *submission.associations,
        ]
        self.new: dict[str, RegistryObject] = {o.entry_uuid: o for o in objects}
        ends = {e for a in submission.associations for e in (a.source, a.target)}
        packages: list[SubmissionSet | Folder] = [self.ss, *submission.folders]
        pids = {self.ss.patient_id, *(d.patient_id for d in submission.documents)}
        pids.update(f.patient_id for f in submission.folders)
        #: The patient IDs of the submitted objects.
        self.patient_ids = pids
        found = store.registration_lookup(
            conn,
            set(self.new) | ends,
            [p.unique_id for p in packages] + [d.unique_id for d in submission.documents],
            pids,
        )
        #: Registered objects with an id of the submission or referenced by one of its associations.
        self.registered = found.by_id
        #: Registered objects carrying a uniqueId of the submission, by uniqueId.
        self.by_unique_id = found.by_unique_id
        #: Patient table rows (patient ID -> merged_into) of the submission's patient IDs.
        self.patients = found.patients
        self.problems: list[Problem] = []
        #: (new document, registered document it replaces) for RPLC and XFRM_RPLC.
        self.replaced: list[tuple[str, str]] = []
        #: Registered Folders gaining members.
        self.touched: set[str] = set()

    def fail(self, code: ErrorCode, context: str, location: str = "") -> None:
        self.problems.append(Problem(code, context, location))

    def end(self, object_id: str) -> _End | None:
        obj = self.new.get(object_id)
        if obj is not None:
            return _End(
                id=object_id,
                kind=codec.KIND_OF[type(obj)],
                patient_id=getattr(obj, "patient_id", None),
                status=Status.APPROVED,
                object_type=obj.object_type if isinstance(obj, DocumentEntry) else None,
                new=True,
            )
        stored = self.registered.get(object_id)
        if stored is None:
            return None
        return _End(
            id=object_id,
            kind=stored.kind,
            patient_id=stored.patient_id,
            status=stored.status,
            object_type=stored.object_type,
            new=False,
        )

    # -- patients, ids, uniqueIds ------------------------------------------------------------

    def check_patients(self) -> None:
        """Every patient ID is in the patient table and not merged away (as patients.is_known)."""
        for pid in sorted(self.patient_ids):
            if pid not in self.patients or self.patients[pid] is not None:
                self.fail(
                    ErrorCode.UNKNOWN_PATIENT_ID,
                    f"patient ID {pid} is not known to the affinity domain (or was merged into another)",
                    pid,
                )

    def check_ids(self) -> None:
        for object_id, obj in self.new.items():
            if object_id in self.registered:
                stored = self.registered[object_id]
                self.fail(
                    ErrorCode.REGISTRY_METADATA_ERROR,
                    f"entryUUID {object_id} is already registered (as {KIND_NAMES[stored.kind]})",
                    object_id,
                )
            lid = getattr(obj, "logical_id", None)
            if lid is not None and lid != object_id:
                self.fail(
                    ErrorCode.REGISTRY_METADATA_ERROR,
                    f"logicalID {lid} differs from entryUUID {object_id}: new versions of an object are "
                    "submitted with Update Document Set [ITI-57], not Register Document Set-b",
                    object_id,
                )

    def check_unique_ids(self) -> None:
        packages: list[SubmissionSet | Folder] = [self.ss, *self.sub.folders]
        found = self.by_unique_id
        for pkg in packages:
            for stored in found.get(pkg.unique_id, [])[:1]:
                self.fail(
                    ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY,
                    f"{type(pkg).__name__} uniqueId {pkg.unique_id} is already registered "
                    f"(to {KIND_NAMES[stored.kind]} {stored.id})",
                    pkg.entry_uuid,
                )
        for doc in self.sub.documents:
            self._check_document_unique_id(doc, found.get(doc.unique_id, []))

    def _check_document_unique_id(self, doc: DocumentEntry, stored: list[store.StoredObject]) -> None:
        """A registered uniqueId is a resubmission of the same document if hash and size agree.

        ITI TF-3 Table 4.2.4.1-2: XDSDuplicateUniqueIdInRegistry "cannot be thrown for DocumentEntry.
        See XDSNonIdenticalHash and XDSNonIdenticalSize" -- a DocumentEntry whose uniqueId is
        registered is a duplicate, an error only when its hash (XDSNonIdenticalHash) or size
        (XDSNonIdenticalSize) differ.  The same document submitted again (the content profiles take
        uniqueId from the document, e.g. a CDA id, so two parties submitting the same report share
        it) is registered as a further DocumentEntry: NIST test 12004 "R.b Document Resubmission"
        requires Success for it and XDSNonIdenticalHash for a different hash; dcm4chee-xds does the same.
        """
        others = [s for s in stored if s.kind != "D"]
        if others:
            self.fail(
                ErrorCode.REGISTRY_METADATA_ERROR,
                f"DocumentEntry uniqueId {doc.unique_id} is already registered to "
                f"{KIND_NAMES[others[0].kind]} {others[0].id}",
                doc.entry_uuid,
            )
            return
        if not stored:
            return
        first = stored[0]
        new_hash = doc.hash.lower() if doc.hash else None
        if new_hash != first.hash:
            self.fail(
                ErrorCode.NON_IDENTICAL_HASH,
                f"uniqueId {doc.unique_id} is already registered with hash {first.hash}, "
                f"this DocumentEntry has hash {new_hash}",
                doc.unique_id,
            )
        elif doc.size != first.size:
            self.fail(
                ErrorCode.NON_IDENTICAL_SIZE,
                f"uniqueId {doc.unique_id} is already registered with size {first.size}, "
                f"this DocumentEntry has size {doc.size}",
                doc.unique_id,
            )

    # -- associations --------------------------------------------------------------------------

    def check_associations(self) -> None:
        for assoc in self.sub.associations:
            source, target = self.end(assoc.source), self.end(assoc.target)
            missing = [
                (side, ref)
                for side, ref, end in (
                    ("sourceObject", assoc.source, source),
                    ("targetObject", assoc.target, target),
                )
                if end is None
            ]
            for side, ref in missing:
                self.fail(
                    ErrorCode.UNRESOLVED_REFERENCE,
                    f"{side} {ref} of Association {assoc.entry_uuid} is neither in the submission nor "
                    "in the registry",
                    assoc.entry_uuid,
                )
            if source is None or target is None:
                continue
            _RULES[assoc.association_type](self, assoc, source, target)

    def not_deprecated(self, assoc: Association, target: _End) -> bool:
        if target.kind == "D" and not target.approved:
            self.fail(
                ErrorCode.REGISTRY_DEPRECATED_DOCUMENT_ERROR,
                f"Association {assoc.entry_uuid} ({assoc.association_type.name}) references "
                f"{target.label}, which is Deprecated",
                assoc.entry_uuid,
            )
            return False
        return True

    def same_patient(self, assoc: Association, source: _End, target: _End) -> None:
        if source.patient_id != target.patient_id:
            self.fail(
                ErrorCode.PATIENT_ID_DOES_NOT_MATCH,
                f"Association {assoc.entry_uuid} ({assoc.association_type.name}) links {source.label} "
                f"of patient {source.patient_id} to {target.label} of patient {target.patient_id}",
                assoc.entry_uuid,
            )

    def metadata_error(self, assoc: Association, why: str) -> None:
        self.fail(
            ErrorCode.REGISTRY_METADATA_ERROR,
            f"Association {assoc.entry_uuid} ({assoc.association_type.name}): {why}",
            assoc.entry_uuid,
        )

    def has_member(self, assoc: Association, source: _End, target: _End) -> None:
        """HasMember (ITI TF-3 4.2.2.1): SubmissionSet -> any object, Folder -> DocumentEntry."""
        if source.id == self.ss.entry_uuid:
            if target.new:
                return
            if target.kind == "S":
                self.metadata_error(assoc, f"a SubmissionSet cannot contain {target.label}")
            elif target.kind == "D":
                if assoc.submission_set_status != SubmissionSetStatus.REFERENCE:
                    self.metadata_error(
                        assoc,
                        f"{target.label} was submitted earlier: its HasMember from the SubmissionSet "
                        "needs SubmissionSetStatus Reference",
                    )
                self.not_deprecated(assoc, target)
            return
        if source.kind != "F":
            self.metadata_error(
                assoc, f"source {source.label} is neither this submission's SubmissionSet nor a Folder"
            )
            return
        if target.kind != "D":
            self.metadata_error(assoc, f"a Folder can only contain DocumentEntries, not {target.label}")
            return
        if not source.new:
            if not source.approved:
                self.metadata_error(assoc, f"{source.label} is not Approved")
                return
            self.touched.add(source.id)
        self.not_deprecated(assoc, target)
        self.same_patient(assoc, source, target)

    def relationship(self, assoc: Association, source: _End, target: _End) -> None:
        """RPLC, XFRM, APND, XFRM_RPLC, signs, IsSnapshotOf (ITI TF-3 4.2.2.2)."""
        kind = assoc.association_type
        if not (source.new and source.kind == "D"):
            self.metadata_error(assoc, f"source {source.label} is not a DocumentEntry of this submission")
            return
        if target.kind != "D":
            self.metadata_error(assoc, f"target {target.label} is not a DocumentEntry")
            return
        if target.new and kind not in _NEW_TARGET_ALLOWED:
            self.metadata_error(assoc, f"target {target.label} must be a DocumentEntry already registered")
            return
        if not self.not_deprecated(assoc, target):
            return
        self.same_patient(assoc, source, target)
        if kind is AssociationType.IS_SNAPSHOT_OF:
            if target.object_type != ObjectType.ON_DEMAND_DOCUMENT:
                self.metadata_error(assoc, f"target {target.label} is not an On-Demand DocumentEntry")
            if source.object_type != ObjectType.STABLE_DOCUMENT:
                self.metadata_error(assoc, f"source {source.label} is not a Stable DocumentEntry")
        if kind in REPLACING_ASSOCIATIONS:
            if any(old == target.id for _, old in self.replaced):
                self.metadata_error(assoc, f"{target.label} is replaced more than once in this submission")
                return
            self.replaced.append((source.id, target.id))

    def update_only(self, assoc: Association, source: _End, target: _End) -> None:
        self.metadata_error(assoc, "this association type is only accepted by Update Document Set [ITI-57]")

    # -- writing -------------------------------------------------------------------------------

    def deprecations(self) -> list[str]:
        """Replaced documents, then (transitively) their Approved addenda and transformations."""
        done: list[str] = []
        frontier = [old for _, old in self.replaced]
        seen = set(frontier)
        while frontier:
            done.extend(frontier)
            pairs = store.approved_sources(
                self.conn, frontier, (AssociationType.APND.value, AssociationType.XFRM.value)
            )
            frontier = [src for src, _ in pairs if src not in seen and src not in self.new]
            seen.update(frontier)
        return done

    def carried_memberships(self) -> list[Association]:
        """HasMember Folder -> replacement for each Folder of a replaced document (ITI TF-3 4.2.2.2)."""
        if not self.replaced:
            return []
        member_of = store.folders_containing(self.conn, [old for _, old in self.replaced])
        submitted = {
            (a.source, a.target)
            for a in self.sub.associations
            if a.association_type is AssociationType.HAS_MEMBER
        }
        added: list[Association] = []
        for new_doc, old in self.replaced:
            for folder_id in member_of.get(old, []):
                if (folder_id, new_doc) in submitted:
                    continue
                submitted.add((folder_id, new_doc))
                membership = Association(
                    entry_uuid=f"urn:uuid:{uuid.uuid4()}",
                    association_type=AssociationType.HAS_MEMBER,
                    source=folder_id,
                    target=new_doc,
                )
                added.append(membership)
                added.append(
                    Association(
                        entry_uuid=f"urn:uuid:{uuid.uuid4()}",
                        association_type=AssociationType.HAS_MEMBER,
                        source=self.ss.entry_uuid,
                        target=membership.entry_uuid,
                    )
                )
                self.touched.add(folder_id)
        return added


#: Relationships whose target may be a DocumentEntry of the same submission (the NIST registry
#: simulator accepts them); a replaced (RPLC, XFRM_RPLC) or snapshotted (IsSnapshotOf, 4.2.2.2.6)
#: document is always a registered one.
_NEW_TARGET_ALLOWED: Final = frozenset({AssociationType.APND, AssociationType.XFRM, AssociationType.SIGNS})

_Rule = Callable[[_Registration, Association, _End, _End], None]

#: What each association type must satisfy (ITI TF-3 4.2.2).
_RULES: Final[dict[AssociationType, _Rule]] = {
    AssociationType.HAS_MEMBER: _Registration.has_member,
    AssociationType.RPLC: _Registration.relationship,
    AssociationType.XFRM: _Registration.relationship,
    AssociationType.APND: _Registration.relationship,
    AssociationType.XFRM_RPLC: _Registration.relationship,
    AssociationType.SIGNS: _Registration.relationship,
    AssociationType.IS_SNAPSHOT_OF: _Registration.relationship,
    AssociationType.UPDATE_AVAILABILITY_STATUS: _Registration.update_only,
    AssociationType.SUBMIT_ASSOCIATION: _Registration.update_only,
}


_Obj = TypeVar("_Obj", DocumentEntry, SubmissionSet, Folder, Association)


def _approved(obj: _Obj) -> _Obj:
    """``obj`` with the attributes the registry assigns: Approved; logicalID = entryUUID, version 1.

    Validation has assigned them already, so this is usually ``obj`` itself.
    """
    if isinstance(obj, Association):
        return obj if obj.status is Status.APPROVED else evolve(obj, status=Status.APPROVED)
    if obj.status is Status.APPROVED and obj.logical_id == obj.entry_uuid and obj.version == "1":
        return obj
    return evolve(obj, status=Status.APPROVED, logical_id=obj.entry_uuid, version="1")


@dataclass(frozen=True, slots=True)
class PreparedSubmission:
    """A validated submission with everything of its registration that does not depend on the
    registry's contents, built by :func:`prepare_submission` before the writer lock is taken: the
    registry-assigned attributes (Approved, logicalID, version, Folder lastUpdateTime) and the rows
    to insert.  Only the checks against the registry and the inserts then run under the lock."""

    #: As validated (the registration rules read the submitted objects).
    submission: Submission
    #: With the registry-assigned attributes.
    registered: Submission
    moment: datetime
    #: The moment as given to :func:`prepare_submission` (None: the clock, read at registration).
    now: datetime | None
    #: Index rows of ``registered`` (any seq: stamped at registration).
    tables: Tables
    #: Values longer than their column (reported after the registry's own checks).
    length_problems: tuple[Problem, ...]

    @property
    def stamp(self) -> str:
        return dtm(self.moment)


def _objects(sub: Submission) -> list[RegistryObject]:
    return [sub.submission_set, *sub.documents, *sub.folders, *sub.associations]


def prepare_submission(submission: Submission, *, now: datetime | None = None) -> PreparedSubmission:
    """What :func:`register_prepared` needs of ``submission`` (validated) that the registry's
    contents do not change; ``now`` fixes the registration time."""
    moment = now or datetime.now(UTC)
    stamp = dtm(moment)
    registered = evolve(
        submission,
        submission_set=_approved(submission.submission_set),
        documents=tuple(_approved(d) for d in submission.documents),
        folders=tuple(evolve(_approved(f), last_update_time=stamp) for f in submission.folders),
        associations=tuple(_approved(a) for a in submission.associations),
    )
    tables = index_rows(_objects(registered), 0)
    return PreparedSubmission(submission, registered, moment, now, tables, tuple(length_problems(tables)))


def register_submission(
    conn: Connection,
    submission: Submission,
    settings: Settings,
    *,
    now: datetime | None = None,
    extra: ExtraInsert | None = None,
) -> RegistrationResult:
    """Check ``submission`` against the registry and store it (ITI TF-2 3.42.4.1.3).

    ``submission`` has passed :func:`~xds_hub.domain.validate.validate_submission` (UUIDs assigned).
    Call inside :func:`~xds_hub.storage.db.write_transaction`: writers are serialised there, so the
    uniqueness checks hold until commit.  Raises :class:`~xds_hub.errors.XdsError` with every
    problem found, before writing anything; the caller's transaction then rolls back.
    ``settings`` is the hub's (for future registry policies); ``now`` fixes the registration time.
    ``extra``: rows of another table inserted with the registry's, once the checks have passed
    (the Document Repository's, ITI-41; see :func:`xds_hub.registry.insert.insert_rows`).
    Writers that can prepare before taking the lock call :func:`prepare_submission` there and
    :func:`register_prepared` under it.
    """
    del settings  # no registry policy depends on it yet
    return register_prepared(conn, prepare_submission(submission, now=now), extra=extra)


def register_prepared(
    conn: Connection, prepared: PreparedSubmission, *, extra: ExtraInsert | None = None
) -> RegistrationResult:
    """:func:`register_submission` of a :class:`PreparedSubmission` (same rules, same result)."""
    reg = _Registration(conn, prepared.submission)
    reg.check_patients()
    reg.check_ids()
    reg.check_unique_ids()
    reg.check_associations()
    if reg.problems:
        raise XdsError(reg.problems)

    registered, tables, too_long = prepared.registered, prepared.tables, list(prepared.length_problems)
    added = [_approved(a) for a in reg.carried_memberships()]
    if added:
        registered = evolve(registered, associations=(*registered.associations, *added))
        more = index_rows(added, 0)
        too_long.extend(length_problems(more))
        tables = merged(tables, more)
    if too_long:
        raise XdsError(too_long)
    deprecated = reg.deprecations()
    seq = _seq(prepared.now)
    returned = insert_rows(conn, with_seq(tables, seq), extra)
    store.set_status(conn, deprecated, Status.DEPRECATED)
    store.touch_folders(conn, reg.touched, prepared.stamp)
    return RegistrationResult(
        submission=registered,
        seq=seq,
        deprecated_ids=tuple(deprecated),
        updated_folder_ids=tuple(sorted(reg.touched)),
        extra_returned=tuple(tuple(row) for row in returned),
    )


def merge_patient(
    conn: Connection, subsumed_pid: str, surviving_pid: str, *, now: datetime | None = None
) -> int:
    """Merge ``subsumed_pid`` into ``surviving_pid`` in the registry (the merge of a Patient Identity
    Feed: ITI-8 ADT^A40, ITI-44 PRPA_IN201304UV02), for the PIX Manager.

    Every DocumentEntry, SubmissionSet and Folder of the subsumed ID moves to the surviving one
    (index columns and JSON body alike), so queries by the surviving ID find them and queries by the
    subsumed ID find nothing.  The patient table records ``merged_into`` for the subsumed ID (and
    for IDs merged into it before), after which submissions for it fail with XDSUnknownPatientId.
    If the surviving ID was itself merged away, its live successor is used.  Call inside
    :func:`~xds_hub.storage.db.write_transaction`; returns the number of registry objects moved.
    """
    moment = now or datetime.now(UTC)
    surviving = store.live_patient_id(conn, surviving_pid)
    if subsumed_pid == surviving:
        return 0
    moved = store.move_patient(conn, subsumed_pid, surviving)
    store.mark_merged(conn, subsumed_pid, surviving, moment.isoformat())
    return moved
