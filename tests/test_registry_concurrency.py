"""Concurrent registrations (ITI-42 semantics): the uniqueness rules hold across writers, on both backends.

Each writer runs :func:`register_submission` in its own ``write_transaction`` on its own connection;
they are released together by a barrier so that both read before either could have written, were
the writers not serialised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tests.test_registry_support import (
    counts,
    document,
    known_patient,
    package,
    register,
    submission_set,
)
from xds_hub.domain.metadata import Submission
from xds_hub.errors import ErrorCode, XdsError
from xds_hub.registry import store
from xds_hub.storage.db import read_transaction
from xds_hub.storage.stores import Stores


def _race(stores: Stores, subs: list[Submission]) -> tuple[int, list[XdsError]]:
    barrier = threading.Barrier(len(subs))
    wins: list[int] = []
    errors: list[XdsError] = []
    unexpected: list[BaseException] = []

    def run(sub: Submission) -> Callable[[], None]:
        def go() -> None:
            barrier.wait()
            try:
                register(stores, sub)
                wins.append(1)
            except XdsError as exc:
                errors.append(exc)
            except BaseException as exc:  # pragma: no cover - reported below
                unexpected.append(exc)

        return go

    threads = [threading.Thread(target=run(s)) for s in subs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not unexpected, unexpected
    return len(wins), errors


def test_iti42_concurrent_documents_with_one_unique_id_exactly_one_wins(stores: Stores) -> None:
    pid = known_patient(stores)
    first = document(pid, b"first content")
    subs = [
        package(pid, (first,)),
        package(pid, (document(pid, b"second content", unique_id=first.unique_id),)),
        package(pid, (document(pid, b"third content", unique_id=first.unique_id),)),
    ]
    before = counts(stores.engine)
    wins, errors = _race(stores, subs)
    assert wins == 1
    assert [[p.code for p in e.problems] for e in errors] == [[ErrorCode.NON_IDENTICAL_HASH]] * 2
    with read_transaction(stores.engine) as conn:
        assert len(store.find_documents_by_unique_id(conn, first.unique_id)) == 1
    after = counts(stores.engine)
    assert after["document_entry"] - before["document_entry"] == 1
    assert after["submission_set"] - before["submission_set"] == 1


def test_iti42_concurrent_submission_sets_with_one_unique_id_exactly_one_wins(stores: Stores) -> None:
    pid = known_patient(stores)
    uid = submission_set(pid).unique_id
    subs = [package(pid, (document(pid),), ss=submission_set(pid, unique_id=uid)) for _ in range(2)]
    wins, errors = _race(stores, subs)
    assert wins == 1
    assert [[p.code for p in e.problems] for e in errors] == [[ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY]]


def test_iti42_concurrent_independent_submissions_all_win(stores: Stores) -> None:
    pid = known_patient(stores)
    subs = [package(pid, (document(pid), document(pid))) for _ in range(4)]
    before = counts(stores.engine)
    wins, errors = _race(stores, subs)
    assert (wins, errors) == (4, [])
    assert counts(stores.engine)["document_entry"] - before["document_entry"] == 8
