"""Compare a gsup report with the marker files the program left, and judge gsup's exit.

What may legitimately differ, given when the probe writes its events
(``supervisor/_probe/sitecustomize.py``): the probe writes *begin* before it
calls a handler and *end* after the handler returned, each from an atexit
callback of its own; a *raise* when the exception reaches
``sys.unraisablehook``; and ``sigrun`` before it calls a signal handler.  So:

* a handler's begin marker always has the probe's begin before it: a begin
  marker with no ``order`` in the report is **missing**;
* the report may show a handler began without its begin marker only if the
  process died between the probe's begin and the handler's first line: then
  the handler is ``interrupted``, no handler began after it, and the process
  died ("interrupted before its first line");
* an end (or raise) marker without the probe's end (or raise): the process
  died between the handler's last line and the probe's record, with the same
  conditions ("interrupted after its last line"); anything else is missing;
* ``ran`` without the end marker, or ``raised`` without the raise marker, is
  **invented** (unless an exception from a signal handler reached the handler
  before its raise marker could be written);
* "died" means killed by a signal, left running (then killed), or an
  ``os._exit`` called by one of the program's signal handlers in that image;
  an ``os._exit`` that no signal handler called (multiprocessing ending a
  child) does not cut a handler short: it comes after the handler has ended;
* a handler called twice in one process has one entry in the report, whose
  ``runs`` must count every call (fewer is **missing**, more **invented**), and
  whose status is the last call's;
* a signal handler's k begin markers mean ``invocations >= k`` for it (a run
  belongs to the handler installed when it happened); more invocations than
  markers is legitimate only by one, in a process that died.

Processes started with ``python -I`` run without the probe: their markers
cannot be matched and are only counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import markers
from markers import ImageMarks
from plans import Scenario

KILLED = ("signaled", "left-running", "unknown")
KNOWN_SHOT_ERRORS = (  # exit 2 after the program started: the target was not there (supervisor/tree.py, runner.py)
    "--signal was never sent: no ",
    "no parent: the launched process",
    "no child of pid ",
    "ended before the signal could be sent",
    "process group ",
    "no process of the tree is running",
)
NO_TARGET_MARGIN = 0.5  # seconds a target must have run past --after for gsup to have had to see it
GSUP_FRAME = re.compile(r'File "[^"]*(/supervisor/(?!_probe/)|/site-packages/(click|rich|psutil)/)')


@dataclass
class Finding:
    """One discrepancy (category leftover, missing, invented, crash) or a legitimate difference (note)."""

    category: str
    kind: str
    detail: str


@dataclass
class Outcome:
    """What one scenario's comparison established."""

    findings: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)  # legitimate differences: counted, shown with --verbose

    def add(self, category: str, kind: str, detail: str) -> None:
        self.findings.append(Finding(category, kind, detail))

    def note(self, kind: str, detail: str, count: int = 1) -> None:
        self.notes.extend(Finding("note", kind, detail) for _ in range(count))


@dataclass
class _Image:
    """One report entry with the markers of the same image (if it left any)."""

    entry: dict[str, Any]
    marks: Optional[ImageMarks]
    scenario: Scenario

    @property
    def where(self) -> str:
        return f"pid {self.entry['pid']} ({self.entry['role']})"

    def handler(self, name: str) -> Optional[dict[str, Any]]:
        found = [h for h in self.entry["handlers"] if h["name"] == name]
        return found[-1] if found else None

    def died_in(self, handler: dict[str, Any]) -> bool:
        """The process died while ``handler`` was the last to begin: it can be cut anywhere in it."""
        orders = [h["order"] for h in self.entry["handlers"] if h["order"] is not None]
        last = handler["order"] is not None and handler["order"] == max(orders)
        return last and self.died()

    def died(self) -> bool:
        how = self.entry["end"]["how"]
        return how in KILLED or (how == "os._exit" and self.signal_os_exit())

    def signal_os_exit(self) -> bool:
        """One of the program's os._exit signal handlers began in this image."""
        exiting = {s.name for plan in self.scenario.plans() for s in plan.signals if s.body == "os_exit"}
        return self.marks is not None and any(self.marks.began(name) for name in exiting)


