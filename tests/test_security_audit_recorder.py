"""The audit recorder (xds_hub.audit.recorder): batched, off the transaction's path, never failing it.

On SQLite and PostgreSQL: what is submitted is stored in one batch; a message that cannot be built
is skipped (and the others stored); while the audit table cannot take rows, ``submit`` still returns
at once and the records stay queued, then are stored once the database takes them again; hostile
text in a message still makes well-formed XML.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

from lxml import etree
from sqlalchemy import func, select, text

from xds_hub.audit import events
from xds_hub.audit.model import AuditMessage, AuditSource, Outcome
from xds_hub.audit.recorder import AuditRecorder
from xds_hub.audit.tables import audit_patient, audit_record
from xds_hub.audit.xml import to_xml
from xds_hub.storage.stores import Stores

SOURCE = AuditSource("xds-hub@test", "urn:oid:1.2.3.4")
HUB = events.Node("https://hub.test:8443/xds/registry", "hub.test", "42")


def query_message(patient: str, reason: str | None = None) -> AuditMessage:
    consumer = events.Node("http://www.w3.org/2005/08/addressing/anonymous", "10.1.2.3", None, "Hopital B")
    return events.stored_query(
        SOURCE,
        consumer,
        HUB,
        "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d",
        b"<query:AdhocQueryRequest/>",
        patient,
        outcome=Outcome.SERIOUS_FAILURE if reason else Outcome.SUCCESS,
        description=reason,
        when=dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC),
    )


def counts(stores: Stores) -> tuple[int, int]:
    with stores.engine.connect() as conn:
        records = conn.execute(select(func.count()).select_from(audit_record)).scalar_one()
        links = conn.execute(select(func.count()).select_from(audit_patient)).scalar_one()
    return int(records), int(links)


def test_recorder_stores_what_is_submitted_and_skips_what_cannot_be_built(stores: Stores) -> None:
    recorder = AuditRecorder(stores.engine)

    def broken() -> list[AuditMessage]:
        raise ValueError("a builder bug")

    for i in range(20):
        recorder.submit(lambda i=i: [query_message(f"P{i}^^^&1.2.3&ISO")])
    recorder.submit(broken)
    assert recorder.flush(30)
    assert counts(stores) == (20, 20)
    assert recorder.recorded == 20
    recorder.close()
    recorder.submit(lambda: [query_message("late^^^&1.2.3&ISO")])  # ignored after close
    assert counts(stores) == (20, 20)


def test_audit_waits_out_a_database_that_refuses_it(stores: Stores) -> None:
    with stores.engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_patient RENAME TO audit_patient_away"))
    recorder = AuditRecorder(stores.engine)
    began = time.monotonic()
    recorder.submit(lambda: [query_message("P1^^^&1.2.3&ISO")])
    assert time.monotonic() - began < 0.05  # the transaction never waits for the audit trail
    assert not recorder.flush(1.0)  # queued, not stored
    with stores.engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_patient_away RENAME TO audit_patient"))
    assert recorder.flush(30)
    assert counts(stores) == (1, 1)
    recorder.close()


def test_hostile_text_makes_well_formed_audit_xml() -> None:
    message = query_message("P1^^^&1.2.3&ISO", reason='bad \x00\x01 <&> "quoted"\r\n\ttab')
    requestor = dataclasses.replace(message.participants[0], user_name='O="<Evil>"\n')
    message = dataclasses.replace(message, participants=(requestor, *message.participants[1:]))
    root = etree.fromstring(to_xml(message))
    assert root.findtext("EventIdentification/EventOutcomeDescription") == (
        'bad \ufffd\ufffd <&> "quoted"\r\n\ttab'
    )
    assert root.find("ActiveParticipant").get("UserName") == 'O="<Evil>"\n'
    assert root.find("ActiveParticipant").get("NetworkAccessPointTypeCode") == "2"
