"""The hub's own XSDs (schemas/, served at ?xsd=NAME) accept every message the official schemas accept.

Each public sample (and a few messages built here) that is valid against the official IHE / OASIS /
HL7 schema of ../shared/oracle must be valid against the hub's schema for the same root element.
"""

from __future__ import annotations

import base64
from functools import cache

import pytest
from lxml import etree

from tests.oracle import SAMPLES, oracle_schema, sample_paths
from xds_hub import ns
from xds_hub.soap import wsdl

#: root namespace -> (the hub's schema file, the official schema file)
SCHEMAS = {
    ns.LCM: ("lcm.xsd", "lcm.xsd"),
    ns.QUERY: ("query.xsd", "query.xsd"),
    ns.RS: ("rs.xsd", "rs.xsd"),
    ns.XDSB: ("xdsb.xsd", "XDS.b_DocumentRepository.xsd"),
    ns.XDSI: ("xdsi.xsd", "XDSI.b_ImagingDocumentSource.xsd"),
}
HL7_OFFICIAL = {
    "PRPA_IN201301UV02": "PRPA_IN201301UV02.xsd",
    "PRPA_IN201302UV02": "PRPA_IN201302UV02.xsd",
    "PRPA_IN201304UV02": "PRPA_IN201304UV02.xsd",
    "PRPA_IN201309UV02": "PRPA_IN201309UV02.xsd",
    "PRPA_IN201310UV02": "PRPA_IN201310UV02.xsd",
    "MCCI_IN000002UV01": "MCCI_IN000002UV01.xsd",
}


@cache
def hub_schema(name: str) -> etree.XMLSchema:
    path = wsdl.schema_dir() / name
    parser = etree.XMLParser(no_network=True)
    return etree.XMLSchema(etree.parse(str(path), parser))


def schemas_for(root: etree._Element) -> tuple[etree.XMLSchema, etree.XMLSchema]:
    qname = etree.QName(root)
    if qname.namespace == ns.HL7V3:
        return hub_schema("hl7v3.xsd"), oracle_schema(HL7_OFFICIAL[qname.localname])
    ours, official = SCHEMAS[qname.namespace or ""]
    return hub_schema(ours), oracle_schema(official)


def assert_superset(root: etree._Element) -> None:
    ours, official = schemas_for(root)
    assert official.validate(root), (
        f"the sample is not valid against the official schema: {official.error_log}"
    )
    assert ours.validate(root), ours.error_log


@pytest.mark.parametrize(
    "path", sample_paths("ebrim30", "*.xml") + sample_paths("pixv3", "*.xml"), ids=lambda p: p.name
)
def test_soap_schema_accepts_public_sample(path: object) -> None:
    root = etree.parse(str(path)).getroot()
    ours, official = schemas_for(root)
    if not official.validate(root):
        pytest.skip(f"{path} is not valid against the official schema either")
    assert ours.validate(root), ours.error_log


def _pnr_from_capture() -> etree._Element:
    raw = (SAMPLES / "wire" / "http-mtom-pnr.txt").read_bytes()
    start = raw.index(b"<soapenv:Envelope")
    end = raw.index(b"</soapenv:Envelope>") + len(b"</soapenv:Envelope>")
    envelope = etree.fromstring(raw[start:end])
    body = envelope.find(ns.qn(ns.SOAP12, "Body"))
    assert body is not None
    pnr = body[0]
    for include in pnr.iter(ns.qn(ns.XOP, "Include")):  # the XOP infoset: content as base64
        parent = include.getparent()
        assert parent is not None
        parent.remove(include)
        parent.text = base64.b64encode(b"document").decode()
    return pnr


def test_soap_schema_accepts_provide_and_register_of_wire_capture() -> None:
    if not (SAMPLES / "wire").is_dir():
        pytest.skip("oracle samples not available")
    assert_superset(_pnr_from_capture())


def E(tag: str, *children: etree._Element, text: str | None = None, **attrib: str) -> etree._Element:
    element = etree.Element(tag, attrib)
    element.extend(children)
    element.text = text
    return element


