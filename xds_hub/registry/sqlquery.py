"""The fourteen Registry Stored Queries [ITI-18] as SQL over the registry index tables.

One function per stored query (ITI TF-2 3.18.4.1.2.3.7.1-14), chosen by :data:`QUERIES`; each runs
a fixed, small number of statements whatever the number of matches (never one per row) and returns
a :class:`Found`: the entryUUIDs of the result objects, in order, with their kind.  :func:`execute`
applies what all queries share: XDSTooManyResults, the $MetadataLevel 1 rules (ITI TF-2
3.18.4.1.2.3.5.1: no superseded versions, no Offline DocumentEntries, no Deprecated Folders or
Associations), ObjectRef or LeafClass, XDSResultNotSinglePatient (LeafClass only: object references
disclose no patient data) and the homeCommunityId of returned objects.

Semantics worth knowing:

- times: From is inclusive, To exclusive, values of any DTM precision
  (:func:`~xds_hub.domain.query.time_key`); an object without the attribute does not match a range on it;
- codes: one EXISTS per Slot over ``object_code`` (AND of ORs); authorPerson: case-insensitive
  SQL LIKE with the caller's % and _ (a backslash is literal);
- a patient ID merged into another (ITI-8 / ITI-44 merge) finds nothing; the surviving ID finds the
  merged metadata, which :func:`xds_hub.registry.store.move_patient` moved (ITI TF-2 3.18.4.1.2.3.9.1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    literal,
    or_,
    select,
    union_all,
)

from xds_hub.domain.metadata import ObjectRef, RegistryObject
from xds_hub.domain.query import (
    CodeQuery,
    FindDocuments,
    FindDocumentsByReferenceId,
    FindFolders,
    FindSubmissionSets,
    GetAll,
    GetAssociations,
    GetDocuments,
    GetDocumentsAndAssociations,
    GetFolderAndContents,
    GetFolders,
    GetFoldersForDocument,
    GetRelatedDocuments,
    GetSubmissionSetAndContents,
    GetSubmissionSets,
    ReturnType,
    StoredQueryParams,
    time_key,
)
from xds_hub.domain.vocabulary import AssociationType, ObjectType, Status
from xds_hub.errors import ErrorCode, XdsError
from xds_hub.registry import read
from xds_hub.registry.read import chunks
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

de, ss, fo, asc, ro = document_entry, submission_set, folder, association, registry_object
HAS_MEMBER: Final = AssociationType.HAS_MEMBER.value
DEPRECATED: Final = Status.DEPRECATED.value


@dataclass
class Found:
    """Result of one stored query: entryUUID -> kind letter ('D', 'S', 'F', 'A'), in result order."""

    refs: dict[str, str] = field(default_factory=dict)
    #: Association id -> (sourceObject, targetObject).
    ends: dict[str, tuple[str, str]] = field(default_factory=dict)

    def add(self, kind: str, ids: Iterable[str]) -> Found:
        for i in ids:
            self.refs.setdefault(i, kind)
        return self

    def add_associations(self, rows: Iterable[Any]) -> Found:
        for row in rows:
            self.refs.setdefault(row.id, "A")
            self.ends[row.id] = (row.source_id, row.target_id)
        return self

    def ids(self, kind: str | None = None) -> list[str]:
        return [i for i, k in self.refs.items() if kind is None or k == kind]

    def without(self, gone: set[str]) -> Found:
        """Without the objects ``gone`` and the Associations that point at them."""
        out = Found()
        for i, k in self.refs.items():
            ends = self.ends.get(i, ())
            if i not in gone and not any(e in gone for e in ends):
                out.refs[i] = k
                if i in self.ends:
                    out.ends[i] = self.ends[i]
        return out


# ---------------------------------------------------------------------------------------------
# Conditions
# ---------------------------------------------------------------------------------------------


def _values(items: Iterable[Any]) -> list[str]:
    return sorted({getattr(i, "value", i) for i in items})


def _time(col: Any, lower: str | None, upper: str | None) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if lower is not None:
        conds.append(col >= time_key(lower))
    if upper is not None:
        conds.append(col < time_key(upper))
    return conds


def _codes(id_col: Any, kind: str, query: CodeQuery) -> list[ColumnElement[bool]]:
    """One EXISTS per Slot: the object has a code of ``kind`` among that Slot's alternatives."""
    oc = object_code
    conds: list[ColumnElement[bool]] = []
    for group in query:
        alternatives = [
            oc.c.code == v.code if v.scheme is None else and_(oc.c.code == v.code, oc.c.scheme == v.scheme)
            for v in group
        ]
        exists = select(oc.c.object_id).where(oc.c.object_id == id_col, oc.c.kind == kind, or_(*alternatives))
        conds.append(exists.exists())
    return conds


