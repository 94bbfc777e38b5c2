"""Shared fixtures.

- ``db_backend``: "sqlite" and "postgresql"; every test that uses a database runs on both.
- ``hub``: a real `xds-hub serve` process (session-scoped, one per backend) with the test region
  (tests/hubproc.py TEST_CONFIG).  Talk to it over HTTP / MLLP / DICOM at ``hub.http_port`` etc.;
  run operator verbs with ``hub.cli(...)``; register patients with ``hub.add_patient(pid)``.
- ``hub_factory(config_text=..., backend=...)``: a hub of your own (e.g. with [codes]), stopped after
  the test.
- ``stores``: in-process Stores (engine + blob store) on a fresh database of ``db_backend``.
- ``store``: Stores on the ``hub``'s own database and blob folder (to look at what it stored);
  ``client``: an XDS.b client of the ``hub``'s repository and registry.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hubproc import PG_ADMIN_URL, TEST_CONFIG, Hub, db_url_for, drop_pg_database
from tests.repository_support import hub_stores
from xds_hub.client.xds import XdsClient
from xds_hub.storage.db import make_engine
from xds_hub.storage.fs import FsBlobStore
from xds_hub.storage.migrate import upgrade
from xds_hub.storage.stores import Stores

ORACLE = Path(__file__).resolve().parents[1].parent / "shared" / "oracle"


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def db_backend(request: pytest.FixtureRequest) -> str:
    """The database of the test; PostgreSQL tests skip where none runs, unless XDS_REQUIRE_PG=1 (CI)."""
    if request.param == "postgresql" and not _pg_available():
        if os.environ.get("XDS_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL is required (XDS_REQUIRE_PG=1) but {PG_ADMIN_URL} does not answer")
        pytest.skip(f"no PostgreSQL at {PG_ADMIN_URL}")
    return str(request.param)


@pytest.fixture(scope="session")
def hub(db_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    folder = tmp_path_factory.mktemp(f"hub-{db_backend}")
    h = Hub(folder=folder, db_url=db_url_for(db_backend, folder)).start()
    yield h
    h.stop()
    if db_backend == "postgresql":
        drop_pg_database(h.db_url)


@pytest.fixture
def hub_factory(db_backend: str, tmp_path: Path) -> Iterator[Callable[..., Hub]]:
    started: list[Hub] = []

    def make(config_text: str = TEST_CONFIG, backend: str | None = None, **options: Any) -> Hub:
        """``options``: more Hub fields, e.g. ``tls_client=(cert, key, ca)`` for a TLS config."""
        folder = tmp_path / f"hub-{len(started)}"
        folder.mkdir()
        url = db_url_for(backend or db_backend, folder)
        h = Hub(folder=folder, db_url=url, config_text=config_text, **options)
        started.append(h)
        return h.start()

    yield make
    for h in started:
        h.stop()
        if h.db_url.startswith("postgresql"):
            drop_pg_database(h.db_url)


@pytest.fixture
def stores(db_backend: str, tmp_path: Path) -> Iterator[Stores]:
    url = db_url_for(db_backend, tmp_path)
    engine = make_engine(url)
    upgrade(engine)
    s = Stores(engine=engine, blobs=FsBlobStore(tmp_path / "blobs"))
    yield s
    s.close()
    if db_backend == "postgresql":
        drop_pg_database(url)


def new_patient_id(authority: str = "1.3.6.1.4.1.21367.13.20.1000") -> str:
    """A fresh patient ID in CX form for ``authority`` (default: the test affinity domain)."""
    return f"P{uuid.uuid4().hex[:10].upper()}^^^&{authority}&ISO"


@pytest.fixture(scope="module")
def store(hub: Hub) -> Iterator[Stores]:
    s = hub_stores(hub)
    yield s
    s.close()


@pytest.fixture
def client(hub: Hub) -> Iterator[XdsClient]:
    with XdsClient(repository_url=hub.url("/xds/repository"), registry_url=hub.url("/xds/registry")) as c:
        yield c