def _document_request(home: bool = True) -> list[etree._Element]:
    x = ns.XDSB
    items = [
        E(ns.qn(x, "RepositoryUniqueId"), text="1.3.6.1.4.1.21367.13.80.1"),
        E(ns.qn(x, "DocumentUniqueId"), text="1.2.3.4.5.6"),
    ]
    if home:
        items.insert(0, E(ns.qn(x, "HomeCommunityId"), text="urn:oid:1.2.3.4"))
    return [E(ns.qn(x, "DocumentRequest"), *items)]


def _registry_response(failure: bool) -> etree._Element:
    status = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:" + ("Failure" if failure else "Success")
    response = E(ns.qn(ns.RS, "RegistryResponse"), status=status)
    if failure:
        response.append(
            E(
                ns.qn(ns.RS, "RegistryErrorList"),
                E(
                    ns.qn(ns.RS, "RegistryError"),
                    text="unknown",
                    codeContext="no such document",
                    errorCode="XDSDocumentUniqueIdError",
                    location="1.2.3",
                    severity="urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error",
                ),
                highestSeverity="urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error",
            )
        )
    return response


BUILT = {
    "retrieve request": lambda: E(ns.qn(ns.XDSB, "RetrieveDocumentSetRequest"), *_document_request()),
    "retrieve response": lambda: E(
        ns.qn(ns.XDSB, "RetrieveDocumentSetResponse"),
        _registry_response(False),
        E(
            ns.qn(ns.XDSB, "DocumentResponse"),
            *_document_request(home=False)[0],
            E(ns.qn(ns.XDSB, "mimeType"), text="application/pdf"),
            E(ns.qn(ns.XDSB, "Document"), text=base64.b64encode(b"%PDF").decode()),
        ),
    ),
    "registry response failure": lambda: _registry_response(True),
    "rad-69 request": lambda: E(
        ns.qn(ns.XDSI, "RetrieveImagingDocumentSetRequest"),
        E(
            ns.qn(ns.XDSI, "StudyRequest"),
            E(ns.qn(ns.XDSI, "SeriesRequest"), *_document_request(), seriesInstanceUID="1.2.3.1"),
            studyInstanceUID="1.2.3",
        ),
        E(
            ns.qn(ns.XDSI, "TransferSyntaxUIDList"),
            E(ns.qn(ns.XDSI, "TransferSyntaxUID"), text="1.2.840.10008.1.2.1"),
        ),
    ),
    "remove objects": lambda: E(
        ns.qn(ns.LCM, "RemoveObjectsRequest"),
        E(
            ns.qn(ns.RIM, "ObjectRefList"),
            E(ns.qn(ns.RIM, "ObjectRef"), id="urn:uuid:a5a4e4c4-7b2a-4f4b-8c7e-0a0b0c0d0e0f"),
        ),
    ),
    "adhoc query response": lambda: E(
        ns.qn(ns.QUERY, "AdhocQueryResponse"),
        E(
            ns.qn(ns.RIM, "RegistryObjectList"),
            E(ns.qn(ns.RIM, "ObjectRef"), id="urn:uuid:a5a4e4c4-7b2a-4f4b-8c7e-0a0b0c0d0e0f"),
        ),
        status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success",
    ),
}


@pytest.mark.parametrize("case", sorted(BUILT))
def test_soap_schema_accepts_message_valid_against_official(case: str) -> None:
    assert_superset(BUILT[case]())


def test_soap_schema_rmd_request_is_a_retrieve_request() -> None:
    request = E(ns.qn(ns.RMD, "RemoveDocumentsRequest"), *_document_request())
    assert hub_schema("rmd.xsd").validate(request), hub_schema("rmd.xsd").error_log


@pytest.mark.parametrize("name", sorted(wsdl.document_names()))
def test_soap_schema_files_are_well_formed_and_compile(name: str) -> None:
    if name.endswith(".xsd"):
        hub_schema(name)
    else:
        root = etree.parse(str(wsdl.schema_dir() / name)).getroot()
        assert root.tag == ns.qn(ns.WSDL, "definitions")
        port_type = root.find(ns.qn(ns.WSDL, "portType"))
        assert port_type is not None
        actions = [op.get(ns.qn(ns.WSAW, "Action")) for op in port_type.iter(ns.qn(ns.WSDL, "input"))]
        soap_actions = [op.get("soapAction") for op in root.iter(ns.qn(ns.WSDL_SOAP12, "operation"))]
        assert actions and all(actions) and sorted(actions) == sorted(soap_actions)  # type: ignore[type-var]
