"""Issue 4: ``xds-hub validate FILE`` lists what the hub would answer, with the hub's own code."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.metadata_samples import good_submission, with_document
from tests.oracle import SAMPLES
from xds_hub.cli import validate as validate_cli
from xds_hub.config import DEMO_DOMAIN
from xds_hub.conformance.messages import build_query
from xds_hub.conformance.validator import validate_bytes
from xds_hub.conformance.wire import Part, envelope, mtom_body
from xds_hub.ebxml import render_provide_and_register, render_submit_objects_request


def _codes(data: bytes) -> set[str]:
    return {f.code for f in validate_bytes(data, DEMO_DOMAIN).findings}


def _xml(elem: etree._Element) -> bytes:
    return etree.tostring(elem)


def _cli(*args: str) -> int:
    parser = argparse.ArgumentParser()
    validate_cli.register(parser.add_subparsers())
    ns = parser.parse_args(["validate", *args])
    return int(ns.func(ns))


def test_validate_iti42_good_submission_is_valid() -> None:
    report = validate_bytes(_xml(render_submit_objects_request(good_submission())), DEMO_DOMAIN)
    assert report.kind.startswith("ITI-42") and report.valid, report.findings


def test_validate_iti42_reports_the_registry_error_code() -> None:
    sub = with_document(good_submission(), creation_time=None)
    assert _codes(_xml(render_submit_objects_request(sub))) == {"XDSRegistryMetadataError"}
    other = with_document(good_submission(), patient_id="OTHER^^^&1.3.6.1.4.1.21367.13.20.1000&ISO")
    assert "XDSPatientIdDoesNotMatch" in _codes(_xml(render_submit_objects_request(other)))


def test_validate_iti41_inline_hash_mismatch_is_repository_metadata_error() -> None:
    sub = with_document(good_submission(), hash="0" * 40, size=None, repository_unique_id=None)
    doc_id = sub.documents[0].entry_uuid
    pnr = render_provide_and_register(sub, {doc_id: b"content"})
    assert _codes(_xml(pnr)) == {"XDSRepositoryMetadataError"}


def test_validate_iti41_mtom_capture_with_soap_envelope() -> None:
    sub = with_document(good_submission(), hash=None, size=None, repository_unique_id=None)
    doc_id = sub.documents[0].entry_uuid
    env = envelope(
        "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b",
        "http://x/",
        render_provide_and_register(sub, {doc_id: "doc@x"}),
        "urn:uuid:1",
    )
    body, content_type = mtom_body(
        env, [Part("doc@x", "text/xml", b"<doc/>")], "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
    )
    capture = f"POST /xds/repository HTTP/1.1\r\nContent-Type: {content_type}\r\n\r\n".encode() + body
    report = validate_bytes(capture, DEMO_DOMAIN)
    assert report.kind.startswith("ITI-41") and report.valid, report.findings
    missing = validate_bytes(
        f"POST / HTTP/1.1\r\nContent-Type: {content_type}\r\n\r\n".encode()
        + body.replace(b"<doc@x>", b"<other@x>"),
        DEMO_DOMAIN,
    )
    assert {f.code for f in missing.findings} == {"XDSMissingDocument"}


def test_validate_iti41_public_mtom_capture() -> None:
    capture = SAMPLES / "wire" / "http-mtom-pnr.txt"
    if not capture.is_file():
        pytest.skip("oracle samples not available")
    report = validate_bytes(capture.read_bytes(), DEMO_DOMAIN)
    assert report.kind.startswith("ITI-41") and report.valid, report.findings


def test_validate_iti18_missing_parameter() -> None:
    query = build_query(
        {
            "id": "FindDocuments",
            "params": {"$XDSDocumentEntryStatus": "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')"},
        }
    )
    assert _codes(_xml(query)) == {"XDSStoredQueryMissingParam"}
    unknown = build_query({"id": "urn:uuid:00000000-0000-0000-0000-000000000000"})
    assert _codes(_xml(unknown)) == {"XDSUnknownStoredQuery"}


def test_validate_soap_fault_for_a_soap11_envelope() -> None:
    env = (
        b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><x/></e:Body></e:Envelope>'
    )
    report = validate_bytes(env, DEMO_DOMAIN)
    assert not report.valid and all(f.code.startswith("SOAP Fault") for f in report.findings)


def test_validate_hl7v2_feed_and_query() -> None:
    good = (
        b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01^ADT_A01|1|P|2.5\rEVN||20240101\r"
        b"PID|||1^^^&1.2.3.100&ISO||X^Y\rPV1||I\r"
    )
    assert validate_bytes(good, DEMO_DOMAIN).valid
    bad_event = good.replace(b"ADT^A01^ADT_A01", b"ADT^A03^ADT_A03")
    assert {f.code for f in validate_bytes(bad_event, DEMO_DOMAIN).findings} == {"HL7 201 (AR)"}
    no_pid = b"MSH|^~\\&|A|B|C|D|20240101||QBP^Q23^QBP_Q21|1|P|2.5\rQPD|IHE PIX Query|Q|\rRCP|I\r"
    assert {f.code for f in validate_bytes(no_pid, DEMO_DOMAIN).findings} == {"HL7 101 (AE)"}


def test_validate_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.xml"
    good.write_bytes(_xml(render_submit_objects_request(good_submission())))
    bad = tmp_path / "bad.xml"
    bad.write_bytes(_xml(render_submit_objects_request(with_document(good_submission(), hash="xyz"))))
    dicom = tmp_path / "kos.dcm"
    dicom.write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 16)
    assert _cli(str(good)) == 0
    assert _cli(str(bad)) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "XDSRegistryMetadataError" in out
    assert _cli(str(dicom)) == 1  # a DICOM file that is no readable KOS
    assert _cli("--json", str(good), str(bad)) == 1


def test_validate_verb_is_installed(tmp_path: Path) -> None:
    good = tmp_path / "good.xml"
    good.write_bytes(_xml(render_submit_objects_request(good_submission())))
    proc = subprocess.run(
        [sys.executable, "-m", "xds_hub", "validate", str(good)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid" in proc.stdout


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600) | st.text(max_size=300).map(str.encode))
def test_validate_never_crashes(data: bytes) -> None:
    report = validate_bytes(data, DEMO_DOMAIN)
    assert isinstance(report.kind, str)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(
        [
            b"MSH|^~\\&|",
            b"POST / HTTP/1.1\r\nContent-Type: multipart/related; boundary=b\r\n\r\n--b\r\n",
            b"<x:Envelope xmlns:x='http://www.w3.org/2003/05/soap-envelope'>",
            b"--b\n",
        ]
    ),
    st.binary(max_size=300),
)
def test_validate_never_crashes_on_truncated_messages(head: bytes, tail: bytes) -> None:
    validate_bytes(head + tail, DEMO_DOMAIN)


def test_validate_rad69_request_and_kos_manifest() -> None:
    from xds_hub.conformance.dicom import make_kos
    from xds_hub.conformance.messages import build_imaging_retrieve
    from xds_hub.conformance.target import Target
    from xds_hub.conformance.template import Context

    ctx = Context(Target("http://x"))
    good = build_imaging_retrieve(
        {"studies": [{"uid": "1.2", "series": [{"uid": "1.2.3", "instances": ["1.2.3.4"]}]}]}, ctx
    )
    assert validate_bytes(_xml(good), DEMO_DOMAIN).valid
    empty = build_imaging_retrieve({"studies": [{"uid": "1.2", "series": []}]}, ctx)
    assert _codes(_xml(empty)) == {"XDSIRequestError"}
    kos = make_kos(ctx, {"study": "1.2", "series": [{"uid": "1.2.3", "instances": [{"uid": "1.2.3.4"}]}]})
    report = validate_bytes(kos, DEMO_DOMAIN)
    assert report.kind.startswith("RAD-68") and report.valid, report.findings
    no_series = make_kos(ctx, {"study": "1.2", "series": []})
    assert _codes(no_series) == {"XDSRepositoryMetadataError"}