def _like(pattern: str) -> str:
    return pattern.replace("\\", "\\\\")


def _authors(id_col: Any, patterns: Sequence[str]) -> list[ColumnElement[bool]]:
    if not patterns:
        return []
    oa = object_author
    alternatives = [oa.c.person.ilike(_like(p), escape="\\") for p in patterns]
    return [select(oa.c.object_id).where(oa.c.object_id == id_col, or_(*alternatives)).exists()]


def _not_subsumed(pid: str) -> ColumnElement[bool]:
    """False when ``pid`` was merged into another patient ID (ITI TF-2 3.18.4.1.2.3.9.1)."""
    p = patient
    return ~select(p.c.patient_id).where(p.c.patient_id == pid, p.c.merged_into.is_not(None)).exists()


def _latest(id_col: Any) -> ColumnElement[bool]:
    """The object is the latest version of its logical id (Metadata Update, ITI TF-3 4.1.5)."""
    old, new = ro.alias("v_old"), ro.alias("v_new")
    newer = (
        select(new.c.id)
        .select_from(
            # a newer version is never a first one: lid <> id (the rows ix_registry_object_lid holds)
            old.join(new, and_(new.c.lid == old.c.lid, new.c.lid != new.c.id, new.c.version > old.c.version))
        )
        .where(old.c.id == id_col)
    )
    return ~newer.exists()


def _doc_versions(
    q: StoredQueryParams, statuses: Iterable[Status] | None = None
) -> list[ColumnElement[bool]]:
    """$MetadataLevel 1 hides superseded versions, which ITI-57 always leaves Deprecated."""
    if q.metadata_level != 1 or (statuses is not None and Status.DEPRECATED not in statuses):
        return []
    return [_latest(de.c.id)]


def _assoc_level(q: StoredQueryParams) -> list[ColumnElement[bool]]:
    return [asc.c.status != DEPRECATED] if q.metadata_level == 1 else []


def _folder_statuses(q: StoredQueryParams, statuses: frozenset[Status]) -> frozenset[Status]:
    return statuses - {Status.DEPRECATED} if q.metadata_level == 1 else statuses


def _folder_level(q: StoredQueryParams) -> list[ColumnElement[bool]]:
    return [fo.c.status != DEPRECATED, _latest(fo.c.id)] if q.metadata_level == 1 else []


def _content_filters(
    format_codes: CodeQuery, confidentiality_codes: CodeQuery, entry_types: frozenset[ObjectType]
) -> list[ColumnElement[bool]]:
    return [
        de.c.object_type.in_(_values(entry_types)),
        *_codes(de.c.id, "formatCode", format_codes),
        *_codes(de.c.id, "confidentialityCode", confidentiality_codes),
    ]


def _column(conn: Connection, stmt: Select[Any]) -> list[str]:
    return list(conn.execute(stmt).scalars())


def _chunked(conn: Connection, ids: Iterable[str], make: Callable[[list[str]], Select[Any]]) -> list[Any]:
    rows: list[Any] = []
    for batch in chunks(ids):
        rows.extend(conn.execute(make(batch)).all())
    return rows


def _assoc_cols() -> Select[Any]:
    return select(asc.c.id, asc.c.source_id, asc.c.target_id)


def _associations_of(
    conn: Connection, q: StoredQueryParams, ids: Sequence[str], types: Sequence[str] = ()
) -> list[Any]:
    """Associations (of ``types``, if given) whose source or target is one of ``ids``."""
    conds = [*_assoc_level(q), *([asc.c.type.in_(types)] if types else [])]

    def make(batch: list[str]) -> Select[Any]:
        by_source = _assoc_cols().where(asc.c.source_id.in_(batch), *conds)
        by_target = _assoc_cols().where(asc.c.target_id.in_(batch), *conds)
        return select(union_all(by_source, by_target).subquery())

    return list({row.id: row for row in _chunked(conn, ids, make)}.values())


