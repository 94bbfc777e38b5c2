"""``xds-hub validate FILE``: check one message the way the hub would, without a hub (issue 4).

The kind of message is detected from the file: a raw HTTP capture (request line and headers,
MTOM or plain SOAP), a SOAP envelope, a bare payload element, an HL7 v2 message or a DICOM file.
Each kind is checked by the hub's own code, so the problems listed are exactly what the hub
would answer, each with the rule it breaks and the error code:

==========================================  ==================================================================
kind                                        checked by
==========================================  ==================================================================
SOAP envelope                               :func:`xds_hub.soap.envelope.parse_envelope` (SOAP faults)
ITI-41 ProvideAndRegisterDocumentSetRequest :func:`xds_hub.ebxml.parse_provide_and_register`,
                                            :func:`xds_hub.repository.iti41.attach_contents` (the documents'
                                            hash and size, XDSMissingDocument...), then
                                            :func:`xds_hub.domain.validate.validate_submission`
ITI-42 SubmitObjectsRequest                 :func:`xds_hub.ebxml.parse_submit_objects_request`,
                                            :func:`xds_hub.domain.validate.validate_submission`
ITI-18 AdhocQueryRequest                    :func:`xds_hub.registry.iti18.read_adhoc_query`,
                                            :func:`xds_hub.domain.query.parse_request`
ITI-43 RetrieveDocumentSetRequest           :func:`xds_hub.repository.iti43.parse_retrieve_request`
ITI-44 / ITI-45 (HL7 v3)                    :func:`xds_hub.pix.iti44.parse_feed`,
                                            :func:`xds_hub.pix.iti45.parse_query`
HL7 v2 (ITI-8 ADT, ITI-9 QBP^Q23)           :func:`xds_hub.pix.hl7v2.parse`,
                                            :func:`xds_hub.pix.service.check_msh`, the ``prepare``
RAD-69 RetrieveImagingDocumentSetRequest    :func:`xds_hub.imaging.rad69.parse_request`
KOS manifest (DICOM file)                   :func:`xds_hub.imaging.kos.parse_kos`, ``kos_problems``
==========================================  ==================================================================

What needs the registry's database (is the patient known, is a uniqueId already registered) is not
checked here, nor a KOS against the DocumentEntry that would carry it (that needs both).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from lxml import etree

from xds_hub import ns
from xds_hub.config import AffinityDomain
from xds_hub.conformance.wire import split_multipart
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.errors import Hl7Error, ParseError, Problem, SoapFault, XdsError

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: the error code the hub would return, the rule broken, and where."""

    code: str
    rule: str
    location: str = ""
    severity: str = "error"


@dataclass
class Report:
    kind: str
    findings: list[Finding] = field(default_factory=list)
    #: True when the kind is recognised but cannot be checked (yet).
    unchecked: str = ""

    @property
    def valid(self) -> bool:
        return not self.unchecked and not any(f.severity == "error" for f in self.findings)


@dataclass
class _Message:
    """What was read from the file: the XML payload (if any), its MTOM parts, the SOAP action."""

    payload: etree._Element | None = None
    parts: dict[str, bytes] = field(default_factory=dict)
    action: str = ""
    text: str = ""
    findings: list[Finding] = field(default_factory=list)


def _from_problems(problems: tuple[Problem, ...] | list[Problem]) -> list[Finding]:
    return [
        Finding(str(p.code), p.context, p.location, "warning" if p.severity.name == "WARNING" else "error")
        for p in problems
    ]


def _from_hl7(exc: Hl7Error) -> list[Finding]:
    return [Finding(f"HL7 {p.code} ({exc.ack})", p.text, p.location) for p in exc.problems]


def _fault(exc: SoapFault) -> Finding:
    sub = f" {exc.subcode}" if exc.subcode else ""
    return Finding(f"SOAP Fault {exc.code}{sub}", exc.reason)


# ------------------------------------------------------------------------------------------------
# Reading the file
# ------------------------------------------------------------------------------------------------


