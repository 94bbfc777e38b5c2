"""The client's MTOM/XOP streaming: request bodies and the incremental response parser."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xds_hub.client.mtom import (
    MemorySink,
    MultipartBody,
    MultipartError,
    OutgoingPart,
    PartHeaders,
    PartSink,
    decode_base64_to_file,
    parse_stream,
)


def _chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos = [], 0
    for size in sizes:
        if pos >= len(data):
            break
        out.append(data[pos : pos + size])
        pos += size
    if pos < len(data):
        out.append(data[pos:])
    return out


def _roundtrip(
    body: MultipartBody, sizes: list[int], action: str = "urn:a"
) -> tuple[bytes, dict[str, bytes]]:
    wire = body.read()
    assert len(wire) == len(body)
    received: dict[str, MemorySink] = {}

    def open_part(part: PartHeaders) -> PartSink:
        received[part.content_id] = sink = MemorySink()
        return sink

    root, _, _ = parse_stream(_chunks(wire, sizes), body.content_type(action), open_part)
    return root, {k: bytes(v.buffer) for k, v in received.items()}


@settings(max_examples=150, deadline=None)
@given(
    root=st.binary(min_size=1, max_size=300),
    parts=st.lists(st.binary(max_size=2000), max_size=4),
    sizes=st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=60),
)
def test_client_mtom_body_roundtrips_through_the_streaming_parser(
    root: bytes, parts: list[bytes], sizes: list[int]
) -> None:
    outgoing = [OutgoingPart(f"p{i}@t", "application/octet-stream", data=p) for i, p in enumerate(parts)]
    got_root, got = _roundtrip(MultipartBody(root, outgoing), sizes)
    assert got_root == root
    assert got == {f"p{i}@t": p for i, p in enumerate(parts)}


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600), boundary=st.sampled_from(["b", "MIMEBoundary_x", "=_a'b"]))
def test_client_mtom_parser_raises_only_multipart_error(data: bytes, boundary: str) -> None:
    header = f'multipart/related; boundary="{boundary}"; type="application/xop+xml"'
    with contextlib.suppress(MultipartError):
        parse_stream([data], header, lambda _p: MemorySink())


def test_client_mtom_streams_files_and_reports_progress(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 20_000)  # 5 MB
    seen: list[int] = []
    body = MultipartBody(
        b"<root/>", [OutgoingPart("big@t", "application/pdf", path=big)], on_progress=seen.append
    )
    pieces = []
    while block := body.read(16384):
        pieces.append(block)
    wire = b"".join(pieces)
    assert len(wire) == len(body)
    assert sum(seen) == big.stat().st_size
    received: dict[str, MemorySink] = {}

    def open_part(part: PartHeaders) -> PartSink:
        received[part.content_id] = sink = MemorySink()
        assert part.content_type == "application/pdf"
        return sink

    parse_stream(_chunks(wire, [65536] * 200), body.content_type("urn:x"), open_part)
    assert bytes(received["big@t"].buffer) == big.read_bytes()


def test_client_mtom_parser_accepts_bare_lf_and_trailing_blanks() -> None:
    """Axis2 captures (NIST toolkit) use LF line ends and blanks after header values."""
    wire = (
        b"--MIMEBoundaryX \n"
        b'Content-Type: application/xop+xml; type="application/soap+xml" \n'
        b"Content-ID: <0.root@apache.org> \n\n"
        b"<Envelope/>\n"
        b"--MIMEBoundaryX \n"
        b"Content-Type: text/plain \n"
        b"Content-ID: <1.doc@apache.org> \n\n"
        b"line one\nline two\n"
        b"--MIMEBoundaryX--\n"
    )
    received: dict[str, MemorySink] = {}

    def open_part(part: PartHeaders) -> PartSink:
        received[part.content_id] = sink = MemorySink()
        return sink

    root, root_headers, others = parse_stream(
        [wire], 'multipart/related; boundary=MIMEBoundaryX; start="<0.root@apache.org>"', open_part
    )
    assert root == b"<Envelope/>"
    assert root_headers.content_id == "0.root@apache.org"
    assert [p.content_id for p in others] == ["1.doc@apache.org"]
    assert bytes(received["1.doc@apache.org"].buffer) == b"line one\nline two"


def test_client_mtom_parser_rejects_truncated_body() -> None:
    wire = b"--b\r\nContent-ID: <r>\r\n\r\n<x/>\r\n--b\r\nContent-ID: <a>\r\n\r\nhalf"
    with pytest.raises(MultipartError):
        parse_stream([wire], "multipart/related; boundary=b", lambda _p: MemorySink())


def test_client_decodes_inline_documents_in_chunks(tmp_path: Path) -> None:
    import base64
    import hashlib

    payload = bytes(range(256)) * 1000
    size, sha1 = decode_base64_to_file(base64.encodebytes(payload).decode(), tmp_path / "d", chunk=1000)
    assert (size, sha1) == (len(payload), hashlib.sha1(payload).hexdigest())
    assert (tmp_path / "d").read_bytes() == payload
