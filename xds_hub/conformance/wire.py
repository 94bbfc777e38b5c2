"""The runner's own wire clients: SOAP 1.2 + WS-Addressing (+ MTOM/XOP) over HTTP, HL7 v2 over MLLP.

Deliberately independent of the hub's SOAP edge (a tester must not share the code it tests):
requests are built with lxml, MTOM (W3C XOP/MTOM, ITI TF-2 Appendix V) is framed and parsed here,
and every request and response is kept byte for byte for the report.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

import requests
from lxml import etree

from xds_hub import ns

ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


@dataclass(frozen=True, slots=True)
class Part:
    """One MIME part to send or received: its Content-ID (no brackets), type and bytes."""

    content_id: str
    content_type: str
    data: bytes


@dataclass
class Exchange:
    """One request and its answer on any wire, as shown in the report."""

    kind: str  # "http", "mllp", "dicom"
    title: str
    request: str
    response: str = ""
    error: str = ""
    elapsed: float = 0.0


@dataclass
class SoapFault:
    code: str
    subcodes: tuple[str, ...]
    reason: str


@dataclass
class SoapResult:
    """What a SOAP call brought back, parsed as far as it goes."""

    exchange: Exchange
    http_status: int = 0
    content_type: str = ""
    body: etree._Element | None = None  # the child of soap:Body
    action: str | None = None
    relates_to: str | None = None
    fault: SoapFault | None = None
    parts: dict[str, Part] = field(default_factory=dict)
    message_id: str = ""
    problem: str = ""  # why the answer could not be read

    def part_for(self, element: etree._Element) -> bytes | None:
        """The bytes an element carries: its xop:Include's part, or its inline base64 text."""
        import base64

        include = element.find(ns.qn(ns.XOP, "Include"))
        if include is not None:
            href = unquote(include.get("href", ""))
            cid = href[4:] if href.lower().startswith("cid:") else href
            part = self.parts.get(cid.strip("<>"))
            return part.data if part else None
        try:
            return base64.b64decode("".join((element.text or "").split()), validate=True)
        except ValueError:
            return None


# ------------------------------------------------------------------------------------------------
# Rendering for the report
# ------------------------------------------------------------------------------------------------

_TEXTUAL = re.compile(r"xml|text|json|hl7|soap", re.IGNORECASE)
#: Binary parts longer than this are shown by size and head only.
_BINARY_SHOWN = 256


def _show_bytes(data: bytes, content_type: str) -> str:
    if _TEXTUAL.search(content_type):
        return data.decode("utf-8", errors="replace")
    import hashlib

    head = data[:_BINARY_SHOWN].hex(" ")
    more = " ..." if len(data) > _BINARY_SHOWN else ""
    return f"[{len(data)} bytes, sha1 {hashlib.sha1(data).hexdigest()}] {head}{more}"


def _pretty(data: bytes) -> str:
    try:
        root = etree.fromstring(data, _PARSER)
        return etree.tostring(root, pretty_print=True, encoding="unicode")
    except etree.XMLSyntaxError:
        return data.decode("utf-8", errors="replace")


