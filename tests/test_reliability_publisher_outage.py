"""The study publisher while its database is unreachable: one quiet log line when the outage begins,
one when it ends, nothing in between (it used to log a full traceback every pass, 2-5 times a second).

The outage is real: a PostgreSQL URL whose server refuses connections, or an SQLite file that cannot
be opened; recovery is the publisher's stores pointing at a working database again.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from bench.faults_support import record_fault
from tests.imaging_helpers import region_settings
from xds_hub.imaging.publisher import StudyPublisher
from xds_hub.storage.db import make_engine
from xds_hub.storage.fs import FsBlobStore
from xds_hub.storage.migrate import upgrade
from xds_hub.storage.stores import Stores

LOGGER = "xds_hub.imaging.publisher"


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER]


def _wait(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)


@pytest.mark.parametrize("down", ["postgresql", "sqlite"])
def test_publisher_logs_an_outage_once_and_its_end_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, down: str
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    url = (
        "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2"
        if down == "postgresql"
        else f"sqlite:///{tmp_path / 'missing' / 'hub.sqlite'}"
    )
    dead = Stores(engine=make_engine(url), blobs=FsBlobStore(tmp_path / "blobs"))
    publisher = StudyPublisher(region_settings(tmp_path / "data"), dead, interval=0.01)
    publisher.start()
    try:
        _wait(lambda: publisher._failed_passes >= 20)
        assert publisher._failed_passes >= 20
        during = _records(caplog)
        assert [r.getMessage() for r in during] == ["study publisher: database unavailable, retrying quietly"]
        assert during[0].levelno == logging.WARNING and during[0].exc_info is None
        assert "OperationalError" in during[0].__dict__["error"]

        engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite'}")
        upgrade(engine)
        publisher.stores = Stores(engine=engine, blobs=FsBlobStore(tmp_path / "blobs"))
        _wait(lambda: len(_records(caplog)) >= 2)
        time.sleep(0.2)  # more passes, all good: nothing more is logged
    finally:
        publisher.stop()
        dead.close()
    lines = _records(caplog)
    assert [r.getMessage() for r in lines] == [
        "study publisher: database unavailable, retrying quietly",
        "study publisher: recovered",
    ]
    assert lines[1].__dict__["failed_passes"] >= 20 and lines[1].__dict__["down_seconds"] >= 0
    record_fault(
        "Database outage",
        f"study publisher, database unreachable ({down}), {lines[1].__dict__['failed_passes']} passes",
        "one warning when it begins, one when it ends",
        "1 warning (no traceback), 1 recovery line",
    )
