"""Reports of a conformance run: console summary, JUnit XML, and a self-contained HTML page.

The HTML report keeps every request and response of every step (collapsed), so a failure can be
read without running anything again; it needs no network and no scripts.
"""

from __future__ import annotations

import html
import platform
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from lxml import etree

from xds_hub import __version__
from xds_hub.conformance.engine import ERROR, FAILED, PASSED, SKIPPED, ScenarioResult
from xds_hub.conformance.target import Target

_MARK = {PASSED: "PASS", FAILED: "FAIL", ERROR: "ERROR", SKIPPED: "SKIP"}


def counts(results: Sequence[ScenarioResult]) -> Counter[str]:
    return Counter(r.outcome for r in results)


def console_summary(results: Sequence[ScenarioResult], out: TextIO, verbose: bool = False) -> None:
    """Per-group totals, then every scenario that did not pass (every one when ``verbose``)."""
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for r in results:
        groups[r.scenario.group or "-"][r.outcome] += 1
    width = max((len(g) for g in groups), default=10)
    out.write(f"\n{'group':<{width}}  passed  failed  error  skipped\n")
    for group in sorted(groups):
        c = groups[group]
        out.write(f"{group:<{width}}  {c[PASSED]:>6}  {c[FAILED]:>6}  {c[ERROR]:>5}  {c[SKIPPED]:>7}\n")
    for r in sorted(results, key=lambda r: r.scenario.id):
        if verbose or r.outcome in (FAILED, ERROR):
            out.write(f"{_MARK[r.outcome]:<5} {r.scenario.id}: {r.scenario.title}\n")
            if r.outcome in (FAILED, ERROR):
                for line in r.failures[:6]:
                    out.write(f"        {line}\n")
    total = counts(results)
    out.write(
        f"\n{len(results)} scenarios: {total[PASSED]} passed, {total[FAILED]} failed, "
        f"{total[ERROR]} errors, {total[SKIPPED]} skipped\n"
    )


def _exchange_text(r: ScenarioResult) -> str:
    lines: list[str] = []
    for step in r.steps:
        lines.append(f"== step {step.name} ({step.transaction}): {step.outcome} {step.message}")
        for c in step.checks:
            lines.append(f"   [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}")
        for ex in step.exchanges:
            lines.append(f"-- {ex.kind} {ex.title} ({ex.elapsed * 1000:.0f} ms) request:")
            lines.append(ex.request)
            lines.append("-- response:" if not ex.error else f"-- error: {ex.error}")
            lines.append(ex.response)
    return "\n".join(lines)


def write_junit(results: Sequence[ScenarioResult], path: Path, target: Target) -> None:
    """JUnit XML: one testsuite per actor/transaction folder, one testcase per scenario."""
    root = etree.Element("testsuites", name="xds-hub conformance")
    groups: dict[str, list[ScenarioResult]] = defaultdict(list)
    for r in results:
        groups[r.scenario.group or "scenarios"].append(r)
    total = counts(results)
    root.set("tests", str(len(results)))
    root.set("failures", str(total[FAILED]))
    root.set("errors", str(total[ERROR]))
    root.set("skipped", str(total[SKIPPED]))
    root.set("time", f"{sum(r.duration for r in results):.3f}")
    for group in sorted(groups):
        members = sorted(groups[group], key=lambda r: r.scenario.id)
        c = counts(members)
        suite = etree.SubElement(
            root,
            "testsuite",
            name=group,
            tests=str(len(members)),
            failures=str(c[FAILED]),
            errors=str(c[ERROR]),
            skipped=str(c[SKIPPED]),
            time=f"{sum(r.duration for r in members):.3f}",
            timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            hostname=platform.node(),
        )
        props = etree.SubElement(suite, "properties")
        etree.SubElement(props, "property", name="target", value=target.base_url)
        for r in members:
            case = etree.SubElement(
                suite,
                "testcase",
                classname=group.replace("/", "."),
                name=r.scenario.id.rsplit("/", 1)[-1],
                time=f"{r.duration:.3f}",
            )
            if r.outcome == FAILED:
                etree.SubElement(
                    case, "failure", message=r.message[:500], type="ConformanceFailure"
                ).text = "\n".join(r.failures)
            elif r.outcome == ERROR:
                etree.SubElement(
                    case, "error", message=r.message[:500], type="ScenarioError"
                ).text = r.message
            elif r.outcome == SKIPPED:
                etree.SubElement(case, "skipped", message=r.message)
            etree.SubElement(case, "system-out").text = _exchange_text(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em} h2{font-size:1.1em;margin-top:1.5em}
