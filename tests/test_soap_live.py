"""The SOAP edge of a real `xds-hub serve` (gunicorn) over HTTP, on SQLite and PostgreSQL.

Bad envelopes get the exact SOAP 1.2 / WS-Addressing faults (validated against the official
soap-1.2.xsd), the public MTOM wire captures replay with their own HTTP headers, every endpoint's
?wsdl loads in zeep and binds every operation, keep-alive requests do not stall (Nagle), and no
error is ever an HTML page.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator

import pytest
import requests
import zeep
import zeep.exceptions
from lxml import etree

from tests.hubproc import TEST_CONFIG, Hub
from tests.oracle import SAMPLES, oracle_schema
from tests.test_soap_http import zeep_arguments
from tests.test_soap_mtom import split_http
from xds_hub import ns
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.soap import mtom, wsdl
from xds_hub.soap.routes import ROUTES

S, A = ns.SOAP12, ns.WSA
SOAP = "application/soap+xml; charset=utf-8"


def envelope(
    action: str,
    body: str = "<t:Ping xmlns:t='urn:test'/>",
    extra: str = "",
    message_id: str = "urn:uuid:live-1",
    root_ns: str = S,
) -> bytes:
    return (
        f"<s:Envelope xmlns:s='{root_ns}' xmlns:wsa='{A}'><s:Header>"
        f"<wsa:Action s:mustUnderstand='true'>{action}</wsa:Action>"
        f"<wsa:MessageID>{message_id}</wsa:MessageID>"
        f"{extra}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def values(data: bytes) -> list[str]:
    return [v.text or "" for v in etree.fromstring(data).iter(ns.qn(S, "Value"))]


def assert_soap12_fault(r: requests.Response, status: int, codes: list[str]) -> etree._Element:
    assert r.status_code == status, r.text[:500]
    assert r.headers["Content-Type"].startswith("application/soap+xml"), r.headers["Content-Type"]
    assert values(r.content) == codes
    schema = oracle_schema("soap-1.2.xsd")
    root = etree.fromstring(r.content)
    assert schema.validate(root), schema.error_log
    return root


FAULT_CASES = [
    ("not xml", "/xds/registry", b"hello", SOAP, 400, ["soap:Sender"]),
    (
        "no body",
        "/xds/registry",
        f"<s:Envelope xmlns:s='{S}'><s:Header/></s:Envelope>".encode(),
        SOAP,
        400,
        ["soap:Sender"],
    ),
    (
        "missing action",
        "/xds/registry",
        f"<s:Envelope xmlns:s='{S}'><s:Header/><s:Body><x/></s:Body></s:Envelope>".encode(),
        SOAP,
        400,
        ["soap:Sender", "wsa:MessageAddressingHeaderRequired"],
    ),
    (
        "action not supported here",
        "/xds/registry",
        envelope(SoapAction.ITI43),
        SOAP,
        400,
        ["soap:Sender", "wsa:ActionNotSupported"],
    ),
    (
        "unknown action",
        "/pix",
        envelope("urn:nobody:knows"),
        SOAP,
        400,
        ["soap:Sender", "wsa:ActionNotSupported"],
    ),
    (
        "must understand",
        "/xds/registry",
        envelope(SoapAction.ITI18, extra="<x:Sec xmlns:x='urn:sec' s:mustUnderstand='true'/>"),
        SOAP,
        500,
        ["soap:MustUnderstand"],
    ),
    (
        "action mismatch",
        "/xds/registry",
        envelope(SoapAction.ITI18),
        f'{SOAP}; action="{SoapAction.ITI42}"',
        400,
        ["soap:Sender", "wsa:InvalidAddressingHeader", "wsa:ActionMismatch"],
    ),
    (
        "unsupported media type",
        "/xds/registry",
        b"a=b",
        "application/x-www-form-urlencoded",
        415,
        ["soap:Sender"],
    ),
]


@pytest.mark.parametrize(
    ("case", "path", "data", "ctype", "status", "codes"), FAULT_CASES, ids=[c[0] for c in FAULT_CASES]
)
def test_soap_live_fault(
    hub: Hub, case: str, path: str, data: bytes, ctype: str, status: int, codes: list[str]
) -> None:
    r = requests.post(hub.url(path), data=data, headers={"Content-Type": ctype}, timeout=30)
    root = assert_soap12_fault(r, status, codes)
    if (b"urn:uuid:live-1" in data and case != "must understand") or case == "must understand":
        assert root.findtext(f"{ns.qn(S, 'Header')}/{ns.qn(A, 'RelatesTo')}") == "urn:uuid:live-1"


def test_soap_live_soap11_request_gets_soap11_version_mismatch(hub: Hub) -> None:
    data = envelope(SoapAction.ITI18, root_ns=ns.SOAP11).replace(b" s:mustUnderstand='true'", b"")
    r = requests.post(
        hub.url("/xds/registry"),
        data=data,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{SoapAction.ITI18}"'},
        timeout=30,
    )
    assert r.status_code == 500 and r.headers["Content-Type"].startswith("text/xml")
    root = etree.fromstring(r.content)
    assert root.tag == ns.qn(ns.SOAP11, "Envelope")
    faultcode = root.findtext(f".//{ns.qn(ns.SOAP11, 'Fault')}/faultcode") or ""
    assert faultcode.endswith(":VersionMismatch")
    assert root.find(f".//{ns.qn(S, 'Upgrade')}") is not None


# ---------------------------------------------------------------------------------------------
# Wire captures
# ---------------------------------------------------------------------------------------------


def _served(path: str, action: str) -> bool:
    return action in ROUTES.get(path, {})


def test_soap_live_replays_nist_mtom_capture(hub: Hub) -> None:
    path = SAMPLES / "wire" / "http-mtom-pnr.txt"
    if not path.exists():
        pytest.skip("oracle samples not available")
    headers, body = split_http(path.read_bytes())
    r = requests.post(
        hub.url("/xds/repository"),
        data=body,
        headers={"Content-Type": headers["content-type"], "User-Agent": headers["user-agent"]},
        timeout=60,
    )
    if not _served("/xds/repository", SoapAction.ITI41):
        assert_soap12_fault(r, 400, ["soap:Sender", "wsa:ActionNotSupported"])
        return
    # An MTOM request gets an MTOM reply: one part, the ITI-41 response action, RelatesTo the request.
    assert r.status_code == 200, r.text[:1000]
    media = mtom.parse_media_type(r.headers["Content-Type"])
    assert media.mime == "multipart/related" and media.get("type") == "application/xop+xml"
    assert int(r.headers["Content-Length"]) == len(r.content)
    from requests_toolbelt.multipart.decoder import MultipartDecoder

    parts = MultipartDecoder(r.content, r.headers["Content-Type"]).parts
    assert len(parts) == 1
    root = etree.fromstring(parts[0].content)
    header = root.find(ns.qn(S, "Header"))
    assert header is not None
    assert header.findtext(ns.qn(A, "Action")) == SoapAction.ITI41_RESPONSE
    assert header.findtext(ns.qn(A, "RelatesTo")) == "urn:uuid:3D4B161591CD1DEC0C1286850962146"
    assert root.find(f"{ns.qn(S, 'Body')}/{ns.qn(ns.RS, 'RegistryResponse')}") is not None


def test_soap_live_replays_capture_with_missing_part(hub: Hub) -> None:
    path = SAMPLES / "wire" / "sample_mtom_message.txt"
    if not path.exists():
        pytest.skip("oracle samples not available")
    ctype = (
        "multipart/related; boundary=MIMEBoundary_494859fac46e21a68c012f8f4fe208a370fc32b6e07ae79f; "
        'type="application/xop+xml"; start-info="application/soap+xml"'
    )
    r = requests.post(
        hub.url("/xds/repository"), data=path.read_bytes(), headers={"Content-Type": ctype}, timeout=60
    )
    expected = (
        ["soap:Sender"]
        if _served("/xds/repository", SoapAction.ITI41)
        else ["soap:Sender", "wsa:ActionNotSupported"]
    )
    root = assert_soap12_fault(r, 400, expected)
    assert (
        root.findtext(f"{ns.qn(S, 'Header')}/{ns.qn(A, 'RelatesTo')}")
        == "urn:uuid:B163C7B266257EAA091504010553455"
    )


# ---------------------------------------------------------------------------------------------
# WSDL
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(wsdl.WSDL_FOR_PATH))
def test_soap_live_wsdl_loads_in_zeep_and_binds_every_operation(hub: Hub, path: str) -> None:
    with zeep.Client(hub.url(path) + "?wsdl") as client:
        ports = [p for s in client.wsdl.services.values() for p in s.ports.values()]
        assert len(ports) == 1 and ports[0].binding_options["address"] == hub.url(path)
        operations = ports[0].binding._operations
        wsdl_root = etree.fromstring(requests.get(hub.url(path) + "?wsdl", timeout=30).content)
        declared = {op.get("name") for op in wsdl_root.iter(ns.qn(ns.WSDL, "operation"))}
        assert set(operations) == declared
        for name, operation in operations.items():
            assert operation.soapaction == operation.abstract.wsa_action  # so zeep's action parameter agrees
            message = client.create_message(client.service, name, **zeep_arguments(name))
            assert (
                message.find(f"{ns.qn(S, 'Header')}/{ns.qn(A, 'Action')}").text
                == operation.abstract.wsa_action
            )


@pytest.mark.parametrize("path", sorted(wsdl.WSDL_FOR_PATH))
def test_soap_live_zeep_reaches_every_operation(hub: Hub, path: str) -> None:
    """Each operation, called through zeep with a minimal (often unusable) request, gets a SOAP
    answer zeep can read: a parsed reply, or a SOAP fault; never a transport or XML error."""
    with zeep.Client(hub.url(path) + "?wsdl") as client:
        port = next(p for s in client.wsdl.services.values() for p in s.ports.values())
        for name, operation in port.binding._operations.items():
            action = operation.abstract.wsa_action
            try:
                result = getattr(client.service, name)(**zeep_arguments(name))
            except zeep.exceptions.Fault as fault:
                if not _served(path, action):
                    assert [etree.QName(c).localname for c in fault.subcodes or []] == ["ActionNotSupported"]
                else:
                    # a handler may refuse the minimal request, or not exist yet (Receiver)
                    assert str(fault.code).rpartition(":")[2] in ("Sender", "Receiver"), fault
            else:
                assert _served(path, action) and result is not None


# ---------------------------------------------------------------------------------------------
# Keep-alive latency, error pages, limits
# ---------------------------------------------------------------------------------------------


def test_soap_live_keep_alive_has_no_nagle_stall(hub: Hub) -> None:
    """200 small SOAP requests on one keep-alive connection: a Nagle / delayed-ACK stall would cost
    ~40 ms each (8 s in all); without it they take a few hundred milliseconds."""
    conn = http.client.HTTPConnection("127.0.0.1", hub.http_port, timeout=30)
    data = envelope("urn:nobody:knows")
    took: list[float] = []
    try:
        conn.request("POST", "/xds/registry", body=data, headers={"Content-Type": SOAP})
        conn.getresponse().read()
        for _ in range(200):
            start = time.perf_counter()
            conn.request("POST", "/xds/registry", body=data, headers={"Content-Type": SOAP})
            response = conn.getresponse()
            response.read()
            took.append(time.perf_counter() - start)
            assert response.status == 400 and response.getheader("Connection", "keep-alive") != "close"
    finally:
        conn.close()
    median = sorted(took)[len(took) // 2]
    print(f"200 keep-alive requests: {sum(took):.3f} s, median {median * 1000:.2f} ms")
    assert median < 0.005, f"median {median * 1000:.1f} ms per request (Nagle stall?)"
    assert sum(took) < 2.0, f"200 keep-alive SOAP requests took {sum(took):.2f} s"


def test_soap_live_error_pages_are_never_html(hub: Hub) -> None:
    r = requests.get(hub.url("/no/such/page"), timeout=30)
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/json"
    r = requests.get(hub.url("/xds/repository"), timeout=30)
    assert r.status_code == 405 and r.headers["Content-Type"].startswith("application/soap+xml")
    r = requests.put(hub.url("/pix"), data=b"x", timeout=30)
    assert r.status_code == 405 and r.headers["Content-Type"].startswith("application/soap+xml")
    r = requests.get(hub.url("/xdsi/source?xsd=nope.xsd"), timeout=30)
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/soap+xml")
    for path in wsdl.WSDL_FOR_PATH:
        for name in ("rs.xsd", "xdsb.xsd", "hl7v3.xsd"):
            r = requests.get(hub.url(f"{path}?xsd={name}"), timeout=30)
            assert r.status_code == 200 and etree.fromstring(r.content).tag == ns.qn(ns.XSD, "schema")


SMALL_LIMIT_CONFIG = TEST_CONFIG + "\n[hub]\nmax_request_bytes = 4096\n"


@pytest.fixture
def small_hub(hub_factory: object) -> Iterator[Hub]:
    assert callable(hub_factory)
    yield hub_factory(config_text=SMALL_LIMIT_CONFIG)


def test_soap_live_request_too_large_is_413_fault(small_hub: Hub) -> None:
    big = envelope(SoapAction.ITI18, body="<t:P xmlns:t='urn:test'>" + "x" * 10_000 + "</t:P>")
    r = requests.post(small_hub.url("/xds/registry"), data=big, headers={"Content-Type": SOAP}, timeout=30)
    assert_soap12_fault(r, 413, ["soap:Sender"])

    def chunked() -> Iterator[bytes]:
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    r = requests.post(
        small_hub.url("/xds/registry"), data=chunked(), headers={"Content-Type": SOAP}, timeout=30
    )
    assert_soap12_fault(r, 413, ["soap:Sender"])
    r = requests.post(small_hub.url("/healthz"), data=b"x" * 10_000, timeout=30)
    assert r.status_code in (405, 413) and r.headers["Content-Type"] == "application/json"
