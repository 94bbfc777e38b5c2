"""The public HL7 v2 and PIXV3 sample messages (../shared/oracle/samples/hl7v2, pixv3; read in
place) are accepted by a hub whose affinity domain serves the samples' patient identifier domains
(SQLite and PostgreSQL); every v3 reply is valid against the official schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from tests.hubproc import TEST_CONFIG, Hub, db_url_for, drop_pg_database
from tests.oracle import SAMPLES, assert_valid
from tests.pix_support import V3, ack_code, adt, errors, post_v3, qbp, send, v3_text
from xds_hub.domain.vocabulary import SoapAction
from xds_hub.pix.hl7v2 import parse, split_messages

MPI = "2.16.840.1.113883.3.37.4.1.1.2.1.1"
AFFINITY = "1.2.3.4.5.1000"
DOMAIN1 = "1.2.3.4.666"

#: The samples' patient identifier domains, as one affinity domain.
SAMPLES_CONFIG = f"""
[affinity_domain]
assigning_authority = "{AFFINITY}"
home_community_id = "urn:oid:1.3.6.1.4.1.21367.13.70.1"
repository_unique_id = "1.3.6.1.4.1.21367.13.80.1"
imaging_source_unique_id = "1.3.6.1.4.1.21367.13.80.2"
linking_authorities = []

[[establishment]]
name = "ICW MPI"
assigning_authority = "{MPI}"

[[establishment]]
name = "KHKN"
assigning_authority = "2.16.840.1.113883.3.37.4.1.1.2.611.1"

[[establishment]]
name = "HZLN"
assigning_authority = "2.16.840.1.113883.3.37.4.1.1.2.411.1"

[[establishment]]
name = "XREF2005"
assigning_authority = "1.3.6.1.4.1.21367.2005.1.2"

[[establishment]]
name = "HIMSS2005"
assigning_authority = "1.3.6.1.4.1.21367.2005.1.1"

[[establishment]]
name = "domain1"
assigning_authority = "{DOMAIN1}"

[[establishment]]
name = "domain2"
assigning_authority = "1.2.3.4.777"

