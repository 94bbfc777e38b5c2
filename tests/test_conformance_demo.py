"""Issue 4: `xds-hub demo` plays the region's story end to end, in under a minute, and says so."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def test_demo_plays_the_region_story(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "xds_hub",
            "demo",
            "--data",
            str(tmp_path / "demo"),
            "--html",
            str(tmp_path / "demo.html"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "RAD-69 (Hopital B)     24/24 identical" in out
    assert "C-MOVE (Clinique C)    24/24 identical" in out
    assert "Demo the region works" in out
    for step in (
        "(ITI-8)",
        "(ITI-9)",
        "(DICOM C-STORE)",
        "(ITI-41)",
        "(ITI-18)",
        "(ITI-43)",
        "(RAD-69)",
        "(DICOM C-MOVE)",
    ):
        assert step in out, step
    assert (tmp_path / "demo.html").is_file()
    assert elapsed < 60, f"the demo took {elapsed:.0f} s"
