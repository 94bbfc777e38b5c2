"""Helpers for the Document Repository tests (ITI-41, ITI-43, crash safety, client)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy import Engine, func, select

from xds_hub import ns
from xds_hub.client.metadata import DocumentInput, SubmissionOptions, build_submission
from xds_hub.domain.metadata import Submission
from xds_hub.ebxml.render import render_provide_and_register
from xds_hub.registry.patients import add_patient
from xds_hub.repository import inline
from xds_hub.soap.types import Attachment, SoapRequest
from xds_hub.storage.db import write_transaction
from xds_hub.storage.ports import BlobStore
from xds_hub.storage.schema import inline_blob, registry_object, repository_document
from xds_hub.storage.stores import Stores

SOURCE_ID = "1.2.3.100.1"
AFFINITY_OID = "1.3.6.1.4.1.21367.13.20.1000"


def new_pid() -> str:
    return f"R{uuid.uuid4().hex[:10].upper()}^^^&{AFFINITY_OID}&ISO"


def register_patient(stores: Stores, pid: str, settings: Any) -> None:
    with write_transaction(stores.engine) as conn:
        add_patient(conn, pid, settings.domain)


def submission_for(
    pid: str, documents: Sequence[bytes], mime_type: str = "text/plain", include_hash: bool = True
) -> tuple[Submission, dict[str, bytes]]:
    """A complete ITI-41 submission of ``documents`` for ``pid`` (DocumentEntry id -> bytes)."""
    sub, contents = build_submission(
        [DocumentInput(d, mime_type=mime_type) for d in documents],
        SubmissionOptions(patient_id=pid, source_id=SOURCE_ID, include_hash=include_hash),
    )
    data: dict[str, bytes] = {}
    for k, v in contents.items():
        assert isinstance(v.content, bytes)
        data[k] = v.content
    return sub, data


def with_entry(sub: Submission, index: int = 0, **changes: Any) -> Submission:
    docs = list(sub.documents)
    docs[index] = replace(docs[index], **changes)
    return replace(sub, documents=tuple(docs))


def inline_request(sub: Submission, contents: Mapping[str, bytes]) -> SoapRequest:
    body = render_provide_and_register(sub, dict(contents))
    return SoapRequest(action="urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b", body=body)


def mtom_request(stores: Stores, sub: Submission, contents: Mapping[str, bytes]) -> SoapRequest:
    """As the SOAP edge hands it over: each document a stored MIME part named by an xop:Include."""
    refs: dict[str, str | bytes] = {}
    attachments: dict[str, Attachment] = {}
    for i, (doc_id, data) in enumerate(contents.items()):
        cid = f"part{i}.{uuid.uuid4().hex}@test"
        writer = stores.blobs.writer()
        writer.write(data)
        attachments[cid] = Attachment(cid, "application/octet-stream", writer.finish())
        refs[doc_id] = cid
    body = render_provide_and_register(sub, refs)
    return SoapRequest(
        action="urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b",
        body=body,
        attachments=attachments,
        mtom=True,
    )


def status_and_codes(body: etree._Element) -> tuple[str, list[str]]:
    """(status suffix, error codes) of an rs:RegistryResponse or a response holding one."""
    resp = (
        body if body.tag == ns.qn(ns.RS, "RegistryResponse") else body.find(ns.qn(ns.RS, "RegistryResponse"))
    )
    assert resp is not None, etree.tostring(body)
    codes = [e.get("errorCode", "") for e in resp.iter(ns.qn(ns.RS, "RegistryError"))]
    return resp.get("status", "").rsplit(":", 1)[-1], codes


@dataclass(frozen=True)
class Counts:
    documents: int
    registry_objects: int
    blobs: int


def count_blobs(blobs: BlobStore) -> int:
    return sum(1 for _ in blobs.iter_keys(older_than=math.inf))


def counts(engine: Engine, blobs: BlobStore) -> Counts:
    with engine.connect() as conn:
        docs = conn.execute(select(func.count()).select_from(repository_document)).scalar_one()
        objs = conn.execute(select(func.count()).select_from(registry_object)).scalar_one()
    return Counts(int(docs), int(objs), count_blobs(blobs))


def content_exists(stores: Stores, key: str) -> bool:
    """Whether the document content ``key`` is kept: a blob, or a small document in the database."""
    if not inline.is_inline(key):
        return stores.blobs.exists(key)
    with stores.engine.connect() as conn:
        return key in inline.read(conn, [key])


def read_content(stores: Stores, key: str) -> bytes:
    """The document content ``key`` (a blob, or a small document in the database)."""
    if not inline.is_inline(key):
        with stores.blobs.open(key) as stream:
            return stream.read()
    with stores.engine.connect() as conn:
        return inline.read(conn, [key])[key]


def content_keys(stores: Stores) -> list[str]:
    """Every key of document content the hub keeps: its blobs, then the small documents."""
    with stores.engine.connect() as conn:
        kept = list(conn.execute(select(inline_blob.c.key)).scalars())
    return [*stores.blobs.iter_keys(older_than=math.inf), *kept]


def lose_content(stores: Stores, key: str) -> None:
    """Delete the content ``key`` behind the repository's back (to simulate a lost document)."""
    if not inline.is_inline(key):
        stores.blobs.delete(key)
        return
    with stores.engine.begin() as conn:
        inline.remove(conn, [key])


def count_inline(engine: Engine) -> int:
    """Small documents kept in the database."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(inline_blob)).scalar_one())


def hub_blob_root(data: Path) -> Path:
    return data / "blobs"


# ---------------------------------------------------------------------------------------------
# Against a running hub (tests/hubproc.py)
# ---------------------------------------------------------------------------------------------


def hub_stores(hub: Any) -> Stores:
    """Stores on a running hub's database and blob folder (to count rows and blobs)."""
    from xds_hub.storage.db import make_engine
    from xds_hub.storage.fs import FsBlobStore

    return Stores(engine=make_engine(hub.db_url), blobs=FsBlobStore(hub.data / "blobs"))


def hub_patient(hub: Any, stores: Stores) -> str:
    """A fresh affinity-domain patient registered directly in the hub's database."""
    pid = new_pid()
    register_patient(stores, pid, hub.settings)
    return pid


def process_children(pid: int) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def gunicorn_workers(supervisor_pid: int) -> list[int]:
    """The hub's gunicorn workers: grandchildren of `xds-hub serve` (http child -> its workers)."""
    children = process_children(supervisor_pid)
    return [w for child in children.get(supervisor_pid, []) for w in children.get(child, [])]


def rss(pid: int) -> int:
    import os

    try:
        return int((Path("/proc") / str(pid) / "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0