def _split_http(data: bytes) -> tuple[dict[str, str], bytes] | None:
    """Headers and body of a raw HTTP request/response capture, or None if ``data`` is not one.

    A bare multipart body (starting with its ``--boundary`` line) is read as one too.
    """
    if data.startswith(b"--"):
        boundary = data.split(b"\n", 1)[0].strip()[2:].decode("latin-1")
        return {"content-type": f'multipart/related; boundary="{boundary}"'}, data
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    lines = head.decode("latin-1").splitlines()
    if not sep or not lines:
        return None
    request_line = lines[0].startswith(("POST ", "PUT ", "HTTP/"))
    if not request_line and "content-type:" not in head.decode("latin-1").lower():
        return None
    headers: dict[str, str] = {}
    for line in lines[1:] if request_line else lines:
        key, colon, value = line.partition(":")
        if colon:
            headers[key.strip().lower()] = value.strip()
    return headers, body


def _param(content_type: str, name: str) -> str:
    for piece in content_type.split(";")[1:]:
        key, _, value = piece.strip().partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"')
    return ""


def _read_xml(data: bytes, message: _Message) -> None:
    from xds_hub.soap.envelope import parse_envelope

    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        message.findings.append(Finding("SOAP Fault Sender", f"not well-formed XML: {exc}"))
        return
    if etree.QName(root).localname == "Envelope":
        try:
            envelope = parse_envelope(data)
        except SoapFault as exc:
            message.findings.append(_fault(exc))
            return
        message.payload = envelope.body
        action = envelope.root.find(f"{{{ns.SOAP12}}}Header/{{{ns.WSA}}}Action")
        message.action = (action.text or "").strip() if action is not None else ""
        return
    message.payload = root


def read_message(data: bytes) -> _Message:
    """The message a file holds (HTTP capture, MTOM, SOAP, bare XML or HL7 v2 text)."""
    message = _Message()
    http = _split_http(data)
    if http is not None:
        headers, data = http
        content_type = headers.get("content-type", "")
        if content_type.lower().startswith("multipart/"):
            parts = split_multipart(data, _param(content_type, "boundary"))
            if not parts:
                message.findings.append(Finding("SOAP Fault Sender", "multipart body without readable parts"))
                return message
            start = _param(content_type, "start").strip("<>")
            root = next((p for p in parts if p.content_id == start), parts[0])
            message.parts = {p.content_id: p.data for p in parts if p is not root}
            data = root.data
    stripped = data.lstrip(b"\x0b \t\r\n\xef\xbb\xbf")
    if stripped.startswith(b"MSH"):
        message.text = stripped.decode("utf-8", errors="replace").rstrip("\x1c\r\n")
        return message
    _read_xml(data, message)
    return message


# ------------------------------------------------------------------------------------------------
# The checks, one per kind
# ------------------------------------------------------------------------------------------------


def _document_bytes(message: _Message, payload: etree._Element) -> dict[str, bytes]:
    """Document/@id -> content: MTOM parts by xop:Include, or inline base64."""
    from urllib.parse import unquote

    out: dict[str, bytes] = {}
    for doc in payload.iterchildren(ns.qn(ns.XDSB, "Document")):
        doc_id = doc.get("id", "")
        include = doc.find(ns.qn(ns.XOP, "Include"))
        if include is not None:
            href = unquote(include.get("href", ""))
            cid = href[4:] if href.lower().startswith("cid:") else href
            if cid in message.parts:
                out[doc_id] = message.parts[cid]
        else:
            try:
                out[doc_id] = base64.b64decode("".join((doc.text or "").split()), validate=True)
            except ValueError:
                continue
    return out


