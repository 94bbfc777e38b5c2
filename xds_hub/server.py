"""`xds-hub serve`: one process group running every actor of the hub.

The supervisor (this process) migrates the database, then starts two children:

- ``http``: gunicorn (gthread workers) serving :func:`xds_hub.web.create_app`;
- ``actors``: the socket listeners and background jobs that are not HTTP (DICOM, MLLP, the study
  publisher, the orphan-blob sweeper), each an :class:`Actor` from :data:`ACTORS`.

SIGTERM (or SIGINT) is forwarded to both; gunicorn finishes in-flight requests and each actor
finishes what it acknowledged before the process exits.  If a child dies on its own, the
supervisor stops the other one and exits non-zero.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from types import FrameType
from typing import Any, Protocol

from xds_hub.config import Settings
from xds_hub.log import get_logger, setup_logging
from xds_hub.storage.stores import Stores, open_stores

log = get_logger("xds_hub.server")

#: Longest a process's main thread blocks before it looks for a signal.  The kernel may deliver
#: SIGTERM to any thread; CPython then runs the handler only when the main thread next executes
#: Python code, so a main thread blocked without a timeout (``Event.wait()``, ``select``) would
#: never see it (seen: 1 stop in 12 hung for good in the actors process).
SIGNAL_POLL = 0.5


class Actor(Protocol):
    """A long-running part of the hub: ``start`` returns once it is listening, ``stop`` drains it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ActorSpec:
    name: str
    #: "module:callable"; the callable takes (settings, stores) and returns an Actor.
    factory: str
    #: The Settings attribute holding its listening port, if it listens.
    port_setting: str | None = None

    def port(self, settings: Settings) -> int | None:
        return int(getattr(settings, self.port_setting)) if self.port_setting else None

    def build(self, settings: Settings, stores: Stores) -> Actor:
        module, _, attr = self.factory.partition(":")
        ctor: Callable[[Settings, Stores], Actor] = getattr(importlib.import_module(module), attr)
        return ctor(settings, stores)


#: The actors of the hub, in start order (stopped in reverse).
ACTORS: tuple[ActorSpec, ...] = (
    ActorSpec("blob-sweeper", "xds_hub.repository.sweep:make_sweeper"),
    ActorSpec("mllp", "xds_hub.pix.mllp:MllpActor", "mllp_port"),
    ActorSpec("dicom", "xds_hub.imaging.dimse:DicomActor", "dicom_port"),
    ActorSpec("study-publisher", "xds_hub.imaging.publisher:make_publisher"),
    ActorSpec("audit-sender", "xds_hub.audit.sender:make_sender"),
)


def enabled_actors() -> tuple[ActorSpec, ...]:
    return ACTORS


# --------------------------------------------------------------------------------------------
# Children
# --------------------------------------------------------------------------------------------


def _gunicorn_level(level: str) -> str:
    return {"WARNING": "warning", "DEBUG": "debug", "INFO": "info", "ERROR": "error"}.get(
        level.upper(), "warning"
    )


def run_http(settings: Settings) -> None:
    """Child process: gunicorn serving the Flask app."""
    from gunicorn.app.base import BaseApplication

    setup_logging(settings.log_level)

    class HubApplication(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options: dict[str, Any] = {
                "bind": f"{settings.host}:{settings.http_port}",
                "workers": settings.http_workers,
                "threads": settings.http_threads,
                "worker_class": "xds_hub.httpworker.HubWorker",
                "timeout": 120,
                # gunicorn's default: in-flight requests get 30 s to finish on SIGTERM; a worker
                # still holding a connection after that is killed (the test harness waits 60 s).
                "graceful_timeout": 30,
                "keepalive": 30,
                "accesslog": None,
                "errorlog": "-",
                "loglevel": _gunicorn_level(settings.log_level),
                "proc_name": "xds-hub-http",
                "control_socket_disable": True,
            }
            # TLS 1.2+ and, with tls_ca, mutual authentication (ITI-19); refusals audited (ITI-20).
            from xds_hub.audit.alerts import refusal_recorder
            from xds_hub.security.tls import gunicorn_tls_options

            options.update(gunicorn_tls_options(settings, on_refused=refusal_recorder(settings, "http")))
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from xds_hub.web import create_app

            return create_app(settings)

    HubApplication().run()


def run_actors(settings: Settings) -> None:
    """Child process: every non-HTTP actor, until SIGTERM."""
    setup_logging(settings.log_level)
    stop = threading.Event()

    def _on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    stores = open_stores(settings, migrate=False)
    started: list[tuple[str, Actor]] = []
    try:
        for spec in enabled_actors():
            actor = spec.build(settings, stores)
            actor.start()
            started.append((spec.name, actor))
            log.info("actor started", extra={"actor": spec.name, "port": spec.port(settings)})
        while not stop.wait(SIGNAL_POLL):
            pass
    finally:
        for name, actor in reversed(started):
            began = time.monotonic()
            try:
                actor.stop()
            except Exception:
                log.exception("actor failed to stop cleanly", extra={"actor": name})
            log.info("actor stopped", extra={"actor": name, "seconds": round(time.monotonic() - began, 3)})
        stores.close()


# --------------------------------------------------------------------------------------------
# Supervisor
# --------------------------------------------------------------------------------------------


def serve(settings: Settings) -> int:
    """Run the hub until SIGTERM/SIGINT; returns the process exit status."""
    setup_logging(settings.log_level)
    from xds_hub.security.tls import check_tls_settings

    check_tls_settings(settings)  # a bad certificate / key / CA is a ConfigError now, not in a child
    open_stores(settings, migrate=True).close()
    ctx = multiprocessing.get_context("spawn")
    children = [
        ctx.Process(target=run_http, args=(settings,), name="xds-hub-http"),
        ctx.Process(target=run_actors, args=(settings,), name="xds-hub-actors"),
    ]
    stopping = threading.Event()

    def _forward(sig: int, _frame: FrameType | None) -> None:
        stopping.set()
        for child in children:
            if child.pid and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    for child in children:
        child.start()
    log.warning(
        "xds-hub serving",
        extra={
            "http": f"{settings.host}:{settings.http_port}",
            "actors": [a.name for a in enabled_actors()],
            "db": settings.db_url.split("@")[-1],
        },
    )
    status = 0
    pending = list(children)
    while pending:
        ready = wait([c.sentinel for c in pending], timeout=SIGNAL_POLL)
        for child in [c for c in pending if c.sentinel in ready]:
            child.join()
            pending.remove(child)
            if not stopping.is_set():
                log.error("child exited unexpectedly", extra={"child": child.name, "code": child.exitcode})
                status = 1
                _forward(signal.SIGTERM, None)
    return status
