"""Group commit of registry writes (xds_hub.registry.group_commit), on both backends.

The first unit of work holds its batch open until the others are queued; they join its batch
when it ends, each in its own savepoint, and the batch commits once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, select

from tests.test_registry_support import SETTINGS, codes, document, known_patient, package
from xds_hub.domain.metadata import Submission
from xds_hub.domain.validate import validate_submission
from xds_hub.errors import ErrorCode, XdsError
from xds_hub.registry import store
from xds_hub.registry.group_commit import GroupCommit, group_commit
from xds_hub.registry.register import register_submission
from xds_hub.storage.db import read_transaction, write_transaction
from xds_hub.storage.schema import patient
from xds_hub.storage.stores import Stores


def _batched(committer: GroupCommit, works: list[Callable[[Connection], Any]]) -> list[tuple[str, Any]]:
    """Run ``works`` from one thread each while a first unit keeps the committer busy, so that they
    queue up and form one batch; returns ("ok", value) or ("error", exception) per work."""
    release = threading.Event()
    started = threading.Event()

    def hold(_conn: Connection) -> str:
        started.set()
        assert release.wait(30)
        return "held"

    outcomes: list[tuple[str, Any]] = [("pending", None)] * len(works)

    def go(index: int, work: Callable[[Connection], Any]) -> None:
        try:
            outcomes[index] = ("ok", committer.run(work))
        except Exception as exc:
            outcomes[index] = ("error", exc)

    holder = threading.Thread(target=lambda: committer.run(hold))
    holder.start()
    assert started.wait(30)
    threads = [threading.Thread(target=go, args=(i, w)) for i, w in enumerate(works)]
    for t in threads:
        t.start()
    while True:  # every unit queued behind the held batch
        with committer._lock:
            if len(committer._queue) == len(works):
                break
        threading.Event().wait(0.01)
    release.set()
    for t in [holder, *threads]:
        t.join(60)
    return outcomes


def _add_patient(pid: str, fail: bool = False) -> Callable[[Connection], str]:
    def work(conn: Connection) -> str:
        conn.execute(patient.insert(), {"patient_id": pid, "created": "2026-01-01", "merged_into": None})
        if fail:
            raise ValueError(f"unit {pid} fails after writing")
        return pid

    return work


def _stored_patients(stores: Stores, pids: list[str]) -> set[str]:
    with read_transaction(stores.engine) as conn:
        rows = conn.execute(select(patient.c.patient_id).where(patient.c.patient_id.in_(pids)))
        return {r.patient_id for r in rows}


def test_iti42_group_commit_isolates_a_failing_unit_of_a_batch(stores: Stores) -> None:
    committer = GroupCommit(stores.engine)
    pids = [f"GC{i}^^^&1.2.3&ISO" for i in range(5)]
    outcomes = _batched(committer, [_add_patient(pid, fail=(i == 2)) for i, pid in enumerate(pids)])
    assert [o[0] for o in outcomes] == ["ok", "ok", "error", "ok", "ok"]
    assert isinstance(outcomes[2][1], ValueError)
    assert [o[1] for i, o in enumerate(outcomes) if i != 2] == [p for i, p in enumerate(pids) if i != 2]
    assert _stored_patients(stores, pids) == {p for i, p in enumerate(pids) if i != 2}


def test_iti42_group_commit_failing_units_first_and_in_a_row_roll_back_only_themselves(
    stores: Stores,
) -> None:
    """Savepoints are not released: each rollback must still go back to its own unit's savepoint."""
    committer = GroupCommit(stores.engine)
    pids = [f"GCR{i}^^^&1.2.3&ISO" for i in range(6)]
    failing = {0, 2, 3}
    outcomes = _batched(committer, [_add_patient(pid, fail=(i in failing)) for i, pid in enumerate(pids)])
    assert [o[0] for o in outcomes] == ["error" if i in failing else "ok" for i in range(6)]
    assert _stored_patients(stores, pids) == {p for i, p in enumerate(pids) if i not in failing}


def test_iti42_group_commit_units_see_earlier_units_of_their_batch(stores: Stores) -> None:
    """Two registrations of documents sharing a uniqueId with different content, in one batch:
    the second sees the first (XDSNonIdenticalHash), exactly as two transactions in a row."""
    pid = known_patient(stores)
    first = document(pid, b"first content")
    second = document(pid, b"other content", unique_id=first.unique_id)
    subs = [
        validate_submission(package(pid, (d,)), SETTINGS.domain, for_repository=False)
        for d in (first, second)
    ]

    def registering(sub: Submission) -> Callable[[Connection], Any]:
        return lambda conn: register_submission(conn, sub, SETTINGS)

    outcomes = _batched(GroupCommit(stores.engine), [registering(s) for s in subs])
    assert outcomes[0][0] == "ok"
    assert outcomes[1][0] == "error" and isinstance(outcomes[1][1], XdsError)
    assert codes(outcomes[1][1]) == [ErrorCode.NON_IDENTICAL_HASH]
    with read_transaction(stores.engine) as conn:
        assert len(store.find_documents_by_unique_id(conn, first.unique_id)) == 1


