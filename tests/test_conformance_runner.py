"""Issue 4: the pieces of the conformance runner, without a hub.

Builders must produce schema-valid messages (official XSDs, tests/oracle.py) that the hub's own
parser accepts; checks must tell a right answer from a wrong one; reports must be well-formed.
"""

from __future__ import annotations

import hashlib
import socket
from io import BytesIO
from pathlib import Path

import pytest
from lxml import etree

from tests.oracle import assert_valid
from xds_hub.config import DEMO_DOMAIN
from xds_hub.conformance import checks, messages
from xds_hub.conformance.engine import ERROR, PASSED, Runner, ScenarioResult, StepResult
from xds_hub.conformance.report import write_html, write_junit
from xds_hub.conformance.scenario import ScenarioError, load_catalogue, parse_scenario, select
from xds_hub.conformance.submission import build_submission
from xds_hub.conformance.target import Target, load_target
from xds_hub.conformance.template import Context, TemplateError
from xds_hub.conformance.wire import Exchange, Part, SoapResult, mtom_body, split_multipart
from xds_hub.domain.validate import validate_submission
from xds_hub.domain.vocabulary import ResponseStatus
from xds_hub.ebxml import (
    parse_submit_objects_request,
    render_registry_response,
    render_submit_objects_request,
)
from xds_hub.errors import ErrorCode, Problem


def _ctx() -> Context:
    return Context(Target("http://127.0.0.1:9"))


def test_conformance_template_fresh_values_are_stable_within_a_run() -> None:
    ctx = _ctx()
    assert ctx.expand("{{uid.a}}") == ctx.expand("{{uid.a}}") != ctx.expand("{{uid.b}}")
    assert ctx.expand("{{patient.main}}").endswith(f"^^^&{DEMO_DOMAIN.assigning_authority}&ISO")
    assert ctx.expand("{{patient.main.id}}") == ctx.patients["main"].id
    assert ctx.expand("{{local.main.1}}").endswith("^^^&1.2.3.200&ISO")
    assert ctx.expand("{{domain.source_id}}") == "1.2.3.100.1"
    assert _ctx().expand("{{uid.a}}") != ctx.expand("{{uid.a}}")
    with pytest.raises(TemplateError):
        ctx.expand("{{steps.nothing.here}}")
    with pytest.raises(TemplateError):
        ctx.expand("{{bogus.x}}")


def test_conformance_submission_builder_is_schema_valid_and_accepted_by_the_hub_parser() -> None:
    ctx = _ctx()
    desc = {
        "documents": [{"id": "doc1", "content": "x"}, {"id": "doc2", "content_size": 10}],
        "folders": [{"id": "f1", "documents": ["doc1"]}],
        "references": ["urn:uuid:5b0ae6a8-3e3e-4a6b-9d41-0c8e21c2f7aa"],
    }
    built = build_submission(ctx, "submit", desc)
    xml = render_submit_objects_request(built.submission)
    assert_valid("lcm.xsd", xml)
    parsed = parse_submit_objects_request(xml)
    validate_submission(parsed, DEMO_DOMAIN, for_repository=False)
    assert ctx.recorded["submit.doc1.sha1"] == hashlib.sha1(b"x").hexdigest()
    assert ctx.recorded["submit.doc1.uuid"] == parsed.documents[0].entry_uuid


def test_conformance_submission_builder_omit_and_override() -> None:
    built = build_submission(
        _ctx(), "s", {"documents": [{"id": "d", "omit": ["creation_time"], "title": "T"}]}
    )
    doc = built.submission.documents[0]
    assert doc.creation_time is None and doc.title == "T"


def test_conformance_query_retrieve_and_rad69_builders_are_schema_valid() -> None:
    ctx = _ctx()
    query = messages.build_query(
        {
            "id": "FindDocuments",
            "params": {
                "$XDSDocumentEntryPatientId": "'x'",
                "$XDSDocumentEntryEventCodeList": [["('a')"], ["('b')"]],
            },
        }
    )
    assert_valid("query.xsd", query)
    assert len(query.findall(".//{*}Slot")) == 3
    assert_valid(
        "XDS.b_DocumentRepository.xsd", messages.build_retrieve({"documents": [{"unique_id": "1.2"}]}, ctx)
    )
    rad69 = messages.build_imaging_retrieve(
        {"studies": [{"uid": "1.2", "series": [{"uid": "1.2.3", "instances": ["1.2.3.4"]}]}]}, ctx
    )
    assert_valid("XDSI.b_ImagingDocumentSource.xsd", rad69)


def test_conformance_mutate_removes_and_sets() -> None:
    root = messages.build_query({"id": "GetDocuments", "params": {"$a": "1", "$b": "2"}})
    messages.mutate(
        root, [{"remove": "//rim:Slot[@name='$a']"}, {"set": "//rim:AdhocQuery/@id", "value": "X"}]
    )
    assert [s.get("name") for s in root.iter("{*}Slot")] == ["$b"]
    adhoc = root.find("{*}AdhocQuery")
    assert adhoc is not None and adhoc.get("id") == "X"
    with pytest.raises(Exception, match="matches nothing"):
        messages.mutate(root, [{"remove": "//rim:Nothing"}])


