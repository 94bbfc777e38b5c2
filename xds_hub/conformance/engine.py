"""The scenario runner: set up each scenario (feed its patients), run its steps, keep every exchange.

Scenarios are independent (each has its own fresh patients and identifiers), so they run in
parallel on a few threads.  A scenario is ``passed`` when every check of every step passed,
``failed`` when a check failed (the target is wrong), ``error`` when it could not be run (a
scenario bug, or the target unreachable) and ``skipped`` when the target lacks a capability it
requires (e.g. no patient feed, no DICOM address).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests
from lxml import etree

from xds_hub import ns
from xds_hub.conformance.checks import Check
from xds_hub.conformance.scenario import Scenario
from xds_hub.conformance.submission import BuildError
from xds_hub.conformance.target import Target
from xds_hub.conformance.template import Context, TemplateError
from xds_hub.conformance.transactions import TRANSACTIONS, Call, StepRun
from xds_hub.conformance.wire import Exchange, mllp_call, soap_call
from xds_hub.domain.vocabulary import SoapAction

PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"


@dataclass
class StepResult:
    name: str
    transaction: str
    outcome: str
    checks: list[Check] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    message: str = ""
    duration: float = 0.0


@dataclass
class ScenarioResult:
    scenario: Scenario
    outcome: str
    steps: list[StepResult] = field(default_factory=list)
    message: str = ""
    duration: float = 0.0
    #: The run's values (fresh ids, recorded values, kept bytes), for callers that need them.
    context: Context | None = None

    @property
    def failures(self) -> list[str]:
        out = [f"{s.name}: {c.name}: {c.detail}" for s in self.steps for c in s.checks if not c.ok]
        out += [f"{s.name}: {s.message}" for s in self.steps if s.outcome == ERROR and s.message]
        return out


# ------------------------------------------------------------------------------------------------
# Patient feed (setup)
# ------------------------------------------------------------------------------------------------


def _adt_a01(ctx: Context, pid_cx: str, control_id: str) -> str:
    """ADT^A01 registering one affinity-domain patient (ITI TF-2a 3.8.4.1)."""
    now = ctx.resolve("now")
    return "\r".join(
        [
            f"MSH|^~\\&|XDSCONF|CONFORMANCE|XDSHUB|HUB|{now}||ADT^A01^ADT_A01|{control_id}|P|2.5",
            f"EVN||{now}",
            f"PID|||{pid_cx}||Conformance^Patient^^^^^L||19700101|M",
            "PV1||O",
        ]
    )


def _prpa_in201301(ctx: Context, patient_id: str) -> etree._Element:
    """PRPA_IN201301UV02 registering one affinity-domain patient (ITI TF-2b 3.44.4.1)."""
    authority = ctx.target.domain.assigning_authority

    def v3(parent: etree._Element | None, local: str, **attrs: str) -> etree._Element:
        tag = f"{{{ns.HL7V3}}}{local}"
        if parent is None:
            return etree.Element(tag, attrs, nsmap={None: ns.HL7V3})  # type: ignore[dict-item]
        return etree.SubElement(parent, tag, attrs)

    root = v3(None, "PRPA_IN201301UV02", ITSVersion="XML_1.0")
    v3(root, "id", root=ctx.uid("feed.message." + patient_id))
    v3(root, "creationTime", value=ctx.resolve("now"))
    v3(root, "interactionId", root="2.16.840.1.113883.1.6", extension="PRPA_IN201301UV02")
    v3(root, "processingCode", code="P")
    v3(root, "processingModeCode", code="T")
    v3(root, "acceptAckCode", code="AL")
    for role, type_code in (("receiver", "RCV"), ("sender", "SND")):
        device = v3(v3(root, role, typeCode=type_code), "device", classCode="DEV", determinerCode="INSTANCE")
        v3(device, "id", root=authority)
    act = v3(root, "controlActProcess", classCode="CACT", moodCode="EVN")
    v3(act, "code", code="PRPA_TE201301UV02", codeSystem="2.16.840.1.113883.1.6")
    event = v3(v3(act, "subject", typeCode="SUBJ"), "registrationEvent", classCode="REG", moodCode="EVN")
    v3(event, "statusCode", code="active")
    patient = v3(v3(event, "subject1", typeCode="SBJ"), "patient", classCode="PAT")
    v3(patient, "id", root=authority, extension=patient_id)
    v3(patient, "statusCode", code="active")
    person = v3(patient, "patientPerson")
    name = v3(person, "name")
    v3(name, "given").text = "Patient"
    v3(name, "family").text = "Conformance"
    custodian = v3(v3(event, "custodian", typeCode="CST"), "assignedEntity", classCode="ASSIGNED")
    v3(custodian, "id", root=authority)
    return root


def feed_patient(ctx: Context, name: str) -> tuple[bool, Exchange]:
    """Register scenario patient ``name`` with the target, the way its config says."""
    t = ctx.target
    patient = ctx.patient(name)
    mode = t.feed_mode
    if mode == "iti8" and t.pix_mllp is not None:
        control = f"FEED{ctx.run_id}{name}"[:20]
        answer, exchange = mllp_call(
            t.pix_mllp.host,
            t.pix_mllp.port,
            _adt_a01(ctx, patient.cx, control),
            f"ITI-8 feed {name}",
            t.timeout,
            t.ssl_context(),
        )
        fields = answer.split("\r")
        msa = next((s.split("|") for s in fields if s.startswith("MSA")), [])
        ok = len(msa) > 1 and msa[1] in ("AA", "CA")
        if not ok and not exchange.error:
            exchange.error = "the feed was not acknowledged with AA"
        return ok, exchange
    if mode == "iti44":
        result = soap_call(
            t.session(),
            t.url(t.pix_path),
            SoapAction.ITI44_ADD,
            _prpa_in201301(ctx, patient.id),
            title=f"ITI-44 feed {name}",
            timeout=t.timeout,
        )
        code = (
            result.body.find(f"{{{ns.HL7V3}}}acknowledgement/{{{ns.HL7V3}}}typeCode")
            if result.body is not None
            else None
        )
        ok = code is not None and code.get("code") in ("AA", "CA")
        if not ok and not result.exchange.error:
            result.exchange.error = "the ITI-44 feed was not acknowledged with AA"
        return ok, result.exchange
    if mode == "command" and t.patient_feed_command:
        cmd = [part.replace("{pid}", patient.cx) for part in t.patient_feed_command]
        exchange = Exchange("command", f"feed {name}", " ".join(cmd))
        started = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=t.timeout, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            exchange.error = f"{type(exc).__name__}: {exc}"
            return False, exchange
        exchange.elapsed = time.monotonic() - started
        exchange.response = f"exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
        if proc.returncode != 0:
            exchange.error = f"the feed command exited with {proc.returncode}"
        return proc.returncode == 0, exchange
    return False, Exchange("none", f"feed {name}", "", error=f"no usable patient feed (mode {mode})")


# ------------------------------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------------------------------


class Runner:
    """Runs scenarios against one target; ``on_result`` is called as each scenario ends."""

    def __init__(
        self,
        target: Target,
        jobs: int = 4,
        on_result: Callable[[ScenarioResult], None] | None = None,
        on_step: Callable[[Scenario, StepResult], None] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.target = target
        self.jobs = max(1, jobs)
        self.on_result = on_result
        self.on_step = on_step
        self.progress = progress
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self.target.session()
            self._local.session = session
        return session

    def run_all(self, scenarios: Sequence[Scenario]) -> list[ScenarioResult]:
        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="conformance") as pool:
            results = list(pool.map(self._run_reporting, scenarios))
        return results

    def _run_reporting(self, scenario: Scenario) -> ScenarioResult:
        result = self.run(scenario)
        if self.on_result is not None:
            self.on_result(result)
        return result

    def run(self, scenario: Scenario) -> ScenarioResult:
        started = time.monotonic()
        result = self._run(scenario)
        result.duration = time.monotonic() - started
        return result

    def _run(self, scenario: Scenario) -> ScenarioResult:
        if scenario.skip:
            return ScenarioResult(scenario, SKIPPED, message=scenario.skip)
        missing = set(scenario.requires) - self.target.available
        if missing:
            return ScenarioResult(scenario, SKIPPED, message=f"the target lacks {', '.join(sorted(missing))}")
        if scenario.patients and "feed" not in self.target.available:
            return ScenarioResult(scenario, SKIPPED, message="no way to register patients with the target")
        ctx = Context(self.target, progress=self.progress)
        result = ScenarioResult(scenario, PASSED, context=ctx)
        setup = StepResult("setup", "feed", PASSED)
        for name in scenario.patients:
            ok, exchange = feed_patient(ctx, name)
            setup.exchanges.append(exchange)
            if not ok:
                setup.outcome = ERROR
                setup.message = f"could not register patient {name}: {exchange.error}"
                result.steps.append(setup)
                result.outcome = ERROR
                result.message = setup.message
                return result
        if scenario.patients:
            result.steps.append(setup)
        stop = False
        for step in scenario.steps:
            if stop:
                result.steps.append(StepResult(step.name, step.transaction, SKIPPED, message="not run"))
                continue
            step_result = self._step(ctx, scenario, step)
            deadline = time.monotonic() + step.retry
            while step_result.outcome == FAILED and time.monotonic() < deadline:
                time.sleep(0.5)
                step_result = self._step(ctx, scenario, step)
            result.steps.append(step_result)
            if self.on_step is not None:
                self.on_step(scenario, step_result)
            if step_result.outcome == ERROR:
                result.outcome = ERROR
                result.message = result.message or f"{step.name}: {step_result.message}"
                stop = True
            elif step_result.outcome == FAILED:
                if result.outcome == PASSED:
                    result.outcome = FAILED
                stop = not step.continue_on_failure
        if result.outcome == FAILED and not result.message:
            result.message = "; ".join(result.failures[:3])
        return result

    def _step(self, ctx: Context, scenario: Scenario, step: object) -> StepResult:
        from xds_hub.conformance.scenario import Step

        assert isinstance(step, Step)
        started = time.monotonic()
        out = StepResult(step.name, step.transaction, PASSED)
        if step.delay:
            time.sleep(step.delay)
        try:
            call = Call(
                ctx=ctx,
                step=step,
                message=ctx.expand_all(dict(step.message)),
                expect=ctx.expand_all(dict(step.expect)),
                session=self._session(),
                base=scenario.path.parent if scenario.path else None,
            )
            run: StepRun = TRANSACTIONS[step.transaction](call)
        except (TemplateError, BuildError, KeyError, ValueError) as exc:
            out.outcome = ERROR
            out.message = f"{type(exc).__name__}: {exc}"
            out.duration = time.monotonic() - started
            return out
        out.exchanges = run.exchanges
        out.checks = run.checks
        out.duration = time.monotonic() - started
        if run.error:
            out.outcome, out.message = ERROR, run.error
        elif any(e.error for e in run.exchanges):
            out.outcome, out.message = ERROR, next(e.error for e in run.exchanges if e.error)
        elif not all(c.ok for c in run.checks):
            out.outcome = FAILED
        return out
