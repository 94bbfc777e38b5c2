"""The gunicorn worker of the hub: gunicorn's gthread worker, minus its HTML error pages, plus
time limits on slow clients.

gunicorn answers an HTTP request it cannot parse (bad request line, bad chunking, oversized
headers ...) itself, before the application sees it, with a small HTML page.  The hub promises
never to answer with HTML, so this worker replaces that writer with one that answers the same
status with a SOAP 1.2 Fault (the hub is a SOAP server first; JSON clients read the status).

Slow clients (slowloris, slow POST): a gthread worker serves a request in one of its few threads
(``threads`` per worker) reading a blocking socket with no time limit, so a handful of connections
sending a partial request line, headers or body and then nothing held every thread and stopped the
HTTP listener.  This worker therefore

- collects a request's line, headers and (up to :data:`SMALL_BODY` bytes) body without holding a
  thread: :meth:`HubWorker.handle` reads what has arrived without blocking and, while the request
  is incomplete, hands the connection back to gunicorn's poller (woken by the next bytes); a
  request not complete :data:`HEAD_TIMEOUT` seconds after its first byte is dropped, so is a
  connection that stays silent for gunicorn's keep-alive time;
- has a watchdog thread shut down the connection of a client whose request body arrives slower
  than :data:`MIN_BODY_RATE` bytes per second of waiting (after :data:`BODY_GRACE` seconds), or
  keeps one read waiting :data:`IDLE_TIMEOUT` seconds; the reading thread then sees the end of the
  stream (a body cut short is a Sender fault; the MTOM reader keeps nothing of it);
- waits :data:`FIRST_BYTE_WAIT` (gunicorn: 5 s) for the first byte of a new connection before
  leaving it to the poller, so a flood of idle connections cannot queue ahead of real requests.

(TLS: the handshake still runs in a worker thread, bounded by the handshake timeout of
:mod:`xds_hub.security.tls`.)

A client that reads its response too slowly is not limited here (a reverse proxy with response
buffering is the remedy if that matters).
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import socket
import ssl
import threading
import time
from typing import Any

from gunicorn import util
from gunicorn.workers import gthread
from gunicorn.workers.gthread import ThreadWorker

from xds_hub.errors import FaultCode, SoapFault
from xds_hub.soap.envelope import render_fault

#: Seconds a client may take for a request line and headers (and a small body), from the first byte.
HEAD_TIMEOUT = 10.0
#: Past this many bytes without the end of the headers, gunicorn's parser takes over (and refuses
#: the request with its header limits).
MAX_HEAD_BYTES = 64 * 1024
#: A body of known length up to this size is collected with the head, before a thread serves it.
SMALL_BODY = 256 * 1024
#: Slowest (larger) request body accepted, in bytes per second spent waiting for it ...
MIN_BODY_RATE = 500.0
#: ... once a request has waited this long for its body (seconds).
BODY_GRACE = 5.0
#: Seconds one read of the request body may wait for its next byte.
IDLE_TIMEOUT = 10.0
#: Seconds a worker thread waits for the first byte of a new connection before leaving it to the
#: poller (gunicorn's own value is 5 s).
FIRST_BYTE_WAIT = 0.02
#: How often the watchdog looks (seconds).
WATCH_INTERVAL = 0.5

_DEFER: Any = getattr(gthread, "_DEFER", None)  # gunicorn's "back to the poller" result
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def write_fault(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    code = FaultCode.SENDER if status_int < 500 else FaultCode.RECEIVER
    body = render_fault(SoapFault(code, f"{reason}: {mesg}" if mesg else reason, http_status=status_int))
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/soap+xml; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


_CONTENT_LENGTH = re.compile(rb"\ncontent-length:[ \t]*([0-9]{1,15})[ \t]*\r?(?=\n|$)")


def _request_ready(data: bytes) -> bool:
    """Whether ``data`` holds a whole request head, and its body too when that is small and of
    known length (no Transfer-Encoding, no ``Expect: 100-continue`` that waits for us)."""
    end, gap = data.find(b"\r\n\r\n"), 4
    if end < 0:
        end, gap = data.find(b"\n\n"), 2
    if end < 0:
        return len(data) >= MAX_HEAD_BYTES
    head = data[:end].lower()
    if b"\nexpect:" in head or b"\ntransfer-encoding:" in head:
        return True
    match = _CONTENT_LENGTH.search(head)
    if match is None or int(match.group(1)) > SMALL_BODY:
        return True
    return len(data) - (end + gap) >= int(match.group(1))


def _hang_up(sock: Any) -> None:
    """End both directions of ``sock`` now (a blocked read returns end of stream; TLS too)."""
    with contextlib.suppress(OSError, ValueError, TypeError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watched:
    """What the watchdog knows about one connection a worker thread is serving."""

    __slots__ = ("body_bytes", "conn", "reading_since", "waited")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        #: When the thread started waiting in a read of the request body (None: not reading).
        self.reading_since: float | None = None
        #: Seconds spent waiting in finished body reads, and the bytes they returned.
        self.waited = 0.0
        self.body_bytes = 0

    def overdue(self, now: float) -> str | None:
        """Why the client should be cut off now (only while the thread waits for its body)."""
        since = self.reading_since
        if since is None:
            return None
        if now - since > IDLE_TIMEOUT:
            return "request body stalled"
        waited = self.waited + (now - since)
        if waited > BODY_GRACE and self.body_bytes < MIN_BODY_RATE * waited:
            return "request body too slow"
        return None


class HubWorker(ThreadWorker):  # type: ignore[misc]
    def init_process(self) -> Any:
        util.write_error = write_fault
        self._watched: dict[int, _Watched] = {}
        self._watch_lock = threading.Lock()
        threading.Thread(target=self._watchdog, name="xds-hub-slow-clients", daemon=True).start()
        return super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        # The app, its imports and caches stay for the worker's life: the cyclic garbage collector
        # need not scan them again (a full collection over them took 50-70 ms, a latency spike of
        # whichever request triggered it; with them frozen it scans what requests left alive).
        gc.freeze()

    # -- the request head, read without holding a thread ------------------------------------------

    def handle(self, conn: Any) -> Any:
        if _DEFER is not None:
            try:
                ready = self._head_ready(conn)
            except (OSError, ValueError) as exc:  # a failed TLS handshake, a reset ...
                self.log.debug("connection dropped before its request head: %s", exc)
                _hang_up(conn.sock)
                return False
            if ready is not True:
                return ready
        return super().handle(conn)

    def _head_ready(self, conn: Any) -> Any:
        """True when the request is buffered (see _request_ready), else _DEFER (back to the poller)
        or False (close)."""
        if not conn.initialized:
            if not conn.data_ready and not conn.wait_for_data(FIRST_BYTE_WAIT):
                return _DEFER
            conn.init()  # TLS handshake (with its own timeout) and the HTTP parser
        unreader = getattr(conn.parser, "unreader", None)
        buffer = getattr(unreader, "buf", None)
        if conn.is_http2 or buffer is None:
            return True
        if _request_ready(buffer.getvalue()):
            conn.hub_head_since = None
            return True
        sock = conn.sock
        sock.setblocking(False)
        try:
            while True:
                try:
                    data = sock.recv(65536)
                except _WOULD_BLOCK:
                    break
                if not data:  # the client hung up (or half-closed): answer what has a whole head
                    whole = buffer.getvalue()
                    return b"\r\n\r\n" in whole or b"\n\n" in whole
                buffer.seek(0, os.SEEK_END)
                buffer.write(data)
                if _request_ready(buffer.getvalue()):
                    conn.hub_head_since = None
                    return True
        finally:
            sock.setblocking(True)
        now = time.monotonic()
        since = getattr(conn, "hub_head_since", None)
        if since is None:
            conn.hub_head_since = since = now
        if now - since > HEAD_TIMEOUT or not self.alive:
            self.log.info("closing a connection whose request is too slow: %s", conn.client)
            _hang_up(sock)
            return False
        return _DEFER

    # -- the request body, watched -------------------------------------------------------------

    def handle_request(self, req: Any, conn: Any) -> Any:
        watched = _Watched(conn)
        self._time_body_reads(conn, watched)
        with self._watch_lock:
            self._watched[id(conn)] = watched
        try:
            return super().handle_request(req, conn)
        finally:
            with self._watch_lock:
                self._watched.pop(id(conn), None)

    @staticmethod
    def _time_body_reads(conn: Any, watched: _Watched) -> None:
        """Time each read of the request body (gunicorn's SocketUnreader.chunk)."""
        unreader = getattr(getattr(conn, "parser", None), "unreader", None)
        read = getattr(unreader, "chunk", None)
        if unreader is None or read is None:
            return
        original = getattr(read, "hub_original", read)

        def chunk(*args: Any, **kwargs: Any) -> Any:
            began = watched.reading_since = time.monotonic()
            data = b""
            try:
                data = original(*args, **kwargs)
                return data
            finally:
                watched.reading_since = None
                watched.waited += time.monotonic() - began
                watched.body_bytes += len(data or b"")

        chunk.hub_original = original  # type: ignore[attr-defined]
        unreader.chunk = chunk

    def _watchdog(self) -> None:
        while True:
            time.sleep(WATCH_INTERVAL)
            now = time.monotonic()
            with self._watch_lock:
                overdue = [(w, why) for w in self._watched.values() if (why := w.overdue(now))]
            for watched, why in overdue:
                self.log.info("closing a slow client connection (%s): %s", why, watched.conn.client)
                _hang_up(watched.conn.sock)
                with self._watch_lock:
                    self._watched.pop(id(watched.conn), None)
