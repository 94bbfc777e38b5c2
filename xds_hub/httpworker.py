"""The gunicorn worker of the hub: gunicorn's gthread worker, minus its HTML error pages.

gunicorn answers an HTTP request it cannot parse (bad request line, bad chunking, oversized
headers ...) itself, before the application sees it, with a small HTML page.  The hub promises
never to answer with HTML, so this worker replaces that writer with one that answers the same
status with a SOAP 1.2 Fault (the hub is a SOAP server first; JSON clients read the status).
"""

from __future__ import annotations

import socket
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from xds_hub.errors import FaultCode, SoapFault
from xds_hub.soap.envelope import render_fault


def write_fault(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    code = FaultCode.SENDER if status_int < 500 else FaultCode.RECEIVER
    body = render_fault(SoapFault(code, f"{reason}: {mesg}" if mesg else reason, http_status=status_int))
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/soap+xml; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


class HubWorker(ThreadWorker):  # type: ignore[misc]
    def init_process(self) -> Any:
        util.write_error = write_fault
        return super().init_process()