def show_http(
    method: str, url: str, headers: Mapping[str, str], body: bytes, status: int | None = None
) -> str:
    lines = [f"{method} {url}" if status is None else f"HTTP {status}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    lines.append("")
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith("multipart/"):
        boundary = _param(content_type, "boundary")
        for part in split_multipart(body, boundary) if boundary else []:
            lines.append(f"--- part <{part.content_id}> {part.content_type}")
            lines.append(
                _pretty(part.data)
                if "xml" in part.content_type
                else _show_bytes(part.data, part.content_type)
            )
        if not boundary:
            lines.append(body.decode("utf-8", errors="replace"))
    elif "xml" in media:
        lines.append(_pretty(body))
    else:
        lines.append(_show_bytes(body, content_type or "text"))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# MTOM framing
# ------------------------------------------------------------------------------------------------


def _param(content_type: str, name: str) -> str:
    m = re.search(rf';\s*{name}\s*=\s*("([^"]*)"|[^;\s]+)', content_type, re.IGNORECASE)
    if not m:
        return ""
    return m.group(2) if m.group(2) is not None else m.group(1)


def split_multipart(body: bytes, boundary: str) -> list[Part]:
    """The parts of a multipart body (RFC 2046), in order; lenient about preamble and epilogue, and
    about bare LF line ends (captures saved by editors)."""
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = body.split(delimiter)
    parts: list[Part] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.lstrip(b" \t")
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk[1:] if chunk.startswith(b"\n") else chunk
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = chunk.partition(b"\n\n")
        if not sep:
            continue
        if content.endswith(b"\r\n"):
            content = content[:-2]
        elif content.endswith(b"\n"):
            content = content[:-1]
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").splitlines():
            key, colon, value = line.partition(":")
            if colon:
                headers[key.strip().lower()] = value.strip()
        cid = headers.get("content-id", "").strip().strip("<>")
        parts.append(Part(unquote(cid), headers.get("content-type", ""), content))
    return parts


def mtom_body(envelope: bytes, parts: Sequence[Part], action: str) -> tuple[bytes, str]:
    """An MTOM/XOP multipart/related body and its Content-Type."""
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    root_id = f"root.{uuid.uuid4().hex}@conformance"
    out = [
        f"--{boundary}\r\n"
        "Content-Type: application/xop+xml; charset=UTF-8; "
        f'type="application/soap+xml"; action="{action}"\r\n'
        "Content-Transfer-Encoding: binary\r\n"
        f"Content-ID: <{root_id}>\r\n\r\n".encode(),
        envelope,
        b"\r\n",
    ]
    for part in parts:
        out.append(
            f"--{boundary}\r\nContent-Type: {part.content_type}\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: <{part.content_id}>\r\n\r\n".encode()
        )
        out.append(part.data)
        out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    content_type = (
        f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; '
        f'start="<{root_id}>"; start-info="application/soap+xml"; action="{action}"'
    )
    return b"".join(out), content_type


# ------------------------------------------------------------------------------------------------
# SOAP
# ------------------------------------------------------------------------------------------------


def envelope(
    action: str,
    to: str,
    payload: etree._Element | None,
    message_id: str,
    *,
    soap_ns: str = ns.SOAP12,
    omit: frozenset[str] = frozenset(),
    must_understand: bool = True,
) -> bytes:
    """A SOAP envelope with the WS-Addressing headers of ITI TF-2 V.3.2 (``omit`` drops some)."""
    env = etree.Element(ns.qn(soap_ns, "Envelope"), nsmap={"soap": soap_ns, "wsa": ns.WSA})
    header = etree.SubElement(env, ns.qn(soap_ns, "Header"))
    mu = (
        {ns.qn(soap_ns, "mustUnderstand"): "true" if soap_ns == ns.SOAP12 else "1"} if must_understand else {}
    )
    if "Action" not in omit:
        etree.SubElement(header, ns.qn(ns.WSA, "Action"), mu).text = action
    if "MessageID" not in omit:
        etree.SubElement(header, ns.qn(ns.WSA, "MessageID")).text = message_id
    if "ReplyTo" not in omit:
        reply = etree.SubElement(header, ns.qn(ns.WSA, "ReplyTo"))
        etree.SubElement(reply, ns.qn(ns.WSA, "Address")).text = ANONYMOUS
    if "To" not in omit:
        etree.SubElement(header, ns.qn(ns.WSA, "To"), mu).text = to
    body = etree.SubElement(env, ns.qn(soap_ns, "Body"))
    if payload is not None:
        body.append(payload)
    data: bytes = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
    return data


def _read_fault(body_child: etree._Element) -> SoapFault:
    code_values = [v.text or "" for v in body_child.iter(ns.qn(ns.SOAP12, "Value"))]
    reason = " ".join(t.text or "" for t in body_child.iter(ns.qn(ns.SOAP12, "Text")))
    if not code_values:  # SOAP 1.1
        code_values = [(body_child.findtext("faultcode") or "")]
        reason = body_child.findtext("faultstring") or ""
    local = [v.split(":", 1)[-1] if i == 0 else v for i, v in enumerate(code_values)]
    return SoapFault(local[0], tuple(local[1:]), reason.strip())


def read_soap(result: SoapResult, body: bytes) -> None:
    """Fill ``result`` from the bytes of an HTTP answer (plain SOAP or MTOM)."""
    media = result.content_type.split(";", 1)[0].strip().lower()
    xml = body
    if media.startswith("multipart/"):
        boundary = _param(result.content_type, "boundary")
        parts = split_multipart(body, boundary) if boundary else []
        if not parts:
            result.problem = "multipart answer without readable parts"
            return
        start = _param(result.content_type, "start").strip("<>")
        root = next((p for p in parts if p.content_id == start), parts[0]) if start else parts[0]
        xml = root.data
        result.parts = {p.content_id: p for p in parts if p is not root}
    try:
        env = etree.fromstring(xml, _PARSER)
    except etree.XMLSyntaxError as exc:
        result.problem = f"the answer is not XML: {exc}"
        return
    soap_ns = etree.QName(env).namespace
    if etree.QName(env).localname != "Envelope" or soap_ns not in (ns.SOAP12, ns.SOAP11):
        result.problem = f"the answer is not a SOAP envelope but {env.tag}"
        return
    header = env.find(ns.qn(soap_ns, "Header"))
    if header is not None:
        result.action = header.findtext(ns.qn(ns.WSA, "Action"))
        result.relates_to = header.findtext(ns.qn(ns.WSA, "RelatesTo"))
    body_elem = env.find(ns.qn(soap_ns, "Body"))
    children = list(body_elem) if body_elem is not None else []
    if not children:
        result.problem = "soap:Body is empty"
        return
    result.body = children[0]
    if etree.QName(children[0]).localname == "Fault":
        result.fault = _read_fault(children[0])


def soap_call(
    session: requests.Session,
    url: str,
    action: str,
    payload: etree._Element | None,
    *,
    parts: Sequence[Part] = (),
    mtom: bool = False,
    title: str = "",
    timeout: float = 60.0,
    omit_headers: frozenset[str] = frozenset(),
    soap_ns: str = ns.SOAP12,
    raw: bytes | None = None,
    raw_content_type: str | None = None,
) -> SoapResult:
    """Send one SOAP request (MTOM when ``mtom`` or when there are parts) and read the answer.

    ``raw`` sends those bytes as they are (with ``raw_content_type``), for edge cases.
    """
    message_id = f"urn:uuid:{uuid.uuid4()}"
    if raw is not None:
        data, content_type = raw, raw_content_type or "application/soap+xml; charset=UTF-8"
    else:
        env = envelope(action, url, payload, message_id, soap_ns=soap_ns, omit=omit_headers)
        if mtom or parts:
            data, content_type = mtom_body(env, parts, action)
        elif soap_ns == ns.SOAP11:
            data, content_type = env, "text/xml; charset=UTF-8"
        else:
            data, content_type = env, f'application/soap+xml; charset=UTF-8; action="{action}"'
    headers = {"Content-Type": content_type}
    if soap_ns == ns.SOAP11:
        headers["SOAPAction"] = f'"{action}"'
    exchange = Exchange("http", title or action, show_http("POST", url, headers, data))
    result = SoapResult(exchange=exchange, message_id=message_id)
    started = time.monotonic()
    try:
        resp = session.post(url, data=data, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        exchange.error = f"{type(exc).__name__}: {exc}"
        result.problem = exchange.error
        return result
    finally:
        exchange.elapsed = time.monotonic() - started
    result.http_status = resp.status_code
    result.content_type = resp.headers.get("Content-Type", "")
    exchange.response = show_http("", url, dict(resp.headers), resp.content, resp.status_code)
    read_soap(result, resp.content)
    return result


def http_get(
    session: requests.Session, url: str, title: str, timeout: float = 60.0
) -> tuple[int, bytes, Exchange]:
    exchange = Exchange("http", title, f"GET {url}")
    started = time.monotonic()
    try:
        resp = session.get(url, timeout=timeout)
    except requests.RequestException as exc:
        exchange.error = f"{type(exc).__name__}: {exc}"
        return 0, b"", exchange
    finally:
        exchange.elapsed = time.monotonic() - started
    exchange.response = show_http("", url, dict(resp.headers), resp.content, resp.status_code)
    return resp.status_code, resp.content, exchange


# ------------------------------------------------------------------------------------------------
# MLLP (HL7 v2 Minimal Lower Layer Protocol, ITI TF-2x C.2.1)
# ------------------------------------------------------------------------------------------------

_SB, _EB, _CR = b"\x0b", b"\x1c", b"\x0d"


def mllp_call(
    host: str,
    port: int,
    message: str,
    title: str,
    timeout: float = 30.0,
    tls: ssl.SSLContext | None = None,
) -> tuple[str, Exchange]:
    """Send one HL7 v2 message framed by MLLP (over TLS with ``tls``) and return the answer's text
    ('' on failure)."""
    text = message.replace("\r\n", "\r").replace("\n", "\r").rstrip("\r") + "\r"
    exchange = Exchange("mllp", title, text.replace("\r", "\n"))
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = tls.wrap_socket(raw, server_hostname=host) if tls is not None else raw
            sock.sendall(_SB + text.encode("utf-8") + _EB + _CR)
            buf = b""
            while _EB + _CR not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except OSError as exc:
        exchange.error = f"{type(exc).__name__}: {exc}"
        return "", exchange
    finally:
        exchange.elapsed = time.monotonic() - started
    start = buf.find(_SB)
    end = buf.find(_EB + _CR)
    if start < 0 or end < 0:
        exchange.error = f"no MLLP-framed answer ({len(buf)} bytes received)"
        exchange.response = buf.decode("utf-8", errors="replace")
        return "", exchange
    answer = buf[start + 1 : end].decode("utf-8", errors="replace")
    exchange.response = answer.replace("\r", "\n")
    return answer, exchange
