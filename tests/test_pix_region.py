"""A three-establishment region on a running hub (SQLite and PostgreSQL): the same person fed by
two hospitals under two local IDs and a national ID is linked and queried from each side (ITI-9
and ITI-45); a clinic that registered the person again is merged by the regional identity source
(A40), and the registry follows the merge (ITI-42 / ITI-18 over HTTP)."""

from __future__ import annotations

from tests.hubproc import Hub
from tests.pix_support import AFFINITY, CLIC, HOPA, HOPB, NATIONAL, ack_code, adt, errors, new_id, send
from tests.test_registry_support import document, package
from xds_hub.client.pix import query_v2, query_v3, resolve
from xds_hub.client.xds import XdsClient
from xds_hub.errors import ErrorCode
from xds_hub.pix.model import Identifier


def test_pix_region_link_query_merge_and_registry_follows(hub: Hub) -> None:
    mllp = f"127.0.0.1:{hub.mllp_port}"
    pix_url = hub.url("/pix")
    la, lb, lc = Identifier(HOPA, new_id("A")), Identifier(HOPB, new_id("B")), Identifier(CLIC, new_id("C"))
    national = Identifier(NATIONAL, new_id("INS"))

    # Hopital A and Hopital B feed the same person under their own IDs, with the national ID.
    assert ack_code(send(hub.mllp_port, adt("A01", la.cx, national.cx, sending=("HOPA_ADT", "HOPA")))) == "AA"
    assert ack_code(send(hub.mllp_port, adt("A04", lb.cx, national.cx, sending=("HOPB_ADT", "HOPB")))) == "AA"

    # Queried from each side, over v2 and v3, they resolve to one regional ID.
    regional = resolve(mllp, la, AFFINITY)
    assert regional is not None and regional.authority == AFFINITY
    assert resolve(pix_url, lb, AFFINITY) == regional
    from_a = query_v2("127.0.0.1", hub.mllp_port, la)
    assert from_a.status == "OK" and set(from_a.identifiers) == {lb, national, regional}
    from_b = query_v3(pix_url, lb, [HOPA])
    assert from_b.status == "OK" and from_b.identifiers == (la,)

    # Clinique C registers the person without the national ID: a second person, a second regional ID.
    assert ack_code(send(hub.mllp_port, adt("A01", lc.cx, sending=("CLIC_ADT", "CLIC")))) == "AA"
    duplicate = resolve(mllp, lc, AFFINITY)
    assert duplicate is not None and duplicate != regional

    # Both regional IDs get documents.
    registry = XdsClient(registry_url=hub.url("/xds/registry"))
    doc_a, doc_c = document(regional.cx), document(duplicate.cx)
    assert registry.register(package(regional.cx, (doc_a,))).ok
    assert registry.register(package(duplicate.cx, (doc_c,))).ok

    # The clinic adding the national ID would relink silently: refused.
    refused = send(hub.mllp_port, adt("A08", lc.cx, national.cx, sending=("CLIC_ADT", "CLIC")))
    assert ack_code(refused) == "AE" and errors(refused) == [("205", "PID^1^3^2^1")]

    # The affinity domain's identity source merges the duplicate into the regional ID.
    merge = adt("A40", regional.cx, mrg=[duplicate.cx], sending=("REGION_MPI", "REGION"), version="2.5")
    assert ack_code(send(hub.mllp_port, merge)) == "AA"

    # Every side now sees one person ...
    assert set(query_v2("127.0.0.1", hub.mllp_port, lc).identifiers) == {la, lb, national, regional}
    assert resolve(pix_url, lc, AFFINITY) == regional
    assert query_v2("127.0.0.1", hub.mllp_port, duplicate).status == "AE"  # merged away

    # ... and the registry followed: the clinic's document is filed under the surviving regional ID.
    found = registry.find_documents(regional.cx)
    assert found.ok
    assert {d.unique_id for d in found.documents} == {doc_a.unique_id, doc_c.unique_id}
    assert {d.patient_id for d in found.documents} == {regional.cx}
    assert registry.find_documents(duplicate.cx).documents == []
    late = registry.register(package(duplicate.cx, (document(duplicate.cx),)))
    assert not late.ok and [e.code for e in late.errors] == [ErrorCode.UNKNOWN_PATIENT_ID.value]
    registry.close()
