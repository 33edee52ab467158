"""``gsup matrix``: one program, every way of stopping it, one table.

A scenario is one signal sent to one target (``SIGTERM→child``) or one stop
preset (``stop docker``).  Each runs as its own ``gsup run --json -q``
subprocess in a fresh tree, ``--jobs`` at a time (default: one per core).
Servers bind fixed ports, so side by side they would clash, and a clash would
be reported as the server's own crash: each run therefore has a private network
namespace (``netns.py``: loopback up, every port free, ``--ready-port`` read from
inside).  Where that is not allowed the matrix refuses to run side by side and
says why, unless asked for one at a time; ``--network shared`` keeps the host's
network, and ``{port}`` then gives each scenario a port of its own.
Subprocesses, not threads, because gsup's runner must own its process
(subreaper, ``waitid(P_ALL)``, signal handlers; see ``api.py``).
Each run's stdout (its report) and stderr (the program's output, under
``--json``) go to files in a private directory, so the terminal only shows
progress and the table (``matrix_view.py``).

The module is not called ``matrix``: ``supervisor.matrix`` is the API function
(``from supervisor import matrix``), and a submodule of that name would
replace it as soon as it was imported.  Its report, the ``gsup.matrix/1``
document, is ``matrix_report.py``: the API reads it without this loop.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from supervisor import __version__, netns, options, stops
from supervisor.errors import GsupError
from supervisor.gsup_child import GSUP, end_gsup, error_line, parse_document
from supervisor.matrix_report import MatrixReport, Scenario, ScenarioResult
from supervisor.model import Report
from supervisor.phases.plan import STOPPING_FD
from supervisor.records import dataclass, field

OVERLAP = 3  # scenarios that wait for their shutdown may run beside the starting ones, up to this times --jobs
KEEP_LOGS = 20  # matrix log directories kept under the sessions root; older ones are removed
PORT = "{port}"  # in the program's arguments and --ready-*: a free port, one per scenario
SAMPLE_PORT = 1  # stands for PORT when the options are checked, before any run
NETNS = str(Path(__file__).resolve().with_name("netns.py"))


# -- planning -------------------------------------------------------------------


def plan(signals_text: str, targets_text: str) -> list[Scenario]:
    """Every signal to every target, then each stop preset once; GsupError on bad input."""
    signals = _unique(options.parse_signal(word).name for word in _words(signals_text))
    kinds: list[str] = []
    presets: list[str] = []
    for word in _words(targets_text):
        if word.lower().startswith("pid:"):
            raise GsupError(f"--targets {word}: a pid belongs to one run, and each scenario is a fresh tree "
                            f"(use parent, child, group, tree or a stop preset)")
        if word.lower() in options.TARGET_KINDS:
            kinds.append(word.lower())
        else:
            presets.append(_preset(word))
    if kinds and not signals:
        raise GsupError("--signals is empty: give at least one signal (e.g. TERM,INT,KILL)")
    if not kinds and not presets:
        raise GsupError("--targets is empty: give parent, child, group, tree or a stop preset")
    scenarios = [Scenario(f"{sig}→{kind}", sig, kind) for sig in signals for kind in _unique(kinds)]
    for name in _unique(presets):
        preset = stops.PRESETS[name]
        scenarios.append(Scenario(f"stop {name}", preset.signal.name, str(preset.target), name))
    return scenarios


def _preset(word: str) -> str:
    try:
        return stops.parse_stop(word)
    except GsupError:
        raise GsupError(f"invalid target {word!r} in --targets: use parent, child, group, tree or a stop "
                        f"preset ({', '.join(stops.PRESETS)})") from None


def _words(text: str) -> list[str]:
    return [word.strip() for word in text.split(",") if word.strip()]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


# -- running --------------------------------------------------------------------


@dataclass
class Plan:
    """What to run: ``wrapper + gsup_run + scenario flags + extra[name] + program``, ``jobs`` at a time."""

    scenarios: list[Scenario]
    gsup_run: list[str]  # gsup run --json -q and the options every run shares
    program: list[str]  # SCRIPT ARGS, -m MODULE ARGS or -- COMMAND, as gsup run takes it
    command: list[str]  # the argv each run launches (for the document)
    jobs: int = 1
    extra: dict[str, list[str]] = field(default_factory=dict)  # flags for one scenario only
    child_asked: bool = True  # --targets named child: a program without one fails that scenario
    wrapper: list[str] = field(default_factory=list)  # netns.py: each run in its own network namespace

    def argv(self, scenario: Scenario, port: int = SAMPLE_PORT) -> list[str]:
        """One scenario's command line, ``{port}`` replaced by ``port``."""
        run = [*self.gsup_run, *scenario.flags(), *self.extra.get(scenario.name, []), *self.program]
        return [*self.wrapper, *(arg.replace(PORT, str(port)) for arg in run)]


