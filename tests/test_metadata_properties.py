"""Property-based tests of the metadata layer (hypothesis).

- Parsers met with mutated XML return a value or raise ParseError / XdsError, never anything else;
  whatever they return validates or fails with XdsError, and renders back to an equal object.
- parse(render(x)) == x for generated metadata objects.
- The HL7 v2 data-type checks never raise.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.metadata_samples import DOC_ID, good_submission
from tests.oracle import sample_paths
from xds_hub import ns
from xds_hub.config import AffinityDomain
from xds_hub.domain import hl7types as hl7
from xds_hub.domain.metadata import (
    Association,
    Author,
    Code,
    DocumentEntry,
    Folder,
    RegistryObject,
    Slot,
    Submission,
    SubmissionSet,
)
from xds_hub.domain.validate import validate_submission
from xds_hub.domain.vocabulary import (
    FOLDER_NODE,
    SUBMISSION_SET_NODE,
    AssociationType,
    DocumentEntryScheme,
    ObjectType,
    Status,
)
from xds_hub.ebxml import (
    parse_provide_and_register,
    parse_registry_object_list,
    parse_submit_objects_request,
    render_provide_and_register,
    render_registry_object_list,
    render_submit_objects_request,
)
from xds_hub.errors import ParseError, XdsError

# -- mutated XML ---------------------------------------------------------------------------------


def _sources() -> list[bytes]:
    out = [
        etree.tostring(render_submit_objects_request(good_submission())),
        etree.tostring(render_provide_and_register(good_submission(), {DOC_ID: "a@b"})),
    ]
    for path in sample_paths("ebrim30", "*.xml"):
        root = etree.parse(str(path)).getroot()
        out.extend(etree.tostring(e) for e in root.iter(ns.qn(ns.LCM, "SubmitObjectsRequest")))
    return out


SOURCES = _sources()
XML_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
INTERESTING = st.sampled_from(
    [
        "",
        " ",
        "Document01",
        "SubmissionSet01",
        "urn:uuid:e0985823-dc50-45a5-a6c8-a11a829893bd",
        SUBMISSION_SET_NODE,
        FOLDER_NODE,
        DocumentEntryScheme.CLASS_CODE.value,
        DocumentEntryScheme.PATIENT_ID.value,
        ObjectType.ON_DEMAND_DOCUMENT.value,
        AssociationType.RPLC.value,
        Status.DEPRECATED.value,
        "^^^&1.2.3&ISO",
        "-1",
        "9" * 5000,
        "20051324",
        "Original",
        "Reference",
        "cid:%zz",
    ]
)
TEXT = st.one_of(INTERESTING, st.text(XML_CHARS, max_size=30))
RIM_NAMES = [
    "ExtrinsicObject",
    "RegistryPackage",
    "Association",
    "Classification",
    "ExternalIdentifier",
    "Slot",
    "ValueList",
    "Value",
    "ObjectRef",
    "Name",
    "LocalizedString",
    "Foo",
]


@st.composite
def mutated(draw: st.DrawFn) -> etree._Element:
    root = etree.fromstring(draw(st.sampled_from(SOURCES)))
    for _ in range(draw(st.integers(1, 4))):
        elements = [e for e in root.iter() if isinstance(e.tag, str)]
        target = elements[draw(st.integers(0, len(elements) - 1))]
        parent = target.getparent()
        op = draw(st.sampled_from(["drop", "dup", "attr", "del_attr", "text", "rename", "hoist"]))
        if op == "drop" and parent is not None:
            parent.remove(target)
        elif op == "dup" and parent is not None:
            target.addnext(copy.deepcopy(target))
        elif op == "attr":
            name = draw(
                st.sampled_from(
                    [
                        "id",
                        "status",
                        "objectType",
                        "classificationScheme",
                        "nodeRepresentation",
                        "classifiedObject",
                        "identificationScheme",
                        "value",
                        "sourceObject",
                        "targetObject",
                        "associationType",
                        "name",
                        "mimeType",
                        "lid",
                        "href",
                    ]
                )
            )
            target.set(name, draw(TEXT))
        elif op == "del_attr" and target.attrib:
            del target.attrib[draw(st.sampled_from(sorted(str(k) for k in target.attrib)))]
        elif op == "text":
            target.text = draw(TEXT)
        elif op == "rename":
            target.tag = ns.qn(ns.RIM, draw(st.sampled_from(RIM_NAMES)))
        elif op == "hoist" and parent is not None and parent.getparent() is not None:
            parent.addprevious(target)
    return root


def _parse_any(root: etree._Element) -> Submission:
    if root.tag == ns.qn(ns.XDSB, "ProvideAndRegisterDocumentSetRequest"):
        return parse_provide_and_register(root)
    return parse_submit_objects_request(root)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_parsers_raise_only_project_errors_on_mutated_xml(root: etree._Element) -> None:
    try:
        sub = _parse_any(root)
    except (ParseError, XdsError):
        return
    again = parse_submit_objects_request(render_submit_objects_request(sub))
    assert again == replace(sub, document_refs={})
    for for_repository in (False, True):
        try:
            out = validate_submission(sub, AffinityDomain(), for_repository=for_repository)
        except XdsError as exc:
            assert exc.problems and all(p.context for p in exc.problems)
        else:
            assert len(out.all_ids()) == len(sub.all_ids())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(XML_CHARS, max_size=200).map(str.encode))
def test_registry_object_list_parser_never_crashes_on_junk(data: bytes) -> None:
    try:
        root = etree.fromstring(data)
    except etree.XMLSyntaxError:
        return
    with contextlib.suppress(ParseError, XdsError):
        parse_registry_object_list(root)


# -- generated objects round-trip ------------------------------------------------------------------

VALUE = st.text(XML_CHARS, max_size=12).map(str.strip)
WORD = VALUE.filter(bool)
ATTR = st.text(XML_CHARS, max_size=12)
OPT = st.none() | VALUE
CODE = st.builds(Code, code=ATTR.filter(bool), scheme=WORD, display=ATTR)
VALUES = st.lists(VALUE, max_size=3).map(tuple)
AUTHOR = st.builds(Author, person=OPT, institutions=VALUES, roles=VALUES, specialties=VALUES, telecoms=VALUES)
KNOWN_SLOTS = {
    "creationTime",
    "languageCode",
    "serviceStartTime",
    "serviceStopTime",
    "sourcePatientId",
    "sourcePatientInfo",
    "legalAuthenticator",
    "hash",
    "size",
    "repositoryUniqueId",
    "URI",
    "documentAvailability",
    "urn:ihe:iti:xds:2013:referenceIdList",
    "submissionTime",
    "intendedRecipient",
    "lastUpdateTime",
    "SubmissionSetStatus",
}
EXTRA_SLOTS = st.lists(
    st.builds(Slot, name=WORD.filter(lambda n: n not in KNOWN_SLOTS), values=VALUES),
    max_size=2,
    unique_by=lambda s: s.name,
).map(tuple)


def _entry_fields() -> dict[str, st.SearchStrategy[object]]:
    return {
        "status": st.sampled_from(list(Status)),
        "logical_id": st.none() | ATTR,
        "version": ATTR,
        "home_community_id": st.none() | ATTR,
        "title": st.none() | ATTR,
        "comments": st.none() | ATTR,
        "limited_metadata": st.booleans(),
        "extra_slots": EXTRA_SLOTS,
    }


DOCUMENT = st.builds(
    DocumentEntry,
    entry_uuid=st.just("d"),
    unique_id=ATTR,
    patient_id=ATTR,
    mime_type=ATTR,
    object_type=st.sampled_from([ObjectType.STABLE_DOCUMENT, ObjectType.ON_DEMAND_DOCUMENT]),
    class_code=st.none() | CODE,
    type_code=st.none() | CODE,
    format_code=st.none() | CODE,
    healthcare_facility_type_code=st.none() | CODE,
    practice_setting_code=st.none() | CODE,
    confidentiality_codes=st.lists(CODE, max_size=2).map(tuple),
    event_codes=st.lists(CODE, max_size=2).map(tuple),
    authors=st.lists(AUTHOR, max_size=2).map(tuple),
    creation_time=OPT,
    service_start_time=OPT,
    service_stop_time=OPT,
    hash=st.none() | st.text("0123456789abcdef", max_size=40),
    size=st.none() | st.integers(min_value=-10, max_value=10**15),
    language_code=OPT,
    legal_authenticator=OPT,
    source_patient_id=OPT,
    source_patient_info=VALUES,
    repository_unique_id=OPT,
    uri=OPT,
    reference_ids=VALUES,
    document_availability=OPT,
    **_entry_fields(),
)
SUBMISSION_SET = st.builds(
    SubmissionSet,
    entry_uuid=st.just("s"),
    unique_id=ATTR,
    source_id=ATTR,
    patient_id=ATTR,
    submission_time=OPT,
    content_type_code=st.none() | CODE,
    authors=st.lists(AUTHOR, max_size=2).map(tuple),
    intended_recipients=VALUES,
    **_entry_fields(),
)
FOLDER = st.builds(
    Folder,
    entry_uuid=st.just("f"),
    unique_id=ATTR,
    patient_id=ATTR,
    codes=st.lists(CODE, max_size=2).map(tuple),
    last_update_time=OPT,
    **_entry_fields(),
)
ASSOCIATION = st.builds(
    Association,
    entry_uuid=st.just("a"),
    association_type=st.sampled_from(list(AssociationType)),
    source=ATTR.filter(bool),
    target=ATTR.filter(bool),
    status=st.sampled_from(list(Status)),
    home_community_id=st.none() | ATTR,
    submission_set_status=OPT,
    extra_slots=EXTRA_SLOTS.map(lambda slots: tuple(s for s in slots if s.name != "SubmissionSetStatus")),
    extra_classifications=st.lists(CODE, max_size=2).map(tuple),
)


@settings(max_examples=150, deadline=None)
@given(DOCUMENT, SUBMISSION_SET, FOLDER, ASSOCIATION)
def test_render_then_parse_is_identity(
    doc: DocumentEntry, ss: SubmissionSet, folder: Folder, assoc: Association
) -> None:
    objects: list[RegistryObject] = [ss, doc, folder, assoc]
    wire = etree.tostring(render_registry_object_list(objects))
    assert parse_registry_object_list(etree.fromstring(wire)) == objects


@settings(max_examples=100, deadline=None)
@given(DOCUMENT, SUBMISSION_SET, FOLDER, ASSOCIATION)
def test_submission_form_round_trips_and_validation_only_raises_xds_error(
    doc: DocumentEntry, ss: SubmissionSet, folder: Folder, assoc: Association
) -> None:
    def fixed(obj: DocumentEntry | Folder | SubmissionSet) -> dict[str, object]:
        return {"status": Status.APPROVED, "version": "1"}

    sub = Submission(
        submission_set=replace(ss, **fixed(ss)),  # type: ignore[arg-type]
        documents=(replace(doc, **fixed(doc)),),  # type: ignore[arg-type]
        folders=(replace(folder, **fixed(folder)),),  # type: ignore[arg-type]
        associations=(replace(assoc, status=Status.APPROVED),),
    )
    wire = etree.tostring(render_submit_objects_request(sub))
    assert parse_submit_objects_request(etree.fromstring(wire)) == sub
    with contextlib.suppress(XdsError):
        validate_submission(sub, AffinityDomain(), for_repository=False)


# -- HL7 v2 data types ---------------------------------------------------------------------------

HL7_TEXT = st.one_of(
    st.text(XML_CHARS, max_size=40),
    st.lists(
        st.sampled_from(["^", "&", "ID", "1.2.3", "ISO", "", "Internet", "PH", "a@b", "2005", "12"]),
        max_size=14,
    ).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(HL7_TEXT)
def test_hl7_checks_never_raise(text: str) -> None:
    for check in (
        hl7.cx_problems,
        hl7.cxi_problems,
        hl7.xcn_problems,
        hl7.xon_problems,
        hl7.xtn_problems,
        hl7.dtm_problems,
    ):
        assert isinstance(check(text), list)
    for parse in (hl7.parse_cx, hl7.parse_dtm):
        with contextlib.suppress(ParseError):
            parse(text)


@given(st.text("0123456789", min_size=4, max_size=14))
def test_valid_dtm_converts_to_datetime(text: str) -> None:
    if not hl7.dtm_problems(text):
        assert hl7.DTM.from_datetime(hl7.DTM(text).as_datetime()).text.startswith(text)


@given(
    WORD.filter(lambda s: "^" not in s and "&" not in s),
    st.from_regex(r"[1-9][0-9]{0,3}(\.[1-9][0-9]{0,3}){1,5}", fullmatch=True),
)
def test_cx_render_parse_round_trip(id_number: str, oid: str) -> None:
    cx = hl7.CX.of(id_number, oid)
    assert hl7.CX.parse(cx.render()) == cx
    assert hl7.cx_problems(cx.render()) == []


def test_sources_are_loaded() -> None:
    assert len(SOURCES) >= 2
    assert all(isinstance(s, bytes) for s in SOURCES)
    assert Path(__file__).exists()
