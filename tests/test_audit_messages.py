"""ATNA audit messages (ITI-20): every builder's message validates against the DICOM audit message schema
(PS3.15 A.5.1) and carries what the IHE "Security Considerations" section of its transaction requires.

The schema below is the RELAX NG Compact schema of DICOM PS3.15 A.5.1 written in RELAX NG XML syntax
(lxml validates that syntax), for tests only.  One deliberate relaxation: the choice between
ParticipantObjectName and ParticipantObjectQuery is optional here, as in RFC 3881 (the schema A.5.1
extends) and in the IHE Gazelle validator's "General Message Format Conventions" (both "U"), because
the IHE transaction tables define patient, document and submission-set objects with neither.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable

import pytest
from lxml import etree

from xds_hub.audit import events
from xds_hub.audit.model import Action, AuditMessage, AuditSource, Outcome
from xds_hub.audit.xml import to_element, to_xml
from xds_hub.config import DEMO_DOMAIN, Settings, load_settings
from xds_hub.errors import ErrorCode, XdsError
from xds_hub.security.access import NodeIdentity

RNG = """<grammar xmlns="http://relaxng.org/ns/structure/1.0"
         datatypeLibrary="http://www.w3.org/2001/XMLSchema-datatypes">
  <start><ref name="message"/></start>
  <define name="other-csd-attributes">
    <attribute name="codeSystemName"><data type="token"/></attribute>
    <optional><attribute name="displayName"><data type="token"/></attribute></optional>
    <attribute name="originalText"><data type="token"/></attribute>
  </define>
  <define name="CodedValueType">
    <attribute name="csd-code"><data type="token"/></attribute>
    <ref name="other-csd-attributes"/>
  </define>
  <define name="EventIdentificationContents">
    <element name="EventID"><ref name="CodedValueType"/></element>
    <zeroOrMore><element name="EventTypeCode"><ref name="CodedValueType"/></element></zeroOrMore>
    <optional><attribute name="EventActionCode">
      <choice><value>C</value><value>R</value><value>U</value><value>D</value><value>E</value></choice>
    </attribute></optional>
    <attribute name="EventDateTime"><data type="dateTime"/></attribute>
    <attribute name="EventOutcomeIndicator">
      <choice><value>0</value><value>4</value><value>8</value><value>12</value></choice>
    </attribute>
    <optional><element name="EventOutcomeDescription"><text/></element></optional>
  </define>
  <define name="AuditSourceIdentificationContents">
    <optional><attribute name="AuditEnterpriseSiteID"><data type="token"/></attribute></optional>
    <attribute name="AuditSourceID"><data type="token"/></attribute>
    <zeroOrMore><element name="AuditSourceTypeCode">
      <attribute name="csd-code"><data type="token"/></attribute>
      <optional><ref name="other-csd-attributes"/></optional>
    </element></zeroOrMore>
  </define>
  <define name="ActiveParticipantContents">
    <zeroOrMore><element name="RoleIDCode"><ref name="CodedValueType"/></element></zeroOrMore>
    <optional><element name="MediaIdentifier">
      <element name="MediaType"><ref name="CodedValueType"/></element>
    </element></optional>
    <attribute name="UserID"><text/></attribute>
    <optional><attribute name="AlternativeUserID"><text/></attribute></optional>
    <optional><attribute name="UserName"><text/></attribute></optional>
    <attribute name="UserIsRequestor"><data type="boolean"/></attribute>
    <optional><attribute name="NetworkAccessPointID"><data type="token"/></attribute></optional>
    <optional><attribute name="NetworkAccessPointTypeCode">
      <choice><value>1</value><value>2</value><value>3</value><value>4</value><value>5</value></choice>
    </attribute></optional>
  </define>
  <define name="ValuePair">
    <attribute name="type"><data type="token"/></attribute>
    <attribute name="value"><data type="base64Binary"/></attribute>
  </define>
  <define name="DICOMObjectDescriptionContents">
    <zeroOrMore><element name="MPPS">
      <attribute name="UID"><data type="token"/></attribute>
    </element></zeroOrMore>
    <zeroOrMore><element name="Accession">
      <attribute name="Number"><data type="token"/></attribute>
    </element></zeroOrMore>
    <zeroOrMore><element name="SOPClass">
      <zeroOrMore><element name="Instance">
        <attribute name="UID"><data type="token"/></attribute>
      </element></zeroOrMore>
      <optional><attribute name="UID"><data type="token"/></attribute></optional>
      <attribute name="NumberOfInstances"><data type="integer"/></attribute>
    </element></zeroOrMore>
    <optional><element name="ParticipantObjectContainsStudy">
      <zeroOrMore><element name="StudyIDs">
        <attribute name="UID"><data type="token"/></attribute>
      </element></zeroOrMore>
    </element></optional>
    <optional><element name="Encrypted"><data type="boolean"/></element></optional>
    <optional><element name="Anonymized"><data type="boolean"/></element></optional>
  </define>
  <define name="ParticipantObjectIdentificationContents">
    <element name="ParticipantObjectIDTypeCode"><ref name="CodedValueType"/></element>
    <optional><choice>
      <element name="ParticipantObjectName"><data type="token"/></element>
      <element name="ParticipantObjectQuery"><data type="base64Binary"/></element>
    </choice></optional>
    <zeroOrMore><element name="ParticipantObjectDetail"><ref name="ValuePair"/></element></zeroOrMore>
    <zeroOrMore><element name="ParticipantObjectDescription">
      <ref name="DICOMObjectDescriptionContents"/>
    </element></zeroOrMore>
    <attribute name="ParticipantObjectID"><data type="token"/></attribute>
    <optional><attribute name="ParticipantObjectTypeCode">
      <choice><value>1</value><value>2</value><value>3</value><value>4</value></choice>
    </attribute></optional>
    <optional><attribute name="ParticipantObjectTypeCodeRole">
      <choice>
        <value>1</value><value>2</value><value>3</value><value>4</value><value>5</value><value>6</value>
        <value>7</value><value>8</value><value>9</value><value>10</value><value>11</value><value>12</value>
        <value>13</value><value>14</value><value>15</value><value>16</value><value>17</value><value>18</value>
        <value>19</value><value>20</value><value>21</value><value>22</value><value>23</value><value>24</value>
        <value>25</value><value>26</value>
      </choice>
    </attribute></optional>
    <optional><attribute name="ParticipantObjectDataLifeCycle">
      <choice>
        <value>1</value><value>2</value><value>3</value><value>4</value><value>5</value><value>6</value>
        <value>7</value><value>8</value><value>9</value><value>10</value><value>11</value><value>12</value>
        <value>13</value><value>14</value><value>15</value>
      </choice>
    </attribute></optional>
    <optional><attribute name="ParticipantObjectSensitivity"><data type="token"/></attribute></optional>
  </define>
  <define name="message">
    <element name="AuditMessage">
      <element name="EventIdentification"><ref name="EventIdentificationContents"/></element>
      <oneOrMore><element name="ActiveParticipant">
        <ref name="ActiveParticipantContents"/>
      </element></oneOrMore>
      <element name="AuditSourceIdentification"><ref name="AuditSourceIdentificationContents"/></element>
      <zeroOrMore><element name="ParticipantObjectIdentification">
        <ref name="ParticipantObjectIdentificationContents"/>
      </element></zeroOrMore>
    </element>
  </define>
