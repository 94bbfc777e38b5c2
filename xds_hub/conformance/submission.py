"""The ``submission`` builder: XDS metadata from a short declarative description (ITI-41/42/57, RAD-68).

A step's ``[steps.submission]`` table says only what the scenario is about; everything else gets
valid defaults for the target's affinity domain (codes from its ``[codes]`` lists when it has
them).  The objects are built as :mod:`xds_hub.domain.metadata` objects and rendered with
:mod:`xds_hub.ebxml.render`::

    patient = "main"                       # a scenario patient (or patient_id = "CX" verbatim)
    ids = "uuid"                           # "uuid": the tester assigns urn:uuid ids; "symbolic"
    submission_set = { title = "..." }     # SubmissionSet attribute overrides (omit = [...] drops)
    documents = [{ id = "doc1", content = "text", mime = "text/plain", attach = true,   # or content_size,
                   # content_hex, kos = {...} (an XDS-I.b manifest, see conformance.dicom.make_kos)
                   hash = "...", size = 1, <any DocumentEntry field> = ..., omit = ["title"],
                   lid = "urn:uuid:...", previous_version = "1" }]     # the last two: ITI-57
    folders = [{ id = "f1", documents = ["doc1"], <any Folder field> = ... }]
    associations = [{ type = "RPLC", source = "doc2", target = "urn:uuid:..." }]
    folder_adds = [{ folder = "urn:uuid:...", document = "doc1" }]      # into an existing folder
    references = ["urn:uuid:..."]          # existing documents added by reference
    status_updates = [{ target = "urn:uuid:...", original = "Approved", new = "Deprecated" }]

Each object's values are recorded for later steps: ``steps.<step>.<id>.uuid|uid|sha1|size|content|
mime|patient`` and ``steps.<step>.ss.uuid|uid``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from xds_hub.config import AffinityDomain
from xds_hub.conformance.template import Context
from xds_hub.domain.metadata import (
    Association,
    Author,
    Code,
    DocumentEntry,
    Folder,
    ObjectRef,
    Slot,
    Submission,
    SubmissionSet,
)
from xds_hub.domain.vocabulary import AssociationType, ObjectType, Status


class BuildError(Exception):
    """The step's message description cannot be built (a scenario bug)."""


_DEFAULT_CODES: dict[str, Code] = {
    "classCode": Code("REPORTS", "1.3.6.1.4.1.19376.1.2.6.1", "Reports"),
    "typeCode": Code("34108-1", "2.16.840.1.113883.6.1", "Outpatient Note"),
    "formatCode": Code(
        "urn:ihe:iti:xds:2017:mimeTypeSufficient", "1.3.6.1.4.1.19376.1.2.3", "Mime sufficient"
    ),
    "healthcareFacilityTypeCode": Code("22232009", "2.16.840.1.113883.6.96", "Hospital"),
    "practiceSettingCode": Code("394802001", "2.16.840.1.113883.6.96", "General medicine"),
    "confidentialityCode": Code("N", "2.16.840.1.113883.5.25", "normal"),
    "eventCodeList": Code("T-D4000", "SNM3", "Abdomen"),
    "contentTypeCode": Code("34133-9", "2.16.840.1.113883.6.1", "Summary of episode note"),
    "folderCodeList": Code("Referrals", "1.3.6.1.4.1.21367.100.1", "Referrals"),
}

AUTHOR = Author(
    person="^Conformance^Tester^^^",
    institutions=("Conformance Lab^^^^^^^^^1.3.6.1.4.1.21367.13.90",),
    roles=("Attending",),
    specialties=("Radiology",),
)

_ASSOC_TYPES = {t.name: t for t in AssociationType} | {t.value: t for t in AssociationType}
_STATUSES = {s.name.capitalize(): s.value for s in Status} | {s.value: s.value for s in Status}


def domain_code(domain: AffinityDomain, kind: str) -> Code:
    """The first code of ``kind`` the domain allows, or a sensible default when it has no list."""
    if domain.codes and domain.codes.get(kind):
        entry = domain.codes[kind][0]
        return Code(entry.code, entry.scheme, entry.display)
    return _DEFAULT_CODES[kind]


