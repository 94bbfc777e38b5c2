"""ITI-8 Patient Identity Feed over MLLP against a running hub (SQLite and PostgreSQL): every
event, the linking rules, and every error path with its acknowledgement and HL7 error code."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest
from sqlalchemy import create_engine, select, text

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
    query_ids,
    send,
)
from xds_hub.storage.schema import patient


def _regional(hub: Hub, local: str) -> str:
    status, ids = query_ids(hub.mllp_port, local, [AFFINITY])
    assert status == "OK", ids
    (regional,) = ids
    return regional


def _registry_knows(hub: Hub, pid: str) -> str | bool | None:
    """merged_into of ``pid`` in the registry's patient table (False when absent)."""
    engine = create_engine(hub.db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(patient.c.merged_into).where(patient.c.patient_id == pid)).first()
    finally:
        engine.dispose()
    return False if row is None else row.merged_into


@pytest.mark.parametrize("event", ["A01", "A04", "A05", "A08"])
def test_iti8_event_is_acknowledged_and_allocates_a_regional_id(hub: Hub, event: str) -> None:
    local = cx(new_id(), HOPA)
    reply = send(hub.mllp_port, adt(event, local, control="C-" + event))
    assert ack_code(reply) == "AA"
    assert reply.first("MSA").value(2) == "C-" + event  # type: ignore[union-attr]
    assert reply.message_type == "ACK" and reply.trigger_event == event
    assert reply.version == "2.3.1"
    assert errors(reply) == []
    regional = _regional(hub, local)
    assert regional.endswith(f"^^^&{AFFINITY}&ISO")
    assert _registry_knows(hub, regional) is None  # registered, not merged


def test_iti8_ack_swaps_sender_and_receiver(hub: Hub) -> None:
    reply = send(hub.mllp_port, adt("A01", cx(new_id(), HOPA), sending=("HOPA_ADT", "HOPA")))
    assert reply.msh.value(3) == "XDSHUB" and reply.msh.value(4) == "REGION"
    assert reply.msh.value(5) == "HOPA_ADT" and reply.msh.value(6) == "HOPA"


def test_iti8_feed_with_local_and_regional_ids_links_them(hub: Hub) -> None:
    local, regional = cx(new_id(), HOPB), cx(new_id("R"), AFFINITY)
    assert ack_code(send(hub.mllp_port, adt("A04", local, regional))) == "AA"
    assert query_ids(hub.mllp_port, local) == ("OK", {regional})
    assert query_ids(hub.mllp_port, regional) == ("OK", {local})
    assert _registry_knows(hub, regional) is None


def test_iti8_national_id_links_two_hospitals(hub: Hub) -> None:
    national = cx(new_id("N"), NATIONAL)
    a, b = cx(new_id(), HOPA), cx(new_id(), HOPB)
    assert ack_code(send(hub.mllp_port, adt("A01", a, national))) == "AA"
    assert ack_code(send(hub.mllp_port, adt("A01", b, national, sending=("HOPB_ADT", "HOPB")))) == "AA"
    regional = _regional(hub, a)
    assert query_ids(hub.mllp_port, b) == ("OK", {a, national, regional})


def test_iti8_update_adds_an_identifier_without_relinking(hub: Hub) -> None:
    a, c = cx(new_id(), HOPA), cx(new_id(), CLIC)
    send(hub.mllp_port, adt("A01", a))
    assert ack_code(send(hub.mllp_port, adt("A08", a, c, name="DUPONT^JEANNE"))) == "AA"
    assert c in query_ids(hub.mllp_port, a)[1]


def test_iti8_refuses_silent_relinking_with_205(hub: Hub) -> None:
    national = cx(new_id("N"), NATIONAL)
    a, b = cx(new_id(), HOPA), cx(new_id(), HOPB)
    send(hub.mllp_port, adt("A01", a, national))
    send(hub.mllp_port, adt("A01", b))  # another person (its own regional ID)
    reply = send(hub.mllp_port, adt("A08", b, national))
    assert ack_code(reply) == "AE"
    assert errors(reply) == [("205", "PID^1^3^2^1")]  # the national ID, held by another patient
    assert national not in query_ids(hub.mllp_port, b)[1]  # nothing changed


