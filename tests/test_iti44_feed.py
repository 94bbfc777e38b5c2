"""ITI-44 Patient Identity Feed HL7 V3 over SOAP 1.2 at /pix against a running hub (SQLite and
PostgreSQL): add, revise, merge; MCCI_IN000002UV01 acknowledgements with their details, each valid
against the official schema; the v3 and v2 feeds share one cross-reference."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence

import pytest
import requests
from lxml import etree

from tests.hubproc import Hub
from tests.oracle import SAMPLES, assert_valid
from tests.pix_support import (
    AFFINITY,
    HOPA,
    HOPB,
    NATIONAL,
    V3,
    cx,
    new_id,
    post_v3,
    query_ids,
    v3_text,
)
from xds_hub import ns
from xds_hub.client.soap import build_envelope
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.pix.model import Identifier

PATIENT = "v3:controlActProcess/v3:subject/v3:registrationEvent/v3:subject1/v3:patient"


def _sample(name: str) -> etree._Element:
    path = SAMPLES / "pixv3" / name
    if not path.is_file():
        pytest.skip(f"sample {name} not found")
    return etree.parse(str(path)).getroot()


def feed_message(
    interaction: str,
    ids: list[Identifier],
    others: Sequence[Identifier] = (),
    prior: Identifier | None = None,
) -> etree._Element:
    """A known-good sample with the patient's identifiers replaced."""
    sample = {
        "PRPA_IN201301UV02": "PIX_FEED_REG_Maximal_Request.xml",
        "PRPA_IN201302UV02": "PIX_FEED_REV_Maximal_Request.xml",
        "PRPA_IN201304UV02": "PIX_FEED_MERGE_Maximal_Request.xml",
    }[interaction]
    body = copy.deepcopy(_sample(sample))
    body.find(ns.qn(ns.HL7V3, "id")).set("root", str(uuid.uuid4()))  # type: ignore[union-attr]
    (patient,) = body.xpath(PATIENT, namespaces=V3)
    old = patient.findall(ns.qn(ns.HL7V3, "id"))
    for e in old[1:]:
        patient.remove(e)
    first = old[0]
    for key in list(first.attrib):
        del first.attrib[key]
    first.set("root", ids[0].authority)
    first.set("extension", ids[0].value)
    for n, ident in enumerate(ids[1:], start=1):
        extra = etree.Element(ns.qn(ns.HL7V3, "id"), root=ident.authority, extension=ident.value)
        patient.insert(n, extra)
    person = patient.find(ns.qn(ns.HL7V3, "patientPerson"))
    for e in body.xpath(f"{PATIENT}/v3:patientPerson/v3:asOtherIDs", namespaces=V3):
        e.getparent().remove(e)
    for ident in others:
        assert person is not None
        other = etree.SubElement(person, ns.qn(ns.HL7V3, "asOtherIDs"), classCode="PAT")
        etree.SubElement(other, ns.qn(ns.HL7V3, "id"), root=ident.authority, extension=ident.value)
        org = etree.SubElement(
            other, ns.qn(ns.HL7V3, "scopingOrganization"), classCode="ORG", determinerCode="INSTANCE"
        )
        etree.SubElement(org, ns.qn(ns.HL7V3, "id"), root=ident.authority)
    if person is not None:  # asOtherIDs must come right after addr ... keep schema order: move them
        tail = [
            c
            for c in person
            if isinstance(c.tag, str)
            and etree.QName(c).localname in ("personalRelationship", "birthPlace", "languageCommunication")
        ]
        for c in tail:
            person.remove(c)
            person.append(c)
    if prior is not None:
        (old_id,) = body.xpath(
            "v3:controlActProcess/v3:subject/v3:registrationEvent/v3:replacementOf/v3:priorRegistration"
            "/v3:subject1/v3:priorRegisteredRole/v3:id",
            namespaces=V3,
        )
        for key in list(old_id.attrib):
            del old_id.attrib[key]
        old_id.set("root", prior.authority)
        old_id.set("extension", prior.value)
    return body


ACTIONS = {
    "PRPA_IN201301UV02": SoapAction.ITI44_ADD,
    "PRPA_IN201302UV02": SoapAction.ITI44_REVISE,
    "PRPA_IN201304UV02": SoapAction.ITI44_MERGE,
}


def feed(
    hub: Hub,
    interaction: str,
    *ids: Identifier,
    others: Sequence[Identifier] = (),
    prior: Identifier | None = None,
) -> etree._Element:
    body = feed_message(interaction, list(ids), others, prior)
    reply = post_v3(hub, ACTIONS[interaction], body)
    assert etree.QName(reply).localname == "MCCI_IN000002UV01"
    assert_valid("MCCI_IN000002UV01.xsd", reply)
    assert v3_text(reply, "v3:acknowledgement/v3:targetMessage/v3:id/@root") == [
        body.find(ns.qn(ns.HL7V3, "id")).get("root")  # type: ignore[union-attr]
    ]
    return reply


def ack(reply: etree._Element) -> str:
    (code,) = v3_text(reply, "v3:acknowledgement/v3:typeCode/@code")
    return code


def details(reply: etree._Element) -> list[tuple[str, str]]:
    out = []
    for d in reply.xpath("v3:acknowledgement/v3:acknowledgementDetail", namespaces=V3):
        out.append((d.find(ns.qn(ns.HL7V3, "code")).get("code"), d.findtext(ns.qn(ns.HL7V3, "location"))))
    return out


def ident(authority: str, prefix: str = "L") -> Identifier:
    return Identifier(authority, new_id(prefix))


