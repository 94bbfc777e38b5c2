"""Issue 5's load test (bench/load_mixed.py) against the suite's hub, SQLite and PostgreSQL: 50
concurrent clients submitting (ITI-41), querying (ITI-18) and retrieving (ITI-43) for 60 seconds;
no request fails, and afterwards the registry holds exactly the acknowledged documents (none lost,
none duplicated, each whole in the repository).  The figures (requests/s, p99) come from the same
code run as `python -m bench.load_mixed` and are in bench/RESULTS.md and the README."""

from __future__ import annotations

from bench.faults_support import record_fault
from bench.load_mixed import OPERATIONS, run_load, verify
from tests.hubproc import Hub

CLIENTS = 50
SECONDS = 60.0


def test_load_50_clients_mixed_iti41_iti18_iti43_nothing_fails_lost_or_duplicated(
    hub: Hub, db_backend: str
) -> None:
    result = run_load(hub, CLIENTS, SECONDS, db_backend)
    assert result.failures == [], result.failures[:5]
    for op in OPERATIONS:
        assert result.latencies(op), f"no {op} request completed"
    assert verify(hub, result) == []
    record_fault(
        "Load",
        f"{CLIENTS} concurrent clients, ITI-41/18/43, {SECONDS:.0f} s ({db_backend})",
        "no failure, none lost or duplicated",
        f"{result.requests} requests ({result.requests / result.seconds:.0f}/s), 0 failures, registry exact",
        backend=db_backend,
    )
