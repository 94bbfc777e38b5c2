"""The PIX Manager's PostgreSQL scripts (xds_hub.pix.store.render): every parameter reaches the
server as the value it was, whatever it holds (quotes, backslashes, non-ASCII, SQL), and a NUL,
which PostgreSQL text cannot hold, is refused as psycopg refuses it."""

from __future__ import annotations

import psycopg
import pytest

from xds_hub.pix.store import render
from xds_hub.storage.stores import Stores

VALUES: list[object] = [
    "plain",
    "O'Brien",
    "''",
    "back\\slash\\",
    "\\'; DROP TABLE patient; --",
    "Zoë 北京 🙂",
    "E'x'",
    "%s",
    "",
    0,
    -42,
    2**62,
    1.5,
    None,
    True,
]


def test_pix_render_round_trips_every_value(stores: Stores) -> None:
    if stores.engine.dialect.name == "sqlite":
        pytest.skip("PostgreSQL scripts only")
    with stores.engine.connect() as conn:
        script = render(
            conn,
            [
                ("SELECT 1", ()),
                ("SELECT " + ", ".join(["%s"] * len(VALUES)), VALUES),
            ],
        )
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cur.execute(script)
        cur.nextset()
        assert list(cur.fetchone()) == VALUES
        with pytest.raises(ValueError):
            render(conn, [("SELECT %s, %s", ("one",))])
        with pytest.raises(psycopg.DataError):
            render(conn, [("SELECT %s", ("nul\x00byte",))])
