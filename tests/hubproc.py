"""Start and stop a real `xds-hub serve` process for tests, on free ports and its own database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

from xds_hub.config import Settings, load_settings

PG_ADMIN_URL = os.environ.get("XDS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

#: The affinity domain of the test region (the demo domain's shape, on test ports).
TEST_CONFIG = """
[affinity_domain]
assigning_authority = "1.3.6.1.4.1.21367.13.20.1000"
home_community_id = "urn:oid:1.3.6.1.4.1.21367.13.70.1"
repository_unique_id = "1.3.6.1.4.1.21367.13.80.1"
imaging_source_unique_id = "1.3.6.1.4.1.21367.13.80.2"
linking_authorities = ["1.2.250.1.213.1.4.8"]

[[establishment]]
name = "Hopital A"
assigning_authority = "1.2.3.100"
ae_titles = ["HOPA_CT", "HOPA_PACS"]
source_ids = ["1.2.3.100.1"]
dicom_nodes = [{ ae_title = "HOPA_PACS", host = "127.0.0.1", port = {HOPA_PORT} }]

[[establishment]]
name = "Hopital B"
assigning_authority = "1.2.3.200"
ae_titles = ["HOPB_MR", "HOPB_PACS"]
source_ids = ["1.2.3.200.1"]
dicom_nodes = [{ ae_title = "HOPB_PACS", host = "127.0.0.1", port = {HOPB_PORT} }]

[[establishment]]
name = "Clinique C"
assigning_authority = "1.2.3.300"
ae_titles = ["CLIC_WS"]
source_ids = ["1.2.3.300.1"]
dicom_nodes = [{ ae_title = "CLIC_WS", host = "127.0.0.1", port = {CLIC_PORT} }]

[imaging]
study_quiet_seconds = 2
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_pg_database() -> str:
    """A fresh, uniquely named PostgreSQL database; returns its SQLAlchemy URL."""
    import psycopg

    name = f"xds_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"


def drop_pg_database(url: str) -> None:
    import psycopg

    from xds_hub.audit.recorder import flush_recorders

    name = url.rsplit("/", 1)[1]
    # in-process audit records go in before their database goes
    flush_recorders(lambda engine: engine.url.database == name, timeout=2.0)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def db_url_for(backend: str, folder: Path) -> str:
    if backend == "postgresql":
        return create_pg_database()
    return f"sqlite:///{folder / 'hub.sqlite'}"


@dataclass
class Hub:
    """A running hub and the coordinates a client needs."""

    folder: Path
    db_url: str
    config_text: str = TEST_CONFIG
    http_port: int = field(default_factory=free_port)
    dicom_port: int = field(default_factory=free_port)
    mllp_port: int = field(default_factory=free_port)
    node_ports: dict[str, int] = field(
        default_factory=lambda: {"HOPA_PORT": free_port(), "HOPB_PORT": free_port(), "CLIC_PORT": free_port()}
    )
    process: subprocess.Popen[bytes] | None = None
    #: For a hub whose config enables TLS: (client certificate, client key, CA bundle) the harness
    #: presents and trusts; ``base_url`` is then https and the readiness probe uses them.
    tls_client: tuple[Path, Path, Path] | None = None

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def config(self) -> Path:
        return self.folder / "hub.toml"

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls_client else 'http'}://127.0.0.1:{self.http_port}"

    def requests_tls(self) -> dict[str, object]:
        """``cert`` / ``verify`` for requests against a TLS hub ({} for a plain one)."""
        if self.tls_client is None:
            return {}
        cert, key, ca = self.tls_client
        return {"cert": (str(cert), str(key)), "verify": str(ca)}

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def settings(self) -> Settings:
        return load_settings(
            self.config,
            data=self.data,
            db=self.db_url,
            http_port=self.http_port,
            dicom_port=self.dicom_port,
            mllp_port=self.mllp_port,
        )

    def store_args(self) -> list[str]:
        return ["--config", str(self.config), "--data", str(self.data), "--db", self.db_url]

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run an operator verb of `xds-hub` on this hub's store, e.g. ``hub.cli("patient", "add", pid)``."""
        cmd = [sys.executable, "-m", "xds_hub", *args, *self.store_args()]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def start(self, timeout: float = 60, attempts: int = 3) -> Hub:
        """Start the hub and wait for /healthz.  A listener port that another process took between
        :func:`free_port` and the hub's bind (other hubs, clients' ephemeral ports) is not the
        hub's fault: the listener ports are drawn again, up to ``attempts`` times."""
        for attempt in range(attempts):
            before = len(self.log_text())
            try:
                return self._start(timeout)
            except RuntimeError:
                if attempt + 1 == attempts or "Address already in use" not in self.log_text()[before:]:
                    raise
                self.stop()
                self.http_port, self.dicom_port, self.mllp_port = free_port(), free_port(), free_port()
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> Hub:
        self.folder.mkdir(parents=True, exist_ok=True)
        text = self.config_text
        for key, port in self.node_ports.items():
            text = text.replace("{" + key + "}", str(port))
        self.config.write_text(text)
        log = (self.folder / "hub.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xds_hub",
                "serve",
                *self.store_args(),
                "--http-port",
                str(self.http_port),
                "--dicom-port",
                str(self.dicom_port),
                "--mllp-port",
                str(self.mllp_port),
                "--log-level",
                "WARNING",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hub exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                probe = requests.get(self.url("/healthz"), timeout=2, **self.requests_tls())  # type: ignore[arg-type]
                if probe.status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):  # workers still booting
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"hub not ready after {timeout}s:\n{self.log_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            if sig == signal.SIGKILL:
                os.killpg(self.process.pid, signal.SIGKILL)  # the whole process group, as a crash would
            else:
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def log_text(self) -> str:
        path = self.folder / "hub.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def add_patient(self, pid: str) -> None:
        self.cli("patient", "add", pid)
