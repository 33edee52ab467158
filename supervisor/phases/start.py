"""The launch phase: start the program under gsup's guardian, and say where its wait statuses come from.

``launch`` returns a :class:`Launched` record; the loop collects every wait
status through its ``statuses`` (here :class:`GuardianStatuses`).  A container
mode (the program as PID 1 of a new PID namespace) is another ``launch`` with
another :class:`Statuses`; no other phase changes.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from supervisor import launch as spawning
from supervisor import procfs, reaper, signals
from supervisor.errors import GsupError
from supervisor.phases.display import Display
from supervisor.phases.plan import RunPlan
from supervisor.readiness import OutputPipe, Readiness
from supervisor.reaper import ExitStatus
from supervisor.records import dataclass
from supervisor.session import Session
from supervisor.signals import Identity

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Optional, Protocol
else:
    Protocol = object  # a structural type for mypy; a plain base class at run time

INIT = str(Path(__file__).resolve().parents[1] / "init.py")


class Statuses(Protocol):
    """Where the loop takes the tree's wait statuses from."""

    fd: int  # readable when a status arrives: the loop selects on it
    ended_early: Optional[str]  # why statuses may be missing (the guardian died first), for the report

    def collect(self) -> tuple[list[ExitStatus], bool]: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Launched:
    """A program started: its pid, the guardian between gsup and it, and gsup's ends of its pipes."""

    at: float  # time.monotonic() at launch: every ``at`` of the report counts from it
    root_pid: int
    guardian_pid: int
    statuses: Statuses
    outputs: tuple[OutputPipe, ...]  # the program's stdout and stderr, when --ready-output or the live view reads them
    container: Optional[str] = None  # how the program is PID 1: "root" or "user-namespace" (a real
    # PID namespace, made that way), "emulate" (its rules modelled), None (an ordinary child)
    init: Optional[str] = None  # the init that is PID 1 above the program: "tini" or "gsup-init"
    terminal: Optional[Terminal] = None  # --stdin tty: the terminal the program has, given back at the end

    def close(self) -> None:
        if self.terminal is not None:
            self.terminal.take_back()
        self.statuses.close()
        for output in self.outputs:
            output.close()


TTY = "tty"


@dataclass(frozen=True)
class Terminal:
    """``--stdin tty``: the program's process group in the terminal's foreground, as a shell
    gives it to a foreground job, so it reads the terminal and gets Ctrl-C itself.

    gsup runs the program in a process group of its own (``--target group``, a
    forwarded Ctrl-C that never hits gsup), so by default a program that reads
    the terminal is a background job: SIGTTIN stops it.
    """

    fd: int
    gsup_group: int

    @classmethod
    def give(cls, program_group: int) -> Terminal:
        terminal = cls(0, os.getpgrp())
        terminal._set_foreground(program_group)
        if spawning_state(program_group) == b"T":
            os.killpg(program_group, signal.SIGCONT)  # it read before it had the terminal: SIGTTIN stopped it
        return terminal

    def take_back(self) -> None:
        self._set_foreground(self.gsup_group)

    def _set_foreground(self, group: int) -> None:
        """``tcsetpgrp``, with SIGTTOU held: gsup is a background job while the program has the terminal."""
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
        try:
            os.tcsetpgrp(self.fd, group)
        except OSError:
            pass  # the terminal went away, or the group ended: nothing to give or take back
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def spawning_state(pid: int) -> Optional[bytes]:
    info = procfs.stat(pid)
    return info.state if info is not None else None


