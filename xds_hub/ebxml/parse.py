"""ebRIM 3.0 XML -> typed XDS metadata (ITI TF-3 4.2.3; ITI TF-2 3.41, 3.42, 3.18).

The only code that reads XDS metadata from XML.  ``parse_submit_objects_request`` reads an
lcm:SubmitObjectsRequest (ITI-42), ``parse_provide_and_register`` an
xdsb:ProvideAndRegisterDocumentSetRequest (ITI-41 / RAD-68) and ``parse_registry_object_list`` a
rim:RegistryObjectList of a query response (ITI-18).

Malformed metadata (a missing required ExternalIdentifier, a Classification with an unknown scheme
or without nodeRepresentation, a Slot with the wrong number of values ...) is reported as one
:class:`~xds_hub.errors.XdsError` carrying every XDSRegistryMetadataError found, each with the id of
the object as location.  Input that is not ebRIM at all raises :class:`~xds_hub.errors.ParseError`.
Nothing else escapes.  Semantic rules (cardinalities, data types, associations, patient ids) are
checked by :func:`xds_hub.domain.validate.validate_submission`.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import unquote

from lxml import etree

from xds_hub import ns
from xds_hub.domain.evolve import evolve
from xds_hub.domain.metadata import (
    Association,
    Author,
    Code,
    DocumentEntry,
    Folder,
    ObjectRef,
    RegistryObject,
    Slot,
    Submission,
    SubmissionSet,
)
from xds_hub.domain.vocabulary import (
    ASSOCIATION_DOCUMENTATION_SCHEME,
    DELETION_SCOPE_DELETE_ALL,
    FOLDER_NODE,
    SUBMISSION_SET_NODE,
    AssociationType,
    DocumentEntryScheme,
    FolderScheme,
    ObjectType,
    Status,
    SubmissionSetScheme,
)
from xds_hub.ebxml import wire
from xds_hub.errors import ErrorCode, ParseError, Problem, XdsError

_Element = etree._Element

_LIMITED_METADATA = frozenset(
    {
        DocumentEntryScheme.LIMITED_METADATA,
        SubmissionSetScheme.LIMITED_METADATA,
        FolderScheme.LIMITED_METADATA,
    }
)
_AUTHOR_SLOTS = {s.name: s for s in wire.AUTHOR_SLOTS}
#: Slot size: a decimal integer that fits in 64 bits (the validator rejects negative ones).
_INTEGER_RE = re.compile(r"-?[0-9]{1,18}")


@cache
def _rim(local: str) -> str:
    return ns.qn(ns.RIM, local)


def _uri(value: str | None) -> str:
    """A scheme/node/type URI with stray whitespace removed (seen in published IHE samples)."""
    return "".join(value.split()) if value else ""


def _children(elem: _Element, local: str) -> list[_Element]:
    return list(elem.iterchildren(_rim(local)))


_SLOT = _rim("Slot")
_VALUE_LIST = _rim("ValueList")
_VALUE = _rim("Value")
_NAME = _rim("Name")
_DESCRIPTION = _rim("Description")
_LOCALIZED_STRING = _rim("LocalizedString")
_VERSION_INFO = _rim("VersionInfo")
_CLASSIFICATION = _rim("Classification")
_EXTERNAL_IDENTIFIER = _rim("ExternalIdentifier")


def _grouped(elem: _Element) -> dict[str, list[_Element]]:
    """The element children of ``elem`` by tag, each list in document order."""
    groups: dict[str, list[_Element]] = {}
    for child in elem:
        tag = child.tag
        if isinstance(tag, str):
            group = groups.get(tag)
            if group is None:
                groups[tag] = [child]
            else:
                group.append(child)
    return groups


def _first_localized(holders: list[_Element]) -> str | None:
    """The first rim:LocalizedString/@value under the rim:Name (or Description) elements ``holders``."""
    for holder in holders:
        for ls in holder.iterchildren(_LOCALIZED_STRING):
            value = ls.get("value")
            if value is not None:
                return value
    return None


@dataclass
class _RawClassification:
    id: str
    scheme: str
    node: str
    node_representation: str | None
    slots: dict[str, list[str]]
    name: str | None


@dataclass
class _Raw:
    """One registry object as read from XML, before its attributes are interpreted."""

    kind: str
    id: str
    attrs: dict[str, str]
    slots: list[tuple[str, list[str]]]
    title: str | None
    comments: str | None
    version: str | None
    classifications: list[_RawClassification] = field(default_factory=list)
    identifiers: list[tuple[str, str]] = field(default_factory=list)


class _Reader:
    """Reads one RegistryObjectList, collecting every problem before raising."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def problem(self, context: str, location: str = "") -> None:
        self.problems.append(Problem(ErrorCode.REGISTRY_METADATA_ERROR, context, location))

    def raise_if_problems(self) -> None:
        if self.problems:
            raise XdsError(self.problems)

    # -- generic ebRIM pieces ------------------------------------------------------------------

    def slot_list(self, slot_elements: list[_Element], location: str) -> list[tuple[str, list[str]]]:
        """(name, values) of rim:Slot elements, in order; a Slot without name or repeated is a problem."""
        out: list[tuple[str, list[str]]] = []
        seen: set[str] = set()
        for slot in slot_elements:
            name = slot.get("name")
            if not name:
                self.problem("a Slot has no name", location)
                continue
            if name in seen:
                self.problem(f"Slot {name} appears more than once", location)
                continue
            seen.add(name)
            values = [
                (v.text or "").strip()
                for vl in slot.iterchildren(_VALUE_LIST)
                for v in vl.iterchildren(_VALUE)
            ]
            out.append((name, values))
        return out

    def classification(self, elem: _Element, location: str) -> _RawClassification:
        cid = elem.get("id") or ""
        groups = _grouped(elem)
        return _RawClassification(
            id=cid,
            scheme=_uri(elem.get("classificationScheme")),
            node=_uri(elem.get("classificationNode")),
            node_representation=elem.get("nodeRepresentation"),
            slots=dict(self.slot_list(groups.get(_SLOT, []), location)),
            name=_first_localized(groups.get(_NAME, [])),
        )

    def raw(self, elem: _Element, kind: str) -> _Raw | None:
        oid = elem.get("id")
        if not oid:
            self.problem(f"a {kind} has no id attribute")
            return None
        attrs: dict[str, str] = dict(elem.attrib)  # type: ignore[arg-type]  # (names, values: str)
        groups = _grouped(elem)  # one pass over the children instead of one per kind
        version_info = groups.get(_VERSION_INFO)
        raw = _Raw(
            kind=kind,
            id=oid,
            attrs=attrs,
            slots=self.slot_list(groups.get(_SLOT, []), oid),
            title=_first_localized(groups.get(_NAME, [])),
            comments=_first_localized(groups.get(_DESCRIPTION, [])),
            version=version_info[0].get("versionName") if version_info else None,
        )
        for c in groups.get(_CLASSIFICATION, ()):
            raw.classifications.append(self.classification(c, oid))
        for ei in groups.get(_EXTERNAL_IDENTIFIER, ()):
            raw.identifiers.append((_uri(ei.get("identificationScheme")), ei.get("value") or ""))
        return raw

    # -- attribute helpers -----------------------------------------------------------------------

    def status(self, raw: _Raw) -> Status:
        text = raw.attrs.get("status")
        if text is None:
            return Status.APPROVED
        try:
            return Status(_uri(text))
        except ValueError:
            self.problem(f"status '{text}' is not an XDS availability status", raw.id)
            return Status.APPROVED

    def common(self, raw: _Raw) -> dict[str, Any]:
        out: dict[str, Any] = {
            "entry_uuid": raw.id,
            "status": self.status(raw),
            "logical_id": raw.attrs.get("lid"),
            "home_community_id": raw.attrs.get("home"),
            "title": raw.title,
            "comments": raw.comments,
        }
        if raw.version is not None:
            out["version"] = raw.version
        return out

    def code(self, c: _RawClassification, what: str, location: str) -> Code | None:
        ok = True
        if not c.node_representation:
            self.problem(f"{what} Classification {c.id} has no nodeRepresentation (the code)", location)
            ok = False
        schemes = c.slots.get(wire.SLOT_CODING_SCHEME, [])
        if len(schemes) != 1 or not schemes[0]:
            self.problem(f"{what} Classification {c.id} must have exactly one codingScheme value", location)
            ok = False
        if not ok:
            return None
        return Code(c.node_representation or "", schemes[0], c.name or "")

    def author(self, c: _RawClassification, location: str) -> Author:
        values: dict[str, Any] = {}
        for name, vals in c.slots.items():
            slot = _AUTHOR_SLOTS.get(wire.AUTHOR_SLOT_ALIASES.get(name, name))
            if slot is None:
                continue
            if slot.multi:
                values[slot.field] = values.get(slot.field, ()) + tuple(vals)
            elif len(vals) > 1:
                self.problem(f"author Classification {c.id}: authorPerson has {len(vals)} values", location)
            elif vals:
                values[slot.field] = vals[0]
        return Author(**values)

    def slot_values(
        self, raw: _Raw, table: tuple[wire.SlotField, ...], out: dict[str, Any]
    ) -> tuple[Slot, ...]:
        """Known slots into ``out`` (by field); unknown ones returned as extra slots."""
        known = {s.name: s for s in table}
        extra: list[Slot] = []
        for name, values in raw.slots:
            spec = known.get(name)
            if spec is None:
                extra.append(Slot(name, tuple(values)))
            elif spec.multi:
                out[spec.field] = tuple(values)
            elif name == "URI" and len(values) > 1:
                out[spec.field] = self.uri_parts(values, raw.id)
            elif len(values) != 1:
                self.problem(f"Slot {name} must have exactly one value (has {len(values)})", raw.id)
            else:
                out[spec.field] = values[0]
        return tuple(extra)

    def uri_parts(self, values: list[str], location: str) -> str:
        """The legacy multi-part URI slot: values ``1|...``, ``2|...`` concatenated in order."""
        parts: dict[int, str] = {}
        for value in values:
            index, sep, rest = value.partition("|")
            if not sep or not index.isdigit() or int(index) in parts:
                self.problem("Slot URI has several values that are not numbered parts 'n|...'", location)
                return ""
            parts[int(index)] = rest
        return "".join(parts[k] for k in sorted(parts))

    def identifiers(
        self, raw: _Raw, table: dict[str, tuple[str, str]], out: dict[str, Any], what: str
    ) -> None:
        for scheme, value in raw.identifiers:
            spec = table.get(scheme)
            if spec is None:
                self.problem(f"{what} has an ExternalIdentifier with unknown scheme '{scheme}'", raw.id)
            elif spec[0] in out:
                self.problem(f"{what} has more than one {spec[1]} ExternalIdentifier", raw.id)
            else:
                out[spec[0]] = value
        for scheme, (fld, label) in table.items():
            if fld not in out:
                self.problem(
                    f"{what} has no {label} ExternalIdentifier (identificationScheme {scheme})", raw.id
                )

    def codes(
        self,
        raw: _Raw,
        c: _RawClassification,
        out: dict[str, Any],
        single: dict[str, str],
        lists: dict[str, str],
        what: str,
    ) -> bool:
        """A coded classification into ``out``; False when the scheme is none of ``single``/``lists``."""
        if c.scheme in single:
            fld = single[c.scheme]
            code = self.code(c, fld, raw.id)
            if fld in out:
                self.problem(f"{what} has more than one {fld} Classification", raw.id)
            elif code is not None:
                out[fld] = code
            return True
        if c.scheme in lists:
            fld = lists[c.scheme]
            code = self.code(c, fld, raw.id)
            if code is not None:
                out[fld] = (*out.get(fld, ()), code)
            return True
        return False

    def classifications(
        self,
        raw: _Raw,
        out: dict[str, Any],
        author_scheme: str,
        single: dict[str, str],
        lists: dict[str, str],
        what: str,
    ) -> None:
        authors: list[Author] = []
        for c in raw.classifications:
            if c.node in (SUBMISSION_SET_NODE, FOLDER_NODE):
                continue
            if c.node in _LIMITED_METADATA or c.scheme in _LIMITED_METADATA:
                out["limited_metadata"] = True
            elif author_scheme and c.scheme == author_scheme:
                authors.append(self.author(c, raw.id))
            elif not self.codes(raw, c, out, single, lists, what):
                where = f"scheme '{c.scheme}'" if c.scheme else f"node '{c.node}'"
                self.problem(f"{what} has a Classification {c.id} with unexpected {where}", raw.id)
        if authors:
            out["authors"] = tuple(authors)

    # -- the object kinds ------------------------------------------------------------------------

    def document(self, raw: _Raw) -> DocumentEntry | None:
        before = len(self.problems)
        out = self.common(raw)
        object_type = _uri(raw.attrs.get("objectType"))
        try:
            out["object_type"] = ObjectType(object_type)
        except ValueError:
            object_type = ""
        if object_type not in (ObjectType.STABLE_DOCUMENT, ObjectType.ON_DEMAND_DOCUMENT):
            self.problem(
                f"ExtrinsicObject objectType '{raw.attrs.get('objectType', '')}' is neither a stable "
                f"({ObjectType.STABLE_DOCUMENT}) nor an on-demand ({ObjectType.ON_DEMAND_DOCUMENT}) "
                "DocumentEntry",
                raw.id,
            )
        out["mime_type"] = raw.attrs.get("mimeType", "")
        out["extra_slots"] = self.slot_values(raw, wire.DOCUMENT_SLOTS, out)
        if "size" in out:
            if _INTEGER_RE.fullmatch(out["size"]) is None:
                self.problem(f"Slot size '{out['size']}' is not an integer", raw.id)
            else:
                out["size"] = int(out["size"])
        if "hash" in out:
            out["hash"] = out["hash"].lower()
        self.identifiers(raw, wire.DOCUMENT_IDENTIFIERS, out, "DocumentEntry")
        self.classifications(
            raw,
            out,
            DocumentEntryScheme.AUTHOR,
            wire.DOCUMENT_CODES,
            wire.DOCUMENT_CODE_LISTS,
            "DocumentEntry",
        )
        return DocumentEntry(**out) if len(self.problems) == before else None

    def submission_set(self, raw: _Raw) -> SubmissionSet | None:
        before = len(self.problems)
        out = self.common(raw)
        out["extra_slots"] = self.slot_values(raw, wire.SUBMISSION_SET_SLOTS, out)
        self.identifiers(raw, wire.SUBMISSION_SET_IDENTIFIERS, out, "SubmissionSet")
        self.classifications(
            raw, out, SubmissionSetScheme.AUTHOR, wire.SUBMISSION_SET_CODES, {}, "SubmissionSet"
        )
        return SubmissionSet(**out) if len(self.problems) == before else None

    def folder(self, raw: _Raw) -> Folder | None:
        before = len(self.problems)
        out = self.common(raw)
        out["extra_slots"] = self.slot_values(raw, wire.FOLDER_SLOTS, out)
        self.identifiers(raw, wire.FOLDER_IDENTIFIERS, out, "Folder")
        self.classifications(raw, out, "", {}, wire.FOLDER_CODE_LISTS, "Folder")
        return Folder(**out) if len(self.problems) == before else None

    def association(self, raw: _Raw) -> Association | None:
        before = len(self.problems)
        a = raw.attrs
        type_text = _uri(a.get("associationType"))
        try:
            assoc_type = AssociationType(type_text)
        except ValueError:
            self.problem(
                f"associationType '{a.get('associationType', '')}' is not an XDS association type", raw.id
            )
            assoc_type = AssociationType.HAS_MEMBER
        for attr in ("sourceObject", "targetObject"):
            if not a.get(attr):
                self.problem(f"Association has no {attr}", raw.id)
        status_values: list[str] | None = None
        extra: list[Slot] = []
        for name, values in raw.slots:
            if name == wire.SLOT_SUBMISSION_SET_STATUS:
                status_values = values
            else:
                extra.append(Slot(name, tuple(values)))
        if status_values is not None and len(status_values) != 1:
            self.problem(
                f"Slot SubmissionSetStatus must have exactly one value (has {len(status_values)})", raw.id
            )
        docs: list[Code] = []
        for c in raw.classifications:
            if c.scheme != ASSOCIATION_DOCUMENTATION_SCHEME:
                self.problem(
                    f"Association has a Classification {c.id} with unexpected scheme '{c.scheme}'", raw.id
                )
                continue
            code = self.code(c, "associationDocumentation", raw.id)
            if code is not None:
                docs.append(code)
        if raw.identifiers:
            self.problem("an Association carries no ExternalIdentifier", raw.id)
        if len(self.problems) != before:
            return None
        return Association(
            entry_uuid=raw.id,
            association_type=assoc_type,
            source=a.get("sourceObject", ""),
            target=a.get("targetObject", ""),
            status=self.status(raw),
            home_community_id=a.get("home"),
            submission_set_status=status_values[0] if status_values else None,
            extra_slots=tuple(extra),
            extra_classifications=tuple(docs),
        )

    # -- the list --------------------------------------------------------------------------------

    def read_list(self, elem: _Element) -> list[RegistryObject | ObjectRef]:
        raws: list[_Raw] = []
        refs: list[ObjectRef] = []
        loose_classifications: list[tuple[str, _Element]] = []
        loose_identifiers: list[tuple[str, _Element]] = []
        readers = {
            _rim("ExtrinsicObject"): "ExtrinsicObject",
            _rim("RegistryPackage"): "RegistryPackage",
            _rim("Association"): "Association",
        }
        for child in elem:
            if not isinstance(child.tag, str):
                continue
            if child.tag in readers:
                raw = self.raw(child, readers[child.tag])
                if raw is not None:
                    raws.append(raw)
            elif child.tag == _rim("ObjectRef"):
                if child.get("id"):
                    refs.append(ObjectRef(child.get("id") or "", child.get("home")))
                else:
                    self.problem("an ObjectRef has no id attribute")
            elif child.tag == _rim("Classification"):
                loose_classifications.append((child.get("classifiedObject") or "", child))
            elif child.tag == _rim("ExternalIdentifier"):
                loose_identifiers.append((child.get("registryObject") or "", child))
            else:
                self.problem(f"unsupported element {child.tag} in RegistryObjectList")
        by_id: dict[str, _Raw] = {}
        for raw in raws:
            if raw.id in by_id:
                self.problem(f"id {raw.id} is used by more than one object", raw.id)
            by_id[raw.id] = raw
        for target, c in loose_classifications:
            owner = by_id.get(target)
            if owner is None:
                self.problem(
                    f"Classification {c.get('id')} classifies '{target}', which is not in the message"
                )
            else:
                owner.classifications.append(self.classification(c, target))
        for target, ei in loose_identifiers:
            owner = by_id.get(target)
            if owner is None:
                self.problem(
                    f"ExternalIdentifier {ei.get('id')} refers to '{target}', which is not in the message"
                )
            else:
                owner.identifiers.append((_uri(ei.get("identificationScheme")), ei.get("value") or ""))
        objects: list[RegistryObject | ObjectRef] = []
        for raw in raws:
            obj = self.typed(raw)
            if obj is not None:
                objects.append(obj)
        return [*objects, *refs]

    def typed(self, raw: _Raw) -> RegistryObject | None:
        if raw.kind == "ExtrinsicObject":
            return self.document(raw)
        if raw.kind == "Association":
            return self.association(raw)
        nodes = {c.node for c in raw.classifications} & {SUBMISSION_SET_NODE, FOLDER_NODE}
        if nodes == {SUBMISSION_SET_NODE}:
            return self.submission_set(raw)
        if nodes == {FOLDER_NODE}:
            return self.folder(raw)
        what = "both" if nodes else "neither"
        self.problem(
            f"RegistryPackage is classified as {what} SubmissionSet ({SUBMISSION_SET_NODE}) "
            f"{'and' if nodes else 'nor'} Folder ({FOLDER_NODE})",
            raw.id,
        )
        return None


