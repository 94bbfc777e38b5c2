"""Recording audit messages off the transactions' path: one queue and one writer thread per process.

A transaction hands its audit work to :meth:`AuditRecorder.submit` (a callable building the
message(s), so that even writing the XML happens off the request's thread) and goes on at once.
The writer thread takes everything queued, builds the messages and inserts them in one database
transaction (:func:`xds_hub.audit.store.record_many`), every :data:`FLUSH_INTERVAL` seconds at
most: a burst of ITI-41 submissions costs one audit commit, not one per submission, and never
waits for it.  The :mod:`xds_hub.audit.sender` actor then ships the stored rows to the Audit
Record Repository.

Audit never fails or blocks a transaction:

- ``submit`` only appends to a bounded in-memory queue (:data:`MAX_QUEUE` messages; past it the
  oldest queued work is written to the log at ERROR and dropped, so memory stays bounded while the
  database is down for long);
- a build error is logged and skipped; a database error keeps the built messages queued and the
  writer retries with a growing pause (up to :data:`MAX_BACKOFF` seconds);
- at process exit the queue is flushed (bounded by :data:`EXIT_FLUSH_SECONDS`).

What remains: a process killed with SIGKILL loses the audit work of its last flush interval (the
transactions themselves are committed before they are acknowledged).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import Engine

from xds_hub.audit.model import AuditMessage
from xds_hub.audit.store import record_many
from xds_hub.audit.xml import to_xml
from xds_hub.log import get_logger

log = get_logger("xds_hub.audit.recorder")

#: Longest time between a transaction and the commit of its audit record (seconds).  At 0.05 s the
#: extra SQLite commits cost ITI-41 throughput under load (bench/RESULTS.md); at 0.2 s nothing shows.
FLUSH_INTERVAL = 0.2
#: Messages kept in memory when the database cannot take them.
MAX_QUEUE = 50_000
#: Most records stored in one database transaction.
MAX_BATCH = 1000
#: Longest pause between two attempts while the database refuses the records (seconds).
MAX_BACKOFF = 5.0
#: How long process exit waits for the queue to be written (seconds).
EXIT_FLUSH_SECONDS = 5.0

#: What a transaction submits: builds its audit message(s); called on the writer thread.
Work = Callable[[], Iterable[AuditMessage]]


class AuditRecorder:
    """The queue and writer thread of one database engine in one process."""

    def __init__(self, engine: Engine, *, interval: float = FLUSH_INTERVAL, max_queue: int = MAX_QUEUE):
        self.engine = engine
        self.interval = interval
        self.max_queue = max_queue
        self._work: deque[Work] = deque()
        self._built: list[AuditMessage] = []  # built, not yet stored (the database refused them)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._submitted = 0
        self._done = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self.recorded = 0
        self.dropped = 0
        self._failing = False  # the database refuses the records (logged once per outage)

    # -- the transaction's side -----------------------------------------------------------------

    def submit(self, work: Work) -> None:
        """Queue ``work``; never raises, never waits for the database."""
        try:
            with self._lock:
                if self._closed:
                    return
                if len(self._work) + len(self._built) >= self.max_queue:
                    self._drop_oldest()
                self._work.append(work)
                self._submitted += 1
                if self._thread is None:
                    self._start()
            self._wake.set()
        except Exception:  # pragma: no cover - audit must never break the transaction
            log.exception("audit work could not be queued")

    def _drop_oldest(self) -> None:
        if self._built:
            message = self._built.pop(0)
            self._log_lost([message], "queue full")
        elif self._work:
            self._work.popleft()
            self._done += 1
            log.error("audit queue full: the oldest audit work was dropped")
        self.dropped += 1

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="xds-hub-audit-recorder", daemon=True)
        self._thread.start()

    # -- the writer -----------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self.interval
        while True:
            self._wake.wait(backoff if self._built else None)
            self._wake.clear()
            time.sleep(self.interval)  # let a burst gather into one commit
            with self._lock:
                work = list(self._work)
                self._work.clear()
                closed = self._closed
            built = self._build(work)
            with self._lock:
                self._built.extend(built)  # they stay listed until stored (flush waits for them)
                batch = self._built[:MAX_BATCH]
                self._done += len(work)
            if batch:
                try:
                    record_many(batch, self.engine)
                except Exception as exc:
                    if not self._failing:
                        self._failing = True
                        log.warning(
                            "audit records not stored yet; will retry",
                            extra={"queued": len(batch), "error": str(exc)[:300]},
                        )
                    backoff = min(max(backoff * 2, 0.2), MAX_BACKOFF)
                else:
                    stored = {id(m) for m in batch}
                    with self._lock:
                        self._built = [m for m in self._built if id(m) not in stored]
                    self.recorded += len(batch)
                    backoff = self.interval
                    if self._failing:
                        self._failing = False
                        log.warning("audit records stored again", extra={"stored": len(batch)})
                    if self._built:
                        self._wake.set()  # more than one batch waiting: go on at once
            with self._lock:
                self._idle.notify_all()
            if closed and not self._work:
                return

    @staticmethod
    def _build(work: Sequence[Work]) -> list[AuditMessage]:
        messages: list[AuditMessage] = []
        for item in work:
            try:
                messages.extend(item())
            except Exception:
                log.exception("audit message could not be built")
        return messages

    @staticmethod
    def _log_lost(messages: Iterable[AuditMessage], why: str) -> None:
        for message in messages:
            try:
                xml = to_xml(message).decode("utf-8", "replace")
            except Exception:
                xml = repr(message)
            log.error(f"audit record dropped ({why})", extra={"audit_message": xml})

    # -- waiting and stopping -------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the work submitted so far is built and stored; False if ``timeout`` passed
        first (e.g. the database is down)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            target = self._submitted
            while self._done < target or self._built:
                if self._thread is None:
                    return not self._work and not self._built
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.set()
                self._idle.wait(min(left, 0.1))
        return True

    def close(self, timeout: float = EXIT_FLUSH_SECONDS) -> None:
        """Flush (up to ``timeout``) and stop the writer; later submissions are ignored."""
        self.flush(timeout)
        with self._lock:
            self._closed = True
            left = list(self._built)
            self._built = []
        self._wake.set()
        if left:
            self._log_lost(left, "not stored before exit")


_RECORDERS: weakref.WeakKeyDictionary[Engine, AuditRecorder] = weakref.WeakKeyDictionary()
_RECORDERS_LOCK = threading.Lock()


def recorder_for(engine: Engine) -> AuditRecorder:
    """The recorder of ``engine`` in this process (created on first use)."""
    recorder = _RECORDERS.get(engine)
    if recorder is None:
        with _RECORDERS_LOCK:
            recorder = _RECORDERS.get(engine)
            if recorder is None:
                recorder = _RECORDERS[engine] = AuditRecorder(engine)
    return recorder


def flush_recorders(where: Callable[[Engine], bool], timeout: float = EXIT_FLUSH_SECONDS) -> bool:
    """Store what the recorders of this process whose engine matches ``where`` hold (e.g. before
    the stores close); False if ``timeout`` passed first for one of them."""
    return all(r.flush(timeout) for e, r in list(_RECORDERS.items()) if where(e))


def _after_fork() -> None:
    """A forked child starts with no recorder: the parent's queue and thread are the parent's."""
    global _RECORDERS_LOCK
    _RECORDERS_LOCK = threading.Lock()
    _RECORDERS.clear()


def _at_exit() -> None:
    for recorder in list(_RECORDERS.values()):
        try:
            recorder.close()
        except Exception:  # pragma: no cover
            log.exception("audit recorder did not flush at exit")


os.register_at_fork(after_in_child=_after_fork)
atexit.register(_at_exit)
