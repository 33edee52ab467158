"""Processes read straight from ``/proc``, as psutil reads them: for finding and
checking sessions (:mod:`supervisor.discovery`), and for the tree walk of
``gsup run`` (:func:`descendants`).

Importing psutil costs about twice Python's own start-up, and ``gsup ps`` needs
only start times, parents and command lines.  Each function here but
:func:`descendants` returns what the psutil call it names returns (same files,
same parsing, same float arithmetic), so an identity a ``gsup run`` wrote with
psutil compares equal.
tests/test_ps_fast.py holds them to psutil, so a psutil upgrade that changes
its arithmetic fails there rather than in a silent ``gsup ps``.

Stdlib only, and no import beyond ``os`` and ``sys``: that is the point.
"""

from __future__ import annotations

import os
import sys

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ENCODING, ENCODING_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


class Stat:
    """The fields of ``/proc/<pid>/stat`` that gsup uses."""

    __slots__ = ("name", "ppid", "starttime", "state")

    def __init__(self, data: bytes) -> None:
        # The name sits between the first "(" and the last ")": it may hold both.
        close = data.rfind(b")")
        fields = data[close + 2:].split()
        self.name = data[data.find(b"(") + 1:close].decode(ENCODING, ENCODING_ERRORS)
        self.state = fields[0]
        self.ppid = int(fields[1])
        self.starttime = fields[19]  # clock ticks after boot, kept as psutil parses them


def stat(pid: int) -> Stat | None:
    """``/proc/<pid>/stat``, or None once the process is gone.

    psutil raises ValueError for a negative pid (a pid psutil refuses is not
    simply "gone"), so this does too.
    """
    if pid < 0:
        raise ValueError(f"pid must be a positive integer (got {pid})")
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return Stat(f.read())
    except OSError:
        return None


def boot_time() -> float:
    """``psutil.boot_time()``: the ``btime`` line of ``/proc/stat``."""
    with open("/proc/stat", "rb") as f:
        for line in f:
            if line.startswith(b"btime"):
                return float(line.strip().split()[1])
    raise RuntimeError("line 'btime' not found in /proc/stat")


def create_time(info: Stat) -> float:
    """``psutil.Process.create_time()``, to the last bit of the float."""
    return float(info.starttime) / CLOCK_TICKS + boot_time()


def descendants(pid: int) -> list[tuple[int, Stat]]:
    """Every descendant of ``pid``, parents before children, with its stat.

    The walk follows ``/proc/<pid>/task/*/children``, so it costs a few reads
    per process of the tree, not a read of every process on the machine (as
    psutil's ``children(recursive=True)`` does).  A child is admitted only if
    its stat still names the parent it was listed under, so a pid that died
    and was reused between the two reads is not.  ``gsup run``'s tree and
    ``gsup ps`` both walk with this, so they list processes in the same order.
    """
    found: list[tuple[int, Stat]] = []
    todo = [pid]
    while todo:
        parent = todo.pop(0)
        for child in children(parent):
            info = stat(child)
            if info is not None and info.ppid == parent:
                found.append((child, info))
                todo.append(child)
    return found


def children(pid: int) -> list[int]:
    """The pids ``/proc/<pid>/task/*/children`` lists (children of every thread)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    out: list[int] = []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as file:
                out.extend(int(p) for p in file.read().split())
        except OSError:
            continue
    return out


def cmdline(pid: int) -> list[str] | None:
    """``psutil.Process.cmdline()``; None where psutil raises (gone, or a zombie)."""
    try:
        with open(f"/proc/{pid}/cmdline", encoding=ENCODING, errors=ENCODING_ERRORS) as f:
            data = f.read()
    except OSError:
        return None
    if not data:
        info = stat(pid)
        return None if info is not None and info.state == b"Z" else []
    sep = "\x00" if data.endswith("\x00") else " "
    if data.endswith(sep):
        data = data[:-1]
    argv = data.split(sep)
    if sep == "\x00" and len(argv) == 1 and " " in data:
        argv = data.split(" ")  # a program that rewrote its title with spaces
    return argv


class Status:
    """The fields of ``/proc/<pid>/status`` that container mode reads: the pid in
    each PID namespace (``NSpid``, outermost first) and the signal masks."""

    __slots__ = ("blocked", "caught", "ignored", "nspid")

    def __init__(self, data: bytes) -> None:
        fields = dict(line.partition(b":")[::2] for line in data.splitlines())
        self.nspid = [int(p) for p in fields.get(b"NSpid", b"").split()]
        self.blocked, self.ignored, self.caught = (int(fields.get(name, b"0").strip() or b"0", 16)
                                                   for name in (b"SigBlk", b"SigIgn", b"SigCgt"))

    def disposition(self, signum: int) -> str:
        """``caught``, ``blocked``, ``ignored`` or ``default``: what decides whether PID 1 gets it."""
        bit = 1 << (signum - 1)
        for name, mask in (("caught", self.caught), ("blocked", self.blocked), ("ignored", self.ignored)):
            if mask & bit:
                return name
        return "default"


def status(pid: int) -> Status | None:
    """``/proc/<pid>/status``, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            return Status(f.read())
    except OSError:
        return None


WAITED_ALL = (1 << 64) - 1


def signals_waited_for(pid: int) -> int:
    """The signals ``pid`` is taking with ``sigtimedwait``/``sigwaitinfo`` right now, as a mask (0: none).

    While a process waits so (tini, dumb-init, gsup's init.py), the kernel takes
    the waited signals out of ``SigBlk`` and keeps them blocked aside
    (``real_blocked``), which ``/proc`` does not show; they are not dropped for
    PID 1.  The set is the syscall's first argument, read from the process's
    memory (gsup may: same user, or root); unreadable, every signal counts as waited.
    """
    try:
        with open(f"/proc/{pid}/wchan", "rb") as f:
            if not f.read().startswith(b"do_sigtimedwait"):
                return 0
        with open(f"/proc/{pid}/syscall", "rb") as f:
            address = int(f.read().split()[1], 16)
        with open(f"/proc/{pid}/mem", "rb") as f:
            f.seek(address)
            return int.from_bytes(f.read(8), sys.byteorder)
    except (OSError, ValueError, IndexError, OverflowError):
        return WAITED_ALL
