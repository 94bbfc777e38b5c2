"""Security alerts from the listeners: a peer refused during the TLS handshake (ITI-19 node
authentication failure) becomes a Security Alert in the audit trail (ITI-20).

:func:`refusal_recorder` returns the hook a :class:`~xds_hub.security.tls.ServerContext` calls
(``server_ssl_context(settings, on_refused=...)``, ``gunicorn_tls_options(settings, on_refused=...)``).
It opens its own database engine on first use, in the process that refuses the peer (a gunicorn
worker, the actors process), and never raises.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from xds_hub.audit import events
from xds_hub.audit.store import record
from xds_hub.config import Settings
from xds_hub.security.tls import RefusalHook
from xds_hub.storage.db import make_engine


def refusal_recorder(settings: Settings, listener: str = "http", engine: Engine | None = None) -> RefusalHook:
    """A hook recording a node-authentication-failure Security Alert for each refused TLS peer.

    ``listener`` names the hub's side ("http", "mllp" or "dicom") for the alert's hub participant.
    """
    lock = threading.Lock()
    engines: list[Engine] = [engine] if engine is not None else []

    def hub_node() -> events.Node:
        if listener == "dicom":
            return events.hub_dicom(settings)
        if listener == "mllp":
            return events.hub_mllp(settings, f"mllp:{settings.mllp_port}")
        return events.hub_http(settings, "/")

    def on_refused(address: str | None, exc: BaseException) -> None:
        with lock:
            if not engines:
                engines.append(make_engine(settings.db_url))
        message = events.node_authentication_failure(
            events.audit_source(settings),
            hub_node(),
            events.peer(None, address),
            f"TLS handshake refused: {exc}"[:1000],
        )
        record(message, engines[0])

    return on_refused
