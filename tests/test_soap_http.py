"""The SOAP HTTP binding (xds_hub.soap.http) with test-only handlers, in process.

ROUTES is monkeypatched with the handlers below; requests go through Flask's test client, and the
zeep tests through a real HTTP server thread (werkzeug), so the WSDL is loaded the way a client
would load it and every operation of every endpoint is called and its reply parsed.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from werkzeug.serving import make_server

from tests.test_soap_mtom import BOUNDARY, GeneratedBody, attachment_part, multipart, root_part
from xds_hub import ns
from xds_hub.config import Settings, load_settings
from xds_hub.errors import ErrorCode, FaultCode, SoapFault, XdsError
from xds_hub.soap import mtom, routes, wsdl
from xds_hub.soap.types import OutAttachment, SoapRequest, SoapResponse
from xds_hub.storage.fs import FsBlobStore
from xds_hub.storage.stores import Stores, open_stores
from xds_hub.web import create_app

S, A = ns.SOAP12, ns.WSA
ECHO = "urn:test:Echo"
T = "urn:test"


# ---------------------------------------------------------------------------------------------
# Test-only handlers (named in ROUTES as "tests.test_soap_http:<name>")
# ---------------------------------------------------------------------------------------------


def echo(request: SoapRequest, stores: Stores, settings: Settings) -> SoapResponse:
    """Describe what reached the handler; echo the attachments back as response parts."""
    out = etree.Element(f"{{{T}}}Echo", nsmap={"t": T, "xop": ns.XOP})
    out.set("action", request.action)
    out.set("mtom", str(request.mtom).lower())
    out.set("messageId", request.message_id or "")
    out.set("path", request.path)
    out.set("body", etree.QName(request.body).text)
    parts = []
    for cid, att in request.attachments.items():
        el = etree.SubElement(
            out, f"{{{T}}}Part", cid=cid, size=str(att.blob.size), sha1=att.blob.sha1, type=att.content_type
        )
        el.append(mtom.xop_include("echo-" + cid))
        kept = att.blob.data  # a small part stays in memory (xds_hub.repository.inline)
        key = None if kept is not None else att.blob.key
        parts.append(OutAttachment("echo-" + cid, att.content_type, att.blob.size, key=key, data=kept))
    return SoapResponse(action=request.action + "Response", body=out, attachments=parts)


def boom(request: SoapRequest, stores: Stores, settings: Settings) -> SoapResponse:
    raise RuntimeError("secret internal detail /etc/hub.toml line 3")


def refuse(request: SoapRequest, stores: Stores, settings: Settings) -> SoapResponse:
    raise SoapFault(FaultCode.SENDER, "not a request this handler can read")


def xds_error(request: SoapRequest, stores: Stores, settings: Settings) -> SoapResponse:
    raise XdsError.one(ErrorCode.REGISTRY_ERROR, "escaped the handler")


def canned(request: SoapRequest, stores: Stores, settings: Settings) -> SoapResponse:
    """A well-formed reply of the WSDL's output element for ``request.action``."""
    output_action, element = CANNED[request.action]
    return SoapResponse(
        action=output_action, body=element(), attachments=CANNED_PARTS.get(request.action, ())
    )


def _registry_response() -> etree._Element:
    return etree.Element(
        ns.qn(ns.RS, "RegistryResponse"), status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
    )


def _adhoc_response() -> etree._Element:
    el = etree.Element(
        ns.qn(ns.QUERY, "AdhocQueryResponse"),
        status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success",
    )
    rol = etree.SubElement(el, ns.qn(ns.RIM, "RegistryObjectList"))
    etree.SubElement(rol, ns.qn(ns.RIM, "ObjectRef"), id="urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1")
    return el


def _retrieve_response() -> etree._Element:
    el = etree.Element(ns.qn(ns.XDSB, "RetrieveDocumentSetResponse"))
    el.append(_registry_response())
    doc = etree.SubElement(el, ns.qn(ns.XDSB, "DocumentResponse"))
    etree.SubElement(doc, ns.qn(ns.XDSB, "RepositoryUniqueId")).text = "1.2.3"
    etree.SubElement(doc, ns.qn(ns.XDSB, "DocumentUniqueId")).text = "1.2.3.4"
    etree.SubElement(doc, ns.qn(ns.XDSB, "mimeType")).text = "text/plain"
    etree.SubElement(doc, ns.qn(ns.XDSB, "Document")).append(mtom.xop_include("doc1@hub"))
    return el


