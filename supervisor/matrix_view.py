"""What ``gsup matrix`` shows: progress on stderr, then the table or the JSON on stdout (and ``--junit``).

No data logic: every cell reads the scenario's report (``matrix_report.py``).
"""

from __future__ import annotations

import re
import sys

from rich import progress
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from supervisor import junit, strictjson, wording
from supervisor.matrix_report import MatrixReport, Scenario, ScenarioResult
from supervisor.model import (
    INTERRUPTED,
    NOT_RUN,
    RAISED,
    RAN,
    SIGNALED,
    Handler,
    Process,
    Report,
)
from supervisor.render import StdoutConsole
from supervisor.scenarios import Progress


def failure_lines(result: MatrixReport) -> list[str]:
    """One line per failed scenario: its name and what went wrong."""
    lines = []
    for scenario, run in zip(result.scenarios, result.runs):
        if scenario.ok:
            continue
        reasons = [f"{e.text} did not hold ({e.observed})" for e in run.expectations if not e.ok]
        reasons += [f"incomplete: {why}" for why in run.incomplete]
        reasons += [scenario.error] if scenario.error else []
        lines.append(f"{scenario.name}: {'; '.join(reasons) or f'gsup exited {scenario.exit_code}'}")
    return lines


def summary(result: MatrixReport) -> str:
    failed = [s.name for s in result.scenarios if not s.ok]
    where = f"; each run's output is in {result.log_dir}" if result.log_dir else ""
    return f"{len(failed)} of {len(result.scenarios)} scenarios failed: {', '.join(failed)}{where}"


ROLE_ORDER = ("parent", "child", "grandchild", "unknown")
_LIBRARY = re.compile(r"/(?:site|dist)-packages/|/lib/python\d+\.\d+/|^<")
_MARKS = {RAN: ("✓", "green"), NOT_RUN: ("✗", "red"), INTERRUPTED: ("✗", "yellow"), RAISED: ("!", "red")}


def show(result: MatrixReport, as_json: bool) -> None:
    """The JSON document alone, or the table, on stdout."""
    if as_json:
        print(strictjson.dumps(result.to_json(), indent=2))
        return
    StdoutConsole(highlight=False).print_lines(Group(heading(result), table(result)))


def heading(result: MatrixReport) -> Text:
    """The line above the table: a line of its own, since a table's title is padded to the
    table's width with spaces, which piped output kept as trailing whitespace."""
    return Text(f"gsup matrix: {_short(result.command)}  ({result.duration:.1f}s)", style="italic")


def table(result: MatrixReport) -> Table:
    """A row per scenario; per role, how the process ended and which handlers ran (✓) or not (✗)."""
    roles = _roles(result.runs)
    grid = Table(show_lines=True)
    grid.add_column("scenario", no_wrap=True)
    for role in roles:
        grid.add_column(role)
    grid.add_column("result")
    for scenario, run in zip(result.scenarios, result.runs):
        cells = [_cell(run.roles(role), run) for role in roles]
        grid.add_row(Text(scenario.name, style="bold"), *cells, _verdict(scenario, run))
    return grid


def _roles(runs: list[Report]) -> list[str]:
    found = {p.role for run in runs for p in run.processes}
    return [r for r in ROLE_ORDER if r in found] + sorted(found - set(ROLE_ORDER))


def _cell(procs: list[Process], run: Report) -> Text:
    if not procs:
        return Text("-", style="dim")
    return Text("\n").join(_process_cell(p, run) for p in procs)


def _process_cell(proc: Process, run: Report) -> Text:
    text = Text(ending(proc) + _by_gsup(proc, run) + _dropped(proc, run), style=wording.style(proc.end))
    for handler in _shown(proc.handlers):
        mark, style = _MARKS[handler.status]
        note = {INTERRUPTED: " (cut off)", RAISED: f" raised {handler.exception}"}.get(handler.status, "")
        text.append(f"\n{mark} {handler.label}{note}", style=style)
    for call in sorted((w for w in proc.watched if not _LIBRARY.search(w.where)), key=lambda w: w.order or 0):
        mark, style = _MARKS[call.status]  # a watched call: a gunicorn hook, a --watch function
        note = {INTERRUPTED: " (cut off)", RAISED: f" raised {call.exception}"}.get(call.status, "")
        text.append(f"\n{mark} {call.name}(){note}", style=style)
    return text