def _expect(elem: Any, namespace: str, local: str) -> _Element:
    if not isinstance(elem, etree._Element) or elem.tag != ns.qn(namespace, local):
        tag = getattr(elem, "tag", type(elem).__name__)
        raise ParseError(f"expected {{{namespace}}}{local}, got {tag}")
    return elem


def parse_registry_object_list(elem: _Element) -> list[RegistryObject | ObjectRef]:
    """The objects of a rim:RegistryObjectList (e.g. of an AdhocQueryResponse), in document order.

    ObjectRefs come last.  Raises XdsError for malformed metadata, ParseError for a wrong element.
    """
    reader = _Reader()
    objects = reader.read_list(_expect(elem, ns.RIM, "RegistryObjectList"))
    reader.raise_if_problems()
    return objects


def parse_submit_objects_request(elem: _Element) -> Submission:
    """The Submission carried by an lcm:SubmitObjectsRequest (ITI-42, ITI TF-2 3.42.4.1).

    Ids stay as submitted (symbolic or UUID); exactly one SubmissionSet is required.
    """
    _expect(elem, ns.LCM, "SubmitObjectsRequest")
    lists = [c for c in elem if c.tag == _rim("RegistryObjectList")]
    if len(lists) != 1:
        raise ParseError("SubmitObjectsRequest must contain exactly one rim:RegistryObjectList")
    reader = _Reader()
    objects = reader.read_list(lists[0])
    sets = [o for o in objects if isinstance(o, SubmissionSet)]
    if len(sets) != 1 and not reader.problems:
        reader.problem(
            f"a submission must contain exactly one SubmissionSet (RegistryPackage classified by "
            f"{SUBMISSION_SET_NODE}); found {len(sets)}"
        )
    reader.raise_if_problems()
    return Submission(
        submission_set=sets[0],
        documents=tuple(o for o in objects if isinstance(o, DocumentEntry)),
        folders=tuple(o for o in objects if isinstance(o, Folder)),
        associations=tuple(o for o in objects if isinstance(o, Association)),
        object_refs=tuple(o for o in objects if isinstance(o, ObjectRef)),
    )


