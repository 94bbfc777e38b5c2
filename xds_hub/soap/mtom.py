"""MTOM/XOP over HTTP: a streaming multipart/related reader and an MTOM response writer.

References: RFC 2046 5.1 (multipart syntax), RFC 2387 (multipart/related: ``type``, ``start``,
``start-info``), RFC 2392 (``cid:`` URLs), W3C XOP 1.0 and SOAP 1.2 MTOM (the root part is
``application/xop+xml``, binary content travels in other parts referenced by ``xop:Include``),
ITI TF-2 Appendix V.3.6 (MTOM for ITI-41 / ITI-43 / RAD-69).

Reading never holds a document whole: the root part is kept in memory (bounded), every other part
is streamed chunk by chunk into a :class:`BlobWriter`.  Writers are finished only once the whole
message was read and every ``xop:Include`` resolved, so a fault (garbled boundary, truncated body,
missing part) leaves nothing stored; parts no ``xop:Include`` refers to are dropped.

Writing computes the exact Content-Length up front (the parts' sizes are known) and streams each
attachment from the blob store, so the HTTP response needs no chunked encoding.
"""

from __future__ import annotations

import binascii
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from lxml import etree

from xds_hub import ns
from xds_hub.errors import FaultCode, SoapFault
from xds_hub.log import get_logger
from xds_hub.soap import faults
from xds_hub.soap.types import Attachment, OutAttachment, SoapRequest
from xds_hub.storage.ports import BlobInfo, BlobStore, BlobWriter, BlobWriters

log = get_logger("xds_hub.soap.mtom")

#: Bytes asked of the input stream per read, and read from a blob per response chunk.
READ_CHUNK = 1024 * 1024
#: Largest header block of one MIME part.
MAX_PART_HEADER_BYTES = 16 * 1024
#: Largest number of MIME parts in one request.
MAX_PARTS = 10_000
#: Attachment writers kept open (uncommitted) at once; past this the oldest complete part is
#: committed early (it stays whole; if the message then fails it is left to the orphan sweep).
MAX_OPEN_WRITERS = 64
#: Longest run of transport padding (white space) allowed after a boundary (RFC 2046 5.1.1).
MAX_PADDING = 1024
#: Responses up to this size are sent in one write.
SMALL_RESPONSE = 256 * 1024

_XOP_INCLUDE = ns.qn(ns.XOP, "Include")
_IDENTITY_ENCODINGS = frozenset({"", "binary", "8bit", "7bit"})


class MultipartError(SoapFault):
    """The multipart/related body is malformed (a Sender fault)."""

    def __init__(self, reason: str, http_status: int | None = None) -> None:
        reason = f"malformed MTOM/multipart message: {reason}"
        super().__init__(FaultCode.SENDER, reason, http_status=http_status)


# ---------------------------------------------------------------------------------------------
# Header values
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MediaType:
    """A parsed Content-Type: lower-case ``type/subtype`` and parameters (lower-case names)."""

    mime: str
    params: Mapping[str, str]

    def get(self, name: str) -> str | None:
        return self.params.get(name)


_NAME_RUN = re.compile(r"[^=;]*")
_QUOTED_RUN = re.compile(r'[^"\\]*')


def parse_media_type(value: str) -> MediaType:
    """Parse a Content-Type header value (RFC 9110 8.3.1: quoted strings with backslash escapes)."""
    mime, _, rest = value.partition(";")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t;":
            i += 1
        end = _NAME_RUN.match(rest, i).end()  # type: ignore[union-attr]  # (always matches)
        name = rest[i:end].strip().lower()
        i = end
        if i >= n or rest[i] == ";":
            continue
        i += 1  # "="
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n:
                end = _QUOTED_RUN.match(rest, i).end()  # type: ignore[union-attr]
                chars.append(rest[i:end])
                i = end
                if i >= n or rest[i] == '"':
                    break
                chars.append(rest[i + 1] if i + 1 < n else rest[i])  # a backslash escapes the next one
                i += 2
            val = "".join(chars)
            semicolon = rest.find(";", i + 1)  # anything between the closing quote and ";" is dropped
        else:
            semicolon = rest.find(";", i)
            val = rest[i : n if semicolon < 0 else semicolon].strip()
        i = n if semicolon < 0 else semicolon
        if name:
            params.setdefault(name, val)
    return MediaType(mime.strip().lower(), params)


