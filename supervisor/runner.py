"""``gsup run``'s loop: launch, watch, signal, escalate, reap, report.

The loop sleeps in ``select`` on a self-pipe that ``signal.set_wakeup_fd``
writes to, so a child's death (SIGCHLD), a Ctrl-C or a TERM wakes it at once
and nothing is polled while the program sleeps; psutil looks at the tree on a
timer that backs off as the tree stays quiet.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Optional, Protocol

from supervisor import __version__, events, launch, options, reaper, report, signals, stops
from supervisor import session as sessions
from supervisor.errors import ExitCode, GsupError
from supervisor.model import Action, Ready, Report
from supervisor.options import Target
from supervisor.readiness import OutputPipe, Readiness
from supervisor.reaper import ExitStatus
from supervisor.signals import Identity
from supervisor.tree import Seen, Tree, deliver, describe_live, resolve_target

FAST_LOOK = 0.05  # seconds between tree snapshots while something is expected
SLOW_LOOK = 1.0  # ... once the tree has been quiet for a while
QUIET_AFTER = 2.0
DEFAULT_GRACE = 10.0
TARGET_PATIENCE = 5.0  # a quiet tree may still start the target later: wait this long for it


@dataclass
class RunOptions:
    argv: list[str]
    json_stdout: bool = False
    signal: Optional[signal.Signals] = None
    target: Optional[Target] = None
    after: Optional[float] = None
    grace: Optional[float] = None  # None: the --stop preset's, else DEFAULT_GRACE
    settle: float = 0.5
    stop: Optional[str] = None  # a preset from stops.PRESETS; then signal/target come from it
    ready_port: Optional[int] = None
    ready_output: Optional[str] = None  # a regular expression
    ready_file: Optional[Path] = None
    ready_timeout: float = 30.0
    expect: list[str] = field(default_factory=list)
    watch: list[str] = field(default_factory=list)  # MODULE:QUALNAME
    watch_presets: list[str] = field(default_factory=list)


class Display(Protocol):
    """What the runner tells the user while it runs (see ``display.py``)."""

    def started(self, session_id: str, pid: int, argv: list[str]) -> None: ...
    def seen(self, proc: Seen, role: str) -> None: ...
    def ended(self, status: ExitStatus, role: str) -> None: ...
    def action(self, action: Action) -> None: ...
    def note(self, text: str) -> None: ...
    def tick(self, runner: Runner) -> None: ...
    def close(self) -> None: ...


@dataclass
class _Signals:
    """Signals gsup itself received, counted by its handlers, acted on by the loop."""

    pending: list[int] = field(default_factory=list)  # appended by the handler, popped by the loop

    def on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        self.pending.append(signum)


class Runner:
    """One run of one program; ``run()`` returns its report."""

    def __init__(self, options: RunOptions, display: Display) -> None:
        self.options = options
        self.display = display
        self.stop = stops.PRESETS[options.stop] if options.stop else None
        if self.stop is not None:
            options.signal, options.target = self.stop.signal, self.stop.target
        self.grace = options.grace if options.grace is not None else (
            self.stop.grace if self.stop is not None else DEFAULT_GRACE)
        self.shooter = f"stop {self.stop.name}" if self.stop is not None else "gsup"
        self.session = sessions.create(options.argv)
        self.statuses: list[ExitStatus] = []
        self.actions: list[Action] = []
        self.leftovers: list[int] = []
        self.incomplete: list[str] = []
        self.received = _Signals()
        self.launched = 0.0
        self.root_pid = 0
        self.guardian_pid: Optional[int] = None
        self.guardian_reaped = False
        self.from_guardian: Optional[_StatusPipe] = None
        self.readiness = Readiness(options.ready_port, options.ready_output, options.ready_file)
        self.ready_at: Optional[float] = None
        self.outputs: list[OutputPipe] = []
        self.tree: Optional[Tree] = None
        self.root_ended: Optional[float] = None
        self.deadline: Optional[float] = None  # grace end: then SIGKILL whatever is left
        self.pending_shot = options.signal is not None
        self.shot_error: Optional[GsupError] = None
        self.not_ready: Optional[GsupError] = None  # a --ready-* condition that never came
        self.last_change = 0.0
        self.events_size = 0
        self.next_look = 0.0

    # -- the loop -----------------------------------------------------------

    def run(self) -> Report:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        previous = self._install_handlers(wake_w)
        if not reaper.become_subreaper():
            self.incomplete.append("gsup could not become a child subreaper: orphans' endings are unknown")
        try:  # gsup's own handlers stay until the report is built: a late Ctrl-C cannot lose it
            try:
                self._launch()
                self._loop(wake_r)
            except GsupError:
                self._kill_everything("gsup could not go on")
                raise
            except Exception as err:  # a bug or a vanished session dir: keep what is known
                self.incomplete.append(f"gsup stopped watching early: {type(err).__name__}: {err}")
                self._kill_everything("gsup failed")
                self._reap_after_failure()
            except BaseException:
                self._kill_everything("gsup interrupted")
                raise
            finally:
                self.display.close()
            if self.pending_shot and self.tree is not None:
                everyone = describe_live(list(self.tree.history.values()), self.tree)
                self.shot_error = GsupError(f"--signal was never sent: no {self.options.target} process "
                                            f"appeared before the tree ended; the tree was: {everyone}")
            return self.report()
        finally:
            self._restore_handlers(previous)
            os.close(wake_r)
            os.close(wake_w)
            if self.from_guardian is not None:
                self.from_guardian.close()
            for output in self.outputs:
                output.close()

    def _launch(self) -> None:
        env = launch.probe_env(dict(os.environ), self.session.events_dir, self.options.watch,
                               self.options.watch_presets)
        self.launched = time.monotonic()
        started = launch.spawn(self.options.argv, env, self.options.json_stdout, self.session.dir, self.launched,
                               pipe_output=self.readiness.pattern is not None)
        if started.output is not None:
            out, err = started.output
            self.outputs = [OutputPipe(out, 2 if self.options.json_stdout else 1, self.readiness),
                            OutputPipe(err, 2, self.readiness)]
        self.root_pid, self.guardian_pid = started.pid, started.guardian
        self.from_guardian = _StatusPipe(started.statuses)
        self.tree = Tree(os.getpid(), self.root_pid, self.guardian_pid)
        self.session.root = signals.identity(self.root_pid) or Identity(self.root_pid, 0.0)
        self.session.guardian = signals.identity(self.guardian_pid)
        self.session.pgid = self.root_pid
        self.session.launched = self.launched
        self.session.save()
        self.display.started(self.session.id, self.root_pid, self.options.argv)
        self.last_change = self.launched
        self._look(self.launched)

    def _loop(self, wake_r: int) -> None:
        assert self.from_guardian is not None
        while True:
            any_left = self._collect()
            now = time.monotonic()
            if not any_left:
                return
            self._on_own_signals(now)
            if now >= self.next_look:
                self._look(now)
            if self.waiting_ready:
                self._check_ready(now)
            if self.pending_shot and not self.waiting_ready:
                self._maybe_shoot(now)
            if self.deadline is not None and now >= self.deadline:
                self._on_grace_over()
            self.display.tick(self)
            timeout = self._next_wakeup(now)
            streams = [o.fd for o in self.outputs if not o.ended]
            select.select([wake_r, self.from_guardian.fd, *streams], [], [], timeout)
            for output in self.outputs:
                output.pump()
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass

    def _collect(self) -> bool:
        """Take every wait status there is: the guardian's, then gsup's own
        (the guardian itself, and orphans if the guardian died); whether any
        process is left."""
        assert self.from_guardian is not None
        statuses = self.from_guardian.read()
        if self.from_guardian.empty and not self.guardian_reaped:
            self._reap_guardian()
        reaped, any_left = reaper.reap_ready()
        statuses += self.from_guardian.read(until_end=not any_left)
        if not any_left:
            for output in self.outputs:
                output.pump(until_end=True)
        for status in reaped:
            if status.pid == self.guardian_pid:
                self._on_guardian_end(status)
            else:
                statuses.append(status)
        now = time.monotonic()
        for status in statuses:
            self._on_reaped(status, now)
        return any_left

    def _reap_guardian(self) -> None:
        """The guardian's tree is gone and it is exiting: collect it now rather
        than wait for its SIGCHLD, so the report follows the last death at once."""
        assert self.guardian_pid is not None
        try:
            pid, status = os.waitpid(self.guardian_pid, 0)
        except ChildProcessError:
            return  # already collected by reap_ready
        self._on_guardian_end(ExitStatus.from_wait_status(pid, status, time.monotonic()))

    def _on_guardian_end(self, status: ExitStatus) -> None:
        self.guardian_reaped = True
        if status.code != 0:
            how = f"exit {status.code}" if status.signal is None else signals.signal_name(status.signal)
            self.display.note(f"gsup's guardian (pid {status.pid}) ended early ({how}): gsup reaps the rest itself")

    @property
    def waiting_ready(self) -> bool:
        return self.readiness.wanted and self.ready_at is None and self.not_ready is None

    def _check_ready(self, now: float) -> None:
        assert self.tree is not None
        if self.readiness.holds([p.pid for p in self.tree.live()]):
            self.ready_at = now
            self.display.note(f"ready after {now - self.launched:.2f}s: {self.readiness.describe()}")
        elif now >= self.launched + self.options.ready_timeout:
            everyone = describe_live(self.tree.live(), self.tree)
            self.not_ready = GsupError(
                f"not ready after {self.options.ready_timeout:g}s (--ready-timeout): no "
                f"{self.readiness.describe()}; the tree was: {everyone}", ExitCode.NOT_READY)
            self._kill_everything("never ready")

    def _next_wakeup(self, now: float) -> float:
        times = [self.next_look]
        if self.waiting_ready:
            times.append(self.launched + self.options.ready_timeout)
        if self.deadline is not None:
            times.append(self.deadline)
        return max(0.0, min(times) - now)

    # -- what happens -------------------------------------------------------

    def _on_reaped(self, status: ExitStatus, now: float) -> None:
        self.statuses.append(status)
        self._log(self.session.exits_file, {
            "pid": status.pid, "code": status.code, "signal": status.signal, "at": status.at - self.launched})
        self.display.ended(status, self._role(status.pid))
        self.last_change = now
        self.next_look = now
        if status.pid == self.root_pid and self.root_ended is None:
            self.root_ended = now
            if self.stop is not None and self.stop.ends_with_root:
                self._end_container()
            if self.deadline is None:
                self.deadline = now + self.grace

    def _look(self, now: float) -> None:
        assert self.tree is not None
        for proc in self.tree.snapshot():
            self.last_change = now
            if proc.pid != self.root_pid:
                self.display.seen(proc, self.tree.role(proc.pid, proc.ppid))
        size = _dir_size(self.session.events_dir)
        if size != self.events_size:
            self.events_size, self.last_change = size, now
        if self.pending_shot and self.tree.busy():
            self.last_change = now
        busy = self.pending_shot or self.waiting_ready or now - self.last_change < QUIET_AFTER
        self.next_look = now + (FAST_LOOK if busy else SLOW_LOOK)

    def _maybe_shoot(self, now: float) -> None:
        options = self.options
        assert options.signal is not None and options.target is not None
        if options.after is not None and now < self.launched + options.after:
            return
        quiet_for = now - self.last_change
        settle = 0.0 if self.ready_at is not None else options.settle
        if not self._target_exists(options.target):
            patience = settle if options.target.kind == "pid" else max(settle, TARGET_PATIENCE)
            if quiet_for < patience:
                return  # not yet: it may still appear
            # Quiet that long without it: fall through, so that send() says
            # what is there instead of waiting forever.
        elif options.after is None and quiet_for < settle:
            return
        self.pending_shot = False
        try:
            action = self.send(options.signal, options.target, by=self.shooter)
            if self.stop is not None and self.stop.also is not None:
                self._send_also(self.stop.also, action)
        except GsupError as err:
            self.shot_error = err
            self._kill_everything("the signal could not be sent")
            return
        self.deadline = time.monotonic() + self.grace

    def _on_own_signals(self, now: float) -> None:
        """Ctrl-C (or TERM/HUP sent to gsup): forward it to the program's group,
        as a terminal would; a second one ends what is left with SIGKILL."""
        while self.received.pending:
            signum = signal.Signals(self.received.pending.pop(0))
            by = "ctrl-c" if signum == signal.SIGINT else "gsup received"
            if any(a.by == by for a in self.actions):
                self._kill_everything(f"second {signum.name}", by=by)
                continue
            if signum == signal.SIGINT:
                self.display.note("Ctrl-C: SIGINT to the program's process group (again to SIGKILL)")
            self._forward(signum, by)
            self.deadline = self.deadline or now + self.grace

    def _on_grace_over(self) -> None:
        self.deadline = None
        assert self.tree is not None
        self.tree.snapshot()
        if not self.tree.live():
            return
        if self.root_ended is not None and self.stop is not None and self.stop.waits_for_tree:
            self.display.note(f"{self.stop.name}: {self.grace:g}s over, SIGKILL to what is left")
            self._kill("tree", by=self.shooter)
        elif self.root_ended is not None:
            killed = self._kill("tree", by="leftovers")
            self.leftovers = sorted({p.pid for p in killed} | set(self.leftovers))
            self.display.note(f"left running after the grace period: {', '.join(map(str, self.leftovers))}")
        elif self.stop is not None and self.stop.kill is not None:
            self.display.note(f"{self.stop.name}: {self.grace:g}s over, SIGKILL to the {self.stop.kill}")
            if self.stop.kill.kind == "tree":
                self._kill("tree", by=self.shooter)
            else:
                self._send_quietly(signal.SIGKILL, self.stop.kill, by=self.shooter)
        else:
            self.display.note(f"grace period of {self.grace:g}s over: SIGKILL to what is left")
            self._kill("tree", by="grace")

    # -- sending --------------------------------------------------------------

    def send(self, signum: signal.Signals, target: Target, by: str) -> Action:
        """Send ``signum`` to ``target`` within this tree; raises GsupError if it reaches none."""
        assert self.tree is not None
        sent_at = time.monotonic()
        reached = deliver(self.tree, target, signum, self.root_pid)
        return self._record(signum, str(target), sorted(p.pid for p in reached), by,
                            group=self.root_pid if target.kind == "group" else None, sent_at=sent_at)

    def _end_container(self) -> None:
        """The main process of a container ended: the kernel kills the rest at once."""
        assert self.tree is not None and self.stop is not None
        self.pending_shot = False
        self.tree.snapshot()
        if self.tree.live():
            self.display.note(f"{self.stop.name}: the main process ended, SIGKILL to the rest of the container")
            self._kill("tree", by=self.shooter)

    def _send_also(self, signum: signal.Signals, first: Action) -> None:
        """The second signal of a pair (systemd's SIGCONT), to exactly who got the first."""
        assert self.tree is not None
        sent_at = time.monotonic()
        reached = [p.pid for p in self.tree.live() if p.pid in first.pids
                   and signals.send(p.identity, signum)]
        if reached:  # the first signal may already have ended them all
            self._record(signum, first.target, sorted(reached), first.by, group=first.group, sent_at=sent_at)

    def _send_quietly(self, signum: signal.Signals, target: Target, by: str) -> None:
        try:
            self.send(signum, target, by)
        except GsupError:
            pass  # nobody left in it: nothing to do

    def _forward(self, signum: signal.Signals, by: str) -> None:
        """A signal gsup received goes to the program's group, as a terminal sends it."""
        try:
            self.send(signum, Target("group"), by)
        except GsupError:
            self._record(signum, "group", [], by, group=self.root_pid)  # nobody left to get it

    def _kill(self, target: str, by: str) -> list[Seen]:
        """SIGKILL every live process of the tree, and what it starts meanwhile.

        One look then one kill misses children forked in between, and a process
        forking in a loop outruns it.  So everything seen is stopped first, the
        tree looked at again until nothing new appears, and only then killed.
        """
        assert self.tree is not None
        stopped: dict[Identity, Seen] = {}
        for _ in range(1000):
            self.tree.snapshot()
            fresh = [p for p in self.tree.live() if p.identity not in stopped]
            if not fresh:
                break
            for proc in fresh:
                signals.send(proc.identity, signal.SIGSTOP)
                stopped[proc.identity] = proc
        sent_at = time.monotonic()
        killed = [p for p in stopped.values() if signals.send(p.identity, signal.SIGKILL)]
        if killed:
            self._record(signal.SIGKILL, target, [p.pid for p in killed], by, sent_at=sent_at)
        return killed

    def _kill_everything(self, why: str, by: str = "gsup") -> None:
        """SIGKILL every live descendant, however the run is going."""
        self.pending_shot = False
        if self.tree is None:
            return
        self.tree.snapshot()
        if self.tree.live():
            self.display.note(f"{why}: SIGKILL to what is left")
            self._kill("tree", by)

    def _record(self, signum: signal.Signals, target: str, pids: list[int], by: str,
                group: Optional[int] = None, sent_at: Optional[float] = None) -> Action:
        """Log a send; ``at`` is when it began, since its effects may follow at once."""
        at = sent_at if sent_at is not None else time.monotonic()
        action = Action(signal=signum.name, signum=int(signum), target=target, pids=pids,
                        at=at - self.launched, by=by, group=group)
        self.actions.append(action)
        self._log(self.session.actions_file, action.to_json())
        self.display.action(action)
        return action

    # -- the end --------------------------------------------------------------

    def _reap_after_failure(self) -> None:
        """After a failure, still collect the statuses of what was just killed."""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and self.from_guardian is not None:
            if not self._collect():
                return
            time.sleep(0.01)

    def report(self) -> Report:
        """Build, save and return the report; never fails for want of the session's files."""
        finished = time.monotonic()
        self.session.finished = True
        try:
            self.session.save()
        except OSError as err:
            self.incomplete.append(f"session state not saved: {err.strerror}")
        if self.tree is not None:
            self.tree.snapshot()  # so nothing that has died is reported as still running
        # The session's log holds gsup's own actions and those of `gsup kill`.
        sessions.wait_for_senders(self.session)
        logged = sessions.read_actions(self.session)
        facts = report.RunFacts(
            command=self.options.argv, session=self.session.id, started_wall=self.session.started,
            launched=self.launched, root_pid=self.root_pid, gsup_pid=os.getpid(), guardian_pid=self.guardian_pid,
            images=events.read_all(self.session.events_dir),
            seen=list(self.tree.history.values()) if self.tree else [],
            statuses=self.statuses, actions=sorted(logged or self.actions, key=lambda a: a.at),
            leftovers=self.leftovers, finished=finished, incomplete=self.incomplete, version=__version__,
            ready=self._ready_result(), stop=self.options.stop,
            watching=options.watching(self.options.watch, self.options.watch_presets),
        )
        built = report.build(facts)
        try:
            (self.session.dir / "report.json").write_text(_dumps(built.to_json()))
        except OSError as err:
            built.incomplete.append(f"report.json not saved: {err.strerror}")
        return built

    def _ready_result(self) -> Optional[Ready]:
        if not self.readiness.wanted:
            return None
        after = self.ready_at - self.launched if self.ready_at is not None else None
        return Ready(self.readiness.describe(), self.ready_at is not None, after)

    def _log(self, file: Path, record: dict[str, object]) -> None:
        """Append to a session log; a failure is noted in the report, never fatal."""
        try:
            self.session.append(file, record)
        except OSError as err:
            note = f"could not write {file.name}: {err.strerror}"
            if note not in self.incomplete:
                self.incomplete.append(note)

    def _role(self, pid: int) -> str:
        if self.tree is None:
            return "unknown"
        for seen in self.tree.history.values():
            if seen.pid == pid:
                return self.tree.role(pid, seen.ppid)
        return "parent" if pid == self.root_pid else "unknown"

    def _target_exists(self, target: Target) -> bool:
        assert self.tree is not None
        try:
            return bool(resolve_target(target, self.tree.live(), self.root_pid, self.tree))
        except GsupError:
            return False

    # -- gsup's own signal handling ----------------------------------------------

    def _install_handlers(self, wake_w: int) -> dict[int, object]:
        previous: dict[int, object] = {}
        on_signal = self.received.on_signal
        handlers = {signal.SIGCHLD: lambda s, f: None, signal.SIGINT: on_signal,
                    signal.SIGTERM: on_signal, signal.SIGHUP: on_signal}
        for signum, handler in handlers.items():
            previous[signum] = signal.signal(signum, handler)
        previous[-1] = signal.set_wakeup_fd(wake_w)
        return previous

    def _restore_handlers(self, previous: dict[int, object]) -> None:
        signal.set_wakeup_fd(int(previous.pop(-1)))  # type: ignore[call-overload]
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


class _StatusPipe:
    """The guardian's wait statuses, one JSON line each (see guardian.py)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending = b""
        self.ended = False
        self.empty = False  # the guardian said its tree is gone: nothing more can come

    def read(self, until_end: bool = False) -> list[ExitStatus]:
        """What has arrived; ``until_end``: the guardian is gone, take the rest."""
        while not self.ended and not self.empty:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                if not until_end:
                    break
                select.select([self.fd], [], [], 1.0)
                continue
            if not chunk:
                self.ended = True
            self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        self.empty = self.empty or any(line.startswith(b'{"empty"') for line in lines)
        return [status for status in map(_status, lines) if status is not None]

    def close(self) -> None:
        os.close(self.fd)


def _status(line: bytes) -> Optional[ExitStatus]:
    try:
        record = json.loads(line)
        return ExitStatus(int(record["pid"]), record["code"], record["signal"], float(record["at"]))
    except (ValueError, KeyError, TypeError):
        return None


def _dir_size(path: os.PathLike[str] | str) -> int:
    try:
        return sum(entry.stat().st_size for entry in os.scandir(path))
    except OSError:
        return 0


def _dumps(data: object) -> str:
    return json.dumps(data, indent=2) + "\n"

