"""The SOAP 1.2 HTTP binding of the hub's endpoints (SOAP 1.2 Part 2, 7; ITI TF-2 Appendix V).

For each endpoint path of :data:`xds_hub.soap.routes.ROUTES`:

- ``POST``: read the request (``application/soap+xml``, or ``multipart/related`` MTOM/XOP whose
  attachments are streamed into the blob store), check the envelope and its WS-Addressing headers,
  find the handler of wsa:Action on that path (else ``wsa:ActionNotSupported``), call it, and
  write its reply: MTOM when the request was MTOM or the reply has attachments (or asks for it),
  plain SOAP otherwise.  A :class:`SoapFault` becomes a SOAP 1.2 Fault (HTTP 400 for env:Sender,
  500 otherwise); any other exception a env:Receiver fault, logged, never a stack trace.
- ``GET ?wsdl``: the endpoint's WSDL, addressed to the URL the client used; ``GET ?xsd=NAME``:
  the schemas it imports.

:func:`error_response` renders HTTP errors (404, 405, 413, 500, ...) raised outside the views:
a SOAP fault on a SOAP path, JSON elsewhere, never HTML.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from flask import Flask, Response, request
from flask import signals as flask_signals
from lxml import etree
from werkzeug.exceptions import ClientDisconnected, HTTPException, MethodNotAllowed, RequestEntityTooLarge
from werkzeug.wrappers import Request

from xds_hub.audit.soap import audit_exchange
from xds_hub.config import Settings
from xds_hub.errors import FaultCode, SoapFault
from xds_hub.log import get_logger
from xds_hub.repository.inline import InlineWriters
from xds_hub.security.tls import identity_from_environ
from xds_hub.soap import faults, wsdl
from xds_hub.soap.envelope import (
    Addressing,
    check_action_parameter,
    parse_envelope,
    read_addressing,
    render_fault,
    render_response,
)
from xds_hub.soap.mtom import MediaType, mtom_body, parse_media_type, read_multipart, xop_references
from xds_hub.soap.routes import ROUTES, handler_for, load_all
from xds_hub.soap.types import Attachment, SoapRequest, SoapResponse
from xds_hub.storage.stores import Stores

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = get_logger("xds_hub.soap")

#: Largest SOAP envelope (plain request, or root part of an MTOM request) held in memory.
MAX_ENVELOPE_BYTES = 64 * 1024 * 1024
#: Media types accepted for a plain (non-MTOM) SOAP request.
_PLAIN_TYPES = frozenset({"application/soap+xml", "text/xml", "application/xml", ""})
_READ_CHUNK = 256 * 1024


@dataclass(slots=True)
class _Exchange:
    """What is known about the request so far (a fault still needs it for wsa:RelatesTo)."""

    path: str
    message_id: str | None = None
    addressing: Addressing | None = None
    mtom: bool = False
    body: etree._Element | None = None
    reference_parameters: tuple[etree._Element, ...] = field(default_factory=tuple)


def _soap_content_type(action: str) -> str:
    return f'application/soap+xml; charset=utf-8; action="{action}"'


def fault_response(fault: SoapFault, exchange: _Exchange | None = None) -> Response:
    """The HTTP response carrying ``fault``, related to the request when its MessageID is known."""
    body = render_fault(
        fault,
        exchange.message_id if exchange else None,
        exchange.reference_parameters if exchange else (),
    )
    if isinstance(fault, faults.DetailedFault) and fault.soap11:
        content_type = "text/xml; charset=utf-8"  # the SOAP 1.1 HTTP binding
    else:
        content_type = _soap_content_type(faults.fault_action(fault))
    return Response(body, status=fault.http_status, content_type=content_type)


def _client_reader(stream: IO[bytes]) -> Callable[[int], bytes]:
    """``stream.read``, where any failure to read is the client's (bad chunking, early end ...)."""

    def read(size: int) -> bytes:
        try:
            return stream.read(size)
        except (ClientDisconnected, RequestEntityTooLarge):  # the caller answers these itself
            raise
        except Exception as exc:  # the server's HTTP parser refusing the client's bytes
            raise faults.sender(f"the request body could not be read: {exc}") from exc

    return read


