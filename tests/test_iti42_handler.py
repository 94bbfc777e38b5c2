"""ITI-42 Register Document Set-b through the transaction handler (parse, validate, register,
RegistryResponse), in-process on SQLite and PostgreSQL, with public sample messages and built ones."""

from __future__ import annotations

import pytest
from lxml import etree
from sqlalchemy import select

from tests.oracle import assert_valid, sample_paths
from tests.test_registry_support import (
    SETTINGS,
    a_folder,
    assoc,
    counts,
    document,
    known_patient,
    member,
    new_pid,
    package,
    status_of,
    submission_set,
)
from xds_hub import ns
from xds_hub.config import AffinityDomain, Settings
from xds_hub.domain.metadata import Submission
from xds_hub.domain.vocabulary import AssociationType, ResponseStatus, SoapAction, Status
from xds_hub.ebxml.render import render_submit_objects_request
from xds_hub.errors import SoapFault
from xds_hub.registry import store
from xds_hub.registry.iti42 import handle
from xds_hub.registry.patients import add_patient
from xds_hub.soap.types import SoapRequest
from xds_hub.storage.db import read_transaction, write_transaction
from xds_hub.storage.schema import folder
from xds_hub.storage.stores import Stores

#: The dcm4chee-xds samples use this affinity domain and patient.
DCM4CHEE = Settings(domain=AffinityDomain(assigning_authority="1.2.3.45.4.3.2.1"))
DCM4CHEE_PATIENTS = ("test1234_1^^^&1.2.3.45.4.3.2.1&ISO", "test1234_2^^^&1.2.3.45.4.3.2.1&ISO")


def _sample(name: str) -> etree._Element:
    paths = [p for p in sample_paths("ebrim30") if p.name == name]
    if not paths:
        pytest.skip(f"oracle sample {name} not available")
    return etree.parse(str(paths[0])).getroot()


def _post(stores: Stores, body: etree._Element, settings: Settings = SETTINGS) -> tuple[str, list[str]]:
    """Run the ITI-42 handler; (RegistryResponse status, errorCodes); checks the response schema."""
    response = handle(SoapRequest(action=SoapAction.ITI42, body=body, path="/xds/registry"), stores, settings)
    assert response.action == SoapAction.ITI42_RESPONSE
    assert response.body.tag == ns.qn(ns.RS, "RegistryResponse")
    assert_valid("rs.xsd", response.body)
    errors = response.body.findall(f"{{{ns.RS}}}RegistryErrorList/{{{ns.RS}}}RegistryError")
    return response.body.get("status", ""), [e.get("errorCode", "") for e in errors]


def _dcm4chee(stores: Stores) -> Stores:
    with write_transaction(stores.engine) as conn:
        for pid in DCM4CHEE_PATIENTS:
            add_patient(conn, pid, DCM4CHEE.domain)
    return stores


SUCCESS = ResponseStatus.SUCCESS.value
FAILURE = ResponseStatus.FAILURE.value


@pytest.mark.parametrize(
    "name",
    [
        "dcm4chee-RegisterOneDocument.xml",
        "dcm4chee-RegisterTwoDocuments.xml",
        "dcm4chee-CreateFolder.xml",
        "dcm4chee-CreateFolderWithDocument.xml",
        "dcm4chee-RegisterAssocBeforeDoc.xml",
    ],
)
def test_iti42_registers_public_sample(stores: Stores, name: str) -> None:
    _dcm4chee(stores)
    before = counts(stores.engine)
    assert _post(stores, _sample(name), DCM4CHEE) == (SUCCESS, [])
    after = counts(stores.engine)
    assert after["submission_set"] == before["submission_set"] + 1
    assert after["association"] > before["association"]


def test_iti42_rejects_resubmission_with_other_hash_sample(stores: Stores) -> None:
    _dcm4chee(stores)
    assert _post(stores, _sample("dcm4chee-RegisterOneDocument.xml"), DCM4CHEE) == (SUCCESS, [])
    before = counts(stores.engine)
    assert _post(stores, _sample("dcm4chee-ResubmitWrongHash.xml"), DCM4CHEE) == (
        FAILURE,
        ["XDSNonIdenticalHash"],
    )
    assert counts(stores.engine) == before