def parse_provide_and_register(elem: _Element) -> Submission:
    """ITI-41 / RAD-68 (ITI TF-2 3.41.4.1): the Submission plus, per xdsb:Document, its reference.

    ``document_refs`` maps each Document/@id to the xop:Include content-id (without ``cid:``,
    URL-unquoted) or, for inline base64 content, to ``INLINE_REF_PREFIX + id`` (read the bytes
    with :func:`inline_document`).  Document ids are not checked against DocumentEntries here;
    :func:`xds_hub.domain.validate.validate_submission` reports XDSMissingDocument(Metadata).
    """
    _expect(elem, ns.XDSB, "ProvideAndRegisterDocumentSetRequest")
    requests = [c for c in elem if c.tag == ns.qn(ns.LCM, "SubmitObjectsRequest")]
    if len(requests) != 1:
        raise ParseError("ProvideAndRegisterDocumentSetRequest must contain one lcm:SubmitObjectsRequest")
    problems: list[Problem] = []
    refs: dict[str, str] = {}
    for doc in elem.iterchildren(ns.qn(ns.XDSB, "Document")):
        doc_id = doc.get("id")
        if not doc_id:
            problems.append(
                Problem(ErrorCode.REPOSITORY_METADATA_ERROR, "an xdsb:Document has no id attribute")
            )
            continue
        if doc_id in refs:
            problems.append(
                Problem(
                    ErrorCode.REPOSITORY_METADATA_ERROR, f"xdsb:Document id {doc_id} appears twice", doc_id
                )
            )
            continue
        include = doc.find(ns.qn(ns.XOP, "Include"))
        if include is not None:
            href = include.get("href") or ""
            cid = unquote(href[4:] if href.lower().startswith("cid:") else href)
            if not cid:
                problems.append(
                    Problem(ErrorCode.REPOSITORY_METADATA_ERROR, "xop:Include has no href", doc_id)
                )
                continue
            refs[doc_id] = cid
        else:
            refs[doc_id] = wire.INLINE_REF_PREFIX + doc_id
    try:
        submission = parse_submit_objects_request(requests[0])
    except XdsError as exc:
        raise XdsError([*exc.problems, *problems]) from None
    if problems:
        raise XdsError(problems)
    return evolve(submission, document_refs=refs)


