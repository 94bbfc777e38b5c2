"""Small ITI-41 documents kept in the database (xds_hub.repository.inline), over real HTTP on SQLite
and PostgreSQL: where each size goes, byte-identical retrieval, shared content, removal by ITI-86,
the orphan sweep, a refused submission storing nothing, and the SQLite commit that fsyncs its WAL
after the writer lock."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import func, select, text

from tests.hubproc import Hub
from tests.repository_support import hub_patient, submission_for
from tests.test_iti57_support import SUCCESS, post_iti86
from xds_hub.client.xds import DocumentRequest, XdsClient
from xds_hub.errors import ErrorCode
from xds_hub.registry import insert as registry_insert
from xds_hub.registry.group_commit import group_commit
from xds_hub.repository import inline
from xds_hub.repository.iti43 import DocumentRequest as RepositoryRequest
from xds_hub.repository.iti86 import render_remove_documents_request
from xds_hub.repository.store import StoredDocument, find_documents, insert_with_registration
from xds_hub.repository.sweep import sweep_orphans
from xds_hub.storage import db
from xds_hub.storage.db import make_engine, writer_gate
from xds_hub.storage.fs import FsBlobStore
from xds_hub.storage.ports import BlobInfo
from xds_hub.storage.schema import inline_blob
from xds_hub.storage.stores import Stores

REPOSITORY_ID = "1.3.6.1.4.1.21367.13.80.1"


def _removal(unique_id: str) -> etree._Element:
    return render_remove_documents_request([RepositoryRequest(REPOSITORY_ID, unique_id)])


def _keys(store: Stores, unique_ids: list[str]) -> dict[str, str]:
    with store.engine.connect() as conn:
        return {uid: doc.blob_key for uid, doc in find_documents(conn, unique_ids).items()}


def _inline_rows(store: Stores) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(inline_blob)).scalar_one())


def _submit(hub: Hub, store: Stores, client: XdsClient, docs: list[bytes]) -> list[str]:
    sub, contents = submission_for(hub_patient(hub, store), docs, mime_type="application/octet-stream")
    result = client.provide_and_register(sub, contents)
    assert result.ok, result.errors
    return [d.unique_id for d in sub.documents]


def test_small_documents_go_to_the_database_large_ones_to_the_blob_store(
    hub: Hub, store: Stores, client: XdsClient, tmp_path: Path
) -> None:
    small, large = b"small document " * 100, bytes(range(256)) * 400  # 1.5 KB and 100 KB (> 64 KiB)
    uids = _submit(hub, store, client, [small, large])
    keys = _keys(store, uids)
    assert keys[uids[0]] == "db:" + hashlib.sha256(small).hexdigest()
    assert keys[uids[1]] == hashlib.sha256(large).hexdigest()
    assert store.blobs.exists(keys[uids[1]]) and not store.blobs.exists(keys[uids[0]])
    with store.engine.connect() as conn:
        assert inline.read(conn, [keys[uids[0]]]) == {keys[uids[0]]: small}
    result = client.retrieve([DocumentRequest(REPOSITORY_ID, u) for u in uids], tmp_path)
    assert result.status_name == "Success"
    assert {d.unique_id: d.path.read_bytes() for d in result.documents} == dict(
        zip(uids, [small, large], strict=True)
    )
    assert {d.unique_id: d.sha1 for d in result.documents} == {
        uids[0]: hashlib.sha1(small).hexdigest(),
        uids[1]: hashlib.sha1(large).hexdigest(),
    }


def test_inline_base64_documents_are_placed_by_size_too(
    hub: Hub, store: Stores, client: XdsClient, tmp_path: Path
) -> None:
    """Plain SOAP (no MTOM): the decoded base64 of each xdsb:Document goes where an MTOM part of
    its size would."""
    small, large = b"small inline document " * 10, bytes(range(256)) * 300  # 220 B, 76.8 KB
    sub, contents = submission_for(
        hub_patient(hub, store), [small, large], mime_type="application/octet-stream"
    )
    result = client.provide_and_register(sub, contents, mtom=False)
    assert result.ok, result.errors
    uids = [d.unique_id for d in sub.documents]
    keys = _keys(store, uids)
    assert keys[uids[0]] == "db:" + hashlib.sha256(small).hexdigest()
    assert keys[uids[1]] == hashlib.sha256(large).hexdigest() and store.blobs.exists(keys[uids[1]])
    got = client.retrieve([DocumentRequest(REPOSITORY_ID, uid) for uid in uids], tmp_path)
    assert got.status_name == "Success"
    assert {d.unique_id: d.path.read_bytes() for d in got.documents} == {uids[0]: small, uids[1]: large}


def test_empty_document_is_kept_in_the_database(
    hub: Hub, store: Stores, client: XdsClient, tmp_path: Path
) -> None:
    (uid,) = _submit(hub, store, client, [b""])
    assert _keys(store, [uid])[uid] == "db:" + hashlib.sha256(b"").hexdigest()
    result = client.retrieve([DocumentRequest(REPOSITORY_ID, uid)], tmp_path)
    assert result.status_name == "Success" and result.documents[0].path.read_bytes() == b""


def test_shared_content_is_kept_once_and_removed_with_its_last_document(
    hub: Hub, store: Stores, client: XdsClient
) -> None:
    content = b"the same octets in two documents " * 20
    first = _submit(hub, store, client, [content])[0]
    second = _submit(hub, store, client, [content])[0]
    key = "db:" + hashlib.sha256(content).hexdigest()
    assert set(_keys(store, [first, second]).values()) == {key}
    with store.engine.connect() as conn:
        assert list(inline.read(conn, [key])) == [key]
    assert post_iti86(hub, _removal(first)).outcome == (SUCCESS, [])
    with store.engine.connect() as conn:
        assert list(inline.read(conn, [key])) == [key]  # the second document still refers to it
    assert post_iti86(hub, _removal(second)).outcome == (SUCCESS, [])
    with store.engine.connect() as conn:
        assert inline.read(conn, [key]) == {}


def test_refused_submission_stores_no_content(hub: Hub, store: Stores, client: XdsClient) -> None:
    before = _inline_rows(store)
    sub, contents = submission_for("UNKNOWN-PID^^^&1.3.6.1.4.1.21367.13.20.1000&ISO", [b"never stored " * 10])
    result = client.provide_and_register(sub, contents)
    assert [e.code for e in result.errors] == [ErrorCode.UNKNOWN_PATIENT_ID.value]
    assert _inline_rows(store) == before


def test_vanished_inline_content_is_xds_missing_document(
    hub: Hub, store: Stores, client: XdsClient, tmp_path: Path
) -> None:
    (uid,) = _submit(hub, store, client, [b"content that will vanish " * 10])
    key = _keys(store, [uid])[uid]
    with store.engine.begin() as conn:
        inline.remove(conn, [key])  # "should never happen": simulate a lost row
    result = client.retrieve([DocumentRequest(REPOSITORY_ID, uid)], tmp_path)
    assert result.status_name == "Failure"
    assert [(e.code, e.location) for e in result.errors] == [(ErrorCode.MISSING_DOCUMENT.value, uid)]


def test_sweep_deletes_unreferenced_inline_content_past_its_grace(
    hub: Hub, store: Stores, client: XdsClient
) -> None:
    (uid,) = _submit(hub, store, client, [b"referenced content " * 10])
    referenced = _keys(store, [uid])[uid]
    orphan = BlobInfo("db:" + "0" * 64, "0" * 40, 3, b"abc")
    with store.engine.begin() as conn:  # kept content that nothing refers to: an old one, a young one
        conn.execute(inline_blob.insert(), {"key": orphan.key, "data": b"abc", "created": 1})
    young = BlobInfo("db:" + "1" * 64, "1" * 40, 3, b"def")
    with store.engine.begin() as conn:
        conn.execute(inline_blob.insert(), {"key": young.key, "data": b"def", "created": time.time_ns()})
    sweep_orphans(store, grace_seconds=3600)
    with store.engine.connect() as conn:
        left = inline.read(conn, [orphan.key, young.key, referenced])
    assert set(left) == {young.key, referenced}  # the young one is in its grace period
    with store.engine.begin() as conn:
        inline.remove(conn, [young.key])


@pytest.mark.parametrize("one_statement", [True, False], ids=["one-statement", "table-by-table"])
def test_kept_content_goes_in_only_with_the_repository_rows_inserted(
    store: Stores, one_statement: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The repository rows and their kept contents go in together (one statement on PostgreSQL,
    unless the submission is too large for one): a uniqueId held already inserts no content."""
    if not one_statement:
        monkeypatch.setattr(registry_insert, "_PG_MAX_PARAMS", 0)
    tag = "1.2.3.99." + ("1" if one_statement else "2")

    def content(name: str) -> BlobInfo:
        return BlobInfo(
            "db:" + hashlib.sha256(f"{tag}{name}".encode()).hexdigest(), "0" * 40, 1, name.encode()
        )

    def insert(docs: list[tuple[str, BlobInfo]]) -> list[str]:
        rows = [StoredDocument(uid, REPOSITORY_ID, blob.key, "0" * 40, 1, "text/plain") for uid, blob in docs]
        extra = insert_with_registration(rows, [blob for _, blob in docs])
        with db.write_transaction(store.engine) as conn:
            return [row[0] for row in registry_insert.insert_rows(conn, {}, extra)]

    a, b, c = content("a"), content("b"), content("c")
    assert insert([(f"{tag}.1", a)]) == [f"{tag}.1"]
    # other octets under the held uniqueId go nowhere; the new document goes in with its content
    assert insert([(f"{tag}.1", b), (f"{tag}.2", c)]) == [f"{tag}.2"]
    with store.engine.connect() as conn:
        assert set(inline.read(conn, [a.key, b.key, c.key])) == {a.key, c.key}
    with store.engine.begin() as conn:
        inline.remove(conn, [a.key, c.key])
        conn.execute(text(f"DELETE FROM repository_document WHERE unique_id LIKE '{tag}.%'"))