def _hl7(name: str) -> etree._Element:
    el = etree.Element(ns.qn(ns.HL7V3, name), ITSVersion="XML_1.0")
    etree.SubElement(el, ns.qn(ns.HL7V3, "id"), root="1.2.3", extension="42")
    return el


CANNED: dict[str, tuple[str, object]] = {}
CANNED_PARTS: dict[str, tuple[OutAttachment, ...]] = {}
_OUTPUTS = {
    ns.qn(ns.RS, "RegistryResponse"): _registry_response,
    ns.qn(ns.QUERY, "AdhocQueryResponse"): _adhoc_response,
    ns.qn(ns.XDSB, "RetrieveDocumentSetResponse"): _retrieve_response,
    ns.qn(ns.HL7V3, "MCCI_IN000002UV01"): lambda: _hl7("MCCI_IN000002UV01"),
    ns.qn(ns.HL7V3, "PRPA_IN201310UV02"): lambda: _hl7("PRPA_IN201310UV02"),
}


def wsdl_operations() -> dict[str, list[tuple[str, str, str, str]]]:
    """path -> [(operation, input action, output action, output element)] from the hub's WSDLs."""
    ops: dict[str, list[tuple[str, str, str, str]]] = {}
    W = ns.WSDL
    for path, name in wsdl.WSDL_FOR_PATH.items():
        root = etree.fromstring((wsdl.schema_dir() / name).read_bytes())
        messages = {
            m.get("name"): m.find(f"{{{W}}}part").get("element")  # type: ignore[union-attr]
            for m in root.iter(f"{{{W}}}message")
        }
        for op in root.find(f"{{{W}}}portType").iter(f"{{{W}}}operation"):  # type: ignore[union-attr]
            inp, out = op.find(f"{{{W}}}input"), op.find(f"{{{W}}}output")
            assert inp is not None and out is not None
            prefix, local = (messages[(out.get("message") or "").split(":")[1]] or "").split(":")
            ops.setdefault(path, []).append(
                (
                    op.get("name") or "",
                    inp.get(ns.qn(ns.WSAW, "Action")) or "",
                    out.get(ns.qn(ns.WSAW, "Action")) or "",
                    ns.qn(root.nsmap[prefix], local),
                )
            )
    return ops


for _path, _ops in wsdl_operations().items():
    for _op, _in, _out, _element in _ops:
        CANNED[_in] = (_out, _OUTPUTS[_element])
        if _element == ns.qn(ns.XDSB, "RetrieveDocumentSetResponse"):
            CANNED_PARTS[_in] = (OutAttachment("doc1@hub", "text/plain", 13, data=b"document text"),)


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def test_routes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    table = {
        ECHO: "tests.test_soap_http:echo",
        "urn:test:Boom": "tests.test_soap_http:boom",
        "urn:test:Refuse": "tests.test_soap_http:refuse",
        "urn:test:XdsError": "tests.test_soap_http:xds_error",
    }
    for path, ops in wsdl_operations().items():
        monkeypatch.setitem(
            routes.ROUTES, path, {**{a: "tests.test_soap_http:canned" for _o, a, _r, _e in ops}, **table}
        )
    routes.handler_for.cache_clear()
    yield
    routes.handler_for.cache_clear()


def make_app(tmp_path: Path, **overrides: object) -> tuple[Flask, Stores]:
    settings = load_settings(None, data=tmp_path / "data", **overrides)
    stores = open_stores(settings)
    return create_app(settings, stores), stores


@pytest.fixture
def app_stores(tmp_path: Path, test_routes: None) -> Iterator[tuple[Flask, Stores]]:
    app, stores = make_app(tmp_path)
    yield app, stores
    stores.close()


@pytest.fixture
def client(app_stores: tuple[Flask, Stores]) -> FlaskClient:
    return app_stores[0].test_client()


