"""The rows a registered object adds to the registry tables (ITI TF-2 3.42.4.1.3; schema in
:mod:`xds_hub.storage.schema`): its ``registry_object`` row with the JSON body, the index row of
its kind, and its code, author and referenceIdList rows.

Rows are plain tuples in the column order of :data:`COLUMNS`, ready for a DB-API ``executemany``
(:func:`xds_hub.registry.insert.insert_objects`); values longer than their column are reported
before anything is written (PostgreSQL would refuse them, SQLite would not).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from sqlalchemy import String, Table

from xds_hub.domain.metadata import (
    Association,
    Code,
    DocumentEntry,
    Folder,
    RegistryObject,
    SubmissionSet,
)
from xds_hub.errors import ErrorCode, Problem
from xds_hub.storage import codec
from xds_hub.storage.schema import (
    association,
    document_entry,
    folder,
    object_author,
    object_code,
    object_reference_id,
    registry_object,
    submission_set,
)

Row = tuple[Any, ...]

#: Coded attributes and the object_code.kind they are indexed under (the [codes] keys of config.CODE_KINDS).
DOCUMENT_CODE_FIELDS: Final = (
    ("class_code", "classCode"),
    ("type_code", "typeCode"),
    ("format_code", "formatCode"),
    ("healthcare_facility_type_code", "healthcareFacilityTypeCode"),
    ("practice_setting_code", "practiceSettingCode"),
    ("confidentiality_codes", "confidentialityCode"),
    ("event_codes", "eventCodeList"),
)
SUBMISSION_SET_CODE_FIELDS: Final = (("content_type_code", "contentTypeCode"),)
FOLDER_CODE_FIELDS: Final = (("codes", "folderCodeList"),)

#: Tables in insert order, with the columns the rows fill (in this order).
COLUMNS: Final[dict[Table, tuple[str, ...]]] = {
    registry_object: ("id", "kind", "lid", "version", "status", "patient_id", "unique_id", "body", "seq"),
    document_entry: (
        "id",
        "patient_id",
        "status",
        "object_type",
        "unique_id",
        "creation_time",
        "service_start_time",
        "service_stop_time",
        "repository_unique_id",
        "hash",
        "size",
        "mime_type",
    ),
    submission_set: ("id", "patient_id", "status", "source_id", "submission_time", "unique_id"),
    folder: ("id", "patient_id", "status", "last_update_time", "unique_id"),
    association: ("id", "type", "source_id", "target_id", "status"),
    object_code: ("object_id", "kind", "code", "scheme"),
    object_author: ("object_id", "person"),
    object_reference_id: ("object_id", "value"),
}

Tables = dict[Table, list[Row]]


def _code_rows(rows: list[Row], obj: Any, fields: Sequence[tuple[str, str]]) -> None:
    oid = obj.entry_uuid
    for attr, kind in fields:
        value = getattr(obj, attr)
        codes: tuple[Code, ...] = value if isinstance(value, tuple) else (value,) if value else ()
        rows.extend((oid, kind, c.code, c.scheme) for c in codes)


def _author_rows(rows: list[Row], obj: DocumentEntry | SubmissionSet) -> None:
    oid = obj.entry_uuid
    rows.extend((oid, p) for p in dict.fromkeys(a.person for a in obj.authors if a.person))


def _document(tables: Tables, doc: DocumentEntry) -> None:
    tables[document_entry].append(
        (
            doc.entry_uuid,
            doc.patient_id,
            doc.status.value,
            doc.object_type.value,
            doc.unique_id,
            doc.creation_time,
            doc.service_start_time,
            doc.service_stop_time,
            doc.repository_unique_id,
            doc.hash.lower() if doc.hash else None,
            doc.size,
            doc.mime_type,
        )
    )
    _code_rows(tables[object_code], doc, DOCUMENT_CODE_FIELDS)
    _author_rows(tables[object_author], doc)
    tables[object_reference_id].extend((doc.entry_uuid, v) for v in dict.fromkeys(doc.reference_ids))


def _submission_set(tables: Tables, ss: SubmissionSet) -> None:
    tables[submission_set].append(
        (ss.entry_uuid, ss.patient_id, ss.status.value, ss.source_id, ss.submission_time, ss.unique_id)
    )
    _code_rows(tables[object_code], ss, SUBMISSION_SET_CODE_FIELDS)
    _author_rows(tables[object_author], ss)


def _folder(tables: Tables, fol: Folder) -> None:
    tables[folder].append(
        (fol.entry_uuid, fol.patient_id, fol.status.value, fol.last_update_time, fol.unique_id)
    )
    _code_rows(tables[object_code], fol, FOLDER_CODE_FIELDS)


def _association(tables: Tables, assoc: Association) -> None:
    tables[association].append(
        (assoc.entry_uuid, assoc.association_type.value, assoc.source, assoc.target, assoc.status.value)
    )


_INDEXERS: Final[dict[type[Any], Callable[[Tables, Any], None]]] = {
    DocumentEntry: _document,
    SubmissionSet: _submission_set,
    Folder: _folder,
    Association: _association,
}


def _base_row(obj: RegistryObject, seq: int) -> Row:
    if isinstance(obj, Association):
        lid, version, patient_id, unique_id = obj.entry_uuid, 1, None, None
    else:
        lid, version = obj.logical_id or obj.entry_uuid, int(obj.version or 1)
        patient_id, unique_id = obj.patient_id, obj.unique_id
    kind, body = codec.KIND_OF[type(obj)], codec.dumps(obj)
    return (obj.entry_uuid, kind, lid, version, obj.status.value, patient_id, unique_id, body, seq)


def index_rows(objects: Sequence[RegistryObject], seq: int) -> Tables:
    """Every row of ``objects`` (registered with ``seq``), per table in insert order.

    The rows do not depend on the registry's contents, so a registration builds them before it
    takes the writer lock, with any ``seq``, and stamps the final one there (:func:`with_seq`)."""
    tables: Tables = {table: [] for table in COLUMNS}
    base = tables[registry_object]
    for obj in objects:
        base.append(_base_row(obj, seq))
        _INDEXERS[type(obj)](tables, obj)
    return tables


def with_seq(tables: Tables, seq: int) -> Tables:
    """``tables`` with ``seq`` in every registry_object row (the other tables do not carry it)."""
    stamped = dict(tables)
    stamped[registry_object] = [(*row[:-1], seq) for row in tables[registry_object]]
    return stamped


def merged(first: Tables, second: Tables) -> Tables:
    """The rows of both, per table in insert order."""
    return {table: first[table] + second[table] for table in COLUMNS}


def _limits(table: Table, columns: tuple[str, ...]) -> tuple[tuple[int, str, int], ...]:
    out = []
    for index, name in enumerate(columns):
        kind = table.c[name].type
        if isinstance(kind, String) and kind.length is not None:
            out.append((index, name, kind.length))
    return tuple(out)


#: (position, column, longest value) of the bounded columns of each table.
_LIMITS: Final = {table: _limits(table, columns) for table, columns in COLUMNS.items()}


def length_problems(tables: Tables) -> list[Problem]:
    """Values longer than their column: XDSRegistryMetadataError, located by the object id."""
    problems: list[Problem] = []
    for table, rows in tables.items():
        limits = _LIMITS[table]
        for row in rows:
            for index, name, limit in limits:
                value = row[index]
                if isinstance(value, str) and len(value) > limit:
                    owner = row[0]  # the id / object_id column comes first
                    problems.append(
                        Problem(
                            ErrorCode.REGISTRY_METADATA_ERROR,
                            f"{table.name}.{name} of {owner} is "
                            f"{len(value)} characters long; the registry stores at most {limit}",
                            str(owner or ""),
                        )
                    )
    return problems
