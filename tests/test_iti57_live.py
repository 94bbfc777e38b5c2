"""ITI-57 Update Document Set against a running hub: real SOAP 1.2 requests over HTTP on SQLite and
PostgreSQL (the ``hub`` fixture), built with the metadata layer and checked against lcm.xsd / rs.xsd.

Each rule starts from registered metadata, sends one update and expects exactly one error code;
what ITI-18 returns afterwards is checked for the successful operations.
"""

from __future__ import annotations

import dataclasses
import threading

import pytest
from lxml import etree

from tests.hubproc import Hub
from tests.test_iti57_support import (
    APPROVED,
    DEPRECATED,
    FAILURE,
    SUCCESS,
    find_documents,
    folder_contents,
    get_documents,
    new_version,
    patient,
    post,
    post_iti57,
    query,
    register,
    registered_document,
    status_update,
    submitted,
    update,
)
from tests.test_registry_support import a_folder, assoc, document, member, new_urn, package, submission_set
from xds_hub import ns
from xds_hub.domain.metadata import Folder
from xds_hub.domain.vocabulary import AssociationType, SoapAction, StoredQuery


@pytest.fixture
def pid(hub: Hub) -> str:
    return patient(hub)


# ---------------------------------------------------------------------------------------------
# Update DocumentEntry Metadata
# ---------------------------------------------------------------------------------------------


def test_iti57_new_version_of_document_entry_replaces_it_in_queries(hub: Hub, pid: str) -> None:
    doc, fol = document(pid), a_folder(pid)
    register(hub, package(pid, (doc,), (fol,), extra=(member(fol.entry_uuid, doc.entry_uuid),)))
    folder_before, _ = folder_contents(hub, fol.entry_uuid)
    v2 = new_version(doc, title="Corrected title")

    reply = post_iti57(hub, update(pid, [(v2, "1")]))

    assert reply.outcome == (SUCCESS, [])
    assert set(find_documents(hub, pid)) == {v2.entry_uuid}
    assert find_documents(hub, pid)[v2.entry_uuid].title == "Corrected title"
    by_uid = get_documents(hub, uid=[doc.unique_id])  # $MetadataLevel 1: the latest version only
    assert set(by_uid) == {v2.entry_uuid}
    both = get_documents(hub, lid=[doc.entry_uuid], level=2)
    assert {(d.entry_uuid, d.version, d.status, d.logical_id) for d in both.values()} == {
        (doc.entry_uuid, "1", DEPRECATED, doc.entry_uuid),
        (v2.entry_uuid, "2", APPROVED, doc.entry_uuid),
    }
    folder_after, members = folder_contents(hub, fol.entry_uuid)  # association propagation
    assert members == {v2.entry_uuid}
    assert folder_before is not None and folder_after is not None
    assert folder_after.last_update_time is not None
    assert folder_after.last_update_time >= (folder_before.last_update_time or "")


def test_iti57_versions_chain_and_previous_version_must_be_the_latest(hub: Hub, pid: str) -> None:
    doc = registered_document(hub, pid)
    v2 = new_version(doc, title="v2")
    assert post_iti57(hub, update(pid, [(v2, "1")])).outcome == (SUCCESS, [])
    stale = new_version(doc, title="stale")
    reply = post_iti57(hub, update(pid, [(stale, "1")]))
    assert reply.outcome == (FAILURE, ["XDSMetadataVersionError"])
    assert reply.locations == [stale.entry_uuid]
    v3 = new_version(doc, title="v3")
    assert post_iti57(hub, update(pid, [(v3, "2")])).outcome == (SUCCESS, [])
    versions = get_documents(hub, lid=[doc.entry_uuid], level=2)
    assert {d.version: d.status for d in versions.values()} == {
        "1": DEPRECATED,
        "2": DEPRECATED,
        "3": APPROVED,
    }
    assert stale.entry_uuid not in versions