def normalize_content_id(value: str) -> str:
    """A Content-ID header value or ``cid:`` URL as the key of :attr:`SoapRequest.attachments`:
    without ``cid:`` and angle brackets, URL-unquoted (RFC 2392)."""
    value = value.strip()
    if value[:4].lower() == "cid:":
        value = value[4:]
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    return unquote(value.strip())


def xop_references(root: etree._Element) -> list[str]:
    """The content ids named by the ``xop:Include`` elements under ``root``, in document order."""
    refs = []
    for include in root.iter(_XOP_INCLUDE):
        href = (include.get("href") or "").strip()
        if href[:4].lower() != "cid:" or len(href) <= 4:
            raise faults.sender(f"xop:Include href {href!r} is not a cid: URL")
        refs.append(normalize_content_id(href))
    return refs


def attachment_for(request: SoapRequest, element: etree._Element) -> Attachment | None:
    """The attachment whose ``xop:Include`` is a child of ``element``; None if its content is inline."""
    include = element.find(_XOP_INCLUDE)
    if include is None:
        return None
    return request.attachments.get(normalize_content_id(include.get("href") or ""))


def xop_include(content_id: str) -> etree._Element:
    """An ``xop:Include`` element referring to the response part ``content_id`` (see OutAttachment)."""
    include = etree.Element(_XOP_INCLUDE, nsmap={"xop": ns.XOP})
    include.set("href", "cid:" + _quote_cid(content_id))
    return include


def _quote_cid(content_id: str) -> str:
    return quote(content_id, safe="@.-_~!$&'()*+,;=:/")


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


class _Input:
    """A byte buffer over ``read(n)``; :meth:`fill` appends the next chunk."""

    def __init__(self, read: Callable[[int], bytes], chunk: int) -> None:
        self._read = read
        self._chunk = chunk
        self.buf = b""
        self.eof = False

    def fill(self) -> bool:
        if self.eof:
            return False
        data = self._read(self._chunk)
        if not data:
            self.eof = True
            return False
        self.buf = self.buf + data if self.buf else bytes(data)
        return True


class _Base64Sink:
    """Streams base64 (Content-Transfer-Encoding: base64) into a writer, 4 characters at a time."""

    def __init__(self, writer: BlobWriter) -> None:
        self._writer = writer
        self._carry = b""

    def write(self, data: bytes) -> None:
        piece = self._carry + b"".join(data.split())
        cut = len(piece) - len(piece) % 4
        if cut:
            try:
                self._writer.write(binascii.a2b_base64(piece[:cut], strict_mode=True))
            except binascii.Error as exc:
                raise MultipartError(f"a base64 part is not valid base64: {exc}") from None
        self._carry = piece[cut:]

    def close(self) -> None:
        if self._carry:
            raise MultipartError("a base64 part ends in the middle of a quantum")


@dataclass(slots=True)
class _Pending:
    content_id: str
    content_type: str
    writer: BlobWriter
    info: BlobInfo | None = None


@dataclass(frozen=True, slots=True)
class MultipartMessage:
    """A multipart/related request, read: its root part's bytes and headers, and its attachments."""

    root: bytes
    root_headers: Mapping[str, str]
    attachments: Mapping[str, Attachment]