</grammar>"""

SCHEMA = etree.RelaxNG(etree.fromstring(RNG.encode()))

SETTINGS: Settings = load_settings(None, audit_source_id="XDSHUB-TEST", http_port=8443)
SOURCE: AuditSource = events.audit_source(SETTINGS)
HOME = DEMO_DOMAIN.home_community_id
PATIENT = "P123^^^&1.3.6.1.4.1.21367.13.20.1000&ISO"
IDENTITY = NodeIdentity(
    subject="CN=Hopital A,O=xds-hub demo region",
    alt_names=("URI:urn:oid:1.2.3.100",),
    establishment=DEMO_DOMAIN.establishments[0],
)
CONSUMER = events.peer("http://www.w3.org/2005/08/addressing/anonymous", "10.1.2.3", IDENTITY)
REGISTRY = events.hub_http(SETTINGS, "/xds/registry")
REPOSITORY = events.hub_http(SETTINGS, "/xds/repository")
MODALITY = events.peer("HOPA_CT", "10.1.2.4", IDENTITY)
HUB_AE = events.hub_dicom(SETTINGS)
PIX_SOURCE = events.peer("HOPA_ADT|HOPITAL_A", "10.1.2.5", IDENTITY)
PIX_HUB = events.hub_mllp(SETTINGS, "XDSHUB|REGION")
DOC = events.DocumentRef("1.2.3.4.5.6.7", DEMO_DOMAIN.repository_unique_id)
STUDY = events.StudyRef(
    "1.2.840.99.1", {"1.2.840.10008.5.1.4.1.1.2": ("1.2.840.99.1.1.1", "1.2.840.99.1.1.2")}, ("ACC1",)
)
QUERY = b'<query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"/>'

#: name -> (builder, EventID code, action, EventTypeCode or None)
BUILDERS: dict[str, tuple[Callable[[], AuditMessage], str, str, str | None]] = {
    "iti41": (
        lambda: events.submission_import(SOURCE, "ITI-41", CONSUMER, REPOSITORY, PATIENT, "1.2.3.4.99"),
        "110107",
        "C",
        "ITI-41",
    ),
    "iti42": (
        lambda: events.submission_import(SOURCE, "ITI-42", CONSUMER, REGISTRY, PATIENT, "1.2.3.4.99"),
        "110107",
        "C",
        "ITI-42",
    ),
    "rad68": (
        lambda: events.submission_import(SOURCE, "RAD-68", CONSUMER, REPOSITORY, PATIENT, "1.2.3.4.99"),
        "110107",
        "C",
        "RAD-68",
    ),
    "iti57": (
        lambda: events.metadata_update(SOURCE, CONSUMER, REGISTRY, PATIENT, "1.2.3.4.98"),
        "110107",
        "U",
        "ITI-57",
    ),
    "iti18": (
        lambda: events.stored_query(
            SOURCE,
            CONSUMER,
            REGISTRY,
            "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d",
            QUERY,
            PATIENT,
            home_community_id=HOME,
        ),
        "110112",
        "E",
        "ITI-18",
    ),
    "iti43": (
        lambda: events.document_export(SOURCE, CONSUMER, REPOSITORY, [DOC], HOME, PATIENT),
        "110106",
        "R",
        "ITI-43",
    ),
    "iti62": (
        lambda: events.metadata_delete(
            SOURCE, CONSUMER, REGISTRY, ["urn:uuid:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"], [PATIENT]
        ),
        "110110",
        "D",
        "ITI-62",
    ),
    "iti86": (
        lambda: events.documents_remove(SOURCE, CONSUMER, REPOSITORY, [DOC], HOME, [PATIENT]),
        "110110",
        "D",
        "ITI-86",
    ),
    "rad69": (
        lambda: events.imaging_export(
            SOURCE, CONSUMER, events.hub_http(SETTINGS, "/xdsi/source"), [STUDY], PATIENT
        ),
        "110104",
        "R",
        "RAD-69",
    ),
    "cstore": (
        lambda: events.instances_transferred(
            SOURCE, MODALITY, HUB_AE, [STUDY], PATIENT, Action.CREATE, requestor=MODALITY
        ),
        "110104",
        "C",
        None,
    ),
    "cmove": (
        lambda: events.instances_transferred(
            SOURCE,
            HUB_AE,
            events.peer("HOPA_PACS", "10.1.2.6"),
            [STUDY],
            PATIENT,
            Action.READ,
            requestor=MODALITY,
        ),
        "110104",
        "R",
        None,
    ),
    "cmove-begin": (
        lambda: events.begin_transferring(
            SOURCE, HUB_AE, events.peer("HOPA_PACS", "10.1.2.6"), [STUDY], PATIENT, requestor=MODALITY
        ),
        "110102",
        "E",
        None,
    ),
    "wado": (
        lambda: events.instances_transferred(
            SOURCE,
            events.hub_http(SETTINGS, "/wado"),
            CONSUMER,
            [STUDY],
            PATIENT,
            Action.READ,
            requestor=CONSUMER,
            transaction="RAD-55",
        ),
        "110104",
        "R",
        "RAD-55",
    ),
    "cfind": (
        lambda: events.dicom_query(
            SOURCE,
            MODALITY,
            HUB_AE,
            "1.2.840.10008.5.1.4.1.2.2.1",
            b"\x08\x00\x52\x00",
            "1.2.840.10008.1.2.1",
        ),
        "110112",
        "E",
        None,
    ),
    "iti8": (
        lambda: events.patient_record(
            SOURCE, "ITI-8", PIX_SOURCE, PIX_HUB, Action.CREATE, ["L1^^^&1.2.3.100&ISO"], "MSG0001"
        ),
        "110110",
        "C",
        "ITI-8",
    ),
    "iti44": (
        lambda: events.patient_record(
            SOURCE,
            "ITI-44",
            CONSUMER,
            events.hub_http(SETTINGS, "/pix"),
            Action.UPDATE,
            ["L1^^^&1.2.3.100&ISO"],
            "1.2.3^42",
        ),
        "110110",
        "U",
        "ITI-44",
    ),
    "iti9": (
        lambda: events.pix_query(
            SOURCE,
            "ITI-9",
            PIX_SOURCE,
            PIX_HUB,
            b"QPD|IHE PIX Query|Q1|L1^^^&1.2.3.100&ISO",
            "MSG0002",
            ["L1^^^&1.2.3.100&ISO", PATIENT],
        ),
        "110112",
        "E",
        "ITI-9",
    ),
    "iti45": (
        lambda: events.pix_query(
            SOURCE,
            "ITI-45",
            CONSUMER,
            events.hub_http(SETTINGS, "/pix"),
            b"<queryByParameter/>",
            "1.2.3^43",
            [PATIENT],
        ),
        "110112",
        "E",
        "ITI-45",
    ),
    "node-auth": (
        lambda: events.node_authentication_failure(
            SOURCE, REGISTRY, events.peer(None, "10.9.9.9"), "certificate verify failed"
        ),
        "110113",
        "E",
        None,
    ),
    "access-denied": (
        lambda: events.access_denied(SOURCE, CONSUMER, REGISTRY, "ITI-62", "not an admin"),
        "110113",
        "E",
        None,
    ),
    "app-start": (lambda: events.application_activity(SOURCE, HUB_AE, start=True), "110100", "E", None),
}


def _texts(el: etree._Element, xpath: str) -> list[str]:
    return [str(v) for v in el.xpath(xpath)]  # type: ignore[union-attr]


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_iti20_every_audit_message_validates_against_dicom_schema(name: str) -> None:
    build, event_id, action, type_code = BUILDERS[name]
    message = build()
    root = etree.fromstring(to_xml(message))
    assert SCHEMA.validate(root), SCHEMA.error_log
    event = root.find("EventIdentification")
    assert event is not None
    assert _texts(event, "EventID/@csd-code") == [event_id]
    assert _texts(event, "EventID/@codeSystemName") == ["DCM"]
    assert event.get("EventActionCode") == action
    alert = event_id == "110113"  # a security alert reports a (minor) failure
    assert event.get("EventOutcomeIndicator") == ("4" if alert else "0")
    if type_code:
        assert _texts(event, "EventTypeCode/@csd-code")[0] == type_code
        assert _texts(event, "EventTypeCode/@codeSystemName")[0] == "IHE Transactions"
    source = root.find("AuditSourceIdentification")
    assert source is not None and source.get("AuditSourceID") == "XDSHUB-TEST"
    assert source.get("AuditEnterpriseSiteID") == HOME


def _participant(root: etree._Element, role: str) -> etree._Element:
    found = root.xpath(f"ActiveParticipant[RoleIDCode/@csd-code='{role}']")
    assert isinstance(found, list) and len(found) == 1, f"one participant with role {role}"
    el = found[0]
    assert isinstance(el, etree._Element)
    assert el.get("UserID")
    assert el.get("NetworkAccessPointID")
    assert el.get("NetworkAccessPointTypeCode") in ("1", "2")
    return el


def _objects(root: etree._Element, type_code: str, role: str) -> list[etree._Element]:
    found = root.xpath(
        f"ParticipantObjectIdentification[@ParticipantObjectTypeCode='{type_code}' and "
        f"@ParticipantObjectTypeCodeRole='{role}']"
    )
    assert isinstance(found, list)
    return [e for e in found if isinstance(e, etree._Element)]


def _detail(obj: etree._Element, kind: str) -> str:
    values = _texts(obj, f"ParticipantObjectDetail[@type='{kind}']/@value")
    assert len(values) == 1, f"one {kind} detail"
    return base64.b64decode(values[0]).decode()


@pytest.mark.parametrize("name", ["iti41", "iti42", "rad68", "iti57"])
def test_iti41_iti42_iti57_import_has_source_destination_patient_and_submission_set(name: str) -> None:
    root = to_element(BUILDERS[name][0]())
    source = _participant(root, "110153")
    assert source.get("UserIsRequestor") == "true"
    assert source.get("UserID") == "http://www.w3.org/2005/08/addressing/anonymous"
    assert source.get("UserName") == "Hopital A <CN=Hopital A,O=xds-hub demo region>"
    destination = _participant(root, "110152")
    assert destination.get("UserIsRequestor") == "false"
    assert destination.get("UserID", "").startswith("http://127.0.0.1:8443/xds")
    assert destination.get("AlternativeUserID")  # process id
    [patient] = _objects(root, "1", "1")
    assert patient.get("ParticipantObjectID") == PATIENT
    assert _texts(patient, "ParticipantObjectIDTypeCode/@csd-code") == ["2"]
    assert _texts(patient, "ParticipantObjectIDTypeCode/@codeSystemName") == ["RFC-3881"]
    [subset] = _objects(root, "2", "20")
    assert _texts(subset, "ParticipantObjectIDTypeCode/@csd-code") == [
        "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
    ]
    assert _texts(subset, "ParticipantObjectIDTypeCode/@codeSystemName") == ["IHE XDS Metadata"]


def test_iti18_query_object_carries_the_request_base64_and_encoding() -> None:
    root = to_element(BUILDERS["iti18"][0]())
    _participant(root, "110153")
    assert _participant(root, "110152").get("UserID", "").endswith("/xds/registry")
    [query] = _objects(root, "2", "24")
    assert query.get("ParticipantObjectID") == "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
    assert _texts(query, "ParticipantObjectIDTypeCode/@csd-code") == ["ITI-18"]
    assert base64.b64decode(_texts(query, "ParticipantObjectQuery/text()")[0]) == QUERY
    assert _detail(query, "QueryEncoding") == "UTF-8"
    assert len(_objects(root, "1", "1")) == 1


def test_iti43_export_documents_have_repository_and_home_community_details() -> None:
    root = to_element(BUILDERS["iti43"][0]())
    source = _participant(root, "110153")
    assert source.get("UserIsRequestor") == "false" and source.get("AlternativeUserID")
    assert _participant(root, "110152").get("UserIsRequestor") == "true"
    [doc] = _objects(root, "2", "3")
    assert doc.get("ParticipantObjectID") == "1.2.3.4.5.6.7"
    assert _texts(doc, "ParticipantObjectIDTypeCode/@csd-code") == ["9"]
    assert _detail(doc, "Repository Unique Id") == DEMO_DOMAIN.repository_unique_id
    assert _detail(doc, "ihe:homeCommunityID") == HOME


def test_iti62_iti86_deletions_name_objects_and_life_cycle() -> None:
    [ref] = _objects(to_element(BUILDERS["iti62"][0]()), "2", "3")
    assert _texts(ref, "ParticipantObjectIDTypeCode/@csd-code") == ["urn:ihe:iti:2017:ObjectRef"]
    assert ref.get("ParticipantObjectDataLifeCycle") == "14"
    [doc] = _objects(to_element(BUILDERS["iti86"][0]()), "2", "3")
    assert doc.get("ParticipantObjectDataLifeCycle") == "15"
    assert _detail(doc, "Repository Unique Id") == DEMO_DOMAIN.repository_unique_id


def test_rad69_and_dicom_transfers_describe_studies_with_sop_classes() -> None:
    for name in ("rad69", "cstore", "cmove", "wado"):
        root = to_element(BUILDERS[name][0]())
        [study] = _objects(root, "2", "3")
        assert study.get("ParticipantObjectID") == "1.2.840.99.1"
        assert _texts(study, "ParticipantObjectIDTypeCode/@csd-code") == ["110180"]
        assert _texts(study, "ParticipantObjectDescription/SOPClass/@UID") == ["1.2.840.10008.5.1.4.1.1.2"]
        assert _texts(study, "ParticipantObjectDescription/SOPClass/@NumberOfInstances") == ["2"]
        assert _texts(study, "ParticipantObjectDescription/Accession/@Number") == ["ACC1"]
        assert len(_objects(root, "1", "1")) == 1
    # C-MOVE: the hub sends, the destination receives, the C-MOVE SCU is a third, requesting participant.
    root = to_element(BUILDERS["cmove"][0]())
    assert _participant(root, "110153").get("UserID") == "XDSHUB"
    assert _participant(root, "110152").get("UserID") == "HOPA_PACS"
    assert _texts(root, "ActiveParticipant[@UserIsRequestor='true']/@UserID") == ["HOPA_CT"]


def test_iti8_iti44_patient_record_has_message_id_detail() -> None:
    [patient] = _objects(to_element(BUILDERS["iti8"][0]()), "1", "1")
    assert _detail(patient, "MSH-10") == "MSG0001"
    [patient] = _objects(to_element(BUILDERS["iti44"][0]()), "1", "1")
    assert _detail(patient, "II") == "1.2.3^42"
    root = to_element(BUILDERS["iti8"][0]())
    assert _participant(root, "110153").get("UserID") == "HOPA_ADT|HOPITAL_A"
    assert _participant(root, "110152").get("UserID") == "XDSHUB|REGION"


def test_iti9_iti45_query_objects() -> None:
    root = to_element(BUILDERS["iti9"][0]())
    [query] = _objects(root, "2", "24")
    assert _texts(query, "ParticipantObjectIDTypeCode/@csd-code") == ["ITI-9"]
    assert _detail(query, "MSH-10") == "MSG0002"
    assert len(_objects(root, "1", "1")) == 2
    [query] = _objects(to_element(BUILDERS["iti45"][0]()), "2", "24")
    assert base64.b64decode(_texts(query, "ParticipantObjectQuery/text()")[0]) == b"<queryByParameter/>"


def test_iti20_failure_outcome_and_description() -> None:
    outcome, description = events.outcome_of(XdsError.one(ErrorCode.UNKNOWN_PATIENT_ID, "who?"))
    assert outcome is Outcome.SERIOUS_FAILURE
    message = events.submission_import(
        SOURCE,
        "ITI-41",
        CONSUMER,
        REPOSITORY,
        PATIENT,
        "1.2.3",
        outcome,
        description,
        when=dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC),
    )
    root = etree.fromstring(to_xml(message))
    assert SCHEMA.validate(root), SCHEMA.error_log
    event = root.find("EventIdentification")
    assert event is not None
    assert event.get("EventOutcomeIndicator") == "8"
    assert event.get("EventDateTime") == "2024-05-01T12:00:00.000+00:00"
    assert "XDSUnknownPatientId" in (event.findtext("EventOutcomeDescription") or "")
    assert events.outcome_of(None, partial=True)[0] is Outcome.MINOR_FAILURE
    assert events.outcome_of(RuntimeError("boom"))[0] is Outcome.MAJOR_FAILURE


def test_iti20_values_with_markup_are_escaped_and_base64() -> None:
    nasty = '<x a="1">&amp;</x>\x00'
    message = events.stored_query(
        SOURCE,
        events.peer(nasty.replace("\x00", ""), "10.0.0.1"),
        REGISTRY,
        "urn:uuid:x",
        nasty.encode(),
        PATIENT,
    )
    root = etree.fromstring(to_xml(message))
    assert SCHEMA.validate(root), SCHEMA.error_log
    [query] = _objects(root, "2", "24")
    assert base64.b64decode(_texts(query, "ParticipantObjectQuery/text()")[0]) == nasty.encode()


def test_iti20_soap_requester_is_its_reply_to_address_and_identity() -> None:
    from xds_hub.soap.types import SoapRequest

    body = etree.Element("x")
    node = events.soap_peer(SoapRequest(action="a", body=body, remote_addr="10.0.0.9"), IDENTITY)
    assert node.user_id == "http://www.w3.org/2005/08/addressing/anonymous"
    assert node.address == "10.0.0.9" and node.user_name == "Hopital A <CN=Hopital A,O=xds-hub demo region>"
    node = events.soap_peer(SoapRequest(action="a", body=body, reply_to="http://consumer.example/cb"))
    assert node.user_id == "http://consumer.example/cb" and node.user_name is None
