"""ITI-45 PIXV3 Query over SOAP 1.2 at /pix against a running hub (SQLite and PostgreSQL):
PRPA_IN201310UV02 with AA/OK, AA/NF and AE/AE plus acknowledgementDetail 204 (ITI TF-2b 3.45.4.2.3),
each valid against the official schema."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence

import pytest
from lxml import etree

from tests.hubproc import Hub
from tests.oracle import SAMPLES, assert_valid
from tests.pix_support import (
    AFFINITY,
    CLIC,
    HOPA,
    HOPB,
    V3,
    ack_code,
    adt,
    cx,
    new_id,
    post_v3,
    send,
    v3_text,
)
from xds_hub import ns
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.pix.model import Identifier

PARAMS = "v3:controlActProcess/v3:queryByParameter/v3:parameterList"
PATH = "/PRPA_IN201309UV02/controlActProcess/queryByParameter/parameterList"


def query_message(pid: Identifier, domains: Sequence[str] = ()) -> etree._Element:
    """The NIST sample query with the patient identifier and data sources replaced."""
    path = SAMPLES / "pixv3" / "NistPixpdq_Mesa10501-04_Example_01.xml"
    if not path.is_file():
        pytest.skip("NIST PIXV3 query sample not found")
    body = copy.deepcopy(etree.parse(str(path)).getroot())
    body.find(ns.qn(ns.HL7V3, "id")).set("root", str(uuid.uuid4()))  # type: ignore[union-attr]
    (params,) = body.xpath(PARAMS, namespaces=V3)
    template = params.find(ns.qn(ns.HL7V3, "dataSource"))
    for d in params.findall(ns.qn(ns.HL7V3, "dataSource")):
        params.remove(d)
    for n, domain in enumerate(domains):
        source = copy.deepcopy(template)
        source.find(ns.qn(ns.HL7V3, "value")).attrib.clear()
        source.find(ns.qn(ns.HL7V3, "value")).set("root", domain)
        params.insert(n, source)
    value = params.find(f"{{{ns.HL7V3}}}patientIdentifier/{{{ns.HL7V3}}}value")
    value.attrib.clear()
    value.set("root", pid.authority)
    value.set("extension", pid.value)
    return body


def ask(hub: Hub, body: etree._Element) -> etree._Element:
    reply = post_v3(hub, SoapAction.ITI45, body)
    assert etree.QName(reply).localname == "PRPA_IN201310UV02"
    assert_valid("PRPA_IN201310UV02.xsd", reply)
    return reply


def summary(reply: etree._Element) -> tuple[str, str, set[Identifier]]:
    (ack,) = v3_text(reply, "v3:acknowledgement/v3:typeCode/@code")
    (code,) = v3_text(reply, "v3:controlActProcess/v3:queryAck/v3:queryResponseCode/@code")
    ids = {
        Identifier(e.get("root"), e.get("extension"))
        for e in reply.xpath(
            "v3:controlActProcess/v3:subject/v3:registrationEvent/v3:subject1/v3:patient/v3:id", namespaces=V3
        )
    }
    return ack, code, ids


def details(reply: etree._Element) -> list[tuple[str, str]]:
    return [
        (d.find(ns.qn(ns.HL7V3, "code")).get("code"), d.findtext(ns.qn(ns.HL7V3, "location")))
        for d in reply.xpath("v3:acknowledgement/v3:acknowledgementDetail", namespaces=V3)
    ]


def person(hub: Hub) -> tuple[Identifier, Identifier, Identifier]:
    a, b, r = Identifier(HOPA, new_id()), Identifier(HOPB, new_id()), Identifier(AFFINITY, new_id("R"))
    assert ack_code(send(hub.mllp_port, adt("A01", cx(a.value, HOPA), cx(r.value, AFFINITY)))) == "AA"
    assert ack_code(send(hub.mllp_port, adt("A01", cx(b.value, HOPB), cx(r.value, AFFINITY)))) == "AA"
    return a, b, r


def test_iti45_ok_returns_the_other_identifiers(hub: Hub) -> None:
    a, b, r = person(hub)
    body = query_message(a)
    reply = ask(hub, body)
    assert summary(reply) == ("AA", "OK", {b, r})
    # queryAck/queryId and queryByParameter echo the request.
    assert v3_text(reply, "v3:controlActProcess/v3:queryAck/v3:queryId/@root") == ["1.2.3.4.5"]
    assert v3_text(reply, f"{PARAMS}/v3:patientIdentifier/v3:value/@extension") == [a.value]
    assert v3_text(reply, "v3:acknowledgement/v3:targetMessage/v3:id/@root") == [
        body.find(ns.qn(ns.HL7V3, "id")).get("root")  # type: ignore[union-attr]
    ]
    assert v3_text(reply, "v3:interactionId/@extension") == ["PRPA_IN201310UV02"]


def test_iti45_data_source_restricts_the_answer(hub: Hub) -> None:
    a, b, r = person(hub)
    assert summary(ask(hub, query_message(a, [AFFINITY])))[2] == {r}
    assert summary(ask(hub, query_message(a, [AFFINITY, HOPB])))[2] == {r, b}


def test_iti45_nf_without_identifier_in_the_data_source(hub: Hub) -> None:
    a, _b, _r = person(hub)
    reply = ask(hub, query_message(a, [CLIC]))
    assert summary(reply) == ("AA", "NF", set())
    assert reply.xpath("v3:controlActProcess/v3:subject", namespaces=V3) == []


def test_iti45_unknown_identifier_is_ae_204(hub: Hub) -> None:
    reply = ask(hub, query_message(Identifier(HOPA, new_id())))
    assert summary(reply) == ("AE", "AE", set())
    assert details(reply) == [("204", f"{PATH}/patientIdentifier/value")]


def test_iti45_unknown_assigning_authority_is_ae_204(hub: Hub) -> None:
    reply = ask(hub, query_message(Identifier("1.3.6.1.4.1.21367.2005.3.3333", "ABC10503")))
    assert summary(reply)[:2] == ("AE", "AE")
    assert details(reply) == [("204", f"{PATH}/patientIdentifier/value")]


def test_iti45_unknown_data_source_is_ae_204_at_its_value(hub: Hub) -> None:
    a, _b, _r = person(hub)
    reply = ask(hub, query_message(a, [AFFINITY, "2.999.9.9"]))
    assert summary(reply)[:2] == ("AE", "AE")
    assert details(reply) == [("204", f"{PATH}/dataSource[2]/value")]


def test_iti45_missing_patient_identifier_is_ae_101(hub: Hub) -> None:
    body = query_message(Identifier(HOPA, new_id()))
    (pid,) = body.xpath(f"{PARAMS}/v3:patientIdentifier", namespaces=V3)
    pid.getparent().remove(pid)
    reply = post_v3(hub, SoapAction.ITI45, body)
    assert summary(reply)[:2] == ("AE", "AE")
    assert details(reply) == [("101", f"{PATH}/patientIdentifier/value")]
