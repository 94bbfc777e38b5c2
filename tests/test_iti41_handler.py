"""ITI-41 Provide and Register, Document Repository side, at the handler (ITI TF-2 3.41.4.1.3).

Runs the handler in process on SQLite and PostgreSQL with requests shaped as the SOAP edge hands
them over (inline base64, or MTOM parts already in the blob store); each error path asserts its
exact code and that nothing was half-stored (rows counted).  A refused request's blobs are not
deleted on the spot (a concurrent submission of the same octets may share the content-addressed
blob): they are unreferenced and the orphan sweep collects them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time

import pytest
from sqlalchemy import select

from tests.repository_support import (
    Counts,
    content_keys,
    count_blobs,
    count_inline,
    counts,
    inline_request,
    mtom_request,
    new_pid,
    read_content,
    register_patient,
    status_and_codes,
    submission_for,
    with_entry,
)
from xds_hub.config import Settings, load_settings
from xds_hub.domain.metadata import DocumentEntry
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.ebxml.render import render_provide_and_register
from xds_hub.errors import ErrorCode, XdsError
from xds_hub.repository import iti41
from xds_hub.repository.iti41 import decode_base64_into, provide_and_register
from xds_hub.repository.store import find_documents
from xds_hub.repository.sweep import sweep_orphans
from xds_hub.soap.types import SoapRequest
from xds_hub.storage import codec
from xds_hub.storage.schema import registry_object, repository_document
from xds_hub.storage.stores import Stores


@pytest.fixture
def settings() -> Settings:
    return load_settings(None)


@pytest.fixture
def pid(stores: Stores, settings: Settings) -> str:
    p = new_pid()
    register_patient(stores, p, settings)
    return p


def _registered_entry(stores: Stores, unique_id: str) -> DocumentEntry:
    with stores.engine.connect() as conn:
        body = conn.execute(
            select(registry_object.c.body).where(
                registry_object.c.unique_id == unique_id, registry_object.c.kind == "D"
            )
        ).scalar_one()
    return codec.loads(DocumentEntry, body)


def _assert_only_orphans_left(stores: Stores, before: Counts) -> None:
    """No row was added, no blob was deleted on the spot, and the sweep leaves only referenced blobs."""
    after = counts(stores.engine, stores.blobs)
    assert (after.documents, after.registry_objects) == (before.documents, before.registry_objects)
    assert after.blobs >= before.blobs
    sweep_orphans(stores, grace_seconds=0, now=time.time() + 1)
    with stores.engine.connect() as conn:
        referenced = set(conn.execute(select(repository_document.c.blob_key)).scalars())
    assert set(content_keys(stores)) == referenced


@pytest.mark.parametrize("mtom", [False, True], ids=["inline", "mtom"])
def test_iti41_stores_and_registers_documents(
    stores: Stores, settings: Settings, pid: str, mtom: bool
) -> None:
    docs = [b"first document", b"second \x00\xff binary", b""]
    sub, contents = submission_for(pid, docs, include_hash=False)
    request = mtom_request(stores, sub, contents) if mtom else inline_request(sub, contents)
    resp = iti41.handle(request, stores, settings)
    assert resp.action == SoapAction.ITI41_RESPONSE
    assert status_and_codes(resp.body) == ("Success", [])
    with stores.engine.connect() as conn:
        held = find_documents(conn, [d.unique_id for d in sub.documents])
    for entry, data in zip(sub.documents, docs, strict=True):
        stored = held[entry.unique_id]
        assert stored.hash == hashlib.sha1(data).hexdigest()
        assert stored.size == len(data)
        assert stored.mime_type == "text/plain"
        assert stored.repository_unique_id == settings.domain.repository_unique_id
        assert read_content(stores, stored.blob_key) == data
        registered = _registered_entry(stores, entry.unique_id)
        assert (registered.hash, registered.size) == (stored.hash, stored.size)
        assert registered.repository_unique_id == settings.domain.repository_unique_id
    # small documents: an MTOM part this test put in the blob store stays there; decoded base64 is
    # kept in the database, as a small MTOM part read by the SOAP edge would be
    kept = (counts(stores.engine, stores.blobs).blobs, count_inline(stores.engine))
    assert kept == ((3, 0) if mtom else (0, 3))


def _assert_rejected(stores: Stores, settings: Settings, request: SoapRequest, code: ErrorCode) -> list[str]:
    before = counts(stores.engine, stores.blobs)
    resp = iti41.handle(request, stores, settings)
    status, codes = status_and_codes(resp.body)
    assert status == "Failure"
    assert code.value in codes, codes
    _assert_only_orphans_left(stores, before)
    return codes


def test_iti41_rejects_entry_without_document(stores: Stores, settings: Settings, pid: str) -> None:
    sub, contents = submission_for(pid, [b"a", b"b"])
    first = next(iter(contents))
    del contents[first]
    codes = _assert_rejected(
        stores, settings, mtom_request(stores, sub, contents), ErrorCode.MISSING_DOCUMENT
    )
    assert codes == [ErrorCode.MISSING_DOCUMENT.value]


def test_iti41_rejects_document_without_entry(stores: Stores, settings: Settings, pid: str) -> None:
    sub, contents = submission_for(pid, [b"a"])
    contents["urn:uuid:00000000-0000-4000-8000-000000000001"] = b"stray"
    codes = _assert_rejected(
        stores, settings, mtom_request(stores, sub, contents), ErrorCode.MISSING_DOCUMENT_METADATA
    )
    assert codes == [ErrorCode.MISSING_DOCUMENT_METADATA.value]


def test_iti41_rejects_include_of_absent_mime_part(stores: Stores, settings: Settings, pid: str) -> None:
    sub, contents = submission_for(pid, [b"a"])
    body = render_provide_and_register(sub, {k: "nowhere@test" for k in contents})
    request = SoapRequest(action=SoapAction.ITI41, body=body, mtom=True)
    assert _assert_rejected(stores, settings, request, ErrorCode.MISSING_DOCUMENT) == ["XDSMissingDocument"]


@pytest.mark.parametrize("mtom", [False, True], ids=["inline", "mtom"])
def test_iti41_rejects_hash_mismatch(stores: Stores, settings: Settings, pid: str, mtom: bool) -> None:
    sub, contents = submission_for(pid, [b"the document"])
    sub = with_entry(sub, hash=hashlib.sha1(b"another document").hexdigest())
    request = mtom_request(stores, sub, contents) if mtom else inline_request(sub, contents)
    codes = _assert_rejected(stores, settings, request, ErrorCode.REPOSITORY_METADATA_ERROR)
    assert codes == [ErrorCode.REPOSITORY_METADATA_ERROR.value]


def test_iti41_rejects_size_mismatch(stores: Stores, settings: Settings, pid: str) -> None:
    sub, contents = submission_for(pid, [b"the document"])
    sub = with_entry(sub, size=5)
    codes = _assert_rejected(
        stores, settings, mtom_request(stores, sub, contents), ErrorCode.REPOSITORY_METADATA_ERROR
    )
    assert codes == [ErrorCode.REPOSITORY_METADATA_ERROR.value]


def test_iti41_accepts_upper_case_supplied_hash(stores: Stores, settings: Settings, pid: str) -> None:
    sub, contents = submission_for(pid, [b"the document"])
    sub = with_entry(sub, hash=hashlib.sha1(b"the document").hexdigest().upper())
    resp = iti41.handle(inline_request(sub, contents), stores, settings)
    assert status_and_codes(resp.body) == ("Success", [])


def test_iti41_rejects_unknown_patient_and_keeps_nothing(stores: Stores, settings: Settings) -> None:
    sub, contents = submission_for(new_pid(), [b"x" * 1000, b"y"])
    codes = _assert_rejected(
        stores, settings, mtom_request(stores, sub, contents), ErrorCode.UNKNOWN_PATIENT_ID
    )
    assert set(codes) == {ErrorCode.UNKNOWN_PATIENT_ID.value}


@pytest.mark.parametrize("kept_bytes", [0, 65536], ids=["to-files", "in-database"])
def test_iti41_inline_failure_leaves_nothing_past_the_sweep(
    stores: Stores, settings: Settings, kept_bytes: int
) -> None:
    """A refused plain-SOAP submission: decoded content written to the blob store is left to the
    orphan sweep; content small enough for the database was only ever in memory."""
    settings = dataclasses.replace(settings, inline_document_bytes=kept_bytes)
    sub, contents = submission_for(new_pid(), [b"inline content that will be rejected"])
    before = counts(stores.engine, stores.blobs)
    resp = iti41.handle(inline_request(sub, contents), stores, settings)
    assert status_and_codes(resp.body)[1] == [ErrorCode.UNKNOWN_PATIENT_ID.value]
    assert counts(stores.engine, stores.blobs).blobs == before.blobs + (1 if kept_bytes == 0 else 0)
    assert count_inline(stores.engine) == 0
    _assert_only_orphans_left(stores, before)
    assert count_blobs(stores.blobs) == before.blobs


@pytest.mark.parametrize("mtom", [False, True], ids=["inline", "mtom"])
def test_iti41_failure_does_not_break_a_concurrent_submission_of_the_same_octets(
    stores: Stores, settings: Settings, pid: str, mtom: bool
) -> None:
    """Submission B has written its content (MTOM part in the store) but not yet committed when A,
    with the same octets, fails: B's blob must still be there when B commits."""
    shared = f"same octets {time.time_ns()}".encode()
    in_flight, in_flight_contents = submission_for(pid, [shared])
    request_b = mtom_request(stores, in_flight, in_flight_contents)
    failing, failing_contents = submission_for(new_pid(), [shared])  # unknown patient
    request_a = (
        mtom_request(stores, failing, failing_contents) if mtom else inline_request(failing, failing_contents)
    )
    resp_a = iti41.handle(request_a, stores, settings)
    assert status_and_codes(resp_a.body) == ("Failure", [ErrorCode.UNKNOWN_PATIENT_ID.value])
    resp_b = iti41.handle(request_b, stores, settings)
    assert status_and_codes(resp_b.body) == ("Success", [])
    uid = in_flight.documents[0].unique_id
    with stores.engine.connect() as conn:
        stored = find_documents(conn, [uid])[uid]
    with stores.blobs.open(stored.blob_key) as f:
        assert f.read() == shared


