"""A small SOAP 1.2 + WS-Addressing 1.0 caller for XDS.b endpoints (ITI TF-2 Appendix V).

Requests are built with lxml; attachments go out as MTOM/XOP parts streamed from files, and MTOM
responses are parsed as they arrive, each attachment handed to a sink (a file), so neither side
of a transfer holds a document whole.  It speaks to any XDS.b endpoint: nothing here depends on
the hub.  (zeep cannot send MTOM and reads MTOM responses whole, so it is not used on the wire;
see :func:`xds_hub.client.xds.endpoint_from_wsdl` for where it helps.)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import requests
from lxml import etree

from xds_hub import ns
from xds_hub.client.mtom import (
    DiscardSink,
    MultipartBody,
    MultipartError,
    OutgoingPart,
    PartHeaders,
    PartSink,
    content_type_params,
    parse_stream,
)

ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"
#: Bytes per read of a streamed HTTP response.
RESPONSE_CHUNK = 1024 * 1024

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, remove_blank_text=False)


class XdsClientError(Exception):
    """A call did not produce a usable answer (the message says why, for a person)."""


class TransportError(XdsClientError):
    """The endpoint could not be reached, or answered with something that is not SOAP."""


class SoapFaultError(XdsClientError):
    """The endpoint answered with a SOAP Fault."""

    def __init__(self, code: str, reason: str, subcode: str | None = None) -> None:
        self.code = code
        self.reason = reason
        self.subcode = subcode
        sub = f" ({subcode})" if subcode else ""
        super().__init__(f"SOAP Fault {code}{sub}: {reason}")


@dataclass
class SoapReply:
    """What came back: the soap:Body child, the response action and the attachments received."""

    body: etree._Element
    action: str | None
    attachments: list[PartHeaders] = field(default_factory=list)
    http_status: int = 200


def _w(local: str) -> str:
    return ns.qn(ns.WSA, local)


def build_envelope(action: str, to: str, body: etree._Element, message_id: str | None = None) -> bytes:
    """A SOAP 1.2 envelope with the WS-Addressing headers XDS.b requires (ITI TF-2 V.3.2)."""
    env = etree.Element(ns.qn(ns.SOAP12, "Envelope"), nsmap={"soap": ns.SOAP12, "wsa": ns.WSA})
    header = etree.SubElement(env, ns.qn(ns.SOAP12, "Header"))
    must = {ns.qn(ns.SOAP12, "mustUnderstand"): "true"}
    etree.SubElement(header, _w("Action"), must).text = action
    etree.SubElement(header, _w("MessageID")).text = message_id or f"urn:uuid:{uuid.uuid4()}"
    reply_to = etree.SubElement(header, _w("ReplyTo"))
    etree.SubElement(reply_to, _w("Address")).text = ANONYMOUS
    etree.SubElement(header, _w("To"), must).text = to
    etree.SubElement(env, ns.qn(ns.SOAP12, "Body")).append(body)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


def _fault(body_child: etree._Element) -> SoapFaultError:
    """The SOAP 1.2 (or 1.1) Fault as an exception."""
    if body_child.tag == ns.qn(ns.SOAP11, "Fault"):
        return SoapFaultError(
            (body_child.findtext("faultcode") or "").strip(),
            (body_child.findtext("faultstring") or "").strip(),
        )
    s = ns.SOAP12
    code = (body_child.findtext(f"{{{s}}}Code/{{{s}}}Value") or "").strip()
    subcode = body_child.findtext(f"{{{s}}}Code/{{{s}}}Subcode/{{{s}}}Value")
    reason = (body_child.findtext(f"{{{s}}}Reason/{{{s}}}Text") or "").strip()
    return SoapFaultError(code, reason, subcode.strip() if subcode else None)


def parse_envelope(data: bytes, http_status: int) -> SoapReply:
    """The body child and wsa:Action of a SOAP 1.2 / 1.1 envelope; SoapFaultError for a Fault."""
    try:
        env = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise TransportError(
            f"the endpoint answered HTTP {http_status} with XML that cannot be read: {exc}"
        ) from None
    for soap_ns in (ns.SOAP12, ns.SOAP11):
        if env.tag == ns.qn(soap_ns, "Envelope"):
            body = env.find(ns.qn(soap_ns, "Body"))
            action = env.findtext(f"{{{soap_ns}}}Header/{{{ns.WSA}}}Action")
            break
    else:
        raise TransportError(f"the endpoint answered HTTP {http_status} with {env.tag}, not a SOAP envelope")
    children = [c for c in body if isinstance(c.tag, str)] if body is not None else []
    if not children:
        raise TransportError(f"the endpoint answered HTTP {http_status} with an empty SOAP Body")
    if children[0].tag in (ns.qn(ns.SOAP12, "Fault"), ns.qn(ns.SOAP11, "Fault")):
        raise _fault(children[0])
    return SoapReply(body=children[0], action=action.strip() if action else None, http_status=http_status)


class SoapEndpoint:
    """One SOAP endpoint URL, called over a shared requests Session (keep-alive)."""

    def __init__(
        self,
        url: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 300.0,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
    ) -> None:
        self.url = url
        self.session = session or requests.Session()
        self.timeout = timeout
        self.verify = verify
        self.cert = cert

    def call(
        self,
        action: str,
        body: etree._Element,
        *,
        parts: Sequence[OutgoingPart] = (),
        mtom: bool = False,
        open_attachment: Callable[[PartHeaders], PartSink] | None = None,
        on_upload: Callable[[int], None] | None = None,
    ) -> SoapReply:
        """Send ``body`` as ``action``; MTOM when ``mtom`` or ``parts`` (which become XOP parts).

        Attachments of an MTOM response go to ``open_attachment`` (discarded if None).
        """
        envelope = build_envelope(action, self.url, body)
        headers = {"Accept": "multipart/related, application/soap+xml, text/xml"}
        data: bytes | MultipartBody
        if mtom or parts:
            data = MultipartBody(envelope, parts, on_progress=on_upload)
            headers["Content-Type"] = data.content_type(action)
            headers["MIME-Version"] = "1.0"
        else:
            data = envelope
            headers["Content-Type"] = f'application/soap+xml; charset=UTF-8; action="{action}"'
        try:
            resp = self.session.post(
                self.url,
                data=data,
                headers=headers,
                stream=True,
                timeout=self.timeout,
                verify=self.verify,
                cert=self.cert,
            )
        except requests.RequestException as exc:
            raise TransportError(f"cannot reach {self.url}: {exc}") from None
        with resp:
            return self._read(resp, open_attachment)

    def _read(
        self, resp: requests.Response, open_attachment: Callable[[PartHeaders], PartSink] | None
    ) -> SoapReply:
        content_type = resp.headers.get("Content-Type", "")
        media, _ = content_type_params(content_type) if content_type else ("", {})
        try:
            if media == "multipart/related":
                root, _root_headers, others = parse_stream(
                    resp.iter_content(RESPONSE_CHUNK),
                    content_type,
                    open_attachment or (lambda _part: DiscardSink()),
                )
                reply = parse_envelope(root, resp.status_code)
                reply.attachments = others
                return reply
            if media in ("application/soap+xml", "text/xml", "application/xml", "application/xop+xml"):
                return parse_envelope(resp.content, resp.status_code)
        except MultipartError as exc:
            raise TransportError(
                f"{self.url} answered a multipart/related body that cannot be read: {exc}"
            ) from None
        except requests.RequestException as exc:
            raise TransportError(
                f"the connection to {self.url} failed while reading the answer: {exc}"
            ) from None
        snippet = resp.text[:200].strip() if resp.encoding or media.startswith("text/") else ""
        raise TransportError(
            f"{self.url} answered HTTP {resp.status_code} {resp.reason} with Content-Type "
            f"{content_type or '(none)'}, not SOAP" + (f": {snippet}" if snippet else "")
        )