def test_iti44_add_links_and_is_seen_by_iti9(hub: Hub) -> None:
    a, regional = ident(HOPA), ident(AFFINITY, "R")
    reply = feed(hub, "PRPA_IN201301UV02", a, regional)
    assert ack(reply) == "AA" and details(reply) == []
    assert v3_text(reply, "v3:interactionId/@extension") == ["MCCI_IN000002UV01"]
    # Receiver and sender are the request's sender and receiver.
    assert v3_text(reply, "v3:receiver/v3:device/v3:id/@root") == ["1.2.840.114350.1.13.99998.8734"]
    assert v3_text(reply, "v3:sender/v3:device/v3:id/@root") == ["1.2.840.114350.1.13.99999.4567"]
    assert query_ids(hub.mllp_port, cx(a.value, a.authority)) == ("OK", {cx(regional.value, AFFINITY)})


def test_iti44_other_ids_of_a_linking_authority_link(hub: Hub) -> None:
    national, a, b = ident(NATIONAL, "N"), ident(HOPA), ident(HOPB)
    assert (
        ack(feed(hub, "PRPA_IN201301UV02", a, others=[national, Identifier("2.16.840.1.113883.4.1", "999")]))
        == "AA"
    )
    assert ack(feed(hub, "PRPA_IN201302UV02", b, others=[national])) == "AA"
    status, ids = query_ids(hub.mllp_port, cx(b.value, HOPB), [HOPA, NATIONAL])
    assert (status, ids) == ("OK", {cx(a.value, HOPA), cx(national.value, NATIONAL)})


def test_iti44_merge(hub: Hub) -> None:
    old, new = ident(HOPA), ident(HOPA)
    feed(hub, "PRPA_IN201301UV02", old)
    feed(hub, "PRPA_IN201301UV02", new)
    reply = feed(hub, "PRPA_IN201304UV02", new, prior=old)
    assert ack(reply) == "AA", etree.tostring(reply)
    assert query_ids(hub.mllp_port, cx(old.value, HOPA))[0] == "AE"


def test_iti44_unknown_assigning_authority_is_ae_204(hub: Hub) -> None:
    reply = feed(hub, "PRPA_IN201301UV02", ident(HOPA), ident("2.999.9.9"))
    assert ack(reply) == "AE"
    assert details(reply) == [
        ("204", "/PRPA_IN201301UV02/controlActProcess/subject/registrationEvent/subject1/patient/id[2]")
    ]
    (detail,) = reply.xpath("v3:acknowledgement/v3:acknowledgementDetail", namespaces=V3)
    assert detail.get("typeCode") == "E"
    assert detail.find(ns.qn(ns.HL7V3, "code")).get("codeSystem") == "2.16.840.1.113883.12.357"


def test_iti44_relinking_is_ae_205(hub: Hub) -> None:
    a, b = ident(HOPA), ident(HOPB)
    feed(hub, "PRPA_IN201301UV02", a)
    feed(hub, "PRPA_IN201301UV02", b)
    reply = feed(hub, "PRPA_IN201302UV02", a, b)
    assert ack(reply) == "AE"
    assert [c for c, _ in details(reply)] == ["205"]


def test_iti44_merge_of_unknown_prior_is_ae_204(hub: Hub) -> None:
    new = ident(HOPA)
    feed(hub, "PRPA_IN201301UV02", new)
    reply = feed(hub, "PRPA_IN201304UV02", new, prior=ident(HOPA))
    assert ack(reply) == "AE"
    assert details(reply) == [
        (
            "204",
            "/PRPA_IN201304UV02/controlActProcess/subject/registrationEvent/replacementOf/priorRegistration"
            "/subject1/priorRegisteredRole/id",
        )
    ]


def test_iti44_missing_patient_is_ae_100(hub: Hub) -> None:
    body = feed_message("PRPA_IN201301UV02", [ident(HOPA)])
    (subject,) = body.xpath("v3:controlActProcess/v3:subject", namespaces=V3)
    subject.getparent().remove(subject)
    reply = post_v3(hub, SoapAction.ITI44_ADD, body)
    assert ack(reply) == "AE"
    assert [c for c, _ in details(reply)] == ["100"]
    assert_valid("MCCI_IN000002UV01.xsd", reply)


def test_iti44_patient_without_id_is_ae_101(hub: Hub) -> None:
    body = feed_message("PRPA_IN201301UV02", [ident(HOPA)])
    (pid,) = body.xpath(f"{PATIENT}/v3:id", namespaces=V3)
    pid.attrib.clear()
    pid.set("nullFlavor", "UNK")
    reply = post_v3(hub, SoapAction.ITI44_ADD, body)
    assert ack(reply) == "AE"
    assert details(reply) == [
        ("101", "/PRPA_IN201301UV02/controlActProcess/subject/registrationEvent/subject1/patient/id")
    ]


def test_iti44_body_of_another_interaction_is_a_soap_fault(hub: Hub) -> None:
    body = feed_message("PRPA_IN201302UV02", [ident(HOPA)])
    url = hub.url("/pix")
    resp = requests.post(
        url,
        data=build_envelope(SoapAction.ITI44_ADD, url, body),
        headers={"Content-Type": "application/soap+xml; charset=UTF-8"},
        timeout=30,
    )
    assert resp.status_code in (400, 500)
    env = etree.fromstring(resp.content)
    assert env.find(f"{{{ns.SOAP12}}}Body/{{{ns.SOAP12}}}Fault") is not None
