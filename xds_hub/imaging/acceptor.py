"""The acceptor side of the hub's DICOM listener, on pynetdicom: how a connection becomes an association.

- :class:`HubServer`: pynetdicom's threaded server whose TLS handshake (``tls``) runs in each
  connection's own thread, bounded by the context's time-out (a slow or silent client cannot stall
  the accept loop);
- :class:`LowLatencyAssociation`: the association thread, whose reactor blocks on its queue (woken by
  :class:`.dicomnet.FastDUL`) and which tells the actor when it ends (:meth:`Hooks.ended`);
- :class:`_HubACSE`: the A-ASSOCIATE-RQ goes through :meth:`Hooks.admit` before pynetdicom's own
  negotiation (A-ASSOCIATE-RJ as pynetdicom answers it when the hub refuses);
- :func:`hang_up`: ends a connection that never associated (stop without waiting out ARTIM).

The services themselves (C-STORE, C-FIND, C-MOVE, C-GET) are :class:`.dimse.DicomActor`'s.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import ssl
from typing import Any, Protocol

from pynetdicom import evt
from pynetdicom.acse import ACSE
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from xds_hub.audit import events
from xds_hub.imaging import audit, dicomnet
from xds_hub.log import get_logger
from xds_hub.security.access import NodeIdentity
from xds_hub.security.tls import wrap_server_socket

log = get_logger("xds_hub.imaging.acceptor")


class Hooks(Protocol):
    """What the DICOM actor does for the associations it accepts."""

    def admit(self, assoc: Association, rq: A_ASSOCIATE) -> tuple[int, int, int] | None:
        """None to go on with the A-ASSOCIATE-RQ, or the (result, source, reason) to reject it with."""
        ...

    def ended(self, assoc: LowLatencyAssociation) -> None:
        """The association's thread ends."""
        ...

    def store_handler(self, tally: audit.StoreTally) -> dicomnet.StoreHandler:
        """The C-STORE handler of one association."""
        ...


def nodelay(event: Any) -> None:
    """EVT_CONN_OPEN: no Nagle delay on DIMSE responses (each is a small write)."""
    sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class LowLatencyAssociation(Association):
    """An acceptor association whose reactor wakes when a DIMSE message arrives.

    It also carries what the hub learns about it: the peer's TLS identity, the instances it stored
    (audited when the association ends, :meth:`Hooks.ended`).

    pynetdicom's acceptor loop sleeps 1 ms between looks at its message queue, which costs each
    request up to that much latency; here the loop blocks on the queue itself, and the DUL
    (:class:`.dicomnet.FastDUL`) puts a wake-up on that queue with every release or abort
    indication, so the bound (:data:`.dicomnet.REACTOR_WAIT`) only paces the time-out checks.
    The checks per turn are those of pynetdicom's loop.
    """

    hub_actor: Hooks | None = None
    hub_identity: NodeIdentity | None = None
    hub_tally: audit.StoreTally | None = None

    def run(self) -> None:  # the thread's body (pynetdicom bound its target before the class swap)
        try:
            super().run()
        finally:
            if self.hub_actor is not None:
                try:
                    self.hub_actor.ended(self)
                except Exception:  # auditing the association must never break the listener
                    log.exception("DICOM association end could not be processed")

    def _run_reactor(self) -> None:
        self._is_paused = False
        while not self._kill:
            self._is_paused = True
            self._reactor_checkpoint.wait()  # a send_*() from another thread may pause us
            self._is_paused = False
            try:
                context_id, msg = self.dimse.msg_queue.get(timeout=dicomnet.REACTOR_WAIT)
            except queue.Empty:
                context_id, msg = None, None
            if msg is not None and context_id is not None:
                self._serve_request(msg, context_id)
            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                self.is_released, self.is_established = True, False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return
            if self.acse.is_aborted():
                self.dul.receive_pdu(wait=False)
                self.is_aborted, self.is_established = True, False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return
            if not self.dul.is_alive():
                self.kill()
                return
            if self.dul.idle_timer_expired():
                log.warning("DICOM association idle past the network timeout; aborting")
                self.abort()
                self.kill()
                return


class _HubACSE(ACSE):
    """pynetdicom's ACSE, with the hub's admission rules checked first (:meth:`Hooks.admit`)."""

    def _negotiate_as_acceptor(self) -> None:
        assoc = self.assoc
        rq = self.requestor.primitive
        actor = getattr(assoc, "hub_actor", None)
        if actor is not None and isinstance(rq, A_ASSOCIATE):
            refusal = actor.admit(assoc, rq)
            if refusal is not None:  # as pynetdicom rejects (PS3.8 9.3.4)
                self.requestor.ae_title = rq.calling_ae_title
                self.send_reject(*refusal)
                evt.trigger(assoc, evt.EVT_REJECTED, {})
                assoc.kill()
                return
        super()._negotiate_as_acceptor()


class HubServer(ThreadedAssociationServer):
    """pynetdicom's threaded server; ``tls`` wraps each connection in its own thread (not the
    accept loop, where one slow handshake would stall every other client)."""

    tls: ssl.SSLContext | None = None


def request_handler(actor: Hooks) -> type[RequestHandler]:
    """A request handler class creating low-latency acceptor associations served by ``actor``."""

    class _RequestHandler(RequestHandler):
        def handle(self) -> None:
            tls = getattr(self.server, "tls", None)
            if tls is not None:
                try:  # bounded by the context's timeout; a TLS refusal is recorded by its hook
                    self.request = wrap_server_socket(self.request, tls)
                except (OSError, ValueError):
                    return
            super().handle()

        def _create_association(self) -> Association:
            assoc = super()._create_association()
            assoc.__class__ = LowLatencyAssociation
            assoc.acse.__class__ = _HubACSE
            assert isinstance(assoc, LowLatencyAssociation)
            assoc.hub_actor = actor
            assoc.hub_tally = tally = audit.StoreTally()
            dicomnet.install(assoc, actor.store_handler(tally))
            return assoc

    return _RequestHandler


def peer_node(assoc: Any, calling_ae: str, identity: NodeIdentity | None) -> events.Node:
    """The calling node of an association, for the audit trail."""
    address = getattr(getattr(assoc.requestor, "address_info", None), "address", None)
    if address is None:
        address = getattr(assoc.requestor, "address", None)
    return events.peer(calling_ae or None, str(address) if address else None, identity)


def identity_of(assoc: Any) -> NodeIdentity | None:
    identity = getattr(assoc, "hub_identity", None)
    return identity if isinstance(identity, NodeIdentity) else None


def hang_up(assoc: Association) -> None:
    """End a connection that never associated: its DUL sees the close (Evt17), goes idle and wakes
    the acceptor waiting for an A-ASSOCIATE-RQ, which then ends (nothing to drain)."""
    sock = getattr(assoc.dul.socket, "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
