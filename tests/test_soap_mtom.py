"""MTOM/XOP reading and writing of the SOAP edge (xds_hub.soap.mtom), without HTTP.

The streaming reader is fed the public wire captures (../shared/oracle/samples/wire), hand-made
variants (CRLF / LF, quoted boundaries, parts before the root, base64 parts, garbage) and a
200 MB attachment generated on the fly, whose memory use must stay flat.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.oracle import SAMPLES
from xds_hub import ns
from xds_hub.errors import FaultCode, SoapFault
from xds_hub.soap import mtom
from xds_hub.soap.types import OutAttachment
from xds_hub.storage.fs import FsBlobStore

WIRE = SAMPLES / "wire"
BOUNDARY = "MIMEBoundary_0123456789abcdef"
ROOT_CID = "0.root@test"


def soap_root(*cids: str) -> bytes:
    includes = "".join(
        f"<xdsb:Document id='D{i}'><xop:Include xmlns:xop='{ns.XOP}' href='cid:{c}'/></xdsb:Document>"
        for i, c in enumerate(cids)
    )
    return (
        f"<s:Envelope xmlns:s='{ns.SOAP12}'><s:Body><xdsb:ProvideAndRegisterDocumentSetRequest "
        f"xmlns:xdsb='{ns.XDSB}'>{includes}</xdsb:ProvideAndRegisterDocumentSetRequest></s:Body></s:Envelope>"
    ).encode()


def multipart(
    parts: list[tuple[dict[str, str], bytes]],
    boundary: str = BOUNDARY,
    eol: bytes = b"\r\n",
    preamble: bytes = b"",
) -> bytes:
    out = [preamble]
    dash = b"--" + boundary.encode()
    for headers, body in parts:
        out.append(dash + eol)
        out.extend(f"{k}: {v}".encode() + eol for k, v in headers.items())
        out.append(eol + body + eol)
    out.append(dash + b"--" + eol)
    return b"".join(out)


def root_part(data: bytes, cid: str = ROOT_CID) -> tuple[dict[str, str], bytes]:
    return (
        {
            "Content-Type": 'application/xop+xml; charset=UTF-8; type="application/soap+xml"',
            "Content-Transfer-Encoding": "binary",
            "Content-ID": f"<{cid}>",
        },
        data,
    )


def attachment_part(
    cid: str, data: bytes, ctype: str = "application/octet-stream", cte: str = "binary"
) -> tuple[dict[str, str], bytes]:
    return ({"Content-Type": ctype, "Content-Transfer-Encoding": cte, "Content-ID": f"<{cid}>"}, data)


def media(boundary: str = BOUNDARY, start: str | None = ROOT_CID, quoted: bool = True) -> mtom.MediaType:
    b = f'"{boundary}"' if quoted else boundary
    value = f'multipart/related; boundary={b}; type="application/xop+xml"; start-info="application/soap+xml"'
    if start is not None:
        value += f'; start="<{start}>"'
    return mtom.parse_media_type(value)


@pytest.fixture
def blobs(tmp_path: Path) -> FsBlobStore:
    return FsBlobStore(tmp_path / "blobs")


def stored_files(store: FsBlobStore) -> list[Path]:
    """Every file under the store, committed or in progress."""
    return [p for p in store.root.rglob("*") if p.is_file()]


def parse_root(data: bytes, _headers: Mapping[str, str]) -> etree._Element:
    return etree.fromstring(data)


def read(
    body: bytes, mt: mtom.MediaType, store: FsBlobStore, chunk: int = 64 * 1024
) -> mtom.MultipartMessage:
    return mtom.read_multipart(
        io.BytesIO(body).read, mt, store, parse_root, max_root_bytes=10**7, chunk=chunk
    )


def content(store: FsBlobStore, key: str) -> bytes:
    with store.open(key) as f:
        return f.read()


# ---------------------------------------------------------------------------------------------
# Header values
# ---------------------------------------------------------------------------------------------


def test_mtom_media_type_parameters() -> None:
    mt = mtom.parse_media_type(
        'Multipart/Related; boundary="a;b \\"c\\""; type="application/xop+xml"; start=<x@y>; '
        'start-info="application/soap+xml; action=\\"urn:a\\""'
    )
    assert mt.mime == "multipart/related"
    assert mt.get("boundary") == 'a;b "c"'
    assert mt.get("start") == "<x@y>"
    assert mtom.parse_media_type(mt.get("start-info") or "").get("action") == "urn:a"


def test_mtom_content_id_normalization() -> None:
    assert mtom.normalize_content_id(" <1.urn:uuid:ab@apache.org> ") == "1.urn:uuid:ab@apache.org"
    assert mtom.normalize_content_id("cid:doc%201@x") == "doc 1@x"
    assert mtom.normalize_content_id("CID:<a@b>") == "a@b"


@given(st.text(max_size=200))
def test_mtom_parse_media_type_never_raises(value: str) -> None:
    mtom.parse_media_type(value)


# ---------------------------------------------------------------------------------------------
# Wire captures
# ---------------------------------------------------------------------------------------------


def split_http(raw: bytes) -> tuple[dict[str, str], bytes]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, _, body = raw.partition(b"\n\n")
    headers = {}
    for line in head.decode("latin-1").splitlines()[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers, body


@pytest.mark.parametrize("chunk", [1, 13, 4096, 1 << 20])
def test_mtom_nist_capture_with_http_headers(blobs: FsBlobStore, chunk: int) -> None:
    path = WIRE / "http-mtom-pnr.txt"
    if not path.exists():
        pytest.skip("oracle samples not available")
    headers, body = split_http(path.read_bytes())
    roots: list[bytes] = []

    def on_root(data: bytes, part_headers: Mapping[str, str]) -> etree._Element:
        roots.append(data)
        assert "application/xop+xml" in part_headers["content-type"]
        return etree.fromstring(data)

    mt = mtom.parse_media_type(headers["content-type"])
    msg = mtom.read_multipart(io.BytesIO(body).read, mt, blobs, on_root, max_root_bytes=10**6, chunk=chunk)
    assert roots[0].startswith(b"<?xml") and roots[0].endswith(b"</soapenv:Envelope>")
    (att,) = msg.attachments.values()
    assert att.content_id == "1.urn:uuid:3D4B161591CD1DEC0C1286850962319@apache.org"
    assert att.content_type == "text/plain"
    data = content(blobs, att.blob.key)
    assert data.startswith(b"Four score and seven years ago")
    assert data.endswith(b"shall not perish from the earth.")
    assert att.blob.size == len(data) and att.blob.sha1 == hashlib.sha1(data).hexdigest()


def test_mtom_nist_capture_lf_only_missing_part_is_sender_fault(blobs: FsBlobStore) -> None:
    path = WIRE / "sample_mtom_message.txt"
    if not path.exists():
        pytest.skip("oracle samples not available")
    body = path.read_bytes()  # a body without HTTP headers, LF line ends; its xop:Include names no part
    mt = media("MIMEBoundary_494859fac46e21a68c012f8f4fe208a370fc32b6e07ae79f", start=None, quoted=False)
    with pytest.raises(SoapFault) as exc:
        read(body, mt, blobs)
    assert exc.value.code is FaultCode.SENDER
    assert "cid:1.694859fac46e21a68c012f8f4fe208a370fc32b6e07ae79f@apache.org" in exc.value.reason
    assert stored_files(blobs) == []


def test_mtom_nist_capture_lf_only_parts_are_read(blobs: FsBlobStore) -> None:
    path = WIRE / "sample_mtom_message.txt"
    if not path.exists():
        pytest.skip("oracle samples not available")
    body = path.read_bytes()
    mt = media("MIMEBoundary_494859fac46e21a68c012f8f4fe208a370fc32b6e07ae79f", start=None, quoted=False)
    seen: dict[str, bytes] = {}

    def on_root(data: bytes, _h: Mapping[str, str]) -> etree._Element:
        seen["root"] = data
        # refer to the part that is there, to read it
        return etree.fromstring(soap_root("2.694859fac46e21a68c012f8f4fe208a370fc32b6e07ae79f"))

    msg = mtom.read_multipart(io.BytesIO(body).read, mt, blobs, on_root, max_root_bytes=10**6, chunk=7)
    assert seen["root"].endswith(b"</soapenv:Envelope>")
    (att,) = msg.attachments.values()
    assert content(blobs, att.blob.key) == b"This is my document.\n\nIt is great!\n\n"


# ---------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"], ids=["crlf", "lf"])
@pytest.mark.parametrize("quoted", [True, False], ids=["quoted", "unquoted"])
@pytest.mark.parametrize("chunk", [1, 5, 1 << 16])
def test_mtom_variants_parse(blobs: FsBlobStore, eol: bytes, quoted: bool, chunk: int) -> None:
    doc = b"line1\r\nline2\n--not-the-boundary\r\n" + bytes(range(256))
    body = multipart(
        [root_part(soap_root("a@x")), attachment_part("a@x", doc)], eol=eol, preamble=b"ignored\r\n"
    )
    msg = read(body, media(quoted=quoted), blobs, chunk=chunk)
    assert content(blobs, msg.attachments["a@x"].blob.key) == doc


def test_mtom_parts_before_root_and_no_start(blobs: FsBlobStore) -> None:
    body = multipart(
        [attachment_part("a@x", b"AAA"), root_part(soap_root("a@x")), attachment_part("b@x", b"B")]
    )
    msg = read(body, media(start=ROOT_CID), blobs)
    assert set(msg.attachments) == {"a@x"}  # b@x is referred to by nothing: dropped
    # without start, the first part is the root
    body = multipart([root_part(soap_root("a@x")), attachment_part("a@x", b"AAA")])
    assert set(read(body, media(start=None), blobs).attachments) == {"a@x"}


def test_mtom_unreferenced_parts_leave_nothing_stored(blobs: FsBlobStore) -> None:
    body = multipart(
        [attachment_part("early@x", b"E" * 1000), root_part(soap_root()), attachment_part("late@x", b"L")]
    )
    msg = read(body, media(), blobs)
    assert msg.attachments == {}
    assert stored_files(blobs) == []


def test_mtom_url_encoded_cid(blobs: FsBlobStore) -> None:
    root = soap_root("doc%201%40x")
    body = multipart([root_part(root), attachment_part("doc 1@x", b"X")])
    assert set(read(body, media(), blobs).attachments) == {"doc 1@x"}


def test_mtom_base64_part(blobs: FsBlobStore) -> None:
    doc = bytes(range(256)) * 10
    encoded = base64.encodebytes(doc)  # with line breaks
    body = multipart([root_part(soap_root("a@x")), attachment_part("a@x", encoded, cte="base64")])
    assert content(blobs, read(body, media(), blobs, chunk=3).attachments["a@x"].blob.key) == doc


def test_mtom_empty_attachment(blobs: FsBlobStore) -> None:
    body = multipart([root_part(soap_root("a@x")), attachment_part("a@x", b"")])
    att = read(body, media(), blobs).attachments["a@x"]
    assert att.blob.size == 0


def test_mtom_header_folding_and_extra_headers(blobs: FsBlobStore) -> None:
    headers, data = attachment_part("a@x", b"X")
    headers["Content-Disposition"] = 'form-data; name="attachment1"'  # as urllib3-built bodies have
    headers["Content-Type"] = "text/plain;\r\n charset=utf-8"
    body = multipart([root_part(soap_root("a@x")), (headers, data)])
    att = read(body, media(), blobs).attachments["a@x"]
    assert att.content_type == "text/plain; charset=utf-8"


FAULTY: list[tuple[str, Callable[[], tuple[bytes, mtom.MediaType]]]] = [
    ("wrong boundary", lambda: (multipart([root_part(soap_root())]), media(boundary="other"))),
    (
        "no boundary parameter",
        lambda: (multipart([root_part(soap_root())]), mtom.parse_media_type("multipart/related")),
    ),
    (
        "truncated in a part",
        lambda: (multipart([root_part(soap_root("a@x")), attachment_part("a@x", b"X" * 500)])[:-60], media()),
    ),
    ("truncated in headers", lambda: (multipart([root_part(soap_root())])[:40], media())),
    ("no close delimiter", lambda: (multipart([root_part(soap_root())])[: -len(BOUNDARY) - 8], media())),
    (
        "missing referenced part",
        lambda: (multipart([root_part(soap_root("a@x", "b@x")), attachment_part("a@x", b"A")]), media()),
    ),
    ("start names no part", lambda: (multipart([root_part(soap_root(), cid="other@x")]), media())),
    ("empty body", lambda: (b"", media())),
    ("only a close delimiter", lambda: (f"--{BOUNDARY}--\r\n".encode(), media())),
    (
        "bad header line",
        lambda: (
            multipart([({"Content-ID": "<r>", "Bogus line": "x"}, b"")]).replace(
                b"Bogus line: x", b"Bogus line"
            ),
            media(start="r"),
        ),
    ),
    (
        "duplicate content id",
        lambda: (
            multipart(
                [root_part(soap_root("a@x")), attachment_part("a@x", b"1"), attachment_part("a@x", b"2")]
            ),
            media(),
        ),
    ),
    (
        "bad base64",
        lambda: (
            multipart([root_part(soap_root("a@x")), attachment_part("a@x", b"!!!!", cte="base64")]),
            media(),
        ),
    ),
    (
        "quoted-printable",
        lambda: (
            multipart([root_part(soap_root("a@x")), attachment_part("a@x", b"x", cte="quoted-printable")]),
            media(),
        ),
    ),
    (
        "xop href not cid",
        lambda: (
            multipart(
                [
                    root_part(
                        soap_root().replace(
                            b"</xdsb:Prov",
                            f"<xop:Include xmlns:xop='{ns.XOP}' href='http://x'/></xdsb:Prov".encode(),
                        )
                    )
                ]
            ),
            media(),
        ),
    ),
]


@pytest.mark.parametrize(("case", "make"), FAULTY, ids=[c[0] for c in FAULTY])
def test_mtom_malformed_is_sender_fault_and_stores_nothing(
    blobs: FsBlobStore, case: str, make: Callable[[], tuple[bytes, mtom.MediaType]]
) -> None:
    body, mt = make()
    with pytest.raises(SoapFault) as exc:
        read(body, mt, blobs, chunk=16)
    assert exc.value.code is FaultCode.SENDER
    assert stored_files(blobs) == []


def test_mtom_root_size_limit(blobs: FsBlobStore) -> None:
    body = multipart([root_part(soap_root() + b" " * 5000)])
    with pytest.raises(SoapFault) as exc:
        mtom.read_multipart(io.BytesIO(body).read, media(), blobs, parse_root, max_root_bytes=1000)
    assert exc.value.http_status == 413


def test_mtom_fault_from_on_root_aborts_earlier_parts(blobs: FsBlobStore) -> None:
    body = multipart([attachment_part("a@x", b"A" * 10000), root_part(soap_root("a@x"))])

    def reject(_data: bytes, _headers: Mapping[str, str]) -> etree._Element:
        raise SoapFault(FaultCode.SENDER, "unknown action")

    with pytest.raises(SoapFault, match="unknown action"):
        mtom.read_multipart(io.BytesIO(body).read, media(), blobs, reject, max_root_bytes=10**6, chunk=100)
    assert stored_files(blobs) == []


def test_mtom_many_parts_commit_early_but_all_resolve(
    blobs: FsBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mtom, "MAX_OPEN_WRITERS", 3)
    cids = [f"p{i}@x" for i in range(10)]
    body = multipart([root_part(soap_root(*cids)), *(attachment_part(c, c.encode() * 7) for c in cids)])
    msg = read(body, media(), blobs)
    assert {c: content(blobs, msg.attachments[c].blob.key) for c in cids} == {c: c.encode() * 7 for c in cids}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.binary(max_size=300),
    st.sampled_from([1, 2, 7, 64]),
    st.sampled_from(["b", "MIMEBoundary_0123456789abcdef", "--", "é€", " ", "x" * 300]),
)
def test_mtom_reader_returns_or_faults_on_any_bytes(
    blobs: FsBlobStore, data: bytes, chunk: int, boundary: str
) -> None:
    def on_root(root: bytes, _h: Mapping[str, str]) -> etree._Element:
        return etree.Element("root")

    with contextlib.suppress(SoapFault):
        mtom.read_multipart(
            io.BytesIO(data).read,
            media(boundary=boundary, start=None),
            blobs,
            on_root,
            max_root_bytes=1000,
            chunk=chunk,
        )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.binary(max_size=200), min_size=1, max_size=4),
    st.sampled_from([b"\r\n", b"\n"]),
    st.integers(min_value=1, max_value=50),
)
def test_mtom_round_trip_of_arbitrary_parts(
    blobs: FsBlobStore, docs: list[bytes], eol: bytes, chunk: int
) -> None:
    cids = [f"d{i}@x" for i in range(len(docs))]
    body = multipart(
        [root_part(soap_root(*cids)), *(attachment_part(c, d) for c, d in zip(cids, docs, strict=True))],
        eol=eol,
    )
    if any(f"\n--{BOUNDARY}".encode() in d for d in docs):
        return
    if eol == b"\n" and any(d.endswith(b"\r") for d in docs):
        return  # with bare-LF framing a final CR reads as the CR of a CRLF delimiter
    msg = read(body, media(), blobs, chunk=chunk)
    assert [content(blobs, msg.attachments[c].blob.key) for c in cids] == docs


# ---------------------------------------------------------------------------------------------
# A large attachment: streamed with flat memory
# ---------------------------------------------------------------------------------------------


class GeneratedBody(io.RawIOBase):
    """A multipart body with one ``size``-byte attachment, produced on the fly (never whole)."""

    def __init__(self, size: int, root: bytes | None = None) -> None:
        root = soap_root("big@x") if root is None else root
        self.head = multipart([root_part(root)])[: -len(f"--{BOUNDARY}--\r\n")] + (
            f"--{BOUNDARY}\r\nContent-Type: application/octet-stream\r\nContent-ID: <big@x>\r\n\r\n".encode()
        )
        self.tail = f"\r\n--{BOUNDARY}--\r\n".encode()
        self.size = size
        self.block = hashlib.sha256(b"seed").digest() * 2048  # 64 KiB of noise
        self.sha1 = hashlib.sha1()
        self._pieces = self._generate()
        self._pending = b""

    def _generate(self) -> Iterator[bytes]:
        yield self.head
        left = self.size
        while left:
            piece = self.block[: min(left, len(self.block))]
            self.sha1.update(piece)
            left -= len(piece)
            yield piece
        yield self.tail

    def readable(self) -> bool:
        return True

    # werkzeug's test client measures the stream with tell/seek before reading it
    _virtual = 0

    def tell(self) -> int:
        return self._virtual

    def seek(self, offset: int, whence: int = 0) -> int:
        self._virtual = self.length if whence == 2 else offset
        return self._virtual

    @property
    def length(self) -> int:
        return len(self.head) + self.size + len(self.tail)

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = 1 << 62
        while len(self._pending) < n:
            try:
                self._pending += next(self._pieces)
            except StopIteration:
                break
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@pytest.mark.slow
def test_mtom_200mb_attachment_streams_with_flat_memory(blobs: FsBlobStore) -> None:
    size = 200 * 1024 * 1024
    body = GeneratedBody(size)
    tracemalloc.start()
    try:
        msg = mtom.read_multipart(body.read, media(), blobs, parse_root, max_root_bytes=10**6)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    att = msg.attachments["big@x"]
    assert att.blob.size == size
    assert att.blob.sha1 == body.sha1.hexdigest()
    print(f"tracemalloc peak {peak} bytes")
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes while streaming a {size}-byte part"


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def test_mtom_response_content_length_is_exact_and_parses_back(blobs: FsBlobStore) -> None:
    writer = blobs.writer()
    doc = bytes(range(256)) * 5000  # 1.28 MB, read in several chunks
    writer.write(doc)
    info = writer.finish()
    root = soap_root("from-blob@hub", "inline@hub")
    out = mtom.mtom_body(
        root,
        [
            OutAttachment("from-blob@hub", "application/dicom", info.size, key=info.key),
            OutAttachment("inline@hub", "text/plain", 5, data=b"hello"),
        ],
        blobs,
        chunk=100_000,
    )
    data = b"".join(out.chunks)
    assert len(data) == out.content_length
    mt = mtom.parse_media_type(out.content_type)
    assert mt.mime == "multipart/related"
    assert mt.get("type") == "application/xop+xml" and mt.get("start-info") == "application/soap+xml"
    back = mtom.read_multipart(
        io.BytesIO(data).read, mt, FsBlobStore(blobs.root / "back"), parse_root, max_root_bytes=10**6
    )
    assert back.root == root
    assert back.attachments["from-blob@hub"].blob.sha1 == info.sha1
    assert back.attachments["inline@hub"].content_type == "text/plain"
    # and an independent MIME parser agrees
    from requests_toolbelt.multipart.decoder import MultipartDecoder

    parts = MultipartDecoder(data, out.content_type).parts
    assert [p.headers[b"Content-ID"] for p in parts][1:] == [b"<from-blob@hub>", b"<inline@hub>"]
    assert parts[1].content == doc and parts[2].content == b"hello"


def test_mtom_response_with_only_a_root_is_one_part(blobs: FsBlobStore) -> None:
    out = mtom.mtom_body(b"<e/>", [], blobs)
    chunks = list(out.chunks)
    assert len(chunks) == 1 and len(chunks[0]) == out.content_length
    assert chunks[0].count(b"Content-ID:") == 1


def test_mtom_response_fails_loudly_when_a_blob_is_short(blobs: FsBlobStore) -> None:
    writer = blobs.writer()
    writer.write(b"12345")
    info = writer.finish()
    with pytest.raises(OSError):  # a small response is read up front: the view can still fault
        mtom.mtom_body(b"<e/>", [OutAttachment("a@x", "text/plain", 10, key=info.key)], blobs)
    big = mtom.mtom_body(b"<e/>", [OutAttachment("a@x", "text/plain", 10**6, key=info.key)], blobs)
    with pytest.raises(OSError):  # a large one is streamed: the connection is aborted
        b"".join(big.chunks)


def test_mtom_xop_include_helpers() -> None:
    include = mtom.xop_include("doc 1@hub")
    assert include.get("href") == "cid:doc%201@hub"
    parent = etree.Element("{urn:x}Document")
    parent.append(include)
    assert mtom.xop_references(parent) == ["doc 1@hub"]
