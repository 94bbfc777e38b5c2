"""SOAP 1.2 envelopes with WS-Addressing 1.0 headers: reading requests, writing replies and faults.

References: SOAP 1.2 Part 1 (2.6 processing model, 5 envelope, 5.4 faults), WS-Addressing 1.0 Core
(3: message addressing properties) and SOAP Binding (2.5 headers, 6 faults), ITI TF-2 Appendix V
(V.3.2: every IHE web-service request carries wsa:Action and wsa:MessageID, synchronous replies go
back on the HTTP response, so ReplyTo is anonymous).

Reading is two steps so that a fault about a header can still carry wsa:RelatesTo:
:func:`parse_envelope` checks the XML and the envelope structure and notes the request's MessageID,
:func:`read_addressing` applies the mustUnderstand rule and reads the WS-Addressing headers.
XML is parsed by the hardened parser (:func:`xds_hub.security.xml.parse_fast`): no DTD (a DTD is a
Sender fault), no entity expansion, no network, at most two million elements, libxml2's default
size and depth limits (``huge_tree`` off).
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from lxml import etree

from xds_hub import ns
from xds_hub.errors import FaultSubcode, ParseError, SoapFault
from xds_hub.security.xml import XmlLimits, parse_fast
from xds_hub.soap import faults
from xds_hub.soap.faults import DetailedFault, fault_action

ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"
NONE_ADDRESS = "http://www.w3.org/2005/08/addressing/none"
ROLE_NEXT = "http://www.w3.org/2003/05/soap-envelope/role/next"
ROLE_NONE = "http://www.w3.org/2003/05/soap-envelope/role/none"
ROLE_ULTIMATE_RECEIVER = "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver"
#: The roles the hub plays (SOAP 1.2 Part 1, 2.2): header blocks for other roles are not for it.
OUR_ROLES = frozenset({"", ROLE_NEXT, ROLE_ULTIMATE_RECEIVER})

_ENVELOPE = ns.qn(ns.SOAP12, "Envelope")
_HEADER = ns.qn(ns.SOAP12, "Header")
_BODY = ns.qn(ns.SOAP12, "Body")
_MUST_UNDERSTAND = ns.qn(ns.SOAP12, "mustUnderstand")
_ROLE = ns.qn(ns.SOAP12, "role")
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})

_ACTION = ns.qn(ns.WSA, "Action")
_MESSAGE_ID = ns.qn(ns.WSA, "MessageID")
_TO = ns.qn(ns.WSA, "To")
_REPLY_TO = ns.qn(ns.WSA, "ReplyTo")
_FAULT_TO = ns.qn(ns.WSA, "FaultTo")
_FROM = ns.qn(ns.WSA, "From")
_RELATES_TO = ns.qn(ns.WSA, "RelatesTo")
_ADDRESS = ns.qn(ns.WSA, "Address")
_REFERENCE_PARAMETERS = ns.qn(ns.WSA, "ReferenceParameters")
_IS_REFERENCE_PARAMETER = ns.qn(ns.WSA, "IsReferenceParameter")

#: Header blocks the hub processes, so mustUnderstand="true" on them is honoured.
UNDERSTOOD: frozenset[str] = frozenset({_ACTION, _MESSAGE_ID, _TO, _REPLY_TO, _FAULT_TO, _FROM, _RELATES_TO})
#: Message addressing headers that may appear at most once (WS-Addr Core 3.2).
_SINGLE = (_ACTION, _MESSAGE_ID, _TO, _REPLY_TO, _FAULT_TO, _FROM)

#: Prefixes declared on every envelope the hub writes (fault subcodes are ``wsa:`` QNames).
_OUT_NSMAP = {"soap": ns.SOAP12, "wsa": ns.WSA}
#: ... and on a fault whose subcode is a ``wsse:`` QName (WS-Security 1.1, 12: a refused requester).
_WSSE_NSMAP = {**_OUT_NSMAP, "wsse": ns.WSSE}


def _fault_nsmap(fault: SoapFault) -> dict[str, str]:
    subcodes = (fault.subcode, getattr(fault, "subsubcode", None))
    return _WSSE_NSMAP if any(s is not None and s.startswith("wsse:") for s in subcodes) else _OUT_NSMAP


#: Limits on an envelope (the HTTP edge bounds its bytes first): two million elements (a million
#: empty header elements is still a message the hub answers, in bounded time: see
#: tests/test_reliability_hostile.py); depth is libxml2's 256 levels
#: (:func:`xds_hub.security.xml.parse_fast`).
ENVELOPE_LIMITS = XmlLimits(max_bytes=2**62, max_elements=2_000_000)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A structurally valid SOAP 1.2 envelope whose headers are not processed yet."""

    root: etree._Element
    headers: tuple[etree._Element, ...]
    #: The single child element of soap:Body.
    body: etree._Element
    #: The request's wsa:MessageID as written (best effort, before any header check).
    message_id: str | None


