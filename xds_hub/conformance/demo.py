"""``xds-hub demo``: the region in one command (issue 4).

Starts a hub (``xds-hub serve``) on free ports with a fresh data folder and the built-in demo
domain, then plays ``conformance/demo/region.toml`` against it with the conformance runner, over
the wire like any member establishment would: three establishments feed the same patient under
their own local IDs (ITI-8), the first pushes a CT study (C-STORE) and a report (ITI-41), the hub
publishes the study's manifest (RAD-68), the second finds the regional ID (ITI-9), queries the
registry (ITI-18), reads the manifest (ITI-43) and retrieves the images (RAD-69), the third pulls
them by C-MOVE.  Each step is printed as it ends; image transfers show a progress bar; the run ends
by comparing every image received, byte for byte, with the one sent.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from io import BytesIO
from pathlib import Path
from typing import TextIO

import requests

from xds_hub.config import DEMO_DOMAIN, DicomNode, load_settings, render_toml
from xds_hub.conformance.engine import PASSED, Runner, ScenarioResult, StepResult
from xds_hub.conformance.scenario import Scenario, catalogue_root, load_file
from xds_hub.conformance.target import load_target
from xds_hub.conformance.template import Context

#: Seconds the demo hub waits after a study's last image before publishing its manifest.
QUIET_SECONDS = 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_scenario() -> Scenario:
    path = catalogue_root().parent / "demo" / "region.toml"
    return load_file(path, "demo/region")


class DemoHub:
    """A hub of the demo domain in a folder of its own, on free ports."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.http_port, self.dicom_port, self.mllp_port = _free_port(), _free_port(), _free_port()
        self.config = folder / "region.toml"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def write_config(self) -> None:
        establishments = tuple(
            replace(
                e, dicom_nodes=tuple(DicomNode(n.ae_title, "127.0.0.1", _free_port()) for n in e.dicom_nodes)
            )
            for e in DEMO_DOMAIN.establishments
        )
        domain = replace(DEMO_DOMAIN, establishments=establishments, study_quiet_seconds=QUIET_SECONDS)
        settings = replace(
            load_settings(None, data=self.folder / "data"),
            http_port=self.http_port,
            dicom_port=self.dicom_port,
            mllp_port=self.mllp_port,
            domain=domain,
        )
        self.config.write_text(render_toml(settings), encoding="utf-8")

    def start(self, timeout: float = 60.0) -> None:
        self.write_config()
        log = (self.folder / "hub.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "xds_hub", "serve", "--config", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the hub exited with status {self.process.returncode}; see {self.folder}/hub.log"
                )
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the hub did not become ready in {timeout:.0f} s; see {self.folder}/hub.log")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(45)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _decoded(data: bytes) -> bytes:
    """A retrieved Part-10 file as the dataset bytes a comparison compares."""
    from pydicom import dcmread

    from xds_hub.conformance.dicom import encode

    return encode(dcmread(BytesIO(data)))


def compare_images(ctx: Context) -> list[tuple[str, int, int]]:
    """(how, identical, total) for the images retrieved by RAD-69 and pulled by C-MOVE."""
    sent = {key.split(":", 1)[1]: data for key, data in ctx.blobs.items() if key.startswith("sent:")}
    rad69 = {uid: ctx.blobs[uid] for uid in sent if uid in ctx.blobs}
    moved = {
        key.rsplit(":", 1)[1]: data for key, data in ctx.blobs.items() if key.startswith("received:move-c:")
    }
    return [
        ("RAD-69 (Hopital B)", sum(1 for uid, d in rad69.items() if _decoded(d) == sent[uid]), len(sent)),
        ("C-MOVE (Clinique C)", sum(1 for uid, d in moved.items() if d == sent.get(uid)), len(sent)),
    ]


class _Printer:
    """Prints each step as it ends, with a progress bar during image transfers."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.bar: object | None = None
        self.started = time.monotonic()

    def progress(self, what: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total or None, desc=f"   {what}", unit="image", file=self.out, leave=False)
        bar = self.bar
        assert isinstance(bar, tqdm)
        bar.update(done - bar.n)

    def step(self, scenario: Scenario, result: StepResult) -> None:
        if self.bar is not None:
            self.bar.close()  # type: ignore[attr-defined]
            self.bar = None
        spec = next((s for s in scenario.steps if s.name == result.name), None)
        mark = "ok " if result.outcome == PASSED else result.outcome.upper()
        text = spec.description if spec is not None and spec.description else result.name
        self.out.write(
            f"[{time.monotonic() - self.started:5.1f}s] {mark:<6} {text} ({result.duration:.2f} s)\n"
        )
        for check in result.checks:
            if not check.ok:
                self.out.write(f"          {check.name}: {check.detail}\n")
        if result.message and result.outcome != PASSED:
            self.out.write(f"          {result.message}\n")
        self.out.flush()


def run_demo(out: TextIO, folder: Path | None = None, html: Path | None = None) -> int:
    """Play the demo; 0 when every step passed and every image came back identical."""
    own = folder is None
    work = Path(tempfile.mkdtemp(prefix="xds-hub-demo-")) if folder is None else folder
    work.mkdir(parents=True, exist_ok=True)
    hub = DemoHub(work)
    out.write(f"Starting a hub of the demo region in {work} ...\n")
    started = time.monotonic()
    try:
        hub.start()
        out.write(
            f"Hub ready at {hub.url} (MLLP {hub.mllp_port}, DICOM {hub.dicom_port}) "
            f"in {time.monotonic() - started:.1f} s\n\n"
        )
        printer = _Printer(out)
        target = replace(
            load_target(hub.url, hub.config, f"127.0.0.1:{hub.mllp_port}", f"127.0.0.1:{hub.dicom_port}"),
            timeout=60.0,
        )
        runner = Runner(target, jobs=1, on_step=printer.step, progress=printer.progress)
        result: ScenarioResult = runner.run(demo_scenario())
        if html is not None:
            from xds_hub.conformance.report import write_html

            write_html([result], html, target)
        ok = result.outcome == PASSED
        if ok and result.context is not None:
            out.write("\nByte-for-byte comparison with the images Hopital A sent:\n")
            for how, same, total in compare_images(result.context):
                out.write(f"  {how:<22} {same}/{total} identical\n")
                ok = ok and same == total and total > 0
        verdict = "the region works" if ok else f"FAILED: {result.message or 'images differ'}"
        out.write(f"\nDemo {verdict} ({time.monotonic() - started:.1f} s)\n")
        return 0 if ok else 1
    except RuntimeError as exc:
        out.write(f"Demo FAILED: {exc}\n")
        return 1
    finally:
        hub.stop()
        if own and not os.environ.get("XDS_DEMO_KEEP"):
            import shutil

            shutil.rmtree(work, ignore_errors=True)
