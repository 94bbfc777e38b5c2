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


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode_fields(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _encode_fields(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        default = f.default if f.default is not dataclasses.MISSING else dataclasses.MISSING
        if default is not dataclasses.MISSING and value == default:
            continue
        if f.default_factory is not dataclasses.MISSING and value == f.default_factory():
            continue
        out[f.name] = _plain(value)
    return out


def dumps(obj: Any) -> str:
    return json.dumps(_encode_fields(obj), separators=(",", ":"), ensure_ascii=False)


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
