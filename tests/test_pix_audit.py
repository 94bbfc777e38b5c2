"""The PIX audit rows (in-process): the templated rows of the feed path are the messages the audit
builders make (same XML, same summary columns, same patients), with values that need XML escaping;
rows are stored with a transaction or through the queue, and a failing audit insert never fails
the feed writes sent with it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select, text

from xds_hub.audit import events
from xds_hub.audit.model import Action
from xds_hub.audit.tables import audit_patient, audit_record
from xds_hub.config import DEMO_DOMAIN, Settings
from xds_hub.errors import AckCode, Hl7Error, Hl7ErrorCode
from xds_hub.pix.audit import COLUMNS, AuditQueue, PixAuditor, insert, row_of
from xds_hub.pix.session import DbSession
from xds_hub.pix.store import PixSql
from xds_hub.storage.db import write_transaction
from xds_hub.storage.stores import Stores

SETTINGS = Settings(domain=DEMO_DOMAIN)
IDS = ['Zoë&<"x">^^^&1.2.3.200&ISO', "N1^^^&1.2.250.1.213.1.4.8&ISO"]


def _same(templated: str, built: str) -> bool:
    strip = re.compile(r'EventDateTime="[^"]+"')
    return strip.sub("", templated) == strip.sub("", built)


@pytest.fixture
def auditor() -> PixAuditor:
    return PixAuditor(SETTINGS)


def test_pix_audit_templated_feed_row_is_the_builders_message(auditor: PixAuditor) -> None:
    requestor = events.peer("HOPB_ADT|HOPB", "127.0.0.1")
    hub = auditor.hub_mllp("XDSHUB|REGION")
    for _ in range(2):  # the first builds the template, the second fills it
        row = auditor.patient_record("ITI-8", requestor, hub, Action.CREATE, IDS, "C&1<", ["R1^^^&1.3&ISO"])
    built = row_of(events.patient_record(auditor.source, "ITI-8", requestor, hub, Action.CREATE, IDS, "C&1<"))
    assert _same(row.xml, built.xml)
    skip = {COLUMNS.index("event_ns"), COLUMNS.index("message")}
    assert [v for i, v in enumerate(row.values) if i not in skip] == [
        v for i, v in enumerate(built.values) if i not in skip
    ]
    assert row.patients == (*IDS, "R1^^^&1.3&ISO")


def test_pix_audit_templated_query_row_is_the_builders_message(auditor: PixAuditor) -> None:
    requestor = events.peer("CONSUMER|HOPB", "127.0.0.1")
    hub = auditor.hub_mllp("XDSHUB|REGION")
    query = "QPD|IHE PIX Query|Q1|Zoë^^^&1.2.3.200&ISO".encode()
    for _ in range(2):
        row = auditor.query("ITI-9", requestor, hub, query, 'M"1', IDS)
    built = row_of(events.pix_query(auditor.source, "ITI-9", requestor, hub, query, 'M"1', IDS))
    assert _same(row.xml, built.xml)
    assert row.values[COLUMNS.index("objects")] == built.values[COLUMNS.index("objects")]
    # A failure is built in full, with its outcome and the HL7 error in the description.
    failure = Hl7Error.one(Hl7ErrorCode.UNKNOWN_KEY_IDENTIFIER, "unknown", "QPD^1^3^1^1", AckCode.ERROR)
    refused = auditor.query("ITI-9", requestor, hub, query, "M2", IDS[:1], failure)
    assert refused.values[COLUMNS.index("outcome")] == 8
    assert refused.values[COLUMNS.index("outcome_description")] == "AE: 204 unknown"


def _count(stores: Stores) -> tuple[int, int]:
    with stores.engine.connect() as conn:
        records = conn.execute(select(func.count()).select_from(audit_record)).scalar_one()
        patients = conn.execute(select(func.count()).select_from(audit_patient)).scalar_one()
    return int(records), int(patients)


def test_pix_audit_rows_stored_with_the_transaction_and_by_the_queue(
    auditor: PixAuditor, stores: Stores
) -> None:
    requestor = events.peer("HOPB_ADT|HOPB", "127.0.0.1")
    hub = auditor.hub_mllp("XDSHUB|REGION")
    rows = [auditor.patient_record("ITI-8", requestor, hub, Action.CREATE, IDS, f"C{i}") for i in range(3)]
    with write_transaction(stores.engine) as conn:
        assert insert(conn, rows)
    assert _count(stores) == (3, 6)
    queue = AuditQueue(stores.engine)
    queue.put(rows[:2])
    queue.flush()
    assert _count(stores) == (5, 10)


def test_pix_audit_insert_failure_keeps_the_feed_writes(auditor: PixAuditor, stores: Stores) -> None:
    requestor = events.peer("HOPB_ADT|HOPB", "127.0.0.1")
    hub = auditor.hub_mllp("XDSHUB|REGION")
    good = auditor.patient_record("ITI-8", requestor, hub, Action.CREATE, IDS, "C1")
    # audit_record.message is NOT NULL: the second row fails after the first was inserted.
    bad = type(good)(
        tuple(None if c == "message" else v for c, v in zip(COLUMNS, good.values, strict=True)), ()
    )
    with write_transaction(stores.engine) as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS feed_probe (x INTEGER)"))
        assert not insert(conn, [good, bad], [(f"INSERT INTO feed_probe (x) VALUES ({_p(stores)})", [1])])
    with stores.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM feed_probe")).scalar_one() == 1
    assert _count(stores) == (0, 0)  # the whole audit part undone, the feed write kept


def _p(stores: Stores) -> str:
    return "?" if stores.engine.dialect.name == "sqlite" else "%s"


@pytest.mark.parametrize("fails", [False, True])
def test_pix_audit_insert_with_the_commit(auditor: PixAuditor, stores: Stores, fails: bool) -> None:
    """The MLLP batch's way (PostgreSQL: BEGIN with the first query, the writes, the audit rows and
    COMMIT in one script): committed with the feed writes; a failing audit part is undone and the
    feed writes are still committed, by the session's own commit."""
    requestor = events.peer("HOPB_ADT|HOPB", "127.0.0.1")
    hub = auditor.hub_mllp("XDSHUB|REGION")
    good = auditor.patient_record("ITI-8", requestor, hub, Action.CREATE, IDS, "C1")
    bad = type(good)(
        tuple(None if c == "message" else v for c, v in zip(COLUMNS, good.values, strict=True)), ()
    )
    with stores.engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS feed_probe (x INTEGER)"))
    db = DbSession(stores.engine)
    try:
        with db.write(begin=False) as conn:
            before = [] if db.sqlite else [(DbSession.BEGIN_WRITE, ())]
            before.append((f"INSERT INTO feed_probe (x) VALUES ({_p(stores)})", (7,)))
            assert insert(conn, [good, bad] if fails else [good, good], before, commit=True) is not fails
        # The session goes on with its next transaction on the same connection.
        with db.write() as conn:
            PixSql(conn.dialect.name).script(
                conn, [(f"INSERT INTO feed_probe (x) VALUES ({_p(stores)})", (8,))]
            )
    finally:
        db.release()
    with stores.engine.connect() as conn:
        assert conn.execute(text("SELECT x FROM feed_probe ORDER BY x")).scalars().all() == [7, 8]
    assert _count(stores) == ((0, 0) if fails else (2, 4))