def compare(scenario: Scenario, report: dict[str, Any], directory: Path) -> Outcome:
    """Markers against the report: what is missing from it, and what it invented."""
    outcome = Outcome()
    images = markers.read(directory)
    matched = markers.match(report, images)
    signals = scenario.signal_of()
    for key, marks in sorted(images.items()):
        entry = matched[key]
        if entry is None:
            kind = "process-isolated" if marks.isolated else "process"
            outcome.add("missing", kind, f"pid {key[0]} image {key[1]} ran the program"
                        f"{' under python -I' if marks.isolated else ''} ({marks.describe()}) but the report "
                        "has no entry for this image")
        elif marks.isolated:
            outcome.note("unmatched handler markers (python -I)", f"pid {key[0]}",
                         len(set(marks.registered) | set(marks.runs)))
        else:
            image = _Image(entry, marks, scenario)
            for name in sorted((set(marks.registered) | set(marks.runs)) - set(signals)):
                _check_handler(outcome, image, name)
            _check_signal_runs(outcome, image)
    by_entry = {id(e): images[k] for k, e in matched.items() if e is not None}
    for entry in report["processes"]:
        if entry["instrumented"]:
            _check_claims(outcome, _Image(entry, by_entry.get(id(entry)), scenario))
    return outcome


def _check_handler(outcome: Outcome, image: _Image, name: str) -> None:
    assert image.marks is not None
    handler = image.handler(name)
    registered, runs = image.marks.registered.get(name, set()), image.marks.runs.get(name, {})
    kind = f"{handler['kind']} " if handler is not None else ""
    label = f"{image.where}: {kind}handler {name} (markers {image.marks.describe_one(name)})"
    if handler is None:
        outcome.add("missing", "handler", f"{label}: not in the report")
        return
    status = handler["status"]
    if "unreg" in registered and status != "unregistered":
        outcome.add("missing", "unregister", f"{label}: unregistered, but reported {status}")
    if not runs:
        return  # claims without markers are judged in _check_claims
    if handler["order"] is None:
        outcome.add("missing", "begin", f"{label}: began, but reported {status} with no order")
        return
    if len(runs) != handler.get("runs", 1):
        outcome.add("missing" if len(runs) > handler.get("runs", 1) else "invented", "called-again",
                    f"{label}: called {len(runs)} times in one process, the report shows "
                    f"{handler.get('runs', 1)} ({status})")
        return
    _check_status(outcome, image, handler, label, runs[max(runs)])  # the status is the last run's


def _check_status(outcome: Outcome, image: _Image, handler: dict[str, Any], label: str, whats: set[str]) -> None:
    expected = "raised" if "raise" in whats else "ran" if "end" in whats else "interrupted"
    status = handler["status"]
    if status == expected:
        return
    if status == "interrupted" and image.died_in(handler):
        outcome.note(f"interrupted after its last line ({expected} marker)", f"{label}, ended {image.entry['end']}")
        return
    if expected == "interrupted" and status == "raised" and _signal_ran(image.entry):
        outcome.note("raised from a signal handler before its raise marker", label)
        return
    category = "invented" if status in ("ran", "raised") else "missing"
    outcome.add(category, f"status-{expected}-as-{status}",
                f"{label}: reported {status}, markers say {expected} (process ended {image.entry['end']})")


def _signal_ran(entry: dict[str, Any]) -> bool:
    """Some signal handler ran in this process (the default SIGINT one included), or may have:
    before 3.11 the default SIGINT handler's runs are unknown (``invoked`` null)."""
    return any(s["invocations"] or s["invoked"] is not False for s in entry["signal_handlers"])


def _check_signal_runs(outcome: Outcome, image: _Image) -> None:
    """Each of the program's signal handlers that began: the report lists it, with at least as many runs."""
    assert image.marks is not None
    signal_of = image.scenario.signal_of()
    for name in sorted(n for n in image.marks.runs if n in signal_of and image.marks.began(n)):
        sig, count = "SIG" + signal_of[name], image.marks.began(name)
        reported = [s for s in image.entry["signal_handlers"] if s["signal"] == sig and s["handler"] == name]
        text = f"{image.where}: {name} ran {count}x for {sig}"
        if not reported:
            why = "-inherited-by-fork" if image.entry["forked"] else ""
            outcome.add("missing", "signal-handler" + why, f"{text}, the report does not list it "
                        f"(it lists {[(s['signal'], s['handler']) for s in image.entry['signal_handlers']]})")
        elif sum(s["invocations"] for s in reported) < count:
            outcome.add("missing", "signal-runs", f"{text}, the report says {reported}")


def _check_claims(outcome: Outcome, image: _Image) -> None:
    """Every claim the report makes about the program's handlers must have its marker."""
    ours = image.scenario.handler_names()
    for handler in image.entry["handlers"]:
        if handler["name"] not in ours or handler["order"] is None:
            continue
        if image.marks is not None and image.marks.began(handler["name"]):
            continue  # judged against its markers in _check_handler
        if handler["status"] == "interrupted" and image.died_in(handler):
            outcome.note("interrupted before its first line", f"{image.where}: {handler['name']}, "
                         f"ended {image.entry['end']}")
            continue
        outcome.add("invented", "begin", f"{image.where}: report says {handler['name']} began "
                    f"({handler['status']}, order {handler['order']}) but it left no begin marker "
                    f"(process ended {image.entry['end']})")
    signal_of = image.scenario.signal_of()
    for sig in image.entry["signal_handlers"]:
        if sig["handler"] not in signal_of:
            continue
        count = image.marks.began(sig["handler"]) if image.marks else 0
        extra = sig["invocations"] - count
        if extra == 1 and image.died():
            outcome.note("signal handler killed before its first line", f"{image.where}: {sig['handler']}")
        elif extra > 0:
            outcome.add("invented", "signal-runs", f"{image.where}: report says {sig['handler']} ran "
                        f"{sig['invocations']}x for {sig['signal']}, markers show {count}")


