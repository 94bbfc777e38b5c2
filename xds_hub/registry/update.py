"""Applying an Update Document Set [ITI-57] request in the Document Registry (ITI TF-2 3.57.4.1.3).

:func:`apply_update` checks the operations of an :class:`~xds_hub.registry.update_request.UpdateRequest`
against the registry and writes them, inside the caller's
:func:`~xds_hub.storage.db.write_transaction`: writers are serialised there, so the version
checks hold until commit, and every problem is reported before anything is written (the whole
request succeeds or nothing changes).

==========================================================================  ==========================
rule                                                                        error code
==========================================================================  ==========================
the SubmissionSet's patient ID is not known to the affinity domain          XDSUnknownPatientId
an id of the request is already registered                                  XDSRegistryMetadataError
the SubmissionSet's uniqueId is already registered                          XDSDuplicateUniqueIdInRegistry
**new versions** (Update DocumentEntry / Folder Metadata, 3.57.4.1.3.3.1 / .3)
the logicalID names no registered object                                    UnresolvedReferenceException
it names an object of the other kind, or the same logicalID is updated      XDSMetadataUpdateError
  twice in the request
PreviousVersion is not the version number of the latest version             XDSMetadataVersionError
  (also what a concurrent update of the same object gets)
a DocumentEntry changes uniqueId, objectType, hash, size or                 XDSMetadataUpdateError
  repositoryUniqueId; a Folder changes uniqueId; the latest version of a
  Folder is not Approved
the patient ID differs from the previous version's                          XDSPatientIDReconciliationError
the patient ID differs from the SubmissionSet's                             XDSPatientIdDoesNotMatch
**availabilityStatus updates** (UpdateAvailabilityStatus)
the target is not registered                                                UnresolvedReferenceException
the target is a SubmissionSet, an older version of a DocumentEntry / Folder, XDSMetadataUpdateError
  a HasMember from a SubmissionSet, an Association other than a Folder
  HasMember or a document relationship, an object of the request that is
  not a new version, or is targeted twice; OriginalStatus is not its status
**submitted Associations** (SubmitAssociation)
an end is not registered                                                    UnresolvedReferenceException
an end is an object of the request, a SubmissionSet, an Association or not  XDSMetadataUpdateError
  Approved; a HasMember is not Folder -> DocumentEntry; a relationship
  does not link two DocumentEntries or replaces (RPLC, XFRM_RPLC: those are
  submitted with ITI-41/42, which deprecate the target); the same
  Association is already registered (Approved) or submitted twice
the two ends are of different patients                                      XDSPatientIdDoesNotMatch
==========================================================================  ==========================

What the registry does (3.57.4.1.3.3):

- the SubmissionSet is registered (Approved, logicalID = entryUUID, version 1) with every
  Association of the request, which are kept as the record of the update;
- a new version gets the logicalID, version = previous + 1 and the previous version's
  availabilityStatus (a DocumentEntry Deprecated by a replacement may still be corrected, as the
  NIST registry simulator allows; a Folder must be Approved); the previous version becomes
  Deprecated.  Unless AssociationPropagation is "no", the new version takes over the previous
  version's Approved associations (3.57.4.1.3.3.1.5): a DocumentEntry joins the Folders of the
  previous version (a HasMember from the Folder, held by the SubmissionSet, as ITI-42 does for
  replacements) and gets a copy of each document relationship (RPLC, XFRM, APND, XFRM_RPLC, signs,
  IsSnapshotOf) of the previous version; a Folder gets a HasMember to each current member;
- an availabilityStatus update that names an object also updated in the request applies to the
  new version, and the previous version is only deprecated (ITI57-015);
- Folders whose content changes, and new Folder versions, get lastUpdateTime = now.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import Connection

from xds_hub.config import Settings
from xds_hub.domain.metadata import Association, DocumentEntry, Folder, RegistryObject, Submission
from xds_hub.domain.validate import new_uuid
from xds_hub.domain.vocabulary import (
    RELATIONSHIP_ASSOCIATIONS,
    REPLACING_ASSOCIATIONS,
    AssociationType,
    Status,
)
from xds_hub.errors import ErrorCode, Problem, XdsError
from xds_hub.registry import read, store
from xds_hub.registry.insert import insert_objects
from xds_hub.registry.patients import is_known
from xds_hub.registry.register import KIND_NAMES, dtm
from xds_hub.registry.update_request import AssociationSubmission, StatusUpdate, UpdateRequest, VersionUpdate

HAS_MEMBER: Final = AssociationType.HAS_MEMBER
_RELATIONSHIP_TYPES: Final = tuple(t.value for t in RELATIONSHIP_ASSOCIATIONS)


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """What :func:`apply_update` wrote."""

    #: The SubmissionSet, new versions and every Association stored (the request's and the
    #: propagated ones), with the attributes the registry assigned.
    submission: Submission
    #: Previous version id -> new version id.
    superseded: dict[str, str]
    #: Registered objects whose availabilityStatus changed (previous versions included).
    status_changes: dict[str, Status]
    #: Registered Folders whose lastUpdateTime was set.
    updated_folder_ids: tuple[str, ...] = ()
    warnings: tuple[Problem, ...] = ()


def _kind(obj: DocumentEntry | Folder) -> str:
    return "D" if isinstance(obj, DocumentEntry) else "F"


class _Update:
    """The checks of one update request against the registry; collects problems, then writes."""

    def __init__(self, conn: Connection, req: UpdateRequest) -> None:
        self.conn = conn
        self.req = req
        sub = req.submission
        self.ss = sub.submission_set
        self.new_ids = set(sub.all_ids())
        ends = {e for a in sub.associations for e in (a.source, a.target)}
        self.registered = store.find_by_ids(conn, self.new_ids | ends)
        self.problems: list[Problem] = []
        #: previous version id -> new version id
        self.superseded: dict[str, str] = {}
        #: new version id -> its availabilityStatus, and the number of the version it follows
        self.new_status: dict[str, Status] = {}
        self.previous_number: dict[str, int] = {}
        #: registered object -> the availabilityStatus it gets
        self.changes: dict[str, Status] = {}
        #: registered Folders whose content changes
        self.touched: set[str] = set()
        #: (type, source, target) of the associations written, to avoid duplicates
        self.triples: set[tuple[str, str, str]] = set()

    def fail(self, code: ErrorCode, context: str, location: str) -> None:
        self.problems.append(Problem(code, context, location))

    def update_error(self, context: str, location: str) -> None:
        self.fail(ErrorCode.METADATA_UPDATE_ERROR, context, location)

    def redirect(self, object_id: str) -> str:
        """The new version of ``object_id`` if this request supersedes it, else ``object_id``."""
        return self.superseded.get(object_id, object_id)

    # -- the SubmissionSet and ids ---------------------------------------------------------------

    def check_submission_set(self) -> None:
        ss = self.ss
        if not is_known(self.conn, ss.patient_id):
            self.fail(
                ErrorCode.UNKNOWN_PATIENT_ID,
                f"patient ID {ss.patient_id} is not known to the affinity domain (or was merged away)",
                ss.patient_id,
            )
        for object_id in sorted(self.new_ids & set(self.registered)):
            self.fail(
                ErrorCode.REGISTRY_METADATA_ERROR,
                f"entryUUID {object_id} is already registered; a new version needs a new entryUUID",
                object_id,
            )
        for stored in store.find_by_unique_ids(self.conn, [ss.unique_id]).get(ss.unique_id, [])[:1]:
            self.fail(
                ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY,
                f"SubmissionSet uniqueId {ss.unique_id} is already registered (to {KIND_NAMES[stored.kind]} "
                f"{stored.id})",
                ss.entry_uuid,
            )

    # -- new versions ------------------------------------------------------------------------

    def check_versions(self) -> dict[str, RegistryObject]:
        """Check each new version; returns the previous versions by id."""
        versions = self.req.versions
        latest = store.latest_versions(self.conn, [v.lid for v in versions])
        previous = {
            o.entry_uuid: o for o in read.load_objects(self.conn, [s.obj.id for s in latest.values()])
        }
        twice = {lid for lid, n in Counter(v.lid for v in versions).items() if n > 1}
        for v in versions:
            loc, what = v.obj.entry_uuid, type(v.obj).__name__
            current = latest.get(v.lid)
            if v.lid in twice:
                self.update_error(f"logicalID {v.lid} is updated more than once in the request", loc)
            elif current is None:
                self.fail(
                    ErrorCode.UNRESOLVED_REFERENCE,
                    f"logicalID {v.lid} of the new version {loc} names no registered {what}",
                    loc,
                )
            elif current.obj.kind != _kind(v.obj):
                self.update_error(
                    f"logicalID {v.lid} names a {KIND_NAMES[current.obj.kind]}, not a {what}", loc
                )
            else:
                prev = previous[current.obj.id]
                assert isinstance(prev, DocumentEntry | Folder)  # kind 'D' or 'F'
                self.check_version(v, current, prev)
        return previous

    def check_version(
        self, v: VersionUpdate, current: store.StoredVersion, prev: DocumentEntry | Folder
    ) -> None:
        loc, obj = v.obj.entry_uuid, v.obj
        if v.previous_version != current.number:
            self.fail(
                ErrorCode.METADATA_VERSION_ERROR,
                f"PreviousVersion {v.previous_version} of {loc} is not the latest version of logicalID "
                f"{v.lid}, which is version {current.number} ({current.obj.id})",
                loc,
            )
        if isinstance(obj, DocumentEntry) and isinstance(prev, DocumentEntry):
            self.check_document(obj, prev, current.number)
            self.new_status[loc] = Status(current.obj.status)
        elif isinstance(obj, Folder) and isinstance(prev, Folder):
            if not current.obj.approved:
                self.update_error(
                    f"Folder {v.lid} is {current.obj.status.rsplit(':', 1)[-1]}: only an Approved Folder is "
                    "updated",
                    loc,
                )
            if obj.unique_id != prev.unique_id:
                self.unchangeable("Folder", "uniqueId", prev.unique_id, obj.unique_id, current.number, loc)
            self.new_status[loc] = Status.APPROVED
        if obj.patient_id != prev.patient_id:
            self.fail(
                ErrorCode.PATIENT_ID_RECONCILIATION_ERROR,
                f"the new version {loc} of {v.lid} has patient ID {obj.patient_id}; version {current.number} "
                f"has {prev.patient_id}, and an update cannot move metadata to another patient",
                loc,
            )
        if obj.patient_id != self.ss.patient_id:
            self.fail(
                ErrorCode.PATIENT_ID_DOES_NOT_MATCH,
                f"the new version {loc} has patient ID {obj.patient_id}, the SubmissionSet "
                f"{self.ss.patient_id}",
                loc,
            )
        self.superseded[current.obj.id] = loc
        self.previous_number[loc] = current.number

    def unchangeable(self, kind: str, name: str, old: object, new: object, version: int, loc: str) -> None:
        self.update_error(
            f"{name} of a {kind} cannot be changed by an update: version {version} has {old!r}, the new "
            f"version {loc} has {new!r}",
            loc,
        )

    def check_document(self, doc: DocumentEntry, prev: DocumentEntry, version: int) -> None:
        """uniqueId, objectType, hash, size and repositoryUniqueId belong to the document itself."""
        for name, old, new in (
            ("uniqueId", prev.unique_id, doc.unique_id),
            ("objectType", prev.object_type, doc.object_type),
            ("hash", (prev.hash or "").lower() or None, (doc.hash or "").lower() or None),
            ("size", prev.size, doc.size),
            ("repositoryUniqueId", prev.repository_unique_id, doc.repository_unique_id),
        ):
            if old != new:
                self.unchangeable("DocumentEntry", name, old, new, version, doc.entry_uuid)

    # -- availabilityStatus updates ------------------------------------------------------------

    def check_statuses(self) -> None:
        updates = self.req.statuses
        targets = {s.assoc.target for s in updates}
        lids = [o.lid for t in targets if (o := self.registered.get(t)) is not None and o.kind in "DF"]
        latest = store.latest_versions(self.conn, lids)
        assocs = store.find_associations(self.conn, targets)
        sources = store.find_by_ids(self.conn, [a.source_id for a in assocs.values()])
        twice = {t for t, n in Counter(s.assoc.target for s in updates).items() if n > 1}
        for s in updates:
            target, loc = s.assoc.target, s.assoc.entry_uuid
            stored = self.registered.get(target)
            if target in twice:
                self.update_error(f"the availabilityStatus of {target} is updated more than once", loc)
            elif target in self.new_status:
                self.set_new_version_status(s, target)
            elif target in self.new_ids:
                self.update_error(
                    f"UpdateAvailabilityStatus {loc} targets {target}, an object of this request that is "
                    "not a new version of a DocumentEntry or Folder",
                    loc,
                )
            elif stored is None:
                self.fail(
                    ErrorCode.UNRESOLVED_REFERENCE,
                    f"UpdateAvailabilityStatus {loc}: targetObject {target} is not in the registry",
                    loc,
                )
            elif stored.kind == "A":
                self.check_association_status(s, assocs[target], sources)
            elif stored.kind == "S":
                self.update_error(f"the availabilityStatus of SubmissionSet {target} cannot be updated", loc)
            else:
                self.check_entry_status(s, stored, latest[stored.lid])

    def set_new_version_status(self, s: StatusUpdate, new_id: str) -> None:
        current = self.new_status[new_id]
        if s.original != current:
            self.original_mismatch(s, new_id, current)
        else:
            self.new_status[new_id] = s.new

    def original_mismatch(self, s: StatusUpdate, target: str, current: str) -> None:
        self.update_error(
            f"OriginalStatus {s.original.value} of UpdateAvailabilityStatus {s.assoc.entry_uuid} is not the "
            f"availabilityStatus of {target}, which is {current}",
            s.assoc.entry_uuid,
        )

    def check_entry_status(
        self, s: StatusUpdate, stored: store.StoredObject, latest: store.StoredVersion
    ) -> None:
        target, loc = stored.id, s.assoc.entry_uuid
        if latest.obj.id != target:
            self.update_error(
                f"{KIND_NAMES[stored.kind]} {target} is not the most recent version of {stored.lid} "
                f"(version {latest.number} is {latest.obj.id})",
                loc,
            )
        elif target in self.superseded:  # ITI57-015: the status goes to the new version
            self.set_new_version_status(s, self.superseded[target])
        elif s.original != stored.status:
            self.original_mismatch(s, target, stored.status)
        else:
            self.changes[target] = s.new

    def check_association_status(
        self, s: StatusUpdate, assoc: store.StoredAssociation, sources: dict[str, store.StoredObject]
    ) -> None:
        loc, kind = s.assoc.entry_uuid, assoc.type
        source = sources.get(assoc.source_id)
        folder_member = kind == HAS_MEMBER.value and source is not None and source.kind == "F"
        if not (folder_member or kind in _RELATIONSHIP_TYPES):
            what = "a HasMember from a SubmissionSet" if kind == HAS_MEMBER.value else kind.rsplit(":", 1)[-1]
            self.update_error(
                f"the availabilityStatus of Association {assoc.id} ({what}) cannot be updated: only a Folder "
                "membership or a document relationship can",
                loc,
            )
        elif s.original != assoc.status:
            self.original_mismatch(s, assoc.id, assoc.status)
        else:
            self.changes[assoc.id] = s.new
            if folder_member:
                self.touched.add(self.redirect(assoc.source_id))

    # -- submitted Associations ----------------------------------------------------------------

    def check_submitted(self) -> list[Association]:
        """Check each submitted Association; returns them with their ends redirected to new versions."""
        out: list[Association] = []
        for s in self.req.associations:
            checked = self.check_one_submitted(s)
            if checked is not None:
                out.append(checked)
        return out

    def end(self, assoc: Association, side: str, ref: str) -> store.StoredObject | None:
        loc = assoc.entry_uuid
        if ref in self.new_ids:
            self.update_error(f"the {side} of submitted Association {loc} must be a registered object", loc)
            return None
        stored = self.registered.get(ref)
        if stored is None:
            self.fail(
                ErrorCode.UNRESOLVED_REFERENCE,
                f"{side} {ref} of submitted Association {loc} is not in the registry",
                loc,
            )
        elif stored.kind in "SA":
            self.update_error(f"submitted Association {loc} cannot link {KIND_NAMES[stored.kind]} {ref}", loc)
            return None
        elif not stored.approved:
            self.update_error(
                f"{side} {ref} of submitted Association {loc} is {stored.status.rsplit(':', 1)[-1]}", loc
            )
            return None
        return stored

    def check_one_submitted(self, s: AssociationSubmission) -> Association | None:
        a, loc = s.assoc, s.assoc.entry_uuid
        source, target = self.end(a, "sourceObject", a.source), self.end(a, "targetObject", a.target)
        if source is None or target is None:
            return None
        kind = a.association_type
        name = kind.value.rsplit(":", 1)[-1]
        if kind is HAS_MEMBER and (source.kind, target.kind) != ("F", "D"):
            self.update_error(f"submitted HasMember {loc} must link a Folder to a DocumentEntry", loc)
            return None
        if kind in RELATIONSHIP_ASSOCIATIONS and (source.kind, target.kind) != ("D", "D"):
            self.update_error(f"submitted {name} {loc} must link two DocumentEntries", loc)
            return None
        if kind in REPLACING_ASSOCIATIONS:
            self.update_error(
                f"a replacement ({name}) is submitted with a new document (ITI-41 / ITI-42), which "
                "deprecates the document it replaces; Update Document Set cannot add one",
                loc,
            )
            return None
        if source.patient_id != target.patient_id:
            self.fail(
                ErrorCode.PATIENT_ID_DOES_NOT_MATCH,
                f"submitted Association {loc} links {a.source} of patient {source.patient_id} to "
                f"{a.target} of patient {target.patient_id}",
                loc,
            )
        redirected = dataclasses.replace(a, source=self.redirect(a.source), target=self.redirect(a.target))
        triple = (kind.value, redirected.source, redirected.target)
        existing = store.associations_of(self.conn, [a.source], types=[kind.value], as_target=False)
        if triple in self.triples or any(
            e.target_id == a.target and e.status == Status.APPROVED for e in existing
        ):
            self.update_error(f"{name} {a.source} -> {a.target} is already in the registry or request", loc)
            return None
        self.triples.add(triple)
        if kind is HAS_MEMBER:
            self.touched.add(redirected.source)
        return redirected

    # -- association propagation ---------------------------------------------------------------

    def propagated(self, previous: dict[str, RegistryObject]) -> list[Association]:
        """The associations new versions take over from previous ones (3.57.4.1.3.3.1.5)."""
        out: list[Association] = []
        by_new = {v.obj.entry_uuid: v for v in self.req.versions}
        for prev_id, new_id in self.superseded.items():
            if not by_new[new_id].propagate:
                continue
            if isinstance(previous[prev_id], DocumentEntry):
                out.extend(self.document_propagation(prev_id, new_id))
            else:
                out.extend(self.folder_propagation(prev_id, new_id))
        return out

    def membership(self, folder_id: str, doc_id: str) -> list[Association]:
        """HasMember Folder -> DocumentEntry, and the SubmissionSet's HasMember to it (ITI TF-3 4.2.2.1)."""
        triple = (HAS_MEMBER.value, folder_id, doc_id)
        if triple in self.triples:
            return []
        self.triples.add(triple)
        if folder_id not in self.new_status:
            self.touched.add(folder_id)
        link = Association(new_uuid(), HAS_MEMBER, folder_id, doc_id)
        return [link, Association(new_uuid(), HAS_MEMBER, self.ss.entry_uuid, link.entry_uuid)]

    def document_propagation(self, prev_id: str, new_id: str) -> list[Association]:
        out: list[Association] = []
        for folder_id in store.folders_containing(self.conn, [prev_id]).get(prev_id, []):
            out.extend(self.membership(self.redirect(folder_id), new_id))
        relations = store.associations_of(self.conn, [prev_id], types=_RELATIONSHIP_TYPES)
        for r in relations:
            if r.status != Status.APPROVED:
                continue
            source = new_id if r.source_id == prev_id else self.redirect(r.source_id)
            target = new_id if r.target_id == prev_id else self.redirect(r.target_id)
            if (r.type, source, target) not in self.triples:
                self.triples.add((r.type, source, target))
                out.append(Association(new_uuid(), AssociationType(r.type), source, target))
        return out

    def folder_propagation(self, prev_id: str, new_id: str) -> list[Association]:
        members = [
            m
            for m in store.associations_of(self.conn, [prev_id], types=[HAS_MEMBER.value], as_target=False)
            if m.status == Status.APPROVED
        ]
        docs = store.find_by_ids(self.conn, [m.target_id for m in members])
        latest = store.latest_versions(self.conn, [d.lid for d in docs.values()])
        out: list[Association] = []
        for m in members:
            doc = docs.get(m.target_id)
            if doc is not None and doc.kind == "D" and latest[doc.lid].obj.id == doc.id:
                out.extend(self.membership(new_id, self.redirect(doc.id)))
        return out


