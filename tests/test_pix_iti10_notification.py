"""ITI-10 PIX Update Notification: ADT^A31 to configured consumers when a link changes; queued in
the feed's transaction, delivered in order, retried while the consumer is down, never blocking the
feed (a real hub on SQLite and PostgreSQL, a fake consumer over MLLP)."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import create_engine, select

from tests.hubproc import TEST_CONFIG, Hub, free_port
from tests.pix_support import (
    AFFINITY,
    HOPA,
    HOPB,
    NATIONAL,
    ack_code,
    adt,
    consumer,
    cx,
    new_id,
    pid3,
    send,
)
from xds_hub.pix.tables import pix_notification


def _config(port: int, domains: tuple[str, ...] = (AFFINITY, HOPB)) -> str:
    listed = ", ".join(f'"{d}"' for d in domains)
    return (
        TEST_CONFIG
        + f"""
[pix]
application = "REGION_PIX"
facility = "REGION"

[[pix.subscriber]]
name = "Hopital B"
host = "127.0.0.1"
port = {port}
domains = [{listed}]
application = "HOPB_PIX"
facility = "HOPB"
"""
    )


def _statuses(hub: Hub) -> list[tuple[str, str, int]]:
    engine = create_engine(hub.db_url)
    try:
        with engine.connect() as conn:
            t = pix_notification
            return [
                (r.subscriber, r.status, r.attempts)
                for r in conn.execute(select(t.c.subscriber, t.c.status, t.c.attempts).order_by(t.c.id))
            ]
    finally:
        engine.dispose()


def _settled(hub: Hub, count: int, timeout: float = 10.0) -> list[tuple[str, str, int]]:
    """The outbox once ``count`` rows are no longer pending (the hub records the ACK after it)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = _statuses(hub)
        if sum(r[1] != "pending" for r in rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_iti10_link_change_notifies_the_subscriber(hub_factory: Callable[..., Hub]) -> None:
    port = free_port()
    with consumer(port) as c:
        hub = hub_factory(config_text=_config(port))
        national = cx(new_id("N"), NATIONAL)
        a, b = cx(new_id(), HOPA), cx(new_id(), HOPB)
        assert ack_code(send(hub.mllp_port, adt("A01", a, national))) == "AA"  # A + allocated regional ID
        (first,) = c.wait_for(1)
        regional = next(iter(pid3(first)))
        assert regional.endswith(f"&{AFFINITY}&ISO")
        assert ack_code(send(hub.mllp_port, adt("A01", b, national))) == "AA"  # B joins
        received = c.wait_for(2)
    assert len(received) == 2
    msg = received[1]
    assert (msg.message_type, msg.trigger_event, msg.structure, msg.version) == (
        "ADT",
        "A31",
        "ADT_A05",
        "2.5",
    )
    assert (msg.msh.value(3), msg.msh.value(4), msg.msh.value(5), msg.msh.value(6)) == (
        "REGION_PIX",
        "REGION",
        "HOPB_PIX",
        "HOPB",
    )
    assert pid3(msg) == {regional, b}  # only the subscriber's domains of interest
    pid = msg.first("PID")
    assert pid is not None and pid.field_text(5) == "~^^^^^^S"
    assert msg.first("EVN") is not None and msg.first("EVN").value(2)  # type: ignore[union-attr]
    assert msg.first("PV1").value(2) == "N"  # type: ignore[union-attr]
    assert _settled(hub, 2) == [("Hopital B", "sent", 1), ("Hopital B", "sent", 1)]


def test_iti10_no_notification_without_a_link_change(hub_factory: Callable[..., Hub]) -> None:
    port = free_port()
    with consumer(port) as c:
        hub = hub_factory(config_text=_config(port))
        a = cx(new_id(), HOPA)
        send(hub.mllp_port, adt("A01", a))
        c.wait_for(1)
        assert ack_code(send(hub.mllp_port, adt("A08", a, name="DURAND^JEAN"))) == "AA"  # demographics only
        assert ack_code(send(hub.mllp_port, adt("A01", a, cx(new_id(), "9.9.9")))) == "AE"  # refused
        time.sleep(2)
        assert len(c.received) == 1


def test_iti10_consumer_down_is_retried_and_never_blocks_the_feed(hub_factory: Callable[..., Hub]) -> None:
    port = free_port()
    hub = hub_factory(config_text=_config(port))
    started = time.monotonic()
    locals_ = [cx(new_id(), HOPB) for _ in range(3)]
    for local in locals_:
        assert ack_code(send(hub.mllp_port, adt("A04", local, sending=("HOPB_ADT", "HOPB")))) == "AA"
    assert time.monotonic() - started < 10  # the feed does not wait for the consumer
    time.sleep(1.5)
    assert [s[1] for s in _statuses(hub)] == ["pending"] * 3
    with consumer(port) as c:
        received = c.wait_for(3, timeout=30)
    assert [pid3(m) & set(locals_) for m in received] == [{x} for x in locals_]  # in order
    rows = _settled(hub, 3)
    assert [s[1] for s in rows] == ["sent"] * 3
    assert rows[0][2] >= 2  # the first one was retried


def test_iti10_rejected_notification_is_not_resent(hub_factory: Callable[..., Hub]) -> None:
    port = free_port()
    with consumer(port, ack="AE") as c:
        hub = hub_factory(config_text=_config(port))
        send(hub.mllp_port, adt("A01", cx(new_id(), HOPB)))
        c.wait_for(1)
        time.sleep(3)
        assert len(c.received) == 1
    assert _settled(hub, 1) == [("Hopital B", "rejected", 1)]