[pix]
namespaces = {{ domain2 = "1.2.3.4.777" }}
"""

#: What a sample needs the PIX Manager to know before it is sent (a merge needs its subsumed ID).
PREREQUISITES = {
    "A40.hl7": [f"704686^^^&{MPI}&ISO"],
    "PIX_FEED_MERGE_Maximal_Request.hl7": [f"120-02^^^&{DOMAIN1}&ISO"],
    "PIX_FEED_MERGE_Maximal_Request.xml": [f"120-02^^^&{DOMAIN1}&ISO"],
    "NistPixpdq_Mesa10501-04_Example_01.xml": [
        "PIX10501^^^&1.3.6.1.4.1.21367.2005.1.1&ISO",
        "XREF10501^^^&1.3.6.1.4.1.21367.2005.1.2&ISO",
    ],
}


@pytest.fixture(scope="module")
def samples_hub(db_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    folder = tmp_path_factory.mktemp(f"pix-samples-{db_backend}")
    hub = Hub(folder=folder, db_url=db_url_for(db_backend, folder), config_text=SAMPLES_CONFIG).start()
    yield hub
    hub.stop()
    if db_backend == "postgresql":
        drop_pg_database(hub.db_url)


def _prepare(hub: Hub, name: str) -> None:
    ids = PREREQUISITES.get(name)
    if ids:  # may already be known (or merged away) from the other backend's / format's run
        send(hub.mllp_port, adt("A01", *ids, sending=("PREP", "")))


def _v2_samples() -> list[Path]:
    folder = SAMPLES / "hl7v2"
    return sorted(folder.glob("*.hl7")) if folder.is_dir() else []


def _v3(pattern: str) -> list[Path]:
    folder = SAMPLES / "pixv3"
    return sorted(folder.glob(pattern)) if folder.is_dir() else []


def test_pix_samples_are_present() -> None:
    assert len(_v2_samples()) == 7
    assert len(_v3("*.xml")) == 8
    assert TEST_CONFIG  # the region tests use their own config


@pytest.mark.parametrize("path", _v2_samples(), ids=lambda p: p.name)
def test_pix_v2_sample_is_accepted(samples_hub: Hub, path: Path) -> None:
    (message,) = split_messages(path.read_text(encoding="utf-8"))
    _prepare(samples_hub, path.name)
    reply = send(samples_hub.mllp_port, message)
    assert ack_code(reply) == "AA", (errors(reply), reply.text)
    assert reply.first("MSA").value(2) == parse(message).control_id  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "action"),
    [
        ("PIX_FEED_REG_Maximal_Request.xml", SoapAction.ITI44_ADD),
        ("PIX_FEED_REV_Maximal_Request.xml", SoapAction.ITI44_REVISE),
        ("PIX_FEED_MERGE_Maximal_Request.xml", SoapAction.ITI44_MERGE),
    ],
)
def test_pix_v3_feed_sample_is_accepted(samples_hub: Hub, name: str, action: str) -> None:
    path = SAMPLES / "pixv3" / name
    if not path.is_file():
        pytest.skip(f"{name} not found")
    _prepare(samples_hub, name)
    reply = post_v3(samples_hub, action, etree.parse(str(path)).getroot())
    assert_valid("MCCI_IN000002UV01.xsd", reply)
    assert v3_text(reply, "v3:acknowledgement/v3:typeCode/@code") == ["AA"], etree.tostring(reply)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NistPixpdq_Mesa10501-04_Example_01.xml", ("AA", "OK")),
        ("NistPixpdq_Mesa10502-03_UnknownId_Example_01.xml", ("AE", "AE")),
        ("NistPixpdq_Mesa10503-01_UnknownAssigningAuth_Example_01.xml", ("AE", "AE")),
    ],
)
def test_pix_v3_query_sample_is_answered(samples_hub: Hub, name: str, expected: tuple[str, str]) -> None:
    path = SAMPLES / "pixv3" / name
    if not path.is_file():
        pytest.skip(f"{name} not found")
    _prepare(samples_hub, name)
    reply = post_v3(samples_hub, SoapAction.ITI45, etree.parse(str(path)).getroot())
    assert_valid("PRPA_IN201310UV02.xsd", reply)
    ack = v3_text(reply, "v3:acknowledgement/v3:typeCode/@code")
    code = v3_text(reply, "v3:controlActProcess/v3:queryAck/v3:queryResponseCode/@code")
    assert (ack[0], code[0]) == expected
    if expected[0] == "AA":
        ids = reply.xpath(
            "v3:controlActProcess/v3:subject/v3:registrationEvent/v3:subject1/v3:patient/v3:id", namespaces=V3
        )
        assert [(i.get("root"), i.get("extension")) for i in ids] == [
            ("1.3.6.1.4.1.21367.2005.1.2", "XREF10501")
        ]
    else:
        codes = v3_text(reply, "v3:acknowledgement/v3:acknowledgementDetail/v3:code/@code")
        assert codes == ["204"]


def test_pix_samples_merge_retired_the_subsumed_id(samples_hub: Hub) -> None:
    """Runs after the MERGE samples: 120-02 (domain1) is gone, 120-01 (regional) holds the person."""
    _prepare(samples_hub, "PIX_FEED_MERGE_Maximal_Request.hl7")
    merge = (SAMPLES / "hl7v2" / "PIX_FEED_MERGE_Maximal_Request.hl7").read_text(encoding="utf-8")
    assert ack_code(send(samples_hub.mllp_port, merge)) == "AA"
    old = send(samples_hub.mllp_port, qbp(f"120-02^^^&{DOMAIN1}&ISO"))
    assert ack_code(old) == "AE" and errors(old) == [("204", "QPD^1^3^1^1")]
    new = send(samples_hub.mllp_port, qbp(f"120-01^^^&{AFFINITY}&ISO"))
    assert ack_code(new) == "AA"
