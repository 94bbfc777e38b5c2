"""A clean stop is prompt: the DICOM actor's stop() (run by `xds-hub serve` on SIGTERM) must not wait
for connections that never associated, such as the TCP probe of every ``/healthz``."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from bench.faults_support import record_fault
from tests.imaging_helpers import region_settings
from xds_hub.imaging.dimse import DicomActor
from xds_hub.storage.db import make_engine
from xds_hub.storage.fs import FsBlobStore
from xds_hub.storage.migrate import upgrade
from xds_hub.storage.stores import Stores


def test_dicom_stop_after_a_port_probe_is_prompt(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    upgrade(engine)
    stores = Stores(engine=engine, blobs=FsBlobStore(tmp_path / "blobs"))
    settings = region_settings(tmp_path / "data")
    actor = DicomActor(settings, stores)
    actor.start()
    with socket.create_connection(("127.0.0.1", settings.dicom_port), timeout=5):
        pass  # what /healthz does to every listener
    time.sleep(0.5)
    stopper = threading.Thread(target=actor.stop, daemon=True)
    began = time.monotonic()
    stopper.start()
    stopper.join(3)
    took = time.monotonic() - began
    record_fault(
        "Shutdown",
        "SIGTERM stop of the DICOM listener after a TCP port probe",
        "stops at once (nothing to drain)",
        f"still stopping after {took:.1f} s" if stopper.is_alive() else f"stopped in {took:.1f} s",
        as_expected=not stopper.is_alive(),
    )
    assert not stopper.is_alive(), "DicomActor.stop() still waiting after 3 s"


def test_dicom_stop_with_idle_connections_held_open_is_prompt(tmp_path: Path) -> None:
    """Connections that never send an A-ASSOCIATE-RQ and stay open (a stuck client, a scanner):
    stop() hangs up on them at once instead of waiting out the ARTIM timer."""
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    upgrade(engine)
    stores = Stores(engine=engine, blobs=FsBlobStore(tmp_path / "blobs"))
    settings = region_settings(tmp_path / "data")
    actor = DicomActor(settings, stores)
    actor.start()
    held = [socket.create_connection(("127.0.0.1", settings.dicom_port), timeout=5) for _ in range(5)]
    try:
        deadline = time.monotonic() + 10
        while len(actor.ae.active_associations) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)  # until the listener has accepted all five
        stopper = threading.Thread(target=actor.stop, daemon=True)
        began = time.monotonic()
        stopper.start()
        stopper.join(3)
        took = time.monotonic() - began
        assert not stopper.is_alive(), "DicomActor.stop() still waiting after 3 s"
        for sock in held:  # the hub hung up on each
            sock.settimeout(3)
            assert sock.recv(16) == b""
    finally:
        for sock in held:
            sock.close()
    record_fault(
        "Shutdown",
        "SIGTERM stop of the DICOM listener with 5 idle connections held open",
        "stops at once, idle connections closed",
        f"stopped in {took:.1f} s",
    )
