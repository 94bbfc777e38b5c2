"""Crash safety of the blob store: the orphan sweep and its referrer registry (in process)."""

from __future__ import annotations

import dataclasses
import os
import time

import pytest
from sqlalchemy import Column, MetaData, String, Table

from tests.repository_support import count_blobs, inline_request, new_pid, register_patient, submission_for
from xds_hub.config import Settings, load_settings
from xds_hub.repository import iti41
from xds_hub.repository.sweep import (
    BLOB_REFERRERS,
    OrphanSweeper,
    discard_blobs,
    referenced_keys,
    register_blob_referrer,
    sweep_orphans,
)
from xds_hub.storage.fs import FsBlobStore
from xds_hub.storage.stores import Stores


def _file_settings() -> Settings:
    """The default settings, with every ITI-41 document written to the blob store (these tests are
    about blob files; tests/test_inline_documents.py covers the documents kept in the database)."""
    return dataclasses.replace(load_settings(None), inline_document_bytes=0)


def _blob(stores: Stores, data: bytes, age: float = 0.0) -> str:
    writer = stores.blobs.writer()
    writer.write(data)
    key = writer.finish().key
    if age and isinstance(stores.blobs, FsBlobStore):
        old = time.time() - age
        os.utime(stores.blobs.path(key), (old, old))
    return key


def test_sweep_deletes_old_orphans_keeps_referenced_and_young(stores: Stores) -> None:
    settings = _file_settings()
    pid = new_pid()
    register_patient(stores, pid, settings)
    sub, contents = submission_for(pid, [b"kept: referenced"])
    iti41.handle(inline_request(sub, contents), stores, settings)
    orphan = _blob(stores, b"orphan from a crashed request", age=7200)
    young = _blob(stores, b"in-flight write", age=0)
    report = sweep_orphans(stores, grace_seconds=3600)
    assert report.deleted == 1
    assert not stores.blobs.exists(orphan)
    assert stores.blobs.exists(young)
    assert count_blobs(stores.blobs) == 2
    # With no grace left, the young orphan goes too, the referenced blob stays.
    sweep_orphans(stores, grace_seconds=0, now=time.time() + 1)
    assert not stores.blobs.exists(young)
    assert count_blobs(stores.blobs) == 1


def test_sweep_removes_abandoned_partial_writes(stores: Stores) -> None:
    assert isinstance(stores.blobs, FsBlobStore)
    # Anonymous (O_TMPFILE) writes leave nothing after a crash; named ones (the fallback) do.
    stores.blobs.anonymous_tmp = False
    writer = stores.blobs.writer()
    writer.write(b"half a document when the process died")
    # No finish(): the temporary file stays behind, as after SIGKILL.
    leftovers = list(stores.blobs.tmp.iterdir())
    assert leftovers
    report = sweep_orphans(stores, grace_seconds=0, now=time.time() + 1)
    assert report.tmp_removed == len(leftovers)
    assert not any(stores.blobs.tmp.iterdir())


def test_discard_blobs_keeps_referenced_ones(stores: Stores) -> None:
    settings = _file_settings()
    pid = new_pid()
    register_patient(stores, pid, settings)
    sub, contents = submission_for(pid, [b"referenced"])
    iti41.handle(inline_request(sub, contents), stores, settings)
    referenced = _blob(stores, b"referenced")
    loose = _blob(stores, b"loose")
    assert discard_blobs(stores, [referenced, loose]) == [loose]
    with stores.engine.connect() as conn:
        assert referenced_keys(conn, [referenced, loose]) == {referenced}


def test_register_blob_referrer_protects_another_table(stores: Stores) -> None:
    md = MetaData()
    table = Table("test_blob_owner", md, Column("blob", String(128)))
    md.create_all(stores.engine)
    key = _blob(stores, b"owned by an imaging instance", age=7200)
    with stores.engine.begin() as conn:
        conn.execute(table.insert().values(blob=key))
    register_blob_referrer(table, "blob")
    try:
        assert sweep_orphans(stores, grace_seconds=60).deleted == 0
        assert stores.blobs.exists(key)
    finally:
        BLOB_REFERRERS.remove((table, "blob"))
    with pytest.raises(ValueError):
        register_blob_referrer(table, "no_such_column")


def test_sweeper_actor_runs_at_start_and_stops(stores: Stores) -> None:
    orphan = _blob(stores, b"swept at start-up", age=7200)
    actor = OrphanSweeper(stores, grace_seconds=3600, interval_seconds=3600)
    actor.start()
    deadline = time.monotonic() + 10
    while actor.passes < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    actor.stop()
    assert actor.passes >= 1
    assert not stores.blobs.exists(orphan)
