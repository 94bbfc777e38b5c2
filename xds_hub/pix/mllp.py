"""MLLP (ITI TF-2x C.2.1, HL7 MLLP release 2): ``<VT> message <FS><CR>`` over TCP.

- :class:`FrameReader`: incremental framing over any chunking of the byte stream: partial reads,
  several frames per read, bytes outside a frame skipped, a frame broken by a new start block
  dropped, an oversized frame refused.
- :class:`MllpClient`: a blocking client (used by ITI-10 and ``xds_hub.client.pix``).
- :class:`MllpActor`: the hub's listener (``--mllp-port``): a thread per connection, TCP_NODELAY.
  Every frame of what one ``recv`` brings (a pipelining sender's messages in flight) is parsed
  (:func:`xds_hub.pix.service.prepare`), run in one transaction (:func:`xds_hub.pix.service.run`:
  group commit) and answered in one write after the commit.  The connection keeps its database
  connection while it has work (:class:`xds_hub.pix.session.DbSession`).  A garbage frame gets an
  AR, a client that hangs up only ends its own connection, and ``stop`` finishes the batch in hand
  before closing.  The actor also runs the ITI-10 notifier.

  With ``tls_cert`` / ``tls_key`` the listener speaks TLS 1.2+ (ITI-19), and with ``tls_ca`` a
  client must present a certificate of that CA: the handshake runs in the connection's thread
  (:func:`xds_hub.security.tls.wrap_server_socket`, bounded by its timeout) before any byte of HL7
  is read, and a refused node is a Security Alert in the audit trail
  (:func:`xds_hub.audit.alerts.refusal_recorder`).  The peer certificate's identity decides which
  assigning authorities the connection may feed (:mod:`xds_hub.pix.guard`).  Every message is
  audited (:mod:`xds_hub.pix.audit`).

  (A second thread per connection, committing one batch while the reader parses the next, was
  measured and dropped, on SQLite and again on PostgreSQL: a sender waits for the ACKs of the
  messages in flight before sending more, so to overlap the reader must split the window into
  smaller batches, and each batch's fixed cost (round trips, the commit's WAL flush) ate the gain:
  1,165 against 1,216 msg/s with 32 in flight in alternating runs.)
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from types import TracebackType
from typing import TYPE_CHECKING

from xds_hub.config import Settings
from xds_hub.log import get_logger
from xds_hub.storage.stores import Stores

if TYPE_CHECKING:
    from xds_hub.pix.service import Peer

log = get_logger("xds_hub.pix.mllp")

START = b"\x0b"
END = b"\x1c"
CR = b"\r"
#: Largest frame accepted (a PIX message is a few KB).
MAX_FRAME = 4 * 1024 * 1024


def frame(payload: bytes) -> bytes:
    return START + payload + END + CR


class FrameTooLarge(Exception):
    """A frame grew past :data:`MAX_FRAME`."""


class FrameReader:
    """Incremental MLLP de-framing."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._in_frame = False
        self.skipped = 0  # bytes outside frames
        self.broken = 0  # frames interrupted by a new start block

    def feed(self, data: bytes) -> list[bytes]:
        """The frames completed by ``data``."""
        frames: list[bytes] = []
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            if not self._in_frame:
                start = data.find(START, pos)
                if start < 0:
                    self.skipped += len(data) - pos
                    break
                self.skipped += start - pos
                self._in_frame = True
                pos = start + 1
                continue
            end = data.find(END, pos)
            restart = data.find(START, pos)
            if restart >= 0 and (end < 0 or restart < end):
                self.broken += 1
                self._buf.clear()
                pos = restart + 1
                continue
            if end < 0:
                self._buf += view[pos:]
                if len(self._buf) > self.max_frame:
                    raise FrameTooLarge(f"MLLP frame larger than {self.max_frame} bytes")
                break
            self._buf += view[pos:end]
            frames.append(bytes(self._buf))
            self._buf.clear()
            self._in_frame = False
            pos = end + 1  # the CR after FS is skipped as an outside byte
            if pos < len(view) and view[pos] == CR[0]:
                pos += 1
        return frames

    @property
    def partial(self) -> bool:
        return self._in_frame


