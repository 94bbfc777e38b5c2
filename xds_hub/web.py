"""The HTTP side of the hub: a Flask application built by :func:`create_app` (SOAP, WADO, health)."""

from __future__ import annotations

import socket
from typing import Any

from flask import Flask, Response, jsonify, request
from sqlalchemy import text

from xds_hub import __version__
from xds_hub.config import Settings
from xds_hub.storage.stores import Stores, open_stores


def listener_ports(settings: Settings) -> dict[str, int]:
    """The non-HTTP listeners that must accept connections before the hub is ready."""
    from xds_hub.server import enabled_actors

    return {name: port for name, port in ((a.name, a.port(settings)) for a in enabled_actors()) if port}


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def create_app(settings: Settings, stores: Stores | None = None) -> Flask:
    """The WSGI application for ``settings``; tests may pass their own stores."""
    app = Flask("xds_hub")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    stores = stores or open_stores(settings, migrate=False)
    app.extensions["xds_hub"] = {"settings": settings, "stores": stores}

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        checks: dict[str, Any] = {}
        try:
            with stores.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # any driver error means "not ready"
            checks["database"] = f"down: {type(exc).__name__}"
        probe_host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
        for name, port in listener_ports(settings).items():
            checks[name] = "ok" if _accepts(probe_host, port) else "not listening"
        ok = all(v == "ok" for v in checks.values())
        body = {"status": "ok" if ok else "starting", "version": __version__, "checks": checks}
        return jsonify(body), 200 if ok else 503

    from xds_hub.soap.http import install_soap_routes

    install_soap_routes(app, settings, stores)
    app.register_blueprint(__import__("xds_hub.imaging.web", fromlist=["_"]).make_blueprint(settings, stores))
    install_error_handlers(app)
    return app


def install_error_handlers(app: Flask) -> None:
    """HTTP errors (404, 405, 413, 500, ...) as a SOAP fault on SOAP paths and JSON elsewhere; never
    an HTML page, never a stack trace (the exception is logged)."""
    from werkzeug.exceptions import HTTPException

    from xds_hub.log import get_logger
    from xds_hub.soap.http import error_response

    log = get_logger("xds_hub.web")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return error_response(exc, request.path)

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> Response:
        log.exception("request failed", extra={"path": request.path, "error": type(exc).__name__})
        return error_response(exc, request.path)
