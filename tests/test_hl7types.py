"""HL7 v2 data types of XDS metadata (ITI TF-3 Table 4.2.3.1.7-2): CX, CXi, XCN, XON, XTN, DTM, OID."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from xds_hub.domain import hl7types as hl7
from xds_hub.errors import ParseError


@pytest.mark.parametrize(
    "value",
    ["1.2.3", "0.1", "2.16.840.1.113883.6.1", "1.3.6.1.4.1.21367.13.20.1000", "3.4.5", "1." + "2" * 62],
)
def test_oid_accepts(value: str) -> None:
    assert hl7.is_oid(value)
    assert hl7.oid_problems(value, "x") == []


@pytest.mark.parametrize(
    "value", ["", "1", "1.", ".1", "1..2", "1.02", "01.2", "1.2a", "1.2 ", "1." + "2" * 63]
)
def test_oid_rejects(value: str) -> None:
    assert not hl7.is_oid(value)
    assert len(hl7.oid_problems(value, "x")) == 1


# -- CX ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["ID^^^&1.2.3&ISO", "ST-1000^^^&1.3.6.1.4.1.21367.2003.3.9&ISO"])
def test_cx_accepts_affinity_domain_form(value: str) -> None:
    assert hl7.cx_problems(value) == []
    cx = hl7.parse_cx(value)
    assert cx.render() == value
    assert cx.assigning_authority.universal_id_type == "ISO"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty"),
        ("ID", "no assigning authority"),
        ("^^^&1.2.3&ISO", "no ID"),
        ("ID^1^^&1.2.3&ISO", "components 2 and 3"),
        ("ID^^^&1.2.3&ISO^PI^x", "more than 4"),
        ("ID^^^NS&1.2.3&ISO", "namespace"),
        ("ID^^^&1.2.3&L", "ISO"),
        ("ID^^^&abc&ISO", "not an OID"),
        ("ID^^^1.2.3", "ISO"),
    ],
)
def test_cx_rejects_with_a_helpful_message(value: str, fragment: str) -> None:
    problems = hl7.cx_problems(value)
    assert problems
    assert any(fragment in p for p in problems), problems
    with pytest.raises(ParseError):
        hl7.parse_cx(value)


def test_cx_of_and_parse() -> None:
    cx = hl7.CX.of("P1", "1.2.3")
    assert cx.render() == "P1^^^&1.2.3&ISO"
    assert hl7.CX.parse("P1^^^&1.2.3&ISO^PI").identifier_type_code == "PI"
    assert hl7.CX.parse("P1^^^&1.2.3&ISO^PI").render() == "P1^^^&1.2.3&ISO^PI"


# -- CXi ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "A123^^^&1.2.3&ISO^urn:ihe:iti:xds:2013:accession",
        "1.2.840.1.2^^^^urn:ihe:iti:xds:2013:uniqueId",
        "ORD-1^^^NS^urn:ihe:iti:xds:2013:order",
        "E1^^^&1.2.3&ISO^urn:ihe:iti:xds:2015:encounterId^&urn:oid:1.2.3.4&ISO",
    ],
)
def test_cxi_accepts(value: str) -> None:
    assert hl7.cxi_problems(value) == []


@pytest.mark.parametrize(
    "value",
    ["", "A1", "^^^&1.2.3&ISO^urn:ihe:iti:xds:2013:order", "A1^^^&1.2.3^urn:x", "A1^x^^^urn:x", "A^^^^t^^^x"],
)
def test_cxi_rejects(value: str) -> None:
    assert hl7.cxi_problems(value)


def test_cxi_parse() -> None:
    cxi = hl7.CXi.parse("A123^^^&1.2.3&ISO^urn:ihe:iti:xds:2013:accession")
    assert cxi.id_number == "A123"
    assert cxi.assigning_authority.universal_id == "1.2.3"
    assert cxi.identifier_type_code in hl7.CXI_TYPE_CODES


# -- XCN ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["Gerald Smitty", "^Smitty^Gerald^^^", "1234^Doe^John^^^Dr^^^&1.2.3&ISO", "1234^^^^^^^^&1.2.3&ISO"],
)
def test_xcn_accepts(value: str) -> None:
    assert hl7.xcn_problems(value) == []


@pytest.mark.parametrize("value", ["", "^^John", "1^Doe^^^^^^^&1.2&L", "1^Doe^^^^^^^NS&1.2&ISO"])
def test_xcn_rejects(value: str) -> None:
    assert hl7.xcn_problems(value)


def test_xcn_parse() -> None:
    xcn = hl7.XCN.parse("1234^Doe&vd^John^M^Jr^Dr^^^&1.2.3&ISO")
    assert (xcn.id_number, xcn.family_name, xcn.given_name, xcn.prefix) == ("1234", "Doe", "John", "Dr")
    assert xcn.assigning_authority.universal_id == "1.2.3"


# -- XON ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "Cleveland Clinic",
        "Parma Community^^^^^^^^^1.2.3",
        "Cleveland Clinic^^^^^&1.2.3&ISO^^^^CleveClin",
    ],
)
def test_xon_accepts(value: str) -> None:
    assert hl7.xon_problems(value) == []


@pytest.mark.parametrize(
    "value",
    ["", "^^^^^^^^^1.2.3", "Org^^^^^^^^^notanoid", "Org^L", "Org^^^^^&1.2&L^^^^X", "Org^^^^^^^^^1.2^extra"],
)
def test_xon_rejects(value: str) -> None:
    assert hl7.xon_problems(value)


# -- XTN ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "^NET^Internet^john@example.org",
        "^^Internet^john@example.org",
        "^WPN^PH^^1^555^1234567",
        "^^CP^^^^^^^^^+15551234567",
    ],
)
def test_xtn_accepts(value: str) -> None:
    assert hl7.xtn_problems(value) == []


@pytest.mark.parametrize(
    "value",
    ["", "555-1234", "^^Internet", "^^PH", "^^Internet^a@b^1", "^^PH^a@b^^^1234", "^^Pigeon^x"],
)
def test_xtn_rejects(value: str) -> None:
    assert hl7.xtn_problems(value)


def test_xtn_parse() -> None:
    xtn = hl7.XTN.parse("^WPN^PH^^1^555^1234567^89")
    assert (xtn.use_code, xtn.equipment_type, xtn.area_code, xtn.local_number, xtn.extension) == (
        "WPN",
        "PH",
        "555",
        "1234567",
        "89",
    )


# -- DTM ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "precision"),
    [
        ("2005", "year"),
        ("200512", "month"),
        ("20051224", "day"),
        ("2005122423", "hour"),
        ("200512242359", "minute"),
        ("20051224235959", "second"),
        ("20040229", "day"),
    ],
)
def test_dtm_accepts_every_precision(value: str, precision: str) -> None:
    assert hl7.dtm_problems(value) == []
    assert hl7.parse_dtm(value).precision == precision


@pytest.mark.parametrize(
    "value",
    [
        "",
        "200",
        "2005122",
        "20051224T101010",
        "2005-12-24",
        "20051324",
        "20050230",
        "20050229",
        "2005122424",
        "200512242360",
        "20051224235960",
        "20051224235959+0100",
        "20051224235959.123",
        "0000",
        "\uff12\uff10\uff10\uff15",  # fullwidth digits
    ],
)
def test_dtm_rejects(value: str) -> None:
    problems = hl7.dtm_problems(value, "creationTime")
    assert len(problems) == 1 and "creationTime" in problems[0]
    with pytest.raises(ParseError):
        hl7.parse_dtm(value)


def test_dtm_datetime_conversions() -> None:
    assert hl7.DTM("2005").as_datetime() == datetime(2005, 1, 1, tzinfo=UTC)
    assert hl7.DTM("20051224235959").as_datetime() == datetime(2005, 12, 24, 23, 59, 59, tzinfo=UTC)
    local = datetime(2005, 12, 25, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert hl7.DTM.from_datetime(local).text == "20051224233000"


def test_hd_render_and_parse() -> None:
    assert hl7.HD.parse("&1.2.3&ISO") == hl7.HD("", "1.2.3", "ISO")
    assert hl7.HD("", "1.2.3", "ISO").render() == "&1.2.3&ISO"
    assert hl7.HD("NS").render() == "NS"
    assert hl7.HD.parse("").is_empty
