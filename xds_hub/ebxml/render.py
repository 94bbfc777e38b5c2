"""Typed XDS metadata -> ebRIM 3.0 XML (ITI TF-3 4.2.3; ITI TF-2 3.18.4.1.3, 3.41, 3.42).

The reverse of :mod:`.parse`: ``parse(render(x)) == x`` for every object the parser produces.
Children follow the ebRIM schema order (Slot*, Name, Description, VersionInfo, Classification*,
ExternalIdentifier*).  Classification and ExternalIdentifier ids are uuid5 values derived from the
object id, the attribute and an index, so the same object always renders to the same XML.

``for_submission=True`` renders what a Document Source sends (no status, no VersionInfo);
``False`` renders what a registry returns in a query response.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal
from urllib.parse import quote

from lxml import etree

from xds_hub import ns
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
    FOLDER_NODE,
    SUBMISSION_SET_NODE,
    DocumentEntryScheme,
    FolderScheme,
    ObjectType,
    ResponseStatus,
    SubmissionSetScheme,
)
from xds_hub.ebxml import wire
from xds_hub.errors import Problem, Severity

_Element = etree._Element
ReturnType = Literal["LeafClass", "ObjectRef"]

#: Namespace of the uuid5 ids given to Classification / ExternalIdentifier elements.
_ID_NAMESPACE = uuid.UUID("6f1d52c4-3b0e-5b8a-9c7e-2a7e1c0b8d11")

_RIM_MAP = {"rim": ns.RIM}


def _rim(local: str) -> str:
    return ns.qn(ns.RIM, local)


def child_id(object_id: str, role: str, index: int = 0) -> str:
    """Deterministic id of a Classification / ExternalIdentifier of ``object_id``."""
    return f"urn:uuid:{uuid.uuid5(_ID_NAMESPACE, f'{object_id}|{role}|{index}')}"


def _sub(parent: _Element, local: str, **attrs: str | None) -> _Element:
    return etree.SubElement(parent, _rim(local), {k: v for k, v in attrs.items() if v is not None})


def _slot(parent: _Element, name: str, values: Iterable[str]) -> None:
    slot = _sub(parent, "Slot", name=name)
    value_list = _sub(slot, "ValueList")
    for value in values:
        _sub(value_list, "Value").text = value


def _localized(parent: _Element, local: str, value: str | None) -> None:
    if value is not None:
        _sub(_sub(parent, local), "LocalizedString", value=value)


def _slots(parent: _Element, obj: object, table: Sequence[wire.SlotField], extra: Sequence[Slot]) -> None:
    for spec in table:
        value = getattr(obj, spec.field)
        if spec.multi:
            if value:
                _slot(parent, spec.name, value)
        elif value is not None:
            _slot(parent, spec.name, [str(value)])
    for slot in extra:
        _slot(parent, slot.name, slot.values)


def _header(
    parent: _Element,
    local: str,
    obj: DocumentEntry | SubmissionSet | Folder,
    object_type: str,
    for_submission: bool,
) -> _Element:
    return _sub(
        parent,
        local,
        id=obj.entry_uuid,
        home=obj.home_community_id,
        lid=obj.logical_id,
        objectType=object_type,
        status=None if for_submission else obj.status.value,
    )


def _names(elem: _Element, obj: DocumentEntry | SubmissionSet | Folder, for_submission: bool) -> None:
    _localized(elem, "Name", obj.title)
    _localized(elem, "Description", obj.comments)
    if not for_submission:
        _sub(elem, "VersionInfo", versionName=obj.version)


def _classification(elem: _Element, obj_id: str, role: str, index: int, **attrs: str) -> _Element:
    return _sub(
        elem,
        "Classification",
        id=child_id(obj_id, role, index),
        objectType=wire.CLASSIFICATION_TYPE,
        classifiedObject=obj_id,
        **attrs,
    )


def _code(elem: _Element, obj_id: str, scheme: str, code: Code, index: int) -> None:
    c = _classification(
        elem, obj_id, scheme, index, classificationScheme=scheme, nodeRepresentation=code.code
    )
    _slot(c, wire.SLOT_CODING_SCHEME, [code.scheme])
    _localized(c, "Name", code.display or None)


def _authors(elem: _Element, obj_id: str, scheme: str, authors: Sequence[Author]) -> None:
    for index, author in enumerate(authors):
        c = _classification(elem, obj_id, scheme, index, classificationScheme=scheme, nodeRepresentation="")
        _slots(c, author, wire.AUTHOR_SLOTS, ())


def _node(elem: _Element, obj_id: str, node: str) -> None:
    _classification(elem, obj_id, node, 0, classificationNode=node)


def _identifiers(elem: _Element, obj: object, table: Mapping[str, tuple[str, str]]) -> None:
    obj_id = getattr(obj, "entry_uuid")  # noqa: B009
    for scheme, (fld, label) in table.items():
        ei = _sub(
            elem,
            "ExternalIdentifier",
            id=child_id(obj_id, scheme),
            objectType=wire.EXTERNAL_IDENTIFIER_TYPE,
            registryObject=obj_id,
            identificationScheme=scheme,
            value=getattr(obj, fld),
        )
        _localized(ei, "Name", label)


def _code_attrs(elem: _Element, obj: object, single: Mapping[str, str], lists: Mapping[str, str]) -> None:
    obj_id = getattr(obj, "entry_uuid")  # noqa: B009
    for scheme, fld in single.items():
        code = getattr(obj, fld)
        if code is not None:
            _code(elem, obj_id, scheme, code, 0)
    for scheme, fld in lists.items():
        for index, code in enumerate(getattr(obj, fld)):
            _code(elem, obj_id, scheme, code, index)


def render_document_entry(
    doc: DocumentEntry, parent: _Element | None = None, *, for_submission: bool = False
) -> _Element:
    """A DocumentEntry as rim:ExtrinsicObject (ITI TF-3 4.2.3.2, Table 4.2.3.2-1)."""
    holder = parent if parent is not None else etree.Element(_rim("RegistryObjectList"), nsmap=_RIM_MAP)
    eo = _header(holder, "ExtrinsicObject", doc, doc.object_type.value, for_submission)
    eo.set("mimeType", doc.mime_type)
    _slots(eo, doc, wire.DOCUMENT_SLOTS, doc.extra_slots)
    _names(eo, doc, for_submission)
    _authors(eo, doc.entry_uuid, DocumentEntryScheme.AUTHOR, doc.authors)
    _code_attrs(eo, doc, wire.DOCUMENT_CODES, wire.DOCUMENT_CODE_LISTS)
    if doc.limited_metadata:
        _node(eo, doc.entry_uuid, DocumentEntryScheme.LIMITED_METADATA)
    _identifiers(eo, doc, wire.DOCUMENT_IDENTIFIERS)
    return eo


def render_submission_set(
    ss: SubmissionSet, parent: _Element | None = None, *, for_submission: bool = False
) -> _Element:
    """A SubmissionSet as rim:RegistryPackage with its classification (ITI TF-3 4.2.3.3)."""
    holder = parent if parent is not None else etree.Element(_rim("RegistryObjectList"), nsmap=_RIM_MAP)
    rp = _header(holder, "RegistryPackage", ss, ObjectType.REGISTRY_PACKAGE.value, for_submission)
    _slots(rp, ss, wire.SUBMISSION_SET_SLOTS, ss.extra_slots)
    _names(rp, ss, for_submission)
    _node(rp, ss.entry_uuid, SUBMISSION_SET_NODE)
    _authors(rp, ss.entry_uuid, SubmissionSetScheme.AUTHOR, ss.authors)
    _code_attrs(rp, ss, wire.SUBMISSION_SET_CODES, {})
    if ss.limited_metadata:
        _node(rp, ss.entry_uuid, SubmissionSetScheme.LIMITED_METADATA)
    _identifiers(rp, ss, wire.SUBMISSION_SET_IDENTIFIERS)
    return rp


def render_folder(
    folder: Folder, parent: _Element | None = None, *, for_submission: bool = False
) -> _Element:
    """A Folder as rim:RegistryPackage with its classification (ITI TF-3 4.2.3.4)."""
    holder = parent if parent is not None else etree.Element(_rim("RegistryObjectList"), nsmap=_RIM_MAP)
    rp = _header(holder, "RegistryPackage", folder, ObjectType.REGISTRY_PACKAGE.value, for_submission)
    _slots(rp, folder, wire.FOLDER_SLOTS, folder.extra_slots)
    _names(rp, folder, for_submission)
    _node(rp, folder.entry_uuid, FOLDER_NODE)
    _code_attrs(rp, folder, {}, wire.FOLDER_CODE_LISTS)
    if folder.limited_metadata:
        _node(rp, folder.entry_uuid, FolderScheme.LIMITED_METADATA)
    _identifiers(rp, folder, wire.FOLDER_IDENTIFIERS)
    return rp


def render_association(
    assoc: Association, parent: _Element | None = None, *, for_submission: bool = False
) -> _Element:
    """An Association (ITI TF-3 4.2.2), its SubmissionSetStatus slot and documentation classification."""
    holder = parent if parent is not None else etree.Element(_rim("RegistryObjectList"), nsmap=_RIM_MAP)
    a = _sub(
        holder,
        "Association",
        id=assoc.entry_uuid,
        home=assoc.home_community_id,
        objectType=ObjectType.ASSOCIATION.value,
        status=None if for_submission else assoc.status.value,
        associationType=assoc.association_type.value,
        sourceObject=assoc.source,
        targetObject=assoc.target,
    )
    if assoc.submission_set_status is not None:
        _slot(a, wire.SLOT_SUBMISSION_SET_STATUS, [assoc.submission_set_status])
    for slot in assoc.extra_slots:
        _slot(a, slot.name, slot.values)
    for index, code in enumerate(assoc.extra_classifications):
        _code(a, assoc.entry_uuid, ASSOCIATION_DOCUMENTATION_SCHEME, code, index)
    return a


def render_object_ref(ref: ObjectRef, parent: _Element | None = None) -> _Element:
    holder = parent if parent is not None else etree.Element(_rim("RegistryObjectList"), nsmap=_RIM_MAP)
    return _sub(holder, "ObjectRef", id=ref.id, home=ref.home_community_id)


def render_object(
    obj: RegistryObject | ObjectRef, parent: _Element | None = None, *, for_submission: bool = False
) -> _Element:
    """Any registry object (or reference) as its ebRIM element."""
    if isinstance(obj, DocumentEntry):
        return render_document_entry(obj, parent, for_submission=for_submission)
    if isinstance(obj, SubmissionSet):
        return render_submission_set(obj, parent, for_submission=for_submission)
    if isinstance(obj, Folder):
        return render_folder(obj, parent, for_submission=for_submission)
    if isinstance(obj, Association):
        return render_association(obj, parent, for_submission=for_submission)
    return render_object_ref(obj, parent)


def _fill_list(
    holder: _Element,
    objects: Iterable[RegistryObject | ObjectRef],
    return_type: ReturnType,
    for_submission: bool,
) -> _Element:
    for obj in objects:
        if return_type == "ObjectRef":
            ref_id = obj.id if isinstance(obj, ObjectRef) else obj.entry_uuid
            render_object_ref(ObjectRef(ref_id, obj.home_community_id), holder)
        else:
            render_object(obj, holder, for_submission=for_submission)
    return holder


def render_registry_object_list(
    objects: Iterable[RegistryObject | ObjectRef], return_type: ReturnType = "LeafClass"
) -> _Element:
    """rim:RegistryObjectList of full objects (LeafClass) or of rim:ObjectRef (ITI TF-2 3.18.4.1.2.1)."""
    holder = etree.Element(_rim("RegistryObjectList"), nsmap=_RIM_MAP)
    return _fill_list(holder, objects, return_type, for_submission=False)


def _error_list(parent: _Element, problems: Sequence[Problem]) -> None:
    if not problems:
        return
    errors_elem = etree.SubElement(parent, ns.qn(ns.RS, "RegistryErrorList"))
    highest = Severity.ERROR if any(p.severity is Severity.ERROR for p in problems) else Severity.WARNING
    errors_elem.set("highestSeverity", highest.value)
    for p in problems:
        attrs = {"codeContext": p.context, "errorCode": p.code.value, "severity": p.severity.value}
        if p.location:
            attrs["location"] = p.location
        etree.SubElement(errors_elem, ns.qn(ns.RS, "RegistryError"), attrs)


def render_registry_response(
    status: ResponseStatus, problems: Sequence[Problem] = (), request_id: str | None = None
) -> _Element:
    """rs:RegistryResponse with its RegistryErrorList (ITI TF-3 4.2.4)."""
    resp = etree.Element(ns.qn(ns.RS, "RegistryResponse"), nsmap={"rs": ns.RS})
    resp.set("status", status.value)
    if request_id:
        resp.set("requestId", request_id)
    _error_list(resp, problems)
    return resp


def render_adhoc_query_response(
    status: ResponseStatus,
    objects: Iterable[RegistryObject | ObjectRef] = (),
    problems: Sequence[Problem] = (),
    return_type: ReturnType = "LeafClass",
) -> _Element:
    """query:AdhocQueryResponse of a stored query (ITI TF-2 3.18.4.1.3)."""
    resp = etree.Element(
        ns.qn(ns.QUERY, "AdhocQueryResponse"), nsmap={"query": ns.QUERY, "rs": ns.RS, "rim": ns.RIM}
    )
    resp.set("status", status.value)
    _error_list(resp, problems)
    _fill_list(etree.SubElement(resp, _rim("RegistryObjectList")), objects, return_type, for_submission=False)
    return resp


def _submission_objects(sub: Submission) -> list[RegistryObject | ObjectRef]:
    return [sub.submission_set, *sub.folders, *sub.documents, *sub.associations, *sub.object_refs]


def render_submit_objects_request(sub: Submission) -> _Element:
    """lcm:SubmitObjectsRequest of an ITI-42 Register Document Set-b (ITI TF-2 3.42.4.1.2)."""
    req = etree.Element(ns.qn(ns.LCM, "SubmitObjectsRequest"), nsmap={"lcm": ns.LCM, "rim": ns.RIM})
    _fill_list(etree.SubElement(req, _rim("RegistryObjectList")), _submission_objects(sub), "LeafClass", True)
    return req


def render_provide_and_register(sub: Submission, docs: Mapping[str, str | bytes]) -> _Element:
    """xdsb:ProvideAndRegisterDocumentSetRequest (ITI-41, ITI TF-2 3.41.4.1.2).

    ``docs`` maps each DocumentEntry id to the content-id of its MIME part (rendered as an
    xop:Include) or to the document bytes themselves (rendered inline as base64).
    """
    root = etree.Element(
        ns.qn(ns.XDSB, "ProvideAndRegisterDocumentSetRequest"),
        nsmap={"xdsb": ns.XDSB, "lcm": ns.LCM, "rim": ns.RIM, "xop": ns.XOP},
    )
    root.append(render_submit_objects_request(sub))
    for doc_id, content in docs.items():
        doc = etree.SubElement(root, ns.qn(ns.XDSB, "Document"), id=doc_id)
        if isinstance(content, bytes):
            doc.text = base64.b64encode(content).decode("ascii")
        else:
            etree.SubElement(
                doc, ns.qn(ns.XOP, "Include"), href="cid:" + quote(content, safe="@.:-_~!$&'()*+,;=/")
            )
    return root


def render_remove_objects_request(refs: Iterable[ObjectRef | str]) -> _Element:
    """lcm:RemoveObjectsRequest of Delete Document Set [ITI-62] (ITI TF-2 3.62.4.1.2): the objects to
    remove as rim:ObjectRef in an rim:ObjectRefList, deletionScope left at its default (DeleteAll)."""
    req = etree.Element(ns.qn(ns.LCM, "RemoveObjectsRequest"), nsmap={"lcm": ns.LCM, "rim": ns.RIM})
    holder = etree.SubElement(req, _rim("ObjectRefList"))
    for ref in refs:
        render_object_ref(ref if isinstance(ref, ObjectRef) else ObjectRef(ref), holder)
    return req
