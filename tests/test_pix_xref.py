"""The cross-reference (xds_hub.pix.xref) in-process on SQLite and PostgreSQL: linking order,
allocation policies, no silent relinking, merges and what the registry sees of them."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import func, select

from tests.pix_support import AFFINITY, CLIC, HOPA, HOPB, NATIONAL, new_id
from tests.test_registry_support import document, package, register
from xds_hub.config import DEMO_DOMAIN, PixSettings, PixSubscriber
from xds_hub.errors import ErrorCode, Hl7Error, Hl7ErrorCode, XdsError
from xds_hub.pix.model import FeedEvent, FeedKind, Identifier, PixQuery, QueryStatus, RawId, Where
from xds_hub.pix.tables import pix_notification
from xds_hub.pix.xref import CrossReference
from xds_hub.registry.patients import is_known
from xds_hub.storage.db import read_transaction, write_transaction
from xds_hub.storage.schema import document_entry
from xds_hub.storage.stores import Stores

DOMAIN = DEMO_DOMAIN


def raw(ident: Identifier, n: int = 1) -> RawId:
    return RawId(ident.value, "", ident.authority, "ISO", Where(f"PID^1^3^{n}^1", f"PID^1^3^{n}^4"))


def ident(authority: str, prefix: str = "L") -> Identifier:
    return Identifier(authority, new_id(prefix))


def feed(
    stores: Stores,
    xref: CrossReference,
    *ids: Identifier,
    kind: FeedKind = FeedKind.ADD,
    prior: tuple[Identifier, ...] = (),
) -> object:
    event = FeedEvent(
        kind,
        tuple(raw(i, n) for n, i in enumerate(ids, 1)),
        prior_ids=tuple(raw(i, n) for n, i in enumerate(prior, 1)),
    )
    with write_transaction(stores.engine) as conn:
        return xref.merge(conn, event) if kind is FeedKind.MERGE else xref.feed(conn, event)


def aliases(stores: Stores, xref: CrossReference, who: Identifier, *domains: str) -> set[Identifier]:
    query = PixQuery(raw(who), tuple(RawId("", "", d, "ISO") for d in domains))
    with read_transaction(stores.engine) as conn:
        answer = xref.query(conn, query)
    return set(answer.identifiers)


def refused(
    stores: Stores,
    xref: CrossReference,
    *ids: Identifier,
    kind: FeedKind = FeedKind.ADD,
    prior: tuple[Identifier, ...] = (),
) -> list[tuple[Hl7ErrorCode, str]]:
    with pytest.raises(Hl7Error) as info:
        feed(stores, xref, *ids, kind=kind, prior=prior)
    return [(p.code, p.location) for p in info.value.problems]


def regional_of(stores: Stores, xref: CrossReference, who: Identifier) -> Identifier:
    (found,) = aliases(stores, xref, who, AFFINITY)
    return found


def test_pix_xref_allocates_a_regional_id_known_to_the_registry(stores: Stores) -> None:
    xref = CrossReference(DOMAIN)
    a = ident(HOPA)
    outcome = feed(stores, xref, a)
    regional = regional_of(stores, xref, a)
    assert outcome.affinity_id == regional  # type: ignore[attr-defined]
    assert regional.value.startswith("XH")
    with read_transaction(stores.engine) as conn:
        assert is_known(conn, regional.cx)


def test_pix_xref_wait_policy_links_when_the_regional_source_feeds(stores: Stores) -> None:
    xref = CrossReference(replace(DOMAIN, pix=PixSettings(allocation="wait")))
    a = ident(HOPA)
    feed(stores, xref, a)
    with read_transaction(stores.engine) as conn:
        assert xref.query(conn, PixQuery(raw(a))).status is QueryStatus.NF
    regional = ident(AFFINITY, "R")
    feed(stores, xref, regional, a)  # the affinity domain's identity source links them
    assert aliases(stores, xref, a) == {regional}


def test_pix_xref_linking_authority_joins_identities(stores: Stores) -> None:
    xref = CrossReference(DOMAIN)
    national, a, b, c = ident(NATIONAL, "N"), ident(HOPA), ident(HOPB), ident(CLIC)
    feed(stores, xref, a, national)
    feed(stores, xref, b, national)
    feed(stores, xref, c, national)
    regional = regional_of(stores, xref, a)
    assert aliases(stores, xref, c) == {a, b, national, regional}
    assert aliases(stores, xref, b, HOPA, CLIC) == {a, c}


def test_pix_xref_no_silent_relinking(stores: Stores) -> None:
    xref = CrossReference(DOMAIN)
    national, a, b = ident(NATIONAL, "N"), ident(HOPA), ident(HOPB)
    feed(stores, xref, a, national)
    feed(stores, xref, b)
    assert refused(stores, xref, b, national) == [(Hl7ErrorCode.DUPLICATE_KEY_IDENTIFIER, "PID^1^3^2^1")]
    assert refused(stores, xref, a, b) == [(Hl7ErrorCode.DUPLICATE_KEY_IDENTIFIER, "PID^1^3^2^1")]
    r1, r2 = ident(AFFINITY, "R"), ident(AFFINITY, "R")
    assert refused(stores, xref, ident(CLIC), r1, r2) == [
        (Hl7ErrorCode.DUPLICATE_KEY_IDENTIFIER, "PID^1^3^3^1")
    ]
    assert aliases(stores, xref, b) == {regional_of(stores, xref, b)}


def test_pix_xref_refused_feed_changes_nothing(stores: Stores) -> None:
    xref = CrossReference(DOMAIN)
    with read_transaction(stores.engine) as conn:
        before = conn.execute(select(func.count()).select_from(pix_notification)).scalar_one()
    a = ident(HOPA)
    refused(stores, xref, a, Identifier("7.7.7", "X"))
    with read_transaction(stores.engine) as conn:
        assert conn.execute(select(func.count()).select_from(pix_notification)).scalar_one() == before
        with pytest.raises(Hl7Error):
            xref.query(conn, PixQuery(raw(a)))


def test_pix_xref_merge_of_persons_merges_their_regional_ids_in_the_registry(stores: Stores) -> None:
    xref = CrossReference(DOMAIN)
    a1, a2, b = ident(HOPA), ident(HOPA), ident(HOPB)
    feed(stores, xref, a1)
    feed(stores, xref, a2, b)
    r1, r2 = regional_of(stores, xref, a1), regional_of(stores, xref, a2)
    sub = package(r1.cx, (document(r1.cx),))
    register(stores, sub)
    feed(stores, xref, a2, kind=FeedKind.MERGE, prior=(a1,))
    assert aliases(stores, xref, b) == {a2, r2}
    with read_transaction(stores.engine) as conn:
        assert not is_known(conn, r1.cx) and is_known(conn, r2.cx)
        moved = conn.execute(
            select(document_entry.c.patient_id).where(document_entry.c.id == sub.documents[0].entry_uuid)
        ).scalar_one()
    assert moved == r2.cx


def test_pix_xref_merge_errors(stores: Stores) -> None:
    xref = CrossReference(DOMAIN)
    a, r = ident(HOPA), ident(AFFINITY, "R")
    feed(stores, xref, a, r)
    unknown = ident(HOPA)
    assert refused(stores, xref, a, kind=FeedKind.MERGE, prior=(unknown,)) == [
        (Hl7ErrorCode.UNKNOWN_KEY_IDENTIFIER, "PID^1^3^1^1")
    ]
    b = ident(HOPB)
    feed(stores, xref, b)
    assert refused(stores, xref, b, kind=FeedKind.MERGE, prior=(r,)) == [
        (Hl7ErrorCode.UNKNOWN_KEY_IDENTIFIER, "PID^1^3^1^1")
    ]


def test_pix_xref_notifications_are_queued_in_the_feed_transaction(stores: Stores) -> None:
    subscribers = (
        PixSubscriber("b", "127.0.0.1", 1, domains=(AFFINITY, HOPB)),
        PixSubscriber("all", "127.0.0.1", 2),
    )
    xref = CrossReference(replace(DOMAIN, pix=PixSettings(subscribers=subscribers)))
    a, b = ident(HOPA), ident(HOPB)
    with read_transaction(stores.engine) as conn:
        start = conn.execute(select(func.max(pix_notification.c.id))).scalar_one() or 0
    outcome = feed(stores, xref, a)  # a + allocated regional ID: a link
    assert outcome.notifications == 2  # type: ignore[attr-defined]
    refused(stores, xref, b, Identifier("7.7.7", "X"))  # refused: nothing queued
    with read_transaction(stores.engine) as conn:
        rows = conn.execute(
            select(pix_notification.c.subscriber, pix_notification.c.message, pix_notification.c.status)
            .where(pix_notification.c.id > start)
            .order_by(pix_notification.c.id)
        ).all()
    assert [(r.subscriber, r.status) for r in rows] == [("b", "pending"), ("all", "pending")]
    regional = regional_of(stores, xref, a)
    assert f"PID|||{regional.value}^^^&{AFFINITY}&ISO||~^^^^^^S" in rows[0].message
    assert a.value not in rows[0].message  # not one of b's domains
    assert a.value in rows[1].message and "ADT^A31^ADT_A05" in rows[1].message


def test_pix_xref_patient_add_is_a_feed_of_the_regional_source(stores: Stores) -> None:
    """`xds-hub patient add` feeds the regional ID: the registry and the PIX Manager both know it."""
    xref = CrossReference(DOMAIN)
    regional = ident(AFFINITY, "R")
    with write_transaction(stores.engine) as conn:
        assert xref.add_affinity_patient(conn, regional.cx)
        assert not xref.add_affinity_patient(conn, regional.cx)
        assert is_known(conn, regional.cx)
        with pytest.raises(XdsError) as info:
            xref.add_affinity_patient(conn, ident(HOPA).cx)
    assert [p.code for p in info.value.problems] == [ErrorCode.UNKNOWN_PATIENT_ID]
    a = ident(HOPA)
    feed(stores, xref, a, regional)  # a hospital links its ID to it
    assert aliases(stores, xref, regional) == {a}