def test_iti41_concurrent_failures_and_successes_of_shared_octets_all_answer_right(
    stores: Stores, settings: Settings, pid: str
) -> None:
    """Threads submit the same octets at once, half for an unknown patient: each good one succeeds."""
    shared = f"contended octets {time.time_ns()}".encode()
    outcomes: dict[int, tuple[str, list[str]]] = {}

    def submit(i: int) -> None:
        sub, contents = submission_for(pid if i % 2 == 0 else new_pid(), [shared])
        outcomes[i] = status_and_codes(iti41.handle(inline_request(sub, contents), stores, settings).body)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {i: o for i, o in outcomes.items() if i % 2 == 0} == {i: ("Success", []) for i in range(0, 12, 2)}
    failures = [o for i, o in outcomes.items() if i % 2]
    assert failures == [("Failure", [ErrorCode.UNKNOWN_PATIENT_ID.value])] * 6


def test_iti41_rejects_invalid_base64(stores: Stores, settings: Settings, pid: str) -> None:
    sub, contents = submission_for(pid, [b"abc"], include_hash=False)
    request = inline_request(sub, contents)
    doc = request.body.find("{urn:ihe:iti:xds-b:2007}Document")
    assert doc is not None
    doc.text = "not base64 at all!"
    assert _assert_rejected(stores, settings, request, ErrorCode.REPOSITORY_ERROR) == ["XDSRepositoryError"]