def _read_all(read: Callable[[int], bytes], limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        data = read(_READ_CHUNK)
        if not data:
            return b"".join(chunks)
        size += len(data)
        if size > limit:
            raise faults.sender(f"the SOAP envelope is over {limit} bytes; send documents as MTOM", 413)
        chunks.append(data)


class SoapEndpoints:
    """The views serving the SOAP endpoints of one Flask app."""

    def __init__(self, settings: Settings, stores: Stores) -> None:
        self.settings = settings
        self.stores = stores
        self.max_envelope = min(MAX_ENVELOPE_BYTES, settings.max_request_bytes)
        #: Mutual TLS: each request knows its node from the client certificate (ITI-19).
        self.mutual_tls = bool(settings.tls_cert and settings.tls_ca)

    # -- GET --------------------------------------------------------------------------------

    def get(self, path: str, request: Request) -> Response:
        args = request.args
        name = wsdl.WSDL_FOR_PATH.get(path) if "wsdl" in {k.lower() for k in args} else args.get("xsd")
        if not name:
            raise MethodNotAllowed(valid_methods=["POST"])
        try:
            body = wsdl.render_document(name, request.base_url)
        except KeyError:
            return fault_response(faults.sender(f"no schema {name!r} here", 404))
        return Response(body, status=200, content_type="text/xml; charset=utf-8")

    # -- POST -------------------------------------------------------------------------------

    def post(self, path: str, request: Request) -> Response:
        exchange = _Exchange(path)
        try:
            soap_request = self._read(exchange, request)
            handler = handler_for(path, soap_request.action)
            if handler is None:  # (checked while reading; kept for type narrowing)
                raise faults.action_not_supported(soap_request.action, path)
            reply: SoapResponse | None = None
            error: BaseException | None = None
            try:
                reply = handler(soap_request, self.stores, self.settings)
            except BaseException as exc:
                error = exc
                raise
            finally:  # the transaction's audit message (ITI-20), queued; never raises
                audit_exchange(soap_request, reply, error, self.settings, self.stores)
            return self._reply(reply, exchange)
        except SoapFault as fault:
            log.info(
                "SOAP fault",
                extra={"path": path, "code": fault.code.value, "subcode": fault.subcode, "why": fault.reason},
            )
            return fault_response(fault, exchange)
        except RequestEntityTooLarge:
            limit = self.settings.max_request_bytes
            return fault_response(faults.sender(f"the request is larger than {limit} bytes", 413), exchange)
        except ClientDisconnected:
            early = faults.sender("the request body ended early (client disconnected?)")
            return fault_response(early, exchange)
        except Exception as exc:
            log.exception(
                "SOAP request failed unexpectedly",
                extra={
                    "path": path,
                    "action": exchange.addressing.action if exchange.addressing else None,
                    "message_id": exchange.message_id,
                    "error": type(exc).__name__,
                },
            )
            internal = faults.receiver("internal error of the hub; the request was not processed")
            return fault_response(internal, exchange)

    def _envelope(
        self, exchange: _Exchange, data: bytes, http_actions: tuple[str | None, ...]
    ) -> etree._Element:
        envelope = parse_envelope(data)
        exchange.message_id = envelope.message_id
        addressing = read_addressing(envelope)
        exchange.addressing = addressing
        exchange.reference_parameters = addressing.reference_parameters
        for http_action in http_actions:
            check_action_parameter(addressing.action, http_action)
        if handler_for(exchange.path, addressing.action) is None:
            raise faults.action_not_supported(addressing.action, exchange.path)
        exchange.body = envelope.body
        return envelope.root

    def _read(self, exchange: _Exchange, request: Request) -> SoapRequest:
        media = parse_media_type(request.headers.get("Content-Type", ""))
        read = _client_reader(request.stream)
        attachments: Mapping[str, Attachment]
        if media.mime == "multipart/related":
            exchange.mtom = True
            attachments = self._read_mtom(exchange, media, read)
        elif media.mime in _PLAIN_TYPES:
            root = self._envelope(exchange, _read_all(read, self.max_envelope), (media.get("action"),))
            if xop_references(root):
                raise faults.sender("xop:Include in a message that is not multipart/related (MTOM)")
            attachments = {}
        else:
            raise faults.sender(
                f"unsupported Content-Type {media.mime!r}: "
                "send application/soap+xml or multipart/related (MTOM)",
                415,
            )
        addressing, body = exchange.addressing, exchange.body
        assert addressing is not None and body is not None
        identity = identity_from_environ(request.environ, self.settings.domain) if self.mutual_tls else None
        return SoapRequest(
            action=addressing.action,
            body=body,
            message_id=addressing.message_id,
            to=addressing.to,
            reply_to=addressing.reply_to,
            attachments=attachments,
            mtom=exchange.mtom,
            path=exchange.path,
            remote_addr=request.remote_addr,
            identity=identity,
        )

    def _read_mtom(
        self, exchange: _Exchange, media: MediaType, read: Callable[[int], bytes]
    ) -> Mapping[str, Attachment]:
        start_info = parse_media_type(media.get("start-info") or "")

        def on_root(data: bytes, headers: Mapping[str, str]) -> etree._Element:
            part_type = parse_media_type(headers.get("content-type", ""))
            actions = (media.get("action"), start_info.get("action"), part_type.get("action"))
            return self._envelope(exchange, data, actions)

        # Small parts stay in memory, for the database (ITI-41 stores them with their metadata).
        writers = InlineWriters(self.stores.blobs, self.settings.inline_document_bytes)
        message = read_multipart(read, media, writers, on_root, max_root_bytes=self.max_envelope)
        return message.attachments

    def _reply(self, reply: SoapResponse, exchange: _Exchange) -> Response:
        xml = render_response(reply.body, reply.action, exchange.addressing, reply.body_xml)
        if exchange.mtom or reply.mtom or reply.attachments:
            body = mtom_body(xml, reply.attachments, self.stores.blobs)
            return Response(
                body.chunks,
                status=200,
                headers={"Content-Type": body.content_type, "Content-Length": str(body.content_length)},
                direct_passthrough=True,
            )
        return Response(xml, status=200, content_type=_soap_content_type(reply.action))


def install_soap_routes(app: Flask, settings: Settings, stores: Stores) -> None:
    """Register the SOAP endpoints of the outside interface ("SOAP endpoints") on ``app``."""
    load_all()  # import every transaction handler now, not on a request
    endpoints = SoapEndpoints(settings, stores)
    for path in ROUTES:
        app.add_url_rule(
            path,
            endpoint=f"soap{path.replace('/', '_')}",
            view_func=_view(endpoints, path),
            methods=["GET", "POST"],
        )
    app.extensions.setdefault("xds_hub_soap", endpoints)
    app.wsgi_app = SoapFastPath(app, endpoints, app.wsgi_app)  # type: ignore[method-assign]


def _view(endpoints: SoapEndpoints, path: str) -> Callable[[], Response]:
    def view() -> Response:
        if request.method == "POST":
            return endpoints.post(path, request)
        return endpoints.get(path, request)

    return view


#: Flask's per-request signals; a receiver on any of them means requests must go through Flask.
_FLASK_SIGNALS = (
    flask_signals.request_started,
    flask_signals.request_finished,
    flask_signals.request_tearing_down,
    flask_signals.got_request_exception,
    flask_signals.appcontext_pushed,
    flask_signals.appcontext_popped,
    flask_signals.appcontext_tearing_down,
)


class SoapFastPath:
    """WSGI middleware in front of Flask: a POST to a SOAP endpoint path goes straight to
    :meth:`SoapEndpoints.post` with a plain Werkzeug request, skipping Flask's request and
    application contexts, URL matching and response processing (some 0.1 ms of CPU per request,
    a few per cent of a small ITI-41).  The views never use Flask's globals: same answers.

    It steps aside (everything goes through Flask) as soon as the app has app-wide
    ``before_request`` / ``after_request`` / ``teardown_request`` functions or URL value
    preprocessors, or anything listens to Flask's request signals: whoever adds those expects
    them to run for every request.
    """

    def __init__(self, app: Flask, endpoints: SoapEndpoints, flask_wsgi_app: WSGIApplication) -> None:
        self.app = app
        self.endpoints = endpoints
        self.flask_wsgi_app = flask_wsgi_app

    def _flask_needed(self) -> bool:
        app = self.app
        return bool(
            app.before_request_funcs.get(None)
            or app.after_request_funcs.get(None)
            or app.teardown_request_funcs.get(None)
            or app.url_value_preprocessors.get(None)
            or any(signal.receivers for signal in _FLASK_SIGNALS)
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "POST" or path not in ROUTES or self._flask_needed():
            return self.flask_wsgi_app(environ, start_response)
        request = Request(environ)
        request.max_content_length = self.app.config.get("MAX_CONTENT_LENGTH")
        response = self.endpoints.post(path, request)
        return response(environ, start_response)


def is_soap_path(path: str) -> bool:
    return path.rstrip("/") in ROUTES or path in ROUTES


def error_response(exc: HTTPException | Exception, path: str) -> Response:
    """An HTTP error raised outside the SOAP views as a SOAP fault (SOAP paths) or JSON (elsewhere)."""
    status = exc.code if isinstance(exc, HTTPException) and exc.code else 500
    text = exc.description if isinstance(exc, HTTPException) and exc.description else "internal error"
    if is_soap_path(path):
        code = FaultCode.SENDER if 400 <= status < 500 else FaultCode.RECEIVER
        response = fault_response(SoapFault(code, text, http_status=status))
    else:
        response = Response(
            json.dumps({"status": status, "error": text}), status=status, content_type="application/json"
        )
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response
