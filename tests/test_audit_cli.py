"""`xds-hub audit --patient ID [--json]`: who accessed which patient's documents and images, when and how,
read from the local audit trail (ITI-20)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import new_patient_id
from tests.hubproc import db_url_for, drop_pg_database
from xds_hub.audit import events
from xds_hub.audit.model import Action
from xds_hub.audit.store import record
from xds_hub.config import DEMO_DOMAIN, load_settings
from xds_hub.security.access import NodeIdentity
from xds_hub.storage.db import make_engine
from xds_hub.storage.migrate import upgrade

SETTINGS = load_settings(None)
SOURCE = events.audit_source(SETTINGS)
HOPA = NodeIdentity("CN=Hopital A,O=Region", ("URI:urn:oid:1.2.3.100",), DEMO_DOMAIN.establishments[0])
HOPB = NodeIdentity("CN=Hopital B,O=Region", (), DEMO_DOMAIN.establishments[1])
T0 = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def db(db_backend: str, tmp_path: Path) -> Iterator[str]:
    url = db_url_for(db_backend, tmp_path)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    if db_backend == "postgresql":
        drop_pg_database(url)


def _cli(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xds_hub", "audit", *args, "--db", url, "--data", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _populate(url: str, patient: str, other: str) -> None:
    engine = make_engine(url)
    a = events.peer("http://www.w3.org/2005/08/addressing/anonymous", "10.0.0.1", HOPA)
    b = events.peer("HOPB_MR", "10.0.0.2", HOPB)
    repo = events.hub_http(SETTINGS, "/xds/repository")
    doc = events.DocumentRef("1.2.3.100.1.1", DEMO_DOMAIN.repository_unique_id)
    study = events.StudyRef("1.2.840.1.1", {"1.2.840.10008.5.1.4.1.1.4": ("1.2.840.1.1.1",)})
    try:
        record(events.submission_import(SOURCE, "ITI-41", a, repo, patient, "1.2.3.100.1.2", when=T0), engine)
        record(
            events.document_export(
                SOURCE,
                b,
                repo,
                [doc],
                DEMO_DOMAIN.home_community_id,
                patient,
                when=T0 + dt.timedelta(hours=2),
            ),
            engine,
        )
        record(
            events.instances_transferred(
                SOURCE,
                b,
                events.hub_dicom(SETTINGS),
                [study],
                "L7^^^&1.2.3.200&ISO",
                Action.CREATE,
                requestor=b,
                when=T0 + dt.timedelta(hours=1),
            ),
            engine,
            aliases=[patient],
        )
        record(
            events.document_export(SOURCE, a, repo, [doc], DEMO_DOMAIN.home_community_id, other, when=T0),
            engine,
        )
    finally:
        engine.dispose()


def test_audit_cli_lists_who_accessed_a_patient(db: str, tmp_path: Path) -> None:
    patient, other = new_patient_id(), new_patient_id()
    _populate(db, patient, other)
    out = _cli(db, tmp_path, "--patient", patient).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "TRANSACTION", "ACTION", "OUTCOME", "WHO", "FROM", "PATIENT", "WHAT"]
    assert len(lines) == 4  # header + submission, image store (by alias), retrieval; not the other patient
    assert lines[1].startswith("2024-05-01T08:00:00.000Z  ITI-41 Provide and Register Document Set-b")
    assert "Hopital A <CN=Hopital A,O=Region>" in lines[1] and "submission-set 1.2.3.100.1.2" in lines[1]
    assert "DICOM Instances Transferred" in lines[2] and "study 1.2.840.1.1" in lines[2]
    assert "ITI-43 Retrieve Document Set" in lines[3] and "read" in lines[3] and "10.0.0.2" in lines[3]
    assert "document 1.2.3.100.1.1" in lines[3] and "success" in lines[3]


def test_audit_cli_json_and_bare_patient_id(db: str, tmp_path: Path) -> None:
    patient, other = new_patient_id(), new_patient_id()
    _populate(db, patient, other)
    rows = json.loads(_cli(db, tmp_path, "--patient", patient.split("^")[0], "--json").stdout)
    assert [r["transaction"] for r in rows] == ["ITI-41", None, "ITI-43"]
    retrieval = rows[2]
    assert retrieval["who"] == "HOPB_MR" and retrieval["identity"] == "Hopital B <CN=Hopital B,O=Region>"
    assert retrieval["address"] == "10.0.0.2" and retrieval["action"] == "read"
    assert retrieval["objects"] == [{"kind": "document", "id": "1.2.3.100.1.1"}]
    assert retrieval["time"] == "2024-05-01T10:00:00.000Z" and retrieval["sent"] is False
    assert rows[1]["event"] == "DICOM Instances Transferred" and rows[1]["patient_id"] == patient


def test_audit_cli_unknown_patient(db: str, tmp_path: Path) -> None:
    out = _cli(db, tmp_path, "--patient", "NOBODY^^^&1.2.3&ISO").stdout
    assert out.strip() == "no audit record about patient NOBODY^^^&1.2.3&ISO"
    assert json.loads(_cli(db, tmp_path, "--patient", "NOBODY", "--json").stdout) == []


def test_audit_cli_follows_the_pix_cross_reference(db: str, tmp_path: Path) -> None:
    """Images are audited under the establishment's local ID; asking by the affinity-domain ID finds
    them through the PIX cross-reference (and not another person's)."""
    from sqlalchemy import insert

    from xds_hub.pix.tables import pix_identity, pix_person

    patient, other = new_patient_id(), new_patient_id()
    value, authority = patient.split("^")[0], patient.split("&")[1]
    local = f"L{value}^^^&1.2.3.200&ISO"
    engine = make_engine(db)
    try:
        with engine.begin() as conn:
            person = conn.execute(
                insert(pix_person).values(created="2024").returning(pix_person.c.id)
            ).scalar_one()
            conn.execute(
                insert(pix_identity),
                [
                    {"authority": authority, "value": value, "person_id": person, "updated": "2024"},
                    {"authority": "1.2.3.200", "value": f"L{value}", "person_id": person, "updated": "2024"},
                ],
            )
        b = events.peer("HOPB_MR", "10.0.0.2", HOPB)
        study = events.StudyRef("1.2.840.1.9", {"1.2.840.10008.5.1.4.1.1.4": ("1.2.840.1.9.1",)})
        for who in (local, other):
            record(
                events.instances_transferred(
                    SOURCE, b, events.hub_dicom(SETTINGS), [study], who, Action.CREATE, requestor=b, when=T0
                ),
                engine,
            )
    finally:
        engine.dispose()
    rows = json.loads(_cli(db, tmp_path, "--patient", patient, "--json").stdout)
    assert [(r["event"], r["patient_id"]) for r in rows] == [("DICOM Instances Transferred", local)]
