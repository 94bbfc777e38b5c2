"""ITI-18 at the XML edge: query:AdhocQueryRequest in, query:AdhocQueryResponse out, both valid
against the official ebRS 3.0 query.xsd (ITI TF-2 3.18.4.1.2 / 3.18.4.1.3).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from tests.iti18_data import (
    APPROVED,
    HOME,
    SETTINGS,
    assoc,
    doc,
    folder,
    has_member,
    insert,
    module_stores,
    new_pid,
    q,
    ql,
    request_xml,
    submission,
    submission_set,
)
from tests.oracle import SAMPLES, assert_valid, sample_paths
from xds_hub import ns
from xds_hub.domain.metadata import DocumentEntry, Folder, Slot
from xds_hub.domain.vocabulary import AssociationType, ResponseStatus, SoapAction, StoredQuery
from xds_hub.ebxml.parse import parse_registry_object_list
from xds_hub.errors import SoapFault
from xds_hub.registry import iti18
from xds_hub.registry.read import load_objects
from xds_hub.soap.routes import handler_for
from xds_hub.soap.types import SoapRequest
from xds_hub.storage import codec
from xds_hub.storage.db import read_transaction
from xds_hub.storage.stores import Stores

RS_ERROR = f"{ns.qn(ns.RS, 'RegistryErrorList')}/{ns.qn(ns.RS, 'RegistryError')}"
OBJECT_LIST = ns.qn(ns.RIM, "RegistryObjectList")


@pytest.fixture(scope="module")
def stores(db_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    """One registry for this module's tests, which only add their own objects (patients never collide)."""
    with module_stores(db_backend, tmp_path_factory.mktemp(f"iti18-xml-{db_backend}")) as stores:
        yield stores


def call(stores: Stores, body: etree._Element) -> etree._Element:
    response = iti18.handle(SoapRequest(action=SoapAction.ITI18, body=body), stores, SETTINGS)
    assert response.action == SoapAction.ITI18_RESPONSE
    body = response.full_body()
    assert_valid("query.xsd", body)
    return body


def errors(resp: etree._Element) -> list[str]:
    return [e.get("errorCode", "") for e in resp.iterfind(RS_ERROR)]


def test_iti18_route_is_registered() -> None:
    assert handler_for("/xds/registry", SoapAction.ITI18) is iti18.handle


@pytest.mark.skipif(not sample_paths("ebrim30", "iti18request.xml"), reason="oracle samples not available")
def test_iti18_accepts_the_public_sample_request(stores: Stores) -> None:
    body = etree.parse(str(SAMPLES / "ebrim30" / "iti18request.xml")).getroot()
    assert_valid("query.xsd", body)
    resp = call(stores, body)
    assert resp.get("status") == ResponseStatus.SUCCESS
    assert errors(resp) == []
    assert len(resp.find(OBJECT_LIST)) == 0


def test_iti18_leaf_class_response_round_trips(stores: Stores) -> None:
    pid = new_pid()
    d1, d2 = doc(pid), doc(pid)
    ss, fol = submission_set(pid), folder(pid)
    member = has_member(fol.entry_uuid, d1.entry_uuid)
    insert(stores, submission(ss, d1, d2, fol, member))
    req = request_xml(StoredQuery.GET_FOLDER_AND_CONTENTS, [("$XDSFolderEntryUUID", q(fol.entry_uuid))])
    assert_valid("query.xsd", req)
    resp = call(stores, req)
    assert resp.get("status") == ResponseStatus.SUCCESS
    objects = parse_registry_object_list(resp.find(OBJECT_LIST))
    by_id = {getattr(o, "entry_uuid", None): o for o in objects}
    assert set(by_id) == {fol.entry_uuid, d1.entry_uuid, member.entry_uuid}
    got = by_id[d1.entry_uuid]
    assert isinstance(got, DocumentEntry) and got.home_community_id == HOME
    assert got.unique_id == d1.unique_id and got.class_code == d1.class_code and got.patient_id == pid
    assert isinstance(by_id[fol.entry_uuid], Folder)
    assert all(e.get("home") == HOME for e in resp.find(OBJECT_LIST) if e.tag != ns.qn(ns.RIM, "Association"))


def test_iti18_object_ref_response(stores: Stores) -> None:
    pid = new_pid()
    d1 = doc(pid)
    insert(stores, submission(submission_set(pid), d1))
    slots = [("$XDSDocumentEntryPatientId", q(pid)), ("$XDSDocumentEntryStatus", ql(APPROVED))]
    resp = call(stores, request_xml(StoredQuery.FIND_DOCUMENTS, slots, "ObjectRef"))
    refs = list(resp.find(OBJECT_LIST))
    assert [r.tag for r in refs] == [ns.qn(ns.RIM, "ObjectRef")]
    assert refs[0].get("id") == d1.entry_uuid and refs[0].get("home") == HOME