@dataclass(frozen=True, slots=True)
class Addressing:
    """The WS-Addressing message addressing properties of a request."""

    action: str
    message_id: str | None = None
    to: str | None = None
    #: The [reply endpoint] address; None when wsa:ReplyTo is absent (anonymous by default).
    reply_to: str | None = None
    relates_to: tuple[str, ...] = ()
    #: wsa:ReplyTo/wsa:ReferenceParameters children, echoed as headers of the reply (SOAP Binding 2.5).
    reference_parameters: tuple[etree._Element, ...] = ()


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [child for child in parent if isinstance(child.tag, str)]


def _text(element: etree._Element) -> str:
    return (element.text or "").strip()


def parse_envelope(data: bytes) -> Envelope:
    """Parse ``data`` as a SOAP 1.2 envelope; raises SoapFault (Sender / VersionMismatch)."""
    if not data.strip():
        raise faults.sender("the HTTP request has no SOAP envelope (empty body)")
    try:
        root = parse_fast(data, ENVELOPE_LIMITS)
    except ParseError as exc:
        why = str(exc)
        if "DOCTYPE" in why:
            raise faults.sender("a SOAP message must not contain a document type declaration") from None
        hint = ""
        if "huge" in why.lower():
            hint = " (inline base64 content over about 7 MB must be sent as an MTOM/XOP attachment)"
        raise faults.sender(f"the SOAP message is not accepted: {why}{hint}") from None
    if any(isinstance(n, etree._ProcessingInstruction) for n in root.itersiblings(preceding=True)) or any(
        True for _ in root.iter(etree.PI)
    ):
        raise faults.sender("a SOAP message must not contain processing instructions")
    if root.tag != _ENVELOPE:
        raise faults.version_mismatch(str(root.tag))
    children = _elements(root)
    header = children[0] if children and children[0].tag == _HEADER else None
    rest = children[1:] if header is not None else children
    if not rest or rest[0].tag != _BODY:
        raise faults.sender("the SOAP envelope has no soap:Body")
    if len(rest) > 1:
        raise faults.sender(f"unexpected element {rest[1].tag} after soap:Body")
    body_children = _elements(rest[0])
    if len(body_children) != 1:
        raise faults.sender(f"soap:Body must hold exactly one element, found {len(body_children)}")
    headers = tuple(_elements(header)) if header is not None else ()
    message_id = next((_text(h) for h in headers if h.tag == _MESSAGE_ID), None)
    return Envelope(root=root, headers=headers, body=body_children[0], message_id=message_id or None)


def _targets_us(header: etree._Element) -> bool:
    return (header.get(_ROLE) or "").strip() in OUR_ROLES


def _must_understand(header: etree._Element) -> bool:
    value = header.get(_MUST_UNDERSTAND)
    if value is None:
        return False
    value = value.strip()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise faults.sender(f"soap:mustUnderstand={value!r} on {header.tag} is not an xs:boolean")


def check_must_understand(envelope: Envelope, understood: Collection[str] = UNDERSTOOD) -> None:
    """SOAP 1.2 Part 1, 2.6: fault on any header block for the hub's roles that it must but cannot process."""
    missing = [
        etree.QName(h)
        for h in envelope.headers
        if _targets_us(h) and _must_understand(h) and h.tag not in understood
    ]
    if missing:
        raise faults.must_understand(missing)


def _address(epr: etree._Element) -> str:
    address = epr.find(_ADDRESS)
    if address is None or not _text(address):
        name = etree.QName(epr)
        why = f"{name.localname} has no wsa:Address"
        raise faults.invalid_header(name, FaultSubcode.MISSING_ADDRESS_IN_EPR, why)
    return _text(address)


