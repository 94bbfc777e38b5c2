"""The DICOM Upper Layer of the hub's listener: event-driven, with a C-STORE fast path.

pynetdicom runs each association in two threads: the DUL thread (PS3.8 9.2 state machine, reading
PDUs) and the association's reactor, which serves DIMSE messages.  For a C-STORE of a small
instance most of its cost was per message, not per byte: decoding each P-DATA-TF PDU into objects,
decoding the command set with pydicom and building a C-STORE primitive, two thread hand-offs
through queues, creating the event, building the C-STORE-RSP primitive and pydicom-encoding its
command set, and a DUL that polls its queues and socket with a sleep between looks.

:class:`FastDUL` keeps pynetdicom's state machine and every other service, and changes two things:

- **No polling.**  Its loop blocks in ``select`` on the socket and a wake-up pipe (written when the
  local user queues a primitive or stops the DUL) instead of sleeping 0.1-1 ms between looks, and
  it wakes the association's reactor when it hands it a release or abort indication, so that
  reactor can block too (:data:`REACTOR_WAIT`).
- **C-STORE fast path (PS3.7 9.1.1, PS3.8 9.3.5 / Annex E).**  In state Sta6 (association
  established) it reads each P-DATA-TF PDU into one buffer and walks its PDVs itself.  A message
  whose command set (always Implicit VR Little Endian, PS3.7 6.3.1) arrives whole in one PDV and is
  a C-STORE-RQ with a data set, on an accepted presentation context whose abstract syntax is the
  request's Affected SOP Class, is served right there, in the DUL thread: its data set fragments
  are kept as views into the PDU buffers, the store handler is called (it answers only once the
  instance is durable), and the C-STORE-RSP is written to the socket as one pre-encoded P-DATA-TF
  PDU (what the state machine's action DT-1 would send; queued behind the local user's primitives
  when there are any, so messages never interleave).  Anything else (other commands, a command set
  split over PDVs, a message pynetdicom already started, odd UIDs) goes to pynetdicom unchanged,
  PDU by PDU.  A PDV that breaks the message structure (a command fragment or another context in
  the middle of a data set) is an invalid PDU (Evt19: A-ABORT, as pynetdicom does).

The fast path does not trigger pynetdicom's per-PDU/per-message notification events
(EVT_DATA_RECV, EVT_PDU_RECV, EVT_DIMSE_RECV/SENT, EVT_C_STORE); the hub binds none of them
for storage (its handler is called directly).
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.pdu_primitives import P_DATA

from xds_hub.log import get_logger

if TYPE_CHECKING:
    from pynetdicom.association import Association

log = get_logger("xds_hub.imaging.dicomnet")

#: How long the DUL loop blocks when nothing happens (timers are checked at least this often).
IDLE_WAIT = 0.05
#: How long the association reactor blocks on its message queue between its own checks; it is
#: woken at once for DIMSE messages and for release / abort indications.
REACTOR_WAIT = 0.05

#: ``(calling AE, SOP Class UID, SOP Instance UID, transfer syntax, data set) -> (status, comment)``;
#: answers only once the instance is durable (C-STORE SCP, PS3.4 B.2.3).
StoreHandler = Callable[[str, str, str, str, bytes | memoryview], tuple[int, str]]

_PDU_HEAD = struct.Struct(">BBL")
_PDV_HEAD = struct.Struct(">LBB")
_ELEMENT = struct.Struct("<HHL")
_US = struct.Struct("<H")
_UL = struct.Struct("<L")

_P_DATA_TF = 0x04
#: Largest A-ASSOCIATE-RQ/AC PDU read (PS3.8 9.3.2; a request proposing all 128 presentation
#: contexts with every transfer syntax stays far below).
MAX_ASSOCIATE_PDU = 1024 * 1024
#: A-ASSOCIATE-RJ, A-RELEASE-RQ/RP and A-ABORT PDUs have a fixed length of 4 (PS3.8 9.3.4, 9.3.6-8).
_FIXED_LENGTH_PDUS = frozenset({0x03, 0x05, 0x06, 0x07})
_C_STORE_RQ = 0x0001
_C_STORE_RSP = 0x8001
_NO_DATA_SET = 0x0101
#: Failure status pynetdicom answers when a C-STORE handler raises (PS3.4 B.2.3, "Cannot understand").
HANDLER_FAILED = 0xC211
_UID_CHARS = frozenset(b"0123456789.")

# Command elements of group 0000 (PS3.7 E.1)
_AFFECTED_SOP_CLASS, _COMMAND_FIELD, _MESSAGE_ID = 0x0002, 0x0100, 0x0110
_DATA_SET_TYPE, _AFFECTED_SOP_INSTANCE = 0x0800, 0x1000


def parse_command_set(data: bytes | memoryview) -> dict[int, bytes] | None:
    """The elements of an Implicit VR Little Endian group-0000 command set, or None if malformed."""
    out: dict[int, bytes] = {}
    pos, end = 0, len(data)
    while pos < end:
        if pos + 8 > end:
            return None
        group, elem, length = _ELEMENT.unpack_from(data, pos)
        pos += 8
        if group != 0x0000 or pos + length > end:
            return None
        out[elem] = bytes(data[pos : pos + length])
        pos += length
    return out


def _uid(raw: bytes | None) -> str | None:
    """A UID value (PS3.5 9.1) as text, or None if it is absent or not a plain UID."""
    if raw is None:
        return None
    raw = raw.rstrip(b"\x00 ")
    if not raw or len(raw) > 64 or not _UID_CHARS.issuperset(raw):
        return None
    return raw.decode("ascii")


def _us(raw: bytes | None) -> int | None:
    return _US.unpack(raw)[0] if raw is not None and len(raw) == 2 else None


def _element(elem: int, value: bytes) -> bytes:
    return _ELEMENT.pack(0x0000, elem, len(value)) + value


def _padded_uid(uid: str) -> bytes:
    raw = uid.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def store_response_command(
    sop_class: str, sop_instance: str, message_id: int, status: int, comment: str
) -> bytes:
    """The C-STORE-RSP command set (PS3.7 Table 9.3-2), Implicit VR Little Endian."""
    body = [
        _element(_AFFECTED_SOP_CLASS, _padded_uid(sop_class)),
        _element(_COMMAND_FIELD, _US.pack(_C_STORE_RSP)),
        _element(0x0120, _US.pack(message_id)),  # Message ID Being Responded To
        _element(_DATA_SET_TYPE, _US.pack(_NO_DATA_SET)),
        _element(0x0900, _US.pack(status)),  # Status
    ]
    if comment and status != 0x0000:
        text = comment[:64].encode("ascii", "replace")  # Error Comment, LO
        body.append(_element(0x0902, text + b" " if len(text) % 2 else text))
    body.append(_element(_AFFECTED_SOP_INSTANCE, _padded_uid(sop_instance)))
    rest = b"".join(body)
    return _element(0x0000, _UL.pack(len(rest))) + rest  # Command Group Length


def p_data_pdu(context_id: int, command: bytes) -> bytes:
    """One P-DATA-TF PDU carrying a whole command set as its last fragment (PS3.8 9.3.5, E.2)."""
    pdv = _PDV_HEAD.pack(len(command) + 2, context_id, 0x03) + command
    return _PDU_HEAD.pack(_P_DATA_TF, 0, len(pdv)) + pdv


@dataclass(slots=True)
class _Store:
    """A C-STORE-RQ being received on the fast path."""

    context_id: int
    sop_class: str
    sop_instance: str
    message_id: int
    transfer_syntax: str
    fragments: list[memoryview] = field(default_factory=list)


class FastDUL(DULServiceProvider):
    """pynetdicom's DUL service provider, event-driven, with the C-STORE fast path.

    Installed on an acceptor association before it starts (:func:`install`).
    """

    _wake_r: int
    _wake_w: int
    _store_handler: StoreHandler | None
    _receiving: _Store | None
    _contexts: dict[int, tuple[str, str]] | None
    #: The peer broke the PDU framing (unknown type, impossible length): after the A-ABORT the
    #: rest of its bytes are not read, the connection is closed.
    _garbled: bool
    #: The association reactor was told the connection ended (a None on its queue), once.
    _ended: bool

    def _setup(self, store_handler: StoreHandler | None) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._store_handler = store_handler
        self._receiving = None
        self._contexts = None
        self._garbled = False
        self._ended = False

    # ------------------------------------------------------------------ waking and waiting

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # a full pipe already wakes the loop; closed: gone
            os.write(self._wake_w, b"\x00")

    def send_pdu(self, primitive: Any) -> None:
        super().send_pdu(primitive)
        self._wake()

    def kill_dul(self) -> None:
        super().kill_dul()
        self._wake()

    def stop_dul(self) -> bool:
        if self.state_machine.current_state != "Sta1":
            return False
        self._kill_thread = True
        self._wake()
        if threading.current_thread() is not self and self.is_alive():
            self.join()
        return True

    def _wait(self) -> None:
        """Block until the socket is readable, a primitive is queued, or IDLE_WAIT passes."""
        if not self.to_provider_queue.empty() or not self.event_queue.empty():
            return
        sock = self.socket.socket if self.socket is not None else None
        watch: list[Any] = [self._wake_r]
        if sock is not None:
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                return
            watch.append(sock)
        try:
            select.select(watch, [], [], IDLE_WAIT)
        except (OSError, ValueError):  # socket closed under us: the loop's next look sees it
            return
        with contextlib.suppress(OSError):
            while os.read(self._wake_r, 4096):
                pass

    def run(self) -> None:  # the thread's body (pynetdicom's ``run_reactor`` with a blocking wait)
        try:
            self._run()
        finally:
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            _poke(self.assoc)

    def _run(self) -> None:
        self._idle_timer.start()
        while True:
            if not self.assoc._dul_ready.is_set():
                self.assoc._dul_ready.set()
            if self._kill_thread:
                return
            if self.artim_timer.expired:
                self.event_queue.put("Evt18")
            try:
                if self._process_recv_primitive():
                    pass
                elif self._is_transport_event():
                    self._idle_timer.restart()
            except Exception:
                log.exception("DICOM upper layer failed; aborting the association")
                self._abort_hard()
                return
            try:
                event = self.event_queue.get(block=False)
            except queue.Empty:
                self._wait()
                continue
            self.state_machine.do_action(event)
            if self.state_machine.current_state == "Sta1" and not self._ended:
                # Back to idle (peer gone, ARTIM expired, aborted): an acceptor still waiting for
                # its A-ASSOCIATE-RQ gets None at once instead of waiting out the ACSE timeout.
                self._ended = True
                queue_: Any = self.to_user_queue  # None: pynetdicom's own 'nothing came'
                queue_.put(None)

    def _abort_hard(self) -> None:
        """As pynetdicom does on an exception in its loop: A-ABORT, bypassing the state machine."""
        pdu = A_ABORT_RQ()
        pdu.source = 0x02
        pdu.reason_diagnostic = 0x00
        if self.socket is not None:
            self.socket.send(pdu.encode())
        assoc = self.assoc
        assoc.is_aborted, assoc.is_established = True, False
        assoc._kill = True
        self._kill_thread = True

    # ------------------------------------------------------------------ reading PDUs

    def _recv_into(self, view: memoryview) -> bool:
        assert self.socket is not None and self.socket.socket is not None
        sock = self.socket.socket
        got, size = 0, len(view)
        while got < size:
            n = sock.recv_into(view[got:])
            if not n:
                return False
            got += n
        return True

    def _pdu_length_ok(self, pdu_type: int, length: int) -> bool:
        """Whether a PDU of this type may have this length (PS3.8 9.3); P-DATA-TF up to the
        maximum the hub announced in its A-ASSOCIATE-AC (PS3.8 D.1)."""
        if pdu_type == _P_DATA_TF:
            limit = int(self.assoc.acceptor.maximum_length or 0)
            return limit == 0 or length <= limit
        if pdu_type in _FIXED_LENGTH_PDUS:
            return length == 4
        return length <= MAX_ASSOCIATE_PDU

    def _read_pdu_data(self) -> None:
        """Read one PDU; P-DATA-TF in Sta6 goes through :meth:`_p_data`, the rest to pynetdicom.

        A PDU of unknown type or impossible length is never read: Evt19 (invalid PDU: A-ABORT,
        PS3.8 9.2.3 AA-1 / AA-8), and the connection is closed instead of reading on.
        """
        if self._garbled:
            if self.socket is not None:
                self.socket.close()  # Evt17: what follows broken framing is not read
            return
        head = bytearray(6)
        try:
            if not self._recv_into(memoryview(head)):
                self.event_queue.put("Evt17")  # closed (before or within the header)
                return
        except (OSError, AssertionError):
            self.event_queue.put("Evt17")
            return
        pdu_type, _, length = _PDU_HEAD.unpack(head)
        if pdu_type not in (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07):
            log.warning("unknown PDU type received; aborting", extra={"type": pdu_type})
            self._garbled = True
            self.event_queue.put("Evt19")
            return
        if not self._pdu_length_ok(pdu_type, length):
            log.warning("PDU length over the limit; aborting", extra={"type": pdu_type, "length": length})
            self._garbled = True
            self.event_queue.put("Evt19")
            return
        data = bytearray(6 + length)
        data[:6] = head
        try:
            complete = self._recv_into(memoryview(data)[6:])
        except (OSError, AssertionError):
            complete = False
        if not complete:
            self.event_queue.put("Evt17")
            return
        if (
            pdu_type == _P_DATA_TF
            and self._store_handler is not None
            and self.state_machine.current_state == "Sta6"
            and self.event_queue.empty()
        ):
            self._p_data(data)
        else:
            self._to_pynetdicom(data)

    def _to_pynetdicom(self, data: bytearray) -> None:
        """pynetdicom's own handling of a received PDU (decode, Evt*, state machine)."""
        try:
            pdu, event = self._decode_pdu(data)
        except Exception:
            log.warning("unable to decode a received PDU", exc_info=True)
            self.event_queue.put("Evt19")
            return
        self.event_queue.put(event)
        self._recv_pdu.put(pdu)

    def _p_data(self, data: bytearray) -> None:
        """A P-DATA-TF PDU in Sta6 (PS3.8 9.3.5): its PDVs, on the fast path where they qualify."""
        view = memoryview(data)
        pos, end = 6, len(data)
        while pos < end:
            if pos + 6 > end:
                self.event_queue.put("Evt19")
                return
            item_length, context_id, control = _PDV_HEAD.unpack_from(data, pos)
            stop = pos + 4 + item_length
            if item_length < 2 or stop > end:
                self.event_queue.put("Evt19")
                return
            fragment = view[pos + 6 : stop]
            store = self._receiving
            if store is not None:
                if control & 0x01 or context_id != store.context_id:
                    log.warning("PDV of another message inside a C-STORE data set; aborting")
                    self._receiving = None
                    self.event_queue.put("Evt19")
                    return
                store.fragments.append(fragment)
                if control & 0x02:
                    self._receiving = None
                    self._serve(store)
            elif control & 0x03 == 0x03 and self.assoc.dimse.message is None:
                started = self._start(context_id, fragment)
                if started is None:  # not for the fast path: this PDV and the rest to pynetdicom
                    self._rest_to_pynetdicom(view[pos:end])
                    return
                self._receiving = started
            else:
                self._rest_to_pynetdicom(view[pos:end])
                return
            pos = stop

    def _rest_to_pynetdicom(self, pdvs: memoryview) -> None:
        self._to_pynetdicom(bytearray(_PDU_HEAD.pack(_P_DATA_TF, 0, len(pdvs))) + pdvs)

    # ------------------------------------------------------------------ the C-STORE fast path

    def _context(self, context_id: int) -> tuple[str, str] | None:
        """(abstract syntax, transfer syntax) of an accepted presentation context."""
        if self._contexts is None:
            self._contexts = {
                int(cx.context_id): (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
                for cx in self.assoc.accepted_contexts
                if cx.context_id is not None and cx.abstract_syntax and cx.transfer_syntax
            }
        return self._contexts.get(context_id)

    def _start(self, context_id: int, command: memoryview) -> _Store | None:
        """A C-STORE-RQ (PS3.7 9.3.1.1) that the fast path serves, or None."""
        elements = parse_command_set(command)
        if elements is None or _us(elements.get(_COMMAND_FIELD)) != _C_STORE_RQ:
            return None
        data_set_type, message_id = _us(elements.get(_DATA_SET_TYPE)), _us(elements.get(_MESSAGE_ID))
        sop_class = _uid(elements.get(_AFFECTED_SOP_CLASS))
        sop_instance = _uid(elements.get(_AFFECTED_SOP_INSTANCE))
        context = self._context(context_id)
        if (
            data_set_type is None
            or data_set_type == _NO_DATA_SET
            or message_id is None
            or sop_class is None
            or sop_instance is None
            or context is None
            or context[0] != sop_class
            or getattr(self.assoc, "_sent_release", False)
        ):
            return None
        return _Store(context_id, sop_class, sop_instance, message_id, context[1])

    def _serve(self, store: _Store) -> None:
        """Keep the instance (the handler returns once it is durable), then answer C-STORE-RSP."""
        assert self._store_handler is not None
        fragments = store.fragments
        dataset: bytes | memoryview = fragments[0] if len(fragments) == 1 else b"".join(fragments)
        store.fragments = []
        try:
            status, comment = self._store_handler(
                str(self.assoc.requestor.ae_title),
                store.sop_class,
                store.sop_instance,
                store.transfer_syntax,
                dataset,
            )
        except Exception:
            log.exception("C-STORE handler failed", extra={"sop": store.sop_instance})
            status, comment = HANDLER_FAILED, "the instance could not be stored"
        # Sta6, not ``assoc.is_established``: the reactor sets that flag only after the DUL has
        # sent the A-ASSOCIATE-AC, and a peer may send its first C-STORE in between.
        if self.state_machine.current_state != "Sta6" or self.socket is None:
            return
        command = store_response_command(
            store.sop_class, store.sop_instance, store.message_id, status, comment
        )
        peer_max = int(self.assoc.requestor.maximum_length or 0)
        if self.to_provider_queue.empty() and (peer_max == 0 or len(command) + 12 <= peer_max):
            self.socket.send(p_data_pdu(store.context_id, command))  # what DT-1 does in Sta6
            return
        primitive = P_DATA()  # behind the user's queued primitives, fragmented by pynetdicom
        pdv: Any = [store.context_id, b"\x03" + command]  # pynetdicom wants a list, types a tuple
        primitive.presentation_data_value_list = [pdv]
        self.send_pdu(primitive)


class _PokingQueue(queue.Queue[Any]):
    """The DUL's queue to its user: every put also wakes the association's reactor."""

    def __init__(self, assoc: Association) -> None:
        super().__init__()
        self._assoc = assoc

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        _poke(self._assoc)


def _poke(assoc: Association) -> None:
    """Wake an association reactor blocked on its message queue (it then runs its checks)."""
    assoc.dimse.msg_queue.put((None, None))


def install(assoc: Association, store_handler: StoreHandler | None) -> None:
    """Make a not yet started acceptor ``assoc`` use :class:`FastDUL`."""
    dul = assoc.dul
    dul.__class__ = FastDUL
    assert isinstance(dul, FastDUL)
    dul._setup(store_handler)
    dul.to_user_queue = _PokingQueue(assoc)
