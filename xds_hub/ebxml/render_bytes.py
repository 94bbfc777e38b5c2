"""Stored query answers written straight to UTF-8 bytes, identical to serialising :mod:`.render`'s tree.

A FindDocuments answer is mostly DocumentEntries (~90 elements each): building them as lxml
trees and serialising the tree cost ~0.2 ms per DocumentEntry, which decided the tail latency of
ITI-18 (a patient's p99 answer holds ~64 of them).  Here each part that :mod:`.render` builds
from a template (an object's *shape*, a code Classification, an author, an ExternalIdentifier,
a classification node, an ObjectRef) is rendered once by :mod:`.render` itself with marker
characters in place of its variable values, serialised by lxml, and cut at the markers: the
constant text is lxml's own, the values are escaped as libxml2 escapes them (attributes: ``& <
> " \\n \\r \\t``; text: ``& < > \\r``).  Answers holding anything else (SubmissionSets, Folders,
Associations) or values lxml would refuse or that need care (control characters, surrogates,
U+FFFE/U+FFFF, the marker range) are left to :mod:`.render` and lxml: same bytes, same errors.

``tests/test_iti18_render.py`` checks byte equality with the lxml path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from lxml import etree

from xds_hub import ns
from xds_hub.domain.metadata import Author, Code, DocumentEntry, ObjectRef, RegistryObject
from xds_hub.domain.vocabulary import DocumentEntryScheme, ResponseStatus
from xds_hub.ebxml import render, wire

_Element = etree._Element

#: Marker characters (Unicode private use area) standing for a template's variable values.
_FIRST_MARK = 0xE000
_MARKS = re.compile("[\ue000-\uf8ff]")
#: Values the fast path leaves to lxml (what lxml refuses or might treat specially, and markers).
_UNUSUAL = "\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ue000-\uf8ff\ufffe\uffff"
_ATTR_SPECIAL = re.compile(f'[&<>"\n\r\t{_UNUSUAL}]')
_TEXT_SPECIAL = re.compile(f"[&<>\r{_UNUSUAL}]")
_UNUSUAL_RE = re.compile(f"[{_UNUSUAL}]")
_RIM_DECLARATION = f' xmlns:rim="{ns.RIM}"'
_MAX_TEMPLATES = 4096


class Unsupported(Exception):
    """The answer holds something the fast path does not write; :mod:`.render` does."""


def escape_attr(value: str) -> str:
    """``value`` as libxml2 writes an attribute value (between double quotes)."""
    if _ATTR_SPECIAL.search(value) is None:
        return value
    if _UNUSUAL_RE.search(value):
        raise Unsupported
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
        .replace("\t", "&#9;")
    )


def escape_text(value: str) -> str:
    """``value`` as libxml2 writes element text."""
    if _TEXT_SPECIAL.search(value) is None:
        return value
    if _UNUSUAL_RE.search(value):
        raise Unsupported
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _mark(index: int) -> str:
    return chr(_FIRST_MARK + index)


#: A template cut at its markers: the constant pieces (one more than the values).
_Pieces = tuple[str, ...]


def _cut(element: _Element, count: int) -> _Pieces:
    """``element`` (whose variable values are the markers 0..count-1, in document order)
    serialised as it reads inside a response that declares ``rim`` at its root, cut at them."""
    text = etree.tostring(element, encoding="unicode").replace(_RIM_DECLARATION, "", 1)
    marks = _MARKS.findall(text)
    if marks != [_mark(i) for i in range(count)]:  # a marker character in the constant text
        raise Unsupported
    return tuple(_MARKS.split(text))


def _fill(pieces: _Pieces, values: Sequence[str]) -> str:
    out = [pieces[0]]
    for value, piece in zip(values, pieces[1:], strict=True):
        out.append(value)
        out.append(piece)
    return "".join(out)


_templates: dict[tuple[object, ...], _Pieces] = {}


def _template(key: tuple[object, ...], build: Callable[[], _Pieces]) -> _Pieces:
    pieces = _templates.get(key)
    if pieces is None:
        if len(_templates) >= _MAX_TEMPLATES:
            _templates.clear()
        pieces = _templates[key] = build()
    return pieces


def _classified(template: _Element) -> _Pieces:
    c = render._clone(template)
    c.set("id", _mark(0))
    c.set("classifiedObject", _mark(1))
    return _cut(c, 2)


def _code_pieces(scheme: str, code: Code) -> _Pieces:
    key = ("code", scheme, code.code, code.scheme, code.display)
    return _template(key, lambda: _classified(render._code_template(scheme, code)))


def _author_pieces(scheme: str, author: Author) -> _Pieces:
    key = (
        "author",
        scheme,
        author.person,
        author.institutions,
        author.roles,
        author.specialties,
        author.telecoms,
    )
    return _template(key, lambda: _classified(render._author_template(scheme, author)))


def _identifier_pieces(scheme: str, label: str, has_value: bool) -> _Pieces:
    def build() -> _Pieces:
        ei = render._clone(render._identifier_template(scheme, label))
        ei.set("id", _mark(0))
        ei.set("registryObject", _mark(1))
        if has_value:
            ei.set("value", _mark(2))
            return _cut(ei, 3)
        del ei.attrib["value"]
        return _cut(ei, 2)

    return _template(("identifier", scheme, label, has_value), build)


def _node_pieces(node: str) -> _Pieces:
    def build() -> _Pieces:
        holder = etree.Element(render._REGISTRY_OBJECT_LIST, nsmap=render._RIM_MAP)
        render._node(holder, _mark(1), node)
        c = holder[0]
        c.set("id", _mark(0))
        return _cut(c, 2)

    return _template(("node", node), build)


def _object_ref_pieces(has_home: bool) -> _Pieces:
    def build() -> _Pieces:
        holder = etree.Element(render._REGISTRY_OBJECT_LIST, nsmap=render._RIM_MAP)
        ref = ObjectRef(_mark(0), _mark(1) if has_home else None)
        return _cut(render.render_object_ref(ref, holder), 2 if has_home else 1)

    return _template(("ref", has_home), build)


def _shape_pieces(
    names: tuple[str, ...], counts: tuple[tuple[str, int], ...], title: bool, comments: bool
) -> _Pieces:
    """A query response's ExtrinsicObject start tag, Slots, Name, Description and VersionInfo
    (as :func:`render._registry_object` copies them from its shape template), without its end tag
    (the Classifications and ExternalIdentifiers follow)."""

    def build() -> _Pieces:
        template, kinds = render._shape_template(
            render._EXTRINSIC_OBJECT, names, counts, title, comments, True
        )
        el = render._clone(template)
        mark = 0
        for name in names:
            el.set(name, _mark(mark))
            mark += 1
        nodes = el.iter(render._VALUE, render._LOCALIZED_STRING, render._VERSION_INFO)
        for node, kind in zip(nodes, kinds, strict=True):
            if kind is None:
                node.text = _mark(mark)
            else:
                node.set(kind, _mark(mark))
            mark += 1
        etree.SubElement(el, "end")  # a child, so that the element is not written as <x/>
        pieces = _cut(el, mark)
        end = "<end/></rim:ExtrinsicObject>"
        if not pieces[-1].endswith(end):
            raise Unsupported
        return (*pieces[:-1], pieces[-1][: -len(end)])

    return _template(("shape", names, counts, title, comments), build)


def _document_entry(doc: DocumentEntry, out: list[str]) -> None:
    """Append the pieces of ``doc`` as :func:`render.render_document_entry` (query response) writes it."""
    attrs = {
        "id": doc.entry_uuid,
        "home": doc.home_community_id,
        "lid": doc.logical_id,
        "objectType": doc.object_type.value,
        "status": doc.status.value,
        "mimeType": doc.mime_type,
    }
    present = {k: v for k, v in attrs.items() if v is not None}
    slots = render._slot_values(doc, wire.DOCUMENT_SLOTS, doc.extra_slots)
    title, comments = doc.title, doc.comments
    names = tuple(present)
    counts = tuple((name, len(values)) for name, values in slots)
    values = [escape_attr(v) for v in present.values()]
    values.extend(escape_text(value) for _, vs in slots for value in vs)
    if title is not None:
        values.append(escape_attr(title))
    if comments is not None:
        values.append(escape_attr(comments))
    values.append(escape_attr(doc.version))
    out.append(_fill(_shape_pieces(names, counts, title is not None, comments is not None), values))

    obj_id = doc.entry_uuid
    oid = escape_attr(obj_id)
    child_id = render.child_id
    scheme: str = DocumentEntryScheme.AUTHOR
    for index, author in enumerate(doc.authors):
        p = _author_pieces(scheme, author)
        out.extend((p[0], child_id(obj_id, scheme, index), p[1], oid, p[2]))
    for scheme, fld in wire.DOCUMENT_CODES.items():
        code = getattr(doc, fld)
        if code is not None:
            p = _code_pieces(scheme, code)
            out.extend((p[0], child_id(obj_id, scheme, 0), p[1], oid, p[2]))
    for scheme, fld in wire.DOCUMENT_CODE_LISTS.items():
        for index, code in enumerate(getattr(doc, fld)):
            p = _code_pieces(scheme, code)
            out.extend((p[0], child_id(obj_id, scheme, index), p[1], oid, p[2]))
    if doc.limited_metadata:
        node: str = DocumentEntryScheme.LIMITED_METADATA
        p = _node_pieces(node)
        out.extend((p[0], child_id(obj_id, node, 0), p[1], oid, p[2]))
    for scheme, (fld, label) in wire.DOCUMENT_IDENTIFIERS.items():
        value = getattr(doc, fld)
        p = _identifier_pieces(scheme, label, value is not None)
        out.extend((p[0], child_id(obj_id, scheme), p[1], oid, p[2]))
        if value is not None:
            out.extend((escape_attr(value), p[3]))
    out.append("</rim:ExtrinsicObject>")


def _object_ref(ref_id: str, home: str | None, out: list[str]) -> None:
    p = _object_ref_pieces(home is not None)
    out.extend((p[0], escape_attr(ref_id), p[1]))
    if home is not None:
        out.extend((escape_attr(home), p[2]))


_EMPTY_LIST = "<rim:RegistryObjectList/>"


_frames: dict[str, tuple[str, str]] = {}


def _success_frame(return_type: render.ReturnType) -> tuple[str, str]:
    frame = _frames.get(return_type)
    if frame is None:
        frame = _frames[return_type] = _build_frame(return_type)
    return frame


def _build_frame(return_type: render.ReturnType) -> tuple[str, str]:
    text = etree.tostring(
        render.render_adhoc_query_response(ResponseStatus.SUCCESS, (), (), return_type), encoding="unicode"
    )
    head, empty, tail = text.rpartition(_EMPTY_LIST)
    if not empty:
        raise Unsupported
    return head, tail


def adhoc_query_response_xml(
    objects: Sequence[RegistryObject | ObjectRef], return_type: render.ReturnType = "LeafClass"
) -> bytes:
    """``etree.tostring(render_adhoc_query_response(SUCCESS, objects, (), return_type),
    encoding="UTF-8")``, written directly.  Raises :class:`Unsupported` for answers it leaves to
    :mod:`.render` (objects other than DocumentEntries in a LeafClass answer, unusual values)."""
    if return_type == "LeafClass" and not all(isinstance(o, DocumentEntry | ObjectRef) for o in objects):
        raise Unsupported  # (before writing anything)
    head, tail = _success_frame(return_type)
    if not objects:
        return f"{head}{_EMPTY_LIST}{tail}".encode()
    out = [head, "<rim:RegistryObjectList>"]
    for obj in objects:
        if return_type == "ObjectRef":
            ref_id = obj.id if isinstance(obj, ObjectRef) else obj.entry_uuid
            _object_ref(ref_id, obj.home_community_id, out)
        elif isinstance(obj, DocumentEntry):
            _document_entry(obj, out)
        else:
            assert isinstance(obj, ObjectRef)
            _object_ref(obj.id, obj.home_community_id, out)
    out.append("</rim:RegistryObjectList>")
    out.append(tail)
    return "".join(out).encode()
