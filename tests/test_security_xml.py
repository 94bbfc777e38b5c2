"""The hardened XML parser (xds_hub.security.xml) against hostile input: XXE (file and network), external
DTDs, billion laughs, quadratic blow-up, deep nesting, element floods, oversized input; it returns an
element or raises ParseError, never anything else (hypothesis)."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from xds_hub.errors import ParseError
from xds_hub.security.xml import check_tree, hardened_parser, parse_bytes, safe_parser

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "oracle" / "samples"

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz a="&lol9;">&lol9;</lolz>"""


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        _Counter.hits.append(self.path)
        body = b'<!ENTITY secret "leaked">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def dtd_server() -> Iterator[str]:
    """An HTTP server that would serve DTDs and entities, and counts every request."""
    _Counter.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_xml_parses_ordinary_documents_like_lxml() -> None:
    for path in sorted((SAMPLES / "ebrim30").glob("*.xml")):
        data = path.read_bytes()
        ours = parse_bytes(data)
        theirs = etree.fromstring(data, hardened_parser())
        assert etree.tostring(ours, method="c14n") == etree.tostring(theirs, method="c14n"), path.name


def test_xml_xxe_file_entity_is_refused_and_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    doc = f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]><r>&x;</r>'.encode()
    with pytest.raises(ParseError, match="DOCTYPE") as exc:
        parse_bytes(doc)
    assert "TOP-SECRET" not in str(exc.value)


def test_xml_xxe_network_entities_and_external_dtds_make_no_request(dtd_server: str) -> None:
    docs = [
        f'<!DOCTYPE r SYSTEM "{dtd_server}/ext.dtd"><r/>',
        f'<!DOCTYPE r [<!ENTITY x SYSTEM "{dtd_server}/entity">]><r>&x;</r>',
        f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{dtd_server}/param"> %p;]><r>&secret;</r>',
    ]
    for doc in docs:
        with pytest.raises(ParseError):
            parse_bytes(doc.encode())
        # the refusal does not depend on the pre-scan: a DOCTYPE after 4 KiB of comment is refused too
        with pytest.raises(ParseError):
            parse_bytes(b"<!--" + b"x" * 5000 + b"-->" + doc.encode())
    time.sleep(0.2)
    assert _Counter.hits == []


def test_xml_billion_laughs_is_refused_fast() -> None:
    started = time.monotonic()
    with pytest.raises(ParseError):
        parse_bytes(LAUGHS)
    assert time.monotonic() - started < 1


def test_xml_quadratic_blowup_is_refused_fast() -> None:
    big = "A" * 100_000
    doc = (f'<!DOCTYPE r [<!ENTITY big "{big}">]><r>' + "&big;" * 50_000 + "</r>").encode()
    started = time.monotonic()
    with pytest.raises(ParseError):
        parse_bytes(doc)
    assert time.monotonic() - started < 2


def test_xml_depth_limit() -> None:
    def nested(depth: int) -> bytes:
        return b"<a>" * depth + b"</a>" * depth

    assert parse_bytes(nested(100)).tag == "a"
    with pytest.raises(ParseError, match="deeper than 100"):
        parse_bytes(nested(101))
    with pytest.raises(ParseError):
        parse_bytes(nested(100_000))
    with pytest.raises(ParseError, match="deeper than 5"):
        safe_parser(max_depth=5).parse_bytes(nested(6))


def test_xml_element_count_and_size_limits() -> None:
    flood = b"<r>" + b"<e/>" * 2_000 + b"</r>"
    assert len(parse_bytes(flood)) == 2_000
    with pytest.raises(ParseError, match="more than 1000 elements"):
        safe_parser(max_elements=1000).parse_bytes(flood)
    with pytest.raises(ParseError, match="larger than 100 bytes"):
        safe_parser(max_bytes=100).parse_bytes(b"<r>" + b" " * 100 + b"</r>")


def test_xml_stream_is_not_read_beyond_the_limit() -> None:
    consumed = 0

    def endless() -> Iterator[bytes]:
        nonlocal consumed
        yield b"<r>"
        while True:
            consumed += 1
            yield b"<e>x</e>" * 1000

    with pytest.raises(ParseError, match="larger than"):
        safe_parser(max_bytes=1_000_000).parse_chunks(endless())
    assert consumed <= 126


def test_xml_xinclude_is_not_processed() -> None:
    root = parse_bytes(
        b'<r xmlns:xi="http://www.w3.org/2001/XInclude">'
        b'<xi:include href="file:///etc/passwd" parse="text"/></r>'
    )
    assert root[0].tag == "{http://www.w3.org/2001/XInclude}include" and root.text is None


def test_xml_check_tree_for_callers_with_their_own_parser() -> None:
    with pytest.raises(ParseError, match="DOCTYPE"):
        check_tree(etree.fromstring(b'<!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>', hardened_parser()))
    with pytest.raises(ParseError, match="deeper"):
        check_tree(etree.fromstring(b"<a>" * 150 + b"</a>" * 150, hardened_parser()))
    check_tree(etree.fromstring(b"<a><b/></a>", hardened_parser()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_xml_parser_never_raises_anything_but_parse_error_on_bytes(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_bytes(data)


_TOKENS = st.sampled_from(
    [
        "<a>",
        "</a>",
        "<b x='1'>",
        "</b>",
        "<c/>",
        "&amp;",
        "&x;",
        "&#0;",
        "&#x10FFFF;",
        "<!DOCTYPE a>",
        "<![CDATA[",
        "]]>",
        "<?pi x?>",
        "<!--",
        "-->",
        "text",
        "\u00e9",
        "\ufeff",
        "<?xml version='1.0'?>",
        "<ns:a xmlns:ns='urn:x'>",
        "</ns:a>",
        "<a xmlns='urn:y'>",
        "\x00",
        "]]",
        "<",
        ">",
        "'",
        '"',
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_TOKENS, max_size=40), st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_xml_parser_never_raises_anything_but_parse_error_on_xmlish_text(
    tokens: list[str], encoding: str
) -> None:
    data = "".join(tokens).encode(encoding, errors="replace")
    try:
        root = parse_bytes(data)
    except ParseError:
        return
    assert isinstance(root, etree._Element)