table{border-collapse:collapse} td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:left}
.passed{color:#176317}.failed{color:#b00020}.error{color:#a15c00}.skipped{color:#666}
details{margin:.3em 0 .3em 1em} summary{cursor:pointer}
pre{background:#f6f6f6;padding:.6em;overflow:auto;max-height:40em;font-size:.85em;white-space:pre-wrap}
.check-fail{color:#b00020}.check-ok{color:#176317}.tf{color:#555;font-size:.9em}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _scenario_html(r: ScenarioResult) -> str:
    s = r.scenario
    parts = [
        f'<details id="{_e(s.id)}"{" open" if r.outcome in (FAILED, ERROR) else ""}>',
        f'<summary><span class="{r.outcome}">{_MARK[r.outcome]}</span> <b>{_e(s.id)}</b> - {_e(s.title)} '
        f'<span class="tf">{_e(s.tf)}</span> ({r.duration:.2f} s)</summary>',
    ]
    if s.description:
        parts.append(f"<p>{_e(s.description)}</p>")
    if r.message:
        parts.append(f'<p class="{r.outcome}">{_e(r.message)}</p>')
    for step in r.steps:
        parts.append(
            f"<details{' open' if step.outcome in (FAILED, ERROR) else ''}>"
            f"<summary>step <b>{_e(step.name)}</b> {_e(step.transaction)}: "
            f'<span class="{step.outcome}">{_e(step.outcome)}</span> {_e(step.message)}</summary>'
        )
        if step.checks:
            parts.append("<ul>")
            for c in step.checks:
                cls = "check-ok" if c.ok else "check-fail"
                parts.append(
                    f'<li class="{cls}">{"ok" if c.ok else "FAIL"} {_e(c.name)}: {_e(c.detail)}</li>'
                )
            parts.append("</ul>")
        for ex in step.exchanges:
            parts.append(
                f"<details><summary>{_e(ex.kind)} {_e(ex.title)} ({ex.elapsed * 1000:.0f} ms)</summary>"
            )
            parts.append(f"<p>request</p><pre>{_e(ex.request)}</pre>")
            if ex.error:
                parts.append(f'<p class="error">{_e(ex.error)}</p>')
            parts.append(f"<p>response</p><pre>{_e(ex.response)}</pre></details>")
        parts.append("</details>")
    parts.append("</details>")
    return "\n".join(parts)


def write_html(results: Sequence[ScenarioResult], path: Path, target: Target) -> None:
    total = counts(results)
    ordered = sorted(results, key=lambda r: r.scenario.id)
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for r in ordered:
        groups[r.scenario.group or "-"][r.outcome] += 1
    rows = "\n".join(
        f"<tr><td>{_e(g)}</td><td class='passed'>{c[PASSED]}</td><td class='failed'>{c[FAILED]}</td>"
        f"<td class='error'>{c[ERROR]}</td><td class='skipped'>{c[SKIPPED]}</td></tr>"
        for g, c in sorted(groups.items())
    )
    body = "\n".join(_scenario_html(r) for r in ordered)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>xds-hub conformance report</title>
<style>{_CSS}</style></head><body>
<h1>Conformance report</h1>
<p>Target <b>{_e(target.base_url)}</b> (affinity domain {_e(target.domain.assigning_authority)}),
run {datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")} UTC by xds-hub {__version__}.</p>
<p><b>{len(results)}</b> scenarios: <span class="passed">{total[PASSED]} passed</span>,
<span class="failed">{total[FAILED]} failed</span>, <span class="error">{total[ERROR]} errors</span>,
<span class="skipped">{total[SKIPPED]} skipped</span>.</p>
<table><tr><th>group</th><th>passed</th><th>failed</th><th>error</th><th>skipped</th></tr>
{rows}</table>
<h2>Scenarios</h2>
{body}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
