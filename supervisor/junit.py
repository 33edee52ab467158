"""JUnit XML for CI: one test case per scenario, so a dashboard shows which one broke.

The shape is the one Jenkins, GitLab and GitHub test reporters read::

    <testsuite name="gsup" tests=".." failures=".." errors=".." skipped=".." time=".."
               timestamp="2026-12-05T03:30:00" hostname="ci-runner-7">
      <testcase classname="python app.py" name="SIGKILL→child" time="..">
        <failure type="expectation" message="child: shutdown ran">expected: ..
    observed: ..</failure>          one per failed --expect
        <error type="incomplete" message="report incomplete: ..">..</error>
        <skipped message="no child process"/>   a matrix scenario that could not happen
        <system-out>pid role: explanation, one line per process</system-out>
      </testcase>
    </testsuite>

A case with an ``<error>`` counts as an error even if it also has failures, so
``failures + errors <= tests`` as readers assume.
"""

from __future__ import annotations

import signal
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from supervisor.errors import GsupError
from supervisor.model import Report
from supervisor.options import Target

Case = tuple[str, Report]  # (scenario name, its report)


def scenario_name(sig: Optional[signal.Signals], target: Optional[Target], stop: Optional[str]) -> str:
    """``SIGKILL→child``, ``stop docker``, or ``run`` when nothing was sent."""
    if stop is not None:
        return f"stop {stop}"
    if sig is not None:
        return f"{sig.name}→{target or 'parent'}"
    return "run"


def build(cases: Sequence[Case], errors: Optional[Mapping[str, str]] = None,
          skipped: Optional[Mapping[str, str]] = None) -> ET.Element:
    """The ``<testsuite>`` element; ``errors`` maps a scenario name to a problem that
    is not in its report (e.g. the signal was never sent), shown as an ``<error>``;
    ``skipped`` one that could not happen and is no failure (a matrix's "no child process").
    ``timestamp`` (when the first run started, UTC) and ``hostname`` are what dashboards
    sort and group by."""
    suite = ET.Element("testsuite", name="gsup")
    counts = {"error": 0, "failure": 0, "skipped": 0}
    for name, report in cases:
        reason = (skipped or {}).get(name)
        case = _skipped(name, report, reason) if reason else _testcase(name, report, (errors or {}).get(name))
        suite.append(case)
        kind = next((k for k in ("skipped", "error", "failure") if case.find(k) is not None), None)
        if kind is not None:
            counts[kind] += 1
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(counts["failure"]))
    suite.set("errors", str(counts["error"]))
    suite.set("skipped", str(counts["skipped"]))
    suite.set("time", f"{sum(report.duration for _, report in cases):.3f}")
    first = min((report.started for _, report in cases), default=time.time())
    suite.set("timestamp", datetime.fromtimestamp(first, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"))
    suite.set("hostname", socket.gethostname())
    return suite


def _skipped(name: str, report: Report, reason: str) -> ET.Element:
    case = ET.Element("testcase", classname=_command(report.command), name=name, time=f"{report.duration:.3f}")
    ET.SubElement(case, "skipped", message=reason)
    ET.SubElement(case, "system-out").text = _system_out(report)
    return case


def write(path: str | Path, cases: Sequence[Case], errors: Optional[Mapping[str, str]] = None,
          skipped: Optional[Mapping[str, str]] = None) -> None:
    """Write the XML file; GsupError (exit 2) with one line if it cannot be written."""
    tree = ET.ElementTree(build(cases, errors, skipped))
    ET.indent(tree)
    try:
        tree.write(path, encoding="utf-8", xml_declaration=True)
    except OSError as err:
        raise GsupError(f"cannot write --junit {str(path)!r}: {err.strerror or err}") from None


def _testcase(name: str, report: Report, error: Optional[str]) -> ET.Element:
    case = ET.Element("testcase", classname=_command(report.command), name=name, time=f"{report.duration:.3f}")
    for result in report.expectations:
        if not result.ok:
            failure = ET.SubElement(case, "failure", message=result.text, type="expectation")
            failure.text = f"expected: {result.expected}\nobserved: {result.observed}"
    if error is not None:
        ET.SubElement(case, "error", message=error, type="gsup").text = error
    if report.incomplete:
        message = "report incomplete: " + "; ".join(report.incomplete)
        ET.SubElement(case, "error", message=message, type="incomplete").text = "\n".join(report.incomplete)
    ET.SubElement(case, "system-out").text = _system_out(report)
    return case


def _command(argv: list[str]) -> str:
    """The command as typed, with the interpreter's directory dropped (it says nothing about the test)."""
    return " ".join(arg.rsplit("/", 1)[-1] if i == 0 else arg for i, arg in enumerate(argv)) or "?"


def _system_out(report: Report) -> str:
    lines = [f"{proc.pid} {proc.role}: {proc.explanation}" for proc in report.processes]
    lines += [f"{'✓' if e.ok else '✗'} {e.text}" for e in report.expectations]
    return "\n".join(lines) + "\n"
