"""ITI-9 PIX Query over MLLP against a running hub (SQLite and PostgreSQL): RSP^K23 with QAK
OK / NF / AE and the ERR of each case of ITI TF-2a 3.9.4.2.2.6."""

from __future__ import annotations

from tests.hubproc import Hub
from tests.pix_support import (
    AFFINITY,
    CLIC,
    HOPA,
    HOPB,
    NATIONAL,
    ack_code,
    adt,
    cx,
    errors,
    new_id,
    pid3,
    qbp,
    send,
)


def _person(hub: Hub) -> tuple[str, str, str]:
    a, b, regional = cx(new_id(), HOPA), cx(new_id(), HOPB), cx(new_id("R"), AFFINITY)
    assert ack_code(send(hub.mllp_port, adt("A01", a, regional))) == "AA"
    assert ack_code(send(hub.mllp_port, adt("A01", b, regional))) == "AA"
    return a, b, regional


def test_iti9_ok_returns_every_other_identifier(hub: Hub) -> None:
    a, b, regional = _person(hub)
    reply = send(hub.mllp_port, qbp(a, tag="TAG-1", control="QC-1"))
    assert reply.message_type == "RSP" and reply.trigger_event == "K23" and reply.structure == "RSP_K23"
    assert reply.version == "2.5"
    assert ack_code(reply) == "AA"
    assert reply.first("MSA").value(2) == "QC-1"  # type: ignore[union-attr]
    qak = reply.first("QAK")
    assert qak is not None and qak.value(1) == "TAG-1" and qak.value(2) == "OK"
    assert pid3(reply) == {b, regional}  # never the queried identifier
    pid = reply.first("PID")
    assert pid is not None and pid.field_text(5) == "~^^^^^^S"
    qpd = reply.first("QPD")
    assert qpd is not None and qpd.value(3, 1, 1) == a.split("^")[0]  # the query is echoed
    assert [s.id for s in reply.segments] == ["MSH", "MSA", "QAK", "QPD", "PID"]


def test_iti9_what_domains_returned_restricts_the_answer(hub: Hub) -> None:
    a, b, regional = _person(hub)
    reply = send(hub.mllp_port, qbp(a, [f"^^^&{AFFINITY}&ISO"]))
    assert pid3(reply) == {regional}
    reply = send(hub.mllp_port, qbp(a, [f"^^^&{AFFINITY}&ISO", f"^^^&{HOPB}&ISO"]))
    assert pid3(reply) == {regional, b}


def test_iti9_nf_when_no_identifier_in_the_wanted_domain(hub: Hub) -> None:
    a, _b, _regional = _person(hub)
    reply = send(hub.mllp_port, qbp(a, [f"^^^&{CLIC}&ISO"]))
    assert ack_code(reply) == "AA"
    assert reply.first("QAK").value(2) == "NF"  # type: ignore[union-attr]
    assert reply.first("PID") is None
    assert errors(reply) == []


def test_iti9_unknown_identifier_is_ae_204_at_qpd_3_1(hub: Hub) -> None:
    reply = send(hub.mllp_port, qbp(cx(new_id(), HOPA)))
    assert ack_code(reply) == "AE"
    assert reply.first("QAK").value(2) == "AE"  # type: ignore[union-attr]
    assert errors(reply) == [("204", "QPD^1^3^1^1")]
    assert reply.first("PID") is None
    assert [s.id for s in reply.segments] == ["MSH", "MSA", "ERR", "QAK", "QPD"]


def test_iti9_unknown_assigning_authority_is_ae_204_at_qpd_3_4(hub: Hub) -> None:
    reply = send(hub.mllp_port, qbp(cx(new_id(), "1.3.6.1.4.1.21367.2005.3.3333")))
    assert ack_code(reply) == "AE"
    assert errors(reply) == [("204", "QPD^1^3^1^4")]


def test_iti9_unknown_domain_is_ae_204_at_qpd_4_n(hub: Hub) -> None:
    a, _b, _regional = _person(hub)
    reply = send(hub.mllp_port, qbp(a, [f"^^^&{AFFINITY}&ISO", "^^^&9.9.9.9&ISO", "^^^&8.8.8&ISO"]))
    assert ack_code(reply) == "AE"
    assert reply.first("QAK").value(2) == "AE"  # type: ignore[union-attr]
    assert errors(reply) == [("204", "QPD^1^4^2"), ("204", "QPD^1^4^3")]


def test_iti9_empty_qpd3_is_ae_101(hub: Hub) -> None:
    reply = send(hub.mllp_port, qbp(""))
    assert ack_code(reply) == "AE"
    assert errors(reply) == [("101", "QPD^1^3")]


def test_iti9_missing_qpd_is_ae_100(hub: Hub) -> None:
    message = "MSH|^~\\&|C|F|XDSHUB|R|20240101||QBP^Q23^QBP_Q21|Q9|P|2.5\rRCP|I\r"
    reply = send(hub.mllp_port, message)
    assert ack_code(reply) == "AE"
    assert errors(reply) == [("100", "QPD^1")]
    assert reply.first("QAK").value(2) == "AE"  # type: ignore[union-attr]


def test_iti9_other_query_is_rejected_201(hub: Hub) -> None:
    message = (
        "MSH|^~\\&|C|F|XDSHUB|R|20240101||QBP^Q22^QBP_Q21|Q9|P|2.5\rQPD|IHE PDQ Query|T|@PID.5.1^X\rRCP|I\r"
    )
    reply = send(hub.mllp_port, message)
    assert ack_code(reply) == "AR"
    assert errors(reply) == [("201", "MSH^1^9^1^2")]
    assert reply.first("QAK").value(2) == "AR"  # type: ignore[union-attr]


def test_iti9_query_by_national_id(hub: Hub) -> None:
    national, a = cx(new_id("N"), NATIONAL), cx(new_id(), HOPA)
    send(hub.mllp_port, adt("A01", a, national))
    reply = send(hub.mllp_port, qbp(national, [f"^^^&{HOPA}&ISO"]))
    assert pid3(reply) == {a}


def test_iti9_several_identifiers_in_one_domain_are_all_returned(hub: Hub) -> None:
    """ITI TF-2a 3.9.4.2.2.6 case 6: a domain with two identifiers for the patient."""
    national = cx(new_id("N"), NATIONAL)
    a1, a2 = cx(new_id(), HOPA), cx(new_id(), HOPA)
    send(hub.mllp_port, adt("A01", a1, national))
    send(hub.mllp_port, adt("A01", a2, national))
    reply = send(hub.mllp_port, qbp(national, [f"^^^&{HOPA}&ISO"]))
    assert pid3(reply) == {a1, a2}
