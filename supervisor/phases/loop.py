"""The run's event loop: sleep until a death, a signal, output or a timer, then let the phase act.

The loop sleeps in ``select`` on a self-pipe that ``signal.set_wakeup_fd``
writes to, so a child's death (SIGCHLD), a Ctrl-C or a TERM wakes it at once
and nothing is polled while the program sleeps; psutil looks at the tree on a
timer that backs off as the tree stays quiet.  A phase runs as
``for now in loop.turns(...)``: each turn first takes every wait status there
is, then hands ``now`` to the phase, then sleeps.
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType

from supervisor import early_signals
from supervisor.phases.display import Display
from supervisor.phases.journal import Journal
from supervisor.phases.start import Launched
from supervisor.reaper import ExitStatus
from supervisor.signals import Identity

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Optional
    Alarm = Callable[[], Optional[float]]  # a phase's next deadline (time.monotonic()), if any

if TYPE_CHECKING:  # a type only: the tree (and psutil) is loaded once the program is launched (runner.py)
    from supervisor.tree import Tree

FAST_LOOK = 0.05  # seconds between tree snapshots while something is expected
SLOW_LOOK = 1.0  # ... once the tree has been quiet for a while
QUIET_AFTER = 2.0
FAILURE_REAP = 5.0  # after a failure, how long the statuses of what was killed are waited for


class OwnSignals:
    """gsup's own handlers (SIGCHLD, INT, TERM, HUP) and the self-pipe they wake the loop through.

    Signals are only counted here (``pending``); the act phase decides what they mean.
    """

    def __init__(self) -> None:
        self.pending: list[int] = []  # appended by the handler, popped by the act phase
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous: dict[int, object] = {}

    def __enter__(self) -> OwnSignals:
        handlers = {signal.SIGCHLD: lambda s, f: None, signal.SIGINT: self._on_signal,
                    signal.SIGTERM: self._on_signal, signal.SIGHUP: self._on_signal}
        for signum, handler in handlers.items():
            self._previous[signum] = signal.signal(signum, handler)
        self._previous[-1] = signal.set_wakeup_fd(self.wake_w)
        self.pending += early_signals.take(self._previous)  # received before these handlers: act on them too
        return self

    def __exit__(self, kind: Optional[type[BaseException]], error: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> None:
        signal.set_wakeup_fd(int(self._previous.pop(-1)))  # type: ignore[call-overload]
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        os.close(self.wake_r)
        os.close(self.wake_w)

    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        self.pending.append(signum)

    def clear(self) -> None:
        """Empty the self-pipe, so the next select sleeps until something new."""
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass


class EventLoop:
    """Turns until no process is left, recording every wait status and watching the tree.

    ``statuses`` is the drain's record: every status collected, in order; each
    is logged, shown, then passed to ``on_death`` (the act phase's).
    """

    def __init__(self, launched: Launched, tree: Tree, own: OwnSignals, journal: Journal, display: Display,
                 on_death: Callable[[ExitStatus, float], None]) -> None:
        self.launched = launched
        self.tree = tree
        self.own = own
        self.journal = journal
        self.display = display
        self.on_death = on_death
        self.statuses: list[ExitStatus] = []
        self.gone = False  # no process is left: every status is in
        self.last_change = launched.at  # when the tree last changed: a signal waits for it to settle
        self.next_look = 0.0
        self.events_size = 0
        self.said_stopped: set[Identity] = set()

    def turns(self, *alarms: Alarm) -> Iterator[float]:
        """``now``, once per turn while a process is left; between turns, sleep until a
        signal, a status, output, the next look of the tree or one of ``alarms``."""
        while not self.gone:
            self.gone = not self._collect()
            now = time.monotonic()
            if self.gone:
                return
            yield now
            self.display.tick(self.journal.session, self.tree)
            self._sleep(now, alarms)

    def look_if_due(self, now: float, expecting: bool, settling: bool) -> None:
        if now >= self.next_look:
            self.look(now, expecting, settling)

    def look(self, now: float, expecting: bool, settling: bool) -> None:
        """Snapshot the tree, then time the next look: soon while something is
        ``expecting`` or the tree changes, rarely once it has been quiet.
        ``settling``: a signal waits for the tree to settle, so a process on a
        CPU counts as a change."""
        for proc in self.tree.snapshot():
            self.last_change = now
            if proc.pid != self.launched.root_pid:
                self.display.seen(proc, self.tree.role(proc.pid, proc.ppid))
        size = _dir_size(self.journal.session.events_dir)
        if size != self.events_size:
            self.events_size, self.last_change = size, now
        if settling and self.tree.busy():
            self.last_change = now
        self._say_stopped()
        busy = expecting or now - self.last_change < QUIET_AFTER
        self.next_look = now + (FAST_LOOK if busy else SLOW_LOOK)

    def _say_stopped(self) -> None:
        """Once per process: it is stopped, why it most likely is, and the way out.  A stopped
        process acts on no signal but SIGKILL and SIGCONT, so Ctrl-C seemed to do nothing and
        the grace ran out."""
        for seen in self.tree.stopped():
            if seen.identity in self.said_stopped:
                continue
            self.said_stopped.add(seen.identity)
            self.display.note(stopped_note(seen.pid, self.tree.role(seen.pid, seen.ppid)))

    def reap_after_failure(self) -> None:
        """After a failure, still collect the statuses of what was just killed."""
        deadline = time.monotonic() + FAILURE_REAP
        while time.monotonic() < deadline:
            if not self._collect():
                return
            time.sleep(0.01)

    def role(self, pid: int) -> str:
        for seen in self.tree.history.values():
            if seen.pid == pid:
                return self.tree.role(pid, seen.ppid)
        return "parent" if pid == self.launched.root_pid else "unknown"

    def _collect(self) -> bool:
        """Record every wait status there is; whether any process is left."""
        statuses, any_left = self.launched.statuses.collect()
        now = time.monotonic()
        for status in statuses:
            self._on_reaped(status, now)
        return any_left

    def _on_reaped(self, status: ExitStatus, now: float) -> None:
        self.statuses.append(status)
        self.journal.log(self.journal.session.exits_file, {
            "pid": status.pid, "code": status.code, "signal": status.signal, "at": status.at - self.launched.at})
        self.display.ended(status, self.role(status.pid))
        self.last_change = now
        self.next_look = now
        self.on_death(status, now)

    def _sleep(self, now: float, alarms: tuple[Alarm, ...]) -> None:
        wake_at = min([self.next_look, *(at for at in (alarm() for alarm in alarms) if at is not None)])
        streams = [o.fd for o in self.launched.outputs if not o.ended]
        select.select([self.own.wake_r, self.launched.statuses.fd, *streams], [], [], max(0.0, wake_at - now))
        for output in self.launched.outputs:
            output.pump()
        self.own.clear()


def stopped_note(pid: int, role: str) -> str:
    """Why a process of the tree is stopped, as far as /proc tells: its stdin is a terminal or not."""
    try:
        reads_terminal = os.readlink(f"/proc/{pid}/fd/0").startswith(("/dev/pts/", "/dev/tty"))
    except OSError:
        reads_terminal = False
    if reads_terminal:
        return (f"pid {pid} ({role}) is stopped, most likely by SIGTTIN: it read from the terminal while in the "
                "background (gsup runs it in a process group of its own); give it stdin with --stdin null or "
                "--stdin FILE, or the terminal with --stdin tty")
    return f"pid {pid} ({role}) is stopped (SIGSTOP or SIGTSTP): it acts on no signal but SIGKILL until SIGCONT"


def _dir_size(path: os.PathLike[str] | str) -> int:
    try:
        return sum(entry.stat().st_size for entry in os.scandir(path))
    except OSError:
        return 0