def test_iti41_rejects_duplicate_unique_id_in_message(stores: Stores, settings: Settings, pid: str) -> None:
    sub, contents = submission_for(pid, [b"a", b"b"])
    sub = with_entry(sub, 1, unique_id=sub.documents[0].unique_id)
    codes = _assert_rejected(
        stores,
        settings,
        mtom_request(stores, sub, contents),
        ErrorCode.REPOSITORY_DUPLICATE_UNIQUE_ID_IN_MESSAGE,
    )
    assert codes == [ErrorCode.REPOSITORY_DUPLICATE_UNIQUE_ID_IN_MESSAGE.value]


def test_iti41_failure_keeps_blob_shared_with_a_stored_document(
    stores: Stores, settings: Settings, pid: str
) -> None:
    sub, contents = submission_for(pid, [b"shared content"])
    assert (
        status_and_codes(iti41.handle(inline_request(sub, contents), stores, settings).body)[0] == "Success"
    )
    # Same octets, unknown patient: the request fails, the first document's blob must survive.
    other, other_contents = submission_for(new_pid(), [b"shared content"])
    resp = iti41.handle(mtom_request(stores, other, other_contents), stores, settings)
    assert status_and_codes(resp.body)[1] == [ErrorCode.UNKNOWN_PATIENT_ID.value]
    with stores.engine.connect() as conn:
        stored = find_documents(conn, [sub.documents[0].unique_id])[sub.documents[0].unique_id]
    assert read_content(stores, stored.blob_key) == b"shared content"


def test_iti41_resubmission_of_same_document_is_accepted(
    stores: Stores, settings: Settings, pid: str
) -> None:
    """NIST 12004: the same uniqueId with the same hash and size is a further DocumentEntry."""
    sub, contents = submission_for(pid, [b"same octets"])
    assert (
        status_and_codes(iti41.handle(inline_request(sub, contents), stores, settings).body)[0] == "Success"
    )
    again, again_contents = submission_for(pid, [b"same octets"])
    again = with_entry(again, unique_id=sub.documents[0].unique_id)
    resp = iti41.handle(inline_request(again, again_contents), stores, settings)
    assert status_and_codes(resp.body) == ("Success", [])
    assert counts(stores.engine, stores.blobs).documents == 1


