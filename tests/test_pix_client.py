"""xds_hub.client.pix without a hub: the messages it builds (ITI-9 QBP^Q23, ITI-45
PRPA_IN201309UV02, valid against the official schema) and the answers it reads (the public
PRPA_IN201310UV02 sample, RSP^K23 in every shape)."""

from __future__ import annotations

import pytest
from lxml import etree

from tests.oracle import SAMPLES, assert_valid
from xds_hub.client.pix import (
    PixClientError,
    parse_cx,
    parse_target,
    prpa_in201309,
    qbp_q23,
    read_prpa_in201310,
    read_rsp_k23,
)
from xds_hub.pix import hl7v2
from xds_hub.pix.model import Identifier

PID = Identifier("1.2.3.100", "L42")


def test_pix_client_parse_cx_and_target() -> None:
    assert parse_cx("L42^^^&1.2.3.100&ISO") == PID
    assert parse_cx("L42^^^HOPA&1.2.3.100&ISO") == PID
    for bad in ("L42", "^^^&1.2.3&ISO", "L42^^^HOPA"):
        with pytest.raises(ValueError):
            parse_cx(bad)
    assert parse_target("pix.example.org:2575") == ("pix.example.org", 2575)
    assert parse_target("https://pix.example.org/pix") == "https://pix.example.org/pix"
    with pytest.raises(ValueError):
        parse_target("pix.example.org")


def test_pix_client_qbp_q23_is_an_iti9_query() -> None:
    msg = hl7v2.parse(qbp_q23(PID, ["1.3.6.1.4.1.21367.13.20.1000", "1.2.3.200"]))
    assert (msg.message_type, msg.trigger_event, msg.structure, msg.version) == (
        "QBP",
        "Q23",
        "QBP_Q21",
        "2.5",
    )
    qpd = msg.first("QPD")
    assert qpd is not None
    assert qpd.value(1) == "IHE PIX Query"
    assert (qpd.value(3, 1, 1), qpd.value(3, 1, 4, 2), qpd.value(3, 1, 4, 3)) == ("L42", "1.2.3.100", "ISO")
    assert [qpd.value(4, r, 4, 2) for r in (1, 2)] == ["1.3.6.1.4.1.21367.13.20.1000", "1.2.3.200"]
    assert msg.first("RCP") is not None


def test_pix_client_prpa_in201309_is_schema_valid() -> None:
    body = prpa_in201309(PID, ["1.3.6.1.4.1.21367.13.20.1000"])
    assert_valid("PRPA_IN201309UV02.xsd", body)


def test_pix_client_reads_the_public_pixv3_response_sample() -> None:
    path = SAMPLES / "pixv3" / "07_PIXQuery1Response.xml"
    if not path.is_file():
        pytest.skip("sample not found")
    result = read_prpa_in201310(etree.parse(str(path)).getroot())
    assert (result.ack, result.status) == ("CA", "OK")
    assert set(result.identifiers) == {
        Identifier("1.2.840.114350.1.13.99998.8734", "34827G409"),
        Identifier("1.2.840.114350.1.13.99997.2.3412", "38273N237"),
        Identifier("2.16.840.1.113883.4.1", "999-99-4452"),
    }


def test_pix_client_reads_rsp_k23() -> None:
    ok = read_rsp_k23(
        "MSH|^~\\&|X|Y|C|D|20240101||RSP^K23^RSP_K23|1|P|2.5\rMSA|AA|9\rQAK|T|OK\r"
        "QPD|IHE PIX Query|T|L42^^^&1.2.3.100&ISO\rPID|||R1^^^&1.3&ISO~B2^^^&1.2.3.200&ISO||~^^^^^^S\r"
    )
    assert (ok.ack, ok.status, ok.ok) == ("AA", "OK", True)
    assert ok.identifiers == (Identifier("1.3", "R1"), Identifier("1.2.3.200", "B2"))
    refused = read_rsp_k23(
        "MSH|^~\\&|X|Y|C|D|20240101||RSP^K23^RSP_K23|1|P|2.5\rMSA|AE|9\r"
        "ERR||QPD^1^3^1^1|204^Unknown Key Identifier^HL70357|E||||not known\rQAK|T|AE\r"
    )
    assert (refused.status, refused.ok) == ("AE", False)
    assert refused.errors == ("204 QPD^1^3^1^1: not known",)
    with pytest.raises(PixClientError):
        read_rsp_k23("this is not HL7")
