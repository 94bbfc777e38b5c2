"""Patient merge in the registry (Patient Identity Feed A40 / PRPA_IN201304UV02 as applied by
:func:`xds_hub.registry.register.merge_patient`), on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select

from tests.test_registry_support import (
    a_folder,
    codes,
    counts,
    document,
    known_patient,
    member,
    new_pid,
    package,
    register,
    rejected,
)
from xds_hub.errors import ErrorCode
from xds_hub.registry.patients import is_known
from xds_hub.registry.register import merge_patient
from xds_hub.storage import codec
from xds_hub.storage.db import read_transaction, write_transaction
from xds_hub.storage.schema import document_entry, folder, patient, registry_object, submission_set
from xds_hub.storage.stores import Stores


def _merge(stores: Stores, subsumed: str, surviving: str) -> int:
    with write_transaction(stores.engine) as conn:
        return merge_patient(conn, subsumed, surviving)


def test_merge_moves_every_object_of_the_subsumed_patient(stores: Stores) -> None:
    old, new, bystander = known_patient(stores), known_patient(stores), known_patient(stores)
    fol = a_folder(old)
    d1, d2 = document(old), document(old)
    sub = package(old, (d1, d2), (fol,), extra=(member(fol.entry_uuid, d1.entry_uuid),))
    register(stores, sub)
    register(stores, package(new, (document(new),)))
    other = package(bystander, (document(bystander),))
    register(stores, other)
    before = counts(stores.engine)

    assert _merge(stores, old, new) == 4  # SubmissionSet, two documents, folder

    assert counts(stores.engine) == before
    moved = [sub.submission_set.entry_uuid, d1.entry_uuid, d2.entry_uuid, fol.entry_uuid]
    with read_transaction(stores.engine) as conn:
        rows = conn.execute(
            select(
                registry_object.c.id,
                registry_object.c.kind,
                registry_object.c.patient_id,
                registry_object.c.body,
            ).where(registry_object.c.id.in_(moved))
        ).all()
        assert {r.patient_id for r in rows} == {new}
        for r in rows:
            assert codec.loads(codec.KINDS[r.kind], r.body).patient_id == new
        for table in (document_entry, submission_set, folder):
            assert conn.execute(select(table.c.id).where(table.c.patient_id == old)).all() == []
        assert (
            conn.execute(
                select(document_entry.c.patient_id).where(document_entry.c.id == d2.entry_uuid)
            ).scalar_one()
            == new
        )
        untouched = conn.execute(
            select(registry_object.c.patient_id).where(
                registry_object.c.id == other.submission_set.entry_uuid
            )
        ).scalar_one()
        assert untouched == bystander
        assert (
            conn.execute(select(patient.c.merged_into).where(patient.c.patient_id == old)).scalar_one() == new
        )
        assert not is_known(conn, old)
        assert is_known(conn, new)


def test_merge_then_subsumed_id_is_rejected_and_surviving_accepts_replacements(stores: Stores) -> None:
    old, new = known_patient(stores), known_patient(stores)
    doc = document(old)
    register(stores, package(old, (doc,)))
    _merge(stores, old, new)
    assert codes(rejected(stores, package(old, (document(old),)))) == [ErrorCode.UNKNOWN_PATIENT_ID]
    # The moved document now belongs to the surviving patient: it can be replaced under that ID.
    from tests.test_registry_support import assoc, status_of
    from xds_hub.domain.vocabulary import AssociationType

    repl = document(new)
    register(
        stores, package(new, (repl,), extra=(assoc(AssociationType.RPLC, repl.entry_uuid, doc.entry_uuid),))
    )
    assert status_of(stores.engine, doc.entry_uuid) == "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"


def test_merge_chains_point_at_the_live_id(stores: Stores) -> None:
    a, b, c = known_patient(stores), known_patient(stores), known_patient(stores)
    register(stores, package(a, (document(a),)))
    assert _merge(stores, a, b) == 2
    assert _merge(stores, b, c) == 2
    with read_transaction(stores.engine) as conn:
        merged = dict(
            conn.execute(
                select(patient.c.patient_id, patient.c.merged_into).where(patient.c.patient_id.in_([a, b, c]))
            ).all()
        )
    assert merged == {a: c, b: c, c: None}
    # merging into an ID that was merged away lands on its successor
    d = known_patient(stores)
    register(stores, package(d, (document(d),)))
    assert _merge(stores, d, a) == 2
    with read_transaction(stores.engine) as conn:
        assert conn.execute(select(patient.c.merged_into).where(patient.c.patient_id == d)).scalar_one() == c
        assert conn.execute(select(registry_object.c.id).where(registry_object.c.patient_id == c)).all() != []


def test_merge_of_unknown_or_identical_ids(stores: Stores) -> None:
    a = known_patient(stores)
    assert _merge(stores, a, a) == 0
    ghost = new_pid()
    assert _merge(stores, ghost, a) == 0
    with read_transaction(stores.engine) as conn:
        assert (
            conn.execute(select(patient.c.merged_into).where(patient.c.patient_id == ghost)).scalar_one() == a
        )
        assert is_known(conn, a)
