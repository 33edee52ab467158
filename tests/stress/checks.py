"""Compare a gsup report with the marker files the program left, and judge gsup's exit.

What may legitimately differ, given when the probe writes its events
(``supervisor/_probe/sitecustomize.py``): the probe writes *begin* before it
calls a handler and *end* after the handler returned, each from an atexit
callback of its own, and ``sigrun`` before it calls a signal handler.  So:

* a handler's begin marker always has the probe's begin before it: a begin
  marker with no ``order`` in the report is **missing**;
* the report may show a handler began without its begin marker only if the
  process died between the probe's begin and the handler's first line: then
  the handler is ``interrupted``, no handler began after it, and the process
  did not end normally ("interrupted before its first line");
* an end marker without the probe's end: the process died between the
  handler's last line and the probe's end, with the same conditions
  ("interrupted after its last line"); anything else is missing;
* ``ran`` without the end marker, or ``raised`` without the raise marker, is
  **invented** (unless an exception from a signal handler reached the handler
  before its ``raise`` marker could be written);
* a signal handler's k-th begin marker means ``invocations >= k``; more
  invocations than markers is legitimate only by one, in a process that died
  abnormally.

Processes started with ``python -I`` run without the probe: their markers
cannot be matched and are only counted (``unmatched``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from plans import Scenario

ABNORMAL = ("signaled", "left-running", "os._exit", "unknown")
KNOWN_SHOT_ERRORS = (  # exit 2 after the program started: the target was not there (supervisor/tree.py, runner.py)
    "--signal was never sent: no ",
    "no parent: the launched process",
    "no child of pid ",
    "ended before the signal could be sent",
    "process group ",
    "no process of the tree is running",
)
GSUP_FRAME = re.compile(r'File "[^"]*(/supervisor/(?!_probe/)|/site-packages/(click|rich|psutil)/)')


@dataclass
class Finding:
    """One discrepancy: ``category`` is leftover, missing, invented or crash."""

    category: str
    kind: str
    detail: str


@dataclass
class ImageMarks:
    """The markers one program image left."""

    pid: int
    image: str
    isolated: bool = False
    handlers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    signal_runs: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class Outcome:
    """What one scenario's check established."""

    findings: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)  # legitimate differences: counted, shown with --verbose

    def add(self, category: str, kind: str, detail: str) -> None:
        self.findings.append(Finding(category, kind, detail))

    def note(self, kind: str, detail: str, count: int = 1) -> None:
        self.notes.extend(Finding("note", kind, detail) for _ in range(count))


def read_markers(directory: Path) -> dict[tuple[int, str], ImageMarks]:
    """Every image's markers, keyed by (pid, image)."""
    images: dict[tuple[int, str], ImageMarks] = {}
    for path in directory.iterdir():
        pid_text, image, name, what = path.name.split("-")
        key = (int(pid_text), image)
        marks = images.setdefault(key, ImageMarks(*key))
        if path.read_bytes() == b"isolated":
            marks.isolated = True
        if name == "image":
            continue
        if "." in name:
            marks.signal_runs[name.split(".")[0]] += 1
        else:
            marks.handlers[name].add(what)
    return images


def image_entries(report: dict[str, Any], images: dict[tuple[int, str], ImageMarks]
                  ) -> dict[tuple[int, str], Optional[dict[str, Any]]]:
    """Each marker image's report entry.

    A pid's probed images, in start order, match its instrumented entries in
    order; its ``python -I`` images match its uninstrumented entries in order
    (a ``/bin/sleep`` image comes last, after every Python image).
    """
    entries: dict[tuple[int, bool], list[dict[str, Any]]] = defaultdict(list)
    for process in report["processes"]:
        entries[(int(process["pid"]), bool(process["instrumented"]))].append(process)
    found: dict[tuple[int, str], Optional[dict[str, Any]]] = {}
    taken: dict[tuple[int, bool], int] = defaultdict(int)
    for pid, image in sorted(images, key=lambda key: (key[0], int(key[1], 16))):
        kind = (pid, not images[(pid, image)].isolated)
        index = taken[kind]
        taken[kind] += 1
        found[(pid, image)] = entries[kind][index] if index < len(entries[kind]) else None
    return found


def compare(scenario: Scenario, report: dict[str, Any], markers: Path) -> Outcome:
    """Markers against the report: what is missing from it, and what it invented."""
    outcome = Outcome()
    images = read_markers(markers)
    matched = image_entries(report, images)
    ours = scenario.handler_names()
    signal_of = scenario.signal_of()
    for key, marks in sorted(images.items()):
        entry = matched[key]
        where = f"pid {key[0]} image {key[1]}"
        if entry is None:
            kind = "process-isolated" if marks.isolated else "process"
            outcome.add("missing", kind, f"{where} ran the program{' under python -I' if marks.isolated else ''} "
                        f"({_marks_text(marks)}) but the report has no entry for this image")
            continue
        if marks.isolated:
            outcome.note("unmatched handler markers (python -I)", where, len(marks.handlers) + len(marks.signal_runs))
            continue
        for name, whats in sorted(marks.handlers.items()):
            _check_handler(outcome, where, entry, name, whats)
        _check_signals(outcome, where, entry, marks, scenario)
    _check_claims(outcome, report, images, matched, ours, signal_of)
    return outcome


def _marks_text(marks: ImageMarks) -> str:
    parts = [f"{n}:{'/'.join(sorted(w))}" for n, w in sorted(marks.handlers.items())]
    parts += [f"{n} x{c}" for n, c in sorted(marks.signal_runs.items())]
    return ", ".join(parts) or "no handler markers"