def read_addressing(envelope: Envelope, understood: Collection[str] = UNDERSTOOD) -> Addressing:
    """Process the header blocks: mustUnderstand first, then the WS-Addressing 1.0 headers.

    Raises the WS-Addressing faults of SOAP Binding 6.4: a missing wsa:Action or wsa:MessageID is
    MessageAddressingHeaderRequired; a repeated header is InvalidCardinality; a non-anonymous
    ReplyTo/FaultTo is OnlyAnonymousAddressSupported (the hub answers on the HTTP response only).
    """
    check_must_understand(envelope, understood)
    mine = [h for h in envelope.headers if h.tag in UNDERSTOOD and _targets_us(h)]
    found: dict[str, list[etree._Element]] = {}
    for h in mine:
        found.setdefault(str(h.tag), []).append(h)
    for tag in _SINGLE:
        if len(found.get(tag, ())) > 1:
            raise faults.invalid_header(
                etree.QName(tag), FaultSubcode.INVALID_CARDINALITY, f"{len(found[tag])} {tag} headers"
            )

    def single(tag: str) -> etree._Element | None:
        return found[tag][0] if tag in found else None

    action_el = single(_ACTION)
    if action_el is None:
        raise faults.header_required(etree.QName(_ACTION))
    action = _text(action_el)
    if not action:
        raise faults.invalid_header(etree.QName(_ACTION), None, "wsa:Action is empty")
    message_el = single(_MESSAGE_ID)
    if message_el is None or not _text(message_el):
        raise faults.header_required(etree.QName(_MESSAGE_ID))
    reply_to = None
    reference_parameters: tuple[etree._Element, ...] = ()
    reply_el = single(_REPLY_TO)
    if reply_el is not None:
        reply_to = _address(reply_el)
        if reply_to != ANONYMOUS:
            raise faults.invalid_header(
                etree.QName(_REPLY_TO),
                FaultSubcode.ONLY_ANONYMOUS_ADDRESS_SUPPORTED,
                f"replies go back on the HTTP response; wsa:ReplyTo must be {ANONYMOUS}",
            )
        params = reply_el.find(_REFERENCE_PARAMETERS)
        if params is not None:
            reference_parameters = tuple(_elements(params))
    fault_el = single(_FAULT_TO)
    if fault_el is not None and _address(fault_el) not in (ANONYMOUS, NONE_ADDRESS):
        raise faults.invalid_header(
            etree.QName(_FAULT_TO),
            FaultSubcode.ONLY_ANONYMOUS_ADDRESS_SUPPORTED,
            f"faults go back on the HTTP response; wsa:FaultTo must be {ANONYMOUS}",
        )
    to_el = single(_TO)
    return Addressing(
        action=action,
        message_id=_text(message_el),
        to=_text(to_el) if to_el is not None else None,
        reply_to=reply_to,
        relates_to=tuple(_text(r) for r in found.get(_RELATES_TO, ())),
        reference_parameters=reference_parameters,
    )


def check_action_parameter(action: str, http_action: str | None) -> None:
    """The ``action`` parameter of the HTTP Content-Type (SOAP 1.2 Part 2, 7.1.1; RFC 3902) must
    equal wsa:Action when both are present (WS-Addr SOAP Binding 6.4.1 wsa:ActionMismatch)."""
    if http_action and http_action.strip() and http_action.strip() != action:
        raise faults.invalid_header(
            etree.QName(_ACTION),
            FaultSubcode.ACTION_MISMATCH,
            f"the HTTP action parameter {http_action.strip()!r} differs from wsa:Action {action!r}",
        )


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def new_message_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


#: Characters XML 1.0 does not allow (2.2 Char); a fault reason may quote any input.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` with each character XML cannot carry replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def _envelope(
    action: str,
    relates_to: str | None,
    reference_parameters: Iterable[etree._Element] = (),
    extra_headers: Sequence[etree._Element] = (),
    nsmap: dict[str, str] = _OUT_NSMAP,
) -> tuple[etree._Element, etree._Element]:
    envelope = etree.Element(_ENVELOPE, nsmap=nsmap)
    header = etree.SubElement(envelope, _HEADER)
    action_el = etree.SubElement(header, _ACTION)
    action_el.set(_MUST_UNDERSTAND, "true")
    action_el.text = action
    etree.SubElement(header, _MESSAGE_ID).text = new_message_id()
    if relates_to:
        etree.SubElement(header, _RELATES_TO).text = relates_to
    etree.SubElement(header, _TO).text = ANONYMOUS
    for param in reference_parameters:
        echoed = copy.deepcopy(param)
        echoed.set(_IS_REFERENCE_PARAMETER, "true")
        header.append(echoed)
    header.extend(extra_headers)
    body = etree.SubElement(envelope, _BODY)
    return envelope, body