def test_iti57_symbolic_id_of_the_new_version_gets_a_uuid(hub: Hub, pid: str) -> None:
    doc = registered_document(hub, pid)
    v2 = dataclasses.replace(new_version(doc, title="symbolic"), entry_uuid="NewVersion01")
    assert post_iti57(hub, update(pid, [(v2, "1")])).outcome == (SUCCESS, [])
    [latest] = find_documents(hub, pid).values()
    assert latest.title == "symbolic" and latest.entry_uuid.startswith("urn:uuid:")
    assert latest.logical_id == doc.entry_uuid and latest.version == "2"


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("unique_id", "2.25.4242"),
        ("hash", "0" * 40),
        ("size", 999_999),
        ("repository_unique_id", "1.2.3.4.5.6"),
    ],
)
def test_iti57_rejects_a_change_of_what_belongs_to_the_document(
    hub: Hub, pid: str, attribute: str, value: object
) -> None:
    doc = registered_document(hub, pid)
    reply = post_iti57(hub, update(pid, [(new_version(doc, **{attribute: value}), "1")]))
    assert reply.outcome == (FAILURE, ["XDSMetadataUpdateError"])
    assert set(find_documents(hub, pid)) == {doc.entry_uuid}


def test_iti57_rejects_moving_a_document_to_another_patient(hub: Hub, pid: str) -> None:
    doc = registered_document(hub, pid)
    other = patient(hub)
    moved = new_version(doc, patient_id=other)
    reply = post_iti57(hub, update(other, [(moved, "1")]))
    assert reply.outcome == (FAILURE, ["XDSPatientIDReconciliationError"])
    assert find_documents(hub, other) == {}


def test_iti57_rejects_unknown_logical_id(hub: Hub, pid: str) -> None:
    ghost = new_version(document(pid))  # its lid names nothing registered
    assert post_iti57(hub, update(pid, [(ghost, "1")])).outcome == (FAILURE, ["UnresolvedReferenceException"])


def test_iti57_rejects_an_initial_version(hub: Hub, pid: str) -> None:
    doc = document(pid)  # lid absent: a first version belongs to ITI-42
    assert post_iti57(hub, update(pid, [(doc, "1")])).outcome == (FAILURE, ["XDSMetadataUpdateError"])
    assert find_documents(hub, pid) == {}


def test_iti57_rejects_a_new_version_without_previous_version(hub: Hub, pid: str) -> None:
    doc = registered_document(hub, pid)
    sub = update(pid, [(new_version(doc), "1")])
    hm = sub.associations[0]
    sub = dataclasses.replace(sub, associations=(dataclasses.replace(hm, extra_slots=()),))
    assert post_iti57(hub, sub).outcome == (FAILURE, ["XDSMetadataUpdateError"])


def test_iti57_rejects_an_association_of_no_operation(hub: Hub, pid: str) -> None:
    doc, other = registered_document(hub, pid), registered_document(hub, pid)
    stray = assoc(AssociationType.SIGNS, doc.entry_uuid, other.entry_uuid)
    sub = update(pid, [(new_version(doc), "1")], extra=(stray,))
    assert post_iti57(hub, sub).outcome == (FAILURE, ["XDSMetadataUpdateOperationError"])
    assert set(find_documents(hub, pid)) == {doc.entry_uuid, other.entry_uuid}


def test_iti57_rejects_a_request_without_operation(hub: Hub, pid: str) -> None:
    assert post_iti57(hub, update(pid)).outcome == (FAILURE, ["XDSMetadataUpdateOperationError"])


def test_iti57_update_of_a_document_of_an_unknown_patient_submission_set(hub: Hub, pid: str) -> None:
    doc = registered_document(hub, pid)
    stranger = f"{new_urn()[9:17]}^^^&1.3.6.1.4.1.21367.13.20.1000&ISO"
    sub = update(pid, [(new_version(doc), "1")], ss=submission_set(stranger))
    assert post_iti57(hub, sub).outcome == (FAILURE, ["XDSUnknownPatientId", "XDSPatientIdDoesNotMatch"])


