"""Registry content for the ITI-18 tests: objects with real UUIDs, written with the registry's own
insert (xds_hub.registry.insert.insert_objects), and helpers to run stored queries in-process.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from lxml import etree

from tests.hubproc import db_url_for, drop_pg_database
from tests.metadata_samples import good_document, good_folder, good_submission_set
from xds_hub import ns
from xds_hub.config import AffinityDomain, Settings
from xds_hub.domain.metadata import (
    Association,
    Code,
    DocumentEntry,
    Folder,
    ObjectRef,
    RegistryObject,
    SubmissionSet,
)
from xds_hub.domain.query import AdhocQuery, parse_request
from xds_hub.domain.vocabulary import AssociationType, Status, StoredQuery
from xds_hub.errors import ErrorCode, XdsError
from xds_hub.registry import iti18
from xds_hub.registry.insert import insert_objects
from xds_hub.registry.store import set_status
from xds_hub.storage.db import make_engine, write_transaction
from xds_hub.storage.fs import FsBlobStore
from xds_hub.storage.migrate import upgrade
from xds_hub.storage.stores import Stores

DOMAIN_OID = "1.3.6.1.4.1.21367.13.20.1000"
HOME = "urn:oid:1.3.6.1.4.1.21367.13.70.1"
SETTINGS = Settings(domain=AffinityDomain(home_community_id=HOME))

APPROVED = Status.APPROVED.value
DEPRECATED = Status.DEPRECATED.value
STABLE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
ON_DEMAND = "urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248"

_counter = itertools.count(1)


def new_uuid() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def new_oid() -> str:
    return f"1.2.3.100.99.{next(_counter)}.{uuid.uuid4().int % 10**9}"


def new_pid() -> str:
    return f"P{uuid.uuid4().hex[:10].upper()}^^^&{DOMAIN_OID}&ISO"


def code(value: str, scheme: str = "S") -> Code:
    return Code(value, scheme, value)


def doc(pid: str, **changes: Any) -> DocumentEntry:
    base = good_document(
        entry_uuid=new_uuid(), unique_id=new_oid(), patient_id=pid, reference_ids=(), authors=()
    )
    return replace(base, **changes)


def submission_set(pid: str, **changes: Any) -> SubmissionSet:
    return replace(good_submission_set(entry_uuid=new_uuid(), unique_id=new_oid(), patient_id=pid), **changes)


def folder(pid: str, **changes: Any) -> Folder:
    return replace(good_folder(entry_uuid=new_uuid(), unique_id=new_oid(), patient_id=pid), **changes)


def assoc(kind: AssociationType, source: str, target: str, **changes: Any) -> Association:
    return Association(new_uuid(), kind, source, target, **changes)


def has_member(source: str, target: str, ss_status: str | None = None) -> Association:
    return assoc(AssociationType.HAS_MEMBER, source, target, submission_set_status=ss_status)


def submission(ss: SubmissionSet, *members: RegistryObject) -> list[RegistryObject]:
    """``ss``, ``members`` and the HasMember from ``ss`` to each of them (Original for documents)."""
    links = [
        has_member(ss.entry_uuid, m.entry_uuid, "Original" if isinstance(m, DocumentEntry) else None)
        for m in members
    ]
    return [ss, *members, *links]


@contextmanager
def module_stores(backend: str, folder: Path) -> Iterator[Stores]:
    """Stores on a fresh database of ``backend``, dropped afterwards (for module-scoped fixtures)."""
    url = db_url_for(backend, folder)
    engine = make_engine(url)
    upgrade(engine)
    stores = Stores(engine=engine, blobs=FsBlobStore(folder / "blobs"))
    try:
        yield stores
    finally:
        stores.close()
        if backend == "postgresql":
            drop_pg_database(url)


def insert(stores: Stores, objects: Sequence[RegistryObject], deprecated: Iterable[str] = ()) -> None:
    with write_transaction(stores.engine) as conn:
        insert_objects(conn, objects, time.time_ns())
        gone = list(deprecated)
        if gone:
            set_status(conn, gone, Status.DEPRECATED)


# ---------------------------------------------------------------------------------------------
# Running queries
# ---------------------------------------------------------------------------------------------

Slots = Sequence[tuple[str, Sequence[str] | str]]


def q(value: str) -> str:
    """A quoted string value."""
    return "'" + value.replace("'", "''") + "'"


def ql(*values: str) -> str:
    """A quoted list value."""
    return "(" + ",".join(q(v) for v in values) + ")"


def adhoc(
    query: StoredQuery | str, slots: Slots, return_type: str = "LeafClass", home: str | None = None
) -> AdhocQuery:
    norm = tuple((name, (values,) if isinstance(values, str) else tuple(values)) for name, values in slots)
    return AdhocQuery(query_id=str(query), slots=norm, return_type=return_type, home=home)


def run(
    stores: Stores,
    query: StoredQuery | str,
    slots: Slots,
    return_type: str = "LeafClass",
    settings: Settings = SETTINGS,
    home: str | None = None,
) -> list[RegistryObject | ObjectRef]:
    return iti18.run(stores, settings, parse_request(adhoc(query, slots, return_type, home)))


def ids(objects: Iterable[RegistryObject | ObjectRef]) -> set[str]:
    return {o.id if isinstance(o, ObjectRef) else o.entry_uuid for o in objects}


def error_codes(exc: XdsError) -> list[ErrorCode]:
    return [p.code for p in exc.problems]


# ---------------------------------------------------------------------------------------------
# XML
# ---------------------------------------------------------------------------------------------


def request_xml(
    query: StoredQuery | str, slots: Slots, return_type: str = "LeafClass", home: str | None = None
) -> etree._Element:
    """A query:AdhocQueryRequest element, built the way a Document Consumer would."""
    req = etree.Element(ns.qn(ns.QUERY, "AdhocQueryRequest"), nsmap={"query": ns.QUERY, "rim": ns.RIM})
    etree.SubElement(
        req, ns.qn(ns.QUERY, "ResponseOption"), returnComposedObjects="true", returnType=return_type
    )
    aq = etree.SubElement(req, ns.qn(ns.RIM, "AdhocQuery"), id=str(query))
    if home:
        aq.set("home", home)
    for name, values in slots:
        slot = etree.SubElement(aq, ns.qn(ns.RIM, "Slot"), name=name)
        vl = etree.SubElement(slot, ns.qn(ns.RIM, "ValueList"))
        for v in (values,) if isinstance(values, str) else values:
            etree.SubElement(vl, ns.qn(ns.RIM, "Value")).text = v
    return req
