"""Without TLS (the demo mode, the shared test hub) there is no node identity: the access rules let
every request through as before (any sourceId of the region, ITI-57/62/86 without an admin
certificate), and the audit trail still records each transaction, by network address."""

from __future__ import annotations

import dataclasses
import time

from sqlalchemy import select

from tests.hubproc import Hub
from tests.repository_support import new_pid, submission_for
from tests.test_iti57_support import SUCCESS, client, post_iti62
from xds_hub.audit.tables import audit_patient, audit_record
from xds_hub.storage.db import make_engine


def test_demo_mode_applies_no_access_rule_and_still_audits(hub: Hub) -> None:
    pid = new_pid()
    hub.add_patient(pid)
    sub, data = submission_for(pid, [b"demo"])
    sub = dataclasses.replace(
        sub, submission_set=dataclasses.replace(sub.submission_set, source_id="1.2.3.200.1")
    )
    with client(hub) as c:
        result = c.provide_and_register(sub, data)
    assert result.ok, result.errors  # Hopital B's sourceId from an unauthenticated node: accepted
    reply = post_iti62(hub, sub.all_ids())  # no admin certificate: accepted
    assert reply.body.get("status") == SUCCESS

    engine = make_engine(hub.db_url)
    r = audit_record
    query = (
        select(r.c.event_type, r.c.outcome, r.c.requestor, r.c.requestor_name, r.c.requestor_address)
        .join(audit_patient, audit_patient.c.record_id == r.c.id)
        .where(audit_patient.c.patient_id == pid)
        .order_by(r.c.id)
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with engine.connect() as conn:
                found = [tuple(row) for row in conn.execute(query)]
            if len(found) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        engine.dispose()
    anonymous = "http://www.w3.org/2005/08/addressing/anonymous"
    assert found[0] == ("ITI-41", 0, anonymous, None, "127.0.0.1")
    assert found[1][:2] == ("ITI-42", 0) and found[1][2].endswith("/xds/repository")
    assert found[2] == ("ITI-62", 0, anonymous, None, "127.0.0.1")
