"""ebRIM 3.0 parse / render of XDS metadata (ITI TF-3 4.2.3; ITI-41, ITI-42, ITI-18 message bodies).

Public samples (IPF, dcm4chee-xds, NIST toolkit wire captures) must parse, render back to an equal
object, and every rendered message must validate against the official XSDs.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

from tests.metadata_samples import DOC_ID, good_submission
from tests.oracle import assert_valid, sample_paths
from xds_hub import ns
from xds_hub.domain.metadata import (
    Association,
    DocumentEntry,
    Folder,
    ObjectRef,
    RegistryObject,
    Slot,
    SubmissionSet,
)
from xds_hub.domain.vocabulary import (
    AssociationType,
    DocumentEntryScheme,
    ObjectType,
    ResponseStatus,
    Status,
)
from xds_hub.ebxml import (
    INLINE_REF_PREFIX,
    inline_document,
    parse_provide_and_register,
    parse_registry_object_list,
    parse_submit_objects_request,
    render_adhoc_query_response,
    render_provide_and_register,
    render_registry_object_list,
    render_registry_response,
    render_submit_objects_request,
)
from xds_hub.errors import ErrorCode, ParseError, Problem, Severity, XdsError

SOR_TAG = ns.qn(ns.LCM, "SubmitObjectsRequest")
EBRIM_SAMPLES = sample_paths("ebrim30", "*.xml")
WIRE_SAMPLES = sample_paths("wire", "*.txt")


def submit_request_of(path: Path) -> etree._Element | None:
    """The SubmitObjectsRequest of a sample, bare, in a SOAP envelope or inside an ITI-41 request."""
    root = etree.parse(str(path)).getroot()
    return next(iter(root.iter(SOR_TAG)), None)


def envelope_of(path: Path) -> etree._Element:
    """The SOAP envelope of a captured MTOM HTTP message (the root MIME part)."""
    raw = path.read_bytes()
    start = raw.index(b"<soapenv:Envelope")
    end = raw.index(b"</soapenv:Envelope>") + len(b"</soapenv:Envelope>")
    return etree.fromstring(raw[start:end])


def with_inline_documents(request: etree._Element) -> etree._Element:
    """The XOP-reconstituted infoset (xop:Include replaced by base64 text): what the XSD describes."""
    out = copy.deepcopy(request)
    for include in list(out.iter(ns.qn(ns.XOP, "Include"))):
        parent = include.getparent()
        assert parent is not None
        parent.remove(include)
        parent.text = "aGVsbG8="
    return out


def sample_id(path: Path) -> str:
    return path.name


def test_oracle_samples_are_present() -> None:
    if not EBRIM_SAMPLES:
        pytest.skip("oracle samples not available")
    assert len(EBRIM_SAMPLES) >= 8


@pytest.mark.parametrize("path", EBRIM_SAMPLES, ids=sample_id)
def test_iti42_every_sample_parses_and_round_trips(path: Path) -> None:
    request = submit_request_of(path)
    if request is None:
        root = etree.parse(str(path)).getroot()
        with pytest.raises(ParseError):
            parse_submit_objects_request(root)
        return
    sub = parse_submit_objects_request(request)
    rendered = render_submit_objects_request(sub)
    assert parse_submit_objects_request(rendered) == sub
    assert_valid("lcm.xsd", rendered)
    # Same objects in query-response form (status, VersionInfo) round-trip too.
    objects: list[RegistryObject] = [sub.submission_set, *sub.documents, *sub.folders, *sub.associations]
    listed = render_registry_object_list(objects)
    assert parse_registry_object_list(listed) == objects
    assert_valid("query.xsd", render_adhoc_query_response(ResponseStatus.SUCCESS, objects))


def test_iti42_ipf_sample_fields() -> None:
    path = next((p for p in EBRIM_SAMPLES if p.name == "SubmitObjectsRequest_ebrs30.xml"), None)
    if path is None:
        pytest.skip("sample missing")
    sub = parse_submit_objects_request(etree.parse(str(path)).getroot())
    doc = sub.documents[0]
    assert doc.entry_uuid == "Document01"
    assert doc.object_type is ObjectType.STABLE_DOCUMENT
    assert doc.mime_type == "text/xml"
    assert doc.title == "Physical" and doc.comments is None
    # identificationScheme with a stray blank in the published sample is still understood
    assert doc.patient_id == "SELF-5^^^&1.3.6.1.4.1.21367.2005.3.7&ISO"
    assert doc.unique_id == "1.3.6.1.4.1.21367.2005.3.9999.32"
    assert doc.creation_time == "20051224" and doc.service_stop_time == "200412230801"
    assert doc.source_patient_info[1] == "PID-5|Doe^John^^^"
    assert doc.class_code is not None and doc.class_code.code == "History and Physical"
    assert doc.class_code.scheme == "Connect-a-thon classCodes"
    assert doc.type_code is not None and doc.type_code.display == "Outpatient Evaluation And Management"
    assert doc.authors[0].person == "Gerald Smitty"
    assert doc.authors[0].institutions == ("Cleveland Clinic", "Parma Community")
    assert doc.authors[0].specialties == ("Orthopedic",)  # authorSpeciality (old spelling)
    ss = sub.submission_set
    assert ss.source_id == "3670984664" and ss.submission_time == "20041225235050"
    assert ss.content_type_code is not None and ss.content_type_code.code == "History and Physical"
    assert ss.comments == "Annual physical"
    has_member, snapshot = sub.associations
    assert has_member.submission_set_status == "Original"
    assert snapshot.association_type is AssociationType.IS_SNAPSHOT_OF
    assert snapshot.target == "urn:uuid:e0985823-dc50-45a5-a6c8-a11a829893bd"


def test_iti42_dcm4chee_folder_sample() -> None:
    path = next((p for p in EBRIM_SAMPLES if p.name == "dcm4chee-CreateFolderWithDocument.xml"), None)
    if path is None:
        pytest.skip("sample missing")
    sub = parse_submit_objects_request(etree.parse(str(path)).getroot())
    assert len(sub.folders) == 1 and sub.folders[0].codes[0].code == "Referrals"
    assert {a.target for a in sub.associations if a.source == sub.submission_set.entry_uuid} == {
        sub.folders[0].entry_uuid,
        sub.documents[0].entry_uuid,
        "urn:uuid:aabbccdd-bdda-424e-8c96-df4873ba9106",
    }
    assert sub.documents[0].size == 36


def test_iti41_wire_samples_map_documents_to_xop_content_ids() -> None:
    if not WIRE_SAMPLES:
        pytest.skip("wire samples not available")
    for path in WIRE_SAMPLES:
        envelope = envelope_of(path)
        request = next(envelope.iter(ns.qn(ns.XDSB, "ProvideAndRegisterDocumentSetRequest")))
        sub = parse_provide_and_register(request)
        assert set(sub.document_refs) == {d.entry_uuid for d in sub.documents}
        for cid in sub.document_refs.values():
            assert not cid.startswith("cid:") and "@" in cid
        rendered = render_provide_and_register(sub, sub.document_refs)
        assert_valid("XDS.b_DocumentRepository.xsd", with_inline_documents(rendered))
        assert parse_provide_and_register(rendered) == sub


def test_iti41_inline_base64_document() -> None:
    sub = good_submission()
    rendered = render_provide_and_register(sub, {DOC_ID: b"hello world"})
    assert_valid("XDS.b_DocumentRepository.xsd", rendered)
    parsed = parse_provide_and_register(rendered)
    assert parsed.document_refs == {DOC_ID: INLINE_REF_PREFIX + DOC_ID}
    assert inline_document(rendered, DOC_ID) == b"hello world"
    with pytest.raises(ParseError):
        inline_document(rendered, "missing")


def test_iti41_content_id_is_url_unquoted() -> None:
    rendered = render_provide_and_register(good_submission(), {DOC_ID: "part 1@example.org"})
    include = rendered.find(f".//{ns.qn(ns.XOP, 'Include')}")
    assert include is not None and include.get("href") == "cid:part%201@example.org"
    assert parse_provide_and_register(rendered).document_refs == {DOC_ID: "part 1@example.org"}


def test_iti41_duplicate_document_id_is_a_repository_metadata_error() -> None:
    rendered = render_provide_and_register(good_submission(), {DOC_ID: "a@x"})
    rendered.append(copy.deepcopy(rendered[-1]))
    with pytest.raises(XdsError) as exc:
        parse_provide_and_register(rendered)
    assert [p.code for p in exc.value.problems] == [ErrorCode.REPOSITORY_METADATA_ERROR]


def test_iti41_wrong_root_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse_provide_and_register(render_submit_objects_request(good_submission()))


def test_known_good_submission_renders_valid_and_round_trips() -> None:
    sub = good_submission()
    rendered = render_submit_objects_request(sub)
    assert_valid("lcm.xsd", rendered)
    assert parse_submit_objects_request(rendered) == sub
    assert etree.tostring(render_submit_objects_request(sub)) == etree.tostring(rendered)


def test_rendered_document_entry_follows_ebrim_child_order() -> None:
    sub = replace(good_submission(), documents=(replace(good_submission().documents[0], logical_id=DOC_ID),))
    eo = render_registry_object_list(sub.documents)[0]
    order = [etree.QName(c).localname for c in eo]
    first = {name: order.index(name) for name in reversed(order)}
    assert first["Slot"] < first["Name"] < first["Description"] < first["VersionInfo"]
    assert first["VersionInfo"] < first["Classification"] < first["ExternalIdentifier"]
    assert order[-1] == "ExternalIdentifier"
    assert eo.get("lid") == DOC_ID and eo.get("status") == Status.APPROVED.value
    assert eo.get("objectType") == ObjectType.STABLE_DOCUMENT.value and eo.get("mimeType") == "text/xml"
    ids = [c.get("id") for c in eo if etree.QName(c).localname in ("Classification", "ExternalIdentifier")]
    assert len(set(ids)) == len(ids) and all(i and i.startswith("urn:uuid:") for i in ids)


def test_unknown_slots_are_kept_and_returned() -> None:
    extra = (Slot("urn:example:custom", ("a", "b")),)
    sub = replace(good_submission(), documents=(replace(good_submission().documents[0], extra_slots=extra),))
    parsed = parse_submit_objects_request(render_submit_objects_request(sub))
    assert parsed.documents[0].extra_slots == extra


def test_object_ref_return_type() -> None:
    sub = good_submission()
    listed = render_registry_object_list(
        [*sub.documents, ObjectRef("urn:uuid:x", "urn:oid:1.2")], "ObjectRef"
    )
    assert [etree.QName(c).localname for c in listed] == ["ObjectRef", "ObjectRef"]
    assert parse_registry_object_list(listed) == [ObjectRef(DOC_ID), ObjectRef("urn:uuid:x", "urn:oid:1.2")]


def test_registry_response_with_errors_validates() -> None:
    problems = [
        Problem(ErrorCode.UNKNOWN_PATIENT_ID, "unknown patient", "Document01"),
        Problem(ErrorCode.EXTRA_METADATA_NOT_SAVED, "slot dropped", severity=Severity.WARNING),
    ]
    resp = render_registry_response(ResponseStatus.FAILURE, problems)
    assert_valid("rs.xsd", resp)
    errors = resp.find(ns.qn(ns.RS, "RegistryErrorList"))
    assert errors is not None and errors.get("highestSeverity") == Severity.ERROR.value
    assert [e.get("errorCode") for e in errors] == ["XDSUnknownPatientId", "XDSExtraMetadataNotSaved"]
    assert errors[0].get("location") == "Document01" and errors[1].get("location") is None
    warning_only = render_registry_response(ResponseStatus.PARTIAL_SUCCESS, problems[1:])
    assert warning_only[0].get("highestSeverity") == Severity.WARNING.value
    ok = render_registry_response(ResponseStatus.SUCCESS)
    assert_valid("rs.xsd", ok)
    assert len(ok) == 0


def test_adhoc_query_response_with_errors_validates() -> None:
    resp = render_adhoc_query_response(
        ResponseStatus.FAILURE, [], [Problem(ErrorCode.UNKNOWN_STORED_QUERY, "no such query")]
    )
    assert_valid("query.xsd", resp)
    assert [etree.QName(c).localname for c in resp] == ["RegistryErrorList", "RegistryObjectList"]


# -- malformed metadata: exactly one XDSRegistryMetadataError, located -------------------------


def _sor() -> etree._Element:
    return render_submit_objects_request(good_submission())


def _find(root: etree._Element, xpath: str) -> etree._Element:
    found = root.xpath(xpath, namespaces={"rim": ns.RIM, "lcm": ns.LCM})
    assert isinstance(found, list) and found and isinstance(found[0], etree._Element), xpath
    return found[0]


def _drop(xpath: str) -> etree._Element:
    root = _sor()
    elem = _find(root, xpath)
    parent = elem.getparent()
    assert parent is not None
    parent.remove(elem)
    return root


def _set(xpath: str, attr: str, value: str | None) -> etree._Element:
    root = _sor()
    elem = _find(root, xpath)
    if value is None:
        del elem.attrib[attr]
    else:
        elem.set(attr, value)
    return root


def _add_value(xpath: str) -> etree._Element:
    root = _sor()
    value_list = _find(root, xpath)
    etree.SubElement(value_list, ns.qn(ns.RIM, "Value")).text = "extra"
    return root


EO = "//rim:ExtrinsicObject"
PATIENT_EI = f"{EO}/rim:ExternalIdentifier[@identificationScheme='{DocumentEntryScheme.PATIENT_ID}']"
CLASS_CODE = f"{EO}/rim:Classification[@classificationScheme='{DocumentEntryScheme.CLASS_CODE}']"
SS_PACKAGE = "//rim:RegistryPackage[@id='SubmissionSet01']"

MALFORMED = [
    ("missing_patient_id", lambda: _drop(PATIENT_EI), DOC_ID),
    ("no_node_representation", lambda: _set(CLASS_CODE, "nodeRepresentation", None), DOC_ID),
    ("empty_node_representation", lambda: _set(CLASS_CODE, "nodeRepresentation", ""), DOC_ID),
    ("no_coding_scheme", lambda: _drop(f"{CLASS_CODE}/rim:Slot"), DOC_ID),
    ("unknown_classification_scheme", lambda: _set(CLASS_CODE, "classificationScheme", "urn:uuid:0"), DOC_ID),
    ("unknown_identifier_scheme", lambda: _extra_identifier(), DOC_ID),
    ("two_patient_ids", lambda: _dup(PATIENT_EI), DOC_ID),
    ("two_class_codes", lambda: _dup(CLASS_CODE), DOC_ID),
    (
        "creation_time_two_values",
        lambda: _add_value(f"{EO}/rim:Slot[@name='creationTime']/rim:ValueList"),
        DOC_ID,
    ),
    (
        "size_not_integer",
        lambda: _text(f"{EO}/rim:Slot[@name='size']/rim:ValueList/rim:Value", "big"),
        DOC_ID,
    ),
    ("unknown_object_type", lambda: _set(EO, "objectType", "urn:uuid:0"), DOC_ID),
    ("bad_status", lambda: _set(EO, "status", "Approved"), DOC_ID),
    (
        "package_unclassified",
        lambda: _drop(f"{SS_PACKAGE}/rim:Classification[@classificationNode]"),
        "SubmissionSet01",
    ),
    (
        "unknown_association_type",
        lambda: _set("//rim:Association[@id='as01']", "associationType", "HasMember"),
        "as01",
    ),
    ("association_without_target", lambda: _set("//rim:Association[@id='as01']", "targetObject", ""), "as01"),
    ("duplicate_slot", lambda: _dup(f"{EO}/rim:Slot[@name='hash']"), DOC_ID),
    (
        "two_submission_set_statuses",
        lambda: _add_value("//rim:Association[@id='as01']/rim:Slot/rim:ValueList"),
        "as01",
    ),
]


def _dup(xpath: str) -> etree._Element:
    root = _sor()
    elem = _find(root, xpath)
    elem.addnext(copy.deepcopy(elem))
    return root


def _extra_identifier() -> etree._Element:
    root = _dup(PATIENT_EI)
    _find(root, PATIENT_EI).set("identificationScheme", "urn:uuid:00000000-0000-4000-8000-000000000000")
    return root


def _text(xpath: str, text: str) -> etree._Element:
    root = _sor()
    _find(root, xpath).text = text
    return root


@pytest.mark.parametrize(("make", "location"), [pytest.param(m, loc, id=n) for n, m, loc in MALFORMED])
def test_iti42_malformed_metadata_is_one_located_metadata_error(make: object, location: str) -> None:
    root = make()  # type: ignore[operator]
    with pytest.raises(XdsError) as exc:
        parse_submit_objects_request(root)
    assert [(p.code, p.location) for p in exc.value.problems] == [
        (ErrorCode.REGISTRY_METADATA_ERROR, location)
    ]


def test_iti42_submission_needs_exactly_one_submission_set() -> None:
    root = _drop(SS_PACKAGE)
    with pytest.raises(XdsError) as exc:
        parse_submit_objects_request(root)
    assert [p.code for p in exc.value.problems] == [ErrorCode.REGISTRY_METADATA_ERROR]
    root = _dup(SS_PACKAGE)
    with pytest.raises(XdsError):
        parse_submit_objects_request(root)


def test_iti42_loose_classification_of_unknown_object_is_an_error() -> None:
    root = _sor()
    object_list = root[0]
    etree.SubElement(
        object_list,
        ns.qn(ns.RIM, "Classification"),
        id="c1",
        classifiedObject="Nowhere",
        classificationNode="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd",
    )
    with pytest.raises(XdsError):
        parse_submit_objects_request(root)


@pytest.mark.parametrize(
    "xml",
    [
        b"<x/>",
        f'<lcm:SubmitObjectsRequest xmlns:lcm="{ns.LCM}"/>'.encode(),
        f'<rim:RegistryObjectList xmlns:rim="{ns.RIM}"/>'.encode(),
    ],
)
def test_iti42_unreadable_request_is_a_parse_error(xml: bytes) -> None:
    with pytest.raises(ParseError):
        parse_submit_objects_request(etree.fromstring(xml))


def test_query_response_objects_without_submission_set_parse() -> None:
    doc = good_submission().documents[0]
    folder = replace(
        good_submission().folders[0], status=Status.APPROVED, version="2", logical_id="urn:uuid:l"
    )
    assoc = Association(
        "urn:uuid:a", AssociationType.HAS_MEMBER, "urn:uuid:f", DOC_ID, status=Status.SUBMITTED
    )
    objects: list[DocumentEntry | Folder | Association | SubmissionSet] = [doc, folder, assoc]
    assert parse_registry_object_list(render_registry_object_list(objects)) == objects