class _Parser:
    """One pass over a multipart/related body (RFC 2046 5.1.1), see :func:`read_multipart`."""

    def __init__(
        self,
        read: Callable[[int], bytes],
        boundary: str,
        start: str | None,
        blobs: BlobWriters,
        on_root: Callable[[bytes, Mapping[str, str]], etree._Element],
        max_root_bytes: int,
        chunk: int,
    ) -> None:
        self.input = _Input(read, chunk)
        self.dash = b"--" + boundary.encode("latin-1")
        self.delimiter = b"\n" + self.dash
        self.start = start
        self.blobs = blobs
        self.on_root = on_root
        self.max_root_bytes = max_root_bytes
        self.pending: dict[str, _Pending] = {}
        self.open_order: list[str] = []
        self.root: bytes | None = None
        self.root_headers: Mapping[str, str] = {}
        self.wanted: set[str] | None = None  # the xop:Include references, once the root is read
        self.parts = 0

    # -- delimiters ---------------------------------------------------------------------------

    def _need(self, size: int) -> bool:
        while len(self.input.buf) < size:
            if not self.input.fill():
                return False
        return True

    def _after_delimiter(self, pos: int) -> tuple[bool, int] | None:
        """At ``pos`` (just past ``--boundary``): (is_close, offset of what follows) when the bytes
        there complete a delimiter line, None when they do not (so it was content after all)."""
        i = pos
        while True:
            self._need(i + 2)
            buf = self.input.buf
            if i == pos and buf[i : i + 2] == b"--":
                return True, i + 2
            c = buf[i : i + 1]
            if c in (b" ", b"\t"):
                i += 1
                if i - pos > MAX_PADDING:
                    raise MultipartError("too much white space after a MIME boundary")
                continue
            if buf[i : i + 2] == b"\r\n":
                return False, i + 2
            if c == b"\n":
                return False, i + 1
            if not c or (c in (b"\r", b"-") and len(buf) == i + 1):
                return True, len(buf)  # the body ends right after a boundary: take it as the last one
            return None

    def skip_preamble(self) -> bool:
        """Consume up to and including the first delimiter line; True if it is a close delimiter."""
        search = 0
        while True:
            buf = self.input.buf
            i = buf.find(self.dash, search)
            if i < 0:
                keep = len(self.dash)
                if len(buf) > keep:
                    self.input.buf = buf[-keep:]
                search = 0
                if not self.input.fill():
                    raise MultipartError("no MIME boundary in the body (is the boundary parameter right?)")
                continue
            if i == 0 or buf[i - 1 : i] == b"\n":
                found = self._after_delimiter(i + len(self.dash))
                if found is not None:
                    self.input.buf = self.input.buf[found[1] :]
                    return found[0]
            search = i + 1

    # -- a part -------------------------------------------------------------------------------

    def read_headers(self) -> dict[str, str]:
        pos = 0  # start of the first line not yet known to be a header line
        end = -1
        while True:
            buf = self.input.buf
            while True:
                nl = buf.find(b"\n", pos)
                if nl < 0:
                    break
                if buf[pos:nl] in (b"", b"\r"):
                    end = nl + 1
                    break
                pos = nl + 1
            if end >= 0:
                break
            if len(buf) > MAX_PART_HEADER_BYTES:
                raise MultipartError("a MIME part's header block is too large")
            if not self.input.fill():
                raise MultipartError("the body ends inside a MIME part's headers")
        block, self.input.buf = self.input.buf[:end], self.input.buf[end:]
        if len(block) > MAX_PART_HEADER_BYTES:
            raise MultipartError("a MIME part's header block is too large")
        headers: dict[str, str] = {}
        last = ""
        for raw in block.decode("latin-1").splitlines():
            if not raw.strip():
                continue
            if raw[0] in " \t" and last:
                headers[last] += " " + raw.strip()
                continue
            name, sep, value = raw.partition(":")
            if not sep or not name.strip():
                raise MultipartError(f"bad MIME part header line {raw[:80]!r}")
            last = name.strip().lower()
            headers.setdefault(last, value.strip())
        return headers

    def stream_body(self, sink: Callable[[bytes], None]) -> bool:
        """Send the part body to ``sink`` up to the next delimiter; True if it was the close one."""
        self._need(len(self.dash))
        if self.input.buf.startswith(self.dash):
            found = self._after_delimiter(len(self.dash))  # an empty body right after the headers
            if found is not None:
                self.input.buf = self.input.buf[found[1] :]
                return found[0]
        search = 0
        keep = len(self.delimiter) + 1
        while True:
            buf = self.input.buf
            i = buf.find(self.delimiter, search)
            if i >= 0:
                found = self._after_delimiter(i + len(self.delimiter))
                buf = self.input.buf
                if found is None:
                    search = i + 1
                    continue
                end = i - 1 if i > 0 and buf[i - 1 : i] == b"\r" else i
                if end:
                    sink(buf[:end])
                self.input.buf = buf[found[1] :]
                return found[0]
            if len(buf) > keep:
                sink(buf[:-keep])
                self.input.buf = buf[-keep:]
            search = 0
            if not self.input.fill():
                raise MultipartError("the body ends before the closing MIME boundary (truncated request?)")

    def read_part(self) -> bool:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise MultipartError(f"more than {MAX_PARTS} MIME parts")
        headers = self.read_headers()
        content_id = normalize_content_id(headers.get("content-id", ""))
        is_root = (content_id == self.start) if self.start is not None else self.root is None
        if is_root:
            if self.root is not None:
                raise MultipartError(f"two MIME parts have the Content-ID <{content_id}>")
            return self._read_root(headers)
        encoding = headers.get("content-transfer-encoding", "").strip().lower()
        if encoding not in _IDENTITY_ENCODINGS and encoding != "base64":
            raise MultipartError(f"unsupported Content-Transfer-Encoding {encoding!r}")
        if content_id in self.pending:
            raise MultipartError(f"two MIME parts have the Content-ID <{content_id}>")
        if not content_id or (self.wanted is not None and content_id not in self.wanted):
            return self.stream_body(lambda _data: None)  # nothing refers to it: drop it
        writer = self.blobs.writer()
        pending = _Pending(content_id, headers.get("content-type", "application/octet-stream"), writer)
        self.pending[content_id] = pending
        if encoding == "base64":
            decoder = _Base64Sink(writer)
            close = self.stream_body(decoder.write)
            decoder.close()
        else:
            close = self.stream_body(writer.write)
        self.open_order.append(content_id)
        self._limit_open_writers()
        return close

    def _read_root(self, headers: Mapping[str, str]) -> bool:
        data = bytearray()

        def collect(chunk: bytes) -> None:
            if len(data) + len(chunk) > self.max_root_bytes:
                raise MultipartError(f"the root part is larger than {self.max_root_bytes} bytes", 413)
            data.extend(chunk)

        close = self.stream_body(collect)
        self.root = bytes(data)
        self.root_headers = headers
        scanned = self.on_root(self.root, headers)
        self.wanted = set(xop_references(scanned))
        for cid in [c for c in self.open_order if c not in self.wanted]:
            self._drop(cid)
        return close

    def _drop(self, content_id: str) -> None:
        pending = self.pending.pop(content_id)
        pending.writer.abort()
        self.open_order.remove(content_id)

    def _limit_open_writers(self) -> None:
        open_ids = [c for c in self.open_order if self.pending[c].info is None]
        for cid in open_ids[: max(0, len(open_ids) - MAX_OPEN_WRITERS)]:
            self.pending[cid].info = self.pending[cid].writer.finish()

    def abort(self) -> None:
        for pending in self.pending.values():
            try:
                pending.writer.abort()
            except Exception:  # aborting is best effort; the tmp sweep catches leftovers
                log.warning("could not abort an attachment writer", extra={"content_id": pending.content_id})

    def run(self) -> MultipartMessage:
        close = self.skip_preamble()
        while not close:
            close = self.read_part()
        if self.root is None:
            what = f"no part has the Content-ID of start=<{self.start}>" if self.start else "no MIME part"
            raise MultipartError(what)
        assert self.wanted is not None
        missing = sorted(self.wanted - set(self.pending))
        if missing:
            raise faults.sender(
                "xop:Include refers to MIME parts that are not in the message: "
                + ", ".join(f"cid:{m}" for m in missing)
            )
        attachments = {}
        for cid, pending in self.pending.items():
            info = pending.info or pending.writer.finish()
            pending.info = info
            attachments[cid] = Attachment(content_id=cid, content_type=pending.content_type, blob=info)
        return MultipartMessage(root=self.root, root_headers=self.root_headers, attachments=attachments)


