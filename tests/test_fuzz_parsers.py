"""Property-based tests (hypothesis) on the parsers at the edge, filling what the per-area property
tests leave open (tests/test_metadata_properties.py, test_soap_envelope.py, test_soap_mtom.py,
test_pix_properties.py, test_iti18_params.py, test_dicom_parser.py, test_security_xml.py):

- KOS manifests (imaging/kos.py): any bytes, damaged manifests, build -> parse round trip;
- MTOM (soap/mtom.py ``read_multipart``): a damaged valid message either reads whole or faults,
  and a fault leaves no blob and no temporary file (nothing half-stored);
- SOAP envelope (soap/envelope.py): build -> parse -> read_addressing -> reply round trip for any
  identifiers; a fault with any reason text renders as XML that reads back;
- ITI-18 (registry/iti18.py ``read_adhoc_query`` + domain/query.py ``parse_request``): generated
  AdhocQueryRequests; ITI-43 and RAD-69 request readers: generated trees;
- ebRIM (ebxml/parse.py): generated element trees in the rim namespace, not only mutated samples;
- HL7 v2 (pix/hl7v2.py): build -> parse round trip of values holding the delimiters;
- HL7 v3 (pix/iti44.py, iti45.py ``handle``): damaged samples through the whole handler;
- DICOMweb Accept headers (imaging/dicomweb.py ``parse_accept``).

Each returns a value or raises the project's own error (ParseError, XdsError, SoapFault, or the
area's documented error), never anything else.  Every test is bounded (max_examples, no deadline
on the slow ones) so the file runs in well under a minute.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lxml import etree
from pydicom.uid import generate_uid
from sqlalchemy import Engine

from tests.oracle import SAMPLES
from xds_hub import ns
from xds_hub.client.mtom import MultipartBody, OutgoingPart
from xds_hub.client.soap import build_envelope
from xds_hub.client.soap import parse_envelope as client_parse_envelope
from xds_hub.config import DEMO_DOMAIN, Settings
from xds_hub.domain.query import parse_request as parse_query_request
from xds_hub.ebxml.parse import (
    parse_provide_and_register,
    parse_registry_object_list,
    parse_submit_objects_request,
)
from xds_hub.errors import FaultCode, Hl7Error, ParseError, SoapFault, XdsError
from xds_hub.imaging.dicomweb import parse_accept
from xds_hub.imaging.kos import KosError, ManifestStudy, ReferencedSeries, build_kos, parse_kos
from xds_hub.imaging.rad69 import RequestError
from xds_hub.imaging.rad69 import parse_request as parse_rad69_request
from xds_hub.pix import hl7v2, iti44, iti45
from xds_hub.registry.iti18 import read_adhoc_query
from xds_hub.repository.iti43 import parse_retrieve_request
from xds_hub.soap import mtom
from xds_hub.soap.envelope import parse_envelope, read_addressing, render_fault, render_response
from xds_hub.soap.types import SoapRequest, SoapResponse
from xds_hub.storage.db import make_engine
from xds_hub.storage.fs import FsBlobStore
from xds_hub.storage.migrate import upgrade
from xds_hub.storage.stores import Stores

#: Characters an XML 1.0 text node can hold (no C0 controls but tab/LF/CR, no surrogates).
XML_TEXT = st.characters(min_codepoint=0x20, max_codepoint=0xD7FF)
KOS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
CT = "1.2.840.10008.5.1.4.1.1.2"

# ---------------------------------------------------------------------------------------------
# KOS
# ---------------------------------------------------------------------------------------------


def _kos(series: list[list[str]], name: str = "Doe^Jane", accession: str = "A1") -> tuple[bytes, str]:
    study_uid = generate_uid()
    refs = [ReferencedSeries(generate_uid(), tuple((CT, uid) for uid in uids)) for uids in series]
    data = build_kos(
        ManifestStudy(
            study_uid=study_uid,
            patient_id="P1",
            issuer=None,
            patient_authority="1.2.3.100",
            patient_name=name,
            accession=accession,
            accession_issuer="1.2.3.100",
        ),
        refs,
        kos_uid=generate_uid(),
        kos_series_uid=generate_uid(),
        retrieve_location_uid="1.2.3.4.6",
        retrieve_ae_title="XDSHUB",
        when=datetime(2024, 1, 1, tzinfo=UTC),
    )
    return data, study_uid


UID = st.lists(st.integers(1, 99999), min_size=2, max_size=8).map(
    lambda parts: "1." + ".".join(map(str, parts))
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(UID, min_size=1, max_size=4, unique=True), min_size=1, max_size=3),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters="\\^="), max_size=20),
    st.text(st.characters(min_codepoint=0x30, max_codepoint=0x7A, blacklist_characters="\\"), max_size=16),
)
def test_fuzz_kos_build_parse_round_trip(series: list[list[str]], name: str, accession: str) -> None:
    data, study_uid = _kos(series, name=name.strip() or "X", accession=accession.strip())
    kos = parse_kos(data)
    assert kos.sop_class_uid == KOS_SOP_CLASS
    assert sorted(uid for refs in kos.studies[study_uid].values() for _, uid in refs) == sorted(
        uid for uids in series for uid in uids
    )
    assert kos.accessions == ((accession.strip(),) if accession.strip() else ())


PYDICOM_WARNINGS = pytest.mark.filterwarnings("ignore::UserWarning")


@PYDICOM_WARNINGS
@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_kos_parser_on_any_bytes(data: bytes) -> None:
    with contextlib.suppress(KosError, ParseError):
        parse_kos(b"\0" * 128 + b"DICM" + data if data[:1] == b"P" else data)


_SAMPLE_KOS, _ = _kos([["1.2.3.1", "1.2.3.2"], ["1.2.3.3"]])


@PYDICOM_WARNINGS
@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, len(_SAMPLE_KOS)),
    st.lists(st.tuples(st.integers(0, len(_SAMPLE_KOS) - 1), st.integers(0, 255)), max_size=6),
)
def test_fuzz_kos_parser_on_damaged_manifests(cut: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(_SAMPLE_KOS[:cut] if cut >= 132 else _SAMPLE_KOS)
    for at, value in flips:
        if at < len(data):
            data[at] = value
    with contextlib.suppress(KosError, ParseError):
        parse_kos(bytes(data))


def test_fuzz_imaging_parser_errors_are_project_parse_errors() -> None:
    assert issubclass(KosError, ParseError)
    assert issubclass(RequestError, ParseError | XdsError)


# ---------------------------------------------------------------------------------------------
# MTOM: a damaged message reads whole or faults, and a fault keeps nothing
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blob_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-blobs")


def _mtom_message(docs: list[bytes]) -> tuple[str, bytes]:
    env = etree.Element(ns.qn(ns.SOAP12, "Envelope"))
    body = etree.SubElement(etree.SubElement(env, ns.qn(ns.SOAP12, "Body")), "holder")
    parts = []
    for i, doc in enumerate(docs):
        etree.SubElement(etree.SubElement(body, "doc"), ns.qn(ns.XOP, "Include"), href=f"cid:d{i}@fuzz")
        parts.append(OutgoingPart(f"d{i}@fuzz", "application/octet-stream", data=doc))
    message = MultipartBody(etree.tostring(env), parts, boundary="fuzzBoundary0123")
    return message.content_type("urn:a"), b"".join(iter(lambda: message.read(65536), b""))


_DOCS = [os.urandom(3000), b"", b"short", bytes(range(256)) * 4]
_CTYPE, _MESSAGE = _mtom_message(_DOCS)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.integers(0, len(_MESSAGE)),
    st.lists(st.tuples(st.integers(0, len(_MESSAGE) - 1), st.binary(min_size=1, max_size=3)), max_size=3),
    st.sampled_from([1, 5, 64, 4096, 1 << 20]),
)
def test_fuzz_mtom_damaged_message_reads_whole_or_keeps_nothing(
    blob_root: Path, cut: int, edits: list[tuple[int, bytes]], chunk: int
) -> None:
    data = bytearray(_MESSAGE[:cut])
    for at, new in edits:
        data[at : at + len(new)] = new
    folder = blob_root / os.urandom(6).hex()
    blobs = FsBlobStore(folder)

    def on_root(root: bytes, _headers: Mapping[str, str]) -> etree._Element:
        try:
            return parse_envelope(root).body
        except SoapFault:
            raise
        except Exception as exc:  # pragma: no cover - the envelope parser's own contract
            raise AssertionError(f"parse_envelope raised {exc!r}") from exc

    try:
        message = mtom.read_multipart(
            io.BytesIO(bytes(data)).read,
            mtom.parse_media_type(_CTYPE),
            blobs,
            on_root,
            max_root_bytes=1 << 20,
            chunk=chunk,
        )
    except SoapFault as fault:
        assert fault.code is not FaultCode.RECEIVER, fault.reason
        assert list(blobs.iter_keys(older_than=float("inf"))) == [], "a refused message left blobs"
        assert list(blobs.tmp.iterdir()) == [], "a refused message left temporary files"
        return
    assert list(blobs.tmp.iterdir()) == []
    for content_id, attachment in message.attachments.items():
        with blobs.open(attachment.blob.key) as stream:
            assert len(stream.read()) == attachment.blob.size, content_id
    if bytes(data) == _MESSAGE:
        got = {}
        for cid, att in message.attachments.items():
            with blobs.open(att.blob.key) as stream:
                got[cid] = stream.read()
        assert got == {f"d{i}@fuzz": d for i, d in enumerate(_DOCS)}


# ---------------------------------------------------------------------------------------------
# SOAP envelope and faults
# ---------------------------------------------------------------------------------------------

IDENT = st.text(XML_TEXT, min_size=1, max_size=40).map(str.strip).filter(bool)


@settings(max_examples=150, deadline=None)
@given(IDENT, IDENT, IDENT)
def test_fuzz_soap_envelope_round_trips_any_addressing(action: str, to: str, message_id: str) -> None:
    payload = etree.Element("{urn:fuzz}Payload")
    payload.text = message_id
    request = parse_envelope(build_envelope(action, to, payload, message_id=message_id))
    addressing = read_addressing(request)
    assert (addressing.action, addressing.to, addressing.message_id) == (action, to, message_id)
    reply = client_parse_envelope(
        render_response(copy.deepcopy(request.body), action + "Response", addressing), 200
    )
    assert reply.action == action + "Response"
    assert reply.body.text == message_id


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.sampled_from(list(FaultCode)), st.none() | IDENT)
def test_fuzz_soap_fault_with_any_reason_renders_and_reads_back(
    reason: str, code: FaultCode, relates_to: str | None
) -> None:
    data = render_fault(SoapFault(code, reason), relates_to)
    root = etree.fromstring(data)
    text = "".join(str(t) for t in root.itertext())
    assert f"soap:{code.value}" in text
    readable = "".join(c if c in "\t\n\r" or c >= " " else "\ufffd" for c in reason)
    assert all(c in text for c in readable if c.isprintable() and not ("\ud800" <= c <= "\udfff"))


# ---------------------------------------------------------------------------------------------
# ITI-18, ITI-43, RAD-69 request readers
# ---------------------------------------------------------------------------------------------

QUERY_IDS = [
    "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d",  # FindDocuments
    "urn:uuid:f26abbcb-ac74-4422-8a30-edb644bbc1a9",  # FindSubmissionSets
    "urn:uuid:958f3006-baad-4929-a4de-ff1114824431",  # FindFolders
    "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4",  # GetDocuments
    "urn:uuid:d90e5407-b356-4d91-a89f-873917b4b0e6",  # GetRelatedDocuments
    "urn:uuid:10cae35a-c7f9-4cf5-b61e-fc3278ffb578",  # GetAll
    "urn:uuid:nope",
    "",
]
PARAMS = [
    "$XDSDocumentEntryPatientId",
    "$XDSDocumentEntryStatus",
    "$XDSDocumentEntryClassCode",
    "$XDSDocumentEntryCreationTimeFrom",
    "$XDSDocumentEntryType",
    "$XDSDocumentEntryUniqueId",
    "$XDSDocumentEntryEntryUUID",
    "$patientId",
    "$XDSSubmissionSetStatus",
    "$XDSFolderStatus",
    "$AssociationTypes",
    "$uuid",
    "$MetadataLevel",
    "$whatever",
]
QUERY_VALUE = st.one_of(
    st.sampled_from(
        [
            "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')",
            "'P1^^^&1.3.6.1.4.1.21367.13.20.1000&ISO'",
            "('a^^b','c^^d')",
            "20240101",
            "('urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1')",
            "1",
        ]
    ),
    st.text(st.sampled_from("()',^&|$ab1.-"), max_size=30),
    st.text(XML_TEXT, max_size=20),
)


@st.composite
def adhoc_queries(draw: st.DrawFn) -> etree._Element:
    request = etree.Element(ns.qn(ns.QUERY, "AdhocQueryRequest"))
    if draw(st.booleans()) or draw(st.booleans()):
        option = etree.SubElement(request, ns.qn(ns.QUERY, "ResponseOption"))
        option.set("returnType", draw(st.sampled_from(["LeafClass", "ObjectRef", "RegistryObject", "x"])))
    query = etree.SubElement(request, ns.qn(ns.RIM, "AdhocQuery"), id=draw(st.sampled_from(QUERY_IDS)))
    if draw(st.booleans()):
        query.set("home", draw(st.sampled_from(["urn:oid:1.3.6.1.4.1.21367.13.70.1", "", "x"])))
    for _ in range(draw(st.integers(0, 6))):
        slot = etree.SubElement(query, ns.qn(ns.RIM, "Slot"), name=draw(st.sampled_from([*PARAMS, ""])))
        values = etree.SubElement(slot, ns.qn(ns.RIM, "ValueList"))
        for value in draw(st.lists(QUERY_VALUE, max_size=3)):
            etree.SubElement(values, ns.qn(ns.RIM, "Value")).text = value
    return request


@settings(max_examples=300, deadline=None)
@given(adhoc_queries())
def test_fuzz_iti18_request_reader_returns_a_query_or_an_xds_error(request: etree._Element) -> None:
    try:
        parse_query_request(read_adhoc_query(request))
    except XdsError as exc:
        assert exc.problems and all(p.code and p.context for p in exc.problems)
    except (SoapFault, ParseError):
        pass


TEXTISH = st.none() | st.text(XML_TEXT, max_size=12)


def _child(parent: etree._Element, tag: str, text: str | None) -> None:
    if text is not None:
        etree.SubElement(parent, tag).text = text


@st.composite
def retrieve_requests(draw: st.DrawFn) -> etree._Element:
    tag = draw(st.sampled_from(["RetrieveDocumentSetRequest", "RetrieveDocumentSetRequest", "Other"]))
    request = etree.Element(ns.qn(ns.XDSB, tag))
    for _ in range(draw(st.integers(0, 3))):
        doc = etree.SubElement(request, ns.qn(ns.XDSB, draw(st.sampled_from(["DocumentRequest", "X"]))))
        for local in ("HomeCommunityId", "RepositoryUniqueId", "DocumentUniqueId"):
            _child(doc, ns.qn(ns.XDSB, local), draw(TEXTISH))
    return request


@settings(max_examples=200, deadline=None)
@given(retrieve_requests())
def test_fuzz_iti43_request_reader(request: etree._Element) -> None:
    with contextlib.suppress(SoapFault, XdsError, ParseError):
        docs = parse_retrieve_request(request)
        assert docs and all(d.repository_unique_id is not None for d in docs)


@st.composite
def rad69_requests(draw: st.DrawFn) -> etree._Element:
    rad = "urn:ihe:rad:xdsi-b:2009"
    request = etree.Element(f"{{{rad}}}{draw(st.sampled_from(['RetrieveImagingDocumentSetRequest', 'X']))}")
    for _ in range(draw(st.integers(0, 2))):
        study = etree.SubElement(request, f"{{{rad}}}StudyRequest")
        if (uid := draw(TEXTISH)) is not None:
            study.set("studyInstanceUID", uid)
        for _ in range(draw(st.integers(0, 2))):
            series = etree.SubElement(study, f"{{{rad}}}SeriesRequest")
            if (uid := draw(TEXTISH)) is not None:
                series.set("seriesInstanceUID", uid)
            for _ in range(draw(st.integers(0, 2))):
                doc = etree.SubElement(series, ns.qn(ns.XDSB, "DocumentRequest"))
                for local in ("HomeCommunityId", "RepositoryUniqueId", "DocumentUniqueId"):
                    _child(doc, ns.qn(ns.XDSB, local), draw(TEXTISH))
    if draw(st.booleans()):
        syntaxes = etree.SubElement(request, f"{{{rad}}}TransferSyntaxUIDList")
        for text in draw(st.lists(TEXTISH, max_size=2)):
            _child(syntaxes, f"{{{rad}}}TransferSyntaxUID", text)
    return request


@settings(max_examples=200, deadline=None)
@given(rad69_requests())
def test_fuzz_rad69_request_reader(request: etree._Element) -> None:
    with contextlib.suppress(SoapFault, XdsError, ParseError, RequestError):
        parsed = parse_rad69_request(request)
        assert parsed.instances and parsed.transfer_syntaxes


# ---------------------------------------------------------------------------------------------
# ebRIM: generated trees
# ---------------------------------------------------------------------------------------------

RIM_TAGS = [
    "RegistryObjectList", "ExtrinsicObject", "RegistryPackage", "Association", "Classification",
    "ExternalIdentifier", "Slot", "ValueList", "Value", "Name", "Description", "LocalizedString",
    "ObjectRef", "VersionInfo",
]  # fmt: skip
RIM_ATTRS = [
    "id", "objectType", "mimeType", "status", "classificationScheme", "classifiedObject",
    "nodeRepresentation", "identificationScheme", "registryObject", "value", "name",
    "associationType", "sourceObject", "targetObject", "classificationNode", "lid", "home",
]  # fmt: skip
ATTR_VALUE = st.one_of(
    st.sampled_from(
        [
            "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1",
            "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd",
            "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500",
            "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember",
            "Document01",
            "text/plain",
            "",
        ]
    ),
    st.text(XML_TEXT, max_size=10),
)


@st.composite
def rim_trees(draw: st.DrawFn, depth: int = 0) -> etree._Element:
    element = etree.Element(ns.qn(ns.RIM, draw(st.sampled_from(RIM_TAGS))))
    for name in draw(st.lists(st.sampled_from(RIM_ATTRS), max_size=4, unique=True)):
        element.set(name, draw(ATTR_VALUE))
    if depth < 3:
        for child in draw(st.lists(rim_trees(depth + 1), max_size=3)):
            element.append(child)
    elif draw(st.booleans()):
        element.text = draw(st.text(XML_TEXT, max_size=8))
    return element


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rim_trees())
def test_fuzz_ebrim_parsers_on_generated_trees(tree: etree._Element) -> None:
    object_list = tree
    if tree.tag != ns.qn(ns.RIM, "RegistryObjectList"):
        object_list = etree.Element(ns.qn(ns.RIM, "RegistryObjectList"))
        object_list.append(tree)
    with contextlib.suppress(ParseError, XdsError):
        parse_registry_object_list(object_list)
    submit = etree.Element(ns.qn(ns.LCM, "SubmitObjectsRequest"))
    submit.append(copy.deepcopy(object_list))
    with contextlib.suppress(ParseError, XdsError):
        parse_submit_objects_request(submit)
    pnr = etree.Element(ns.qn(ns.XDSB, "ProvideAndRegisterDocumentSetRequest"))
    pnr.append(submit)
    with contextlib.suppress(ParseError, XdsError):
        parse_provide_and_register(pnr)


# ---------------------------------------------------------------------------------------------
# HL7 v2: build -> parse round trip
# ---------------------------------------------------------------------------------------------

HL7_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=15).filter(
    lambda v: v == v.strip()
)


def _pid_message(names: list[tuple[str, str]], control_id: str, extra: str) -> hl7v2.V2Message:
    text = hl7v2.render(
        [
            hl7v2.segment(
                "MSH", "APP", "FAC", "XDSHUB", "REGION", "20240101120000", "", ("ADT", "A01", "ADT_A01"),
                control_id, "P", "2.5",
            ),
            hl7v2.segment("PID", "1", "", [("L1", "", "", ("", "1.2.3.100", "ISO"))], "", list(names), extra),
        ]
    )  # fmt: skip
    return hl7v2.parse(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(HL7_VALUE, HL7_VALUE), min_size=1, max_size=3), HL7_VALUE, HL7_VALUE)
def test_fuzz_hl7v2_values_survive_build_and_parse(
    names: list[tuple[str, str]], control_id: str, extra: str
) -> None:
    assume(control_id)
    message = _pid_message(names, control_id, extra)
    pid = message.first("PID")
    assert pid is not None
    assert message.control_id == control_id
    assert pid.value(6) == extra
    for rep, (family, given_name) in enumerate(names, start=1):
        if family or given_name:
            assert (pid.value(5, rep, 1), pid.value(5, rep, 2)) == (family, given_name)


def test_fuzz_hl7v2_non_ascii_values_survive_build_and_parse() -> None:
    for value in ("Hélène", "Łukasz", "Dvořák", "日本"):
        message = _pid_message([(value, value)], value, value)
        pid = message.first("PID")
        assert pid is not None
        assert (message.control_id, pid.value(5, 1, 1), pid.value(6)) == (value, value, value)
        assert "\\X" not in message.text


# ---------------------------------------------------------------------------------------------
# HL7 v3: the whole ITI-44 / ITI-45 handler on damaged samples
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pix_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    folder = tmp_path_factory.mktemp("fuzz-pix")
    engine: Engine = make_engine(f"sqlite:///{folder / 'pix.sqlite'}")
    upgrade(engine)
    stores = Stores(engine=engine, blobs=FsBlobStore(folder / "blobs"))
    yield stores
    stores.close()


def _v3_sample(name: str) -> etree._Element:
    path = SAMPLES / "pixv3" / name
    if not path.is_file():
        pytest.skip(f"{name} not found")
    return etree.parse(str(path)).getroot()


def _damage(root: etree._Element) -> st.SearchStrategy[etree._Element]:
    count = sum(1 for e in root.iter() if isinstance(e.tag, str))

    @st.composite
    def damaged(draw: st.DrawFn) -> etree._Element:
        doc = copy.deepcopy(root)
        nodes = [e for e in doc.iter() if isinstance(e.tag, str)]
        for index in draw(st.lists(st.integers(1, count - 1), max_size=5)):
            node = nodes[index]
            op = draw(st.sampled_from(["drop", "dup", "text", "attr", "hoist"]))
            parent = node.getparent()
            if op == "drop" and parent is not None:
                parent.remove(node)
            elif op == "dup" and parent is not None:
                node.addnext(copy.deepcopy(node))
            elif op == "text":
                node.text = draw(st.text(XML_TEXT, max_size=12))
            elif op == "attr":
                node.set(
                    draw(st.sampled_from(["root", "extension", "code", "classCode", "typeCode", "value"])),
                    draw(st.text(XML_TEXT, max_size=12)),
                )
            elif op == "hoist" and parent is not None and parent.getparent() is not None:
                parent.addprevious(node)
        return doc

    return damaged()


V3_CASES = [
    ("PIX_FEED_REG_Maximal_Request.xml", "urn:hl7-org:v3:PRPA_IN201301UV02", iti44.handle),
    ("PIX_FEED_MERGE_Maximal_Request.xml", "urn:hl7-org:v3:PRPA_IN201304UV02", iti44.handle),
    ("NistPixpdq_Mesa10501-04_Example_01.xml", "urn:hl7-org:v3:PRPA_IN201309UV02", iti45.handle),
]


@pytest.mark.parametrize(("sample", "action", "handler"), V3_CASES, ids=[c[0] for c in V3_CASES])
def test_fuzz_hl7v3_handlers_answer_damaged_messages(
    pix_stores: Stores, sample: str, action: str, handler: object
) -> None:
    root = _v3_sample(sample)
    settings_ = Settings(domain=DEMO_DOMAIN)
    assert callable(handler)

    @given(_damage(root))
    @settings(max_examples=60, deadline=None)
    def check(doc: etree._Element) -> None:
        request = SoapRequest(action=action, body=doc)
        try:
            reply = handler(request, pix_stores, settings_)
        except (SoapFault, Hl7Error, XdsError, ParseError):
            return
        assert isinstance(reply, SoapResponse)
        assert reply.body.tag.startswith(f"{{{ns.HL7V3}}}")

    check()


# ---------------------------------------------------------------------------------------------
# DICOMweb Accept headers
# ---------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.none()
    | st.text(max_size=60)
    | st.lists(
        st.sampled_from(
            ['multipart/related; type="application/dicom"', "application/dicom+json", "*/*", ";q=0.5", ";q=x",
             ', ', '"', "image/jpeg;q=0", 'transfer-syntax=*']
        ),
        max_size=6,
    ).map("".join)
)  # fmt: skip
def test_fuzz_dicomweb_accept_header_parser(header: str | None) -> None:
    ranges = parse_accept(header)
    assert all(r.q > 0 for r in ranges)
    assert [r.q for r in ranges] == sorted((r.q for r in ranges), reverse=True)
