"""MTOM/XOP (W3C SOAP MTOM, XOP 1.0) for the client: a streamed multipart/related request body and
an incremental multipart/related response parser, so documents never sit whole in memory.

Written for interoperability rather than strictness: the parser accepts CRLF or bare LF line
ends, trailing blanks after boundaries and header lines, and a missing ``start`` parameter (the
first part is then the root), as real XDS.b peers produce them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import BinaryIO, Protocol

CRLF = b"\r\n"
#: Bytes read from a file per step while streaming a part out.
READ_CHUNK = 1024 * 1024


class MultipartError(ValueError):
    """The multipart/related body cannot be read."""


def content_type_params(header: str) -> tuple[str, dict[str, str]]:
    """(media type lower-cased, parameters) of a Content-Type header value."""
    msg = Message()
    msg["content-type"] = header
    params = {k.lower(): v for k, v in msg.get_params(failobj=[], header="content-type")[1:]}
    return msg.get_content_type(), {k: str(v) for k, v in params.items()}


def strip_cid(value: str) -> str:
    """A Content-ID header value or cid: URL without angle brackets / scheme."""
    from urllib.parse import unquote

    value = value.strip()
    if value.lower().startswith("cid:"):
        value = unquote(value[4:])
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    return value.strip()


# ---------------------------------------------------------------------------------------------
# Outgoing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutgoingPart:
    """A MIME part to send: from memory (``data``) or streamed from a file (``path``)."""

    content_id: str
    content_type: str
    data: bytes | None = None
    path: Path | None = None

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        if self.path is None:
            raise ValueError("an OutgoingPart needs data or a path")
        return self.path.stat().st_size

    def chunks(self) -> Iterator[bytes]:
        if self.data is not None:
            yield self.data
            return
        assert self.path is not None
        with self.path.open("rb") as f:
            while block := f.read(READ_CHUNK):
                yield block


class MultipartBody:
    """A multipart/related (XOP package) request body with a known length, read on demand.

    Pass it as ``data=`` to requests: ``__len__`` gives Content-Length and ``read`` streams the
    parts (files are read a chunk at a time).  ``on_progress(n)`` is called with each byte count
    of an attachment as it is read.
    """

    def __init__(
        self,
        root: bytes,
        parts: Sequence[OutgoingPart],
        *,
        root_type: str = 'application/xop+xml; charset=UTF-8; type="application/soap+xml"',
        boundary: str | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.boundary = boundary or f"MIMEBoundary_{uuid.uuid4().hex}"
        self.root_id = f"root.{uuid.uuid4().hex}@xds-hub"
        self._segments: list[tuple[bytes, OutgoingPart | None]] = []
        delim = b"--" + self.boundary.encode("ascii")
        head = self._headers(root_type, self.root_id)
        self._segments.append((delim + CRLF + head + root, None))
        for part in parts:
            head = self._headers(part.content_type, part.content_id)
            self._segments.append((CRLF + delim + CRLF + head, part))
        self._segments.append((CRLF + delim + b"--" + CRLF, None))
        self._length = sum(len(prefix) + (p.size if p else 0) for prefix, p in self._segments)
        self._on_progress = on_progress
        self._iter = self._generate()
        self._current = memoryview(b"")
        self._pos = 0

    @staticmethod
    def _headers(content_type: str, content_id: str) -> bytes:
        lines = [
            f"Content-Type: {content_type}",
            "Content-Transfer-Encoding: binary",
            f"Content-ID: <{content_id}>",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")

    def content_type(self, action: str) -> str:
        """The Content-Type header of the request (SOAP 1.2 action parameter included)."""
        return (
            f'multipart/related; boundary="{self.boundary}"; type="application/xop+xml"; '
            f'start="<{self.root_id}>"; start-info="application/soap+xml"; action="{action}"'
        )

    def _generate(self) -> Iterator[bytes]:
        for prefix, part in self._segments:
            yield prefix
            if part is not None:
                for block in part.chunks():
                    if self._on_progress is not None:
                        self._on_progress(len(block))
                    yield block

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that remain when ``size`` < 0); b"" at the end."""
        out = bytearray()
        while size < 0 or len(out) < size:
            if self._pos >= len(self._current):
                nxt = next(self._iter, None)
                if nxt is None:
                    break
                self._current, self._pos = memoryview(nxt), 0
            take = len(self._current) - self._pos
            if size >= 0:
                take = min(take, size - len(out))
            out += self._current[self._pos : self._pos + take]
            self._pos += take
        return bytes(out)


# ---------------------------------------------------------------------------------------------
# Incoming
# ---------------------------------------------------------------------------------------------


class PartSink(Protocol):
    """Receives the body of one part."""

    def write(self, data: bytes) -> object: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class PartHeaders:
    content_id: str
    content_type: str
    headers: Mapping[str, str]


_PREAMBLE, _DELIMITER, _HEADERS, _BODY, _DONE = range(5)


