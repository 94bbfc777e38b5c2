"""The transactions a step may name, and how each is sent and checked (the dispatch table).

=============  ==============================================  ===========================================
transaction    message                                         sent as
=============  ==============================================  ===========================================
ITI-41         ``submission`` (+ ``extra_documents``)          SOAP/MTOM to the repository (ITI TF-2 3.41)
RAD-68         ``submission`` with a ``kos`` document          SOAP/MTOM to the repository (RAD TF-3 4.68)
ITI-42         ``submission``                                  SOAP to the registry (ITI TF-2 3.42)
ITI-57         ``submission`` (new versions, status updates)   SOAP to the registry (ITI TF-2b 3.57)
ITI-18         ``query``                                       SOAP to the registry (ITI TF-2 3.18)
ITI-62         ``remove``                                      SOAP to the registry (ITI TF-2b 3.62)
ITI-43         ``retrieve``                                    SOAP to the repository (ITI TF-2 3.43)
ITI-86         ``remove_documents``                            SOAP to the repository (ITI TF-2b 3.86)
RAD-69         ``imaging_retrieve``                            SOAP to the imaging source (RAD TF-3 4.69)
ITI-44/45      ``template`` (HL7 v3)                           SOAP to the PIX endpoint (ITI TF-2b 3.44/45)
ITI-8/ITI-9    ``message`` or ``template`` (HL7 v2)            MLLP (ITI TF-2a 3.8 / 3.9)
SOAP           any payload + ``endpoint``, ``action``          for SOAP/WS-Addressing edge cases
HTTP-GET       ``path``                                        e.g. ``?wsdl``
DICOM-*        see :mod:`xds_hub.conformance.dicom`            DIMSE via pynetdicom
=============  ==============================================  ===========================================

Every payload may come from ``template``/``xml`` instead of a builder, and be edited by ``mutate``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from lxml import etree

from xds_hub import ns
from xds_hub.conformance import checks as chk
from xds_hub.conformance import messages as msg
from xds_hub.conformance.scenario import Step
from xds_hub.conformance.submission import BuildError, build_submission
from xds_hub.conformance.template import Context
from xds_hub.conformance.wire import Exchange, Part, SoapResult, http_get, mllp_call, soap_call
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.ebxml.render import render_provide_and_register, render_submit_objects_request


@dataclass
class Call:
    """One step being run: its expanded message and expectations, and where to send it."""

    ctx: Context
    step: Step
    message: Mapping[str, Any]
    expect: Mapping[str, Any]
    session: requests.Session
    base: Path | None  # the scenario's folder (templates live there)


@dataclass
class StepRun:
    exchanges: list[Exchange] = field(default_factory=list)
    checks: list[chk.Check] = field(default_factory=list)
    #: Why the step could not be run at all (a scenario or environment problem), or "".
    error: str = ""


Runner = Callable[[Call], StepRun]


# ------------------------------------------------------------------------------------------------
# SOAP transactions
# ------------------------------------------------------------------------------------------------


def _payload(
    call: Call, build: Callable[[], tuple[etree._Element, list[Part]]]
) -> tuple[etree._Element, list[Part]]:
    parts: list[Part] = []
    if "template" in call.message or "xml" in call.message:
        payload = msg.from_template(call.message, call.ctx, call.base)
    else:
        payload, parts = build()
    return msg.mutate(payload, call.step.mutate), parts


def _send(
    call: Call,
    path: str,
    action: str,
    response_action: str | None,
    payload: etree._Element | None,
    parts: list[Part],
    mtom: bool,
) -> StepRun:
    t = call.ctx.target
    omit = frozenset(str(h) for h in call.message.get("omit_headers", []))
    raw: bytes | None = None
    if "raw" in call.message:
        raw = call.ctx.expand(msg.template_text(str(call.message["raw"]), call.base)).encode("utf-8")
    elif "raw_xml" in call.message:
        raw = str(call.message["raw_xml"]).encode("utf-8")
    result = soap_call(
        call.session,
        t.url(path),
        action,
        payload,
        parts=parts,
        mtom=mtom,
        title=f"{call.step.transaction} {call.step.name}",
        timeout=t.timeout,
        omit_headers=omit,
        soap_ns=ns.SOAP11 if call.message.get("soap11") else ns.SOAP12,
        raw=raw,
        raw_content_type=call.message.get("content_type"),
    )
    run = StepRun(exchanges=[result.exchange])
    _keep_documents(call, result)
    run.checks = chk.soap_checks(result, call.expect, response_action)
    if "ack_v3" in call.expect:
        got = chk.capture_xpath(result, "//hl7:acknowledgement/hl7:typeCode/@code")
        run.checks.append(
            chk._check("HL7 v3 acknowledgement", got == call.expect["ack_v3"], call.expect["ack_v3"], got)
        )
    _capture(call, result)
    return run


def _keep_documents(call: Call, result: SoapResult) -> None:
    """Retrieved documents, by uniqueId, for later steps (e.g. a RAD-69 built from a manifest)."""
    if result.body is None or result.fault is not None:
        return
    for resp in result.body.iterchildren(ns.qn(ns.XDSB, "DocumentResponse")):
        uid = resp.findtext(ns.qn(ns.XDSB, "DocumentUniqueId"))
        doc = resp.find(ns.qn(ns.XDSB, "Document"))
        data = result.part_for(doc) if doc is not None else None
        if uid and data is not None:
            call.ctx.blobs[uid] = data


def _capture(call: Call, result: SoapResult) -> None:
    for name, path in call.step.capture.items():
        value = chk.capture_xpath(result, path)
        if value is not None:
            call.ctx.record(call.step.name, name, value)


def _mtom(call: Call) -> bool:
    return bool(call.message.get("mtom", call.ctx.target.mtom))


def _provide(call: Call) -> StepRun:
    """ITI-41 / RAD-68: metadata plus documents, MTOM parts or inline base64."""
    mtom = _mtom(call)

    def build() -> tuple[etree._Element, list[Part]]:
        built = build_submission(call.ctx, call.step.name, call.message.get("submission", {}))
        for extra in call.message.get("extra_documents", []):
            built.documents[str(extra["id"])] = (str(extra.get("content", "orphan")).encode(), "text/plain")
        refs: dict[str, str | bytes] = {}
        parts: list[Part] = []
        for doc_id, (data, mime) in built.documents.items():
            if mtom:
                cid = f"{uuid.uuid4().hex}@conformance"
                refs[doc_id] = cid
                parts.append(Part(cid, mime, data))
            else:
                refs[doc_id] = data
        return render_provide_and_register(built.submission, refs), parts

    payload, parts = _payload(call, build)
    return _send(
        call,
        call.ctx.target.repository_path,
        SoapAction.ITI41,
        SoapAction.ITI41_RESPONSE,
        payload,
        parts,
        mtom,
    )


def _register(action: SoapAction, response: SoapAction) -> Runner:
    def run(call: Call) -> StepRun:
        def build() -> tuple[etree._Element, list[Part]]:
            built = build_submission(call.ctx, call.step.name, call.message.get("submission", {}))
            return render_submit_objects_request(built.submission), []

        payload, parts = _payload(call, build)
        return _send(call, call.ctx.target.registry_path, action, response, payload, parts, False)

    return run


def _simple(
    path_of: Callable[[Context], str],
    action: SoapAction,
    response: SoapAction,
    builder: Callable[[Call], etree._Element],
    mtom: bool = False,
) -> Runner:
    def run(call: Call) -> StepRun:
        payload, parts = _payload(call, lambda: (builder(call), []))
        return _send(
            call, path_of(call.ctx), action, response, payload, parts, bool(call.message.get("mtom", mtom))
        )

    return run


def _endpoint(call: Call) -> str:
    t = call.ctx.target
    names = {
        "registry": t.registry_path,
        "repository": t.repository_path,
        "imaging": t.imaging_path,
        "pix": t.pix_path,
    }
    endpoint = str(call.message.get("endpoint", "registry"))
    return names.get(endpoint, endpoint)


def _soap_generic(call: Call) -> StepRun:
    """Any payload to any endpoint with any action: the SOAP / WS-Addressing edge."""
    payload: etree._Element | None = None
    parts: list[Part] = []
    if "raw" not in call.message and "raw_xml" not in call.message:
        payload, parts = _payload(call, lambda: (_generic_body(call), []))
    response = call.message.get("response_action")
    return _send(
        call,
        _endpoint(call),
        str(call.message.get("action", "")),
        str(response) if response else None,
        payload,
        parts,
        bool(call.message.get("mtom", False)),
    )


def _generic_body(call: Call) -> etree._Element:
    builders: dict[str, Callable[[], etree._Element]] = {
        "query": lambda: msg.build_query(call.message["query"]),
        "retrieve": lambda: msg.build_retrieve(call.message["retrieve"], call.ctx),
        "submission": lambda: render_submit_objects_request(
            build_submission(call.ctx, call.step.name, call.message["submission"]).submission
        ),
    }
    for key, build in builders.items():
        if key in call.message:
            return build()
    raise BuildError("a SOAP step needs template, xml, raw, raw_xml, query, retrieve or submission")


def _http_get(call: Call) -> StepRun:
    t = call.ctx.target
    status, body, exchange = http_get(
        call.session, t.url(str(call.message.get("path", "/"))), call.step.name, t.timeout
    )
    run = StepRun(exchanges=[exchange])
    if exchange.error:
        run.checks.append(chk.Check("answer", False, exchange.error))
        return run
    want = int(call.expect.get("http_status", 200))
    run.checks.append(chk._check("HTTP status", status == want, want, status))
    if call.expect.get("xpath"):
        try:
            root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError as exc:
            run.checks.append(chk.Check("XML", False, f"not XML: {exc}"))
            return run
        for spec in call.expect["xpath"]:
            run.checks.append(chk._xpath_check(root, spec))
    return run


# ------------------------------------------------------------------------------------------------
# HL7 v2 over MLLP
# ------------------------------------------------------------------------------------------------


def v2_text(call: Call) -> str:
    if "template" in call.message:
        return call.ctx.expand(msg.template_text(str(call.message["template"]), call.base))
    return str(call.message.get("message", ""))


def _mllp(call: Call) -> StepRun:
    t = call.ctx.target
    if t.pix_mllp is None:
        return StepRun(error="this step needs the target's MLLP address (--pix-mllp HOST:PORT)")
    text = v2_text(call).strip()
    control_id = chk.V2.parse(text).field("MSH-10")
    answer, exchange = mllp_call(
        t.pix_mllp.host,
        t.pix_mllp.port,
        text,
        f"{call.step.transaction} {call.step.name}",
        t.timeout,
        t.ssl_context(),
    )
    run = StepRun(exchanges=[exchange])
    run.checks = chk.v2_checks(answer, control_id, call.expect)
    for name, path in call.step.capture.items():
        value = chk.v2_capture(answer, path)
        if value is not None:
            call.ctx.record(call.step.name, name, value)
    return run


def _dicom(operation: str) -> Runner:
    def run(call: Call) -> StepRun:
        from xds_hub.conformance import dicom

        return dicom.run(operation, call)

    return run


def _paths(attr: str) -> Callable[[Context], str]:
    return lambda ctx: str(getattr(ctx.target, attr))


TRANSACTIONS: dict[str, Runner] = {
    "ITI-41": _provide,
    "RAD-68": _provide,
    "ITI-42": _register(SoapAction.ITI42, SoapAction.ITI42_RESPONSE),
    "ITI-57": _register(SoapAction.ITI57, SoapAction.ITI57_RESPONSE),
    "ITI-18": _simple(
        _paths("registry_path"),
        SoapAction.ITI18,
        SoapAction.ITI18_RESPONSE,
        lambda c: msg.build_query(c.message.get("query", {})),
    ),
    "ITI-62": _simple(
        _paths("registry_path"),
        SoapAction.ITI62,
        SoapAction.ITI62_RESPONSE,
        lambda c: msg.build_remove_metadata(c.message.get("remove", {})),
    ),
    "ITI-43": _simple(
        _paths("repository_path"),
        SoapAction.ITI43,
        SoapAction.ITI43_RESPONSE,
        lambda c: msg.build_retrieve(c.message.get("retrieve", {}), c.ctx),
    ),
    "ITI-86": _simple(
        _paths("repository_path"),
        SoapAction.ITI86,
        SoapAction.ITI86_RESPONSE,
        lambda c: msg.build_remove_documents(c.message.get("remove_documents", {}), c.ctx),
    ),
    "RAD-69": _simple(
        _paths("imaging_path"),
        SoapAction.RAD69,
        SoapAction.RAD69_RESPONSE,
        lambda c: msg.build_imaging_retrieve(c.message.get("imaging_retrieve", {}), c.ctx),
    ),
    "ITI-44": lambda c: _simple(
        _paths("pix_path"),
        SoapAction(str(c.message.get("action", SoapAction.ITI44_ADD))),
        SoapAction.ITI44_RESPONSE,
        lambda _c: msg.from_template(_c.message, _c.ctx, _c.base),
    )(c),
    "ITI-45": _simple(
        _paths("pix_path"),
        SoapAction.ITI45,
        SoapAction.ITI45_RESPONSE,
        lambda c: msg.from_template(c.message, c.ctx, c.base),
    ),
    "ITI-8": _mllp,
    "ITI-9": _mllp,
    "SOAP": _soap_generic,
    "HTTP-GET": _http_get,
    "DICOM-ECHO": _dicom("echo"),
    "DICOM-STORE": _dicom("store"),
    "DICOM-FIND": _dicom("find"),
    "DICOM-MOVE": _dicom("move"),
    "DICOM-GET": _dicom("get"),
}
