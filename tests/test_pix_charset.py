"""Non-ASCII text through the PIX Manager over MLLP (SQLite and PostgreSQL): accented names,
identifiers and sending facilities go in and come back as they were, in UTF-8 and ISO 8859-1
(MSH-18); only the delimiters, the escape character and CR/LF are escaped (HL7 v2.7 2.7.4/2.7.5)."""

from __future__ import annotations

import json
import socket
import uuid

from sqlalchemy import select

from tests.hubproc import Hub
from tests.pix_support import AFFINITY, HOPA, HOPB, ack_code, adt, cx, errors, new_id, pid3, qbp, send
from xds_hub.pix import hl7v2
from xds_hub.pix.mllp import FrameReader, frame
from xds_hub.pix.tables import pix_identity
from xds_hub.storage.db import make_engine

UTF8 = "UNICODE UTF-8"


def _with_charset(text: str, charset: str) -> str:
    """``text`` with MSH-18 set (MSH-13..17 empty)."""
    head, _, rest = text.partition("\r")
    return f"{head}||||||{charset}\r{rest}"


def _exchange(port: int, text: str, codec: str) -> tuple[bytes, hl7v2.V2Message]:
    """One message encoded in ``codec``; the raw reply and its parse (decoded with ``codec``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(frame(text.encode(codec)))
        reader = FrameReader()
        frames: list[bytes] = []
        while not frames:
            data = sock.recv(65536)
            assert data, "the hub closed the connection without replying"
            frames = reader.feed(data)
    return frames[0], hl7v2.parse(frames[0].decode(codec))


def _demographics(hub: Hub, authority: str, value: str) -> dict[str, str]:
    engine = make_engine(hub.settings.db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(pix_identity.c.demographics).where(
                    pix_identity.c.authority == authority, pix_identity.c.value == value
                )
            ).one()
    finally:
        engine.dispose()
    return dict(json.loads(row[0]))


def test_pix_accented_names_and_ids_round_trip_in_utf8(hub: Hub) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    local, regional = f"Zoë-Müller-{tag}", f"R-Pourtalès-{tag}"
    feed = _with_charset(
        adt(
            "A01",
            cx(local, HOPA),
            cx(regional, AFFINITY),
            sending=("Hôpital Pourtalès", "Neuchâtel"),
            name="Müller^Zoë^^^^^L",
        ),
        UTF8,
    )
    raw, reply = _exchange(hub.mllp_port, feed, "utf-8")
    assert ack_code(reply) == "AA", reply.text
    # The reply goes back to the sender, in the sender's character set, not hex-escaped.
    assert (reply.msh.value(5), reply.msh.value(6), reply.charset) == ("Hôpital Pourtalès", "Neuchâtel", UTF8)
    assert "Hôpital Pourtalès|Neuchâtel".encode() in raw and b"\\X" not in raw
    assert _demographics(hub, HOPA, local) == {
        "family": "Müller",
        "given": "Zoë",
        "birth_date": "19700101",
        "sex": "M",
    }

    # ITI-9 from either side: the accented identifier comes back exactly, unescaped.
    raw, answer = _exchange(hub.mllp_port, _with_charset(qbp(cx(regional, AFFINITY)), UTF8), "utf-8")
    assert answer.first("QAK").value(2) == "OK"  # type: ignore[union-attr]
    assert pid3(answer) == {cx(local, HOPA)}
    assert f"{local}^^^&{HOPA}&ISO".encode() in raw and b"\\X" not in raw
    _raw, answer = _exchange(hub.mllp_port, _with_charset(qbp(cx(local, HOPA)), UTF8), "utf-8")
    assert pid3(answer) == {cx(regional, AFFINITY)}
    assert answer.first("QPD").value(3) == local  # type: ignore[union-attr]


def test_pix_latin1_message_is_answered_in_latin1(hub: Hub) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    local = f"Hélène-{tag}"
    feed = _with_charset(
        adt("A04", cx(local, HOPB), sending=("Hôpital", "Pourtalès"), name="Dvořák^Hélène"), "8859/1"
    )
    # Dvořák has no ISO 8859-1 form: the name is sent as Dvorak, the rest in Latin-1 bytes.
    feed = feed.replace("Dvořák", "Dvorak")
    raw, reply = _exchange(hub.mllp_port, feed, "latin-1")
    assert ack_code(reply) == "AA", reply.text
    assert "Pourtalès".encode("latin-1") in raw and reply.msh.value(6) == "Pourtalès"
    assert _demographics(hub, HOPB, local)["given"] == "Hélène"
    _raw, answer = _exchange(hub.mllp_port, _with_charset(qbp(cx(local, HOPB)), "8859/1"), "latin-1")
    assert answer.first("QAK").value(2) == "OK"  # type: ignore[union-attr]
    assert answer.first("QPD").value(3) == local  # type: ignore[union-attr]


def test_pix_escaped_delimiters_in_an_identifier_round_trip(hub: Hub) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    # "A&B|C~Ü" as CX-1: every delimiter escaped by the sender (2.7.4).
    escaped = f"A\\T\\B\\F\\C\\R\\Ü-{tag}"
    value = f"A&B|C~Ü-{tag}"
    regional = cx(new_id("R"), AFFINITY)
    assert ack_code(send(hub.mllp_port, adt("A01", f"{escaped}^^^&{HOPA}&ISO", regional))) == "AA"
    answer = send(hub.mllp_port, qbp(regional))
    assert pid3(answer) == {cx(value, HOPA)}
    assert f"A\\T\\B\\F\\C\\R\\Ü-{tag}^^^&{HOPA}&ISO" in answer.text


def test_pix_error_text_keeps_accents(hub: Hub) -> None:
    unknown = f"Zoë-{uuid.uuid4().hex[:8]}"
    reply = send(hub.mllp_port, _with_charset(qbp(cx(unknown, HOPA)), UTF8))
    assert ack_code(reply) == "AE"
    assert errors(reply) == [("204", "QPD^1^3^1^1")]
    err = reply.first("ERR")
    assert err is not None and f"{unknown} ({HOPA}) is not known" in err.value(8)
    assert "\\X" not in reply.text
