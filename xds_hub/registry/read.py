"""Reading registry objects back for a Registry Stored Query response [ITI-18] (ITI TF-2 3.18.4.1.3).

Each object's typed form is the JSON ``registry_object.body`` (:mod:`xds_hub.storage.codec`); the
index columns win over it for what changes after registration: availabilityStatus and patient ID
(``registry_object.status`` / ``patient_id``, kept by :mod:`xds_hub.registry.store` for status
updates and patient merges) and Folder.lastUpdateTime (``folder.last_update_time``).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from enum import Enum
from typing import Any, Final, get_args, get_origin, get_type_hints

from sqlalchemy import Connection, Select, null, select

from xds_hub.domain.metadata import Author, Code, DocumentEntry, RegistryObject, Slot
from xds_hub.domain.vocabulary import DocumentAvailability
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


def _converter(tp: Any) -> Callable[[Any], Any] | None:
    """How to turn a JSON value into a value of type ``tp`` (None: as it is), decided once per field."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return _converter(args[0]) if len(args) == 1 else None
    if origin is tuple:
        item = _converter(get_args(tp)[0])
        if item is None:
            return tuple
        return lambda values: tuple([item(v) for v in values])
    if origin is dict:
        return dict
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _builder(tp)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp
    return None


def _builder(cls: type[Any]) -> Callable[[dict[str, Any]], Any]:
    """A fast equivalent of :func:`xds_hub.storage.codec.loads` for one dataclass (a decoded JSON
    object in, the frozen object out): the per-field conversions are worked out once, not per value.

    Value objects (:data:`_INTERNED`: codes, authors, slots) repeat across documents; equal ones
    are built once and shared (they are frozen), which is cheaper than building each."""
    known = _BUILDERS.get(cls)
    if known is not None:
        return known
    hints = get_type_hints(cls)
    convert = [(f.name, fn) for f in dataclasses.fields(cls) if (fn := _converter(hints[f.name])) is not None]

    def build(data: dict[str, Any]) -> Any:
        for name, fn in convert:
            value = data.get(name)
            if value is not None:
                data[name] = fn(value)
        return cls(**data)

    def build_plain(data: dict[str, Any]) -> Any:
        return cls(**data)

    if not convert:  # e.g. Code: nothing to convert
        build = build_plain

    if cls in _INTERNED:
        seen = _Interned()

        def build_interned(data: dict[str, Any]) -> Any:
            for name, fn in convert:
                value = data.get(name)
                if value is not None:
                    data[name] = fn(value)
            key = tuple(data.items())  # (the codec leaves out defaults: the fields present name it)
            obj = seen.get(key)
            if obj is None:
                obj = seen.keep(key, cls(**data))
            return obj

        build = build_interned

    _BUILDERS[cls] = build
    return build


#: Frozen value objects shared between decoded objects.
_INTERNED: Final = frozenset({Code, Author, Slot})


class _Interned(dict[tuple[Any, ...], Any]):
    """Equal value objects decoded so far (emptied when it reaches :data:`MAX_INTERNED`)."""

    def keep(self, key: tuple[Any, ...], obj: Any) -> Any:
        if len(self) >= MAX_INTERNED:
            self.clear()
        self[key] = obj
        return obj


#: Value objects kept per class.
MAX_INTERNED: Final = 8192


_BUILDERS: dict[type[Any], Callable[[dict[str, Any]], Any]] = {}


def object_columns(last_update_time: Any = None) -> Select[Any]:
    """The registry_object columns :func:`decode_row` reads; ``last_update_time``: the folder column
    to join, if the rows may be Folders."""
    ro = registry_object
    lut = last_update_time if last_update_time is not None else null()
    return select(ro.c.id, ro.c.kind, ro.c.status, ro.c.patient_id, ro.c.body, lut.label("last_update_time"))


def decode_row(row: Any, home_community_id: str | None = None) -> RegistryObject:
    """The object of a registry_object row, with the index columns (and ``home``) applied."""
    data = json.loads(row.body)
    data["status"] = row.status
    if row.kind != "A" and row.patient_id is not None:
        data["patient_id"] = row.patient_id
    if row.kind == "F" and row.last_update_time:
        data["last_update_time"] = row.last_update_time
    if home_community_id is not None:
        data["home_community_id"] = home_community_id
    obj: RegistryObject = _builder(codec.KINDS[row.kind])(data)
    return obj


def load_objects(
    conn: Connection, ids: Sequence[str], home_community_id: str | None = None
) -> list[RegistryObject]:
    """The registry objects with entryUUIDs ``ids``, in that order; unknown ids are left out.

    ``home_community_id``, if given, is set on every object (ITI TF-2 3.18.4.1.2.3.8).
    """
    ro, fo = registry_object, folder
    found: dict[str, RegistryObject] = {}
    for batch in chunks(ids):
        stmt = (
            object_columns(fo.c.last_update_time)
            .select_from(ro.outerjoin(fo, fo.c.id == ro.c.id))
            .where(ro.c.id.in_(batch))
        )
        for row in conn.execute(stmt):
            found[row.id] = decode_row(row, home_community_id)
    return [found[i] for i in dict.fromkeys(ids) if i in found]


def is_offline(obj: RegistryObject) -> bool:
    """A DocumentEntry whose documentAvailability is Offline (ITI TF-3 4.2.3.2.29)."""
    return isinstance(obj, DocumentEntry) and obj.document_availability == DocumentAvailability.OFFLINE


def maybe_offline(body: Any) -> Any:
    """A SQL flag: the JSON ``body`` may be of an Offline DocumentEntry (decode it to be sure)."""
    return body.contains(_OFFLINE_MARK, autoescape=True).label("maybe_offline")


def offline_documents(conn: Connection, ids: Iterable[str]) -> set[str]:
    """Those of the DocumentEntries ``ids`` that are Offline, without decoding the others."""
    ro = registry_object
    offline: set[str] = set()
    for batch in chunks(ids):
        stmt = select(ro.c.id, ro.c.kind, ro.c.body).where(
            ro.c.id.in_(batch), ro.c.kind == "D", ro.c.body.contains(_OFFLINE_MARK, autoescape=True)
        )
        offline.update(
            row.id for row in conn.execute(stmt) if is_offline(codec.loads(DocumentEntry, row.body))
        )
    return offline