def _check_iti41(message: _Message, domain: AffinityDomain) -> list[Finding]:
    from xds_hub.domain.validate import validate_submission
    from xds_hub.ebxml import parse_provide_and_register
    from xds_hub.repository.iti41 import attach_contents
    from xds_hub.storage.ports import BlobInfo

    assert message.payload is not None
    try:
        submission = parse_provide_and_register(message.payload)
    except XdsError as exc:
        return _from_problems(exc.problems)
    contents = {
        doc_id: BlobInfo(f"file:{doc_id}", hashlib.sha1(data).hexdigest(), len(data))
        for doc_id, data in _document_bytes(message, message.payload).items()
        if doc_id in {d.entry_uuid for d in submission.documents}
    }
    findings: list[Finding] = []
    try:
        attached = attach_contents(submission, contents, domain.repository_unique_id)
    except XdsError as exc:
        findings += _from_problems(exc.problems)
        attached = replace(
            submission,
            documents=tuple(
                replace(
                    d,
                    hash=contents[d.entry_uuid].sha1,
                    size=contents[d.entry_uuid].size,
                    repository_unique_id=domain.repository_unique_id,
                )
                if d.entry_uuid in contents
                else d
                for d in submission.documents
            ),
        )
    try:
        validate_submission(attached, domain, for_repository=True)
    except XdsError as exc:
        findings += [f for f in _from_problems(exc.problems) if f not in findings]
    return findings


def _check_iti42(message: _Message, domain: AffinityDomain) -> list[Finding]:
    from xds_hub.domain.validate import validate_submission
    from xds_hub.ebxml import parse_submit_objects_request

    assert message.payload is not None
    try:
        validate_submission(parse_submit_objects_request(message.payload), domain, for_repository=False)
    except XdsError as exc:
        return _from_problems(exc.problems)
    return []


def _check_iti18(message: _Message, domain: AffinityDomain) -> list[Finding]:
    from xds_hub.domain.query import parse_request
    from xds_hub.registry.iti18 import read_adhoc_query

    assert message.payload is not None
    try:
        parse_request(read_adhoc_query(message.payload))
    except XdsError as exc:
        return _from_problems(exc.problems)
    return []


def _check_iti43(message: _Message, domain: AffinityDomain) -> list[Finding]:
    from xds_hub.repository.iti43 import parse_retrieve_request

    assert message.payload is not None
    try:
        parse_retrieve_request(message.payload)
    except SoapFault as exc:
        return [_fault(exc)]
    return []


def _check_iti44(message: _Message, domain: AffinityDomain) -> list[Finding]:
    from xds_hub.pix.iti44 import INTERACTIONS, parse_feed

    assert message.payload is not None
    interaction = etree.QName(message.payload).localname
    kind = next((k for name, k in INTERACTIONS.values() if name == interaction), None)
    if kind is None:
        return [Finding("SOAP Fault Sender", f"{interaction} is not an ITI-44 interaction")]
    try:
        parse_feed(message.payload, interaction, kind)
    except Hl7Error as exc:
        return _from_hl7(exc)
    return []


def _check_iti45(message: _Message, domain: AffinityDomain) -> list[Finding]:
    from xds_hub.pix.iti45 import parse_query

    assert message.payload is not None
    try:
        parse_query(message.payload)
    except Hl7Error as exc:
        return _from_hl7(exc)
    return []


def _check_rad69(message: _Message, domain: AffinityDomain) -> list[Finding]:
    from xds_hub.errors import ErrorCode
    from xds_hub.imaging.rad69 import RequestError, parse_request

    assert message.payload is not None
    try:
        parse_request(message.payload)
    except SoapFault as exc:
        return [_fault(exc)]
    except RequestError as exc:
        return [Finding(str(ErrorCode.XDSI_REQUEST_ERROR), str(exc))]
    return []


def _check_kos(data: bytes) -> list[Finding]:
    """A KOS manifest file, as the Document Repository checks it on RAD-68 (RAD TF-3 4.68.4.1.3)."""
    from xds_hub.errors import ErrorCode
    from xds_hub.imaging.kos import KosError, kos_problems, parse_kos

    code = str(ErrorCode.REPOSITORY_METADATA_ERROR)
    try:
        kos = parse_kos(data)
    except KosError as exc:
        return [Finding(code, str(exc))]
    return [Finding(code, f"KOS manifest: {text}") for text in kos_problems(kos)]


