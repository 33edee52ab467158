"""Processes read straight from ``/proc``, as psutil reads them, for ``gsup ps``.

Importing psutil costs about twice Python's own start-up, and ``gsup ps`` needs
only start times, parents and command lines.  Each function here returns what
the psutil call it names returns (same files, same parsing, same float
arithmetic), so an identity a ``gsup run`` wrote with psutil compares equal.
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


def ppid_map() -> dict[int, int]:
    """pid -> parent pid for every process, in ``/proc``'s order (psutil's ``_ppid_map``)."""
    found = {}
    for name in os.listdir(b"/proc"):
        if name.isdigit():
            info = stat(int(name))
            if info is not None:
                found[int(name)] = info.ppid
    return found


def descendants(pid: int) -> list[tuple[int, Stat]]:
    """``psutil.Process(pid).children(recursive=True)``, in the same order.

    Each descendant comes with the stat read that admitted it (a process
    started before ``pid`` holds a recycled pid, and is left out, as psutil
    does).  An empty list if ``pid`` itself is gone.
    """
    top = stat(pid)
    if top is None:
        return []
    below: dict[int, list[int]] = {}
    for child, parent in ppid_map().items():
        below.setdefault(parent, []).append(child)
    top_created = create_time(top)
    found = []
    seen = set()
    stack = [pid]
    while stack:
        current = stack.pop()
        if current in seen:
            continue  # pids recycled while the map was read can make a cycle
        seen.add(current)
        for child in below.get(current, []):
            info = stat(child)
            if info is not None and top_created <= create_time(info):
                found.append((child, info))
                stack.append(child)
    return found


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
