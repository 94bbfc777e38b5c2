"""Placeholders in scenario messages: ``{{name}}``, resolved per scenario run.

=============================  ==========================================================================
``{{patient.NAME}}``           a fresh affinity-domain patient in CX form ``ID^^^&OID&ISO``; patients
                               listed in the scenario's ``patients`` are fed before the steps, any other
                               name is a patient the target has never heard of.  ``.id`` gives the bare ID
``{{local.NAME.N}}``           that patient's fresh local ID in establishment N (0-based), CX form; ``.id``
``{{uid.NAME}}``               a fresh OID (``2.25.<uuid>``), the same for NAME within one run
``{{uuid.NAME}}``              a fresh ``urn:uuid:``, the same for NAME within one run
``{{id.NAME}}``                a fresh short alphanumeric identifier
``{{domain.KEY}}``             assigning_authority, home_community_id, repository_unique_id,
                               imaging_source_unique_id, linking_authority, source_id
``{{est.N.KEY}}``              establishment N: assigning_authority, source_id, ae_title, name
``{{steps.STEP.KEY...}}``      a value recorded by an earlier step (its objects' uuid, uid, sha1, size,
                               content; its captures)
``{{now}}``, ``{{today}}``     the current UTC time as DTM (YYYYMMDDHHMMSS) / date (YYYYMMDD)
``{{run}}``                    this run's identifier
=============================  ==========================================================================
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from xds_hub.conformance.target import Target

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")


class TemplateError(Exception):
    """A placeholder names nothing (a scenario bug, reported as an error, not a failure)."""


def new_oid() -> str:
    return f"2.25.{uuid.uuid4().int}"


def new_uuid() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def new_id(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12].upper()}"


def cx(value: str, authority: str) -> str:
    return f"{value}^^^&{authority}&ISO"


@dataclass
class Patient:
    """A patient of one scenario run: its affinity-domain ID and its local IDs, made on demand."""

    id: str
    authority: str
    local_ids: dict[int, str] = field(default_factory=dict)

    @property
    def cx(self) -> str:
        return cx(self.id, self.authority)


@dataclass
class Context:
    """The values of one scenario run: fresh identifiers, patients and what earlier steps recorded."""

    target: Target
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    patients: dict[str, Patient] = field(default_factory=dict)
    uids: dict[str, str] = field(default_factory=dict)
    uuids: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    #: steps.<step>.<key...> -> value (flat, dotted keys below the step name).
    recorded: dict[str, str] = field(default_factory=dict)
    #: Bytes kept for later steps: retrieved documents by uniqueId, DICOM datasets sent and received.
    blobs: dict[str, bytes] = field(default_factory=dict)
    #: Called as long transfers advance: (what, done, total).
    progress: Callable[[str, int, int], None] | None = None

    def patient(self, name: str) -> Patient:
        if name not in self.patients:
            self.patients[name] = Patient(new_id("CT"), self.target.domain.assigning_authority)
        return self.patients[name]

    def local_id(self, name: str, establishment: int) -> str:
        patient = self.patient(name)
        if establishment not in patient.local_ids:
            patient.local_ids[establishment] = new_id("L")
        return patient.local_ids[establishment]

    def uid(self, name: str) -> str:
        return self.uids.setdefault(name, new_oid())

    def uuid(self, name: str) -> str:
        return self.uuids.setdefault(name, new_uuid())

    def short_id(self, name: str) -> str:
        return self.ids.setdefault(name, new_id())

    def record(self, step: str, key: str, value: str) -> None:
        self.recorded[f"{step}.{key}"] = value

    # -- resolution ----------------------------------------------------------------------------

    def _establishment(self, index: str, key: str) -> str:
        ests = self.target.domain.establishments
        try:
            est = ests[int(index)]
        except (ValueError, IndexError):
            raise TemplateError(f"no establishment {index} in the target's affinity domain") from None
        values = {
            "assigning_authority": est.assigning_authority,
            "source_id": est.source_ids[0] if est.source_ids else "",
            "ae_title": est.ae_titles[0] if est.ae_titles else "",
            "name": est.name,
        }
        if key not in values:
            raise TemplateError(f"est.{index}.{key}: unknown key")
        return values[key]

    def _domain(self, key: str) -> str:
        d = self.target.domain
        values = {
            "assigning_authority": d.assigning_authority,
            "home_community_id": d.home_community_id,
            "repository_unique_id": d.repository_unique_id,
            "imaging_source_unique_id": d.imaging_source_unique_id,
            "linking_authority": d.linking_authorities[0] if d.linking_authorities else "",
            "source_id": self.target.default_source_id,
        }
        if key not in values:
            raise TemplateError(f"domain.{key}: unknown key")
        return values[key]

    def _patient_expr(self, parts: list[str]) -> str:
        p = self.patient(parts[0])
        if len(parts) == 1:
            return p.cx
        if parts[1:] == ["id"]:
            return p.id
        if parts[1:] == ["authority"]:
            return p.authority
        raise TemplateError(f"patient.{'.'.join(parts)}: expected patient.NAME[.id|.authority]")

    def _local_expr(self, parts: list[str]) -> str:
        if len(parts) < 2 or not parts[1].isdigit():
            raise TemplateError(f"local.{'.'.join(parts)}: expected local.NAME.N[.id]")
        n = int(parts[1])
        value = self.local_id(parts[0], n)
        if parts[2:] == ["id"]:
            return value
        if parts[2:]:
            raise TemplateError(f"local.{'.'.join(parts)}: expected local.NAME.N[.id]")
        return cx(value, self._establishment(parts[1], "assigning_authority"))

    def resolve(self, expr: str) -> str:
        head, _, rest = expr.partition(".")
        parts = rest.split(".") if rest else []
        simple: dict[str, Callable[[], str]] = {
            "now": lambda: datetime.now(UTC).strftime("%Y%m%d%H%M%S"),
            "today": lambda: datetime.now(UTC).strftime("%Y%m%d"),
            "run": lambda: self.run_id,
        }
        if head in simple and not parts:
            return simple[head]()
        if not parts:
            raise TemplateError(f"unknown placeholder {{{{{expr}}}}}")
        resolvers: dict[str, Callable[[], str]] = {
            "patient": lambda: self._patient_expr(parts),
            "local": lambda: self._local_expr(parts),
            "uid": lambda: self.uid(rest),
            "uuid": lambda: self.uuid(rest),
            "id": lambda: self.short_id(rest),
            "domain": lambda: self._domain(rest),
            "est": lambda: self._establishment(parts[0], ".".join(parts[1:])),
            "steps": lambda: self._recorded(rest),
        }
        if head not in resolvers:
            raise TemplateError(f"unknown placeholder {{{{{expr}}}}}")
        return resolvers[head]()

    def _recorded(self, key: str) -> str:
        if key not in self.recorded:
            known = ", ".join(sorted(k for k in self.recorded if k.startswith(key.split(".")[0] + ".")))
            raise TemplateError(f"steps.{key} was not recorded by an earlier step (known: {known or 'none'})")
        return self.recorded[key]

    def expand(self, text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: self.resolve(m.group(1)), text)

    def expand_all(self, value: Any) -> Any:
        """``value`` with every string inside (dict values, list items) expanded."""
        if isinstance(value, str):
            return self.expand(value)
        if isinstance(value, Mapping):
            return {k: self.expand_all(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.expand_all(v) for v in value]
        return value