def test_iti8_refuses_a_second_regional_id_with_205(hub: Hub) -> None:
    a = cx(new_id(), HOPA)
    send(hub.mllp_port, adt("A01", a))  # allocated regional ID
    reply = send(hub.mllp_port, adt("A08", a, cx(new_id("R"), AFFINITY)))
    assert ack_code(reply) == "AE"
    assert errors(reply) == [("205", "PID^1^3^2^1")]


def test_iti8_unknown_assigning_authority_is_204(hub: Hub) -> None:
    reply = send(hub.mllp_port, adt("A01", cx(new_id(), HOPA), cx(new_id(), "9.8.7.6")))
    assert ack_code(reply) == "AE"
    assert errors(reply) == [("204", "PID^1^3^2^4")]
    err = reply.first("ERR")
    assert err is not None
    assert err.value(1, comp=1) == "PID" and err.value(1, comp=4, sub=1) == "204"  # v2.3.1 ERR-1 too
    assert err.value(4) == "E"


@pytest.mark.parametrize(
    "pid3",
    [
        "L1^^^&1.2.3.100",  # no universal ID type
        "L1^^^&&ISO",  # no universal ID
        "L1^^^UNKNOWN_NS",  # namespace without a configured OID
        "L1",  # no assigning authority at all, from an unconfigured source
    ],
)
def test_iti8_malformed_assigning_authority_is_204(hub: Hub, pid3: str) -> None:
    reply = send(hub.mllp_port, adt("A01", pid3))
    assert ack_code(reply) == "AE"
    assert errors(reply) == [("204", "PID^1^3^1^4")]


def test_iti8_empty_id_number_is_101(hub: Hub) -> None:
    reply = send(hub.mllp_port, adt("A01", f"^^^&{HOPA}&ISO"))
    assert ack_code(reply) == "AE"
    assert errors(reply) == [("101", "PID^1^3^1^1")]


def test_iti8_empty_pid3_is_101(hub: Hub) -> None:
    reply = send(hub.mllp_port, adt("A01"))
    assert ack_code(reply) == "AE"
    assert errors(reply) == [("101", "PID^1^3")]


def test_iti8_only_a_national_id_is_101(hub: Hub) -> None:
    reply = send(hub.mllp_port, adt("A01", cx(new_id("N"), NATIONAL)))
    assert ack_code(reply) == "AE"
    assert errors(reply) == [("101", "PID^1^3")]


def test_iti8_missing_pid_segment_is_100(hub: Hub) -> None:
    message = "MSH|^~\\&|HOPA_ADT|HOPA|XDSHUB|REGION|20240101||ADT^A01^ADT_A01|X1|P|2.3.1\rEVN|A01|20240101\r"
    reply = send(hub.mllp_port, message)
    assert ack_code(reply) == "AE"
    assert errors(reply) == [("100", "PID^1")]


@pytest.mark.parametrize(
    ("changes", "code", "location"),
    [
        ({"msh9": "ADT^A03^ADT_A03"}, "201", "MSH^1^9^1^2"),
        ({"msh9": "ORU^R01^ORU_R01"}, "200", "MSH^1^9"),
        ({"processing": "X"}, "202", "MSH^1^11"),
        ({"version": "3.0"}, "203", "MSH^1^12"),
        ({"control": ""}, "101", "MSH^1^10"),
    ],
)
def test_iti8_unserved_message_header_is_rejected_ar(
    hub: Hub, changes: dict[str, str], code: str, location: str
) -> None:
    reply = send(hub.mllp_port, adt("A01", cx(new_id(), HOPA), **changes))
    assert ack_code(reply) == "AR"
    assert errors(reply) == [(code, location)]


def test_iti8_merge_of_local_ids_retires_the_subsumed_one(hub: Hub) -> None:
    old, new = cx(new_id(), HOPA), cx(new_id(), HOPA)
    send(hub.mllp_port, adt("A01", old))
    send(hub.mllp_port, adt("A01", new))
    old_regional, new_regional = _regional(hub, old), _regional(hub, new)
    reply = send(hub.mllp_port, adt("A40", new, mrg=[old], version="2.5"))
    assert ack_code(reply) == "AA", reply.text
    assert reply.trigger_event == "A40"
    status, ids = query_ids(hub.mllp_port, new)
    assert status == "OK" and ids == {new_regional}
    assert errors(send(hub.mllp_port, adt("A08", old))) == [("205", "PID^1^3^1^1")]  # no resurrection
    # The two persons joined: the subsumed person's regional ID followed into the survivor's.
    assert _registry_knows(hub, old_regional) == new_regional
    assert _registry_knows(hub, new_regional) is None


