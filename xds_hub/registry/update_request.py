"""Reading an Update Document Set [ITI-57] request as metadata update operations (ITI TF-2 3.57.4.1.3).

An ITI-57 request is an ``lcm:SubmitObjectsRequest`` (parsed by
:func:`xds_hub.ebxml.parse.parse_submit_objects_request`) holding one SubmissionSet and the
objects of one or more operations (ITI TF-2 3.57.4.1.3.3):

==========================================  ===================================================
operation                                   what the request carries
==========================================  ===================================================
Update DocumentEntry / Folder Metadata      the new version (``lid`` = the logicalID, a new id)
  (3.57.4.1.3.3.1, 3.57.4.1.3.3.3)          and a HasMember SubmissionSet -> it with the slot
                                            PreviousVersion (and SubmissionSetStatus Original
                                            for a DocumentEntry); optional AssociationPropagation
                                            "yes" (default) / "no"
Update DocumentEntry / Folder /             an UpdateAvailabilityStatus association
  Association AvailabilityStatus            SubmissionSet -> the object, slots OriginalStatus and
                                            NewStatus (Approved or Deprecated)
Submit Associations                         the new Association and a SubmitAssociation
                                            association SubmissionSet -> it (a HasMember
                                            SubmissionSet -> it may come too)
==========================================  ===================================================

:func:`read_update_request` checks what needs no database and gives the new objects UUIDs; the
registry rules are :mod:`xds_hub.registry.update`'s.  Problems found here:

========================================================================  ============================
rule                                                                      error code
========================================================================  ============================
attribute rules of each object (as for ITI-42: ITI TF-3 4.2.3, 4.3.1),    XDSRegistryMetadataError
  ids unique in the message, codes of the affinity domain
the same uniqueId twice in the message                                    XDSRegistryDuplicateUnique-
                                                                            IdInMessage
a DocumentEntry / Folder that is an initial version (lid absent or equal  XDSMetadataUpdateError
  to its id: ITI57-007) or whose lid is not a UUID; a SubmissionSet with
  a lid of its own
a new version without exactly one HasMember from the SubmissionSet, that  XDSMetadataUpdateError
  HasMember without one positive PreviousVersion, with a SubmissionSet-
  Status other than Original, or an AssociationPropagation not yes/no
an UpdateAvailabilityStatus / SubmitAssociation whose source is not the   XDSMetadataUpdateError
  SubmissionSet; OriginalStatus / NewStatus missing, repeated or not
  Approved / Deprecated; a SubmitAssociation naming no Association of
  the request (or one named twice)
an Association that belongs to no operation, or a request without any     XDSMetadataUpdateOperation-
  operation ("cannot decode the requested metadata update")                 Error
========================================================================  ============================

Every problem is located by the id the request gave the object.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Final

from xds_hub.config import AffinityDomain
from xds_hub.domain.metadata import Association, DocumentEntry, Folder, Submission, SubmissionSet
from xds_hub.domain.validate import code_allowed, codes_of, is_uuid_urn, new_uuid
from xds_hub.domain.validate_objects import Findings, check_document, check_folder, check_submission_set
from xds_hub.domain.vocabulary import AssociationType, MetadataUpdateSlot, Status, SubmissionSetStatus
from xds_hub.errors import ErrorCode, XdsError

#: The availability statuses an update may set (ITI TF-2 3.57.4.1.3.3.2).
UPDATABLE_STATUSES: Final = frozenset({Status.APPROVED, Status.DEPRECATED})
_PROPAGATION: Final = {"yes": True, "no": False}
_TRIGGERS: Final = frozenset({AssociationType.UPDATE_AVAILABILITY_STATUS, AssociationType.SUBMIT_ASSOCIATION})


@dataclass(frozen=True, slots=True)
class VersionUpdate:
    """Update DocumentEntry Metadata (3.57.4.1.3.3.1) or Update Folder Metadata (3.57.4.1.3.3.3)."""

    obj: DocumentEntry | Folder
    #: The HasMember SubmissionSet -> ``obj`` that carries PreviousVersion.
    membership: Association
    previous_version: int
    propagate: bool

    @property
    def lid(self) -> str:
        return self.obj.logical_id or ""


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """Update the availabilityStatus of a DocumentEntry, Folder or Association."""

    assoc: Association  # the UpdateAvailabilityStatus association
    original: Status
    new: Status


@dataclass(frozen=True, slots=True)
class AssociationSubmission:
    """Submit Associations: ``assoc`` is added to the registry; ``trigger`` is its SubmitAssociation."""

    assoc: Association
    trigger: Association


@dataclass(frozen=True, slots=True)
class UpdateRequest:
    """An ITI-57 request as operations; ids are UUIDs (symbolic ones replaced)."""

    submission: Submission
    versions: tuple[VersionUpdate, ...] = ()
    statuses: tuple[StatusUpdate, ...] = ()
    associations: tuple[AssociationSubmission, ...] = ()
    #: HasMember SubmissionSet -> a submitted Association (recorded with it).
    memberships: tuple[Association, ...] = ()
    #: UUID given by the registry -> the symbolic id the request used (to locate problems).
    submitted_ids: dict[str, str] = field(default_factory=dict)


def _name(kind: AssociationType) -> str:
    return kind.value.rsplit(":", 1)[-1]


def _slots(assoc: Association) -> dict[str, tuple[str, ...]]:
    return {s.name: s.values for s in assoc.extra_slots}


class _Reader:
    """Classifies the objects of one request into operations, collecting problems."""

    def __init__(self, sub: Submission, findings: Findings) -> None:
        self.sub = sub
        self.f = findings
        self.ss_id = sub.submission_set.entry_uuid

    def update_error(self, context: str, location: str) -> None:
        self.f.add(ErrorCode.METADATA_UPDATE_ERROR, context, location)

    def status_value(self, assoc: Association, slot: MetadataUpdateSlot) -> Status | None:
        values = _slots(assoc).get(slot)
        loc = assoc.entry_uuid
        if values is None or len(values) != 1:
            found = "no" if values is None else f"{len(values)} values in its"
            self.update_error(
                f"UpdateAvailabilityStatus {loc} has {found} {slot} Slot (one value needed)", loc
            )
            return None
        try:
            status = Status(values[0].strip())
        except ValueError:
            status = None
        if status not in UPDATABLE_STATUSES:
            self.update_error(
                f"{slot} '{values[0]}' of UpdateAvailabilityStatus {loc} is neither {Status.APPROVED.value} "
                f"nor {Status.DEPRECATED.value}",
                loc,
            )
            return None
        return status

    def status_update(self, assoc: Association) -> StatusUpdate | None:
        if assoc.source != self.ss_id:
            self.update_error(
                f"the sourceObject of UpdateAvailabilityStatus {assoc.entry_uuid} must be the SubmissionSet",
                assoc.entry_uuid,
            )
        original = self.status_value(assoc, MetadataUpdateSlot.ORIGINAL_STATUS)
        new = self.status_value(assoc, MetadataUpdateSlot.NEW_STATUS)
        if original is None or new is None or assoc.source != self.ss_id:
            return None
        return StatusUpdate(assoc, original, new)

    def version(self, obj: DocumentEntry | Folder, membership: Association) -> VersionUpdate | None:
        loc, kind = membership.entry_uuid, type(obj).__name__
        slots = _slots(membership)
        previous = slots.get(MetadataUpdateSlot.PREVIOUS_VERSION)
        number: int | None = None
        if previous is None:
            self.update_error(
                f"HasMember {loc} from the SubmissionSet to the new version {obj.entry_uuid} of {kind} "
                f"{obj.logical_id} has no PreviousVersion Slot",
                loc,
            )
        elif len(previous) != 1 or not previous[0].strip().isdigit() or int(previous[0]) < 1:
            self.update_error(f"PreviousVersion of HasMember {loc} must be one version number", loc)
        else:
            number = int(previous[0])
        status = membership.submission_set_status
        if status != SubmissionSetStatus.ORIGINAL and (isinstance(obj, DocumentEntry) or status is not None):
            self.update_error(
                f"HasMember {loc} to the new version {obj.entry_uuid} needs SubmissionSetStatus Original",
                loc,
            )
        propagate = True
        flag = slots.get(MetadataUpdateSlot.ASSOCIATION_PROPAGATION)
        if flag is not None:
            value = _PROPAGATION.get(flag[0].strip().lower()) if len(flag) == 1 else None
            if value is None:
                self.update_error(f"AssociationPropagation of HasMember {loc} must be 'yes' or 'no'", loc)
            else:
                propagate = value
        if number is None:
            return None
        return VersionUpdate(obj, membership, number, propagate)

    def read(self) -> UpdateRequest:
        sub = self.sub
        entries: dict[str, DocumentEntry | Folder] = {d.entry_uuid: d for d in sub.documents}
        entries.update({x.entry_uuid: x for x in sub.folders})
        by_id = {a.entry_uuid: a for a in sub.associations}
        members: dict[str, list[Association]] = {}
        triggers: list[Association] = []
        statuses: list[StatusUpdate] = []
        others: list[Association] = []
        for a in sub.associations:
            if a.source == a.target:
                self.f.meta(f"Association {a.entry_uuid} links an object to itself", a.entry_uuid)
            if a.association_type is AssociationType.UPDATE_AVAILABILITY_STATUS:
                if (status := self.status_update(a)) is not None:
                    statuses.append(status)
            elif a.association_type is AssociationType.SUBMIT_ASSOCIATION:
                triggers.append(a)
            elif (
                a.association_type is AssociationType.HAS_MEMBER
                and a.source == self.ss_id
                and a.target in entries
            ):
                members.setdefault(a.target, []).append(a)
            else:
                others.append(a)
        claimed = self.claim(triggers, by_id)
        memberships = [a for a in others if self.records_submission(a, claimed)]
        recorded = {a.entry_uuid for a in memberships}
        for a in others:
            if a.entry_uuid not in claimed and a.entry_uuid not in recorded:
                self.f.add(
                    ErrorCode.METADATA_UPDATE_OPERATION_ERROR,
                    f"Association {a.entry_uuid} ({_name(a.association_type)} {a.source} -> {a.target}) "
                    "is part of no metadata update operation (a new version with its HasMember from the "
                    "SubmissionSet, an UpdateAvailabilityStatus, or an Association named by a "
                    "SubmitAssociation)",
                    a.entry_uuid,
                )
        versions: list[VersionUpdate] = []
        for obj in entries.values():
            found = members.get(obj.entry_uuid, [])
            if len(found) != 1:
                self.update_error(
                    f"the new version {obj.entry_uuid} of {type(obj).__name__} {obj.logical_id} needs "
                    f"exactly one HasMember from the SubmissionSet (has {len(found)})",
                    obj.entry_uuid,
                )
            elif (update := self.version(obj, found[0])) is not None:
                versions.append(update)
        submitted = tuple(AssociationSubmission(by_id[aid], trig) for aid, trig in claimed.items())
        if not (entries or statuses or submitted or self.f.problems):
            self.f.add(
                ErrorCode.METADATA_UPDATE_OPERATION_ERROR,
                "the request holds a SubmissionSet but no metadata update operation",
                self.ss_id,
            )
        return UpdateRequest(sub, tuple(versions), tuple(statuses), submitted, tuple(memberships))

    def claim(self, triggers: Iterable[Association], by_id: dict[str, Association]) -> dict[str, Association]:
        """Submitted Association id -> its SubmitAssociation."""
        claimed: dict[str, Association] = {}
        for trig in triggers:
            loc = trig.entry_uuid
            target = by_id.get(trig.target)
            if trig.source != self.ss_id:
                self.update_error(
                    f"the sourceObject of SubmitAssociation {loc} must be the SubmissionSet", loc
                )
            elif target is None or target.association_type in _TRIGGERS:
                self.update_error(
                    f"SubmitAssociation {loc} must name an Association submitted in this request "
                    f"(targetObject {trig.target})",
                    loc,
                )
            elif target.entry_uuid in claimed:
                self.update_error(f"Association {target.entry_uuid} is named by two SubmitAssociations", loc)
            else:
                claimed[target.entry_uuid] = trig
        return claimed

    def records_submission(self, assoc: Association, claimed: dict[str, Association]) -> bool:
        """A HasMember SubmissionSet -> a submitted Association (recorded with it)."""
        return (
            assoc.association_type is AssociationType.HAS_MEMBER
            and assoc.source == self.ss_id
            and assoc.target in claimed
        )


def _check_ids(f: Findings, sub: Submission) -> None:
    for obj_id, n in Counter(sub.all_ids()).items():
        if not obj_id:
            f.meta("an object has an empty id", "")
        elif n > 1:
            f.meta(f"id {obj_id} is used by {n} objects of the request", obj_id)
    ss = sub.submission_set
    if ss.logical_id is not None and ss.logical_id != ss.entry_uuid:
        f.add(
            ErrorCode.METADATA_UPDATE_ERROR,
            "a SubmissionSet is never a new version of another",
            ss.entry_uuid,
        )
    entries: list[DocumentEntry | Folder] = [*sub.documents, *sub.folders]
    for obj in entries:
        kind, lid = type(obj).__name__, obj.logical_id
        if lid is None or lid == obj.entry_uuid:
            f.add(
                ErrorCode.METADATA_UPDATE_ERROR,
                f"{kind} {obj.entry_uuid} is an initial version (lid absent or equal to its id); "
                "register it with Register Document Set-b [ITI-42]",
                obj.entry_uuid,
            )
        elif not is_uuid_urn(lid):
            f.add(
                ErrorCode.METADATA_UPDATE_ERROR,
                f"lid '{lid}' of {kind} {obj.entry_uuid} is not a UUID",
                obj.entry_uuid,
            )


def _check_objects(f: Findings, sub: Submission, domain: AffinityDomain) -> None:
    check_submission_set(f, sub.submission_set)
    for doc in sub.documents:
        check_document(f, doc, allow_on_demand=True)
    for folder in sub.folders:
        check_folder(f, folder)
    objects: list[SubmissionSet | DocumentEntry | Folder] = [sub.submission_set, *sub.documents, *sub.folders]
    first: dict[str, str] = {}
    for obj in objects:
        for kind, code in codes_of(obj):
            if not code.code or not code.scheme:
                f.meta(f"{kind} needs a code and a codingScheme", obj.entry_uuid)
            elif not code_allowed(kind, code, domain):
                f.meta(
                    f"{kind} '{code.code}' (codingScheme '{code.scheme}') is not in the affinity "
                    f"domain's {kind} list",
                    obj.entry_uuid,
                )
        if obj.unique_id in first:
            f.add(
                ErrorCode.REGISTRY_DUPLICATE_UNIQUE_ID_IN_MESSAGE,
                f"uniqueId {obj.unique_id} is also used by {first[obj.unique_id]}",
                obj.entry_uuid,
            )
        elif obj.unique_id:
            first[obj.unique_id] = obj.entry_uuid


def _with_uuids(req: UpdateRequest, make: Callable[[], str]) -> UpdateRequest:
    """``req`` with every symbolic id replaced by a fresh UUID (references rewritten)."""
    mapping = {old: make() for old in req.submission.all_ids() if not is_uuid_urn(old)}

    def m(value: str) -> str:
        return mapping.get(value, value)

    def assoc(a: Association) -> Association:
        return replace(a, entry_uuid=m(a.entry_uuid), source=m(a.source), target=m(a.target))

    def entry(obj: DocumentEntry | Folder) -> DocumentEntry | Folder:
        return replace(obj, entry_uuid=m(obj.entry_uuid))

    sub = req.submission
    ss = sub.submission_set
    return UpdateRequest(
        submission=replace(
            sub,
            submission_set=replace(ss, entry_uuid=m(ss.entry_uuid)),
            documents=tuple(replace(d, entry_uuid=m(d.entry_uuid)) for d in sub.documents),
            folders=tuple(replace(x, entry_uuid=m(x.entry_uuid)) for x in sub.folders),
            associations=tuple(assoc(a) for a in sub.associations),
        ),
        versions=tuple(replace(v, obj=entry(v.obj), membership=assoc(v.membership)) for v in req.versions),
        statuses=tuple(replace(s, assoc=assoc(s.assoc)) for s in req.statuses),
        associations=tuple(AssociationSubmission(assoc(s.assoc), assoc(s.trigger)) for s in req.associations),
        memberships=tuple(assoc(a) for a in req.memberships),
        submitted_ids={new: old for old, new in mapping.items()},
    )


def read_update_request(
    sub: Submission, domain: AffinityDomain, *, make_uuid: Callable[[], str] = new_uuid
) -> UpdateRequest:
    """The operations of the ITI-57 request ``sub``, with UUIDs for its symbolic ids.

    Raises XdsError with every problem found (see the module docstring), located by submitted id.
    """
    f = Findings(for_repository=False)
    _check_ids(f, sub)
    _check_objects(f, sub, domain)
    req = _Reader(sub, f).read()
    if f.problems:
        raise XdsError(f.problems)
    return _with_uuids(req, make_uuid)


__all__ = [
    "UPDATABLE_STATUSES",
    "AssociationSubmission",
    "StatusUpdate",
    "UpdateRequest",
    "VersionUpdate",
    "read_update_request",
]
