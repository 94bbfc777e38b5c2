"""Issue 4: the catalogue catches a hub with one deliberate fault.

The fault is injected without any fault code in the product: the hub is started with a test-only
``sitecustomize`` module on its PYTHONPATH (written here, into the test's temporary folder) that
replaces one function of the hub in every process of the hub (the supervisor and its spawned
HTTP and actor children import it at interpreter start).  The matching scenarios must fail, and
only those.
"""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import pytest

from tests.conformance_support import not_passed, run_catalogue
from tests.hubproc import Hub, db_url_for

SITECUSTOMIZE = textwrap.dedent(
    '''
    """Test-only fault injection for tests/test_conformance_faults.py (never shipped)."""
    import dataclasses
    import os

    _FAULT = os.environ.get("XDS_TEST_FAULT", "")

    if _FAULT == "query-ignores-class-code":
        # A Document Registry whose stored queries ignore $XDSDocumentEntryClassCode.
        import xds_hub.domain.query as _query

        _original = _query.parse_stored_query

        def _ignoring(query_id, slots):
            kept = [s for s in slots if s[0].strip().lower() != "$xdsdocumententryclasscode"]
            return _original(query_id, kept)

        _query.parse_stored_query = _ignoring

    elif _FAULT == "repository-accepts-hash-mismatch":
        # A Document Repository that ignores the hash the Document Source supplied.
        import xds_hub.repository.iti41 as _iti41

        _original_attach = _iti41.attach_contents

        def _trusting(submission, contents, repository_unique_id, problems=()):
            docs = tuple(dataclasses.replace(d, hash=None) for d in submission.documents)
            return _original_attach(
                dataclasses.replace(submission, documents=docs), contents, repository_unique_id, problems
            )

        _iti41.attach_contents = _trusting
    '''
)

#: fault -> (the scenarios run, the ones that must fail).
FAULTS = {
    "query-ignores-class-code": (
        ["registry/iti18"],
        {"registry/iti18/find-documents-class-code", "registry/iti18/find-documents-class-code-no-match"},
    ),
    "repository-accepts-hash-mismatch": (
        ["repository/iti41"],
        {"repository/iti41/hash-mismatch"},
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_conformance_runner_catches_injected_fault(
    fault: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "faultsite"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    )
    monkeypatch.setenv("XDS_TEST_FAULT", fault)
    folder = tmp_path / "hub"
    hub = Hub(folder=folder, db_url=db_url_for("sqlite", folder)).start()
    try:
        selectors, expected = FAULTS[fault]
        failed = not_passed(run_catalogue(hub, selectors))
    finally:
        hub.stop(signal.SIGKILL)  # a faulty hub need not shut down gracefully (and it is faster)
    assert set(failed) == expected, failed


def test_conformance_same_scenarios_pass_without_fault(hub: Hub) -> None:
    """The control: the scenarios of every fault pass on a hub without one."""
    selectors = sorted({s for sel, _ in FAULTS.values() for s in sel})
    failed = not_passed(run_catalogue(hub, selectors))
    assert not failed, failed
