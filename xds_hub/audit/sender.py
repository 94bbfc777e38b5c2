"""The audit sender actor: ships the queued audit records to the Audit Record Repository (ITI-20).

It runs in the hub's actors process (``xds_hub.server.ACTORS``).  Every ``poll_seconds`` it reads
the oldest unsent records, sends them one by one, and marks the ones that went out as sent.  When
the repository cannot be reached it waits, doubling the wait up to ``max_backoff_seconds``, and
tries again: the records stay queued in the database (they survive a hub restart), and nothing on
the transaction side ever waits for the repository.  Delivery is at least once: a record whose
"sent" mark could not be written (database down) is sent again later.

It also records the hub's Application Start and Application Stop events (ITI-20 "Actor start /
stop"), and on stop makes one last attempt to flush the queue.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from xds_hub.audit import events
from xds_hub.audit.store import mark_sent, note_attempt, pending, record
from xds_hub.audit.syslog import Transport, syslog_message, transport_for
from xds_hub.log import get_logger

if TYPE_CHECKING:
    from xds_hub.config import Settings
    from xds_hub.storage.stores import Stores

log = get_logger("xds_hub.audit.sender")

DEFAULT_POLL_SECONDS = 0.5
DEFAULT_MAX_BACKOFF_SECONDS = 30.0
BATCH = 100


class AuditSender:
    """The :class:`~xds_hub.server.Actor` that drains the audit queue to the repository."""

    def __init__(
        self,
        settings: Settings,
        stores: Stores,
        transport_factory: Callable[[], Transport] | None,
        *,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        max_backoff_seconds: float = DEFAULT_MAX_BACKOFF_SECONDS,
        batch: int = BATCH,
    ) -> None:
        self.settings = settings
        self.stores = stores
        self.transport_factory = transport_factory
        self.poll_seconds = poll_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.batch = batch
        self.hostname = socket.getfqdn() or socket.gethostname()
        self.sent = 0
        self.failures = 0
        self._transport: Transport | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one pass -------------------------------------------------------------------------------

    def flush_once(self) -> int:
        """Send up to one batch of queued records; returns how many went out.  Raises OSError if the
        repository is unreachable (the records that did go out before are marked sent first)."""
        if self.transport_factory is None:
            return 0
        with self.stores.engine.connect() as conn:
            batch = pending(conn, self.batch)
        if not batch:
            return 0
        done: list[int] = []
        error: OSError | None = None
        procid = str(os.getpid())
        for record_id, event_ns, xml in batch:
            stamp = dt.datetime.fromtimestamp(event_ns / 1e9, dt.UTC)
            message = syslog_message(
                xml.encode("utf-8"), timestamp=stamp, hostname=self.hostname, procid=procid
            )
            try:
                if self._transport is None:
                    self._transport = self.transport_factory()
                self._transport.send(message)
            except OSError as exc:
                error = exc
                break
            done.append(record_id)
        with self.stores.engine.begin() as conn:
            mark_sent(conn, done)
            if error is not None:
                note_attempt(conn, [batch[len(done)][0]])
        self.sent += len(done)
        if error is not None:
            raise error
        return len(done)

    # -- the actor ------------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                sent = self.flush_once()
            except OSError as exc:
                self.failures += 1
                if self.failures == 1 or self.failures % 20 == 0:
                    log.warning(
                        "audit repository unreachable; records stay queued",
                        extra={
                            "repository": self.settings.audit_repository,
                            "error": str(exc),
                            "retry_in": backoff,
                        },
                    )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_seconds)
                continue
            except Exception:  # database down, ...: retry later, never die
                log.exception("audit sender pass failed")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_seconds)
                continue
            backoff = 1.0
            if sent < self.batch:
                self._stop.wait(self.poll_seconds)

    def _application_event(self, start: bool) -> None:
        hub = events.Node("xds-hub", self.hostname, str(os.getpid()), self.settings.ae_title)
        record(
            events.application_activity(events.audit_source(self.settings), hub, start), self.stores.engine
        )

    def start(self) -> None:
        self._application_event(start=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="xds-hub-audit-sender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        self._application_event(start=False)
        try:
            while self.flush_once() == self.batch:
                pass
        except Exception as exc:  # the repository is down: the records stay queued for next start
            log.warning("audit records left queued at stop", extra={"error": str(exc)})
        if self._transport is not None:
            self._transport.close()
            self._transport = None


def make_sender(settings: Settings, stores: Stores) -> AuditSender:
    """ActorSpec factory (``xds_hub.server.ACTORS``)."""
    return AuditSender(settings, stores, transport_for(settings))