def test_iti42_group_commit_failing_unit_alone_rolls_back(stores: Stores) -> None:
    """A unit of a batch of one that raises: the transaction rolls back, the caller gets the error."""
    committer = GroupCommit(stores.engine)
    with pytest.raises(ValueError, match="fails after writing"):
        committer.run(_add_patient("GCX^^^&1.2.3&ISO", fail=True))
    assert _stored_patients(stores, ["GCX^^^&1.2.3&ISO"]) == set()
    assert committer.run(_add_patient("GCY^^^&1.2.3&ISO")) == "GCY^^^&1.2.3&ISO"
    assert _stored_patients(stores, ["GCY^^^&1.2.3&ISO"]) == {"GCY^^^&1.2.3&ISO"}


def test_iti42_group_commit_many_threads_all_committed(stores: Stores) -> None:
    committer = group_commit(stores.engine)
    assert group_commit(stores.engine) is committer
    pids = [f"GCM{i}^^^&1.2.3&ISO" for i in range(40)]
    results: list[str] = []
    lock = threading.Lock()

    def go(pid: str) -> None:
        value = committer.run(_add_patient(pid))
        with lock:
            results.append(value)

    threads = [threading.Thread(target=go, args=(p,)) for p in pids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == sorted(pids)
    with read_transaction(stores.engine) as conn:
        count = conn.execute(
            select(func.count()).select_from(patient).where(patient.c.patient_id.in_(pids))
        ).scalar_one()
    assert count == len(pids)


def test_iti42_group_commit_first_unit_keeps_its_rows_when_a_joining_unit_fails(stores: Stores) -> None:
    """The held unit runs alone, without a savepoint; the units that join it after run in theirs:
    a failing one rolls back to its own, the first unit's row stays."""
    committer = GroupCommit(stores.engine)
    release, started = threading.Event(), threading.Event()
    first = "GCF0^^^&1.2.3&ISO"

    def hold(conn: Connection) -> str:
        _add_patient(first)(conn)
        started.set()
        assert release.wait(30)
        return first

    holder = threading.Thread(target=lambda: committer.run(hold))
    holder.start()
    assert started.wait(30)
    errors: list[Exception] = []

    def fail() -> None:
        try:
            committer.run(_add_patient("GCF1^^^&1.2.3&ISO", fail=True))
        except ValueError as exc:
            errors.append(exc)

    failing = threading.Thread(target=fail)
    failing.start()
    while not committer._queue:
        threading.Event().wait(0.01)
    release.set()
    for t in (holder, failing):
        t.join(60)
    assert len(errors) == 1
    assert _stored_patients(stores, [first, "GCF1^^^&1.2.3&ISO"]) == {first}


def test_iti42_group_commit_units_queued_while_the_leader_waits_for_the_lock_join_its_batch(
    stores: Stores,
) -> None:
    """Another writer holds the writer lock: the leader waits for it with its one unit, four more
    queue up meanwhile, and all five go in the leader's transaction, committed once."""
    committer = GroupCommit(stores.engine)
    pids = [f"GCW{i}^^^&1.2.3&ISO" for i in range(5)]
    commits: list[int] = []
    main = threading.get_ident()

    def on_commit(_conn: Connection) -> None:
        if threading.get_ident() != main:
            commits.append(threading.get_ident())

    threads = [threading.Thread(target=committer.run, args=(_add_patient(pid),)) for pid in pids]
    event.listen(stores.engine, "commit", on_commit)
    try:
        with write_transaction(stores.engine):  # the other writer
            threads[0].start()
            while committer._leader is None:
                threading.Event().wait(0.01)
            threading.Event().wait(0.1)  # the leader is blocked on the writer lock
            for t in threads[1:]:
                t.start()
            while len(committer._queue) < 4:
                threading.Event().wait(0.01)
        for t in threads:
            t.join(60)
    finally:
        event.remove(stores.engine, "commit", on_commit)
    assert _stored_patients(stores, pids) == set(pids)
    assert len(commits) == 1


def test_iti42_group_commit_refuses_a_nested_unit(stores: Stores) -> None:
    committer = GroupCommit(stores.engine)

    def nested(_conn: Connection) -> None:
        committer.run(_add_patient("GCN^^^&1.2.3&ISO"))

    with pytest.raises(RuntimeError, match="cannot start another"):
        committer.run(nested)
    assert committer.run(_add_patient("GCO^^^&1.2.3&ISO")) == "GCO^^^&1.2.3&ISO"