@dataclass
class _Running:
    index: int
    scenario: Scenario
    proc: subprocess.Popen[bytes]
    pidfd: int
    out: Path
    log: Path
    told: int | None = None  # the pipe its run writes to once the signal is sent (None: not asked, or told)
    stopping: bool = False  # its signal was sent (or its run ended): it no longer counts as starting

    def stopped_starting(self) -> None:
        self.stopping = True
        if self.told is not None:
            os.close(self.told)
            self.told = None

    def close(self) -> None:
        os.close(self.pidfd)
        self.stopped_starting()


class Progress:
    """What the user sees while scenarios run; this one shows nothing (``-q``)."""

    def started(self, scenario: Scenario) -> None:
        pass

    def finished(self, result: ScenarioResult, report: Report) -> None:
        pass

    def close(self) -> None:
        pass


def execute(plan: Plan, log_dir: Path, progress: Progress) -> MatrixReport:
    """Run every scenario of ``plan`` and gather the reports, in the plan's order.

    SIGTERM (how ``end_gsup`` stops a matrix) interrupts like Ctrl-C, so the
    running gsups are ended, and end their trees, before this process exits."""
    started, clock = time.time(), time.monotonic()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        done = run_all(plan, log_dir, progress)
    finally:
        signal.signal(signal.SIGTERM, previous)
        progress.close()
    return MatrixReport(command=plan.command, started=started, duration=time.monotonic() - clock,
                        scenarios=[result for result, _ in done], runs=[report for _, report in done],
                        log_dir=str(log_dir))


def run_all(plan: Plan, log_dir: Path, progress: Progress) -> list[tuple[ScenarioResult, Report]]:
    """Each scenario in its own gsup, ``plan.jobs`` starting side by side.  If anything
    interrupts the wait, the running gsups are ended (``end_gsup``) first.

    A scenario's start (the program's imports, its readiness) is what loads the
    cores; once its signal is sent it mostly waits (its handlers' sleeps, the
    grace), so its run says so down a pipe and the next scenario starts then,
    up to ``OVERLAP`` times ``jobs`` at once.  ``--jobs 1`` runs them one after the
    other, start to end: it is what a matrix without private networks asks for."""
    pending = list(enumerate(plan.scenarios))
    running: list[_Running] = []
    done: dict[int, tuple[ScenarioResult, Report]] = {}
    most = plan.jobs * OVERLAP if plan.jobs > 1 else 1
    try:
        while pending or running:
            while pending and len(running) < most and sum(not r.stopping for r in running) < plan.jobs:
                index, scenario = pending.pop(0)
                running.append(_start(index, scenario, plan.argv(scenario, free_port()), log_dir, plan.jobs > 1))
                progress.started(scenario)
            told = [r.told for r in running if r.told is not None]
            readable = select.select([r.pidfd for r in running] + told, [], [])[0]  # a gsup ended, or a run told
            for one in [r for r in running if r.told is not None and r.told in readable]:
                one.stopped_starting()
            for ended in [r for r in running if r.proc.poll() is not None]:
                running.remove(ended)
                ended.close()
                done[ended.index] = _finish(ended, plan.command, plan.child_asked)
                progress.finished(*done[ended.index])
    finally:
        end_gsup([r.proc for r in running])
        for left in running:
            left.close()
    return [done[i] for i in range(len(plan.scenarios))]


def _start(index: int, scenario: Scenario, argv: list[str], log_dir: Path, overlap: bool) -> _Running:
    stem = log_dir / f"{index + 1:02d}-{scenario.slug}"
    out, log = stem.with_suffix(".json"), stem.with_suffix(".log")
    told, tell = os.pipe() if overlap else (None, None)
    env = {**os.environ, STOPPING_FD: str(tell)} if tell is not None else None
    try:
        with open(out, "wb") as out_file, open(log, "wb") as log_file:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_file, stderr=log_file, env=env,
                                    pass_fds=(tell,) if tell is not None else ())
    except BaseException:
        for fd in (told, tell):
            if fd is not None:
                os.close(fd)
        raise
    if tell is not None:
        os.close(tell)  # the run's copy is the only one: EOF once it has ended
    try:
        return _Running(index, scenario, proc, os.pidfd_open(proc.pid), out, log, told)
    except OSError:
        end_gsup([proc])  # not yet among the running: nobody else would end it
        if told is not None:
            os.close(told)
        raise