# ---------------------------------------------------------------------------------------------
# The queries
# ---------------------------------------------------------------------------------------------


# FindDocuments is the query a registry answers most, so its statement is built once per shape
# (which parameters are present, how many values each has) and then run with bound values only:
# building and cache-keying a fresh SQLAlchemy statement cost ~1 ms of CPU per query, the SQL
# itself 0.1-0.3 ms.  Its conditions are first written as data (_Spec), from which both the
# statement of a shape and the bound values of one request follow, in the same order.

#: One condition of FindDocuments: (operator, what the statement depends on, the values it binds).
_Spec = tuple[str, Any, tuple[Any, ...]]

_DOCUMENT_CODE_KINDS: Final = (
    ("classCode", "class_codes"),
    ("typeCode", "type_codes"),
    ("practiceSettingCode", "practice_setting_codes"),
    ("healthcareFacilityTypeCode", "healthcare_facility_type_codes"),
    ("formatCode", "format_codes"),
    ("eventCodeList", "event_codes"),
    ("confidentialityCode", "confidentiality_codes"),
)
_DOCUMENT_TIMES: Final = (
    ("creation_time", "creation_time_from", "creation_time_to"),
    ("service_start_time", "service_start_time_from", "service_start_time_to"),
    ("service_stop_time", "service_stop_time_from", "service_stop_time_to"),
)


def _find_documents_specs(q: FindDocuments) -> list[_Spec]:
    specs: list[_Spec] = [
        ("eq", "patient_id", (q.patient_id,)),
        ("in", "status", tuple(_values(q.statuses))),
        ("in", "object_type", tuple(_values(q.entry_types))),
    ]
    for column, lower, upper in _DOCUMENT_TIMES:
        low, high = getattr(q, lower), getattr(q, upper)
        if low is not None:
            specs.append(("ge", column, (time_key(low),)))
        if high is not None:
            specs.append(("lt", column, (time_key(high),)))
    for kind, fld in _DOCUMENT_CODE_KINDS:
        for group in getattr(q, fld):
            with_scheme = tuple(v.scheme is not None for v in group)
            values = tuple(x for v in group for x in ((v.code,) if v.scheme is None else (v.code, v.scheme)))
            specs.append(("code", (kind, with_scheme), values))
    if q.author_persons:
        specs.append(("author", None, tuple(_like(p) for p in q.author_persons)))
    if _doc_versions(q, q.statuses):
        specs.append(("latest", None, ()))
    specs.append(("not_subsumed", None, (q.patient_id,)))
    if isinstance(q, FindDocumentsByReferenceId):
        specs.extend(("reference_id", None, tuple(group)) for group in q.reference_ids)
    return specs


def _code_exists(target: tuple[str, tuple[bool, ...]], bound: Sequence[Any]) -> ColumnElement[bool]:
    kind, with_scheme = target
    oc, values, alternatives = object_code, iter(bound), []
    for has_scheme in with_scheme:
        code = oc.c.code == next(values)
        alternatives.append(and_(code, oc.c.scheme == next(values)) if has_scheme else code)
    return (
        select(oc.c.object_id)
        .where(oc.c.object_id == de.c.id, oc.c.kind == kind, or_(*alternatives))
        .exists()
    )


def _author_exists(_target: Any, bound: Sequence[Any]) -> ColumnElement[bool]:
    oa = object_author
    alternatives = [oa.c.person.ilike(p, escape="\\") for p in bound]
    return select(oa.c.object_id).where(oa.c.object_id == de.c.id, or_(*alternatives)).exists()


def _reference_id_exists(_target: Any, bound: Sequence[Any]) -> ColumnElement[bool]:
    ri = object_reference_id
    return select(ri.c.object_id).where(ri.c.object_id == de.c.id, ri.c.value.in_(bound)).exists()


#: How each _Spec operator becomes SQL, given its target and its bound values (or bind parameters).
_SPEC_SQL: Final[dict[str, Callable[[Any, Sequence[Any]], ColumnElement[bool]]]] = {
    "eq": lambda column, bound: de.c[column] == bound[0],
    "in": lambda column, bound: de.c[column].in_(bound),
    "ge": lambda column, bound: de.c[column] >= bound[0],
    "lt": lambda column, bound: de.c[column] < bound[0],
    "code": _code_exists,
    "author": _author_exists,
    "latest": lambda _target, _bound: _latest(de.c.id),
    "not_subsumed": lambda _target, bound: _not_subsumed(bound[0]),
    "reference_id": _reference_id_exists,
}


