"""Who belongs to the tree, seen from outside (``/proc``, read as psutil reads it), and remembered.

``Process.children()`` cannot see a descendant whose parent already died, and
a short-lived process can come and go between two looks.  So the tree is
everything below gsup (a subreaper keeps orphans below it), and every process
ever seen is remembered with its first parent, which decides its role.
"""

from __future__ import annotations

import os
import time

from supervisor import procfs, signals
from supervisor.errors import GsupError
from supervisor.options import Target
from supervisor.records import dataclass
from supervisor.signals import Identity

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Optional


@dataclass
class Seen:
    """A process of the tree as psutil saw it, from its first sighting on."""

    pid: int
    create_time: float
    ppid: int  # the parent when first seen: orphans later show gsup instead
    argv: list[str]  # empty while unreadable: a process ending, or amid an exec, has no command line yet
    first_seen: float
    alive: bool = True
    name: str = ""  # the kernel's short name (comm), all that is known while argv is empty
    started: float = 0.0  # its start, to a clock tick, on time.monotonic()'s clock ("at" fields count on it)
    nspid: int | None = None  # container mode: its pid inside the PID namespace (1 for the main process)
    last_alive: float = 0.0  # the last look that saw it running (not a zombie)
    with_root: bool = False  # running at the last look that saw the launched process running

    @property
    def command(self) -> list[str]:
        """What to show for it: argv, else its name (``sh``) rather than nothing."""
        return self.argv or [self.name]

    @property
    def identity(self) -> Identity:
        return Identity(self.pid, self.create_time)

    @property
    def starttime(self) -> int:
        """Clock ticks since boot, the probe's way of naming the same process."""
        return round((self.create_time - procfs.boot_time()) * CLOCK_TICKS)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Tree:
    """Snapshots of gsup's descendants and the history of everything seen."""

    def __init__(self, gsup_pid: int, root_pid: int, guardian_pid: int | None = None,
                 container: bool = False) -> None:
        self.gsup_pid = gsup_pid
        self.root_pid = root_pid
        self.guardian_pid = guardian_pid  # gsup's own helper (guardian.py), below gsup but not of the tree
        self.container = container  # the tree is a PID namespace: read each process's pid inside it
        self.zombies: dict[int, int] = {}  # parent pid -> the most zombie children it had at one look
        self.history: dict[Identity, Seen] = {}
        self._states: dict[Identity, bytes] = {}  # live processes' state letters at the last look
        self._boot_time = procfs.boot_time()

    def snapshot(self) -> list[Seen]:
        """Look at the tree now; returns the processes never seen before.

        The walk follows ``/proc/<pid>/task/*/children`` down from gsup, so a
        look costs a few reads per process of the tree, not a read of every
        process on the machine; identities use psutil's own arithmetic.
        """
        now = time.monotonic()
        to_monotonic = now - time.clock_gettime(time.CLOCK_BOOTTIME)  # start times count on the boot clock
        new: list[Seen] = []
        self._states = {}
        zombies: dict[int, int] = {}
        for pid, info in procfs.descendants(self.gsup_pid):
            if pid == self.guardian_pid:
                continue
            key = Identity(pid, float(info.starttime) / procfs.CLOCK_TICKS + self._boot_time)
            if info.state == b"Z":
                zombies[info.ppid] = zombies.get(info.ppid, 0) + 1
            if info.state == b"Z" and key in self.history:
                continue  # dead, waiting to be reaped: not running
            self._states[key] = info.state
            if key in self.history:
                self._read_argv_again(self.history[key], info.name)
                self.history[key].last_alive = now
                continue
            argv = procfs.cmdline(pid)
            if argv is None:
                continue  # gone meanwhile: the next look will not see it either
            seen = Seen(pid, key.create_time, info.ppid, argv, now, name=info.name,
                        started=float(info.starttime) / procfs.CLOCK_TICKS + to_monotonic,
                        nspid=self._nspid(pid), last_alive=now if info.state != b"Z" else 0.0)
            self.history[key] = seen
            new.append(seen)
        root_alive = any(key.pid == self.root_pid for key in self._states)
        for key, seen in self.history.items():
            seen.alive = key in self._states
            seen.with_root = seen.alive if root_alive else seen.with_root
        for parent, count in zombies.items():
            self.zombies[parent] = max(count, self.zombies.get(parent, 0))
        return new

    def _nspid(self, pid: int) -> int | None:
        """Its pid in the innermost PID namespace, in container mode (``NSpid``'s last field)."""
        if not self.container:
            return None
        status = procfs.status(pid)
        return status.nspid[-1] if status is not None and len(status.nspid) > 1 else None

    @staticmethod
    def _read_argv_again(seen: Seen, name: str) -> None:
        """A command line read empty (amid an exec, or while ending) may be readable now;
        and one read between a fork and an exec is the parent's: the kernel's short name
        changing (``python3`` to ``uname``) says an exec came since, so it is read again.
        (A program the probe does not see reports no exec of its own.)

        Its name is no stand-in: an ending shell reads as ``sh``, an exec as the
        new program's name alone, and a report would show that as its argv.
        """
        if not seen.argv or name != seen.name:
            seen.argv = procfs.cmdline(seen.pid) or seen.argv
            seen.name = name

    def busy(self) -> bool:
        """Was any live process on a CPU, waiting for one, or in disk I/O at the last look?

        A program still importing shows as running (R) or in disk sleep (D),
        even while starved of CPU on a loaded machine; a server waiting for
        work sleeps (S).  So "settled" does not rest on a timer alone.
        """
        return any(state in (b"R", b"D") for state in self._states.values())

    def starting(self, pids: list[int]) -> bool:
        """Was one of ``pids`` on a CPU or in disk I/O at the last look (still importing, see ``busy``)?"""
        return any(self._states.get(key) in (b"R", b"D") for key in self._states if key.pid in pids)

    def stopped(self) -> list[Seen]:
        """The live processes stopped (state T) at the last look: by job control or SIGSTOP."""
        return [seen for key, seen in self.history.items() if self._states.get(key) == b"T"]

    def live(self) -> list[Seen]:
        return [s for s in self.history.values() if s.alive]

    def role(self, pid: int, ppid: int | None) -> str:
        return role_of(pid, ppid, self.root_pid)


