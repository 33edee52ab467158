"""Timing and accounting helpers shared by the benchmarks, and the Row they produce.

Start-up times are taken around ``posix_spawn`` + ``waitpid``, the leanest way
to run a command, so the harness adds as little as possible to either side of
a ratio.  CPU time comes from ``/proc/<pid>/task/*/schedstat`` (nanoseconds on
a CPU, every thread), not from clock ticks, so a 10 s idle window resolves
well below the 0.5 % target.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable  # the venv's interpreter: gsup, psutil and flask are installed in it
GSUP = str(Path(sys.executable).with_name("gsup"))
PROBE_DIR = str(ROOT / "supervisor" / "_probe")


def rel(path: str) -> str:
    """``path`` as the docs show it: relative to the repository when it is inside it."""
    return os.path.relpath(path, ROOT) if path.startswith(str(ROOT) + os.sep) else path


@dataclass
class Row:
    """One figure of the table: what was measured, against which target, and how."""

    name: str
    value: float
    target: Optional[float]  # None: a figure shown for context, with no target
    unit: str  # "x" for a ratio, else "us", "ms", "%", "MB", "processes"
    detail: str  # the raw medians behind the figure
    command: str  # what reproduces it
    at_least: bool = False  # the target is a minimum (a count), not a maximum

    @property
    def met(self) -> bool:
        if self.target is None:
            return True
        return self.value >= self.target if self.at_least else self.value <= self.target

    @property
    def goal(self) -> str:
        if self.target is None:
            return "—"
        return ("≥ " if self.at_least else "≤ ") + self.shown(self.target)

    def shown(self, number: float) -> str:
        digits = 2 if self.unit == "x" else (0 if self.unit == "processes" else 1)
        unit = {"x": "×", "us": " µs", "processes": ""}.get(self.unit, " " + self.unit)
        return f"{number:.{digits}f}{unit}"

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "info"
        if self.met:
            return "ok"
        if self.at_least:
            return f"MISSED by {self.shown(self.target - self.value)}"
        over = (self.value / self.target - 1) * 100 if self.target else float("inf")
        return f"MISSED by {self.shown(self.value - self.target)} ({over:.0f} % over)"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spawn_time(argv: Sequence[str], env: dict[str, str], stderr_too: bool = False) -> float:
    """Seconds from spawning ``argv`` to reaping it; its output goes to /dev/null
    (``stderr_too``: its stderr as well, where gsup's progress lines go).

    Raises if the command fails: a start-up time of a command that errored is
    not a start-up time.
    """
    actions = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_WRONLY, 0) for fd in ((1, 2) if stderr_too else (1,))]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], list(argv), env, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {os.waitstatus_to_exitcode(status)}")
    return elapsed


def interleaved(runs: int, sides: Sequence[Callable[[], float]]) -> list[list[float]]:
    """Run each side ``runs`` times, alternating, in A B / B A order so neither side
    always goes first; one list of results per side."""
    results: list[list[float]] = [[] for _ in sides]
    for round_ in range(runs):
        order = range(len(sides)) if round_ % 2 == 0 else reversed(range(len(sides)))
        for index in order:
            results[index].append(sides[index]())
    return results


def cpu_ns(pid: int) -> int:
    """Nanoseconds ``pid`` (all its threads) has spent on a CPU so far; 0 once it is gone."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def helpers_of(gsup_pid: int) -> list[int]:
    """gsup's own helper processes (the guardian, where there is one): they count as gsup."""
    found = []
    try:
        children = Path(f"/proc/{gsup_pid}/task/{gsup_pid}/children").read_text().split()
    except OSError:
        return []
    for pid in children:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(b"supervisor/guardian.py") for arg in argv):
            found.append(int(pid))
    return found


def wait_for(path: Path, timeout: float, proc_alive: Callable[[], bool]) -> None:
    """Until ``path`` exists; fails if the deadline passes or the watched process ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if not proc_alive():
            raise RuntimeError(f"the run ended before {path.name} appeared")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path.name} did not appear within {timeout:.0f} s")
        time.sleep(0.005)


def bench_env(home: Path) -> dict[str, str]:
    """The environment every measured command gets: this one, with a private gsup home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GSUP_") and k != "PYTHONPATH"}
    env.update(GSUP_HOME=str(home), NO_COLOR="1")
    return env