def association_type(name: str) -> AssociationType:
    key = name.upper() if name.upper() in AssociationType.__members__ else name
    if key not in _ASSOC_TYPES:
        raise BuildError(f"unknown association type {name!r}")
    return _ASSOC_TYPES[key]


def _code(value: Any, what: str) -> Code:
    if isinstance(value, Mapping):
        return Code(str(value.get("code", "")), str(value.get("scheme", "")), str(value.get("display", "")))
    if isinstance(value, str):  # code^display^scheme, the CE short form
        code, _, rest = value.partition("^")
        display, _, scheme = rest.partition("^")
        return Code(code, scheme, display)
    raise BuildError(f"{what}: a code is a table {{code, scheme, display}} or 'code^display^scheme'")


def _author(value: Any) -> Author:
    if not isinstance(value, Mapping):
        raise BuildError("an author is a table {person, institutions, roles, specialties, telecoms}")
    return Author(
        person=value.get("person"),
        institutions=tuple(value.get("institutions", ())),
        roles=tuple(value.get("roles", ())),
        specialties=tuple(value.get("specialties", ())),
        telecoms=tuple(value.get("telecoms", ())),
    )


def _convert(cls: type, name: str, value: Any) -> Any:
    """A TOML value for dataclass field ``name`` of ``cls``, in the field's type."""
    kinds = {f.name: str(f.type) for f in fields(cls)}
    if name not in kinds:
        raise BuildError(f"{cls.__name__} has no attribute {name!r}")
    kind = kinds[name]
    if value is None:
        return None
    if "tuple[Code" in kind:
        return tuple(_code(v, name) for v in (value if isinstance(value, list) else [value]))
    if "Code" in kind:
        return _code(value, name)
    if "tuple[Author" in kind:
        return tuple(_author(v) for v in (value if isinstance(value, list) else [value]))
    if "tuple[Slot" in kind:
        return tuple(Slot(str(s["name"]), tuple(str(v) for v in s["values"])) for s in value)
    if "ObjectType" in kind:
        return (
            ObjectType.ON_DEMAND_DOCUMENT
            if value in ("on-demand", ObjectType.ON_DEMAND_DOCUMENT)
            else (ObjectType.STABLE_DOCUMENT)
        )
    if "tuple[str" in kind:
        return tuple(str(v) for v in (value if isinstance(value, list) else [value]))
    if kind.startswith("int"):
        return int(value)
    if kind.startswith("bool"):
        return bool(value)
    return str(value)


def _apply(obj: Any, overrides: Mapping[str, Any], skip: frozenset[str]) -> Any:
    changes = {k: _convert(type(obj), k, v) for k, v in overrides.items() if k not in skip and k != "omit"}
    for name in overrides.get("omit", []):
        if name not in {f.name for f in fields(type(obj))}:
            raise BuildError(f"{type(obj).__name__} has no attribute {name!r} to omit")
        default = next(f for f in fields(type(obj)) if f.name == name)
        changes[name] = () if "tuple" in str(default.type) else None
    return replace(obj, **changes)


def _content(desc: Mapping[str, Any], doc_id: str, ctx: Context) -> bytes:
    if "kos" in desc:
        from xds_hub.conformance.dicom import make_kos

        return make_kos(ctx, desc["kos"])
    if "content_size" in desc:
        return os.urandom(int(desc["content_size"]))
    if "content_hex" in desc:
        return bytes.fromhex(str(desc["content_hex"]))
    # Unique by default: identical bytes in concurrent scenarios would share one content-addressed blob.
    default = f"Conformance test document {doc_id} (run {ctx.run_id})\n"
    return str(desc.get("content", default)).encode("utf-8")


@dataclass
class Built:
    """A built submission: the metadata and the document bytes by DocumentEntry id."""

    submission: Submission
    documents: dict[str, tuple[bytes, str]] = field(default_factory=dict)