def launch(plan: RunPlan, session: Session, readiness: Readiness, display: Display,
           meanwhile: Callable[[], None] = lambda: None) -> Launched:
    """Start ``plan.argv`` with the probe injected; GsupError if it cannot start.
    ``meanwhile`` runs while the guardian starts the program (see launch.spawn)."""
    env = spawning.probe_env(dict(os.environ), session.events_dir, plan.watch, plan.watch_presets)
    deep = spawning.deep_site_dirs(plan.deep) if plan.deep else []
    init, argv = with_init(list(plan.argv), plan.init) if plan.init else (None, list(plan.argv))
    at = time.monotonic()
    started = spawning.spawn(argv, env, plan.json_stdout, session.dir, at,
                             pipe_output=readiness.pattern is not None or display.passes_output,
                             closed=plan.closed_streams, deep=deep, namespace="pid" if plan.namespace else None,
                             stdin=plan.stdin if plan.stdin != TTY else None, meanwhile=meanwhile)
    outputs: tuple[OutputPipe, ...] = ()
    if started.output is not None:
        out, err = started.output
        outputs = (OutputPipe(out, 2 if plan.json_stdout else 1, readiness, display.output),
                   OutputPipe(err, 2, readiness, display.output))
    statuses = GuardianStatuses(started.statuses, started.guardian, outputs, display)
    container = started.namespace if plan.namespace else plan.container
    terminal = Terminal.give(started.pid) if plan.stdin == TTY else None
    return Launched(at, started.pid, started.guardian, statuses, outputs, container=container, init=init,
                    terminal=terminal)


def with_init(argv: list[str], which: str) -> tuple[str, list[str]]:
    """``argv`` below an init, as ``docker run --init`` runs it: tini where it is
    installed (Debian's ``tini``, Docker's ``docker-init``), else (or with ``which``
    ``gsup``) gsup's own init.py with tini's semantics; and which one it is."""
    for name in ("tini", "docker-init") if which != "gsup" else ():
        found = spawning.which(name)
        if found is not None:
            return "tini", [found, "--", *argv]
    if which == "tini":
        raise GsupError("--init=tini: neither tini nor docker-init is on PATH (apt-get install tini), "
                        "or use --init for gsup's own")
    return "gsup-init", [sys.executable, "-I", "-S", INIT, "--", *argv]


def announce(launched: Launched, session: Session, display: Display) -> None:
    """Write who was launched into the session, so ``gsup kill``/``ps`` find it, and say so."""
    session.root = signals.identity(launched.root_pid) or Identity(launched.root_pid, 0.0)
    session.guardian = signals.identity(launched.guardian_pid)
    session.pgid = launched.root_pid
    session.launched = launched.at
    session.save()
    display.started(session.id, launched.root_pid, session.command)


class GuardianStatuses:
    """Every wait status of the tree: the guardian's (its pipe), then gsup's own (the
    guardian itself, and orphans if the guardian died)."""

    def __init__(self, fd: int, guardian_pid: int, outputs: tuple[OutputPipe, ...], display: Display) -> None:
        self.pipe = _StatusPipe(fd)
        self.fd = fd
        self.guardian_pid = guardian_pid
        self.guardian_reaped = False
        self.ended_early: Optional[str] = None  # how the guardian died before its tree, for the report
        self.outputs = outputs
        self.display = display

    def collect(self) -> tuple[list[ExitStatus], bool]:
        """Take every wait status there is; also whether any process is left.  Once none
        is, the program's output is passed on to its end, so nothing follows the report."""
        statuses = self.pipe.read()
        if self.pipe.empty and not self.guardian_reaped:
            self._reap_guardian()
        reaped, any_left = reaper.reap_ready()
        statuses += self.pipe.read(until_end=not any_left)
        if not any_left:
            for output in self.outputs:
                output.pump(until_end=True)
        for status in reaped:
            if status.pid == self.guardian_pid:
                self._on_guardian_end(status)
            else:
                statuses.append(status)
        return statuses, any_left

    def _reap_guardian(self) -> None:
        """The guardian's tree is gone and it is exiting: collect it now rather
        than wait for its SIGCHLD, so the report follows the last death at once."""
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
            self.ended_early = (f"gsup's guardian (pid {status.pid}) died ({how}) while the program ran: gsup "
                                "collected the tree's statuses itself from then on, and a status the guardian had "
                                "collected but not yet passed on is lost")

    def close(self) -> None:
        os.close(self.pipe.fd)


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


def _status(line: bytes) -> Optional[ExitStatus]:
    try:
        record = json.loads(line)
        return ExitStatus(int(record["pid"]), record["code"], record["signal"], float(record["at"]))
    except (ValueError, KeyError, TypeError):
        return None