def _by_gsup(proc: Process, run: Report) -> str:
    """`` (grace)`` for a process that outlived the scenario and was ended by
    gsup's grace kill: not the environment's doing, unlike the signal under test."""
    if proc.end.how != SIGNALED:
        return ""
    for action in reversed(run.actions):
        if action.signal == proc.end.signal and proc.pid in action.pids:
            return " (grace)" if action.by == "grace" else ""
    return ""


def _dropped(proc: Process, run: Report) -> str:
    """`` (TERM dropped)``: the kernel dropped a signal for this PID 1 (container mode)."""
    dropped = [a.signal.removeprefix("SIG") for a in run.actions if proc.pid in a.dropped]
    return f" ({', '.join(dict.fromkeys(dropped))} dropped)" if dropped else ""


def ending(proc: Process) -> str:
    """The ending's cell words (``exit 0``, ``SIGKILL``), `` (no probe)`` where the probe was not loaded."""
    words = wording.cell(proc.end)
    return words if proc.instrumented else f"{words} (no probe)"


def _shown(handlers: list[Handler]) -> list[Handler]:
    """The program's own handlers (all of them if it has none), in the order
    they began, then the rest in the order atexit would have run them."""
    known = [h for h in handlers if h.status in _MARKS]
    own = [h for h in known if not _LIBRARY.search(h.where)] or known
    began = sorted((h for h in own if h.order is not None), key=lambda h: h.order or 0)
    return began + [h for h in reversed(own) if h.order is None]


def _verdict(scenario: ScenarioResult, run: Report) -> Text:
    if scenario.skipped is not None:
        return Text(scenario.skipped, style="dim")
    if scenario.ok:
        return Text("ok", style="green")
    lines = []
    for failed in (e for e in run.expectations if not e.ok):
        lines += [Text(f"✗ {failed.text}", style="red"), Text(failed.observed, style="dim")]
    lines += [Text(f"incomplete: {why}", style="red") for why in run.incomplete]
    if scenario.error:
        lines.append(Text(scenario.error, style="red"))
    return Text("\n").join(lines or [Text(f"gsup exited {scenario.exit_code}", style="red")])


def _short(argv: list[str]) -> str:
    return " ".join(a.rsplit("/", 1)[-1] if i == 0 else a for i, a in enumerate(argv))


class _Lines(Progress):
    """Not a terminal: one line per finished scenario, for CI logs."""

    def finished(self, result: ScenarioResult, report: Report) -> None:
        verdict = "ok" if result.ok else f"failed (gsup exit {result.exit_code})"
        print(f"gsup: {result.name}: {verdict}, {report.duration:.1f}s", file=sys.stderr, flush=True)


class _Bar(Progress):
    """A terminal: a progress bar naming the scenarios running; gone once done."""

    def __init__(self, console: Console, total: int) -> None:
        self.bar = progress.Progress(progress.SpinnerColumn(), progress.TextColumn("{task.description}"),
                                     progress.BarColumn(), progress.MofNCompleteColumn(),
                                     progress.TimeElapsedColumn(), console=console, transient=True)
        self.task = self.bar.add_task("starting", total=total)
        self.running: list[str] = []
        self.bar.start()

    def started(self, scenario: Scenario) -> None:
        self.running.append(scenario.name)
        self.bar.update(self.task, description=", ".join(self.running))

    def finished(self, result: ScenarioResult, report: Report) -> None:
        self.running.remove(result.name)
        self.bar.update(self.task, advance=1, description=", ".join(self.running))

    def close(self) -> None:
        self.bar.stop()


def make_progress(quiet: bool, total: int) -> Progress:
    if quiet:
        return Progress()
    console = Console(stderr=True)
    return _Bar(console, total) if console.is_terminal else _Lines()


def write_junit(path: str, result: MatrixReport) -> None:
    """``--junit``: one test case per scenario (``supervisor/junit.py``)."""
    errors = {s.name: s.error for s in result.scenarios if s.error and s.skipped is None}
    skipped = {s.name: s.skipped for s in result.scenarios if s.skipped is not None}
    junit.write(path, [(s.name, run) for s, run in zip(result.scenarios, result.runs)], errors, skipped)
