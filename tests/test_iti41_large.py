"""A 50 MB document through ITI-41 and back through ITI-43 with the server's memory flat:
the RSS of every gunicorn worker is sampled from /proc while the document streams both ways."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

from tests.hubproc import Hub
from tests.repository_support import gunicorn_workers, hub_patient, rss
from xds_hub.client.metadata import DocumentInput, SubmissionOptions, build_submission
from xds_hub.client.xds import DocumentRequest, XdsClient
from xds_hub.storage.stores import Stores

SIZE_MB = 50
#: Allowed growth of a worker's RSS while a 50 MB document passes (buffers, not the document).
MAX_GROWTH = 24 * 1024 * 1024


class RssSampler:
    def __init__(self, pids: list[int]) -> None:
        self.idle = {p: rss(p) for p in pids}
        self.peak = dict(self.idle)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for p in self.peak:
                self.peak[p] = max(self.peak[p], rss(p))
            time.sleep(0.01)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return max(self.peak[p] - self.idle[p] for p in self.peak)


def test_iti41_50mb_document_with_flat_server_memory(hub: Hub, store: Stores, tmp_path: Path) -> None:
    assert hub.process is not None
    big = tmp_path / "big.bin"
    digest = hashlib.sha1()
    with big.open("wb") as f:
        for _ in range(SIZE_MB):
            block = os.urandom(1024 * 1024)
            digest.update(block)
            f.write(block)
    workers = gunicorn_workers(hub.process.pid)
    assert workers, "no gunicorn worker found under the hub"
    pid = hub_patient(hub, store)
    sub, contents = build_submission(
        [DocumentInput(big, mime_type="application/octet-stream")], SubmissionOptions(pid, "1.2.3.100.1")
    )
    with XdsClient(repository_url=hub.url("/xds/repository")) as client:
        with RssSampler(workers) as upload:
            result = client.provide_and_register(sub, {k: v.content for k, v in contents.items()})
        assert result.ok, result.errors
        with RssSampler(workers) as download:
            got = client.retrieve(
                [DocumentRequest("1.3.6.1.4.1.21367.13.80.1", sub.documents[0].unique_id)], tmp_path / "out"
            )
    assert got.ok
    (doc,) = got.documents
    assert (doc.size, doc.sha1) == (SIZE_MB * 1024 * 1024, digest.hexdigest())
    assert upload.growth < MAX_GROWTH, f"worker RSS grew {upload.growth / 1e6:.1f} MB during the upload"
    assert download.growth < MAX_GROWTH, f"worker RSS grew {download.growth / 1e6:.1f} MB during the download"
