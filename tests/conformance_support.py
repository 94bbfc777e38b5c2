"""Running the conformance catalogue (xds_hub.conformance) against a test hub (tests/hubproc.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tests.hubproc import Hub
from xds_hub.conformance.engine import ERROR, FAILED, Runner, ScenarioResult
from xds_hub.conformance.report import write_html, write_junit
from xds_hub.conformance.scenario import select
from xds_hub.conformance.target import Target, load_target

#: Where reports of the catalogue runs go (kept by CI as artifacts; ignored by git).
REPORTS = Path(__file__).resolve().parents[1] / "test-reports"


def hub_target(hub: Hub) -> Target:
    """The target of a running test hub: its HTTP, MLLP and DICOM listeners and its config."""
    return load_target(
        hub.base_url, hub.config, pix_mllp=f"127.0.0.1:{hub.mllp_port}", dicom=f"127.0.0.1:{hub.dicom_port}"
    )


def run_catalogue(
    hub: Hub, selectors: Sequence[str] = (), report_name: str | None = None, jobs: int = 4
) -> list[ScenarioResult]:
    target = hub_target(hub)
    results = Runner(target, jobs=jobs).run_all(select(selectors))
    if report_name:
        write_junit(results, REPORTS / f"{report_name}.xml", target)
        write_html(results, REPORTS / f"{report_name}.html", target)
    return results


def not_passed(results: Sequence[ScenarioResult]) -> dict[str, str]:
    return {r.scenario.id: r.message for r in results if r.outcome in (FAILED, ERROR)}
