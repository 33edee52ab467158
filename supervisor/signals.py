"""Send signals to exactly the processes meant, never to a recycled pid.

A pid alone is not an identity: between looking a process up and signalling it,
it can end and its pid be reused.  Every send here goes through a pidfd opened
on the pid and checked against the process's start time, so a recycled pid is
refused instead of signalled.
"""

from __future__ import annotations

import os
import signal

from supervisor import procfs
from supervisor.records import dataclass


@dataclass(frozen=True)
class Identity:
    """A process as psutil identifies it: pid plus creation time (psutil's float, to the bit)."""

    pid: int
    create_time: float


def identity(pid: int) -> Identity | None:
    """The identity of a live process, or None if there is none.

    Read by :mod:`supervisor.procfs` (psutil's arithmetic, without importing psutil,
    which costs more than Python's start-up and is on the way to every launch)."""
    info = procfs.stat(pid)
    return Identity(pid, procfs.create_time(info)) if info is not None else None


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"


def send(target: Identity, signum: int) -> bool:
    """Signal ``target`` if it is still the same process; True if sent.

    The pidfd pins the process: once it is open, the pid cannot be reused
    behind our back, so checking the start time *after* opening it closes the
    race that ``os.kill`` after a lookup leaves open.
    """
    try:
        fd = os.pidfd_open(target.pid)
    except OSError:
        return False
    try:
        if identity(target.pid) != target:
            return False
        signal.pidfd_send_signal(fd, signum)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def send_group(pgid: int, members: list[Identity], signum: int) -> list[Identity]:
    """``killpg`` as a terminal's Ctrl-C does; the known members it reached.

    A process group id is the pid of its leader and stays valid while any
    member lives, so the group is signalled only if a member of the tree, still
    the same process, is in it.
    """
    reached = [m for m in members if identity(m.pid) == m and process_group(m.pid) == pgid]
    if not reached:
        return []
    try:
        os.killpg(pgid, signum)
    except OSError:
        return []
    return reached


def process_group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None
