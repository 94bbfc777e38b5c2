"""The Document Repository's own table, ``repository_document`` (ITI TF-2 3.41.4.1.3.2, 3.43.4.1.3).

One row per stored document: its uniqueId, the repositoryUniqueId it was stored under, the blob
holding its octets (content-addressed, so several rows may share one blob), the SHA-1 hash and
size computed while the octets streamed in, and the mimeType to answer ITI-43 with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite

from xds_hub.storage.schema import repository_document

#: Look-ups use IN lists of at most this many values (SQLite's host-parameter limit is far above).
_IN_CHUNK = 500

_t = repository_document.c
#: Built once so SQLAlchemy's compiled cache is hit on every call.
_FIND = select(_t.unique_id, _t.repository_unique_id, _t.blob_key, _t.hash, _t.size, _t.mime_type).where(
    _t.unique_id.in_(bindparam("ids", expanding=True))
)
_INSERT_NEW = {
    name: dialect.insert(repository_document)
    .on_conflict_do_nothing(index_elements=["unique_id"])
    .returning(_t.unique_id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


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


def insert_documents(conn: Connection, docs: Sequence[StoredDocument]) -> set[str]:
    """Add ``docs`` (inside the caller's write transaction); returns the uniqueIds inserted.

    A uniqueId the repository already holds is left as it is (and not in the result).
    """
    if not docs:
        return set()
    created = datetime.now(UTC).isoformat()
    stmt = _INSERT_NEW[conn.dialect.name]
    inserted: set[str] = set()
    for d in docs:  # one statement each: RETURNING with executemany is not portable
        row = conn.execute(
            stmt,
            {
                "unique_id": d.unique_id,
                "repository_unique_id": d.repository_unique_id,
                "blob_key": d.blob_key,
                "hash": d.hash,
                "size": d.size,
                "mime_type": d.mime_type,
                "created": created,
            },
        ).first()
        if row is not None:
            inserted.add(row[0])
    return inserted


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