def _find(entry: dict[str, Any], name: str) -> Optional[dict[str, Any]]:
    found = [h for h in entry["handlers"] if h["name"] == name]
    return found[-1] if found else None


def _last_began(entry: dict[str, Any], handler: dict[str, Any]) -> bool:
    orders = [h["order"] for h in entry["handlers"] if h["order"] is not None]
    return handler["order"] is not None and handler["order"] == max(orders)


def _died_in(entry: dict[str, Any], handler: dict[str, Any]) -> bool:
    """The process died while ``handler`` was the last to begin: it can be cut anywhere in it."""
    return entry["end"]["how"] in ABNORMAL and _last_began(entry, handler)


def _check_handler(outcome: Outcome, where: str, entry: dict[str, Any], name: str, whats: set[str]) -> None:
    handler = _find(entry, name)
    label = f"{where}: handler {name} (markers {'/'.join(sorted(whats))})"
    if handler is None:
        outcome.add("missing", "handler", f"{label}: not in the report")
        return
    status = handler["status"]
    if "unreg" in whats and status != "unregistered":
        outcome.add("missing", "unregister", f"{label}: unregistered, but reported {status}")
    if "begin" not in whats:
        return  # claims without markers are judged in _check_claims
    if handler["order"] is None:
        outcome.add("missing", "begin", f"{label}: began, but reported {status} with no order")
        return
    if "raise" in whats:
        expected = "raised"
    elif "end" in whats:
        expected = "ran"
    else:
        expected = "interrupted"
    if status == expected:
        return
    if status == "interrupted" and _died_in(entry, handler):
        outcome.note(f"interrupted after its last line ({expected} marker)", f"{label}, ended {entry['end']}")
        return
    if expected == "interrupted" and status == "raised" and _async_raise(entry):
        outcome.note("raised from a signal handler before its raise marker", label)
        return
    category = "invented" if status in ("ran", "raised") else "missing"
    outcome.add(category, f"status-{expected}-as-{status}",
                f"{label}: reported {status}, markers say {expected} (process ended {entry['end']})")


def _async_raise(entry: dict[str, Any]) -> bool:
    """Some exception-raising signal handler ran in this process (KeyboardInterrupt included)."""
    return any(s["invocations"] for s in entry["signal_handlers"])


def _check_signals(outcome: Outcome, where: str, entry: dict[str, Any], marks: ImageMarks,
                   scenario: Scenario) -> None:
    signal_of = scenario.signal_of()
    bodies = {s.name: s.body for plan in scenario.plans() for s in plan.signals}
    runs: dict[str, int] = defaultdict(int)
    for name, count in marks.signal_runs.items():
        runs["SIG" + signal_of[name]] += count
    reported = {s["signal"]: s for s in entry["signal_handlers"]}
    for sig, count in sorted(runs.items()):
        names = sorted(n for n in marks.signal_runs if "SIG" + signal_of[n] == sig)
        got = reported.get(sig)
        if got is None:
            why = ("-replaced-by-SIG_DFL" if any(bodies[n] == "redefault" for n in names)
                   else "-inherited-by-fork" if entry["forked"] else "")
            outcome.add("missing", "signal-handler" + why, f"{where}: {'/'.join(names)} ran {count}x for {sig}, "
                        "the report lists no handler for it")
        elif got["invocations"] < count:
            outcome.add("missing", "signal-runs", f"{where}: {'/'.join(names)} ran {count}x for {sig}, "
                        f"the report says {got['invocations']}")


def _check_claims(outcome: Outcome, report: dict[str, Any], images: dict[tuple[int, str], ImageMarks],
                  matched: dict[tuple[int, str], Optional[dict[str, Any]]], ours: set[str],
                  signal_of: dict[str, str]) -> None:
    """Every claim the report makes about our handlers must have its marker."""
    marks_of = {id(entry): images[key] for key, entry in matched.items() if entry is not None}
    for entry in report["processes"]:
        if not entry["instrumented"]:
            continue
        marks = marks_of.get(id(entry))
        where = f"pid {entry['pid']} ({entry['role']})"
        for handler in entry["handlers"]:
            if handler["name"] not in ours or handler["order"] is None:
                continue
            whats = marks.handlers.get(handler["name"], set()) if marks else set()
            if "begin" in whats:
                continue  # judged against its markers in _check_handler
            if handler["status"] == "interrupted" and _died_in(entry, handler):
                outcome.note("interrupted before its first line", f"{where}: {handler['name']}, ended {entry['end']}")
                continue
            outcome.add("invented", "begin", f"{where}: report says {handler['name']} began "
                        f"({handler['status']}, order {handler['order']}) but it left no begin marker "
                        f"(process ended {entry['end']})")
        for sig in entry["signal_handlers"]:
            names = [n for n, s in signal_of.items() if "SIG" + s == sig["signal"]]
            if sig["handler"] not in names:
                continue
            count = sum(marks.signal_runs.get(n, 0) for n in names) if marks else 0
            extra = sig["invocations"] - count
            if extra <= 0:
                continue
            if extra == 1 and entry["end"]["how"] in ABNORMAL:
                outcome.note("signal handler killed before its first line", f"{where}: {sig['handler']}")
                continue
            outcome.add("invented", "signal-runs", f"{where}: report says {sig['handler']} ran "
                        f"{sig['invocations']}x for {sig['signal']}, markers show {count}")


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