def test_iti8_merge_of_regional_ids_moves_the_links(hub: Hub) -> None:
    a, b = cx(new_id(), HOPA), cx(new_id(), HOPB)
    r1, r2 = cx(new_id("R"), AFFINITY), cx(new_id("R"), AFFINITY)
    send(hub.mllp_port, adt("A01", a, r1))
    send(hub.mllp_port, adt("A01", b, r2))
    reply = send(hub.mllp_port, adt("A40", r2, mrg=[r1], sending=("REGION_MPI", "REGION")))
    assert ack_code(reply) == "AA", reply.text
    assert query_ids(hub.mllp_port, a) == ("OK", {b, r2})
    assert _registry_knows(hub, r1) == r2
    # ITI-9 no longer knows the subsumed ID.
    status, _ = query_ids(hub.mllp_port, r1)
    assert status == "AE"


def test_iti8_merge_repeated_is_acknowledged(hub: Hub) -> None:
    old, new = cx(new_id(), HOPA), cx(new_id(), HOPA)
    send(hub.mllp_port, adt("A01", old))
    send(hub.mllp_port, adt("A01", new))
    assert ack_code(send(hub.mllp_port, adt("A40", new, mrg=[old]))) == "AA"
    assert ack_code(send(hub.mllp_port, adt("A40", new, mrg=[old]))) == "AA"


def test_iti8_merge_into_a_new_id_renames(hub: Hub) -> None:
    old, new = cx(new_id(), HOPA), cx(new_id(), HOPA)
    send(hub.mllp_port, adt("A01", old))
    regional = _regional(hub, old)
    assert ack_code(send(hub.mllp_port, adt("A40", new, mrg=[old]))) == "AA"
    assert query_ids(hub.mllp_port, new) == ("OK", {regional})


def test_iti8_merge_of_an_unknown_id_is_204(hub: Hub) -> None:
    new = cx(new_id(), HOPA)
    send(hub.mllp_port, adt("A01", new))
    reply = send(hub.mllp_port, adt("A40", new, mrg=[cx(new_id(), HOPA)]))
    assert ack_code(reply) == "AE"
    assert errors(reply) == [("204", "MRG^1^1^1^1")]


def test_iti8_merge_of_a_regional_id_into_a_local_one_is_204(hub: Hub) -> None:
    a, r = cx(new_id(), HOPA), cx(new_id("R"), AFFINITY)
    send(hub.mllp_port, adt("A01", a, r))
    b = cx(new_id(), HOPB)
    send(hub.mllp_port, adt("A01", b))
    reply = send(hub.mllp_port, adt("A40", b, mrg=[r]))
    assert ack_code(reply) == "AE"
    assert errors(reply) == [("204", "PID^1^3^1^1")]


def test_iti8_merge_without_mrg_is_100(hub: Hub) -> None:
    reply = send(hub.mllp_port, adt("A40", cx(new_id(), HOPA)))
    assert ack_code(reply) == "AE"
    assert errors(reply) == [("100", "MRG^1")]


def test_iti8_merge_with_empty_mrg1_is_101(hub: Hub) -> None:
    reply = send(hub.mllp_port, adt("A40", cx(new_id(), HOPA), mrg=["^^^"]))
    assert ack_code(reply) == "AE"
    assert errors(reply) == [("101", "MRG^1^1")]


def test_iti8_hl7_null_identifier_is_ignored(hub: Hub) -> None:
    local = cx(new_id(), HOPA)
    assert ack_code(send(hub.mllp_port, adt("A01", f'""^^^&{HOPB}&ISO', local))) == "AA"
    assert query_ids(hub.mllp_port, local)[0] == "OK"


def test_iti8_acknowledged_feed_survives_a_crash(hub_factory: Callable[..., Hub]) -> None:
    """Durable: an AA means committed, even if the hub is killed right after."""
    h = hub_factory()
    local = cx(new_id(), HOPA)
    assert ack_code(send(h.mllp_port, adt("A01", local))) == "AA"
    h.stop(signal.SIGKILL)
    h.start()
    assert query_ids(h.mllp_port, local)[0] == "OK"
    engine = create_engine(h.db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM pix_identity")).scalar_one() == 2
    finally:
        engine.dispose()