def envelope(
    action: str = ECHO,
    body: str = "<t:Ping xmlns:t='urn:test'/>",
    message_id: str = "urn:uuid:req-1",
    extra: str = "",
) -> bytes:
    return (
        f"<s:Envelope xmlns:s='{S}' xmlns:wsa='{A}'><s:Header>"
        f"<wsa:Action s:mustUnderstand='1'>{action}</wsa:Action>"
        f"<wsa:MessageID>{message_id}</wsa:MessageID>{extra}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def parse_reply(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def fault_codes(root: etree._Element) -> list[str]:
    return [v.text or "" for v in root.iter(ns.qn(S, "Value"))]


def header(root: etree._Element, local: str) -> str | None:
    return root.findtext(f"{ns.qn(S, 'Header')}/{ns.qn(A, local)}")


def mtom_parts(content_type: str, data: bytes) -> list[tuple[dict[bytes, bytes], bytes]]:
    from requests_toolbelt.multipart.decoder import MultipartDecoder

    return [(dict(p.headers), p.content) for p in MultipartDecoder(data, content_type).parts]


# ---------------------------------------------------------------------------------------------
# Plain SOAP
# ---------------------------------------------------------------------------------------------


def test_soap_plain_request_reaches_handler_and_gets_plain_reply(client: FlaskClient) -> None:
    r = client.post("/xds/registry", data=envelope(), content_type="application/soap+xml; charset=utf-8")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == f'application/soap+xml; charset=utf-8; action="{ECHO}Response"'
    root = parse_reply(r.data)
    assert header(root, "Action") == ECHO + "Response"
    assert header(root, "RelatesTo") == "urn:uuid:req-1"
    echo_el = root.find(f"{ns.qn(S, 'Body')}/{{{T}}}Echo")
    assert echo_el is not None
    assert echo_el.attrib["mtom"] == "false" and echo_el.attrib["path"] == "/xds/registry"
    assert echo_el.attrib["body"] == "{urn:test}Ping" and echo_el.attrib["messageId"] == "urn:uuid:req-1"


def test_soap_text_xml_with_soap12_envelope_is_accepted(client: FlaskClient) -> None:
    assert client.post("/pix", data=envelope(), content_type="text/xml").status_code == 200


def test_soap_action_not_supported_on_that_path(client: FlaskClient) -> None:
    r = client.post(
        "/xds/registry",
        data=envelope("urn:ihe:iti:2007:RetrieveDocumentSet"),
        content_type="application/soap+xml",
    )
    assert r.status_code == 400
    root = parse_reply(r.data)
    assert fault_codes(root) == ["soap:Sender", "wsa:ActionNotSupported"]
    assert header(root, "RelatesTo") == "urn:uuid:req-1"
    assert header(root, "Action") == "http://www.w3.org/2005/08/addressing/fault"


def test_soap_http_action_mismatch(client: FlaskClient) -> None:
    r = client.post(
        "/xds/registry", data=envelope(), content_type='application/soap+xml; action="urn:test:Other"'
    )
    assert r.status_code == 400
    assert fault_codes(parse_reply(r.data)) == [
        "soap:Sender",
        "wsa:InvalidAddressingHeader",
        "wsa:ActionMismatch",
    ]


def test_soap_must_understand_fault_over_http(client: FlaskClient) -> None:
    extra = "<x:Security xmlns:x='urn:sec' s:mustUnderstand='true'/>"
    r = client.post("/xds/registry", data=envelope(extra=extra), content_type="application/soap+xml")
    assert r.status_code == 500
    assert fault_codes(parse_reply(r.data)) == ["soap:MustUnderstand"]


def test_soap_unexpected_exception_is_receiver_fault_without_details(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    r = client.post("/xds/registry", data=envelope("urn:test:Boom"), content_type="application/soap+xml")
    assert r.status_code == 500
    assert r.headers["Content-Type"].startswith("application/soap+xml")
    root = parse_reply(r.data)
    assert fault_codes(root) == ["soap:Receiver"]
    assert header(root, "RelatesTo") == "urn:uuid:req-1"
    assert b"secret" not in r.data and b"Traceback" not in r.data and b"RuntimeError" not in r.data
    logged = [rec for rec in caplog.records if rec.name == "xds_hub.soap"]
    assert (
        logged
        and logged[-1].__dict__["action"] == "urn:test:Boom"
        and logged[-1].__dict__["error"] == "RuntimeError"
    )


def test_soap_escaped_xds_error_is_receiver_fault(client: FlaskClient) -> None:
    r = client.post("/xds/registry", data=envelope("urn:test:XdsError"), content_type="application/soap+xml")
    assert r.status_code == 500 and fault_codes(parse_reply(r.data)) == ["soap:Receiver"]


def test_soap_fault_raised_by_handler(client: FlaskClient) -> None:
    r = client.post("/xds/registry", data=envelope("urn:test:Refuse"), content_type="application/soap+xml")
    assert r.status_code == 400
    root = parse_reply(r.data)
    assert fault_codes(root) == ["soap:Sender"]
    assert root.findtext(f".//{ns.qn(S, 'Text')}") == "not a request this handler can read"


def test_soap_unsupported_media_type(client: FlaskClient) -> None:
    r = client.post("/xds/registry", data=b'{"a": 1}', content_type="application/json")
    assert r.status_code == 415 and fault_codes(parse_reply(r.data)) == ["soap:Sender"]


def test_soap_xop_include_in_plain_soap_is_sender_fault(client: FlaskClient) -> None:
    body = f"<t:Ping xmlns:t='urn:test'><xop:Include xmlns:xop='{ns.XOP}' href='cid:a@b'/></t:Ping>"
    r = client.post("/xds/registry", data=envelope(body=body), content_type="application/soap+xml")
    assert r.status_code == 400 and fault_codes(parse_reply(r.data)) == ["soap:Sender"]


# ---------------------------------------------------------------------------------------------
# MTOM
# ---------------------------------------------------------------------------------------------


def mtom_request(parts: list[tuple[dict[str, str], bytes]], action: str | None = ECHO) -> tuple[bytes, str]:
    ctype = (
        f'multipart/related; boundary="{BOUNDARY}"; type="application/xop+xml"; start="<0.root@test>"; '
        f'start-info="application/soap+xml"'
    )
    if action:
        ctype += f'; action="{action}"'
    return multipart(parts), ctype


def test_soap_mtom_request_gets_mtom_reply_with_its_attachments(client: FlaskClient) -> None:
    body = f"<t:Ping xmlns:t='urn:test'><xop:Include xmlns:xop='{ns.XOP}' href='cid:doc%40client'/></t:Ping>"
    data, ctype = mtom_request(
        [
            root_part(envelope(body=body), "0.root@test"),
            attachment_part("doc@client", b"PDF" * 1000, "application/pdf"),
        ]
    )
    r = client.post("/xds/repository", data=data, content_type=ctype)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("multipart/related;")
    assert int(r.headers["Content-Length"]) == len(r.data)
    parts = mtom_parts(r.headers["Content-Type"], r.data)
    assert len(parts) == 2
    root = parse_reply(parts[0][1])
    assert header(root, "Action") == ECHO + "Response" and header(root, "RelatesTo") == "urn:uuid:req-1"
    part = root.find(f".//{{{T}}}Part")
    assert (
        part is not None and part.attrib["cid"] == "doc@client" and part.attrib["type"] == "application/pdf"
    )
    assert part.attrib["sha1"] == hashlib.sha1(b"PDF" * 1000).hexdigest()
    assert parts[1][0][b"Content-ID"] == b"<echo-doc@client>" and parts[1][1] == b"PDF" * 1000


def test_soap_mtom_request_without_attachments_gets_one_part_reply(client: FlaskClient) -> None:
    """oru2xds and other MTOM clients expect an MTOM reply even when it has no attachment."""
    data, ctype = mtom_request([root_part(envelope(), "0.root@test")])
    r = client.post("/xds/repository", data=data, content_type=ctype)
    assert r.status_code == 200
    parts = mtom_parts(r.headers["Content-Type"], r.data)
    assert len(parts) == 1
    assert parts[0][0][b"Content-Type"].startswith(b"application/xop+xml")
    root = parse_reply(parts[0][1])
    assert header(root, "Action") == ECHO + "Response" and header(root, "RelatesTo") == "urn:uuid:req-1"


def test_soap_mtom_missing_part_is_sender_fault_and_nothing_stored(
    client: FlaskClient, app_stores: tuple[Flask, Stores]
) -> None:
    body = f"<t:Ping xmlns:t='urn:test'><xop:Include xmlns:xop='{ns.XOP}' href='cid:gone@client'/></t:Ping>"
    data, ctype = mtom_request(
        [root_part(envelope(body=body), "0.root@test"), attachment_part("other@client", b"x" * 5000)]
    )
    r = client.post("/xds/repository", data=data, content_type=ctype)
    assert r.status_code == 400 and fault_codes(parse_reply(r.data)) == ["soap:Sender"]
    blobs = app_stores[1].blobs
    assert isinstance(blobs, FsBlobStore)
    assert [p for p in blobs.root.rglob("*") if p.is_file()] == []


def test_soap_mtom_action_mismatch_in_start_info(client: FlaskClient) -> None:
    data, ctype = mtom_request([root_part(envelope(), "0.root@test")], action=None)
    ctype += '; start-info="application/soap+xml; action=\\"urn:test:Other\\""'
    ctype = ctype.replace('start-info="application/soap+xml"; ', "")
    r = client.post("/xds/repository", data=data, content_type=ctype)
    assert fault_codes(parse_reply(r.data)) == [
        "soap:Sender",
        "wsa:InvalidAddressingHeader",
        "wsa:ActionMismatch",
    ]


def test_soap_plain_request_with_forced_mtom_reply(client: FlaskClient) -> None:
    r = client.post(
        "/xds/repository",
        data=envelope(
            "urn:ihe:iti:2007:RetrieveDocumentSet",
            body=f"<x:RetrieveDocumentSetRequest xmlns:x='{ns.XDSB}'/>",
        ),
        content_type="application/soap+xml",
    )
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("multipart/related")
    assert int(r.headers["Content-Length"]) == len(r.data)
    parts = mtom_parts(r.headers["Content-Type"], r.data)
    assert [p[1] for p in parts[1:]] == [b"document text"]


def test_soap_large_mtom_upload_streams_through_the_app(client: FlaskClient) -> None:
    size = 20 * 1024 * 1024
    include = f"<xop:Include xmlns:xop='{ns.XOP}' href='cid:big@x'/>"
    body = GeneratedBody(size, envelope(body=f"<t:Ping xmlns:t='urn:test'>{include}</t:Ping>"))
    ctype = f'multipart/related; boundary="{BOUNDARY}"; type="application/xop+xml"; start="<0.root@test>"'
    r = client.post(
        "/xds/repository", input_stream=body, content_type=ctype, headers={"Content-Length": str(body.length)}
    )
    assert r.status_code == 200, r.data[:2000]
    parts = mtom_parts(r.headers["Content-Type"], r.data)
    part = parse_reply(parts[0][1]).find(f".//{{{T}}}Part")
    assert (
        part is not None and int(part.attrib["size"]) == size and part.attrib["sha1"] == body.sha1.hexdigest()
    )
    assert len(parts[1][1]) == size


# ---------------------------------------------------------------------------------------------
# Limits and error pages
# ---------------------------------------------------------------------------------------------


def test_soap_request_over_max_request_bytes_is_413_fault(tmp_path: Path, test_routes: None) -> None:
    app, stores = make_app(tmp_path, max_request_bytes=2000)
    try:
        c = app.test_client()
        r = c.post(
            "/xds/registry",
            data=envelope(body="<t:P xmlns:t='urn:test'>" + "x" * 5000 + "</t:P>"),
            content_type="application/soap+xml",
        )
        assert r.status_code == 413 and fault_codes(parse_reply(r.data)) == ["soap:Sender"]
        # chunked (no Content-Length): enforced while streaming
        r = c.post(
            "/xds/registry",
            input_stream=io.BytesIO(envelope(body="<t:P xmlns:t='urn:test'>" + "x" * 5000 + "</t:P>")),
            content_type="application/soap+xml",
            headers={"Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        assert r.status_code == 413 and fault_codes(parse_reply(r.data)) == ["soap:Sender"]
        r = c.post("/healthz", data=b"x" * 5000)
        assert r.status_code in (405, 413) and r.headers["Content-Type"] == "application/json"
    finally:
        stores.close()


def test_soap_error_pages_are_never_html(client: FlaskClient) -> None:
    r = client.get("/no/such/page")
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/json"
    assert r.get_json()["status"] == 404
    r = client.delete("/xds/registry")
    assert r.status_code == 405 and r.headers["Content-Type"].startswith("application/soap+xml")
    assert fault_codes(parse_reply(r.data)) == ["soap:Sender"]
    r = client.get("/xds/registry")
    assert r.status_code == 405 and "POST" in r.headers["Allow"]
    r = client.get("/xds/registry?xsd=../../etc/passwd")
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/soap+xml")


def test_soap_unhandled_error_outside_the_views_is_json_500(app_stores: tuple[Flask, Stores]) -> None:
    app = app_stores[0]

    @app.get("/explode")
    def explode() -> str:
        raise ValueError("internal detail")

    r = app.test_client().get("/explode")
    assert r.status_code == 500 and r.headers["Content-Type"] == "application/json"
    assert b"internal detail" not in r.data and b"Traceback" not in r.data


# ---------------------------------------------------------------------------------------------
# WSDL and zeep
# ---------------------------------------------------------------------------------------------


def test_soap_wsdl_address_is_the_url_the_client_used(client: FlaskClient) -> None:
    r = client.get("/xds/registry?wsdl", base_url="https://hub.example.org:8443")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/xml")
    root = etree.fromstring(r.data)
    (address,) = root.iter(ns.qn(ns.WSDL_SOAP12, "address"))
    assert address.get("location") == "https://hub.example.org:8443/xds/registry"
    locations = [i.get("schemaLocation") for i in root.iter(ns.qn(ns.XSD, "import"))]
    assert locations and all(
        loc and loc.startswith("https://hub.example.org:8443/xds/registry?xsd=") for loc in locations
    )
    r = client.get("/xds/registry?xsd=lcm.xsd", base_url="https://hub.example.org:8443")
    assert r.status_code == 200
    (imp,) = etree.fromstring(r.data).iter(ns.qn(ns.XSD, "import"))
    assert imp.get("schemaLocation") == "https://hub.example.org:8443/xds/registry?xsd=rs.xsd"


@pytest.fixture
def live_app(app_stores: tuple[Flask, Stores]) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app_stores[0], threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_soap_zeep_calls_every_operation_of_every_endpoint(live_app: str) -> None:
    import zeep

    called = []
    for path, ops in wsdl_operations().items():
        with zeep.Client(f"{live_app}{path}?wsdl") as client:
            for op_name, _in, _out, out_element in ops:
                result = getattr(client.service, op_name)(**zeep_arguments(op_name))
                ZEEP_CHECK[out_element](result)
                called.append(op_name)
    assert len(called) == sum(len(ops) for ops in wsdl_operations().values()) == 12


RIM = ns.RIM


def _rol() -> etree._Element:
    return etree.Element(ns.qn(RIM, "RegistryObjectList"))


def _check_registry_response(result: object) -> None:
    assert result.status == "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"


def _check_adhoc(result: object) -> None:
    _check_registry_response(result)
    (rol,) = result._value_1
    assert etree.QName(rol).localname == "RegistryObjectList"


def _check_retrieve(result: object) -> None:
    _check_registry_response(result.RegistryResponse)
    (doc,) = result.DocumentResponse
    assert doc.Document == b"document text" and doc.mimeType == "text/plain"


def _check_hl7(result: object) -> None:
    assert result.ITSVersion == "XML_1.0"


ZEEP_CHECK = {
    ns.qn(ns.RS, "RegistryResponse"): _check_registry_response,
    ns.qn(ns.QUERY, "AdhocQueryResponse"): _check_adhoc,
    ns.qn(ns.XDSB, "RetrieveDocumentSetResponse"): _check_retrieve,
    ns.qn(ns.HL7V3, "MCCI_IN000002UV01"): _check_hl7,
    ns.qn(ns.HL7V3, "PRPA_IN201310UV02"): _check_hl7,
}
_hl7_args = {"ITSVersion": "XML_1.0", "_value_1": [etree.Element(ns.qn(ns.HL7V3, "id"), root="1.2.3")]}
_doc_request = {"DocumentRequest": [{"RepositoryUniqueId": "1.2.3", "DocumentUniqueId": "1.2.3.4"}]}
ZEEP_OP_ARGS: dict[str, dict[str, object]] = {
    "DocumentRegistry_RegisterDocumentSet-b": {"_value_1": [_rol()]},
    "DocumentRegistry_UpdateDocumentSet": {"_value_1": [_rol()]},
    "DocumentRegistry_DeleteDocumentSet": {"_value_1": [etree.Element(ns.qn(RIM, "ObjectRefList"))]},
    "DocumentRegistry_RegistryStoredQuery": {
        "ResponseOption": {"returnType": "LeafClass", "returnComposedObjects": True},
        "_value_1": [
            etree.Element(ns.qn(RIM, "AdhocQuery"), id="urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d")
        ],
    },
    "DocumentRepository_ProvideAndRegisterDocumentSet-b": {
        "SubmitObjectsRequest": {"_value_1": [_rol()]},
        "Document": [{"_value_1": b"hello", "id": "Document01"}],
    },
    "DocumentRepository_RetrieveDocumentSet": _doc_request,
    "DocumentRepository_RemoveDocuments": _doc_request,
    "ImagingDocumentSource_RetrieveImagingDocumentSet": {
        "StudyRequest": [
            {"studyInstanceUID": "1.2.3", "SeriesRequest": [{"seriesInstanceUID": "1.2.3.1", **_doc_request}]}
        ],
        "TransferSyntaxUIDList": {"TransferSyntaxUID": ["1.2.840.10008.1.2.1"]},
    },
}


def zeep_arguments(operation: str) -> dict[str, object]:
    """Minimal keyword arguments for calling ``operation`` of the hub's WSDLs through zeep."""
    return ZEEP_OP_ARGS.get(operation, _hl7_args)


def test_soap_keep_alive_small_requests_are_fast(live_app: str) -> None:
    with requests.Session() as session:
        data = envelope()
        session.post(f"{live_app}/xds/registry", data=data, headers={"Content-Type": "application/soap+xml"})
        import time

        start = time.perf_counter()
        for _ in range(50):
            r = session.post(
                f"{live_app}/xds/registry", data=data, headers={"Content-Type": "application/soap+xml"}
            )
            assert r.status_code == 200
        assert time.perf_counter() - start < 2.0


def test_soap_mtom_over_the_limit_while_streaming_stores_nothing(tmp_path: Path, test_routes: None) -> None:
    app, stores = make_app(tmp_path, max_request_bytes=50_000)
    try:
        body = f"<t:Ping xmlns:t='urn:test'><xop:Include xmlns:xop='{ns.XOP}' href='cid:big@x'/></t:Ping>"
        data, ctype = mtom_request(
            [root_part(envelope(body=body), "0.root@test"), attachment_part("big@x", b"B" * 200_000)]
        )
        r = app.test_client().post(
            "/xds/repository",
            input_stream=io.BytesIO(data),
            content_type=ctype,
            headers={"Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        assert r.status_code == 413 and fault_codes(parse_reply(r.data)) == ["soap:Sender"]
        assert header(parse_reply(r.data), "RelatesTo") == "urn:uuid:req-1"
        blobs = stores.blobs
        assert isinstance(blobs, FsBlobStore)
        assert [p for p in blobs.root.rglob("*") if p.is_file()] == []
    finally:
        stores.close()


def test_soap_mtom_unknown_action_is_refused_before_the_attachments_are_stored(
    client: FlaskClient, app_stores: tuple[Flask, Stores]
) -> None:
    body = f"<t:Ping xmlns:t='urn:test'><xop:Include xmlns:xop='{ns.XOP}' href='cid:big@x'/></t:Ping>"
    data, ctype = mtom_request(
        [
            root_part(envelope("urn:not:here", body=body), "0.root@test"),
            attachment_part("big@x", b"B" * 100_000),
        ],
        action=None,
    )
    r = client.post("/xds/repository", data=data, content_type=ctype)
    assert r.status_code == 400 and fault_codes(parse_reply(r.data)) == [
        "soap:Sender",
        "wsa:ActionNotSupported",
    ]
    blobs = app_stores[1].blobs
    assert isinstance(blobs, FsBlobStore)
    assert [p for p in blobs.root.rglob("*") if p.is_file()] == []
