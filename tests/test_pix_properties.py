"""Property-based tests of the PIX parsers: they return a value or raise the project's own error
(ParseError, Hl7Error, PixClientError), never anything else; every frame gets exactly one reply."""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import Iterator
from pathlib import Path

import hl7
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from sqlalchemy import Engine

from tests.oracle import SAMPLES
from xds_hub.client.pix import PixClientError, read_rsp_k23
from xds_hub.config import DEMO_DOMAIN, Settings
from xds_hub.errors import Hl7Error, ParseError
from xds_hub.pix import hl7v2, iti8, iti9
from xds_hub.pix.iti44 import parse_feed
from xds_hub.pix.iti45 import parse_query
from xds_hub.pix.model import FeedKind
from xds_hub.pix.service import handle_frames
from xds_hub.pix.xref import CrossReference
from xds_hub.storage.db import make_engine
from xds_hub.storage.migrate import upgrade

SEGMENT_IDS = st.sampled_from(["MSH", "EVN", "PID", "MRG", "QPD", "RCP", "PV1", "ZZZ", "ERR"])
FIELD = st.text(alphabet="abcXYZ019.^~&\\|\"' ", max_size=30)


@st.composite
def hl7ish(draw: st.DrawFn) -> str:
    """Text that looks more or less like HL7 v2: MSH-led segments of random fields."""
    head = draw(
        st.sampled_from(
            [
                "MSH|^~\\&|A|B|C|D|20240101||ADT^A01^ADT_A01|1|P|2.5",
                "MSH|^~\\&|A|B|C|D|20240101||ADT^A40^ADT_A39|2|P|2.3.1",
                "MSH|^~\\&|A|B|C|D|20240101||QBP^Q23^QBP_Q21|3|P|2.5",
                "MSH|^~\\&|",
                "MSH",
                "",
            ]
        )
    )
    segments = [head]
    for _ in range(draw(st.integers(0, 5))):
        fields = draw(st.lists(FIELD, max_size=8))
        segments.append("|".join([draw(SEGMENT_IDS), *fields]))
    return draw(st.sampled_from(["\r", "\n", "\r\n"])).join(segments)


@given(st.one_of(hl7ish(), st.text(max_size=200)))
@settings(max_examples=400, deadline=None)
def test_pix_v2_parsers_return_or_raise_project_errors(text: str) -> None:
    try:
        msg = hl7v2.parse(text)
    except ParseError:
        return
    for prepare in (iti8.prepare, iti9.prepare):
        with contextlib.suppress(Hl7Error):
            prepare(msg)
    for seg in msg.segments:
        for field in range(0, 12):
            seg.value(field, 1, 4, 2)
            seg.repetitions(field)


def _rendered(segment: object) -> str:
    """python-hl7's text of a segment (its own error for an MSH without fields)."""
    try:
        return str(segment)
    except IndexError as exc:
        return repr(exc)


@given(hl7ish())
@settings(max_examples=400, deadline=None)
def test_pix_v2_lazy_parse_reads_what_python_hl7_parses(text: str) -> None:
    """The parser splits fields with python-hl7 only when they are read (hl7v2 module docstring):
    every value, repetition count and raw field text is the one of ``hl7.parse``'s full tree."""
    try:
        msg = hl7v2.parse(text)
    except ParseError:
        return
    full = hl7.parse(msg.text, factory=hl7v2.Factory)
    assert len(full) == len(msg.segments)
    for ours, theirs in zip(msg.segments, full, strict=True):
        reference = hl7v2.Segment(theirs)  # the same accessors over the library's whole tree
        assert ours.id == reference.id
        assert _rendered(ours.raw) == _rendered(theirs)
        if ours.id != "MSH":  # python-hl7 renders a stray "MSH|" line as "MSH||MSH|"
            assert ours.text == str(theirs)  # what a reply echoes (QPD) is the segment as received
        for field in range(0, len(theirs) + 2):
            assert ours.field_text(field) == reference.field_text(field)
            assert ours.repetitions(field) == reference.repetitions(field)
            for rep, comp, sub in itertools.product((1, 2, 3), (1, 2, 4), (1, 2, 3)):
                assert ours.value(field, rep, comp, sub) == reference.value(field, rep, comp, sub)
            assert ours.values(field, 1, ((1, 1), (4, 2))) == [
                reference.value(field, 1, 1, 1),
                reference.value(field, 1, 4, 2),
            ]
        for field in range(3, len(theirs)):
            ours.value(field)  # every field now split by the library: the same tree
            node = list.__getitem__(ours.raw, field)
            expected = list.__getitem__(theirs, field)
            assert (node == expected) if not isinstance(node, str) else ([node] == expected)


