"""A PIX Consumer and Patient Identity Source client for any PIX Manager, not only this hub.

- :func:`query_v2` (ITI-9 QBP^Q23 over MLLP) and :func:`query_v3` (ITI-45 PRPA_IN201309UV02 over
  SOAP 1.2) ask for the identifiers cross-referenced with a patient identifier;
- :func:`resolve` turns a local ID into the one of another domain (typically the affinity
  domain's regional ID), over v2 (``host:port``) or v3 (``http(s)://...``);
- :func:`feed_v2` sends ITI-8 messages (one connection, each acknowledged before the next).

Identifiers are :class:`~xds_hub.pix.model.Identifier` values; :func:`parse_cx` reads the
``ID^^^&OID&ISO`` form.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from xds_hub.client.soap import SoapEndpoint, XdsClientError
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.errors import ParseError
from xds_hub.pix import hl7v2
from xds_hub.pix.mllp import MllpClient
from xds_hub.pix.model import Identifier
from xds_hub.pix.v3 import INTERACTION_ROOT, V, first, xpath

#: MSH-3 of the messages this client sends, unless told otherwise.
CLIENT_APPLICATION = "XDSHUB-CLIENT"
#: Device id root of the v3 messages this client sends, unless told otherwise.
CLIENT_DEVICE = "1.3.6.1.4.1.21367.13.99.1"


class PixClientError(Exception):
    """The PIX Manager could not be asked, or did not answer a readable message."""


def parse_cx(text: str) -> Identifier:
    """``ID^^^&OID&ISO`` (or ``ID^^^NS&OID&ISO``) as an Identifier; ValueError otherwise."""
    parts = text.split("^")
    if len(parts) < 4 or not parts[0]:
        raise ValueError(f"{text!r} is not a patient identifier of the form ID^^^&OID&ISO")
    hd = parts[3].split("&")
    oid = hd[1] if len(hd) > 1 else ""
    if not oid:
        raise ValueError(f"{text!r} has no assigning-authority OID (ID^^^&OID&ISO)")
    return Identifier(oid, parts[0])


def parse_target(target: str) -> tuple[str, int] | str:
    """``host:port`` (MLLP) or an http(s) URL (SOAP)."""
    if target.startswith(("http://", "https://")):
        return target
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{target!r} is neither HOST:PORT nor an http(s) URL")
    return host or "127.0.0.1", int(port)


@dataclass(frozen=True, slots=True)
class PixResult:
    """What the PIX Manager answered.

    ``status`` is OK / NF (QAK-2 or queryResponseCode), or AE / AR when it refused the query;
    ``errors`` are ``"<HL7 code> <location>: <text>"`` lines.
    """

    ack: str
    status: str
    identifiers: tuple[Identifier, ...]
    errors: tuple[str, ...]
    reply: str

    @property
    def ok(self) -> bool:
        return self.status in ("OK", "NF")


def _errors_v2(msg: hl7v2.V2Message) -> tuple[str, ...]:
    out = []
    for err in msg.all("ERR"):
        code = err.value(3, comp=1) or err.value(1, comp=4, sub=1)
        location = "^".join(p for p in (err.value(2, comp=c) for c in range(1, 6)) if p) or "^".join(
            p for p in (err.value(1, comp=c) for c in range(1, 4)) if p
        )
        text = err.value(8) or err.value(3, comp=2) or err.value(1, comp=4, sub=2)
        out.append(f"{code} {location}: {text}".strip())
    return tuple(out)


def qbp_q23(
    pid: Identifier,
    domains: Sequence[str] = (),
    *,
    application: str = CLIENT_APPLICATION,
    facility: str = "",
    receiving: tuple[str, str] = ("", ""),
) -> str:
    """An ITI-9 QBP^Q23 for ``pid`` restricted to ``domains`` (assigning-authority OIDs)."""
    control = uuid.uuid4().hex[:20]
    return hl7v2.render(
        [
            hl7v2.msh((application, facility), receiving, ("QBP", "Q23", "QBP_Q21"), control, "P", "2.5"),
            hl7v2.segment(
                "QPD",
                ("IHE PIX Query",),
                f"Q{control}",
                hl7v2.cx(pid.value, pid.authority),
                [("", "", "", ("", d, "ISO")) for d in domains] if domains else "",
            ),
            hl7v2.segment("RCP", "I"),
        ]
    )


def read_rsp_k23(text: str) -> PixResult:
    """The answer carried by an RSP^K23 (or an ACK refusing the query)."""
    try:
        msg = hl7v2.parse(text)
    except ParseError as exc:
        raise PixClientError(f"the PIX Manager answered something that is not HL7 v2: {exc}") from None
    msa = msg.first("MSA")
    qak = msg.first("QAK")
    ack = msa.value(1) if msa is not None else ""
    status = (qak.value(2) if qak is not None else "") or ("OK" if ack == "AA" else ack or "AR")
    ids: list[Identifier] = []
    for pid in msg.all("PID"):
        for rep in range(1, pid.repetitions(3) + 1):
            value, oid = pid.value(3, rep, 1), pid.value(3, rep, 4, 2)
            if value:
                ids.append(Identifier(oid, value))
    return PixResult(ack, status, tuple(ids), _errors_v2(msg), text)


def query_v2(
    host: str,
    port: int,
    pid: Identifier,
    domains: Sequence[str] = (),
    *,
    timeout: float = 30.0,
    application: str = CLIENT_APPLICATION,
) -> PixResult:
    """ITI-9 PIX Query over MLLP."""
    try:
        with MllpClient(host, port, timeout=timeout) as client:
            reply = client.request(qbp_q23(pid, domains, application=application))
    except OSError as exc:
        raise PixClientError(f"cannot query the PIX Manager at {host}:{port}: {exc}") from None
    return read_rsp_k23(reply)


def prpa_in201309(
    pid: Identifier, domains: Sequence[str] = (), *, sender: str = CLIENT_DEVICE, receiver: str = ""
) -> etree._Element:
    """An ITI-45 PRPA_IN201309UV02 for ``pid`` restricted to ``domains``."""
    params = [V.dataSource(V.value(root=d), V.semanticsText("DataSource.id")) for d in domains]
    params.append(
        V.patientIdentifier(V.value(root=pid.authority, extension=pid.value), V.semanticsText("Patient.id"))
    )
    return V(
        "PRPA_IN201309UV02",
        V.id(root=str(uuid.uuid4())),
        V.creationTime(value=datetime.now(UTC).strftime("%Y%m%d%H%M%S")),
        V.interactionId(root=INTERACTION_ROOT, extension="PRPA_IN201309UV02"),
        V.processingCode(code="P"),
        V.processingModeCode(code="T"),
        V.acceptAckCode(code="AL"),
        V.receiver(
            V.device(V.id(root=receiver or pid.authority), classCode="DEV", determinerCode="INSTANCE"),
            typeCode="RCV",
        ),
        V.sender(V.device(V.id(root=sender), classCode="DEV", determinerCode="INSTANCE"), typeCode="SND"),
        V.controlActProcess(
            V.code(code="PRPA_TE201309UV02", codeSystem=INTERACTION_ROOT),
            V.queryByParameter(
                V.queryId(root=sender, extension=uuid.uuid4().hex),
                V.statusCode(code="new"),
                V.responsePriorityCode(code="I"),
                V.parameterList(*params),
            ),
            classCode="CACT",
            moodCode="EVN",
        ),
        ITSVersion="XML_1.0",
    )


def _detail(detail: etree._Element) -> str:
    code = first(detail, "v3:code")
    location = first(detail, "v3:location")
    text = first(detail, "v3:text")
    return (
        f"{code.get('code', '') if code is not None else ''} "
        f"{(location.text or '') if location is not None else ''}: "
        f"{(text.text or '') if text is not None else ''}"
    ).strip()


def read_prpa_in201310(body: etree._Element) -> PixResult:
    """The answer carried by a PRPA_IN201310UV02."""
    ack_type = first(body, "v3:acknowledgement/v3:typeCode")
    code = first(body, "v3:controlActProcess/v3:queryAck/v3:queryResponseCode")
    ack = ack_type.get("code", "") if ack_type is not None else ""
    status = code.get("code", "") if code is not None else ack
    ids = [
        Identifier(e.get("root", ""), e.get("extension", ""))
        for e in xpath(
            body,
            "v3:controlActProcess/v3:subject/v3:registrationEvent/v3:subject1/v3:patient/v3:id"
            " | v3:controlActProcess/v3:subject/v3:registrationEvent/v3:subject1/v3:patient"
            "/v3:patientPerson/v3:asOtherIDs/v3:id",
        )
        if e.get("extension")
    ]
    errors = tuple(_detail(d) for d in xpath(body, "v3:acknowledgement/v3:acknowledgementDetail"))
    return PixResult(ack, status, tuple(ids), errors, etree.tostring(body, encoding="unicode"))


def query_v3(
    url: str,
    pid: Identifier,
    domains: Sequence[str] = (),
    *,
    timeout: float = 30.0,
    sender: str = CLIENT_DEVICE,
    receiver: str = "",
) -> PixResult:
    """ITI-45 PIXV3 Query over SOAP 1.2."""
    try:
        reply = SoapEndpoint(url, timeout=timeout).call(
            SoapAction.ITI45, prpa_in201309(pid, domains, sender=sender, receiver=receiver)
        )
    except XdsClientError as exc:
        raise PixClientError(str(exc)) from None
    if etree.QName(reply.body).localname != "PRPA_IN201310UV02":
        raise PixClientError(f"{url} answered {etree.QName(reply.body).localname}, not PRPA_IN201310UV02")
    return read_prpa_in201310(reply.body)


def query(target: str, pid: Identifier, domains: Sequence[str] = (), *, timeout: float = 30.0) -> PixResult:
    """ITI-9 when ``target`` is ``host:port``, ITI-45 when it is an http(s) URL."""
    where = parse_target(target)
    if isinstance(where, str):
        return query_v3(where, pid, domains, timeout=timeout)
    return query_v2(where[0], where[1], pid, domains, timeout=timeout)


def resolve(
    target: str, local_id: Identifier | str, domain: str, *, timeout: float = 30.0
) -> Identifier | None:
    """The identifier of ``local_id`` in ``domain`` (e.g. the affinity domain's regional ID), or None
    when the PIX Manager knows the patient but not in that domain.  PixClientError if it refused."""
    pid = parse_cx(local_id) if isinstance(local_id, str) else local_id
    result = query(target, pid, [domain], timeout=timeout)
    if not result.ok:
        raise PixClientError(
            f"the PIX Manager refused the query ({result.status}): " + "; ".join(result.errors)
        )
    return next((i for i in result.identifiers if i.authority == domain), None)


@dataclass(frozen=True, slots=True)
class FeedResult:
    """The acknowledgement of one fed message."""

    control_id: str
    ack: str
    errors: tuple[str, ...]
    reply: str


def feed_v2(host: str, port: int, messages: Iterable[str], *, timeout: float = 30.0) -> list[FeedResult]:
    """Send ITI-8 messages over one MLLP connection, each acknowledged before the next."""
    return list(iter_feed_v2(host, port, messages, timeout=timeout))


def iter_feed_v2(
    host: str, port: int, messages: Iterable[str], *, timeout: float = 30.0
) -> Iterator[FeedResult]:
    """:func:`feed_v2`, yielding each message's result as its acknowledgement arrives."""
    try:
        with MllpClient(host, port, timeout=timeout) as client:
            for text in messages:
                reply = client.request(text)
                try:
                    msg = hl7v2.parse(reply)
                except ParseError as exc:
                    raise PixClientError(
                        f"the PIX Manager answered something that is not HL7 v2: {exc}"
                    ) from None
                msa = msg.first("MSA")
                yield FeedResult(
                    msa.value(2) if msa is not None else "",
                    msa.value(1) if msa is not None else "",
                    _errors_v2(msg),
                    reply,
                )
    except OSError as exc:
        raise PixClientError(f"cannot feed the PIX Manager at {host}:{port}: {exc}") from None