def test_iti42_rejects_same_sample_twice(stores: Stores) -> None:
    """Same entryUUIDs and SubmissionSet uniqueId again: both rules answer, nothing is written."""
    _dcm4chee(stores)
    assert _post(stores, _sample("dcm4chee-RegisterOneDocument.xml"), DCM4CHEE)[0] == SUCCESS
    status, codes = _post(stores, _sample("dcm4chee-RegisterOneDocument.xml"), DCM4CHEE)
    assert status == FAILURE
    assert "XDSDuplicateUniqueIdInRegistry" in codes and "XDSRegistryMetadataError" in codes


def test_iti42_assigns_uuids_to_symbolic_ids(stores: Stores) -> None:
    pid = known_patient(stores)
    doc, fol = document(pid, entry_uuid="Document01"), a_folder(pid, entry_uuid="Folder01")
    ss = submission_set(pid, entry_uuid="SubmissionSet01")
    sub = package(pid, (doc,), (fol,), extra=(member("Folder01", "Document01"),), ss=ss)
    assert _post(stores, render_submit_objects_request(sub)) == (SUCCESS, [])
    with read_transaction(stores.engine) as conn:
        [registered] = store.find_documents_by_unique_id(conn, doc.unique_id)
        assert registered.id.startswith("urn:uuid:")
        assert registered.status == Status.APPROVED.value
        assert store.folders_containing(conn, [registered.id])[registered.id][0].startswith("urn:uuid:")


@pytest.mark.parametrize("missing", ["hash", "size", "repository_unique_id"])
def test_iti42_rejects_document_without_repository_attributes(stores: Stores, missing: str) -> None:
    """ITI-42 DocumentEntries come from a Document Repository, which sets hash, size, repositoryUniqueId."""
    pid = known_patient(stores)
    before = counts(stores.engine)
    sub = package(pid, (document(pid), document(pid, **{missing: None})))
    assert _post(stores, render_submit_objects_request(sub)) == (FAILURE, ["XDSRegistryMetadataError"])
    assert counts(stores.engine) == before


def test_iti42_rejects_ipf_sample_without_repository_attributes(stores: Stores) -> None:
    status, codes = _post(stores, _sample("SubmitObjectsRequest_ebrs30.xml"))
    assert status == FAILURE and set(codes) == {"XDSRegistryMetadataError"}


def test_iti42_rejects_unknown_patient(stores: Stores) -> None:
    pid = new_pid()
    assert _post(stores, render_submit_objects_request(package(pid, (document(pid),)))) == (
        FAILURE,
        ["XDSUnknownPatientId"],
    )


def test_iti42_replaces_document(stores: Stores) -> None:
    pid = known_patient(stores)
    old, new = document(pid), document(pid)
    assert _post(stores, render_submit_objects_request(package(pid, (old,))))[0] == SUCCESS
    sub: Submission = package(
        pid, (new,), extra=(assoc(AssociationType.RPLC, new.entry_uuid, old.entry_uuid),)
    )
    assert _post(stores, render_submit_objects_request(sub)) == (SUCCESS, [])
    assert status_of(stores.engine, old.entry_uuid) == Status.DEPRECATED
    assert _post(stores, render_submit_objects_request(sub))[0] == FAILURE


def test_iti42_answers_fault_for_a_body_that_is_not_a_submission(stores: Stores) -> None:
    body = etree.Element(ns.qn(ns.QUERY, "AdhocQueryRequest"))
    with pytest.raises(SoapFault):
        handle(SoapRequest(action=SoapAction.ITI42, body=body), stores, SETTINGS)


def test_iti42_sample_folder_is_stamped(stores: Stores) -> None:
    _dcm4chee(stores)
    assert _post(stores, _sample("dcm4chee-CreateFolder.xml"), DCM4CHEE)[0] == SUCCESS
    with read_transaction(stores.engine) as conn:
        stamps = conn.execute(select(folder.c.last_update_time)).scalars().all()
    assert len(stamps) == 1 and stamps[0] is not None and len(stamps[0]) == 14
