"""The client's requests validate against the official XSDs (ITI-18, ITI-41, ITI-43) and the
client's metadata for plain files passes the hub's own validation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.oracle import assert_valid, oracle_available
from xds_hub.client.metadata import DocumentInput, SubmissionOptions, build_submission, parse_code
from xds_hub.client.xds import DocumentRequest, adhoc_query_request, encode_query_value, retrieve_request
from xds_hub.config import load_settings
from xds_hub.domain.metadata import Code
from xds_hub.domain.validate import validate_submission
from xds_hub.domain.vocabulary import Status, StoredQuery
from xds_hub.ebxml.render import render_provide_and_register

PID = "C1^^^&1.3.6.1.4.1.21367.13.20.1000&ISO"

pytestmark = pytest.mark.skipif(not oracle_available(), reason="official schemas not available")


def test_client_adhoc_query_request_is_schema_valid() -> None:
    req = adhoc_query_request(
        StoredQuery.FIND_DOCUMENTS,
        {"$XDSDocumentEntryPatientId": PID, "$XDSDocumentEntryStatus": [Status.APPROVED.value]},
        raw_params={"$XDSDocumentEntryCreationTimeFrom": ["20200101"]},
    )
    assert_valid("query.xsd", req)


def test_client_retrieve_request_is_schema_valid() -> None:
    assert_valid(
        "XDS.b_DocumentRepository.xsd",
        retrieve_request([DocumentRequest("1.2.3", "4.5.6", "urn:oid:1.2"), DocumentRequest("1.2.3", "7.8")]),
    )


def test_client_metadata_for_files_is_valid_and_schema_valid(tmp_path: Path) -> None:
    f = tmp_path / "scan.pdf"
    f.write_bytes(b"%PDF-1.4 scan")
    sub, contents = build_submission(
        [DocumentInput(f), DocumentInput(b"<x/>", mime_type="text/xml", title="inline")],
        SubmissionOptions(patient_id=PID, source_id="1.2.3.100.1"),
    )
    assert [d.mime_type for d in sub.documents] == ["application/pdf", "text/xml"]
    assert sub.documents[0].size == len(b"%PDF-1.4 scan")
    refs = {k: f"part{i}@t" for i, k in enumerate(contents)}
    validate_submission(replace(sub, document_refs=refs), load_settings(None).domain, for_repository=True)
    body = render_provide_and_register(
        sub,
        {
            k: v.content.read_bytes() if isinstance(v.content, Path) else v.content
            for k, v in contents.items()
        },
    )
    assert_valid("XDS.b_DocumentRepository.xsd", body)


def test_client_query_value_encoding_and_codes() -> None:
    assert encode_query_value("O'Brien") == "'O''Brien'"
    assert encode_query_value(20200101) == "20200101"
    assert encode_query_value(["a", "b"]) == "('a','b')"
    assert parse_code("REPORTS^1.3.6.1.4.1.19376.1.2.6.1^Reports^x") == Code(
        "REPORTS", "1.3.6.1.4.1.19376.1.2.6.1", "Reports^x"
    )
    with pytest.raises(ValueError):
        parse_code("nocode")