def free_port() -> int:
    """A TCP port nobody listens on now, for one scenario's ``{port}``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _finish(ended: _Running, command: list[str], child_asked: bool = True) -> tuple[ScenarioResult, Report]:
    code = int(ended.proc.returncode)
    try:
        error = error_line(ended.log.read_text(errors="replace"))
    except OSError:
        error = None
    try:
        document = parse_document(ended.out.read_text(errors="replace"))
        report = Report.from_json(document) if document is not None else None
    except (OSError, KeyError, TypeError, ValueError):
        report = None
    if report is None:  # a run that gave no report keeps its place in the matrix, as an incomplete one
        why = f"gsup run gave no report (exit {code}{': ' + error if error else ''}); its output: {ended.log}"
        report = Report(command=command, session=f"{ended.proc.pid}-0", started=time.time(), duration=0.0,
                        processes=[], actions=[], leftovers=[], incomplete=[why], version=__version__)
    if not child_asked and _no_child(ended.scenario, code, error):
        return ScenarioResult(ended.scenario, code, True, error, str(ended.log), skipped=NO_CHILD), report
    result = ScenarioResult(ended.scenario, code, code == 0 and report.ok, error, str(ended.log))
    return result, report


NO_CHILD = "no child process"


def _no_child(scenario: Scenario, code: int, error: str | None) -> bool:
    """The default targets' child scenario on a program that started no child: nothing to test, no failure."""
    return scenario.target == "child" and scenario.stop is None and code == 2 and error is not None \
        and error.startswith("--signal was never sent: no child process appeared")


def log_directory() -> Path:
    """A fresh private directory for this matrix's files, under the sessions root
    (``session.prune`` skips it: it holds no session); old ones are removed."""
    from supervisor.session import sessions_root

    root = sessions_root()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    old = sorted(root.glob("matrix-*"), key=lambda p: p.stat().st_mtime, reverse=True)[KEEP_LOGS - 1:]
    for stale in old:
        shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="matrix-", dir=root))


# -- from the command line --------------------------------------------------------

# program_options passed on to every run, as (click parameter, gsup run flag)
_SHARED = (("python", "--python"), ("after", "--after"), ("grace", "--grace"), ("settle", "--settle"),
           ("ready_port", "--ready-port"), ("ready_output", "--ready-output"), ("ready_file", "--ready-file"),
           ("ready_timeout", "--ready-timeout"), ("expect", "--expect"), ("watch", "--watch"),
           ("watch_presets", "--watch-preset"))


def make_plan(signals: str, targets: str, jobs: int | None, params: dict[str, Any], is_command: bool,
              command: list[str], targets_given: bool = True) -> Plan:
    """The plan for ``gsup matrix``'s options (``params`` as ``program_options`` gives them;
    ``jobs`` None: one per core), on the host's network until :func:`isolate`."""
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) or 1
    if jobs < 1:
        raise GsupError(f"invalid --jobs {jobs}: use 1 or more")
    scenarios = plan(signals, targets)
    extra: dict[str, list[str]] = {}
    if params["kill_after"] is not None:
        timeouts = [s.name for s in scenarios if s.stop == "timeout"]
        if not timeouts:
            raise GsupError("--kill-after goes with the timeout stop preset in --targets (elsewhere, use --grace)")
        extra[timeouts[0]] = ["--kill-after", params["kill_after"]]
    flags: list[str] = []
    for name, flag in _SHARED:
        values = params[name] if isinstance(params[name], tuple) else [params[name]]
        flags += [part for value in values if value is not None for part in (flag, str(value))]
    flags += ["--deep"] if params.get("deep") else []
    # Their value only ever follows "=" (a bare --container is a flag): passed on the same way.
    flags += [f"--{name}={params[name]}" for name in ("container", "init") if params.get(name) is not None]
    if params.get("stop_time") is not None:
        raise GsupError("--time goes with gsup run --stop docker (in a matrix, use --grace)")
    module, program = params["module"], list(params["program"])
    program = ["-m", module, *program] if module is not None else ["--", *program] if is_command else program
    return Plan(scenarios, [*GSUP, "run", "--json", "-q", *flags], program, command, jobs, extra,
                child_asked=targets_given)


def with_port(params: dict[str, Any], port: int) -> dict[str, Any]:
    """``params`` with ``{port}`` replaced in every text (the program's arguments, --ready-*)."""
    def replaced(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(PORT, str(port))
        if isinstance(value, tuple):
            return tuple(replaced(item) for item in value)
        return value

    return {name: replaced(value) for name, value in params.items()}


def isolate(plan: Plan, network: str, jobs_asked: int | None) -> str | None:
    """Give each run of ``plan`` its own network namespace (``network`` "isolated"), or
    leave them on the host's ("shared").  Where namespaces are not allowed, runs side by
    side would share ports: GsupError, unless one at a time was asked for (``--jobs 1``),
    then the runs share the host's network and the returned line says why."""
    if network == "shared":
        return None
    why = netns.unavailable()
    if why is None:
        plan.wrapper = [sys.executable, "-I", "-S", NETNS, "--"]
        return None
    if jobs_asked == 1:
        return f"{why}: running one at a time on the host's network"
    raise GsupError(f"{why}: use --jobs 1 to run one at a time, or --network shared with {PORT} for the ports")
