"""ITI-10 PIX Update Notification (ITI TF-2a 3.10): ADT^A31 to the configured PIX Consumers.

When a feed or a merge changes a person's cross-reference, :func:`enqueue` writes one ADT^A31 per
subscriber whose domains of interest hold an identifier of that person, in the feed's own
transaction (so a notification exists if and only if the change was committed).  PID-3 lists the
person's identifiers in the subscriber's domains; PID-5 is the empty name (3.10.4.1.2.3).

:class:`Notifier` (run by the MLLP actor) delivers the outbox in order per subscriber over MLLP:
AA/CA marks a message sent, AE/AR/CE/CR rejected (not resent), and a connection failure or
timeout retries it with exponential back-off (1 s doubling to 5 min), never blocking a feed.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select, update

from xds_hub.config import AffinityDomain, PixSubscriber
from xds_hub.errors import ParseError
from xds_hub.log import get_logger
from xds_hub.pix import ack, hl7v2, mllp
from xds_hub.pix.model import Identifier
from xds_hub.pix.store import PixSql
from xds_hub.pix.tables import pix_notification

log = get_logger("xds_hub.pix.iti10")

MAX_BACKOFF = 300.0
SEND_TIMEOUT = 10.0


def message(domain: AffinityDomain, subscriber: PixSubscriber, ids: Iterable[Identifier]) -> str:
    """ADT^A31^ADT_A05 (HL7 2.5): MSH, EVN, PID (PID-3 = the identifiers), PV1 (class N)."""
    pix = domain.pix
    msh = hl7v2.msh(
        sending=(pix.application, pix.facility),
        receiving=(subscriber.application, subscriber.facility),
        message_type=("ADT", "A31", "ADT_A05"),
        control_id=ack.control_id(),
        processing_id="P",
        version="2.5",
    )
    now = hl7v2.timestamp()
    return hl7v2.render(
        [
            msh,
            hl7v2.segment("EVN", "", now),
            hl7v2.segment("PID", "", "", [hl7v2.cx(i.value, i.authority) for i in ids], "", hl7v2.EMPTY_NAME),
            hl7v2.segment("PV1", "", "N"),
        ]
    )


def notifications(domain: AffinityDomain, members: list[Identifier], now: str) -> list[tuple[str, str, str]]:
    """The outbox rows (subscriber, message, created) of a link change of the person holding
    ``members``: one per subscriber interested in one of its domains."""
    rows = []
    for sub in domain.pix.subscribers:
        wanted = set(sub.domains)
        ids = [m for m in members if not wanted or m.authority in wanted]
        if ids:
            rows.append((sub.name, message(domain, sub, ids), now))
    return rows


def enqueue(conn: Connection, domain: AffinityDomain, members: list[Identifier], now: str) -> int:
    """Queue the notifications of a link change of the person holding ``members``."""
    rows = notifications(domain, members, now)
    if rows:
        PixSql(conn.dialect.name).enqueue(conn, rows)
    return len(rows)


def deliver(
    subscriber: PixSubscriber, text: str, timeout: float = SEND_TIMEOUT, context: ssl.SSLContext | None = None
) -> str:
    """Send one notification (over TLS with ``context``); returns the consumer's MSA-1 (OSError /
    ParseError on failure)."""
    with mllp.MllpClient(subscriber.host, subscriber.port, timeout=timeout, context=context) as client:
        reply = client.request(text)
    parsed = hl7v2.parse(reply)
    msa = parsed.first("MSA")
    if msa is None:
        raise ParseError("the consumer's reply has no MSA segment")
    return msa.value(1)


@dataclass(frozen=True, slots=True)
class _Pending:
    id: int
    subscriber: str
    message: str
    attempts: int
    next_attempt: float


class Notifier:
    """Delivers the ITI-10 outbox in a background thread; :meth:`wake` after a commit."""

    def __init__(
        self, engine: Engine, domain: AffinityDomain, poll: float = 1.0, tls: ssl.SSLContext | None = None
    ) -> None:
        """``tls``: the hub's client context, used for the subscribers configured with ``tls = true``."""
        self.engine = engine
        self.tls = tls
        self.subscribers = {s.name: s for s in domain.pix.subscribers}
        self.poll = poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.subscribers:
            return
        self._thread = threading.Thread(target=self._run, name="pix-iti10", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=SEND_TIMEOUT + 5)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the database may be briefly unavailable: try again later
                log.exception("ITI-10 delivery round failed")
            self._wake.wait(self.poll)
            self._wake.clear()

    def run_once(self, now: float | None = None) -> int:
        """Deliver what is due, oldest first per subscriber; returns how many were settled."""
        settled = 0
        blocked: set[str] = set()
        while not self._stop.is_set():
            t = pix_notification
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(t.c.id, t.c.subscriber, t.c.message, t.c.attempts, t.c.next_attempt)
                    .where(t.c.status == "pending")
                    .order_by(t.c.id)
                    .limit(200)
                ).all()
            heads: dict[str, _Pending] = {}
            for row in rows:
                if row.subscriber not in heads and row.subscriber not in blocked:
                    heads[row.subscriber] = _Pending(
                        row.id, row.subscriber, row.message, int(row.attempts), float(row.next_attempt)
                    )
            if not heads:
                return settled
            progress = False
            moment = time.time() if now is None else now
            for name, head in heads.items():
                sub = self.subscribers.get(name)
                if sub is None or head.next_attempt > moment:
                    blocked.add(name)
                    continue
                settled += self._attempt(sub, head)
                progress = True
                if self._stop.is_set():
                    break
            if not progress:
                return settled
        return settled

    def _attempt(self, sub: PixSubscriber, head: _Pending) -> int:
        t = pix_notification
        attempts = head.attempts + 1
        values: dict[str, object]
        try:
            code = deliver(sub, head.message, context=self.tls if sub.tls else None)
        except (OSError, ParseError) as exc:
            delay = min(MAX_BACKOFF, 2.0 ** (attempts - 1))
            values = {
                "attempts": attempts,
                "next_attempt": time.time() + delay,
                "last_error": f"{type(exc).__name__}: {exc}",
            }
            log.warning(
                "ITI-10 delivery failed; will retry",
                extra={"subscriber": sub.name, "attempts": attempts, "retry_in": delay},
            )
            result = 0
        else:
            ok = code in ("AA", "CA")
            values = {
                "attempts": attempts,
                "status": "sent" if ok else "rejected",
                "last_error": None if ok else f"consumer answered {code}",
            }
            if not ok:
                log.warning("ITI-10 notification rejected", extra={"subscriber": sub.name, "ack": code})
            result = 1
        with self.engine.begin() as conn:
            conn.execute(update(t).where(t.c.id == head.id).values(**values))
        return result
