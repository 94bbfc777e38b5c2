"""A faster :func:`dataclasses.replace` for the frozen, slotted metadata objects.

Every submission is copied field by field several times on its way to the registry (the
repository sets hash and size, validation assigns UUIDs, the registry approves), and
``dataclasses.replace`` on a 36-field DocumentEntry goes through the frozen ``__init__`` with one
``object.__setattr__`` call per field plus its own bookkeeping.  :func:`evolve` copies with a
function generated once per class (the way :mod:`dataclasses` writes ``__init__``) and then sets
the changed fields.  It is meant for dataclasses whose fields are all ``init`` fields and that
have no ``__post_init__`` (as in :mod:`xds_hub.domain.metadata`); for any other class it falls
back to ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")

_set = object.__setattr__


@cache
def _copier(cls: type[Any]) -> tuple[Callable[[Any], Any], frozenset[str]] | None:
    """A function returning a field-by-field copy of a ``cls`` instance, and the field names."""
    fields = dataclasses.fields(cls)
    if hasattr(cls, "__post_init__") or not all(f.init for f in fields):
        return None
    names = [f.name for f in fields]
    if not all(name.isidentifier() for name in names):
        return None
    body = "".join(f"    set_(new, {name!r}, obj.{name})\n" for name in names)
    source = f"def copy(obj):\n    new = new_(cls)\n{body}    return new\n"
    namespace: dict[str, Any] = {"new_": object.__new__, "cls": cls, "set_": _set}
    exec(source, namespace)  # generated from the class's own field names (identifiers)
    copy: Callable[[Any], Any] = namespace["copy"]
    return copy, frozenset(names)


def evolve(obj: T, /, **changes: Any) -> T:
    """``dataclasses.replace(obj, **changes)`` for a dataclass instance ``obj``, faster."""
    spec = _copier(type(obj))  # type: ignore[arg-type]
    if spec is None:
        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    copy, names = spec
    new: T = copy(obj)
    for name, value in changes.items():
        if name not in names:
            raise TypeError(f"{type(obj).__name__} has no field {name!r}")
        _set(new, name, value)
    return new
