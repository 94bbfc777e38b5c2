"""Removing metadata from the Document Registry: Delete Document Set [ITI-62] (ITI TF-2 3.62.4.1.3,
Remove Metadata and Documents profile).

:func:`remove_objects` deletes the named DocumentEntries, Folders, SubmissionSets and
Associations (every version named, with all their index rows) inside the caller's
:func:`~xds_hub.storage.db.write_transaction`, after checking that the registry stays a
consistent metadata model; on any problem nothing is removed.

=========================================================================  ==============================
rule                                                                       error code
=========================================================================  ==============================
a named object is not in the registry                                      UnresolvedReferenceException
a named object is the source or target of an Association that is not      ReferencesExistException
  removed with it (no Association may be left dangling)
a SubmissionSet that stays would be left without any Association from it   XDSUnreferencedObjectException
  (an empty SubmissionSet); a DocumentEntry, Folder or Association that
  stays would lose its last HasMember from a SubmissionSet (it would belong
  to no submission)
=========================================================================  ==============================

These are the rules the NIST registry simulator applies to Remove Metadata (its tests remove a
whole submission, or a Folder membership with the HasMember that records it).  Folders that stay
and lose a member get lastUpdateTime = now.  A removed Association is removed whatever its status;
removing the previous versions of a DocumentEntry or Folder leaves its latest version in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import Connection

from xds_hub.domain.vocabulary import AssociationType
from xds_hub.errors import ErrorCode, Problem, XdsError
from xds_hub.registry import store
from xds_hub.registry.register import KIND_NAMES, dtm

HAS_MEMBER: Final = AssociationType.HAS_MEMBER.value


@dataclass(frozen=True, slots=True)
class RemovalResult:
    """What :func:`remove_objects` removed, by kind letter ('D', 'S', 'F', 'A')."""

    removed: dict[str, tuple[str, ...]]
    #: Folders that stay and lost a member (their lastUpdateTime was set).
    updated_folder_ids: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return sum(len(ids) for ids in self.removed.values())


def _name(assoc: store.StoredAssociation) -> str:
    return assoc.type.rsplit(":", 1)[-1]


class _Removal:
    def __init__(self, conn: Connection, ids: Sequence[str]) -> None:
        self.conn = conn
        self.ids = list(dict.fromkeys(ids))
        self.removing = set(self.ids)
        self.found = store.find_by_ids(conn, self.ids)
        self.problems: list[Problem] = []

    def fail(self, code: ErrorCode, context: str, location: str) -> None:
        self.problems.append(Problem(code, context, location))

    def label(self, object_id: str, objects: dict[str, store.StoredObject]) -> str:
        obj = objects.get(object_id)
        return f"{KIND_NAMES[obj.kind]} {object_id}" if obj is not None else object_id

    def check_known(self) -> None:
        for object_id in self.ids:
            if object_id not in self.found:
                self.fail(
                    ErrorCode.UNRESOLVED_REFERENCE,
                    f"{object_id} is not an object of the registry (DocumentEntry, Folder, SubmissionSet or "
                    "Association)",
                    object_id,
                )

    def check_references(self) -> list[store.StoredAssociation]:
        """ReferencesExistException for Associations left behind; returns the Associations removed."""
        touching = store.associations_of(self.conn, self.removing)
        removed = {a.id: a for a in store.find_associations(self.conn, self.removing).values()}
        for a in touching:
            if a.id in self.removing:
                continue
            for end in (a.source_id, a.target_id):
                if end in self.removing:
                    self.fail(
                        ErrorCode.REFERENCES_EXIST,
                        f"{self.label(end, self.found)} is referenced by Association {a.id} ({_name(a)} "
                        f"{a.source_id} -> {a.target_id}), which the request does not remove",
                        end,
                    )
        return list(removed.values())

    def check_unreferenced(self, removed: Iterable[store.StoredAssociation]) -> set[str]:
        """XDSUnreferencedObjectException for objects that stay and lose their last reference.

        Returns the Folders that stay and lose a member.
        """
        removed = list(removed)
        ends = {e for a in removed for e in (a.source_id, a.target_id)} - self.removing
        objects = store.find_by_ids(self.conn, ends)
        sets = [i for i in sorted(ends) if i in objects and objects[i].kind == "S"]
        others = [i for i in sorted(ends) if i in objects and objects[i].kind != "S"]
        for ss_id in sets:
            left = store.associations_of(self.conn, [ss_id], as_target=False)
            if all(a.id in self.removing for a in left):
                self.fail(
                    ErrorCode.UNREFERENCED_OBJECT,
                    f"SubmissionSet {ss_id} would be left without any member or Association: remove it too",
                    ss_id,
                )
        memberships = store.associations_of(self.conn, others, types=[HAS_MEMBER], as_source=False)
        holders = store.find_by_ids(self.conn, [a.source_id for a in memberships])
        from_sets = [a for a in memberships if (h := holders.get(a.source_id)) is not None and h.kind == "S"]
        for object_id in others:
            held = [a for a in from_sets if a.target_id == object_id]
            if held and all(a.id in self.removing or a.source_id in self.removing for a in held):
                self.fail(
                    ErrorCode.UNREFERENCED_OBJECT,
                    f"{self.label(object_id, objects)} would be left without a HasMember from any "
                    "SubmissionSet: remove it too, or keep a SubmissionSet that holds it",
                    object_id,
                )
        return {
            a.source_id
            for a in removed
            if a.type == HAS_MEMBER
            and a.source_id not in self.removing
            and (o := objects.get(a.source_id)) is not None
            and o.kind == "F"
        }


def remove_objects(conn: Connection, ids: Sequence[str], *, now: datetime | None = None) -> RemovalResult:
    """Remove the registry objects ``ids`` (ITI TF-2 3.62.4.1.3), all or nothing.

    Call inside :func:`~xds_hub.storage.db.write_transaction`.  Raises XdsError with every
    problem found before removing anything.
    """
    rm = _Removal(conn, ids)
    rm.check_known()
    if rm.problems:
        raise XdsError(rm.problems)
    removed_assocs = rm.check_references()
    folders = rm.check_unreferenced(removed_assocs)
    if rm.problems:
        raise XdsError(rm.problems)
    store.delete_objects(conn, rm.ids)
    store.touch_folders(conn, folders, dtm(now or datetime.now(UTC)))
    by_kind: dict[str, list[str]] = {}
    for object_id in rm.ids:
        by_kind.setdefault(rm.found[object_id].kind, []).append(object_id)
    return RemovalResult(
        removed={kind: tuple(v) for kind, v in by_kind.items()}, updated_folder_ids=tuple(sorted(folders))
    )