def check_no_target(scenario: Scenario, report: dict[str, Any]) -> list[Finding]:
    """gsup said the target was not there (exit 2): with ``--after T``, no
    process it names may have been provably running from T until well after.

    ``ended`` is when a status was collected, and a zombie can wait long for
    its parent: only a later SIGKILL from gsup itself (which signals live
    processes only) proves a process was still running.
    """
    if "--after" not in scenario.timing:
        return []  # the settle moment is gsup's own: nothing to hold it against
    text = scenario.timing[scenario.timing.index("--after") + 1]
    at = float(text[:-2]) / 1000 if text.endswith("ms") else float(text.rstrip("s"))
    roles = {"parent": ("parent",), "child": ("child",), "group": ("parent",)}.get(  # setsid leaves the group
        scenario.target, ("parent", "child", "grandchild"))
    killed_later = {pid for a in report["actions"] if a["at"] >= at + NO_TARGET_MARGIN for pid in a["pids"]}
    alive = [p for p in report["processes"] if p["role"] in roles and p["started"] is not None
             and p["started"] <= at and p["pid"] in killed_later]
    return [Finding("crash", "exit-2-contradicted", f"gsup found no {scenario.target} at {at:.3f}s, but pid "
                    f"{p['pid']} ({p['role']}) started at {p['started']} and gsup signalled it after "
                    f"{at + NO_TARGET_MARGIN:.3f}s") for p in alive]


def judge_exit(code: int, stdout: str, stderr: str) -> tuple[Optional[dict[str, Any]], list[Finding], str]:
    """gsup's exit: the parsed report, crash findings, and the explained exit-2 reason (if any)."""
    import json

    findings: list[Finding] = []
    for block in stderr.split("Traceback (most recent call last):")[1:]:
        if GSUP_FRAME.search(block):
            findings.append(Finding("crash", "traceback", "gsup traceback on stderr:" + block[:1500]))
    if "internal error" in stderr:
        findings.append(Finding("crash", "internal-error", _error_lines(stderr)))
    report: Optional[dict[str, Any]] = None
    try:
        parsed = json.loads(stdout)
        if isinstance(parsed, dict) and parsed.get("schema") == "gsup.report/1":
            report = parsed
        else:
            findings.append(Finding("crash", "json", f"not a gsup.report/1 document: {stdout[:300]!r}"))
    except ValueError as err:
        findings.append(Finding("crash", "json", f"stdout is not JSON ({err}): {stdout[:300]!r}"))
    reason = ""
    if code == 2:
        errors = _error_lines(stderr)
        reason = next((known for known in KNOWN_SHOT_ERRORS if known in errors), "")
        if not reason:
            findings.append(Finding("crash", "exit-2", f"exit 2 not explained by a missing target: {errors!r}"))
    elif code == 3:
        findings.append(Finding("crash", "exit-3", f"gsup reported itself incomplete: {_error_lines(stderr)!r}"))
    elif code != 0:
        findings.append(Finding("crash", f"exit-{code}", f"undocumented exit {code}: {_error_lines(stderr)!r}"))
    if report is not None and code != 3 and not report.get("complete", False):
        findings.append(Finding("crash", "incomplete", f"report incomplete with exit {code}: {report['incomplete']}"))
    return report, findings, reason


def _error_lines(stderr: str) -> str:
    return " | ".join(line for line in stderr.splitlines() if line.startswith("gsup:")) or stderr[-500:]


# The probe's package and its entry file (supervisor/_probe/).  Not "sitecustomize"
# alone: ``site``'s own ``execsitecustomize`` frame shows in any interpreter that a
# Ctrl-C stops at start-up, with or without the probe.
PROBE_NAMES = ("_gsup_probe", "_probe/sitecustomize.py")


def probe_lines(*outputs: str) -> list[Finding]:
    """The probe never speaks in the program's output: any line naming it there (a traceback
    through its hooks, an ``Exception ignored in`` of its at-fork hook) is a finding."""
    lines = [line for output in outputs for line in output.splitlines() if any(n in line for n in PROBE_NAMES)]
    return [Finding("probe", "output", f"{len(lines)} line(s) naming the probe in the program's output, first: "
                    f"{lines[0][:300]!r}")] if lines else []