def _serialize(envelope: etree._Element) -> bytes:
    return etree.tostring(envelope, encoding="UTF-8", xml_declaration=True)


_EMPTY_BODY = b"<soap:Body/>"


def render_response(
    payload: etree._Element, action: str, request: Addressing | None, payload_xml: bytes | None = None
) -> bytes:
    """The reply envelope: wsa:Action ``action``, a fresh wsa:MessageID, wsa:RelatesTo the request's
    MessageID, wsa:To anonymous, the ReplyTo reference parameters, and ``payload`` in soap:Body.

    With ``payload_xml`` (``payload`` already serialised), those bytes go in soap:Body as they
    are: the envelope is serialised empty and the payload spliced in, not parsed or copied
    into a tree (the same bytes as serialising the whole tree)."""
    envelope, body = _envelope(
        action,
        request.message_id if request else None,
        request.reference_parameters if request else (),
    )
    if payload_xml is None:
        body.append(payload)
        return _serialize(envelope)
    head, empty, tail = _serialize(envelope).rpartition(_EMPTY_BODY)
    if not empty:  # (not expected: lxml writes an empty element as <x/>)
        body.append(etree.fromstring(payload_xml))
        return _serialize(envelope)
    return b"".join((head, b"<soap:Body>", payload_xml, b"</soap:Body>", tail))


def _code(parent: etree._Element, tag: str, value: str, subcodes: Sequence[str]) -> None:
    code = etree.SubElement(parent, ns.qn(ns.SOAP12, tag))
    etree.SubElement(code, ns.qn(ns.SOAP12, "Value")).text = value
    if subcodes:
        _code(code, "Subcode", subcodes[0], subcodes[1:])


def fault_element(fault: SoapFault) -> etree._Element:
    """The soap:Fault element of ``fault`` (Code/Value, Subcode chain, Reason/Text, Detail)."""
    element = etree.Element(ns.qn(ns.SOAP12, "Fault"), nsmap=_fault_nsmap(fault))
    subcodes = [str(s) for s in (fault.subcode, getattr(fault, "subsubcode", None)) if s is not None]
    _code(element, "Code", f"soap:{fault.code.value}", subcodes)
    reason = etree.SubElement(element, ns.qn(ns.SOAP12, "Reason"))
    text = etree.SubElement(reason, ns.qn(ns.SOAP12, "Text"))
    text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    text.text = xml_text(fault.reason)
    detail = fault.detail if isinstance(fault, DetailedFault) else ()
    if detail:
        detail_el = etree.SubElement(element, ns.qn(ns.SOAP12, "Detail"))
        detail_el.extend(copy.deepcopy(d) for d in detail)
    return element


def render_fault(
    fault: SoapFault,
    relates_to: str | None = None,
    reference_parameters: Iterable[etree._Element] = (),
) -> bytes:
    """The fault envelope for ``fault``, related to the request ``relates_to`` when it is known."""
    if isinstance(fault, DetailedFault) and fault.soap11:
        return _render_soap11_fault(fault)
    extra = [copy.deepcopy(h) for h in fault.headers] if isinstance(fault, DetailedFault) else []
    envelope, body = _envelope(
        fault_action(fault), relates_to, reference_parameters, extra, _fault_nsmap(fault)
    )
    body.append(fault_element(fault))
    return _serialize(envelope)


def _render_soap11_fault(fault: DetailedFault) -> bytes:
    """A SOAP 1.1 Fault (SOAP 1.1, 4.4) with the SOAP 1.2 Upgrade header block, for SOAP 1.1 senders."""
    envelope = etree.Element(ns.qn(ns.SOAP11, "Envelope"), nsmap={"soap11": ns.SOAP11})
    header = etree.SubElement(envelope, ns.qn(ns.SOAP11, "Header"))
    header.extend(copy.deepcopy(h) for h in fault.headers)
    body = etree.SubElement(envelope, ns.qn(ns.SOAP11, "Body"))
    element = etree.SubElement(body, ns.qn(ns.SOAP11, "Fault"))
    etree.SubElement(element, "faultcode").text = f"soap11:{fault.code.value}"
    etree.SubElement(element, "faultstring").text = xml_text(fault.reason)
    return _serialize(envelope)
