"""The SOAP faults the edge raises, with what SOAP 1.2 and WS-Addressing put around them.

A plain :class:`xds_hub.errors.SoapFault` carries Code, Subcode and Reason.  The faults defined by
WS-Addressing 1.0 SOAP Binding 6.4 also carry a [Subsubcode] and a [Details] element, and are sent
with their own [action]; a MustUnderstand fault names the header blocks it did not understand in
``env:NotUnderstood`` header blocks (SOAP 1.2 Part 1, 5.4.8); a VersionMismatch fault lists the
envelope versions the hub supports in an ``env:Upgrade`` header block (5.4.7).
:class:`DetailedFault` holds those extras; the factories below build each fault the edge raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lxml import etree

from xds_hub import ns
from xds_hub.errors import FaultCode, FaultSubcode, SoapFault

#: [action] of a SOAP fault that WS-Addressing does not define (WS-Addr SOAP Binding 6.2).
SOAP_FAULT_ACTION = "http://www.w3.org/2005/08/addressing/soap/fault"
#: [action] of the faults defined by WS-Addressing (WS-Addr SOAP Binding 6.4).
WSA_FAULT_ACTION = "http://www.w3.org/2005/08/addressing/fault"


class DetailedFault(SoapFault):
    """A SOAP fault with the optional parts of a SOAP 1.2 Fault that a plain SoapFault lacks."""

    def __init__(
        self,
        code: FaultCode,
        reason: str,
        subcode: FaultSubcode | None = None,
        *,
        subsubcode: FaultSubcode | None = None,
        detail: Sequence[etree._Element] = (),
        headers: Sequence[etree._Element] = (),
        action: str = SOAP_FAULT_ACTION,
        http_status: int | None = None,
        soap11: bool = False,
    ) -> None:
        super().__init__(code, reason, subcode, http_status)
        self.subsubcode = subsubcode
        self.detail = tuple(detail)
        self.headers = tuple(headers)
        self.action = action
        #: Answer with a SOAP 1.1 envelope (only for a SOAP 1.1 request: SOAP 1.2 Part 1, A.1).
        self.soap11 = soap11


def fault_action(fault: SoapFault) -> str:
    """The wsa:Action of the message carrying ``fault``."""
    if isinstance(fault, DetailedFault):
        return fault.action
    if fault.subcode is not None and fault.subcode.startswith("wsa:"):
        return WSA_FAULT_ACTION
    return SOAP_FAULT_ACTION


def _qname_text(element: etree._Element, qname: etree.QName) -> str:
    """``prefix:local`` for ``qname`` with a prefix declared on ``element``."""
    if qname.namespace is None:
        return qname.localname
    for pfx, uri in element.nsmap.items():
        if uri == qname.namespace and pfx:
            return f"{pfx}:{qname.localname}"
    raise ValueError(f"namespace {qname.namespace} is not declared on <{element.tag}>")


def _problem_header_qname(header: etree.QName) -> etree._Element:
    nsmap = {"wsa": ns.WSA}
    if header.namespace and header.namespace != ns.WSA:
        nsmap["h"] = header.namespace
    elem = etree.Element(ns.qn(ns.WSA, "ProblemHeaderQName"), nsmap=nsmap)
    elem.text = _qname_text(elem, header)
    return elem


def wsa_header(local: str) -> etree.QName:
    return etree.QName(ns.WSA, local)


# ---------------------------------------------------------------------------------------------
# SOAP 1.2 Part 1 faults
# ---------------------------------------------------------------------------------------------


def sender(reason: str, http_status: int | None = None) -> SoapFault:
    """env:Sender: the message is malformed or lacks what the hub needs (HTTP 400)."""
    return SoapFault(FaultCode.SENDER, reason, http_status=http_status)


def receiver(reason: str) -> SoapFault:
    """env:Receiver: the hub could not process a good message (HTTP 500)."""
    return SoapFault(FaultCode.RECEIVER, reason)


def version_mismatch(found: str) -> DetailedFault:
    """env:VersionMismatch with the env:Upgrade header block naming SOAP 1.2 (Part 1, 5.4.7).

    A SOAP 1.1 request gets it as a SOAP 1.1 fault, which its sender can read (Part 1, A.1).
    """
    upgrade = etree.Element(ns.qn(ns.SOAP12, "Upgrade"), nsmap={"soap": ns.SOAP12})
    supported = etree.SubElement(upgrade, ns.qn(ns.SOAP12, "SupportedEnvelope"))
    supported.set("qname", _qname_text(upgrade, etree.QName(ns.SOAP12, "Envelope")))
    return DetailedFault(
        FaultCode.VERSION_MISMATCH,
        f"the hub speaks SOAP 1.2 only ({ns.SOAP12}); the message root is {found}",
        headers=[upgrade],
        soap11=found == ns.qn(ns.SOAP11, "Envelope"),
    )


def must_understand(headers: Iterable[etree.QName]) -> DetailedFault:
    """env:MustUnderstand with one env:NotUnderstood header block per header (Part 1, 5.4.8)."""
    blocks = []
    names = []
    for qname in headers:
        nsmap = {"soap": ns.SOAP12}
        if qname.namespace:
            nsmap["h"] = qname.namespace
        block = etree.Element(ns.qn(ns.SOAP12, "NotUnderstood"), nsmap=nsmap)
        block.set("qname", _qname_text(block, qname))
        blocks.append(block)
        names.append(qname.text)
    return DetailedFault(
        FaultCode.MUST_UNDERSTAND,
        "header blocks marked mustUnderstand that the hub does not process: " + ", ".join(names),
        headers=blocks,
    )


# ---------------------------------------------------------------------------------------------
# WS-Addressing 1.0 SOAP Binding 6.4 faults
# ---------------------------------------------------------------------------------------------


def header_required(header: etree.QName) -> DetailedFault:
    """6.4.2 wsa:MessageAddressingHeaderRequired, [Details] the missing header's QName."""
    return DetailedFault(
        FaultCode.SENDER,
        f"A required header representing a Message Addressing Property is not present: {header.localname}",
        FaultSubcode.MESSAGE_ADDRESSING_HEADER_REQUIRED,
        detail=[_problem_header_qname(header)],
        action=WSA_FAULT_ACTION,
    )


def invalid_header(header: etree.QName, subsubcode: FaultSubcode | None, why: str) -> DetailedFault:
    """6.4.1 wsa:InvalidAddressingHeader with an optional [Subsubcode], [Details] the header's QName."""
    return DetailedFault(
        FaultCode.SENDER,
        "A header representing a Message Addressing Property is not valid and the message cannot be "
        f"processed: {why}",
        FaultSubcode.INVALID_ADDRESSING_HEADER,
        subsubcode=subsubcode,
        detail=[_problem_header_qname(header)],
        action=WSA_FAULT_ACTION,
    )


def action_not_supported(action: str, path: str) -> DetailedFault:
    """6.4.4 wsa:ActionNotSupported, [Details] wsa:ProblemAction/wsa:Action."""
    problem = etree.Element(ns.qn(ns.WSA, "ProblemAction"), nsmap={"wsa": ns.WSA})
    etree.SubElement(problem, ns.qn(ns.WSA, "Action")).text = action
    return DetailedFault(
        FaultCode.SENDER,
        f"The [action] cannot be processed at the receiver: {action} is not served at {path}",
        FaultSubcode.ACTION_NOT_SUPPORTED,
        detail=[problem],
        action=WSA_FAULT_ACTION,
    )