def _conditions(specs: Sequence[_Spec], bound: Sequence[Any]) -> list[ColumnElement[bool]]:
    """The SQL of ``specs``, binding ``bound`` (the specs' values, or parameters, in order)."""
    conds, at = [], 0
    for op, target, values in specs:
        conds.append(_SPEC_SQL[op](target, bound[at : at + len(values)]))
        at += len(values)
    return conds


def find_documents(conn: Connection, q: FindDocuments, limit: int) -> Found:
    """3.18.4.1.2.3.7.1 FindDocuments (and .14 FindDocumentsByReferenceId): one statement."""
    return Found().add("D", [row.id for row in find_document_rows(conn, q, limit, leaf=False)])


#: FindDocuments statements by shape (LeafClass?, limit, the specs without their values).
_STATEMENTS: dict[tuple[Any, ...], Select[Any]] = {}
#: Shapes kept before the cache is emptied (a client varying its code lists makes new shapes).
_MAX_STATEMENTS: Final = 1024


def find_document_rows(conn: Connection, q: FindDocuments, limit: int, leaf: bool) -> list[Any]:
    """FindDocuments in one statement, the query the registry answers most: for LeafClass the
    registry_object rows, bodies included; for ObjectRef the ids, each with ``maybe_offline``."""
    specs = _find_documents_specs(q)
    values = [v for _, _, vs in specs for v in vs]
    key = (leaf, limit, tuple((op, target, len(vs)) for op, target, vs in specs))
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        columns = read.object_columns() if leaf else select(de.c.id, read.maybe_offline(ro.c.body))
        where = _conditions(specs, [bindparam(f"p{i}") for i in range(len(values))])
        stmt = columns.select_from(de.join(ro, ro.c.id == de.c.id)).where(*where).limit(limit)
        if len(_STATEMENTS) >= _MAX_STATEMENTS:
            _STATEMENTS.clear()
        _STATEMENTS[key] = stmt
    return list(conn.execute(stmt, {f"p{i}": v for i, v in enumerate(values)}).all())


def find_submission_sets(conn: Connection, q: FindSubmissionSets, limit: int) -> Found:
    """3.18.4.1.2.3.7.2 FindSubmissionSets: one statement."""
    conds = [
        ss.c.patient_id == q.patient_id,
        ss.c.status.in_(_values(q.statuses)),
        *_time(ss.c.submission_time, q.submission_time_from, q.submission_time_to),
        *_codes(ss.c.id, "contentTypeCode", q.content_type_codes),
        *_authors(ss.c.id, [q.author_person] if q.author_person else []),
        _not_subsumed(q.patient_id),
    ]
    if q.source_ids:
        conds.append(ss.c.source_id.in_(q.source_ids))
    return Found().add("S", _column(conn, select(ss.c.id).where(*conds).limit(limit)))


def find_folders(conn: Connection, q: FindFolders, limit: int) -> Found:
    """3.18.4.1.2.3.7.3 FindFolders: one statement."""
    conds = [
        fo.c.patient_id == q.patient_id,
        fo.c.status.in_(_values(_folder_statuses(q, q.statuses))),
        *_time(fo.c.last_update_time, q.last_update_time_from, q.last_update_time_to),
        *_codes(fo.c.id, "folderCodeList", q.codes),
        _not_subsumed(q.patient_id),
    ]
    return Found().add("F", _column(conn, select(fo.c.id).where(*conds).limit(limit)))