def read_multipart(
    read: Callable[[int], bytes],
    media_type: MediaType,
    blobs: BlobWriters,
    on_root: Callable[[bytes, Mapping[str, str]], etree._Element],
    *,
    max_root_bytes: int,
    chunk: int = READ_CHUNK,
) -> MultipartMessage:
    """Read a multipart/related (MTOM/XOP or SwA) request body from ``read``.

    The root part is the one named by the ``start`` parameter, else the first part.  As soon as
    it is read, ``on_root(root_bytes, root_part_headers)`` parses it (raising SoapFault to stop
    early, e.g. for an unknown action) and returns the element whose ``xop:Include``s say which
    parts are needed.  Other parts are streamed into ``blobs`` writers; they are committed only
    when the whole body was read and every reference resolved.  Raises SoapFault (Sender) for a
    malformed body; no blob of this message is committed then.
    """
    boundary = media_type.get("boundary")
    if not boundary:
        raise MultipartError("the Content-Type has no boundary parameter")
    if len(boundary) > 200 or not boundary.isascii():
        raise MultipartError("the boundary parameter is not an RFC 2046 boundary")
    start = media_type.get("start")
    parser = _Parser(
        read,
        boundary,
        normalize_content_id(start) if start else None,
        blobs,
        on_root,
        max_root_bytes,
        chunk,
    )
    try:
        return parser.run()
    except BaseException:
        parser.abort()
        raise


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MtomBody:
    """An MTOM HTTP body: its Content-Type, exact Content-Length, and the bytes as an iterator."""

    content_type: str
    content_length: int
    chunks: Iterator[bytes]


