"""SOAP 1.2 envelope and WS-Addressing 1.0 handling of the SOAP edge (xds_hub.soap.envelope).

Every fault is checked for its exact Code / Subcode chain and validated against the official
SOAP 1.2 envelope schema (../shared/oracle).
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.oracle import oracle_schema
from xds_hub import ns
from xds_hub.errors import FaultCode, FaultSubcode, SoapFault
from xds_hub.soap import faults
from xds_hub.soap.envelope import (
    ANONYMOUS,
    check_action_parameter,
    fault_element,
    parse_envelope,
    read_addressing,
    render_fault,
    render_response,
)

S = ns.SOAP12
A = ns.WSA
ACTION = "urn:ihe:iti:2007:RegistryStoredQuery"


def envelope(headers: str = "", body: str = "<q:Ping xmlns:q='urn:test'/>", root_ns: str = S) -> bytes:
    return (
        f"<?xml version='1.0' encoding='UTF-8'?><s:Envelope xmlns:s='{root_ns}' xmlns:wsa='{A}'>"
        f"<s:Header>{headers}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def wsa(action: str = ACTION, message_id: str = "urn:uuid:m-1", extra: str = "") -> str:
    return (
        f"<wsa:Action s:mustUnderstand='true'>{action}</wsa:Action>"
        f"<wsa:MessageID>{message_id}</wsa:MessageID><wsa:To>http://hub/xds/registry</wsa:To>{extra}"
    )


def fault_of(exc: pytest.ExceptionInfo[SoapFault]) -> SoapFault:
    return exc.value


def codes(envelope_bytes: bytes) -> list[str]:
    """Code/Value and every Subcode/Value of a rendered fault, in order."""
    root = etree.fromstring(envelope_bytes)
    return [v.text or "" for v in root.iter(ns.qn(S, "Value"))]


def assert_valid_soap12(data: bytes) -> None:
    schema = oracle_schema("soap-1.2.xsd")
    doc = etree.fromstring(data)
    assert schema.validate(doc), schema.error_log


# ---------------------------------------------------------------------------------------------
# Good envelopes
# ---------------------------------------------------------------------------------------------


def test_soap_envelope_reads_wsa_headers() -> None:
    reply_to = f"<wsa:ReplyTo><wsa:Address>{ANONYMOUS}</wsa:Address></wsa:ReplyTo>"
    env = parse_envelope(envelope(wsa(extra=reply_to)))
    addressing = read_addressing(env)
    assert addressing.action == ACTION
    assert addressing.message_id == "urn:uuid:m-1"
    assert addressing.to == "http://hub/xds/registry"
    assert addressing.reply_to == ANONYMOUS
    assert env.body.tag == "{urn:test}Ping"


def test_soap_envelope_without_header_element_still_needs_action() -> None:
    data = f"<s:Envelope xmlns:s='{S}'><s:Body><x/></s:Body></s:Envelope>".encode()
    env = parse_envelope(data)
    with pytest.raises(SoapFault) as exc:
        read_addressing(env)
    assert fault_of(exc).subcode is FaultSubcode.MESSAGE_ADDRESSING_HEADER_REQUIRED


def test_soap_response_relates_to_request_and_echoes_reference_parameters() -> None:
    params = (
        f"<wsa:ReplyTo><wsa:Address>{ANONYMOUS}</wsa:Address>"
        "<wsa:ReferenceParameters><c:Ticket xmlns:c='urn:client'>42</c:Ticket></wsa:ReferenceParameters>"
        "</wsa:ReplyTo>"
    )
    addressing = read_addressing(parse_envelope(envelope(wsa(extra=params))))
    payload = etree.Element("{urn:test}Pong")
    data = render_response(payload, ACTION + "Response", addressing)
    assert_valid_soap12(data)
    root = etree.fromstring(data)
    header = root.find(ns.qn(S, "Header"))
    assert header is not None
    assert header.findtext(ns.qn(A, "Action")) == ACTION + "Response"
    assert header.findtext(ns.qn(A, "RelatesTo")) == "urn:uuid:m-1"
    assert header.findtext(ns.qn(A, "To")) == ANONYMOUS
    message_id = header.findtext(ns.qn(A, "MessageID")) or ""
    assert message_id.startswith("urn:uuid:") and message_id != "urn:uuid:m-1"
    ticket = header.find("{urn:client}Ticket")
    assert ticket is not None and ticket.get(ns.qn(A, "IsReferenceParameter")) == "true"
    assert root.find(f"{ns.qn(S, 'Body')}/{{urn:test}}Pong") is not None


def test_soap_envelope_ignores_header_blocks_for_other_roles() -> None:
    other = "<x:Sec xmlns:x='urn:sec' s:mustUnderstand='true' s:role='urn:some-other-node'/>"
    none_role = f"<x:Sec2 xmlns:x='urn:sec' s:mustUnderstand='1' s:role='{S}/role/none'/>"
    read_addressing(parse_envelope(envelope(wsa() + other + none_role)))


def test_soap_envelope_accepts_optional_unknown_headers() -> None:
    read_addressing(parse_envelope(envelope(wsa() + "<x:Trace xmlns:x='urn:t' s:mustUnderstand='false'/>")))


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------

BAD_ENVELOPES: list[tuple[str, bytes, FaultCode, list[str]]] = [
    ("not xml", b"this is not XML", FaultCode.SENDER, []),
    ("empty", b"", FaultCode.SENDER, []),
    ("truncated xml", envelope(wsa())[:-20], FaultCode.SENDER, []),
    ("no body", f"<s:Envelope xmlns:s='{S}'><s:Header/></s:Envelope>".encode(), FaultCode.SENDER, []),
    ("empty body", envelope(wsa(), body=""), FaultCode.SENDER, []),
    ("two body children", envelope(wsa(), body="<a/><b/>"), FaultCode.SENDER, []),
    (
        "element after body",
        envelope(wsa()).replace(b"</s:Envelope>", b"<s:Extra/></s:Envelope>"),
        FaultCode.SENDER,
        [],
    ),
    ("dtd", b"<!DOCTYPE e [<!ENTITY x 'y'>]>" + envelope(wsa()).split(b"?>", 1)[1], FaultCode.SENDER, []),
    ("processing instruction", envelope(wsa(), body="<?pi data?><x/>"), FaultCode.SENDER, []),
    ("soap 1.1", envelope(wsa(), root_ns=ns.SOAP11), FaultCode.VERSION_MISMATCH, []),
    ("not an envelope", b"<Envelope xmlns='urn:other'><Body/></Envelope>", FaultCode.VERSION_MISMATCH, []),
]


@pytest.mark.parametrize(
    ("case", "data", "code", "subcodes"), BAD_ENVELOPES, ids=[c[0] for c in BAD_ENVELOPES]
)
def test_soap_bad_envelope_is_fault(case: str, data: bytes, code: FaultCode, subcodes: list[str]) -> None:
    with pytest.raises(SoapFault) as exc:
        read_addressing(parse_envelope(data))
    fault = fault_of(exc)
    assert fault.code is code
    assert fault.http_status == (400 if code is FaultCode.SENDER else 500)
    rendered = render_fault(fault)
    if code is FaultCode.VERSION_MISMATCH and case == "soap 1.1":
        return  # a SOAP 1.1 fault: see test_soap11_request_gets_soap11_version_mismatch
    assert codes(rendered) == [f"soap:{code.value}", *subcodes]
    assert_valid_soap12(rendered)


def test_soap11_request_gets_soap11_version_mismatch_with_upgrade() -> None:
    with pytest.raises(SoapFault) as exc:
        parse_envelope(envelope(wsa(), root_ns=ns.SOAP11))
    fault = fault_of(exc)
    assert fault.code is FaultCode.VERSION_MISMATCH and fault.http_status == 500
    root = etree.fromstring(render_fault(fault))
    assert root.tag == ns.qn(ns.SOAP11, "Envelope")
    fault_el = root.find(f"{ns.qn(ns.SOAP11, 'Body')}/{ns.qn(ns.SOAP11, 'Fault')}")
    assert fault_el is not None
    faultcode = fault_el.findtext("faultcode") or ""
    prefix, _, local = faultcode.partition(":")
    assert local == "VersionMismatch" and fault_el.nsmap[prefix] == ns.SOAP11
    supported = root.find(f".//{ns.qn(S, 'Upgrade')}/{ns.qn(S, 'SupportedEnvelope')}")
    assert supported is not None
    qprefix, _, qlocal = (supported.get("qname") or "").partition(":")
    assert qlocal == "Envelope" and supported.nsmap[qprefix] == S


def test_soap12_version_mismatch_for_unknown_root_has_upgrade_header() -> None:
    with pytest.raises(SoapFault) as exc:
        parse_envelope(b"<Envelope xmlns='urn:other'><Body/></Envelope>")
    rendered = render_fault(fault_of(exc))
    assert_valid_soap12(rendered)
    assert etree.fromstring(rendered).find(f".//{ns.qn(S, 'Upgrade')}") is not None


HEADER_FAULTS: list[tuple[str, str, FaultCode, list[str], str | None]] = [
    (
        "missing action",
        "<wsa:MessageID>urn:uuid:1</wsa:MessageID>",
        FaultCode.SENDER,
        ["wsa:MessageAddressingHeaderRequired"],
        "Action",
    ),
    (
        "missing message id",
        f"<wsa:Action>{ACTION}</wsa:Action>",
        FaultCode.SENDER,
        ["wsa:MessageAddressingHeaderRequired"],
        "MessageID",
    ),
    (
        "two actions",
        wsa(extra=f"<wsa:Action>{ACTION}</wsa:Action>"),
        FaultCode.SENDER,
        ["wsa:InvalidAddressingHeader", "wsa:InvalidCardinality"],
        "Action",
    ),
    (
        "two message ids",
        wsa(extra="<wsa:MessageID>urn:uuid:2</wsa:MessageID>"),
        FaultCode.SENDER,
        ["wsa:InvalidAddressingHeader", "wsa:InvalidCardinality"],
        "MessageID",
    ),
    ("empty action", wsa(action=""), FaultCode.SENDER, ["wsa:InvalidAddressingHeader"], "Action"),
    (
        "non-anonymous reply",
        wsa(extra="<wsa:ReplyTo><wsa:Address>http://client/cb</wsa:Address></wsa:ReplyTo>"),
        FaultCode.SENDER,
        ["wsa:InvalidAddressingHeader", "wsa:OnlyAnonymousAddressSupported"],
        "ReplyTo",
    ),
    (
        "reply without address",
        wsa(extra="<wsa:ReplyTo/>"),
        FaultCode.SENDER,
        ["wsa:InvalidAddressingHeader", "wsa:MissingAddressInEPR"],
        "ReplyTo",
    ),
    (
        "non-anonymous fault endpoint",
        wsa(extra="<wsa:FaultTo><wsa:Address>http://c/f</wsa:Address></wsa:FaultTo>"),
        FaultCode.SENDER,
        ["wsa:InvalidAddressingHeader", "wsa:OnlyAnonymousAddressSupported"],
        "FaultTo",
    ),
    (
        "must understand",
        wsa(extra="<x:Security xmlns:x='urn:sec' s:mustUnderstand='true'/>"),
        FaultCode.MUST_UNDERSTAND,
        [],
        None,
    ),
    (
        "must understand old wsa",
        wsa(
            extra=(
                "<o:Action xmlns:o='http://schemas.xmlsoap.org/ws/2004/08/addressing'"
                " s:mustUnderstand='1'>x</o:Action>"
            )
        ),
        FaultCode.MUST_UNDERSTAND,
        [],
        None,
    ),
    (
        "bad mustUnderstand value",
        wsa(extra="<x:H xmlns:x='urn:h' s:mustUnderstand='yes'/>"),
        FaultCode.SENDER,
        [],
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "headers", "code", "subcodes", "problem_header"),
    HEADER_FAULTS,
    ids=[c[0] for c in HEADER_FAULTS],
)
def test_soap_header_fault(
    case: str, headers: str, code: FaultCode, subcodes: list[str], problem_header: str | None
) -> None:
    env = parse_envelope(envelope(headers))
    with pytest.raises(SoapFault) as exc:
        read_addressing(env)
    fault = fault_of(exc)
    rendered = render_fault(fault, env.message_id)
    assert codes(rendered) == [f"soap:{code.value}", *subcodes]
    assert_valid_soap12(rendered)
    root = etree.fromstring(rendered)
    expected_action = faults.WSA_FAULT_ACTION if subcodes else faults.SOAP_FAULT_ACTION
    assert root.findtext(f".//{ns.qn(A, 'Action')}") == expected_action
    if env.message_id:
        assert root.findtext(f".//{ns.qn(A, 'RelatesTo')}") == env.message_id
    if problem_header is not None:
        qname = root.find(f".//{ns.qn(S, 'Detail')}/{ns.qn(A, 'ProblemHeaderQName')}")
        assert qname is not None
        prefix, _, local = (qname.text or "").partition(":")
        assert local == problem_header and qname.nsmap[prefix] == A


def test_soap_must_understand_fault_names_the_header() -> None:
    env = parse_envelope(envelope(wsa(extra="<x:Security xmlns:x='urn:sec' s:mustUnderstand='true'/>")))
    with pytest.raises(SoapFault) as exc:
        read_addressing(env)
    fault = fault_of(exc)
    assert fault.http_status == 500
    root = etree.fromstring(render_fault(fault, env.message_id))
    blocks = root.findall(f"{ns.qn(S, 'Header')}/{ns.qn(S, 'NotUnderstood')}")
    assert len(blocks) == 1
    prefix, _, local = (blocks[0].get("qname") or "").partition(":")
    assert local == "Security" and blocks[0].nsmap[prefix] == "urn:sec"


def test_soap_action_not_supported_fault() -> None:
    fault = faults.action_not_supported("urn:nope", "/xds/registry")
    rendered = render_fault(fault, "urn:uuid:r")
    assert codes(rendered) == ["soap:Sender", "wsa:ActionNotSupported"]
    assert_valid_soap12(rendered)
    root = etree.fromstring(rendered)
    assert (
        root.findtext(f".//{ns.qn(S, 'Detail')}/{ns.qn(A, 'ProblemAction')}/{ns.qn(A, 'Action')}")
        == "urn:nope"
    )
    assert root.findtext(f".//{ns.qn(A, 'Action')}") == faults.WSA_FAULT_ACTION
    assert fault.http_status == 400


def test_soap_http_action_parameter_must_match_wsa_action() -> None:
    check_action_parameter(ACTION, None)
    check_action_parameter(ACTION, "")
    check_action_parameter(ACTION, ACTION)
    with pytest.raises(SoapFault) as exc:
        check_action_parameter(ACTION, "urn:ihe:iti:2007:RegisterDocumentSet-b")
    rendered = render_fault(fault_of(exc))
    assert codes(rendered) == ["soap:Sender", "wsa:InvalidAddressingHeader", "wsa:ActionMismatch"]
    assert_valid_soap12(rendered)


def test_soap_receiver_fault_is_valid() -> None:
    fault = faults.receiver("boom")
    assert fault.http_status == 500
    element = fault_element(fault)
    assert [v.text for v in element.iter(ns.qn(S, "Value"))] == ["soap:Receiver"]
    assert_valid_soap12(render_fault(fault, "urn:uuid:x"))


def test_soap_plain_soap_fault_from_a_handler_is_valid() -> None:
    fault = SoapFault(FaultCode.SENDER, "not a ProvideAndRegisterDocumentSetRequest")
    assert_valid_soap12(render_fault(fault, "urn:uuid:x"))


def test_soap_billion_laughs_is_rejected_without_expansion() -> None:
    lol = (
        b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
        + b"".join(
            f"<!ENTITY lol{i} '{'&lol' + str(i - 1) + ';' if i > 1 else '&lol;'}'>".encode()
            for i in range(1, 10)
        )
        + b"]>"
        + envelope(wsa(), body="<x>&lol9;</x>").split(b"?>", 1)[1]
    )
    with pytest.raises(SoapFault) as exc:
        parse_envelope(lol)
    assert fault_of(exc).code is FaultCode.SENDER


def test_soap_external_entity_is_not_resolved(tmp_path: object) -> None:
    xxe = (
        b"<?xml version='1.0'?><!DOCTYPE e [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
        + envelope(wsa(), body="<x>&x;</x>").split(b"?>", 1)[1]
    )
    with pytest.raises(SoapFault) as exc:
        parse_envelope(xxe)
    assert "passwd" not in fault_of(exc).reason or "root:" not in fault_of(exc).reason


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_soap_parse_envelope_returns_or_faults_on_any_bytes(data: bytes) -> None:
    with contextlib.suppress(SoapFault):
        read_addressing(parse_envelope(data))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                wsa(),
                f"<wsa:Action>{ACTION}</wsa:Action>",
                "<wsa:MessageID>urn:uuid:z</wsa:MessageID>",
                "<wsa:ReplyTo><wsa:Address>x</wsa:Address></wsa:ReplyTo>",
                "<wsa:ReplyTo/>",
                "<x:H xmlns:x='urn:h' s:mustUnderstand='true'/>",
                "<x:H xmlns:x='urn:h' s:mustUnderstand='maybe'/>",
                "<wsa:RelatesTo>urn:uuid:q</wsa:RelatesTo>",
                "<wsa:FaultTo><wsa:Address>y</wsa:Address></wsa:FaultTo>",
            ]
        ),
        max_size=5,
    )
)
def test_soap_read_addressing_returns_or_faults(headers: list[str]) -> None:
    try:
        addressing = read_addressing(parse_envelope(envelope("".join(headers))))
    except SoapFault as fault:
        assert_valid_soap12(render_fault(fault, "urn:uuid:x"))
    else:
        assert addressing.action and addressing.message_id