def get_all(conn: Connection, q: GetAll, limit: int) -> Found:
    """3.18.4.1.2.3.7.4 GetAll: the patient's objects (one statement), then their Associations."""
    docs = select(de.c.id, literal("D").label("kind")).where(
        de.c.patient_id == q.patient_id,
        de.c.status.in_(_values(q.document_statuses)),
        *_content_filters(q.format_codes, q.confidentiality_codes, q.entry_types),
        *_doc_versions(q, q.document_statuses),
    )
    sets = select(ss.c.id, literal("S").label("kind")).where(
        ss.c.patient_id == q.patient_id, ss.c.status.in_(_values(q.submission_set_statuses))
    )
    folders = select(fo.c.id, literal("F").label("kind")).where(
        fo.c.patient_id == q.patient_id, fo.c.status.in_(_values(_folder_statuses(q, q.folder_statuses)))
    )
    if q.metadata_level == 1:
        folders = folders.where(_latest(fo.c.id))
    both = union_all(sets, folders, docs).subquery()
    found = Found()
    for row in conn.execute(select(both).where(_not_subsumed(q.patient_id)).limit(limit)):
        found.add(row.kind, [row.id])
    objects = set(found.refs)
    rows = _chunked(conn, objects, lambda b: _assoc_cols().where(asc.c.source_id.in_(b), *_assoc_level(q)))
    direct = [r for r in rows if r.target_id in objects]
    direct_ids = {r.id for r in direct}
    # HasMember from a SubmissionSet to a Folder-to-DocumentEntry HasMember of this patient.
    return found.add_associations([*direct, *(r for r in rows if r.target_id in direct_ids)])


def get_documents(conn: Connection, q: GetDocuments, limit: int) -> Found:
    """3.18.4.1.2.3.7.5 GetDocuments (by entryUUID, uniqueId or logicalID; any status)."""
    return Found().add("D", _documents_by_id(conn, q, q.entry_uuids, q.unique_ids, q.logical_ids))


def _documents_by_id(
    conn: Connection,
    q: StoredQueryParams,
    uuids: Sequence[str],
    uids: Sequence[str],
    lids: Sequence[str] = (),
) -> list[str]:
    def make(batch: list[str]) -> Select[Any]:
        if uuids:
            cond = de.c.id.in_(batch)
        elif uids:
            cond = de.c.id.in_(_by_unique_id("D", batch))
        else:
            cond = de.c.id.in_(select(ro.c.id).where(versions_of(ro, batch), ro.c.kind == "D"))
        return select(de.c.id).where(cond, *_doc_versions(q))

    return [row.id for row in _chunked(conn, uuids or uids or lids, make)]


def get_folders(conn: Connection, q: GetFolders, limit: int) -> Found:
    """3.18.4.1.2.3.7.6 GetFolders (by entryUUID, uniqueId or logicalID)."""

    def make(batch: list[str]) -> Select[Any]:
        if q.entry_uuids:
            cond = fo.c.id.in_(batch)
        elif q.unique_ids:
            cond = fo.c.id.in_(_by_unique_id("F", batch))
        else:
            cond = fo.c.id.in_(select(ro.c.id).where(versions_of(ro, batch), ro.c.kind == "F"))
        return select(fo.c.id).where(cond, *_folder_level(q))

    rows = _chunked(conn, q.entry_uuids or q.unique_ids or q.logical_ids, make)
    return Found().add("F", [row.id for row in rows])


def get_associations(conn: Connection, q: GetAssociations, limit: int) -> Found:
    """3.18.4.1.2.3.7.7 GetAssociations: those with source or target among $uuid."""
    return Found().add_associations(_associations_of(conn, q, q.uuids))


def get_documents_and_associations(conn: Connection, q: GetDocumentsAndAssociations, limit: int) -> Found:
    """3.18.4.1.2.3.7.8 GetDocumentsAndAssociations: the documents and every Association touching them."""
    docs = _documents_by_id(conn, q, q.entry_uuids, q.unique_ids)
    return Found().add("D", docs).add_associations(_associations_of(conn, q, docs))


def get_submission_sets(conn: Connection, q: GetSubmissionSets, limit: int) -> Found:
    """3.18.4.1.2.3.7.9 GetSubmissionSets: SubmissionSets holding $uuid objects, with those HasMembers."""

    def make(batch: list[str]) -> Select[Any]:
        return (
            _assoc_cols()
            .select_from(asc.join(ss, ss.c.id == asc.c.source_id))
            .where(asc.c.type == HAS_MEMBER, asc.c.target_id.in_(batch), *_assoc_level(q))
        )

    rows = _chunked(conn, q.uuids, make)
    return Found().add("S", [r.source_id for r in rows]).add_associations(rows)


def _by_unique_id(kind: str, uids: Sequence[str]) -> Select[Any]:
    """The entryUUIDs with those uniqueIds (through the uniqueId index of registry_object)."""
    return select(ro.c.id).where(ro.c.unique_id.in_(uids), ro.c.kind == kind)