def _blob_chunks(blobs: BlobStore, att: OutAttachment, chunk: int) -> Iterator[bytes]:
    if att.data is not None:
        yield att.data
        return
    assert att.key is not None
    remaining = att.size
    with blobs.open(att.key) as stream:
        while remaining > 0:
            data = stream.read(min(chunk, remaining))
            if not data:
                log.error(
                    "blob shorter than its recorded size; aborting the response",
                    extra={"blob": att.key, "size": att.size, "missing": remaining},
                )
                raise OSError(f"blob {att.key} is shorter than its recorded size {att.size}")
            remaining -= len(data)
            yield data


def mtom_body(
    root_xml: bytes,
    attachments: Sequence[OutAttachment],
    blobs: BlobStore,
    chunk: int = READ_CHUNK,
) -> MtomBody:
    """An MTOM message: the SOAP envelope ``root_xml`` as root part, then one part per attachment
    (streamed from ``blobs`` when it has a key).  Content-Length is exact and computed up front."""
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    root_cid = f"0.{uuid.uuid4().hex}@xds-hub"
    dash = b"--" + boundary.encode("ascii")
    root_head = (
        dash + b"\r\n"
        b'Content-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"\r\n'
        b"Content-Transfer-Encoding: binary\r\n"
        b"Content-ID: <" + root_cid.encode("ascii") + b">\r\n\r\n"
    )
    segments: list[tuple[bytes, OutAttachment | None]] = [(root_head + root_xml, None)]
    length = len(root_head) + len(root_xml)
    seen: set[str] = set()
    for att in attachments:
        if att.content_id in seen:
            raise ValueError(f"two response attachments have the Content-ID {att.content_id!r}")
        seen.add(att.content_id)
        if (att.key is None) == (att.data is None):
            raise ValueError(f"attachment {att.content_id!r} needs exactly one of key and data")
        size = len(att.data) if att.data is not None else att.size
        head = (
            b"\r\n" + dash + b"\r\n"
            b"Content-Type: " + _header_safe(att.content_type).encode("latin-1") + b"\r\n"
            b"Content-Transfer-Encoding: binary\r\n"
            b"Content-ID: <" + _header_safe(att.content_id).encode("latin-1") + b">\r\n\r\n"
        )
        segments.append((head, att))
        length += len(head) + size
    tail = b"\r\n" + dash + b"--\r\n"
    length += len(tail)
    content_type = (
        f'multipart/related; boundary={boundary}; type="application/xop+xml"; '
        f'start="<{root_cid}>"; start-info="application/soap+xml"'
    )

    def chunks() -> Iterator[bytes]:
        for head, att in segments:
            yield head
            if att is not None:
                try:
                    yield from _blob_chunks(blobs, att, chunk)
                except Exception as exc:  # headers are out: all that is left is to drop the connection
                    log.error(
                        "MTOM response aborted while streaming an attachment",
                        extra={"content_id": att.content_id, "blob": att.key, "error": type(exc).__name__},
                    )
                    raise
        yield tail

    if length <= SMALL_RESPONSE:  # one write; blobs read now, so a missing one is still a fault
        return MtomBody(content_type, length, iter([b"".join(chunks())]))
    return MtomBody(content_type, length, chunks())


#: Control characters (C0 and DEL), which would break a MIME header line.
_HEADER_UNSAFE = dict.fromkeys([*range(0x20), 0x7F])


def _header_safe(value: str) -> str:
    """``value`` without characters that would break a MIME header line."""
    return value.translate(_HEADER_UNSAFE)