def role_of(pid: int, ppid: int | None, root_pid: int) -> str:
    """parent: the process gsup launched; child: one it started; grandchild: deeper."""
    if pid == root_pid:
        return "parent"
    if ppid == root_pid:
        return "child"
    return "grandchild" if ppid is not None else "unknown"


def resolve_target(target: Target, live: list[Seen], root_pid: int, tree: Tree) -> list[Seen]:
    """The live processes ``target`` names, or a GsupError saying what is there."""
    if target.kind == "parent":
        chosen = [p for p in live if p.pid == root_pid]
        if not chosen:
            raise GsupError(f"no parent: the launched process (pid {root_pid}) has ended")
    elif target.kind == "child":
        chosen = [p for p in live if p.ppid == root_pid and p.pid != root_pid]
        if not chosen:
            raise GsupError(f"no child of pid {root_pid} is running; the tree is: {describe_live(live, tree)}")
    elif target.kind in ("tree", "group"):
        chosen = list(live)
        if not chosen:
            raise GsupError("no process of the tree is running")
    else:
        chosen = [p for p in live if p.pid == target.pid]
        if not chosen:
            raise GsupError(f"pid {target.pid} is not in the tree; the tree is: {describe_live(live, tree)}")
    return chosen


def scope_of(target: Optional[Target], tree: Tree) -> Optional[list[Seen]]:
    """The live processes ``target`` names and their descendants: where a ``--ready-*``
    condition must hold.  None while the target does not exist (yet)."""
    live = tree.live()
    try:
        roots = resolve_target(target, live, tree.root_pid, tree) if target is not None else \
            [p for p in live if p.pid == tree.root_pid]
    except GsupError:
        return None
    if not roots:
        return None
    scope = {p.pid: p for p in roots}
    grown = True
    while grown:
        below = {p.pid: p for p in live if p.ppid in scope and p.pid not in scope}
        scope.update(below)
        grown = bool(below)
    return list(scope.values())


def deliver(tree: Tree, target: Target, signum: int, pgid: int) -> list[Seen]:
    """Send ``signum`` to ``target`` within the tree; the processes it reached.

    ``group`` is one ``killpg``, as a terminal's Ctrl-C; anything else is a
    pidfd send per process.  Raises GsupError when nothing was reached.
    """
    tree.snapshot()
    live = tree.live()
    if target.kind == "group":
        reached = {m.pid for m in signals.send_group(pgid, [p.identity for p in live], signum)}
        if not reached:
            raise GsupError(f"process group {pgid} has no running member")
        return [p for p in live if p.pid in reached]
    sent = [p for p in resolve_target(target, live, tree.root_pid, tree) if signals.send(p.identity, signum)]
    if not sent:
        raise GsupError(f"{target}: ended before the signal could be sent; the tree is: {describe_live(live, tree)}")
    return sent


def describe_live(live: list[Seen], tree: Tree, most: int = 8) -> str:
    """``1234 (parent), 1240 (child)``: what an error message can show in one line."""
    if not live:
        return "empty"
    shown = [f"{p.pid} ({tree.role(p.pid, p.ppid)})" for p in sorted(live, key=lambda p: p.pid)[:most]]
    more = f" and {len(live) - most} more" if len(live) > most else ""
    return ", ".join(shown) + more