class MultipartParser:
    """Incremental multipart/related parser: ``feed`` bytes as they arrive, then ``close``.

    ``open_part(headers)`` is called at the start of each part and returns the sink for its body.
    """

    def __init__(self, boundary: str, open_part: Callable[[PartHeaders], PartSink]) -> None:
        if not boundary:
            raise MultipartError("multipart/related without a boundary")
        self._delim = b"\n--" + boundary.encode("latin-1")
        self._open_part = open_part
        self._buf = b"\n"  # lets the very first delimiter match without a preceding line end
        self._state = _PREAMBLE
        self._sink: PartSink | None = None
        self.parts: list[PartHeaders] = []

    def feed(self, data: bytes) -> None:
        self._buf += data
        while self._step():
            pass

    def _step(self) -> bool:
        if self._state == _PREAMBLE:
            idx = self._buf.find(self._delim)
            if idx < 0:
                self._buf = self._buf[-len(self._delim) :]
                return False
            self._buf = self._buf[idx + len(self._delim) :]
            self._state = _DELIMITER
            return True
        if self._state == _DELIMITER:
            # The rest of a delimiter line: "--" closes the body, else blanks up to the line end.
            if self._buf.startswith(b"--"):
                self._state, self._buf = _DONE, b""
                return False
            line_end = self._buf.find(b"\n")
            if line_end < 0:
                if len(self._buf) > 1024:
                    raise MultipartError("a boundary line is followed by text")
                return False
            self._buf = self._buf[line_end + 1 :]
            self._state = _HEADERS
            return True
        if self._state == _HEADERS:
            ends = [
                (i, n) for i, n in ((self._buf.find(b"\r\n\r\n"), 4), (self._buf.find(b"\n\n"), 2)) if i >= 0
            ]
            if not ends:
                if len(self._buf) > 64 * 1024:
                    raise MultipartError("MIME part headers are too long")
                return False
            idx, n = min(ends)
            self._start_part(self._buf[:idx])
            self._buf = self._buf[idx + n :]
            self._state = _BODY
            return True
        if self._state == _BODY:
            assert self._sink is not None
            idx = self._buf.find(self._delim)
            if idx < 0:
                keep = len(self._delim) + 1
                if len(self._buf) > keep:
                    self._sink.write(self._buf[:-keep])
                    self._buf = self._buf[-keep:]
                return False
            data = self._buf[:idx]
            if data.endswith(b"\r"):
                data = data[:-1]
            if data:
                self._sink.write(data)
            self._sink.close()
            self._sink = None
            self._buf = self._buf[idx + len(self._delim) :]
            self._state = _DELIMITER
            return True
        return False

    def _start_part(self, raw: bytes) -> None:
        headers: dict[str, str] = {}
        for line in raw.decode("latin-1").splitlines():
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        part = PartHeaders(
            content_id=strip_cid(headers.get("content-id", "")),
            content_type=headers.get("content-type", "application/octet-stream"),
            headers=headers,
        )
        self.parts.append(part)
        self._sink = self._open_part(part)

    def close(self) -> None:
        if self._state == _BODY and self._sink is not None:
            self._sink.close()
        if self._state != _DONE:
            raise MultipartError("the multipart/related body ended before its closing boundary")


class MemorySink:
    """Collects a part in memory (the root part), refusing more than ``limit`` bytes."""

    def __init__(self, limit: int = 512 * 1024 * 1024) -> None:
        self.buffer = bytearray()
        self.limit = limit

    def write(self, data: bytes) -> int:
        if len(self.buffer) + len(data) > self.limit:
            raise MultipartError("the SOAP part of the response is too large")
        self.buffer += data
        return len(data)

    def close(self) -> None:
        pass


class DiscardSink:
    def write(self, data: bytes) -> int:
        return len(data)

    def close(self) -> None:
        pass


def parse_stream(
    chunks: Iterable[bytes],
    content_type: str,
    open_attachment: Callable[[PartHeaders], PartSink],
) -> tuple[bytes, PartHeaders, list[PartHeaders]]:
    """Read a multipart/related stream: (root part bytes, root headers, attachment headers).

    The root is the part named by the ``start`` parameter, else the first part; every other part
    goes to ``open_attachment``.
    """
    _, params = content_type_params(content_type)
    start = strip_cid(params.get("start", ""))
    root = MemorySink()
    root_headers: list[PartHeaders] = []
    others: list[PartHeaders] = []

    def open_part(part: PartHeaders) -> PartSink:
        is_root = (part.content_id == start) if start else not root_headers
        if is_root and not root_headers:
            root_headers.append(part)
            return root
        others.append(part)
        return open_attachment(part)

    parser = MultipartParser(params.get("boundary", ""), open_part)
    for chunk in chunks:
        parser.feed(chunk)
    parser.close()
    if not root_headers:
        raise MultipartError(f"the multipart/related body has no root part (start={start!r})")
    return bytes(root.buffer), root_headers[0], others


class FileSink:
    """Writes a part to a file."""

    def __init__(self, path: Path, on_progress: Callable[[int], None] | None = None) -> None:
        self.path = path
        self._file: BinaryIO | None = path.open("wb")
        self.size = 0
        self._on_progress = on_progress

    def write(self, data: bytes) -> int:
        assert self._file is not None
        self._file.write(data)
        self.size += len(data)
        if self._on_progress is not None:
            self._on_progress(len(data))
        return len(data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def decode_base64_to_file(text: str, path: Path, chunk: int = 4 * 1024 * 1024) -> tuple[int, str]:
    """Decode base64 ``text`` (whitespace allowed) into ``path`` chunk by chunk: (size, SHA-1)."""
    import binascii
    import hashlib

    digest = hashlib.sha1()
    size = 0
    carry = ""
    with path.open("wb") as out:
        for start in range(0, len(text), chunk):
            piece = carry + "".join(text[start : start + chunk].split())
            cut = len(piece) - len(piece) % 4
            try:
                data = binascii.a2b_base64(piece[:cut], strict_mode=True)
            except (binascii.Error, ValueError) as exc:
                raise MultipartError(f"inline document is not valid base64: {exc}") from None
            out.write(data)
            digest.update(data)
            size += len(data)
            carry = piece[cut:]
    if carry:
        raise MultipartError("inline document is not valid base64: length is not a multiple of 4")
    return size, digest.hexdigest()
