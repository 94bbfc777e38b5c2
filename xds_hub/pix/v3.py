"""HL7 v3 (Edition 2008) pieces shared by ITI-44 and ITI-45: reading the transmission wrapper and
identifiers of a request, writing the transmission wrapper and acknowledgement of a reply
(ITI TF-2b 3.44.4.1.3, 3.45.4.2; HL7 v3 MCCI_MT000200UV01 / MCCI_MT000300UV01).

Replies are built with lxml's ElementMaker in the ``urn:hl7-org:v3`` namespace; receiver and
sender devices are the request's sender and receiver, ``acknowledgement/targetMessage/id`` its
``id``, and each problem becomes an ``acknowledgementDetail`` (typeCode E, code from HL7 Table
0357 in code system 2.16.840.1.113883.12.357, text, location XPath).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import cast

from lxml import etree

from xds_hub import ns
from xds_hub.errors import AckCode, FaultCode, Hl7Error, SoapFault
from xds_hub.pix.model import RawId, Where


class _Maker:
    """``V.tag(*children, **attributes)``: an element of the HL7 v3 namespace; a string child is its
    text.  ``V(tag, ...)`` makes a document element (it declares the default namespace)."""

    def __call__(self, local: str, *children: etree._Element | str, **attrs: str) -> etree._Element:
        return self.make(local, children, attrs, cast("dict[str, str]", {None: ns.HL7V3}))

    def __getattr__(self, local: str) -> Callable[..., etree._Element]:
        return partial(self._child, local)

    def _child(self, local: str, *children: etree._Element | str, **attrs: str) -> etree._Element:
        return self.make(local, children, attrs, None)

    @staticmethod
    def make(
        local: str,
        children: tuple[etree._Element | str, ...],
        attrs: dict[str, str],
        nsmap: dict[str, str] | None,
    ) -> etree._Element:
        element = etree.Element(ns.qn(ns.HL7V3, local), nsmap=nsmap)
        for key, value in attrs.items():
            element.set(key, value)
        for child in children:
            if isinstance(child, str):
                element.text = (element.text or "") + child
            else:
                element.append(child)
        return element


V = _Maker()
#: interactionId/@root of every HL7 v3 interaction.
INTERACTION_ROOT = "2.16.840.1.113883.1.6"
#: acknowledgementDetail/code/@codeSystem: HL7 v2 Table 0357 (message error condition codes).
ERROR_CODE_SYSTEM = "2.16.840.1.113883.12.357"

_NS = {"v3": ns.HL7V3}


def q(local: str) -> str:
    return ns.qn(ns.HL7V3, local)


def xpath(el: etree._Element, path: str) -> list[etree._Element]:
    found = el.xpath(path, namespaces=_NS)
    assert isinstance(found, list)
    return [e for e in found if isinstance(e, etree._Element)]


def first(el: etree._Element, path: str) -> etree._Element | None:
    found = xpath(el, path)
    return found[0] if found else None


@dataclass(frozen=True, slots=True)
class Ii:
    root: str = ""
    extension: str = ""
    name: str = ""  # assigningAuthorityName

    def element(self, tag: str = "id") -> etree._Element:
        attrs = {
            k: v
            for k, v in (
                ("root", self.root),
                ("extension", self.extension),
                ("assigningAuthorityName", self.name),
            )
            if v
        }
        return V.make(tag, (), attrs or {"nullFlavor": "UNK"}, None)


def ii(el: etree._Element | None) -> Ii:
    if el is None:
        return Ii()
    return Ii(el.get("root", ""), el.get("extension", ""), el.get("assigningAuthorityName", ""))


def raw_id(el: etree._Element, path: str) -> RawId | None:
    """An identifier (II) as a :class:`RawId`; None for a nullFlavor without a value."""
    value = ii(el)
    if not value.extension and el.get("nullFlavor"):
        return None
    return RawId(
        value=value.extension,
        namespace=value.name,
        universal_id=value.root,
        universal_id_type="ISO" if value.root else "",
        where=Where(id=path, authority=path),
    )


def element_path(el: etree._Element, root: etree._Element) -> str:
    """An XPath naming ``el`` from the interaction element ``root`` (``/PRPA_IN201301UV02/.../id[2]``)."""
    steps = []
    node: etree._Element | None = el
    while node is not None:
        local = etree.QName(node).localname
        parent = node.getparent()
        if parent is not None and node is not root:
            same = [c for c in parent if isinstance(c.tag, str) and etree.QName(c).localname == local]
            if len(same) > 1:
                local += f"[{same.index(node) + 1}]"
        steps.append(local)
        if node is root:
            break
        node = parent
    return "/" + "/".join(reversed(steps))


@dataclass(frozen=True, slots=True)
class Wrapper:
    """The transmission wrapper of a request."""

    interaction: str
    id: Ii
    sender: tuple[Ii, ...]
    receiver: tuple[Ii, ...]
    processing_code: str


def read_wrapper(body: etree._Element, expected: str) -> Wrapper:
    """The wrapper of ``body``; a Sender fault when the body is not the ``expected`` interaction."""
    if body.tag != q(expected):
        raise SoapFault(
            FaultCode.SENDER,
            f"the SOAP body must be an HL7 v3 {expected} (urn:hl7-org:v3), not {etree.QName(body).localname}",
        )
    processing = first(body, "v3:processingCode")
    return Wrapper(
        interaction=expected,
        id=ii(first(body, "v3:id")),
        sender=tuple(ii(e) for e in xpath(body, "v3:sender/v3:device/v3:id")),
        receiver=tuple(ii(e) for e in xpath(body, "v3:receiver/v3:device/v3:id")),
        processing_code=processing.get("code", "") if processing is not None else "",
    )


def _device(type_tag: str, type_code: str, ids: tuple[Ii, ...]) -> etree._Element:
    return V(
        type_tag,
        V.device(*[i.element() for i in (ids or (Ii(),))], classCode="DEV", determinerCode="INSTANCE"),
        typeCode=type_code,
    )


def ack_details(failure: Hl7Error | None) -> list[etree._Element]:
    if failure is None:
        return []
    details = []
    for p in failure.problems:
        children = [
            V.code(code=p.code.value, codeSystem=ERROR_CODE_SYSTEM, displayName=p.code.display),
            V.text(p.text),
        ]
        if p.location:
            children.append(V.location(p.location))
        details.append(V.acknowledgementDetail(*children, typeCode="E"))
    return details


def reply(
    interaction: str, request: Wrapper, failure: Hl7Error | None, *rest: etree._Element
) -> etree._Element:
    """A reply (``interaction``) to ``request``: wrapper, acknowledgement, then ``rest``."""
    code = failure.ack if failure is not None else AckCode.ACCEPT
    processing = request.processing_code if request.processing_code in ("P", "T", "D") else "P"
    return V(
        interaction,
        V.id(root=str(uuid.uuid4())),
        V.creationTime(value=datetime.now(UTC).strftime("%Y%m%d%H%M%S")),
        V.interactionId(root=INTERACTION_ROOT, extension=interaction),
        V.processingCode(code=processing),
        V.processingModeCode(code="T"),
        V.acceptAckCode(code="NE"),
        _device("receiver", "RCV", request.sender),
        _device("sender", "SND", request.receiver),
        V.acknowledgement(
            V.typeCode(code=code.value),
            V.targetMessage(request.id.element()),
            *ack_details(failure),
        ),
        *rest,
        ITSVersion="XML_1.0",
    )