@pytest.mark.parametrize(
    ("query", "slots", "code"),
    [
        ("urn:uuid:bad", [], "XDSUnknownStoredQuery"),
        (
            StoredQuery.FIND_DOCUMENTS,
            [("$XDSDocumentEntryStatus", ql(APPROVED))],
            "XDSStoredQueryMissingParam",
        ),
        (
            StoredQuery.GET_DOCUMENTS,
            [("$XDSDocumentEntryEntryUUID", q("urn:uuid:1")), ("$XDSDocumentEntryUniqueId", q("1.2"))],
            "XDSStoredQueryParamNumber",
        ),
        (
            StoredQuery.FIND_FOLDERS,
            [("$XDSFolderPatientId", "('a'"), ("$XDSFolderStatus", ql(APPROVED))],
            "XDSRegistryMetadataError",
        ),
        (
            StoredQuery.GET_DOCUMENTS,
            [("$XDSDocumentEntryEntryUUID", q("urn:uuid:1")), ("$homeCommunityId", q("urn:oid:9"))],
            "XDSUnknownCommunity",
        ),
    ],
)
def test_iti18_failure_response_carries_the_error_code(
    stores: Stores, query: str, slots: list[tuple[str, str]], code: str
) -> None:
    resp = call(stores, request_xml(query, slots))
    assert resp.get("status") == ResponseStatus.FAILURE
    assert errors(resp) == [code]
    assert len(resp.find(OBJECT_LIST)) == 0


def test_iti18_foreign_home_attribute_is_unknown_community(stores: Stores) -> None:
    slots = [("$XDSDocumentEntryEntryUUID", q("urn:uuid:1"))]
    resp = call(stores, request_xml(StoredQuery.GET_DOCUMENTS, slots, home="urn:oid:9.9"))
    assert errors(resp) == ["XDSUnknownCommunity"]
    resp = call(stores, request_xml(StoredQuery.GET_DOCUMENTS, slots, home=HOME))
    assert resp.get("status") == ResponseStatus.SUCCESS


def test_iti18_unsupported_return_type_is_metadata_error(stores: Stores) -> None:
    slots = [("$XDSDocumentEntryEntryUUID", q("urn:uuid:1"))]
    resp = call(stores, request_xml(StoredQuery.GET_DOCUMENTS, slots, "RegistryObject"))
    assert errors(resp) == ["XDSRegistryMetadataError"]


def test_iti18_request_without_adhoc_query_is_metadata_error(stores: Stores) -> None:
    req = request_xml(StoredQuery.GET_DOCUMENTS, [])
    req.remove(req.find(ns.qn(ns.RIM, "AdhocQuery")))
    assert errors(call(stores, req)) == ["XDSRegistryMetadataError"]


def test_iti18_other_body_is_a_soap_fault(stores: Stores) -> None:
    body = etree.Element(ns.qn(ns.LCM, "SubmitObjectsRequest"))
    with pytest.raises(SoapFault):
        iti18.handle(SoapRequest(action=SoapAction.ITI18, body=body), stores, SETTINGS)


def test_iti18_database_failure_is_registry_error(db_backend: str, tmp_path: Path) -> None:
    with module_stores(db_backend, tmp_path) as own:
        with own.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE document_entry")
        slots = [("$XDSDocumentEntryPatientId", q(new_pid())), ("$XDSDocumentEntryStatus", ql(APPROVED))]
        resp = call(own, request_xml(StoredQuery.FIND_DOCUMENTS, slots))
    assert resp.get("status") == ResponseStatus.FAILURE
    assert errors(resp) in (["XDSRegistryError"], ["XDSRegistryBusy"])


def test_iti18_objects_read_back_equal_what_was_registered(stores: Stores) -> None:
    """The fast decoder of xds_hub.registry.read gives exactly what storage.codec.loads gives."""
    pid = new_pid()
    d1 = doc(pid, reference_ids=("R^^^&1.2&ISO^urn:ihe:iti:xds:2013:order",), comments='é ü 漢字 "q"')
    ss, fol = submission_set(pid), folder(pid, last_update_time="20200101")
    rplc = assoc(
        AssociationType.RPLC, d1.entry_uuid, doc(pid).entry_uuid, extra_slots=(Slot("x", ("1", "2")),)
    )
    objects = [ss, d1, fol, rplc]
    insert(stores, objects)
    with read_transaction(stores.engine) as conn:
        loaded = load_objects(conn, [o.entry_uuid for o in objects])
        assert loaded == objects
        assert load_objects(conn, [rplc.entry_uuid, "urn:uuid:none", d1.entry_uuid]) == [rplc, d1]
        with_home = load_objects(conn, [d1.entry_uuid], home_community_id=HOME)
    assert with_home == [dataclasses.replace(d1, home_community_id=HOME)]
    for obj in objects:
        assert codec.loads(type(obj), codec.dumps(obj)) == obj