def inline_document(elem: _Element, document_id: str) -> bytes:
    """The base64 content of the xdsb:Document ``document_id`` of a ProvideAndRegister request."""
    _expect(elem, ns.XDSB, "ProvideAndRegisterDocumentSetRequest")
    for doc in elem.iterchildren(ns.qn(ns.XDSB, "Document")):
        if doc.get("id") == document_id:
            text = "".join((doc.text or "").split())
            try:
                return base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ParseError(f"xdsb:Document {document_id} is not valid base64: {exc}") from None
    raise ParseError(f"no xdsb:Document with id {document_id}")


def parse_remove_objects_request(elem: _Element) -> tuple[ObjectRef, ...]:
    """The objects named by an lcm:RemoveObjectsRequest of Delete Document Set [ITI-62]
    (ITI TF-2 3.62.4.1.2): its rim:ObjectRefList, in document order, duplicates removed.

    The request names objects only by ObjectRef: an rim:AdhocQuery, a deletionScope other than
    DeleteAll, an empty list or an ObjectRef without id raise XdsError (XDSRegistryMetadataError);
    an element that is not a RemoveObjectsRequest, or an unexpected child, raises ParseError.
    """
    _expect(elem, ns.LCM, "RemoveObjectsRequest")
    reader = _Reader()
    scope = _uri(elem.get("deletionScope")) or DELETION_SCOPE_DELETE_ALL
    if scope != DELETION_SCOPE_DELETE_ALL:
        reader.problem(f"deletionScope '{scope}' is not supported; only {DELETION_SCOPE_DELETE_ALL} is")
    known = {ns.qn(ns.RS, "RequestSlotList"), _rim("AdhocQuery"), _rim("ObjectRefList")}
    lists: list[_Element] = []
    for child in elem:
        if not isinstance(child.tag, str):
            continue
        if child.tag not in known:
            raise ParseError(f"unexpected element {child.tag} in lcm:RemoveObjectsRequest")
        if child.tag == _rim("AdhocQuery"):
            reader.problem("Delete Document Set names the objects to remove by ObjectRefList, not AdhocQuery")
        elif child.tag == _rim("ObjectRefList"):
            lists.append(child)
    refs: dict[str, ObjectRef] = {}
    for ref in (r for lst in lists for r in _children(lst, "ObjectRef")):
        ref_id = (ref.get("id") or "").strip()
        if not ref_id:
            reader.problem("an ObjectRef has no id attribute")
        else:
            refs.setdefault(ref_id, ObjectRef(ref_id, ref.get("home")))
    if not refs and not reader.problems:
        reader.problem("the RemoveObjectsRequest names no object (rim:ObjectRefList with rim:ObjectRef)")
    reader.raise_if_problems()
    return tuple(refs.values())
