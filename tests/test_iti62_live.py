"""ITI-62 Delete Document Set (Remove Metadata) against a running hub: real SOAP 1.2 requests over
HTTP on SQLite and PostgreSQL; requests checked against lcm.xsd, responses against rs.xsd; what
ITI-18 returns and which rows stay in every registry table afterwards."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.hubproc import Hub
from tests.test_iti57_support import (
    APPROVED,
    FAILURE,
    SUCCESS,
    find_documents,
    folder_contents,
    get_documents,
    new_version,
    patient,
    post,
    post_iti57,
    post_iti62,
    post_iti62_body,
    query,
    register,
    rows_of,
    update,
)
from tests.test_registry_support import a_folder, assoc, document, member, new_urn, package
from xds_hub import ns
from xds_hub.domain.metadata import Submission
from xds_hub.domain.vocabulary import AssociationType, SoapAction, StoredQuery
from xds_hub.ebxml.parse import parse_remove_objects_request
from xds_hub.ebxml.render import render_remove_objects_request
from xds_hub.errors import ParseError, XdsError


@pytest.fixture
def pid(hub: Hub) -> str:
    return patient(hub)


def all_ids(sub: Submission) -> list[str]:
    return sub.all_ids()


def folder_submission(pid: str) -> Submission:
    """SubmissionSet, two documents, a Folder holding the first (the SubmissionSet holds that HasMember)."""
    d1, d2, fol = document(pid), document(pid), a_folder(pid)
    return package(pid, (d1, d2), (fol,), extra=(member(fol.entry_uuid, d1.entry_uuid),))


def test_iti62_removes_a_whole_submission_from_every_table(hub: Hub, pid: str) -> None:
    sub = register(hub, folder_submission(pid))
    assert rows_of(hub, all_ids(sub))["registry_object"] == len(all_ids(sub))

    reply = post_iti62(hub, all_ids(sub))

    assert (reply.http_status, reply.action, reply.outcome) == (200, SoapAction.ITI62_RESPONSE, (SUCCESS, []))
    assert rows_of(hub, all_ids(sub)) == {}
    assert find_documents(hub, pid) == {}
    assert get_documents(hub, uuid=[d.entry_uuid for d in sub.documents]) == {}
    sets = query(
        hub,
        StoredQuery.FIND_SUBMISSION_SETS,
        {"$XDSSubmissionSetPatientId": pid, "$XDSSubmissionSetStatus": [APPROVED.value]},
    )
    assert sets.objects == []


def test_iti62_rejects_an_object_still_referenced(hub: Hub, pid: str) -> None:
    sub = register(hub, folder_submission(pid))
    doc = sub.documents[1]
    reply = post_iti62(hub, [doc.entry_uuid])
    assert reply.outcome == (FAILURE, ["ReferencesExistException"])
    assert reply.locations == [doc.entry_uuid]
    assert set(find_documents(hub, pid)) == {d.entry_uuid for d in sub.documents}


def test_iti62_rejects_a_submission_set_whose_members_stay(hub: Hub, pid: str) -> None:
    sub = register(hub, package(pid, (document(pid),)))
    reply = post_iti62(hub, [sub.submission_set.entry_uuid])
    assert reply.outcome == (FAILURE, ["ReferencesExistException"])


def test_iti62_rejects_an_unknown_object_and_removes_nothing(hub: Hub, pid: str) -> None:
    sub = register(hub, package(pid, (document(pid),)))
    ghost = new_urn()
    reply = post_iti62(hub, [*all_ids(sub), ghost])
    assert reply.outcome == (FAILURE, ["UnresolvedReferenceException"])
    assert reply.locations == [ghost]
    assert rows_of(hub, all_ids(sub))["registry_object"] == len(all_ids(sub))


def test_iti62_rejects_leaving_an_empty_submission_set(hub: Hub, pid: str) -> None:
    sub = register(hub, package(pid, (document(pid),)))
    everything_but_the_set = [i for i in all_ids(sub) if i != sub.submission_set.entry_uuid]
    reply = post_iti62(hub, everything_but_the_set)
    assert reply.outcome == (FAILURE, ["XDSUnreferencedObjectException"])
    assert reply.locations == [sub.submission_set.entry_uuid]


def test_iti62_rejects_leaving_a_document_outside_every_submission(hub: Hub, pid: str) -> None:
    sub = register(hub, package(pid, (document(pid), document(pid))))
    hm = sub.associations[0]  # SubmissionSet -> first document
    reply = post_iti62(hub, [hm.entry_uuid])
    assert reply.outcome == (FAILURE, ["XDSUnreferencedObjectException"])
    assert reply.locations == [hm.target]


def test_iti62_removes_a_document_from_a_folder(hub: Hub, pid: str) -> None:
    sub = register(hub, folder_submission(pid))
    fol, d1 = sub.folders[0], sub.documents[0]
    link = next(a for a in sub.associations if a.source == fol.entry_uuid)
    record = next(a for a in sub.associations if a.target == link.entry_uuid)
    before, members = folder_contents(hub, fol.entry_uuid)
    assert members == {d1.entry_uuid}
    assert post_iti62(hub, [link.entry_uuid]).outcome == (FAILURE, ["ReferencesExistException"])

    assert post_iti62(hub, [link.entry_uuid, record.entry_uuid]).outcome == (SUCCESS, [])

    after, members = folder_contents(hub, fol.entry_uuid)
    assert members == set()
    assert before is not None and after is not None
    assert (after.last_update_time or "") >= (before.last_update_time or "")
    assert set(find_documents(hub, pid)) == {d.entry_uuid for d in sub.documents}


def test_iti62_removes_a_document_with_its_relationships(hub: Hub, pid: str) -> None:
    first = register(hub, package(pid, (document(pid), document(pid))))
    doc = first.documents[0]
    addendum = document(pid)
    second = register(
        hub,
        package(pid, (addendum,), extra=(assoc(AssociationType.APND, addendum.entry_uuid, doc.entry_uuid),)),
    )
    apnd = next(a for a in second.associations if a.association_type is AssociationType.APND)
    hm = first.associations[0]
    assert post_iti62(hub, [doc.entry_uuid, hm.entry_uuid]).outcome == (FAILURE, ["ReferencesExistException"])
    assert post_iti62(hub, [doc.entry_uuid, hm.entry_uuid, apnd.entry_uuid]).outcome == (SUCCESS, [])
    assert set(find_documents(hub, pid)) == {first.documents[1].entry_uuid, addendum.entry_uuid}
    assert rows_of(hub, [doc.entry_uuid, hm.entry_uuid, apnd.entry_uuid]) == {}


def test_iti62_removes_an_update_with_its_new_version(hub: Hub, pid: str) -> None:
    """Removing what an ITI-57 request added leaves the earlier versions as they are (Deprecated)."""
    sub = register(hub, package(pid, (document(pid),)))
    doc = sub.documents[0]
    upd = update(pid, [(new_version(doc), "1")])
    assert post_iti57(hub, upd).outcome == (SUCCESS, [])
    assert post_iti62(hub, all_ids(upd)).outcome == (SUCCESS, [])
    assert set(get_documents(hub, lid=[doc.entry_uuid], level=2)) == {doc.entry_uuid}
    assert find_documents(hub, pid) == {}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (
            lambda r: r.set(
                "deletionScope", "urn:oasis:names:tc:ebxml-regrep:DeletionScopeType:DeleteRepositoryItemOnly"
            ),
            "XDSRegistryMetadataError",
        ),
        (
            lambda r: r.insert(0, etree.Element(ns.qn(ns.RIM, "AdhocQuery"), id=new_urn())),
            "XDSRegistryMetadataError",
        ),
        (lambda r: r.remove(r[0]), "XDSRegistryMetadataError"),
    ],
    ids=["deletion-scope", "adhoc-query", "no-object-ref-list"],
)
def test_iti62_request_form(hub: Hub, pid: str, change: object, code: str) -> None:
    sub = register(hub, package(pid, (document(pid),)))
    body = render_remove_objects_request(all_ids(sub))
    change(body)  # type: ignore[operator]
    assert post_iti62_body(hub, body).outcome == (FAILURE, [code])
    assert rows_of(hub, all_ids(sub))["registry_object"] == len(all_ids(sub))


def test_iti62_explicit_delete_all_scope_is_accepted(hub: Hub, pid: str) -> None:
    sub = register(hub, package(pid, (document(pid),)))
    body = render_remove_objects_request(all_ids(sub))
    body.set("deletionScope", "urn:oasis:names:tc:ebxml-regrep:DeletionScopeType:DeleteAll")
    assert post_iti62_body(hub, body).outcome == (SUCCESS, [])


def test_iti62_fault_for_a_body_that_is_not_a_remove_request(hub: Hub) -> None:
    reply = post(hub, "/xds/registry", SoapAction.ITI62, etree.Element(ns.qn(ns.LCM, "SubmitObjectsRequest")))
    assert reply.http_status == 400 and reply.body.tag == ns.qn(ns.SOAP12, "Fault")


_tags = st.sampled_from(
    [
        ns.qn(ns.RIM, "ObjectRefList"),
        ns.qn(ns.RIM, "ObjectRef"),
        ns.qn(ns.RIM, "AdhocQuery"),
        "x",
        ns.qn(ns.RS, "RequestSlotList"),
    ]
)


@st.composite
def _trees(draw: st.DrawFn) -> etree._Element:
    root = etree.Element(draw(st.sampled_from([ns.qn(ns.LCM, "RemoveObjectsRequest"), "other"])))
    if draw(st.booleans()):
        scopes = ["", "DeleteAll", "urn:oasis:names:tc:ebxml-regrep:DeletionScopeType:DeleteAll", " x "]
        root.set("deletionScope", draw(st.sampled_from(scopes)))
    for _ in range(draw(st.integers(0, 3))):
        child = etree.SubElement(root, draw(_tags))
        for _ in range(draw(st.integers(0, 3))):
            ref = etree.SubElement(child, draw(_tags))
            if draw(st.booleans()):
                ref.set("id", draw(st.sampled_from(["", " ", new_urn(), "x"])))
    return root


@settings(max_examples=200, deadline=None)
@given(_trees())
def test_iti62_parser_returns_refs_or_raises_parse_or_xds_error(tree: etree._Element) -> None:
    try:
        refs = parse_remove_objects_request(tree)
    except (ParseError, XdsError):
        return
    assert refs and all(r.id for r in refs)