def _one_id(
    conn: Connection, table: Any, kind: str, uuid: str | None, uid: str | None, *conds: Any
) -> str | None:
    """The entryUUID of the object with that entryUUID or uniqueId (the latest version of a uniqueId)."""
    key = table.c.id == uuid if uuid is not None else table.c.id.in_(_by_unique_id(kind, [uid or ""]))
    stmt = (
        select(table.c.id)
        .join(ro, ro.c.id == table.c.id)
        .where(key, *conds)
        .order_by(ro.c.version.desc())
        .limit(1)
    )
    return conn.execute(stmt).scalar()


def _members(conn: Connection, q: StoredQueryParams, package_id: str) -> list[Any]:
    """HasMember Associations from ``package_id`` with the kind of their target."""
    stmt = (
        select(asc.c.id, asc.c.source_id, asc.c.target_id, ro.c.kind)
        .select_from(asc.outerjoin(ro, ro.c.id == asc.c.target_id))
        .where(asc.c.source_id == package_id, asc.c.type == HAS_MEMBER, *_assoc_level(q))
    )
    return list(conn.execute(stmt).all())


def _filter_documents(conn: Connection, ids: Sequence[str], conds: Sequence[ColumnElement[bool]]) -> set[str]:
    return {row.id for row in _chunked(conn, ids, lambda b: select(de.c.id).where(de.c.id.in_(b), *conds))}


def get_submission_set_and_contents(conn: Connection, q: GetSubmissionSetAndContents, limit: int) -> Found:
    """3.18.4.1.2.3.7.10: the SubmissionSet, its DocumentEntries (filtered), Folders, member
    Associations, and the HasMembers from the SubmissionSet to each of them."""
    ss_id = _one_id(conn, ss, "S", q.entry_uuid, q.unique_id)
    if ss_id is None:
        return Found()
    members = _members(conn, q, ss_id)
    targets = {kind: [m.target_id for m in members if m.kind == kind] for kind in ("D", "F", "A")}
    conds = [*_content_filters(q.format_codes, q.confidentiality_codes, q.entry_types), *_doc_versions(q)]
    docs = _filter_documents(conn, targets["D"], conds)
    level, assoc_level = _folder_level(q), _assoc_level(q)
    folder_rows = _chunked(conn, targets["F"], lambda b: select(fo.c.id).where(fo.c.id.in_(b), *level))
    folders = {r.id for r in folder_rows}
    filtered_out = set(targets["D"]) - docs
    inner_rows = _chunked(conn, targets["A"], lambda b: _assoc_cols().where(asc.c.id.in_(b), *assoc_level))
    inner = [r for r in inner_rows if r.source_id not in filtered_out and r.target_id not in filtered_out]
    kept = docs | folders | {r.id for r in inner}
    found = Found().add("S", [ss_id])
    found.add("D", [t for t in targets["D"] if t in docs]).add("F", [t for t in targets["F"] if t in folders])
    return found.add_associations([*inner, *(m for m in members if m.target_id in kept)])


def get_folder_and_contents(conn: Connection, q: GetFolderAndContents, limit: int) -> Found:
    """3.18.4.1.2.3.7.11: the Folder, its DocumentEntries (filtered) and the HasMembers to them."""
    folder_id = _one_id(conn, fo, "F", q.entry_uuid, q.unique_id, *_folder_level(q))
    if folder_id is None:
        return Found()
    members = [m for m in _members(conn, q, folder_id) if m.kind == "D"]
    conds = [*_content_filters(q.format_codes, q.confidentiality_codes, q.entry_types), *_doc_versions(q)]
    docs = _filter_documents(conn, [m.target_id for m in members], conds)
    found = Found().add("F", [folder_id]).add("D", [m.target_id for m in members if m.target_id in docs])
    return found.add_associations(m for m in members if m.target_id in docs)


def get_folders_for_document(conn: Connection, q: GetFoldersForDocument, limit: int) -> Found:
    """3.18.4.1.2.3.7.12: the Folders that have the document (any version of it) as a member."""
    if q.entry_uuid is not None:
        document: Any = select(de.c.id).where(de.c.id == q.entry_uuid)
    else:
        document = _by_unique_id("D", [q.unique_id or ""])
    holders = select(asc.c.source_id).where(
        asc.c.type == HAS_MEMBER, asc.c.target_id.in_(document), *_assoc_level(q)
    )
    stmt = select(fo.c.id).where(fo.c.id.in_(holders), *_folder_level(q))
    return Found().add("F", _column(conn, stmt))