class MllpClient:
    """A blocking MLLP connection: ``request(text)`` sends one message and returns the reply."""

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float = 30.0,
        encoding: str = "utf-8",
        context: ssl.SSLContext | None = None,
    ) -> None:
        """``context``: MLLP over TLS (a client context, e.g. with the node's certificate)."""
        self.encoding = encoding
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if context is not None:
            try:
                sock = context.wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
        self.sock = sock
        self.reader = FrameReader()
        self._pending: list[bytes] = []

    def send(self, text: str | bytes) -> None:
        payload = text.encode(self.encoding) if isinstance(text, str) else text
        self.sock.sendall(frame(payload))

    def receive(self) -> str:
        while not self._pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the MLLP peer closed the connection before replying")
            self._pending += self.reader.feed(data)
        return self._pending.pop(0).decode(self.encoding, errors="replace")

    def request(self, text: str | bytes) -> str:
        self.send(text)
        return self.receive()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> MllpClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class MllpActor:
    """The MLLP listener of the hub (ITI-8, ITI-9) and the ITI-10 notifier."""

    #: Seconds a connection may stay silent before the hub closes it.
    IDLE_TIMEOUT = 900.0

    def __init__(self, settings: Settings, stores: Stores) -> None:
        from xds_hub.audit.alerts import refusal_recorder
        from xds_hub.pix.audit import AuditQueue, PixAuditor
        from xds_hub.pix.iti10 import Notifier
        from xds_hub.pix.service import Auditing
        from xds_hub.pix.xref import CrossReference
        from xds_hub.security.tls import client_ssl_context, server_ssl_context

        self.settings = settings
        self.engine = stores.engine
        self.xref = CrossReference(settings.domain)
        self.notifier = Notifier(stores.engine, settings.domain, tls=client_ssl_context(settings))
        self.auditing = Auditing(PixAuditor(settings), AuditQueue(stores.engine))
        self.ssl = server_ssl_context(settings, on_refused=refusal_recorder(settings, "mllp", stores.engine))
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._accept_thread: threading.Thread | None = None

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.host, self.settings.mllp_port))
        sock.listen(128)
        sock.settimeout(0.5)
        self._listener = sock
        self.notifier.start()
        self.auditing.queue.start()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="mllp-accept", daemon=True)
        self._accept_thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout=30)
        self.notifier.stop()
        self.auditing.queue.stop()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                conn, addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                log.exception("MLLP accept failed")
                continue
            t = threading.Thread(target=self._serve, args=(conn, addr), name=f"mllp-{addr[1]}", daemon=True)
            with self._lock:
                self._threads.add(t)
            t.start()

    def _serve(self, conn: socket.socket, addr: tuple[str, int]) -> None:
        from xds_hub.pix.service import Peer
        from xds_hub.security.tls import peer_identity, wrap_server_socket

        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl is not None:
                try:
                    conn = wrap_server_socket(conn, self.ssl)  # refused: closed (and audited)
                except (OSError, ValueError):
                    return
            conn.settimeout(0.5)
            self._connection(conn, Peer(str(addr[0]), peer_identity(conn, self.settings.domain)))
        except Exception:
            log.exception("MLLP connection failed", extra={"peer": f"{addr[0]}:{addr[1]}"})
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _connection(self, conn: socket.socket, peer: Peer) -> None:
        from xds_hub.pix.service import prepare, run
        from xds_hub.pix.session import DbSession

        reader = FrameReader()
        db = DbSession(self.engine)
        idle = 0.0
        try:
            while not self._stopping.is_set():
                try:
                    data = conn.recv(262144)
                except TimeoutError:
                    db.release()  # idle: the database connection goes back to the pool
                    idle += 0.5
                    if idle >= self.IDLE_TIMEOUT:
                        return
                    continue
                except OSError:
                    return  # reset by the peer
                if not data:
                    return  # the peer hung up (a partial frame is dropped)
                idle = 0.0
                try:
                    frames = reader.feed(data)
                except FrameTooLarge:
                    log.warning("MLLP frame too large; closing the connection")
                    return
                if not frames:
                    continue
                batch = run(prepare(frames, self.settings), db, self.settings, self.xref, peer, self.auditing)
                if batch.notifications:
                    self.notifier.wake()
                try:
                    conn.settimeout(30.0)  # a slow reader gets its ACKs, within reason
                    conn.sendall(b"".join(frame(r) for r in batch.replies))
                    conn.settimeout(0.5)
                except OSError:
                    return
        finally:
            db.release()


def make_actor(settings: Settings, stores: Stores) -> MllpActor:
    return MllpActor(settings, stores)
