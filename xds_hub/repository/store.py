"""The Document Repository's own table, ``repository_document`` (ITI TF-2 3.41.4.1.3.2, 3.43.4.1.3).

One row per stored document: its uniqueId, the repositoryUniqueId it was stored under, the blob
holding its octets (content-addressed, so several rows may share one blob), the SHA-1 hash and
size computed while the octets streamed in, and the mimeType to answer ITI-43 with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import Connection, bindparam, func, select

from xds_hub.registry import dbapi
from xds_hub.registry.insert import ExtraInsert
from xds_hub.repository import inline
from xds_hub.storage.ports import BlobInfo
from xds_hub.storage.schema import repository_document

#: Look-ups use IN lists of at most this many values (SQLite's host-parameter limit is far above).
_IN_CHUNK = 500

_t = repository_document.c
#: Built once so SQLAlchemy's compiled cache is hit on every call.
_FIND = select(_t.unique_id, _t.repository_unique_id, _t.blob_key, _t.hash, _t.size, _t.mime_type).where(
    _t.unique_id.in_(bindparam("ids", expanding=True))
)


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A document held by the repository (a ``repository_document`` row)."""

    unique_id: str
    repository_unique_id: str
    blob_key: str
    hash: str  # SHA-1, lower-case hex
    size: int
    mime_type: str


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


#: The columns of a new row, in the order of the values of :func:`_row`.
_COLUMNS = ("unique_id", "repository_unique_id", "blob_key", "hash", "size", "mime_type", "created")
#: Rows per INSERT statement (7 values each; well under SQLite's host-parameter limit).
_INSERT_CHUNK = 100


@cache
def _insert_sql(style: dbapi.Flavor, rows: int) -> str:
    one = "(" + ", ".join([style.param] * len(_COLUMNS)) + ")"
    return (
        f"INSERT INTO {repository_document.name} ({', '.join(_COLUMNS)}) VALUES {', '.join([one] * rows)} "
        + INSERT_SUFFIX
    )


def _rows(docs: Sequence[StoredDocument]) -> list[tuple[object, ...]]:
    created = datetime.now(UTC).isoformat()
    return [
        (d.unique_id, d.repository_unique_id, d.blob_key, d.hash, d.size, d.mime_type, created) for d in docs
    ]


def insert_documents(conn: Connection, docs: Sequence[StoredDocument]) -> set[str]:
    """Add ``docs`` (inside the caller's write transaction); returns the uniqueIds inserted.

    A uniqueId the repository already holds is left as it is (and not in the result).  One
    multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` per 100 documents, on the DB-API
    cursor (see :mod:`xds_hub.registry.dbapi`).
    """
    if not docs:
        return set()
    style = dbapi.flavor(conn)
    rows = _rows(docs)
    inserted: set[str] = set()
    with dbapi.cursor(conn) as cur:
        for start in range(0, len(rows), _INSERT_CHUNK):
            batch = rows[start : start + _INSERT_CHUNK]
            cur.execute(_insert_sql(style, len(batch)), [value for row in batch for value in row])
            inserted.update(row[0] for row in cur.fetchall())
    return inserted


#: What follows the VALUES of a new row: a uniqueId held already is left alone (and not returned).
INSERT_SUFFIX = "ON CONFLICT (unique_id) DO NOTHING RETURNING unique_id, blob_key"


def insert_with_registration(docs: Sequence[StoredDocument], kept: Iterable[BlobInfo] = ()) -> ExtraInsert:
    """``docs`` as rows for :func:`xds_hub.registry.register.register_submission`'s ``extra``
    (inserted with the registry's rows: one statement on PostgreSQL); the uniqueIds it returns
    (first in each row of ``extra_returned``) are those inserted, as :func:`insert_documents`
    returns them.  The contents among ``kept`` that are kept in the database go in with the
    rows inserted that refer to them (:func:`xds_hub.repository.inline.rows`)."""
    return ExtraInsert(repository_document, _COLUMNS, _rows(docs), INSERT_SUFFIX, inline.rows(kept))


def find_documents(conn: Connection, unique_ids: Iterable[str]) -> dict[str, StoredDocument]:
    """The stored documents among ``unique_ids``, by uniqueId (unknown ids are left out)."""
    wanted = sorted(set(unique_ids))
    found: dict[str, StoredDocument] = {}
    for chunk in _chunks(wanted):
        for row in conn.execute(_FIND, {"ids": list(chunk)}):
            found[row.unique_id] = StoredDocument(
                unique_id=row.unique_id,
                repository_unique_id=row.repository_unique_id,
                blob_key=row.blob_key,
                hash=row.hash,
                size=int(row.size),
                mime_type=row.mime_type,
            )
    return found


def count_documents(conn: Connection) -> int:
    """How many documents the repository holds (tests and operators)."""
    return int(conn.execute(select(func.count()).select_from(repository_document)).scalar_one())
