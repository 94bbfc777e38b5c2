"""JSON form of the metadata objects, as kept in ``registry_object.body``.

Encoding is generic over the frozen dataclasses of :mod:`xds_hub.domain.metadata`; default-valued
fields are left out, so adding a field with a default never invalidates stored rows.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from enum import Enum
from functools import cache
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from xds_hub.domain.metadata import Association, DocumentEntry, Folder, SubmissionSet

T = TypeVar("T")

#: registry_object.kind letters and the classes they stand for.
KINDS: dict[str, type[Any]] = {
    "D": DocumentEntry,
    "S": SubmissionSet,
    "F": Folder,
    "A": Association,
}
KIND_OF: dict[type[Any], str] = {cls: kind for kind, cls in KINDS.items()}


#: Marks a field without a default in :func:`_field_defaults`.
_REQUIRED: Any = object()


@cache
def _field_defaults(cls: type[Any]) -> tuple[tuple[str, Any], ...]:
    """(name, default) of each field of the dataclass ``cls``; a default_factory is called once."""
    out: list[tuple[str, Any]] = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out.append((f.name, f.default))
        elif f.default_factory is not dataclasses.MISSING:
            out.append((f.name, f.default_factory()))
        else:
            out.append((f.name, _REQUIRED))
    return tuple(out)


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or value is None or kind is bool:
        return value
    if hasattr(kind, "__dataclass_fields__"):  # a dataclass instance
        return _encode_fields(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _encode_fields(obj: Any) -> dict[str, Any]:
    """The fields of ``obj`` that differ from their defaults, as JSON-ready values."""
    out: dict[str, Any] = {}
    for name, default in _field_defaults(type(obj)):  # type: ignore[arg-type]
        value = getattr(obj, name)
        if default is not _REQUIRED and value == default:
            continue
        out[name] = _plain(value)
    return out


#: One encoder for every body (compact separators, UTF-8 kept as is).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(obj: Any) -> str:
    return _ENCODER.encode(_encode_fields(obj))


@cache
def _hints(cls: type[Any]) -> dict[str, Any]:
    return get_type_hints(cls)


def _build(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return _build(args[0], value) if len(args) == 1 else value
    if origin is tuple:
        (item,) = get_args(tp)[:1]
        return tuple(_build(item, v) for v in value)
    if origin is dict:
        return dict(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _decode(tp, value)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(value)
    return value


def _decode(cls: type[T], data: dict[str, Any]) -> T:
    hints = _hints(cls)  # type: ignore[arg-type]
    return cls(**{name: _build(hints[name], value) for name, value in data.items()})


def loads(cls: type[T], text: str) -> T:
    return _decode(cls, json.loads(text))