def test_iti57_is_atomic_one_bad_operation_changes_nothing(hub: Hub, pid: str) -> None:
    doc, other = registered_document(hub, pid), registered_document(hub, pid)
    ss = submission_set(pid)
    bad = status_update(ss.entry_uuid, other.entry_uuid, DEPRECATED, APPROVED)  # it is Approved
    reply = post_iti57(hub, update(pid, [(new_version(doc, title="never"), "1")], (bad,), ss=ss))
    assert reply.outcome == (FAILURE, ["XDSMetadataUpdateError"])
    assert set(get_documents(hub, lid=[doc.entry_uuid], level=2)) == {doc.entry_uuid}
    assert set(find_documents(hub, pid)) == {doc.entry_uuid, other.entry_uuid}
    result = query(hub, StoredQuery.GET_SUBMISSION_SETS, {"$uuid": [doc.entry_uuid]})
    assert ss.entry_uuid not in {o.entry_uuid for o in result.objects if hasattr(o, "entry_uuid")}


def test_iti57_concurrent_updates_of_one_version_exactly_one_wins(hub: Hub, pid: str) -> None:
    doc = registered_document(hub, pid)
    subs = [update(pid, [(new_version(doc, title=f"racer {i}"), "1")]) for i in range(4)]
    outcomes: list[tuple[str, list[str]]] = []
    barrier = threading.Barrier(len(subs))

    def send(sub: object) -> None:
        barrier.wait()
        outcomes.append(post_iti57(hub, sub).outcome)  # type: ignore[arg-type]

    threads = [threading.Thread(target=send, args=(s,)) for s in subs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(o[0] for o in outcomes) == sorted([SUCCESS] + [FAILURE] * 3)
    assert sorted(c for o in outcomes for c in o[1]) == ["XDSMetadataVersionError"] * 3
    assert len(get_documents(hub, lid=[doc.entry_uuid], level=2)) == 2


def test_iti57_propagates_document_relationships_unless_asked_not_to(hub: Hub, pid: str) -> None:
    doc, fol = document(pid), a_folder(pid)
    register(hub, package(pid, (doc,), (fol,), extra=(member(fol.entry_uuid, doc.entry_uuid),)))
    addendum = document(pid)
    register(
        hub,
        package(pid, (addendum,), extra=(assoc(AssociationType.APND, addendum.entry_uuid, doc.entry_uuid),)),
    )
    v2 = new_version(doc)
    assert post_iti57(hub, update(pid, [(v2, "1")])).outcome == (SUCCESS, [])
    related = query(
        hub,
        StoredQuery.GET_RELATED_DOCUMENTS,
        {"$XDSDocumentEntryEntryUUID": v2.entry_uuid, "$AssociationTypes": [AssociationType.APND.value]},
    )
    assert {d.entry_uuid for d in related.documents} == {v2.entry_uuid, addendum.entry_uuid}
    v3 = new_version(doc)
    assert post_iti57(hub, update(pid, [(v3, "2")], propagation="no")).outcome == (SUCCESS, [])
    assert folder_contents(hub, fol.entry_uuid)[1] == set()
    lonely = query(
        hub,
        StoredQuery.GET_RELATED_DOCUMENTS,
        {"$XDSDocumentEntryEntryUUID": v3.entry_uuid, "$AssociationTypes": [AssociationType.APND.value]},
    )
    assert lonely.documents == []


def test_iti57_corrects_a_deprecated_document_which_stays_deprecated(hub: Hub, pid: str) -> None:
    old = registered_document(hub, pid)
    new = document(pid)
    register(hub, package(pid, (new,), extra=(assoc(AssociationType.RPLC, new.entry_uuid, old.entry_uuid),)))
    fixed = new_version(old, title="corrected after replacement")
    assert post_iti57(hub, update(pid, [(fixed, "1")])).outcome == (SUCCESS, [])
    statuses = {d.entry_uuid: d.status for d in find_documents(hub, pid, (APPROVED, DEPRECATED)).values()}
    assert statuses == {new.entry_uuid: APPROVED, fixed.entry_uuid: DEPRECATED}


# ---------------------------------------------------------------------------------------------
# Update availabilityStatus
# ---------------------------------------------------------------------------------------------


def test_iti57_deprecates_and_restores_a_document(hub: Hub, pid: str) -> None:
    doc = registered_document(hub, pid)
    ss = submission_set(pid)
    reply = post_iti57(
        hub, update(pid, extra=(status_update(ss.entry_uuid, doc.entry_uuid, APPROVED, DEPRECATED),), ss=ss)
    )
    assert reply.outcome == (SUCCESS, [])
    assert find_documents(hub, pid) == {}
    assert set(find_documents(hub, pid, (DEPRECATED,))) == {doc.entry_uuid}
    ss2 = submission_set(pid)
    again = update(pid, extra=(status_update(ss2.entry_uuid, doc.entry_uuid, APPROVED, DEPRECATED),), ss=ss2)
    assert post_iti57(hub, again).outcome == (FAILURE, ["XDSMetadataUpdateError"])  # OriginalStatus wrong
    ss3 = submission_set(pid)
    back = update(pid, extra=(status_update(ss3.entry_uuid, doc.entry_uuid, DEPRECATED, APPROVED),), ss=ss3)
    assert post_iti57(hub, back).outcome == (SUCCESS, [])
    assert set(find_documents(hub, pid)) == {doc.entry_uuid}


def test_iti57_status_update_of_an_older_version_is_rejected(hub: Hub, pid: str) -> None:
    doc = registered_document(hub, pid)
    assert post_iti57(hub, update(pid, [(new_version(doc), "1")])).outcome == (SUCCESS, [])
    ss = submission_set(pid)
    sub = update(pid, extra=(status_update(ss.entry_uuid, doc.entry_uuid, DEPRECATED, APPROVED),), ss=ss)
    assert post_iti57(hub, sub).outcome == (FAILURE, ["XDSMetadataUpdateError"])


def test_iti57_status_update_of_an_unknown_object(hub: Hub, pid: str) -> None:
    ss = submission_set(pid)
    sub = update(pid, extra=(status_update(ss.entry_uuid, new_urn(), APPROVED, DEPRECATED),), ss=ss)
    assert post_iti57(hub, sub).outcome == (FAILURE, ["UnresolvedReferenceException"])


def test_iti57_status_update_needs_a_known_status_value(hub: Hub, pid: str) -> None:
    doc = registered_document(hub, pid)
    ss = submission_set(pid)
    bad = status_update(
        ss.entry_uuid, doc.entry_uuid, APPROVED, "urn:oasis:names:tc:ebxml-regrep:StatusType:Submitted"
    )
    assert post_iti57(hub, update(pid, extra=(bad,), ss=ss)).outcome == (FAILURE, ["XDSMetadataUpdateError"])


def test_iti57_new_version_and_status_update_in_one_request(hub: Hub, pid: str) -> None:
    """ITI57-015: the new version is created, then gets the new status; the previous one is deprecated."""
    doc = registered_document(hub, pid)
    ss = submission_set(pid)
    v2 = new_version(doc, title="retired")
    sub = update(
        pid, [(v2, "1")], (status_update(ss.entry_uuid, doc.entry_uuid, APPROVED, DEPRECATED),), ss=ss
    )
    assert post_iti57(hub, sub).outcome == (SUCCESS, [])
    versions = get_documents(hub, lid=[doc.entry_uuid], level=2)
    assert {d.version: d.status for d in versions.values()} == {"1": DEPRECATED, "2": DEPRECATED}
    assert find_documents(hub, pid) == {}


# ---------------------------------------------------------------------------------------------
# Folders and associations
# ---------------------------------------------------------------------------------------------


def test_iti57_new_version_of_folder_keeps_its_documents(hub: Hub, pid: str) -> None:
    doc, fol = document(pid), a_folder(pid)
    register(hub, package(pid, (doc,), (fol,), extra=(member(fol.entry_uuid, doc.entry_uuid),)))
    f2 = new_version(fol, title="Renamed episode")
    assert post_iti57(hub, update(pid, [(f2, "1")])).outcome == (SUCCESS, [])
    by_uid = query(hub, StoredQuery.GET_FOLDER_AND_CONTENTS, {"$XDSFolderUniqueId": fol.unique_id})
    [latest] = [o for o in by_uid.objects if isinstance(o, Folder)]
    assert (latest.entry_uuid, latest.title, latest.version) == (f2.entry_uuid, "Renamed episode", "2")
    assert {d.entry_uuid for d in by_uid.documents} == {doc.entry_uuid}
    found = query(
        hub, StoredQuery.FIND_FOLDERS, {"$XDSFolderPatientId": pid, "$XDSFolderStatus": [APPROVED.value]}
    )
    assert {o.entry_uuid for o in found.objects if isinstance(o, Folder)} == {f2.entry_uuid}
    bad = new_version(fol, unique_id="2.25.77")
    assert post_iti57(hub, update(pid, [(bad, "2")])).outcome == (FAILURE, ["XDSMetadataUpdateError"])


def test_iti57_submit_association_adds_a_document_to_a_folder(hub: Hub, pid: str) -> None:
    doc, fol = document(pid), a_folder(pid)
    register(hub, package(pid, (doc,), (fol,)))
    before, members = folder_contents(hub, fol.entry_uuid)
    assert members == set()
    ss = submission_set(pid)
    link, trigger = submitted(ss.entry_uuid, member(fol.entry_uuid, doc.entry_uuid))
    assert post_iti57(hub, update(pid, extra=(link, trigger), ss=ss)).outcome == (SUCCESS, [])
    after, members = folder_contents(hub, fol.entry_uuid)
    assert members == {doc.entry_uuid}
    assert after is not None and before is not None
    assert (after.last_update_time or "") >= (before.last_update_time or "")
    ss2 = submission_set(pid)
    twice = submitted(ss2.entry_uuid, member(fol.entry_uuid, doc.entry_uuid))
    assert post_iti57(hub, update(pid, extra=twice, ss=ss2)).outcome == (FAILURE, ["XDSMetadataUpdateError"])
    # removing it again: the Folder membership is deprecated (ITI-18 $MetadataLevel 1 hides it)
    ss3 = submission_set(pid)
    off = status_update(ss3.entry_uuid, link.entry_uuid, APPROVED, DEPRECATED)
    assert post_iti57(hub, update(pid, extra=(off,), ss=ss3)).outcome == (SUCCESS, [])
    assert folder_contents(hub, fol.entry_uuid)[1] == set()


def test_iti57_submit_association_rules(hub: Hub, pid: str) -> None:
    doc, fol = document(pid), a_folder(pid)
    register(hub, package(pid, (doc,), (fol,)))
    other_pid = patient(hub)
    stranger = registered_document(hub, other_pid)
    cases = [
        (member(fol.entry_uuid, new_urn()), "UnresolvedReferenceException"),
        (member(fol.entry_uuid, stranger.entry_uuid), "XDSPatientIdDoesNotMatch"),
        (member(doc.entry_uuid, fol.entry_uuid), "XDSMetadataUpdateError"),
        (assoc(AssociationType.RPLC, doc.entry_uuid, stranger.entry_uuid), "XDSMetadataUpdateError"),
    ]
    for link, code in cases:
        ss = submission_set(pid)
        reply = post_iti57(hub, update(pid, extra=submitted(ss.entry_uuid, link), ss=ss))
        assert reply.outcome == (FAILURE, [code]), link


def test_iti57_hasmember_from_a_submission_set_cannot_be_deprecated(hub: Hub, pid: str) -> None:
    doc = document(pid)
    sub = register(hub, package(pid, (doc,)))
    ss = submission_set(pid)
    target = sub.associations[0].entry_uuid  # SubmissionSet -> doc
    bad = update(pid, extra=(status_update(ss.entry_uuid, target, APPROVED, DEPRECATED),), ss=ss)
    assert post_iti57(hub, bad).outcome == (FAILURE, ["XDSMetadataUpdateError"])


# ---------------------------------------------------------------------------------------------
# The SOAP edge
# ---------------------------------------------------------------------------------------------


def test_iti57_fault_for_a_body_that_is_not_a_submission(hub: Hub) -> None:
    reply = post(hub, "/xds/registry", SoapAction.ITI57, etree.Element(ns.qn(ns.LCM, "RemoveObjectsRequest")))
    assert reply.http_status == 400
    assert reply.body.tag == ns.qn(ns.SOAP12, "Fault")


def test_iti57_response_is_related_and_valid(hub: Hub, pid: str) -> None:
    doc = registered_document(hub, pid)
    reply = post_iti57(hub, update(pid, [(new_version(doc), "1")]))  # post_iti57 checks rs.xsd
    assert (reply.http_status, reply.action, reply.status) == (200, SoapAction.ITI57_RESPONSE, SUCCESS)
    assert reply.body.find(f"{{{ns.RS}}}RegistryErrorList") is None


def test_iti57_deprecates_a_folder_and_records_the_update(hub: Hub, pid: str) -> None:
    fol = a_folder(pid)
    first = register(hub, package(pid, (), (fol,)))
    ss = submission_set(pid)
    off = status_update(ss.entry_uuid, fol.entry_uuid, APPROVED, DEPRECATED)
    assert post_iti57(hub, update(pid, extra=(off,), ss=ss)).outcome == (SUCCESS, [])
    approved = query(
        hub, StoredQuery.FIND_FOLDERS, {"$XDSFolderPatientId": pid, "$XDSFolderStatus": [APPROVED.value]}
    )
    assert approved.objects == []
    record = query(
        hub, StoredQuery.GET_SUBMISSION_SET_AND_CONTENTS, {"$XDSSubmissionSetEntryUUID": ss.entry_uuid}
    )
    kept = {o.entry_uuid for o in record.objects if hasattr(o, "entry_uuid")}
    assert ss.entry_uuid in kept
    ss2 = submission_set(pid)
    bad = status_update(ss2.entry_uuid, first.submission_set.entry_uuid, APPROVED, DEPRECATED)
    assert post_iti57(hub, update(pid, extra=(bad,), ss=ss2)).outcome == (FAILURE, ["XDSMetadataUpdateError"])


def test_iti57_the_update_submission_set_holds_the_new_version_with_its_previous_version(
    hub: Hub, pid: str
) -> None:
    doc = registered_document(hub, pid)
    sub = update(pid, [(new_version(doc), "1")])
    assert post_iti57(hub, sub).outcome == (SUCCESS, [])
    result = query(
        hub,
        StoredQuery.GET_SUBMISSION_SET_AND_CONTENTS,
        {"$XDSSubmissionSetEntryUUID": sub.submission_set.entry_uuid},
    )
    assert [d.entry_uuid for d in result.documents] == [sub.documents[0].entry_uuid]
    [hm] = [o for o in result.objects if getattr(o, "target", None) == sub.documents[0].entry_uuid]
    assert ("PreviousVersion", ("1",)) in {(s.name, s.values) for s in hm.extra_slots}  # type: ignore[union-attr]