@given(st.text(max_size=300))
@settings(max_examples=200, deadline=None)
def test_pix_client_reader_returns_or_raises_pix_client_error(text: str) -> None:
    with contextlib.suppress(PixClientError):
        read_rsp_k23(text)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    folder: Path = tmp_path_factory.mktemp("pix-properties")
    eng = make_engine(f"sqlite:///{folder / 'pix.sqlite'}")
    upgrade(eng)
    yield eng
    eng.dispose()


@given(frames=st.lists(st.one_of(hl7ish().map(str.encode), st.binary(max_size=100)), min_size=1, max_size=4))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_pix_every_frame_gets_one_readable_reply(engine: Engine, frames: list[bytes]) -> None:
    settings_ = Settings(domain=DEMO_DOMAIN)
    batch = handle_frames(frames, engine, settings_, CrossReference(DEMO_DOMAIN))
    assert len(batch.replies) == len(frames)
    for reply in batch.replies:
        msg = hl7v2.parse(reply.decode("utf-8", errors="replace"))
        msa = msg.first("MSA")
        assert msa is not None and msa.value(1) in ("AA", "AE", "AR")


def _sample(name: str) -> etree._Element:
    path = SAMPLES / "pixv3" / name
    if not path.is_file():
        pytest.skip(f"{name} not found")
    return etree.parse(str(path)).getroot()


def _mutations(root: etree._Element) -> st.SearchStrategy[etree._Element]:
    nodes = [e for e in root.iter() if isinstance(e.tag, str) and e is not root]

    @st.composite
    def mutate(draw: st.DrawFn) -> etree._Element:
        doc = copy.deepcopy(root)
        targets = [e for e in doc.iter() if isinstance(e.tag, str) and e is not doc]
        for index in draw(st.lists(st.integers(0, len(nodes) - 1), max_size=4)):
            el = targets[index]
            action = draw(st.sampled_from(["drop", "clear", "attr"]))
            if action == "drop" and el.getparent() is not None:
                el.getparent().remove(el)  # type: ignore[union-attr]
            elif action == "clear":
                el.attrib.clear()
            else:
                el.set(
                    draw(st.sampled_from(["root", "extension", "nullFlavor", "assigningAuthorityName"])),
                    draw(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=10)),
                )
        return doc

    return mutate()


@pytest.mark.parametrize(
    ("name", "kind", "interaction"),
    [
        ("PIX_FEED_REG_Maximal_Request.xml", FeedKind.ADD, "PRPA_IN201301UV02"),
        ("PIX_FEED_MERGE_Maximal_Request.xml", FeedKind.MERGE, "PRPA_IN201304UV02"),
    ],
)
def test_pix_v3_feed_parser_on_damaged_samples(name: str, kind: FeedKind, interaction: str) -> None:
    @given(_mutations(_sample(name)))
    @settings(max_examples=150, deadline=None)
    def check(doc: etree._Element) -> None:
        with contextlib.suppress(Hl7Error):
            parse_feed(doc, interaction, kind)

    check()


def test_pix_v3_query_parser_on_damaged_samples() -> None:
    @given(_mutations(_sample("NistPixpdq_Mesa10501-04_Example_01.xml")))
    @settings(max_examples=150, deadline=None)
    def check(doc: etree._Element) -> None:
        with contextlib.suppress(Hl7Error):
            parse_query(doc)

    check()
