"""Reading registry objects back for a Registry Stored Query response [ITI-18] (ITI TF-2 3.18.4.1.3).

Each object's typed form is the JSON ``registry_object.body`` (:mod:`xds_hub.storage.codec`); the
index columns win over it for what changes after registration: availabilityStatus and patient ID
(``registry_object.status`` / ``patient_id``, kept by :mod:`xds_hub.registry.store` for status
updates and patient merges) and Folder.lastUpdateTime (``folder.last_update_time``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from sqlalchemy import Connection, select

from xds_hub.domain.metadata import DocumentEntry, Folder, RegistryObject
from xds_hub.domain.vocabulary import DocumentAvailability, Status
from xds_hub.storage import codec
from xds_hub.storage.schema import folder, registry_object

#: Largest number of values bound in one ``IN (...)`` list.
CHUNK: Final = 500

#: What the codec writes for an offline DocumentEntry (used to pre-select rows before decoding them).
_OFFLINE_MARK: Final = f'"document_availability":"{DocumentAvailability.OFFLINE.value}"'


def chunks(values: Iterable[str], size: int = CHUNK) -> Iterator[list[str]]:
    """``values`` in lists of at most ``size``, duplicates removed, order kept."""
    batch: list[str] = []
    for value in dict.fromkeys(values):
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _decode(row: Any) -> RegistryObject:
    obj: RegistryObject = codec.loads(codec.KINDS[row.kind], row.body)
    changes: dict[str, Any] = {}
    if obj.status.value != row.status:
        changes["status"] = Status(row.status)
    if row.patient_id is not None and getattr(obj, "patient_id", row.patient_id) != row.patient_id:
        changes["patient_id"] = row.patient_id
    if isinstance(obj, Folder) and row.last_update_time and obj.last_update_time != row.last_update_time:
        changes["last_update_time"] = row.last_update_time
    return dataclasses.replace(obj, **changes) if changes else obj


def load_objects(conn: Connection, ids: Sequence[str]) -> list[RegistryObject]:
    """The registry objects with entryUUIDs ``ids``, in that order; unknown ids are left out."""
    ro, fo = registry_object, folder
    found: dict[str, RegistryObject] = {}
    for batch in chunks(ids):
        stmt = (
            select(ro.c.id, ro.c.kind, ro.c.status, ro.c.patient_id, ro.c.body, fo.c.last_update_time)
            .select_from(ro.outerjoin(fo, fo.c.id == ro.c.id))
            .where(ro.c.id.in_(batch))
        )
        for row in conn.execute(stmt):
            found[row.id] = _decode(row)
    return [found[i] for i in dict.fromkeys(ids) if i in found]


def is_offline(obj: RegistryObject) -> bool:
    """A DocumentEntry whose documentAvailability is Offline (ITI TF-3 4.2.3.2.29)."""
    return isinstance(obj, DocumentEntry) and obj.document_availability == DocumentAvailability.OFFLINE


def offline_documents(conn: Connection, ids: Iterable[str]) -> set[str]:
    """Those of the DocumentEntries ``ids`` that are Offline, without decoding the others."""
    ro = registry_object
    offline: set[str] = set()
    for batch in chunks(ids):
        stmt = select(ro.c.id, ro.c.kind, ro.c.body).where(
            ro.c.id.in_(batch), ro.c.kind == "D", ro.c.body.contains(_OFFLINE_MARK, autoescape=True)
        )
        offline.update(row.id for row in conn.execute(stmt) if is_offline(_decode_plain(row)))
    return offline


def _decode_plain(row: Any) -> RegistryObject:
    obj: RegistryObject = codec.loads(codec.KINDS[row.kind], row.body)
    return obj
