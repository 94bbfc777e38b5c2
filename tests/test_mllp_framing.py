"""MLLP framing (ITI TF-2x C.2.1): the de-framer on any chunking, and the hub's listener over real
sockets: start/end blocks, partial reads, pipelined messages, garbage, broken frames, hang-ups."""

from __future__ import annotations

import itertools
import socket
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.hubproc import Hub
from tests.pix_support import (
    HOPA,
    HOPB,
    NATIONAL,
    ack_code,
    adt,
    cx,
    errors,
    new_id,
    qbp,
    read_replies,
    send,
    send_raw,
)
from xds_hub.pix.mllp import END, START, FrameReader, FrameTooLarge, frame

# ---------------------------------------------------------------------------------------------
# FrameReader
# ---------------------------------------------------------------------------------------------


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@given(
    payloads=st.lists(
        st.binary(max_size=60).map(lambda b: b.replace(START, b"").replace(END, b"")), max_size=6
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=20),
    junk=st.binary(max_size=10).map(lambda b: b.replace(START, b"")),
)
@settings(max_examples=300, deadline=None)
def test_mllp_frames_survive_any_chunking(payloads: list[bytes], cuts: list[int], junk: bytes) -> None:
    stream = junk + b"".join(frame(p) + junk for p in payloads)
    reader = FrameReader()
    out: list[bytes] = []
    for chunk in _chunks(stream, cuts):
        out += reader.feed(chunk)
    assert out == payloads


def test_mllp_frame_without_trailing_cr_and_bytes_between_frames() -> None:
    reader = FrameReader()
    assert reader.feed(b"noise\x0bA\x1c\x0bB\x1c\r\r\n\x0bC") == [b"A", b"B"]
    assert reader.skipped == len(b"noise") + len(b"\r\n")
    assert reader.feed(b"\x1c\r") == [b"C"]


def test_mllp_start_block_inside_a_frame_drops_the_broken_frame() -> None:
    reader = FrameReader()
    assert reader.feed(b"\x0bbroken\x0bgood\x1c\r") == [b"good"]
    assert reader.broken == 1


def test_mllp_oversized_frame_is_refused() -> None:
    reader = FrameReader(max_frame=10)
    try:
        reader.feed(b"\x0b" + b"x" * 11)
    except FrameTooLarge:
        pass
    else:
        raise AssertionError("an oversized frame must be refused")


# ---------------------------------------------------------------------------------------------
# The listener
# ---------------------------------------------------------------------------------------------


def test_mllp_several_messages_on_one_connection_in_order(hub: Hub) -> None:
    messages = [adt("A01", cx(new_id(), HOPA), control=f"M{i}") for i in range(5)]
    with socket.create_connection(("127.0.0.1", hub.mllp_port), timeout=30) as sock:
        for m in messages:  # one at a time
            sock.sendall(frame(m.encode()))
            (reply,) = read_replies(sock, 1)
            assert ack_code(reply) == "AA"
        sock.sendall(b"".join(frame(m.encode()) for m in messages[:0]))
        pipelined = [adt("A01", cx(new_id(), HOPA), control=f"P{i}") for i in range(20)]
        sock.sendall(b"".join(frame(m.encode()) for m in pipelined))  # pipelined
        replies = read_replies(sock, 20)
    assert [r.first("MSA").value(2) for r in replies] == [f"P{i}" for i in range(20)]  # type: ignore[union-attr]
    assert {ack_code(r) for r in replies} == {"AA"}