# -- the writers ------------------------------------------------------------------------------


def test_inline_writer_spills_past_its_limit_and_its_request_budget(tmp_path: Path) -> None:
    blobs = FsBlobStore(tmp_path / "blobs")
    writers = inline.InlineWriters(blobs, limit=10, budget=15)
    first = writers.writer()
    first.write(b"12345")
    first.write(b"67890")
    info = first.finish()
    assert (info.key, info.data, info.size) == (
        "db:" + hashlib.sha256(b"1234567890").hexdigest(),
        b"1234567890",
        10,
    )
    spilled = writers.writer()
    spilled.write(b"abcdef")  # within the limit, past what is left of the budget (5)
    out = spilled.finish()
    assert out.data is None and blobs.exists(out.key) and out.size == 6
    big = writers.writer()
    big.write(b"x" * 4)
    big.write(b"y" * 8)  # past the limit: the 4 held octets go first
    got = big.finish()
    assert got.data is None and blobs.open(got.key).read() == b"xxxxyyyyyyyy"
    off = inline.InlineWriters(blobs, limit=0).writer()
    off.write(b"z")
    assert off.finish().data is None


# -- SQLite: the WAL is fsynced after the writer lock ------------------------------------------


def test_sqlite_group_commit_fsyncs_the_wal_after_the_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    gate = writer_gate(engine)
    seen: list[tuple[str, bool]] = []
    real = db._fsync_file

    def fsync(path: str) -> None:
        # another thread can take the gate while this one waits for the disk
        took = threading.Event()

        def other() -> None:
            with gate.turn():
                took.set()

        t = threading.Thread(target=other)
        t.start()
        t.join(5)
        seen.append((path, took.is_set()))
        real(path)

    monkeypatch.setattr(db, "_fsync_file", fsync)
    group_commit(engine).run(lambda conn: conn.execute(text("INSERT INTO t VALUES (1)")))
    assert seen == [(f"{tmp_path / 'hub.sqlite'}-wal", True)]
    with engine.connect() as conn:  # the connection went back to the pool durable again
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2  # FULL
        assert conn.execute(text("SELECT x FROM t")).scalar_one() == 1
    engine.dispose()


def test_sqlite_without_wal_commits_inside_the_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("sqlite://")  # in memory: no WAL file to fsync
    called: list[str] = []
    monkeypatch.setattr(db, "_fsync_file", called.append)
    with db.write_transaction(engine, sync_after_unlock=True) as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    assert called == []
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2
    engine.dispose()


def test_failed_wal_fsync_is_not_acknowledged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))

    def broken(path: str) -> None:
        raise OSError(5, "Input/output error", path)

    monkeypatch.setattr(db, "_fsync_file", broken)
    with pytest.raises(OSError, match="Input/output error"):
        group_commit(engine).run(lambda conn: conn.execute(text("INSERT INTO t VALUES (1)")))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2
    engine.dispose()
