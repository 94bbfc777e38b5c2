"""Registering submissions (ITI-42 semantics, ITI TF-2 3.42.4.1.3) in-process, on SQLite and PostgreSQL.

Each rule: start from a known-good submission, change one thing, expect exactly one error code.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from tests.test_registry_support import (
    SETTINGS,
    a_folder,
    assoc,
    codes,
    counts,
    document,
    fixed_now,
    known_patient,
    member,
    new_pid,
    new_uid,
    new_urn,
    on_demand,
    package,
    register,
    rejected,
    status_of,
    submission_set,
)
from xds_hub.config import CODE_KINDS
from xds_hub.domain.metadata import DocumentEntry, Folder, SubmissionSet
from xds_hub.domain.vocabulary import AssociationType, Status, SubmissionSetStatus
from xds_hub.errors import ErrorCode
from xds_hub.registry import store
from xds_hub.registry.register import register_submission
from xds_hub.storage import codec
from xds_hub.storage.db import read_transaction, write_transaction
from xds_hub.storage.schema import (
    association,
    document_entry,
    folder,
    object_author,
    object_code,
    object_reference_id,
    registry_object,
)
from xds_hub.storage.stores import Stores

# ---------------------------------------------------------------------------------------------
# Known-good submissions
# ---------------------------------------------------------------------------------------------


def test_iti42_registers_every_object_with_its_index_rows(stores: Stores) -> None:
    pid = known_patient(stores)
    d1, d2 = document(pid), document(pid)
    fol = a_folder(pid)
    sub = package(pid, (d1, d2), (fol,), extra=(member(fol.entry_uuid, d1.entry_uuid),))
    before = counts(stores.engine)
    result = register(stores, sub, now=fixed_now())
    after = counts(stores.engine)
    delta = {k: after[k] - before[k] for k in after}
    # SS, 2 docs, folder, 3 SS HasMember + folder HasMember + SS->membership HasMember
    assert delta["registry_object"] == 1 + 2 + 1 + 5
    assert delta["document_entry"] == 2
    assert delta["submission_set"] == 1
    assert delta["folder"] == 1
    assert delta["association"] == 5
    assert (
        delta["object_code"] == 2 * 8 + 1 + 1
    )  # 5 single + 1 confidentiality + 2 event; content type; folder
    assert delta["object_author"] == 3
    assert delta["object_reference_id"] == 2
    assert result.document_ids == (d1.entry_uuid, d2.entry_uuid)
    assert result.folder_ids == (fol.entry_uuid,)
    assert result.submission_set_id == sub.submission_set.entry_uuid
    assert result.deprecated_ids == () and result.warnings == ()

    with read_transaction(stores.engine) as conn:
        rows = conn.execute(
            select(registry_object).where(registry_object.c.id.in_([o for o in sub.all_ids()]))
        ).all()
        assert {r.status for r in rows} == {Status.APPROVED.value}
        assert {r.seq for r in rows} == {result.seq}
        by_id = {r.id: r for r in rows}
        stored_doc = codec.loads(DocumentEntry, by_id[d1.entry_uuid].body)
        assert stored_doc == replace(d1, logical_id=d1.entry_uuid, version="1")
        assert by_id[d1.entry_uuid].lid == d1.entry_uuid
        assert by_id[d1.entry_uuid].unique_id == d1.unique_id
        stored_folder = codec.loads(Folder, by_id[fol.entry_uuid].body)
        assert stored_folder.last_update_time == "20240506070809"
        assert codec.loads(SubmissionSet, by_id[sub.submission_set.entry_uuid].body).status is Status.APPROVED
        fol_row = conn.execute(select(folder).where(folder.c.id == fol.entry_uuid)).one()
        assert fol_row.last_update_time == "20240506070809"
        de = conn.execute(select(document_entry).where(document_entry.c.id == d1.entry_uuid)).one()
        assert (de.hash, de.size, de.repository_unique_id, de.creation_time) == (
            d1.hash,
            d1.size,
            d1.repository_unique_id,
            "20240102030405",
        )
        kinds = {
            r.kind
            for r in conn.execute(
                select(object_code.c.kind).where(object_code.c.object_id.in_(sub.all_ids()))
            )
        }
        assert kinds == set(CODE_KINDS)
        authors = (
            conn.execute(select(object_author.c.person).where(object_author.c.object_id == d1.entry_uuid))
            .scalars()
            .all()
        )
        assert authors == ["^Welby^Marcus^^^Dr"]
        refs = (
            conn.execute(
                select(object_reference_id.c.value).where(object_reference_id.c.object_id == d2.entry_uuid)
            )
            .scalars()
            .all()
        )
        assert refs == list(d2.reference_ids)


def test_iti42_approves_whatever_status_was_submitted(stores: Stores) -> None:
    pid = known_patient(stores)
    doc = document(pid, status=Status.SUBMITTED)
    sub = package(pid, (doc,), ss=submission_set(pid, status=Status.DEPRECATED))
    result = register(stores, sub)
    assert result.submission.documents[0].status is Status.APPROVED
    assert status_of(stores.engine, doc.entry_uuid) == Status.APPROVED
    assert status_of(stores.engine, sub.submission_set.entry_uuid) == Status.APPROVED


def test_iti42_registers_a_submission_set_without_documents(stores: Stores) -> None:
    pid = known_patient(stores)
    result = register(stores, package(pid))
    assert result.document_ids == ()


# ---------------------------------------------------------------------------------------------
# Patient identity
# ---------------------------------------------------------------------------------------------


def test_iti42_rejects_unknown_patient(stores: Stores) -> None:
    pid = new_pid()
    err = rejected(stores, package(pid, (document(pid),)))
    assert codes(err) == [ErrorCode.UNKNOWN_PATIENT_ID]
    assert pid in err.problems[0].context


def test_iti42_rejects_merged_away_patient(stores: Stores) -> None:
    from xds_hub.registry.register import merge_patient

    old, new = known_patient(stores), known_patient(stores)
    with write_transaction(stores.engine) as conn:
        merge_patient(conn, old, new)
    assert codes(rejected(stores, package(old, (document(old),)))) == [ErrorCode.UNKNOWN_PATIENT_ID]


# ---------------------------------------------------------------------------------------------
# entryUUIDs and uniqueIds
# ---------------------------------------------------------------------------------------------


def test_iti42_rejects_entry_uuid_already_registered(stores: Stores) -> None:
    pid = known_patient(stores)
    first = document(pid)
    register(stores, package(pid, (first,)))
    again = document(pid, entry_uuid=first.entry_uuid)
    err = rejected(stores, package(pid, (again,)))
    assert codes(err) == [ErrorCode.REGISTRY_METADATA_ERROR]
    assert first.entry_uuid in err.problems[0].context


def test_iti42_rejects_logical_id_other_than_entry_uuid(stores: Stores) -> None:
    pid = known_patient(stores)
    err = rejected(stores, package(pid, (document(pid, logical_id=new_urn()),)))
    assert codes(err) == [ErrorCode.REGISTRY_METADATA_ERROR]


def test_iti42_rejects_duplicate_submission_set_unique_id(stores: Stores) -> None:
    pid = known_patient(stores)
    first = package(pid, (document(pid),))
    register(stores, first)
    ss = submission_set(pid, unique_id=first.submission_set.unique_id)
    err = rejected(stores, package(pid, (document(pid),), ss=ss))
    assert codes(err) == [ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY]
    assert first.submission_set.unique_id in err.problems[0].context


def test_iti42_rejects_duplicate_folder_unique_id(stores: Stores) -> None:
    pid = known_patient(stores)
    fol = a_folder(pid)
    register(stores, package(pid, folders=(fol,)))
    err = rejected(stores, package(pid, folders=(a_folder(pid, unique_id=fol.unique_id),)))
    assert codes(err) == [ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY]


def test_iti42_rejects_folder_unique_id_of_a_registered_document(stores: Stores) -> None:
    pid = known_patient(stores)
    doc = document(pid)
    register(stores, package(pid, (doc,)))
    err = rejected(stores, package(pid, folders=(a_folder(pid, unique_id=doc.unique_id),)))
    assert codes(err) == [ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY]


def test_iti42_accepts_resubmitted_document_with_identical_hash_and_size(stores: Stores) -> None:
    """NIST 12004: the same document (same uniqueId, hash, size) registered again is a new DocumentEntry."""
    pid = known_patient(stores)
    content = b"the very same report"
    first = document(pid, content)
    register(stores, package(pid, (first,)))
    again = document(pid, content, unique_id=first.unique_id, hash=first.hash.upper())  # type: ignore[union-attr]
    register(stores, package(pid, (again,)))
    with read_transaction(stores.engine) as conn:
        found = store.find_documents_by_unique_id(conn, first.unique_id)
    assert [d.id for d in found] == [first.entry_uuid, again.entry_uuid]
    assert {d.status for d in found} == {Status.APPROVED.value}


def test_iti42_rejects_resubmitted_document_with_other_hash(stores: Stores) -> None:
    pid = known_patient(stores)
    first = document(pid, b"version one")
    register(stores, package(pid, (first,)))
    other = document(pid, b"version two", unique_id=first.unique_id)
    err = rejected(stores, package(pid, (other,)))
    assert codes(err) == [ErrorCode.NON_IDENTICAL_HASH]
    assert first.unique_id in err.problems[0].context


def test_iti42_rejects_resubmitted_document_with_other_size(stores: Stores) -> None:
    pid = known_patient(stores)
    first = document(pid, b"same bytes")
    register(stores, package(pid, (first,)))
    other = document(pid, b"same bytes", unique_id=first.unique_id, size=999)
    assert codes(rejected(stores, package(pid, (other,)))) == [ErrorCode.NON_IDENTICAL_SIZE]


def test_iti42_rejects_document_unique_id_of_a_registered_submission_set(stores: Stores) -> None:
    pid = known_patient(stores)
    first = package(pid, (document(pid),))
    register(stores, first)
    doc = document(pid, unique_id=first.submission_set.unique_id)
    assert codes(rejected(stores, package(pid, (doc,)))) == [ErrorCode.REGISTRY_METADATA_ERROR]


def test_iti42_rejects_value_longer_than_the_registry_stores(stores: Stores) -> None:
    """PostgreSQL would refuse it and SQLite would not: both answer XDSRegistryMetadataError."""
    pid = known_patient(stores)
    doc = document(pid, mime_type="text/" + "x" * 200)
    assert codes(rejected(stores, package(pid, (doc,)))) == [ErrorCode.REGISTRY_METADATA_ERROR]


# ---------------------------------------------------------------------------------------------
# Atomicity
# ---------------------------------------------------------------------------------------------


def test_iti42_failing_submission_writes_nothing(stores: Stores) -> None:
    pid = known_patient(stores)
    taken = document(pid, b"registered")
    register(stores, package(pid, (taken,)))
    before = counts(stores.engine)
    fol = a_folder(pid)
    docs = (document(pid), document(pid), document(pid, b"different", unique_id=taken.unique_id))
    sub = package(pid, docs, (fol,), extra=(member(fol.entry_uuid, docs[0].entry_uuid),))
    assert codes(rejected(stores, sub)) == [ErrorCode.NON_IDENTICAL_HASH]
    assert counts(stores.engine) == before


def test_iti42_caller_failure_after_registration_writes_nothing(stores: Stores) -> None:
    """ITI-41 / RAD-68 register and then write repository rows in the same transaction."""
    pid = known_patient(stores)
    before = counts(stores.engine)
    sub = package(pid, (document(pid), document(pid)))
    try:
        with write_transaction(stores.engine) as conn:
            register_submission(conn, sub, SETTINGS)
            raise RuntimeError("repository failed")
    except RuntimeError:
        pass
    assert counts(stores.engine) == before


def test_iti42_reports_every_problem_of_a_submission(stores: Stores) -> None:
    pid = known_patient(stores)
    first = package(pid, (document(pid, b"one"),))
    register(stores, first)
    ss = submission_set(pid, unique_id=first.submission_set.unique_id)
    doc = document(pid, b"two", unique_id=first.documents[0].unique_id)
    err = rejected(
        stores, package(pid, (doc,), extra=(assoc(AssociationType.APND, doc.entry_uuid, new_urn()),), ss=ss)
    )
    assert sorted(codes(err)) == sorted(
        [
            ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY,
            ErrorCode.NON_IDENTICAL_HASH,
            ErrorCode.UNRESOLVED_REFERENCE,
        ]
    )


# ---------------------------------------------------------------------------------------------
# HasMember
# ---------------------------------------------------------------------------------------------


def test_iti42_submission_set_references_registered_document(stores: Stores) -> None:
    pid = known_patient(stores)
    old = document(pid)
    first = package(pid, (old,))
    register(stores, first)
    ss = submission_set(pid)
    register(
        stores,
        package(pid, extra=(member(ss.entry_uuid, old.entry_uuid, SubmissionSetStatus.REFERENCE),), ss=ss),
    )
    with read_transaction(stores.engine) as conn:
        holders = {a.source_id for a in store.associations_of(conn, [old.entry_uuid], as_source=False)}
    assert holders == {first.submission_set.entry_uuid, ss.entry_uuid}


def test_iti42_submission_set_may_reference_document_of_another_patient(stores: Stores) -> None:
    pid, other = known_patient(stores), known_patient(stores)
    old = document(other)
    register(stores, package(other, (old,)))
    ss = submission_set(pid)
    register(
        stores,
        package(pid, extra=(member(ss.entry_uuid, old.entry_uuid, SubmissionSetStatus.REFERENCE),), ss=ss),
    )


def test_iti42_rejects_original_membership_of_registered_document(stores: Stores) -> None:
    pid = known_patient(stores)
    old = document(pid)
    register(stores, package(pid, (old,)))
    ss = submission_set(pid)
    sub = package(pid, extra=(member(ss.entry_uuid, old.entry_uuid, SubmissionSetStatus.ORIGINAL),), ss=ss)
    assert codes(rejected(stores, sub)) == [ErrorCode.REGISTRY_METADATA_ERROR]


def test_iti42_rejects_reference_to_deprecated_document(stores: Stores) -> None:
    pid = known_patient(stores)
    old = document(pid)
    register(stores, package(pid, (old,)))
    new = document(pid)
    register(
        stores, package(pid, (new,), extra=(assoc(AssociationType.RPLC, new.entry_uuid, old.entry_uuid),))
    )
    ss = submission_set(pid)
    sub = package(pid, extra=(member(ss.entry_uuid, old.entry_uuid, SubmissionSetStatus.REFERENCE),), ss=ss)
    assert codes(rejected(stores, sub)) == [ErrorCode.REGISTRY_DEPRECATED_DOCUMENT_ERROR]


def test_iti42_rejects_reference_to_unknown_object(stores: Stores) -> None:
    pid = known_patient(stores)
    ss = submission_set(pid)
    missing = new_urn()
    err = rejected(
        stores, package(pid, extra=(member(ss.entry_uuid, missing, SubmissionSetStatus.REFERENCE),), ss=ss)
    )
    assert codes(err) == [ErrorCode.UNRESOLVED_REFERENCE]
    assert missing in err.problems[0].context


def test_iti42_registered_folder_gains_new_and_registered_documents(stores: Stores) -> None:
    pid = known_patient(stores)
    fol = a_folder(pid)
    old = document(pid)
    register(stores, package(pid, (old,), (fol,)), now=fixed_now())
    new = document(pid)
    result = register(
        stores,
        package(
            pid,
            (new,),
            extra=(member(fol.entry_uuid, new.entry_uuid), member(fol.entry_uuid, old.entry_uuid)),
        ),
    )
    assert result.updated_folder_ids == (fol.entry_uuid,)
    with read_transaction(stores.engine) as conn:
        touched = conn.execute(
            select(folder.c.last_update_time).where(folder.c.id == fol.entry_uuid)
        ).scalar_one()
        assert touched > "20240506070809"
        assert store.folders_containing(conn, [new.entry_uuid, old.entry_uuid]) == {
            new.entry_uuid: [fol.entry_uuid],
            old.entry_uuid: [fol.entry_uuid],
        }


def test_iti42_rejects_folder_membership_across_patients(stores: Stores) -> None:
    pid, other = known_patient(stores), known_patient(stores)
    fol = a_folder(other)
    register(stores, package(other, folders=(fol,)))
    doc = document(pid)
    err = rejected(stores, package(pid, (doc,), extra=(member(fol.entry_uuid, doc.entry_uuid),)))
    assert codes(err) == [ErrorCode.PATIENT_ID_DOES_NOT_MATCH]


def test_iti42_rejects_has_member_from_a_document(stores: Stores) -> None:
    pid = known_patient(stores)
    old = document(pid)
    register(stores, package(pid, (old,)))
    doc = document(pid)
    err = rejected(stores, package(pid, (doc,), extra=(member(old.entry_uuid, doc.entry_uuid),)))
    assert codes(err) == [ErrorCode.REGISTRY_METADATA_ERROR]


def test_iti42_rejects_has_member_from_another_submission_set(stores: Stores) -> None:
    pid = known_patient(stores)
    first = package(pid, (document(pid),))
    register(stores, first)
    doc = document(pid)
    sub = package(pid, (doc,), extra=(member(first.submission_set.entry_uuid, doc.entry_uuid),))
    assert codes(rejected(stores, sub)) == [ErrorCode.REGISTRY_METADATA_ERROR]


def test_iti42_rejects_update_only_association_types(stores: Stores) -> None:
    pid = known_patient(stores)
    old = document(pid)
    register(stores, package(pid, (old,)))
    ss = submission_set(pid)
    sub = package(
        pid, extra=(assoc(AssociationType.UPDATE_AVAILABILITY_STATUS, ss.entry_uuid, old.entry_uuid),), ss=ss
    )
    assert codes(rejected(stores, sub)) == [ErrorCode.REGISTRY_METADATA_ERROR]


# ---------------------------------------------------------------------------------------------
# Document relationships
# ---------------------------------------------------------------------------------------------


def test_iti42_appends_transforms_and_signs_a_registered_document(stores: Stores) -> None:
    pid = known_patient(stores)
    old = document(pid)
    register(stores, package(pid, (old,)))
    for kind in (AssociationType.APND, AssociationType.XFRM, AssociationType.SIGNS):
        new = document(pid)
        register(stores, package(pid, (new,), extra=(assoc(kind, new.entry_uuid, old.entry_uuid),)))
    assert status_of(stores.engine, old.entry_uuid) == Status.APPROVED


@pytest.mark.parametrize("kind", [AssociationType.SIGNS, AssociationType.APND, AssociationType.XFRM])
def test_iti42_relates_documents_of_the_same_submission(stores: Stores, kind: AssociationType) -> None:
    pid = known_patient(stores)
    original, related = document(pid), document(pid)
    sub = package(pid, (original, related), extra=(assoc(kind, related.entry_uuid, original.entry_uuid),))
    register(stores, sub)
    assert status_of(stores.engine, original.entry_uuid) == Status.APPROVED


def test_iti42_rejects_snapshot_of_document_of_the_same_submission(stores: Stores) -> None:
    pid = known_patient(stores)
    od, snap = on_demand(pid), document(pid)
    sub = package(
        pid, (od, snap), extra=(assoc(AssociationType.IS_SNAPSHOT_OF, snap.entry_uuid, od.entry_uuid),)
    )
    assert codes(rejected(stores, sub)) == [ErrorCode.REGISTRY_METADATA_ERROR]


def test_iti42_rejects_relationship_to_unknown_document(stores: Stores) -> None:
    pid = known_patient(stores)
    for kind in (AssociationType.RPLC, AssociationType.XFRM_RPLC, AssociationType.APND, AssociationType.XFRM):
        new = document(pid)
        err = rejected(stores, package(pid, (new,), extra=(assoc(kind, new.entry_uuid, new_urn()),)))
        assert codes(err) == [ErrorCode.UNRESOLVED_REFERENCE], kind


def test_iti42_rejects_relationship_to_deprecated_document(stores: Stores) -> None:
    pid = known_patient(stores)
    old, replacement = document(pid), document(pid)
    register(stores, package(pid, (old,)))
    register(
        stores,
        package(
            pid, (replacement,), extra=(assoc(AssociationType.RPLC, replacement.entry_uuid, old.entry_uuid),)
        ),
    )
    for kind in (AssociationType.RPLC, AssociationType.XFRM_RPLC, AssociationType.APND, AssociationType.XFRM):
        new = document(pid)
        err = rejected(stores, package(pid, (new,), extra=(assoc(kind, new.entry_uuid, old.entry_uuid),)))
        assert codes(err) == [ErrorCode.REGISTRY_DEPRECATED_DOCUMENT_ERROR], kind


def test_iti42_rejects_relationship_across_patients(stores: Stores) -> None:
    pid, other = known_patient(stores), known_patient(stores)
    old = document(other)
    register(stores, package(other, (old,)))
    new = document(pid)
    err = rejected(
        stores, package(pid, (new,), extra=(assoc(AssociationType.RPLC, new.entry_uuid, old.entry_uuid),))
    )
    assert codes(err) == [ErrorCode.PATIENT_ID_DOES_NOT_MATCH]
    assert status_of(stores.engine, old.entry_uuid) == Status.APPROVED


def test_iti42_rejects_relationship_to_a_folder(stores: Stores) -> None:
    pid = known_patient(stores)
    fol = a_folder(pid)
    register(stores, package(pid, folders=(fol,)))
    new = document(pid)
    err = rejected(
        stores, package(pid, (new,), extra=(assoc(AssociationType.APND, new.entry_uuid, fol.entry_uuid),))
    )
    assert codes(err) == [ErrorCode.REGISTRY_METADATA_ERROR]


def test_iti42_rejects_replacement_target_in_the_same_submission(stores: Stores) -> None:
    pid = known_patient(stores)
    a, b = document(pid), document(pid)
    err = rejected(
        stores, package(pid, (a, b), extra=(assoc(AssociationType.RPLC, b.entry_uuid, a.entry_uuid),))
    )
    assert codes(err) == [ErrorCode.REGISTRY_METADATA_ERROR]


def test_iti42_rejects_document_replaced_twice_in_one_submission(stores: Stores) -> None:
    pid = known_patient(stores)
    old = document(pid)
    register(stores, package(pid, (old,)))
    a, b = document(pid), document(pid)
    extra = (
        assoc(AssociationType.RPLC, a.entry_uuid, old.entry_uuid),
        assoc(AssociationType.RPLC, b.entry_uuid, old.entry_uuid),
    )
    assert codes(rejected(stores, package(pid, (a, b), extra=extra))) == [ErrorCode.REGISTRY_METADATA_ERROR]


def test_iti42_snapshot_of_on_demand_document(stores: Stores) -> None:
    pid = known_patient(stores)
    od = on_demand(pid)
    register(stores, package(pid, (od,)))
    snap = document(pid)
    register(
        stores,
        package(pid, (snap,), extra=(assoc(AssociationType.IS_SNAPSHOT_OF, snap.entry_uuid, od.entry_uuid),)),
    )
    assert status_of(stores.engine, od.entry_uuid) == Status.APPROVED


def test_iti42_rejects_snapshot_of_stable_document(stores: Stores) -> None:
    pid = known_patient(stores)
    stable = document(pid)
    register(stores, package(pid, (stable,)))
    snap = document(pid)
    sub = package(
        pid, (snap,), extra=(assoc(AssociationType.IS_SNAPSHOT_OF, snap.entry_uuid, stable.entry_uuid),)
    )
    assert codes(rejected(stores, sub)) == [ErrorCode.REGISTRY_METADATA_ERROR]


def test_iti42_replacement_chain_deprecates_each_predecessor(stores: Stores) -> None:
    pid = known_patient(stores)
    chain = [document(pid)]
    register(stores, package(pid, (chain[0],)))
    for _ in range(3):
        new = document(pid, title="next version")
        result = register(
            stores,
            package(pid, (new,), extra=(assoc(AssociationType.RPLC, new.entry_uuid, chain[-1].entry_uuid),)),
        )
        assert result.deprecated_ids == (chain[-1].entry_uuid,)
        chain.append(new)
    assert [status_of(stores.engine, d.entry_uuid) for d in chain] == [Status.DEPRECATED.value] * 3 + [
        Status.APPROVED.value
    ]
    with read_transaction(stores.engine) as conn:
        de = conn.execute(
            select(document_entry.c.status).where(document_entry.c.id == chain[0].entry_uuid)
        ).scalar_one()
    assert de == Status.DEPRECATED.value


def test_iti42_transform_replace_deprecates_original(stores: Stores) -> None:
    pid = known_patient(stores)
    old, new = document(pid), document(pid)
    register(stores, package(pid, (old,)))
    register(
        stores,
        package(pid, (new,), extra=(assoc(AssociationType.XFRM_RPLC, new.entry_uuid, old.entry_uuid),)),
    )
    assert status_of(stores.engine, old.entry_uuid) == Status.DEPRECATED


def test_iti42_replacing_deprecates_addenda_and_transformations(stores: Stores) -> None:
    pid = known_patient(stores)
    original, addendum, transform, addendum_of_transform, signature = (document(pid) for _ in range(5))
    register(stores, package(pid, (original,)))
    register(
        stores,
        package(
            pid, (addendum,), extra=(assoc(AssociationType.APND, addendum.entry_uuid, original.entry_uuid),)
        ),
    )
    register(
        stores,
        package(
            pid, (transform,), extra=(assoc(AssociationType.XFRM, transform.entry_uuid, original.entry_uuid),)
        ),
    )
    register(
        stores,
        package(
            pid,
            (addendum_of_transform,),
            extra=(assoc(AssociationType.APND, addendum_of_transform.entry_uuid, transform.entry_uuid),),
        ),
    )
    register(
        stores,
        package(
            pid,
            (signature,),
            extra=(assoc(AssociationType.SIGNS, signature.entry_uuid, original.entry_uuid),),
        ),
    )
    new = document(pid)
    result = register(
        stores,
        package(pid, (new,), extra=(assoc(AssociationType.RPLC, new.entry_uuid, original.entry_uuid),)),
    )
    assert set(result.deprecated_ids) == {
        original.entry_uuid,
        addendum.entry_uuid,
        transform.entry_uuid,
        addendum_of_transform.entry_uuid,
    }
    assert status_of(stores.engine, signature.entry_uuid) == Status.APPROVED
    assert status_of(stores.engine, new.entry_uuid) == Status.APPROVED


def test_iti42_replacement_joins_the_folders_of_the_replaced_document(stores: Stores) -> None:
    pid = known_patient(stores)
    f1, f2, f3 = a_folder(pid), a_folder(pid), a_folder(pid)
    old = document(pid)
    register(
        stores,
        package(
            pid,
            (old,),
            (f1, f2, f3),
            extra=(member(f1.entry_uuid, old.entry_uuid), member(f2.entry_uuid, old.entry_uuid)),
        ),
        now=fixed_now(),
    )
    new = document(pid)
    sub = package(
        pid,
        (new,),
        extra=(
            assoc(AssociationType.RPLC, new.entry_uuid, old.entry_uuid),
            member(f2.entry_uuid, new.entry_uuid),
        ),
    )
    result = register(stores, sub)
    assert set(result.updated_folder_ids) == {f1.entry_uuid, f2.entry_uuid}
    added = [
        a
        for a in result.submission.associations
        if a.entry_uuid not in {x.entry_uuid for x in sub.associations}
    ]
    # one new membership (f1; f2 was submitted) and the SubmissionSet's HasMember to it
    assert [(a.source, a.target) for a in added] == [
        (f1.entry_uuid, new.entry_uuid),
        (sub.submission_set.entry_uuid, added[0].entry_uuid),
    ]
    with read_transaction(stores.engine) as conn:
        assert store.folders_containing(conn, [new.entry_uuid]) == {
            new.entry_uuid: sorted([f1.entry_uuid, f2.entry_uuid])
        }
        times = dict(
            conn.execute(
                select(folder.c.id, folder.c.last_update_time).where(
                    folder.c.id.in_([f1.entry_uuid, f2.entry_uuid, f3.entry_uuid])
                )
            ).all()
        )
        stored = conn.execute(
            select(association.c.status).where(association.c.id == added[0].entry_uuid)
        ).scalar_one()
    assert times[f3.entry_uuid] == "20240506070809"
    assert times[f1.entry_uuid] > "20240506070809" and times[f2.entry_uuid] > "20240506070809"
    assert stored == Status.APPROVED.value


def test_iti42_replacement_carries_membership_over_the_whole_chain(stores: Stores) -> None:
    pid = known_patient(stores)
    fol = a_folder(pid)
    v1 = document(pid)
    register(stores, package(pid, (v1,), (fol,), extra=(member(fol.entry_uuid, v1.entry_uuid),)))
    v2, v3 = document(pid), document(pid)
    register(stores, package(pid, (v2,), extra=(assoc(AssociationType.RPLC, v2.entry_uuid, v1.entry_uuid),)))
    register(stores, package(pid, (v3,), extra=(assoc(AssociationType.RPLC, v3.entry_uuid, v2.entry_uuid),)))
    with read_transaction(stores.engine) as conn:
        assert store.folders_containing(conn, [v3.entry_uuid]) == {v3.entry_uuid: [fol.entry_uuid]}


def test_iti42_rejects_new_member_for_registered_folder_of_other_kind(stores: Stores) -> None:
    pid = known_patient(stores)
    fol = a_folder(pid)
    register(stores, package(pid, folders=(fol,)))
    other_fol = a_folder(pid)
    sub = package(pid, folders=(other_fol,), extra=(member(fol.entry_uuid, other_fol.entry_uuid),))
    assert codes(rejected(stores, sub)) == [ErrorCode.REGISTRY_METADATA_ERROR]


def test_iti42_unique_ids_of_objects_in_one_registry_are_looked_up_together(stores: Stores) -> None:
    """A large submission costs a handful of statements (smoke test of the chunked lookups)."""
    pid = known_patient(stores)
    docs = tuple(document(pid) for _ in range(600))
    result = register(stores, package(pid, docs))
    assert len(result.document_ids) == 600
    with read_transaction(stores.engine) as conn:
        assert len(store.find_by_unique_ids(conn, [d.unique_id for d in docs])) == 600
        assert len(store.find_by_ids(conn, [d.entry_uuid for d in docs] + [new_uid()])) == 600


def test_iti42_statement_count_does_not_grow_with_the_submission(stores: Stores) -> None:
    """One multi-row statement per table: a submission of 40 documents costs what one of 1 does."""
    from sqlalchemy import event

    pid = known_patient(stores)
    executed: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        executed.append(statement)

    event.listen(stores.engine, "before_cursor_execute", count)
    try:
        sizes = {}
        for n in (1, 40):
            executed.clear()
            register(stores, package(pid, tuple(document(pid) for _ in range(n))))
            sizes[n] = len(executed)
    finally:
        event.remove(stores.engine, "before_cursor_execute", count)
    assert sizes[1] == sizes[40]
    assert sizes[1] <= 12, executed