def test_iti41_rejects_same_unique_id_with_other_content(
    stores: Stores, settings: Settings, pid: str
) -> None:
    sub, contents = submission_for(pid, [b"original"])
    assert (
        status_and_codes(iti41.handle(inline_request(sub, contents), stores, settings).body)[0] == "Success"
    )
    again, again_contents = submission_for(pid, [b"changed!"])
    again = with_entry(again, unique_id=sub.documents[0].unique_id)
    codes = _assert_rejected(
        stores, settings, mtom_request(stores, again, again_contents), ErrorCode.NON_IDENTICAL_HASH
    )
    assert codes == [ErrorCode.NON_IDENTICAL_HASH.value]


def test_iti41_metadata_error_is_reported_and_nothing_stored(
    stores: Stores, settings: Settings, pid: str
) -> None:
    sub, contents = submission_for(pid, [b"doc"])
    sub = with_entry(sub, creation_time="not-a-time")
    _assert_rejected(stores, settings, mtom_request(stores, sub, contents), ErrorCode.REGISTRY_METADATA_ERROR)


def test_rad68_provide_and_register_reuses_the_iti41_path(
    stores: Stores, settings: Settings, pid: str
) -> None:
    """The imaging publisher calls provide_and_register with a blob it stored itself."""
    sub, _ = submission_for(pid, [b"DICM kos bytes"], mime_type="application/dicom")
    writer = stores.blobs.writer()
    writer.write(b"DICM kos bytes")
    info = writer.finish()
    doc_id = sub.documents[0].entry_uuid
    result = provide_and_register(stores, settings, sub, {doc_id: info})
    registered = result.submission.documents[0]
    assert (registered.hash, registered.size) == (info.sha1, info.size)
    with stores.engine.connect() as conn:
        stored = find_documents(conn, [registered.unique_id])[registered.unique_id]
    assert (stored.blob_key, stored.mime_type) == (info.key, "application/dicom")
    # A failing publication (hash disagrees) raises; its unreferenced blob is left to the sweep.
    bad, _ = submission_for(pid, [b"other kos"], mime_type="application/dicom")
    writer = stores.blobs.writer()
    writer.write(b"other kos")
    other = writer.finish()
    bad = with_entry(bad, hash="0" * 40)
    with pytest.raises(XdsError) as exc:
        provide_and_register(stores, settings, bad, {bad.documents[0].entry_uuid: other})
    assert [p.code for p in exc.value.problems] == [ErrorCode.REPOSITORY_METADATA_ERROR]
    assert stores.blobs.exists(other.key)
    sweep_orphans(stores, grace_seconds=0, now=time.time() + 1)
    assert not stores.blobs.exists(other.key)
    assert stores.blobs.exists(info.key)


class _Collect:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def finish(self) -> object:
        return None

    def abort(self) -> None:
        pass


@pytest.mark.parametrize("chunk", [4, 8, 12, 1024])
def test_iti41_inline_base64_decodes_in_chunks(chunk: int) -> None:
    import base64

    payload = bytes(range(256)) * 7 + b"tail"
    text = base64.encodebytes(payload).decode("ascii")  # with line breaks
    sink = _Collect()
    decode_base64_into(text, sink, chunk=chunk)
    assert bytes(sink.data) == payload


def test_iti41_wrong_body_is_a_sender_fault_and_stores_nothing(
    stores: Stores, settings: Settings, pid: str
) -> None:
    from lxml import etree

    from xds_hub.errors import FaultCode, SoapFault

    sub, contents = submission_for(pid, [b"a part of a wrong message"])
    request = mtom_request(stores, sub, contents)
    wrong = SoapRequest(
        action=SoapAction.ITI41,
        body=etree.Element("{urn:ihe:iti:xds-b:2007}RetrieveDocumentSetRequest"),
        attachments=request.attachments,
        mtom=True,
    )
    before = counts(stores.engine, stores.blobs)
    with pytest.raises(SoapFault) as exc:
        iti41.handle(wrong, stores, settings)
    assert exc.value.code is FaultCode.SENDER
    assert counts(stores.engine, stores.blobs) == before  # the part is left to the sweep
    _assert_only_orphans_left(stores, before)
    assert count_blobs(stores.blobs) == before.blobs - 1