def _check_v2(message: _Message) -> tuple[str, list[Finding]]:
    from xds_hub.pix.hl7v2 import parse
    from xds_hub.pix.service import check_msh

    try:
        msg = parse(message.text)
    except ParseError as exc:
        return "HL7 v2 message", [Finding("HL7 100 (AR)", str(exc), "MSH")]
    try:
        tx = check_msh(msg)
    except Hl7Error as exc:
        return "HL7 v2 message", _from_hl7(exc)
    try:
        tx.prepare(msg)
    except Hl7Error as exc:
        return f"{tx.name} HL7 v2 {msg.message_type}", _from_hl7(exc)
    return f"{tx.name} HL7 v2 {msg.message_type}", []


Checker = Callable[[_Message, AffinityDomain], list[Finding]]

#: Payload element (Clark name) -> (kind shown, checker or None when not checkable yet).
PAYLOADS: dict[str, tuple[str, Checker | None]] = {
    ns.qn(ns.XDSB, "ProvideAndRegisterDocumentSetRequest"): (
        "ITI-41 Provide and Register Document Set-b",
        _check_iti41,
    ),
    ns.qn(ns.LCM, "SubmitObjectsRequest"): ("ITI-42 Register Document Set-b", _check_iti42),
    ns.qn(ns.QUERY, "AdhocQueryRequest"): ("ITI-18 Registry Stored Query", _check_iti18),
    ns.qn(ns.XDSB, "RetrieveDocumentSetRequest"): ("ITI-43 Retrieve Document Set", _check_iti43),
    ns.qn(ns.HL7V3, "PRPA_IN201301UV02"): ("ITI-44 Patient Identity Feed (add)", _check_iti44),
    ns.qn(ns.HL7V3, "PRPA_IN201302UV02"): ("ITI-44 Patient Identity Feed (revise)", _check_iti44),
    ns.qn(ns.HL7V3, "PRPA_IN201304UV02"): ("ITI-44 Patient Identity Feed (merge)", _check_iti44),
    ns.qn(ns.HL7V3, "PRPA_IN201309UV02"): ("ITI-45 PIXV3 Query", _check_iti45),
    ns.qn(ns.XDSI, "RetrieveImagingDocumentSetRequest"): (
        "RAD-69 Retrieve Imaging Document Set",
        _check_rad69,
    ),
}

_ACTIONS = {
    SoapAction.ITI41: ns.qn(ns.XDSB, "ProvideAndRegisterDocumentSetRequest"),
    SoapAction.ITI42: ns.qn(ns.LCM, "SubmitObjectsRequest"),
    SoapAction.ITI18: ns.qn(ns.QUERY, "AdhocQueryRequest"),
    SoapAction.ITI43: ns.qn(ns.XDSB, "RetrieveDocumentSetRequest"),
}


def validate_bytes(data: bytes, domain: AffinityDomain) -> Report:
    """Detect what ``data`` is and check it with the hub's code."""
    if len(data) >= 132 and data[128:132] == b"DICM":
        return Report("RAD-68 KOS manifest (DICOM file)", _check_kos(data))
    message = read_message(data)
    if message.text:
        kind, findings = _check_v2(message)
        return Report(kind, findings)
    if message.payload is None:
        return Report(
            "unreadable message", message.findings or [Finding("SOAP Fault Sender", "no message found")]
        )
    tag = str(message.payload.tag)
    kind, checker = PAYLOADS.get(tag, (f"unknown message {tag}", None))
    report = Report(kind, list(message.findings))
    expected = _ACTIONS.get(message.action)  # type: ignore[call-overload]
    if message.action and expected is not None and expected != tag:
        report.findings.append(
            Finding("SOAP Fault Sender", f"wsa:Action {message.action} does not fit {tag}")
        )
    if checker is None:
        report.unchecked = (
            "this kind of message cannot be checked yet"
            if tag in PAYLOADS
            else ("not a message of a transaction the hub serves")
        )
        return report
    try:
        report.findings += checker(message, domain)
    except Exception as exc:  # a hub parser raising anything else is a hub bug: say so, do not crash
        report.findings.append(
            Finding("internal error", f"the hub's checker raised {type(exc).__name__}: {exc}")
        )
    return report
