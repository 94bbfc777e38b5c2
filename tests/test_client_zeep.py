"""A plain zeep client built from the hub's own WSDLs (GET /xds/repository?wsdl and
/xds/registry?wsdl) submits (ITI-41, inline base64), queries (ITI-18) and retrieves (ITI-43,
MTOM response); and the hub client finds endpoints in a WSDL with zeep."""

from __future__ import annotations

from lxml import etree
from zeep import Client

from tests.hubproc import Hub
from tests.repository_support import hub_patient, submission_for
from xds_hub import ns
from xds_hub.client.xds import encode_query_value, endpoint_from_wsdl
from xds_hub.domain.vocabulary import Status, StoredQuery
from xds_hub.ebxml.parse import parse_registry_object_list
from xds_hub.ebxml.render import render_submit_objects_request
from xds_hub.storage.stores import Stores

REPOSITORY_ID = "1.3.6.1.4.1.21367.13.80.1"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"


def _slot(parent: etree._Element, name: str, value: str) -> None:
    slot = etree.SubElement(parent, ns.qn(ns.RIM, "Slot"), name=name)
    etree.SubElement(etree.SubElement(slot, ns.qn(ns.RIM, "ValueList")), ns.qn(ns.RIM, "Value")).text = value


def test_client_zeep_from_hub_wsdl_submits_queries_retrieves(hub: Hub, store: Stores) -> None:
    pid = hub_patient(hub, store)
    repository = Client(hub.url("/xds/repository?wsdl"))
    registry = Client(hub.url("/xds/registry?wsdl"))

    sub, contents = submission_for(pid, [b"sent by zeep, inline base64"])
    registry_object_list = render_submit_objects_request(sub)[0]
    doc_id, data = next(iter(contents.items()))
    submit = repository.service["DocumentRepository_ProvideAndRegisterDocumentSet-b"]
    response = submit(
        SubmitObjectsRequest={"_value_1": [registry_object_list]}, Document=[{"_value_1": data, "id": doc_id}]
    )
    assert response.status == SUCCESS

    query = etree.Element(ns.qn(ns.RIM, "AdhocQuery"), id=StoredQuery.FIND_DOCUMENTS.value)
    _slot(query, "$XDSDocumentEntryPatientId", encode_query_value(pid))
    _slot(query, "$XDSDocumentEntryStatus", encode_query_value([Status.APPROVED.value]))
    found = registry.service.DocumentRegistry_RegistryStoredQuery(
        ResponseOption={"returnType": "LeafClass", "returnComposedObjects": True}, _value_1=[query]
    )
    assert found.status == SUCCESS
    (entry,) = parse_registry_object_list(found._value_1[0])
    assert entry.unique_id == sub.documents[0].unique_id
    assert entry.repository_unique_id == REPOSITORY_ID

    retrieved = repository.service.DocumentRepository_RetrieveDocumentSet(
        DocumentRequest=[{"RepositoryUniqueId": REPOSITORY_ID, "DocumentUniqueId": entry.unique_id}]
    )
    assert retrieved.RegistryResponse.status == SUCCESS
    (doc,) = retrieved.DocumentResponse
    assert (doc.mimeType, doc.Document) == ("text/plain", data)


def test_client_endpoint_from_wsdl(hub: Hub) -> None:
    assert endpoint_from_wsdl(
        hub.url("/xds/repository?wsdl"), "DocumentRepository_RetrieveDocumentSet"
    ) == hub.url("/xds/repository")
    assert endpoint_from_wsdl(hub.url("/xds/registry?wsdl")) == hub.url("/xds/registry")