def _registered_objects(
    req: UpdateRequest, upd: _Update, submitted: list[Association], stamp: str
) -> Submission:
    """The request's objects with the attributes the registry assigns."""
    sub = req.submission
    ss = sub.submission_set

    def status(obj: DocumentEntry | Folder) -> Status:
        return upd.new_status[obj.entry_uuid]

    def version(obj: DocumentEntry | Folder) -> str:
        return str(upd.previous_number[obj.entry_uuid] + 1)

    redirected = {a.entry_uuid: a for a in submitted}
    return dataclasses.replace(
        sub,
        submission_set=dataclasses.replace(ss, status=Status.APPROVED, logical_id=ss.entry_uuid, version="1"),
        documents=tuple(dataclasses.replace(d, status=status(d), version=version(d)) for d in sub.documents),
        folders=tuple(
            dataclasses.replace(f, status=status(f), version=version(f), last_update_time=stamp)
            for f in sub.folders
        ),
        associations=tuple(
            dataclasses.replace(redirected.get(a.entry_uuid, a), status=Status.APPROVED)
            for a in sub.associations
        ),
    )


def apply_update(
    conn: Connection, req: UpdateRequest, settings: Settings, *, now: datetime | None = None
) -> UpdateResult:
    """Check ``req`` against the registry and store it (ITI TF-2 3.57.4.1.3).

    Call inside :func:`~xds_hub.storage.db.write_transaction`.  Raises
    :class:`~xds_hub.errors.XdsError` with every problem found before writing anything.
    ``settings`` is the hub's (for future registry policies); ``now`` fixes the update time.
    """
    del settings
    moment = now or datetime.now(UTC)
    upd = _Update(conn, req)
    upd.check_submission_set()
    previous = upd.check_versions()
    upd.check_statuses()
    submitted = upd.check_submitted()
    if upd.problems:
        raise XdsError(
            dataclasses.replace(p, location=req.submitted_ids.get(p.location, p.location))
            for p in upd.problems
        )
    stamp = dtm(moment)
    propagated = upd.propagated(previous)
    stored = _registered_objects(req, upd, submitted, stamp)
    stored = dataclasses.replace(stored, associations=(*stored.associations, *propagated))
    seq = time.time_ns() if now is None else int(moment.timestamp() * 1_000_000_000)
    insert_objects(
        conn, [stored.submission_set, *stored.documents, *stored.folders, *stored.associations], seq
    )
    changes = dict.fromkeys(upd.superseded, Status.DEPRECATED) | upd.changes
    for status in (Status.APPROVED, Status.DEPRECATED):
        store.set_status(conn, [i for i, s in changes.items() if s is status], status)
    touched = sorted(upd.touched - upd.new_ids)
    store.touch_folders(conn, touched, stamp)
    return UpdateResult(
        submission=stored,
        superseded=dict(upd.superseded),
        status_changes=changes,
        updated_folder_ids=tuple(touched),
    )