def get_related_documents(conn: Connection, q: GetRelatedDocuments, limit: int) -> Found:
    """3.18.4.1.2.3.7.13: Associations of $AssociationTypes from or to the document, the documents at
    their other end (filtered by $XDSDocumentEntryType) and the document itself; nothing if none."""
    uuids = [q.entry_uuid] if q.entry_uuid else []
    uids = [q.unique_id] if q.unique_id else []
    origin = _documents_by_id(conn, q, uuids, uids)
    types = [t for t in dict.fromkeys(q.association_types) if t != HAS_MEMBER]
    if not origin or not types:
        return Found()
    rows = _associations_of(conn, q, origin, types)
    others = {e for r in rows for e in (r.source_id, r.target_id)} - set(origin)
    conds = [de.c.object_type.in_(_values(q.entry_types)), *_doc_versions(q)]
    related = _filter_documents(conn, sorted(others), conds)
    keep = set(origin) | related
    rows = [r for r in rows if r.source_id in keep and r.target_id in keep]
    if not rows:
        return Found()
    ordered = [e for r in rows for e in (r.source_id, r.target_id) if e in related]
    return Found().add("D", [*origin, *ordered]).add_associations(rows)


#: Stored query parameter class -> the function running it.  The dispatch table of ITI-18.
QUERIES: Final[dict[type[StoredQueryParams], Callable[[Connection, Any, int], Found]]] = {
    FindDocuments: find_documents,
    FindDocumentsByReferenceId: find_documents,
    FindSubmissionSets: find_submission_sets,
    FindFolders: find_folders,
    GetAll: get_all,
    GetDocuments: get_documents,
    GetFolders: get_folders,
    GetAssociations: get_associations,
    GetDocumentsAndAssociations: get_documents_and_associations,
    GetSubmissionSets: get_submission_sets,
    GetSubmissionSetAndContents: get_submission_set_and_contents,
    GetFolderAndContents: get_folder_and_contents,
    GetFoldersForDocument: get_folders_for_document,
    GetRelatedDocuments: get_related_documents,
}


def run_query(conn: Connection, q: StoredQueryParams, limit: int) -> Found:
    """The objects stored query ``q`` selects (at most about ``limit`` for the Find queries)."""
    return QUERIES[type(q)](conn, q, limit)


def execute(
    conn: Connection,
    q: StoredQueryParams,
    return_type: ReturnType,
    *,
    max_results: int,
    home_community_id: str | None,
) -> list[RegistryObject | ObjectRef]:
    """Run ``q`` and return its objects as the response lists them (ITI TF-2 3.18.4.1.3).

    Raises XdsError: XDSTooManyResults above ``max_results`` objects, XDSResultNotSinglePatient for
    LeafClass results of more than one patient.
    """
    leaf = return_type is ReturnType.LEAF_CLASS
    rows = find_document_rows(conn, q, max_results + 1, leaf) if isinstance(q, FindDocuments) else None
    found = (
        Found().add("D", [r.id for r in rows]) if rows is not None else run_query(conn, q, max_results + 1)
    )
    if len(found.refs) > max_results:
        raise XdsError.one(
            ErrorCode.TOO_MANY_RESULTS,
            f"the query selects more than {max_results} objects; narrow it (e.g. by time, class or type)",
        )
    if not leaf:
        if q.metadata_level == 1 and found.ids("D"):
            maybe = found.ids("D") if rows is None else [r.id for r in rows if r.maybe_offline]
            if maybe:
                found = found.without(read.offline_documents(conn, maybe))
        return [ObjectRef(i, home_community_id) for i in found.refs]
    if rows is not None:
        objects = [read.decode_row(row, home_community_id) for row in rows]
    else:
        objects = read.load_objects(conn, list(found.refs), home_community_id)
    if q.metadata_level == 1:
        offline = {o.entry_uuid for o in objects if read.is_offline(o)}
        if offline:
            kept = found.without(offline).refs
            objects = [o for o in objects if o.entry_uuid in kept]
    patients = {pid for o in objects if (pid := getattr(o, "patient_id", None))}
    if len(patients) > 1:
        raise XdsError.one(
            ErrorCode.RESULT_NOT_SINGLE_PATIENT,
            f"the result holds metadata of {len(patients)} patients; ask for ObjectRef or narrow the query",
        )
    return list(objects)
