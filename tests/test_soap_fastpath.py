"""The SOAP fast path (xds_hub.soap.http.SoapFastPath): POSTs to SOAP endpoints skip Flask's
request machinery, with the same answers, and go through Flask again as soon as the app has
request hooks or anything listens to Flask's request signals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, g, request_started

from tests.test_soap_http import (  # test_routes: the fixture, requested by name below
    ECHO,
    envelope,
    fault_codes,
    header,
    make_app,
    parse_reply,
    test_routes,  # noqa: F401
)
from xds_hub.soap.http import SoapFastPath

SOAP = "application/soap+xml; charset=utf-8"


@pytest.fixture
def app(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Flask]:
    request.getfixturevalue("test_routes")
    flask_app, stores = make_app(tmp_path)
    yield flask_app
    stores.close()


def _echo(app: Flask) -> Any:
    return app.test_client().post("/xds/registry", data=envelope(ECHO), content_type=SOAP)


def test_soap_fast_path_is_in_front_of_flask(app: Flask) -> None:
    assert isinstance(app.wsgi_app, SoapFastPath)
    assert not app.wsgi_app._flask_needed()
    r = _echo(app)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/soap+xml")
    root = parse_reply(r.data)
    assert header(root, "RelatesTo") == "urn:uuid:req-1"
    assert header(root, "Action") == ECHO + "Response"


def test_soap_fast_path_and_flask_give_the_same_fault(app: Flask) -> None:
    fast = app.test_client().post("/xds/registry", data=b"not xml", content_type=SOAP)
    app.before_request(lambda: None)  # now every request goes through Flask
    assert app.wsgi_app._flask_needed()  # type: ignore[attr-defined]
    slow = app.test_client().post("/xds/registry", data=b"not xml", content_type=SOAP)
    assert (fast.status_code, fast.headers["Content-Type"]) == (
        slow.status_code,
        slow.headers["Content-Type"],
    )
    assert fault_codes(parse_reply(fast.data)) == fault_codes(parse_reply(slow.data)) == ["soap:Sender"]


def test_soap_fast_path_steps_aside_for_a_before_request_hook(app: Flask) -> None:
    seen: list[str] = []

    @app.before_request
    def note() -> None:
        g.noted = True
        seen.append("before")

    r = _echo(app)
    assert r.status_code == 200 and seen == ["before"]


def test_soap_fast_path_steps_aside_for_request_signal_receivers(app: Flask) -> None:
    seen: list[str] = []

    def started(sender: Flask, **_: Any) -> None:
        seen.append("started")

    request_started.connect(started, app)
    try:
        assert _echo(app).status_code == 200
    finally:
        request_started.disconnect(started, app)
    assert seen == ["started"]


def test_soap_fast_path_leaves_other_methods_and_paths_to_flask(app: Flask, tmp_path: Path) -> None:
    client = app.test_client()
    assert client.get("/xds/registry?wsdl").status_code == 200
    assert client.post("/xds/registry/", data=envelope(ECHO), content_type=SOAP).status_code in (
        308,
        404,
        405,
    )
    r = client.post("/healthz", data=b"x")
    assert r.status_code in (405, 413) and r.headers["Content-Type"] == "application/json"


def test_soap_fast_path_keeps_the_request_size_limit(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("test_routes")
    app, stores = make_app(tmp_path, max_request_bytes=2_000)
    try:
        big = envelope(ECHO, body="<t:P xmlns:t='urn:test'>" + "x" * 5_000 + "</t:P>")
        r = app.test_client().post("/xds/registry", data=big, content_type=SOAP)
        assert r.status_code == 413 and fault_codes(parse_reply(r.data)) == ["soap:Sender"]
    finally:
        stores.close()
