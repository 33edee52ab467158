"""``gsup matrix``'s report: the scenarios, how each run went, and their ``gsup.matrix/1`` document.

Plain data, no I/O, like ``model.py`` for one run: the API (``api.py``) reads
this document back from ``gsup matrix --json`` and must not depend on the loop
that runs the scenarios (``scenarios.py``), which sits above it.

Format history: ``gsup.matrix/1`` — first version (schema:
``supervisor/schemas/matrix-1.json``).
"""

from __future__ import annotations

import re
from typing import Any, Optional

from supervisor import __version__
from supervisor.errors import ExitCode
from supervisor.model import Report
from supervisor.records import dataclass, field

SCHEMA = "gsup.matrix/1"
# The runs' exit codes in gsup run's own order of priority: the matrix exits with the first one present.
SEVERITY = (ExitCode.USAGE, ExitCode.NOT_READY, ExitCode.INCOMPLETE, ExitCode.EXPECTATION_FAILED)


@dataclass(frozen=True)
class Scenario:
    """One way of stopping the program: a signal to a target, or a stop preset."""

    name: str
    signal: Optional[str]  # "SIGTERM"
    target: Optional[str]
    stop: Optional[str] = None

    def flags(self) -> list[str]:
        if self.stop is not None:
            return ["--stop", self.stop]
        return ["--signal", str(self.signal), "--target", str(self.target)]

    @property
    def slug(self) -> str:
        """The name as a file name: ``SIGTERM-child``, ``stop-docker``."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", self.name)


@dataclass
class ScenarioResult:
    """A scenario and how its run went: ``scenarios[i]`` of the JSON document."""

    scenario: Scenario
    exit_code: int
    ok: bool
    error: Optional[str] = None  # gsup's one-line message for this run, if it gave one
    log: Optional[str] = None  # the file holding the run's stderr (the program's output)
    skipped: Optional[str] = None  # why it did not happen and is no failure ("no child process")

    @property
    def name(self) -> str:
        return self.scenario.name

    def to_json(self) -> dict[str, Any]:
        s = self.scenario
        return {"name": s.name, "signal": s.signal, "target": s.target, "stop": s.stop,
                "exit_code": self.exit_code, "ok": self.ok, "error": self.error, "log": self.log,
                "skipped": self.skipped}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> ScenarioResult:
        scenario = Scenario(str(record["name"]), _opt(record.get("signal")), _opt(record.get("target")),
                            _opt(record.get("stop")))
        return cls(scenario, int(record["exit_code"]), bool(record["ok"]), _opt(record.get("error")),
                   _opt(record.get("log")), _opt(record.get("skipped")))


@dataclass
class MatrixReport:
    """Every scenario's outcome; ``runs[i]`` is the report of ``scenarios[i]``."""

    command: list[str]
    started: float
    duration: float
    scenarios: list[ScenarioResult]
    runs: list[Report]
    version: str = __version__
    log_dir: Optional[str] = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.scenarios)

    @property
    def complete(self) -> bool:
        return all(not r.incomplete for r in self.runs)

    def run(self, name: str) -> Report:
        """The report of the scenario called ``name`` (``"SIGKILL→child"``, ``"stop docker"``)."""
        for result, report in zip(self.scenarios, self.runs):
            if result.name == name:
                return report
        raise LookupError(f"no scenario {name!r}: the scenarios were {', '.join(s.name for s in self.scenarios)}")

    @property
    def exit_code(self) -> int:
        """What ``gsup matrix`` exits with: the most serious of the runs' codes."""
        codes = {s.exit_code for s in self.scenarios if s.skipped is None}
        for code in SEVERITY:
            if code in codes:
                return int(code)
        if not self.complete or codes - {0}:
            return int(ExitCode.INCOMPLETE)
        return 0

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "gsup": self.version, "command": self.command,
                "started": round(self.started, 3), "duration": round(self.duration, 3),
                "ok": self.ok, "complete": self.complete, "scenarios": [s.to_json() for s in self.scenarios],
                "runs": [r.to_json() for r in self.runs]}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> MatrixReport:
        if document.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} document: schema {document.get('schema')!r}")
        return cls(command=[str(a) for a in document["command"]], started=float(document["started"]),
                   duration=float(document["duration"]),
                   scenarios=[ScenarioResult.from_json(s) for s in document["scenarios"]],
                   runs=[Report.from_json(r) for r in document["runs"]], version=str(document.get("gsup", "")))


def _opt(value: Any) -> Optional[str]:
    return None if value is None else str(value)