class _Builder:
    def __init__(self, ctx: Context, step: str, desc: Mapping[str, Any]) -> None:
        self.ctx = ctx
        self.step = step
        self.desc = desc
        self.domain = ctx.target.domain
        self.symbolic = desc.get("ids", "uuid") == "symbolic"
        if "patient_id" in desc:
            self.patient = str(desc["patient_id"])
        else:
            self.patient = ctx.patient(str(desc.get("patient", "main"))).cx
        self.ids: dict[str, str] = {}
        self.assoc_count = 0

    def obj_id(self, local: str) -> str:
        if local.startswith("urn:uuid:"):
            return local
        if local not in self.ids:
            self.ids[local] = local if self.symbolic else self.ctx.uuid(f"{self.step}.{local}")
        return self.ids[local]

    def ref(self, value: str) -> str:
        """An id named in the description: a local object id of this step, or a registry UUID."""
        return self.ids.get(value, value)

    def assoc_id(self) -> str:
        self.assoc_count += 1
        return self.obj_id(f"assoc{self.assoc_count}")

    def record(self, key: str, value: str) -> None:
        self.ctx.record(self.step, key, value)

    def submission_set(self) -> SubmissionSet:
        overrides = dict(self.desc.get("submission_set", {}))
        ss = SubmissionSet(
            entry_uuid=self.obj_id("ss"),
            unique_id=self.ctx.uid(f"{self.step}.ss"),
            source_id=self.ctx.target.default_source_id,
            patient_id=self.patient,
            submission_time=self.ctx.resolve("now"),
            content_type_code=domain_code(self.domain, "contentTypeCode"),
            title="Conformance submission",
            authors=(AUTHOR,),
        )
        ss = _apply(ss, overrides, frozenset())
        self.record("ss.uuid", ss.entry_uuid)
        self.record("ss.uid", ss.unique_id)
        return ss  # type: ignore[no-any-return]

    def document(self, desc: Mapping[str, Any]) -> tuple[DocumentEntry, bytes]:
        local = str(desc.get("id", "doc1"))
        content = _content(desc, local, self.ctx)
        mime = str(desc.get("mime", "text/plain"))
        doc = DocumentEntry(
            entry_uuid=self.obj_id(local),
            unique_id=self.ctx.uid(f"{self.step}.{local}"),
            patient_id=self.patient,
            mime_type=mime,
            title=f"Conformance document {local}",
            class_code=domain_code(self.domain, "classCode"),
            type_code=domain_code(self.domain, "typeCode"),
            format_code=domain_code(self.domain, "formatCode"),
            healthcare_facility_type_code=domain_code(self.domain, "healthcareFacilityTypeCode"),
            practice_setting_code=domain_code(self.domain, "practiceSettingCode"),
            confidentiality_codes=(domain_code(self.domain, "confidentialityCode"),),
            event_codes=(),
            authors=(AUTHOR,),
            creation_time=self.ctx.resolve("today"),
            language_code="en-US",
            source_patient_id=self.patient,
            source_patient_info=(f"PID-3|{self.patient}", "PID-5|Tester^Conformance^^^"),
            hash=hashlib.sha1(content).hexdigest(),
            size=len(content),
            repository_unique_id=self.domain.repository_unique_id,
        )
        if "lid" in desc:
            doc = replace(doc, logical_id=str(desc["lid"]))
        doc = _apply(
            doc,
            desc,
            frozenset(
                {
                    "id",
                    "content",
                    "content_size",
                    "content_hex",
                    "kos",
                    "mime",
                    "attach",
                    "member",
                    "lid",
                    "previous_version",
                }
            ),
        )
        self.record(f"{local}.uuid", doc.entry_uuid)
        self.record(f"{local}.uid", doc.unique_id)
        self.record(f"{local}.sha1", hashlib.sha1(content).hexdigest())
        self.record(f"{local}.size", str(len(content)))
        self.record(f"{local}.mime", doc.mime_type)
        self.record(f"{local}.patient", doc.patient_id)
        if mime.startswith("text/") and "content_size" not in desc and "content_hex" not in desc:
            self.record(f"{local}.content", content.decode("utf-8"))
        return doc, content

    def folder(self, desc: Mapping[str, Any]) -> Folder:
        local = str(desc.get("id", "folder1"))
        folder = Folder(
            entry_uuid=self.obj_id(local),
            unique_id=self.ctx.uid(f"{self.step}.{local}"),
            patient_id=self.patient,
            codes=(domain_code(self.domain, "folderCodeList"),),
            title=f"Conformance folder {local}",
        )
        if "lid" in desc:
            folder = replace(folder, logical_id=str(desc["lid"]))
        folder = _apply(folder, desc, frozenset({"id", "documents", "lid", "previous_version"}))
        self.record(f"{local}.uuid", folder.entry_uuid)
        self.record(f"{local}.uid", folder.unique_id)
        return folder  # type: ignore[no-any-return]

    def has_member(
        self, source: str, target: str, status: str | None, extra: Sequence[Slot] = ()
    ) -> Association:
        return Association(
            self.assoc_id(),
            AssociationType.HAS_MEMBER,
            source,
            target,
            submission_set_status=status,
            extra_slots=tuple(extra),
        )

    def build(self) -> Built:
        ss = self.submission_set()
        built = Built(Submission(submission_set=ss))
        docs: list[DocumentEntry] = []
        folders: list[Folder] = []
        assocs: list[Association] = []
        for desc in self.desc.get("documents", []):
            doc, content = self.document(desc)
            docs.append(doc)
            if desc.get("attach", True):
                built.documents[doc.entry_uuid] = (content, doc.mime_type)
            if desc.get("member", True):
                prev = (
                    [Slot("PreviousVersion", (str(desc["previous_version"]),))]
                    if "previous_version" in desc
                    else []
                )
                assocs.append(self.has_member(ss.entry_uuid, doc.entry_uuid, "Original", prev))
        for desc in self.desc.get("folders", []):
            folder = self.folder(desc)
            folders.append(folder)
            prev = (
                [Slot("PreviousVersion", (str(desc["previous_version"]),))]
                if "previous_version" in desc
                else []
            )
            assocs.append(self.has_member(ss.entry_uuid, folder.entry_uuid, None, prev))
            for member in desc.get("documents", []):
                inner = self.has_member(folder.entry_uuid, self.ref(str(member)), None)
                assocs.append(inner)
                assocs.append(self.has_member(ss.entry_uuid, inner.entry_uuid, None))
        for desc in self.desc.get("folder_adds", []):
            inner = self.has_member(self.ref(str(desc["folder"])), self.ref(str(desc["document"])), None)
            assocs.append(inner)
            assocs.append(self.has_member(ss.entry_uuid, inner.entry_uuid, None))
        for target in self.desc.get("references", []):
            assocs.append(self.has_member(ss.entry_uuid, self.ref(str(target)), "Reference"))
        for desc in self.desc.get("associations", []):
            kind = association_type(str(desc.get("type", "HAS_MEMBER")))
            docs_codes = tuple(_code(c, "documentation") for c in desc.get("documentation", []))
            slots = tuple(Slot(str(k), (str(v),)) for k, v in desc.get("slots", {}).items())
            assoc = Association(
                self.obj_id(str(desc["id"])) if "id" in desc else self.assoc_id(),
                kind,
                self.ref(str(desc["source"])) if "source" in desc else ss.entry_uuid,
                self.ref(str(desc["target"])),
                submission_set_status=desc.get("submission_set_status"),
                extra_slots=slots,
                extra_classifications=docs_codes,
            )
            assocs.append(assoc)
            if "id" in desc:
                self.record(f"{desc['id']}.uuid", assoc.entry_uuid)
        for desc in self.desc.get("status_updates", []):
            slots = (
                Slot("OriginalStatus", (_STATUSES.get(str(desc["original"]), str(desc["original"])),)),
                Slot("NewStatus", (_STATUSES.get(str(desc["new"]), str(desc["new"])),)),
            )
            assocs.append(
                Association(
                    self.assoc_id(),
                    AssociationType.UPDATE_AVAILABILITY_STATUS,
                    ss.entry_uuid,
                    self.ref(str(desc["target"])),
                    extra_slots=slots,
                )
            )
        refs = tuple(ObjectRef(str(r)) for r in self.desc.get("object_refs", []))
        built.submission = Submission(
            submission_set=ss,
            documents=tuple(docs),
            folders=tuple(folders),
            associations=tuple(assocs),
            object_refs=refs,
        )
        for local, value in self.ids.items():
            self.record(f"{local}.uuid", value)
        return built


def build_submission(ctx: Context, step: str, desc: Mapping[str, Any]) -> Built:
    """The submission a ``[steps.submission]`` description stands for; values recorded in ``ctx``."""
    try:
        return _Builder(ctx, step, desc).build()
    except (KeyError, TypeError, ValueError) as exc:
        raise BuildError(f"submission: {type(exc).__name__}: {exc}") from exc
