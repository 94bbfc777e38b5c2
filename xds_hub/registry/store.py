"""SQL of the Document Registry: the small lookups the registration rules need (ITI TF-2
3.42.4.1.3), status and folder updates, patient merges, and the reads and deletions of Metadata
Update and Remove Metadata.  A registered submission is written by :mod:`xds_hub.registry.insert`.

Every function takes a :class:`~sqlalchemy.Connection` already inside a transaction (for writes:
:func:`xds_hub.storage.db.write_transaction`) and never commits.

The JSON ``registry_object.body`` keeps the object as registered; ``status`` and folder
``last_update_time`` change later only in the index columns, which win when an object is read back
(see :mod:`xds_hub.storage.schema`).  A patient merge rewrites both the index columns and the body.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from sqlalchemy import Connection, and_, bindparam, or_, select, update

from xds_hub.domain.vocabulary import AssociationType, Status
from xds_hub.registry import dbapi
from xds_hub.storage import codec
from xds_hub.storage.schema import (
    association,
    document_entry,
    folder,
    object_author,
    object_code,
    object_reference_id,
    patient,
    registry_object,
    submission_set,
    versions_of,
)

T = TypeVar("T")

#: Largest number of bound values put in one ``IN (...)`` list (SQLite's historic limit is 999).
CHUNK: Final = 500


def chunks(values: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """``values`` in lists of at most ``size``."""
    batch: list[T] = []
    for value in values:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# ---------------------------------------------------------------------------------------------
# Lookups
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredObject:
    """The index view of a registry object: what the registration rules look at."""

    id: str
    kind: str  # registry_object.kind: 'D', 'S', 'F' or 'A' (see storage.codec.KINDS)
    lid: str
    status: str
    patient_id: str | None
    unique_id: str | None
    #: DocumentEntries only: objectType, hash and size.
    object_type: str | None = None
    hash: str | None = None
    size: int | None = None

    @property
    def approved(self) -> bool:
        return self.status == Status.APPROVED


@dataclass(frozen=True, slots=True)
class StoredAssociation:
    id: str
    type: str
    source_id: str
    target_id: str
    status: str


def _stored_objects_query() -> Any:
    ro, de = registry_object, document_entry
    return select(
        ro.c.id,
        ro.c.kind,
        ro.c.lid,
        ro.c.status,
        ro.c.patient_id,
        ro.c.unique_id,
        de.c.object_type,
        de.c.hash,
        de.c.size,
    ).select_from(ro.outerjoin(de, de.c.id == ro.c.id))


#: Built once, so that SQLAlchemy's compiled cache is hit (``ids``: an expanding IN list).
_BY_IDS: Final = _stored_objects_query().where(registry_object.c.id.in_(bindparam("ids", expanding=True)))
_BY_UNIQUE_IDS: Final = (
    _stored_objects_query()
    .where(registry_object.c.unique_id.in_(bindparam("ids", expanding=True)))
    .order_by(registry_object.c.seq)
)


def _stored(row: Any) -> StoredObject:
    return StoredObject(
        id=row.id,
        kind=row.kind,
        lid=row.lid,
        status=row.status,
        patient_id=row.patient_id,
        unique_id=row.unique_id,
        object_type=row.object_type,
        hash=row.hash,
        size=row.size,
    )


def find_by_ids(conn: Connection, ids: Iterable[str]) -> dict[str, StoredObject]:
    """The registry objects among ``ids`` (entryUUIDs), keyed by id; unknown ids are absent."""
    found: dict[str, StoredObject] = {}
    for batch in chunks(sorted(set(ids))):
        for row in conn.execute(_BY_IDS, {"ids": batch}):
            found[row.id] = _stored(row)
    return found


def find_by_unique_ids(conn: Connection, unique_ids: Iterable[str]) -> dict[str, list[StoredObject]]:
    """Registry objects carrying one of ``unique_ids``, grouped by uniqueId (several after resubmissions)."""
    found: dict[str, list[StoredObject]] = {}
    for batch in chunks(sorted(set(unique_ids))):
        for row in conn.execute(_BY_UNIQUE_IDS, {"ids": batch}):
            found.setdefault(row.unique_id, []).append(_stored(row))
    return found


@dataclass(frozen=True, slots=True)
class RegistrationLookup:
    """What the registration rules need from the registry, read by :func:`registration_lookup`."""

    #: Registered objects among the ids asked for, keyed by id.
    by_id: dict[str, StoredObject]
    #: Registered objects carrying one of the uniqueIds asked for, by uniqueId, in registration order.
    by_unique_id: dict[str, list[StoredObject]]
    #: The patient IDs asked for that the patient table holds -> the ID each was merged into (or None).
    patients: dict[str, str | None]


_LOOKUP_OBJECTS: Final = (
    "SELECT 'O', ro.id, ro.kind, ro.lid, ro.status, ro.patient_id, ro.unique_id, "
    "de.object_type, de.hash, de.size, ro.seq "
    "FROM registry_object ro LEFT OUTER JOIN document_entry de ON de.id = ro.id "
    "WHERE {ids} OR {unique_ids}"
)
_LOOKUP_PATIENTS: Final = (
    "SELECT 'P', patient_id, NULL, NULL, NULL, merged_into, NULL, NULL, NULL, NULL, NULL "
    "FROM patient WHERE {patients}"
)


def registration_lookup(
    conn: Connection, ids: Iterable[str], unique_ids: Iterable[str], patient_ids: Iterable[str]
) -> RegistrationLookup:
    """Registered objects by id and by uniqueId, and the patient table's rows for ``patient_ids``:
    one statement (a UNION ALL) for the few dozen values of a usual submission, chunked lookups
    (:func:`find_by_ids`, :func:`find_by_unique_ids`) beyond :data:`CHUNK` values."""
    wanted_ids, wanted_uids, wanted_pids = sorted(set(ids)), sorted(set(unique_ids)), sorted(set(patient_ids))
    if len(wanted_ids) + len(wanted_uids) + len(wanted_pids) > CHUNK:
        return RegistrationLookup(
            find_by_ids(conn, wanted_ids),
            find_by_unique_ids(conn, wanted_uids),
            patient_rows(conn, wanted_pids),
        )
    style = dbapi.flavor(conn)
    sql = (
        _LOOKUP_OBJECTS.format(
            ids=style.in_list("ro.id", len(wanted_ids)),
            unique_ids=style.in_list("ro.unique_id", len(wanted_uids)),
        )
        + " UNION ALL "
        + _LOOKUP_PATIENTS.format(patients=style.in_list("patient_id", len(wanted_pids)))
    )
    params = [*style.in_params(wanted_ids), *style.in_params(wanted_uids), *style.in_params(wanted_pids)]
    with dbapi.cursor(conn) as cur:
        if style is dbapi.POSTGRESQL:
            # Planned for its values every time, never prepared: psycopg prepares a statement run
            # five times, and PostgreSQL may then keep a generic plan made while the tables were
            # small (a sequential scan of registry_object), until an ANALYZE; on a new registry
            # every submission then read the whole table (~9 ms of server CPU each at 2,500).
            cur.execute(sql, params, prepare=False)
        else:
            cur.execute(sql, params)
        rows = cur.fetchall()
    id_set, uid_set = set(wanted_ids), set(wanted_uids)
    by_id: dict[str, StoredObject] = {}
    by_unique: list[tuple[int, StoredObject]] = []
    patients: dict[str, str | None] = {}
    for tag, oid, kind, lid, status, pid, uid, object_type, hash_, size, seq in rows:
        if tag == "P":
            patients[oid] = pid
            continue
        obj = StoredObject(oid, kind, lid, status, pid, uid, object_type, hash_, size)
        if oid in id_set:
            by_id[oid] = obj
        if uid in uid_set:
            by_unique.append((seq, obj))
    by_unique_id: dict[str, list[StoredObject]] = {}
    for _, obj in sorted(by_unique, key=lambda pair: pair[0]):
        by_unique_id.setdefault(obj.unique_id or "", []).append(obj)
    return RegistrationLookup(by_id, by_unique_id, patients)


def patient_rows(conn: Connection, patient_ids: Iterable[str]) -> dict[str, str | None]:
    """patient ID -> merged_into for the ``patient_ids`` the patient table holds."""
    p = patient
    found: dict[str, str | None] = {}
    for batch in chunks(sorted(set(patient_ids))):
        for row in conn.execute(select(p.c.patient_id, p.c.merged_into).where(p.c.patient_id.in_(batch))):
            found[row.patient_id] = row.merged_into
    return found


def find_document_by_uuid(conn: Connection, entry_uuid: str) -> StoredObject | None:
    """The DocumentEntry with this entryUUID, or None."""
    obj = find_by_ids(conn, [entry_uuid]).get(entry_uuid)
    return obj if obj is not None and obj.kind == "D" else None


def find_documents_by_unique_id(conn: Connection, unique_id: str) -> list[StoredObject]:
    """Every DocumentEntry registered with this uniqueId (more than one after resubmissions)."""
    return [o for o in find_by_unique_ids(conn, [unique_id]).get(unique_id, []) if o.kind == "D"]


def associations_of(
    conn: Connection,
    object_ids: Iterable[str],
    *,
    types: Iterable[str] | None = None,
    as_source: bool = True,
    as_target: bool = True,
) -> list[StoredAssociation]:
    """Associations whose source (``as_source``) or target (``as_target``) is one of ``object_ids``."""
    a = association
    wanted = list(types) if types is not None else None
    result: list[StoredAssociation] = []
    for batch in chunks(sorted(set(object_ids))):
        ends = []
        if as_source:
            ends.append(a.c.source_id.in_(batch))
        if as_target:
            ends.append(a.c.target_id.in_(batch))
        query = select(a.c.id, a.c.type, a.c.source_id, a.c.target_id, a.c.status).where(or_(*ends))
        if wanted is not None:
            query = query.where(a.c.type.in_(wanted))
        result.extend(
            StoredAssociation(r.id, r.type, r.source_id, r.target_id, r.status)
            for r in conn.execute(query.order_by(a.c.id))
        )
    return result


def approved_sources(
    conn: Connection, target_ids: Iterable[str], types: Iterable[str]
) -> list[tuple[str, str]]:
    """(source, target) of Approved associations of ``types`` into ``target_ids`` whose source is Approved."""
    a, ro = association, registry_object
    wanted = list(types)
    pairs: list[tuple[str, str]] = []
    for batch in chunks(sorted(set(target_ids))):
        query = (
            select(a.c.source_id, a.c.target_id)
            .select_from(a.join(ro, ro.c.id == a.c.source_id))
            .where(
                a.c.target_id.in_(batch),
                a.c.type.in_(wanted),
                a.c.status == Status.APPROVED.value,
                ro.c.status == Status.APPROVED.value,
            )
            .order_by(a.c.source_id)
        )
        pairs.extend((r.source_id, r.target_id) for r in conn.execute(query))
    return pairs


def folders_containing(conn: Connection, document_ids: Iterable[str]) -> dict[str, list[str]]:
    """document id -> the Approved Folders it is a member of (Approved HasMember), by entryUUID.

    A membership recorded against an older version of a Folder (ITI-57 Metadata Update) counts for
    the Folder's current Approved version, found through the logicalID.
    """
    a, ro = association, registry_object
    member_of: dict[str, list[str]] = {}
    for batch in chunks(sorted(set(document_ids))):
        holder = ro.alias("holder")
        current = ro.alias("current")
        query = (
            select(a.c.target_id, current.c.id)
            .select_from(
                a.join(holder, holder.c.id == a.c.source_id).join(
                    current, and_(versions_of(current, holder.c.lid), current.c.kind == "F")
                )
            )
            .where(
                a.c.target_id.in_(batch),
                a.c.type == AssociationType.HAS_MEMBER.value,
                a.c.status == Status.APPROVED.value,
                holder.c.kind == "F",
                current.c.status == Status.APPROVED.value,
            )
            .distinct()
            .order_by(a.c.target_id, current.c.id)
        )
        for row in conn.execute(query):
            member_of.setdefault(row.target_id, []).append(row[1])
    return member_of


# ---------------------------------------------------------------------------------------------
# Updates
# ---------------------------------------------------------------------------------------------


def set_status(conn: Connection, ids: Iterable[str], status: Status) -> None:
    """Set availabilityStatus of registry objects (index columns of every table that has one)."""
    wanted = sorted(set(ids))
    if not wanted:
        return
    for table in (registry_object, document_entry, submission_set, folder, association):
        for batch in chunks(wanted):
            conn.execute(update(table).where(table.c.id.in_(batch)).values(status=status.value))


def touch_folders(conn: Connection, folder_ids: Iterable[str], last_update_time: str) -> None:
    """Set Folder.lastUpdateTime (ITI TF-3 4.2.3.4.3) of existing folders."""
    for batch in chunks(sorted(set(folder_ids))):
        conn.execute(update(folder).where(folder.c.id.in_(batch)).values(last_update_time=last_update_time))


#: registry_object.kind of the objects that carry a patientId (DocumentEntry, SubmissionSet, Folder).
_PATIENT_KINDS: Final = ("D", "S", "F")


def move_patient(conn: Connection, subsumed_pid: str, surviving_pid: str) -> int:
    """Re-home every DocumentEntry, SubmissionSet and Folder of ``subsumed_pid`` to ``surviving_pid``.

    Rewrites the index columns and the JSON body (``patient_id``); returns the number of objects moved.
    """
    ro = registry_object
    rows = conn.execute(
        select(ro.c.id, ro.c.kind, ro.c.body).where(
            ro.c.patient_id == subsumed_pid, ro.c.kind.in_(_PATIENT_KINDS)
        )
    ).all()
    if not rows:
        return 0
    bodies = []
    for row in rows:
        obj = codec.loads(codec.KINDS[row.kind], row.body)
        moved = dataclasses.replace(obj, patient_id=surviving_pid)
        bodies.append({"b_id": row.id, "b_body": codec.dumps(moved)})
    conn.execute(
        update(ro).where(ro.c.id == bindparam("b_id")).values(body=bindparam("b_body")),
        bodies,
    )
    conn.execute(update(ro).where(ro.c.patient_id == subsumed_pid).values(patient_id=surviving_pid))
    for table in (document_entry, submission_set, folder):
        conn.execute(update(table).where(table.c.patient_id == subsumed_pid).values(patient_id=surviving_pid))
    return len(rows)


def mark_merged(conn: Connection, subsumed_pid: str, surviving_pid: str, created: str) -> None:
    """Record in the patient table that ``subsumed_pid`` now lives on as ``surviving_pid``.

    IDs merged earlier into ``subsumed_pid`` are pointed at ``surviving_pid`` too, so ``merged_into``
    always names a live ID.  Either ID is added to the table if it was not there.
    """
    p = patient
    known = set(
        conn.execute(
            select(p.c.patient_id).where(p.c.patient_id.in_([subsumed_pid, surviving_pid]))
        ).scalars()
    )
    missing = [
        {"patient_id": pid, "created": created, "merged_into": None}
        for pid in (subsumed_pid, surviving_pid)
        if pid not in known
    ]
    if missing:
        conn.execute(p.insert(), missing)
    conn.execute(update(p).where(p.c.merged_into == subsumed_pid).values(merged_into=surviving_pid))
    conn.execute(update(p).where(p.c.patient_id == subsumed_pid).values(merged_into=surviving_pid))


def live_patient_id(conn: Connection, pid: str) -> str:
    """``pid`` itself, or the ID it was (transitively) merged into."""
    seen = {pid}
    while True:
        row = conn.execute(select(patient.c.merged_into).where(patient.c.patient_id == pid)).first()
        if row is None or row.merged_into is None or row.merged_into in seen:
            return pid
        pid = row.merged_into
        seen.add(pid)


# ---------------------------------------------------------------------------------------------
# Metadata Update [ITI-57] and Remove Metadata [ITI-62]
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """The latest version of a logical object (ITI TF-3 4.1.4 "Metadata versioning")."""

    obj: StoredObject
    number: int


def latest_versions(conn: Connection, lids: Iterable[str]) -> dict[str, StoredVersion]:
    """logicalID -> its latest (highest-numbered) version, for the ``lids`` that name registry objects."""
    ro = registry_object
    found: dict[str, StoredVersion] = {}
    for batch in chunks(sorted(set(lids))):
        query = (
            _stored_objects_query()
            .add_columns(ro.c.version)
            .where(versions_of(ro, batch))
            .order_by(ro.c.lid, ro.c.version.desc(), ro.c.seq.desc())
        )
        for row in conn.execute(query):
            if row.lid not in found:
                found[row.lid] = StoredVersion(_stored(row), int(row.version))
    return found


def find_associations(conn: Connection, ids: Iterable[str]) -> dict[str, StoredAssociation]:
    """The Associations among ``ids`` (entryUUIDs), keyed by id; other ids are absent."""
    a = association
    found: dict[str, StoredAssociation] = {}
    for batch in chunks(sorted(set(ids))):
        query = select(a.c.id, a.c.type, a.c.source_id, a.c.target_id, a.c.status).where(a.c.id.in_(batch))
        for r in conn.execute(query):
            found[r.id] = StoredAssociation(r.id, r.type, r.source_id, r.target_id, r.status)
    return found


#: Index tables keyed by the object id (``id``) and by ``object_id``; registry_object last.
_ID_TABLES: Final = (document_entry, submission_set, folder, association, registry_object)
_OBJECT_ID_TABLES: Final = (object_code, object_author, object_reference_id)


def delete_objects(conn: Connection, ids: Iterable[str]) -> int:
    """Remove registry objects with every index row of them (Remove Metadata, ITI TF-2 3.62.4.1.3).

    The caller has checked that no remaining Association references them.  Returns the number of
    registry objects removed.
    """
    removed = 0
    for batch in chunks(sorted(set(ids))):
        for table in _OBJECT_ID_TABLES:
            conn.execute(table.delete().where(table.c.object_id.in_(batch)))
        for table in _ID_TABLES:
            result = conn.execute(table.delete().where(table.c.id.in_(batch)))
            if table is registry_object:
                removed += result.rowcount
    return removed