def test_mllp_partial_reads_byte_by_byte(hub: Hub) -> None:
    data = frame(adt("A04", cx(new_id(), HOPA), control="BYTES").encode())
    with socket.create_connection(("127.0.0.1", hub.mllp_port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            sock.sendall(data[i : i + 1])
            if i % 50 == 0:
                time.sleep(0.001)
        (reply,) = read_replies(sock, 1)
    assert ack_code(reply) == "AA"
    assert reply.first("MSA").value(2) == "BYTES"  # type: ignore[union-attr]


def test_mllp_garbage_frame_gets_ar_and_the_connection_goes_on(hub: Hub) -> None:
    data = frame(b"this is not HL7") + frame(adt("A01", cx(new_id(), HOPA), control="AFTER").encode())
    garbage, good = send_raw(hub.mllp_port, data, 2)
    assert ack_code(garbage) == "AR"
    assert errors(garbage) == [("100", "")]
    assert ack_code(good) == "AA"


def test_mllp_empty_frame_and_bad_delimiters_get_ar(hub: Hub) -> None:
    empty, bad = send_raw(hub.mllp_port, frame(b"") + frame(b"MSH#^~\\&#A#B"), 2)
    assert ack_code(empty) == "AR" and errors(empty) == [("100", "")]
    assert ack_code(bad) == "AR" and errors(bad) == [("102", "MSH^1")]


def test_mllp_bytes_outside_frames_and_broken_frames_are_skipped(hub: Hub) -> None:
    good = adt("A01", cx(new_id(), HOPA), control="AFTER-BROKEN").encode()
    data = b"\r\nnoise" + START + b"MSH|^~\\&|broken, never ended" + frame(good)
    (reply,) = send_raw(hub.mllp_port, data, 1)
    assert ack_code(reply) == "AA"
    assert reply.first("MSA").value(2) == "AFTER-BROKEN"  # type: ignore[union-attr]


def test_mllp_client_hanging_up_mid_frame_does_not_stop_the_listener(hub: Hub) -> None:
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", hub.mllp_port), timeout=10) as sock:
            sock.sendall(START + b"MSH|^~\\&|half a message")
    with socket.create_connection(("127.0.0.1", hub.mllp_port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
        sock.sendall(frame(adt("A01", cx(new_id(), HOPA)).encode()))
    assert ack_code(send(hub.mllp_port, adt("A01", cx(new_id(), HOPA)))) == "AA"


def test_mllp_latin1_message_is_answered_in_latin1(hub: Hub) -> None:
    msg = adt("A01", cx(new_id(), HOPA), name="M\u00dcLLER^J\u00d6RG").replace(
        "|2.3.1", "|2.3.1||||||8859/1", 1
    )
    (reply,) = send_raw(hub.mllp_port, frame(msg.encode("latin-1")), 1)
    assert ack_code(reply) == "AA"
    assert reply.charset == "8859/1"


def test_mllp_queries_and_feeds_mixed_in_one_burst(hub: Hub) -> None:
    local = cx(new_id(), HOPA)
    data = frame(adt("A01", local).encode()) + frame(qbp(local).encode())
    feed, query = send_raw(hub.mllp_port, data, 2)
    assert ack_code(feed) == "AA"
    assert query.first("QAK").value(2) == "OK"  # type: ignore[union-attr]


def test_mllp_long_pipelined_burst_in_order_each_message_seeing_the_earlier_ones(hub: Hub) -> None:
    """A burst longer than what the connection hands to its committer at once: feeds, updates
    and queries that depend on the messages before them, answered in order; then one at a time
    on the same connection."""
    locals_ = [cx(new_id(), HOPA) for _ in range(40)]
    nationals = [cx(new_id("N"), NATIONAL) for _ in range(40)]
    burst: list[str] = []
    for i, (local, national) in enumerate(zip(locals_, nationals, strict=True)):
        burst.append(adt("A01", local, national, control=f"F{i}"))
        burst.append(qbp(local, control=f"Q{i}"))
        if i % 2:  # a second hospital joins through the national ID, then is queried
            other = cx(new_id(), HOPB)
            burst.append(adt("A04", other, national, control=f"B{i}", sending=("HOPB_ADT", "HOPB")))
            burst.append(qbp(other, control=f"R{i}"))
    with socket.create_connection(("127.0.0.1", hub.mllp_port), timeout=60) as sock:
        sock.sendall(b"".join(frame(m.encode()) for m in burst))
        replies = read_replies(sock, len(burst))
        sock.sendall(frame(qbp(locals_[0], control="LAST").encode()))
        (last,) = read_replies(sock, 1)
    controls = [r.first("MSA").value(2) for r in replies]  # type: ignore[union-attr]
    assert controls == [m.split("\r")[0].split("|")[9] for m in burst]
    assert {ack_code(r) for r in replies} == {"AA"}
    for reply, control in zip(replies, controls, strict=True):
        if control[0] in "QR":
            assert reply.first("QAK").value(2) == "OK", (control, reply.text)  # type: ignore[union-attr]
        if control[0] == "R":  # Hopital B's patient is linked to Hopital A's through the national ID
            pid3 = reply.first("PID").value(3)  # type: ignore[union-attr]
            assert HOPA in reply.text and NATIONAL in reply.text, (control, pid3)
    assert last.first("QAK").value(2) == "OK"  # type: ignore[union-attr]