def test_conformance_kos_builder_writes_a_key_object_selection() -> None:
    from pydicom import dcmread

    from xds_hub.conformance.dicom import make_kos

    data = make_kos(
        _ctx(), {"study": "1.2.3", "series": [{"uid": "1.2.3.4", "instances": [{"uid": "1.2.3.4.5"}]}]}
    )
    ds = dcmread(BytesIO(data))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.59"
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0]
    assert (
        evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == "1.2.3.4.5"
    )


def test_conformance_mtom_framing_round_trips_binary_parts() -> None:
    payload = bytes(range(256)) + b"\r\n--MIMEBoundary\r\n\r\n"
    body, content_type = mtom_body(b"<e/>", [Part("doc@x", "application/octet-stream", payload)], "urn:a")
    boundary = content_type.split('boundary="', 1)[1].split('"', 1)[0]
    parts = split_multipart(body, boundary)
    assert [p.content_id for p in parts][1:] == ["doc@x"]
    assert parts[0].data == b"<e/>" and parts[1].data == payload


def _soap_result(body: etree._Element) -> SoapResult:
    return SoapResult(
        exchange=Exchange("http", "t", ""), body=body, action="urn:r", relates_to="m", message_id="m"
    )


def test_conformance_checks_error_codes_are_exact() -> None:
    resp = render_registry_response(
        ResponseStatus.FAILURE,
        [Problem(ErrorCode.UNKNOWN_PATIENT_ID, "x"), Problem(ErrorCode.REGISTRY_METADATA_ERROR, "y")],
    )
    result = _soap_result(resp)
    good = checks.soap_checks(
        result, {"status": "Failure", "errors": ["XDSUnknownPatientId", "XDSRegistryMetadataError"]}, "urn:r"
    )
    assert checks.all_ok(good)
    subset = checks.soap_checks(result, {"status": "Failure", "errors": ["XDSUnknownPatientId"]}, "urn:r")
    assert not checks.all_ok(subset)
    include = checks.soap_checks(result, {"errors_include": ["XDSUnknownPatientId"]}, "urn:r")
    assert checks.all_ok(include)
    wrong_action = checks.soap_checks(result, {"status": "Failure"}, "urn:other")
    assert not checks.all_ok(wrong_action)
    success_expected = checks.soap_checks(result, {}, "urn:r")
    assert not checks.all_ok(success_expected)


def test_conformance_v2_checks() -> None:
    answer = (
        "MSH|^~\\&|HUB|X|A|B|20240101||RSP^K23^RSP_K23|9|P|2.5\rMSA|AA|C1\rQAK|Q|OK\r"
        "QPD|IHE PIX Query|Q|1^^^&1.2&ISO\rPID|||7^^^&1.3&ISO~8^^^&1.4&ISO\r"
    )
    ok = checks.v2_checks(answer, "C1", {"fields": {"QAK-2": "OK"}, "ids": ["7^^^&1.3&ISO", "8^^^&1.4&ISO"]})
    assert checks.all_ok(ok)
    assert not checks.all_ok(checks.v2_checks(answer, "C2", {}))
    assert not checks.all_ok(checks.v2_checks(answer, "C1", {"ack": "AE"}))
    assert not checks.all_ok(checks.v2_checks(answer, "C1", {"ids": ["7^^^&1.3&ISO"]}))


def test_conformance_scenario_files_are_well_formed() -> None:
    catalogue = load_catalogue()
    for scenario in catalogue:
        assert scenario.title and scenario.tf, scenario.id
        assert scenario.path is not None
        for step in scenario.steps:
            template = step.message.get("template")
            if template:
                assert (scenario.path.parent / template).is_file(), (scenario.id, template)
    with pytest.raises(ScenarioError):
        parse_scenario({"steps": [{"transaction": "ITI-999"}]}, "x")
    with pytest.raises(ScenarioError):
        parse_scenario({"title": "no steps"}, "x")
    with pytest.raises(ScenarioError):
        select(["no/such/scenario"])
    assert {s.id for s in select(["registry/iti42"])} == {
        s.id for s in catalogue if s.group == "registry/iti42"
    }


def test_conformance_unreachable_target_is_an_error_not_a_pass(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = load_target(f"http://127.0.0.1:{port}", None)
    results = Runner(target, jobs=2).run_all(
        select(["soap/edge/wsdl-registry", "repository/iti41/single-document"])
    )
    outcomes = {r.scenario.id: r.outcome for r in results}
    assert outcomes["soap/edge/wsdl-registry"] == ERROR
    assert outcomes["repository/iti41/single-document"] == "skipped"  # no way to feed patients


def test_conformance_reports_are_well_formed(tmp_path: Path) -> None:
    scenario = select(["soap/edge/wsdl-registry"])[0]
    step = StepResult(
        "wsdl",
        "HTTP-GET",
        PASSED,
        [checks.Check("HTTP status", True, "200")],
        [Exchange("http", "GET", "GET /x", "HTTP 200\n<a>&</a>")],
    )
    results = [
        ScenarioResult(scenario, PASSED, [step], duration=0.1),
        ScenarioResult(scenario, "failed", [step], message="<boom>"),
    ]
    target = Target("http://h:1")
    write_junit(results, tmp_path / "r.xml", target)
    root = etree.parse(str(tmp_path / "r.xml")).getroot()
    assert root.get("tests") == "2" and root.get("failures") == "1"
    write_html(results, tmp_path / "r.html", target)
    html = (tmp_path / "r.html").read_text()
    assert "&lt;boom&gt;" in html and "<boom>" not in html and "&lt;a&gt;&amp;&lt;/a&gt;" in html
