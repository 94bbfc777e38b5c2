"""The SQLite writer gate of xds_hub.storage.db: the hub's writers queue on a thread lock and an
flock, across threads and across (forked) processes, and a nested turn of one thread works."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from xds_hub.storage.db import make_engine, write_transaction, writer_gate
from xds_hub.storage.migrate import upgrade
from xds_hub.storage.schema import patient


def _hold_gate_in_child(engine: Engine, entered: Any, out: Any) -> None:
    """Forked child: take the gate of the engine it inherited (reset by the at-fork hook)."""
    began = time.monotonic()
    with writer_gate(engine).turn():
        entered.set()
        out.put(time.monotonic() - began)


def test_writer_gate_orders_writers_of_forked_processes(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    upgrade(engine)
    gate = writer_gate(engine)
    assert gate.lock_path == tmp_path / "hub.sqlite.writelock"
    ctx = multiprocessing.get_context("fork")
    entered, out = ctx.Event(), ctx.Queue()
    with gate.turn():  # the parent holds the gate (its thread lock and flock) across the fork
        child = ctx.Process(target=_hold_gate_in_child, args=(engine, entered, out))
        child.start()
        assert not entered.wait(0.5)  # the child waits for the parent's turn to end
    assert entered.wait(10)
    child.join(10)
    assert child.exitcode == 0
    assert out.get(timeout=5) >= 0.4
    engine.dispose()


def test_writer_gate_serialises_threads_and_allows_a_nested_turn(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    upgrade(engine)
    gate = writer_gate(engine)
    inside: list[int] = []
    overlaps: list[int] = []

    def writer(i: int) -> None:
        with gate.turn(), gate.turn():  # nested: the same thread takes it again
            inside.append(i)
            if len(inside) > 1:
                overlaps.append(i)
            time.sleep(0.01)
            inside.remove(i)
        with write_transaction(engine) as conn:
            conn.execute(patient.insert(), {"patient_id": f"WG{i}", "created": "x", "merged_into": None})

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert overlaps == []
    with engine.connect() as conn:
        assert len(conn.execute(patient.select()).all()) == 8
    engine.dispose()


def test_writer_gate_of_an_in_memory_database_has_no_lock_file() -> None:
    engine = make_engine("sqlite://")
    assert writer_gate(engine).lock_path is None
    with writer_gate(engine).turn():
        pass
