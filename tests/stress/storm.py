"""A fork storm under a signal storm: hundreds of forks while INT, HUP and USR1 arrive at random.

The parent installs a Python handler for each of the three signals (one that
raises, or one that does not), forks a sender that fires the signals at the
whole process group at random sub-millisecond intervals, then forks hundreds
of short-lived children, which inherit the handlers and are hit too, at any
point of their start (the probe's after-fork hook included).  Every process
leaves marker files (``programs.py``'s format, read by ``markers.py``).  A
child's own at-fork hook, which runs after the probe's, blocks the three
signals; the child then registers an exit handler and ends by ``sys.exit``
(its handler runs) or ``os._exit`` (it does not), so its ending is known.
A handler that raises does so only while the program is inside ``os.fork``
or ``os.waitpid`` (a ``try`` around them catches it, as a server would), so
it interrupts the probe's wrappers and at-fork hooks, never the program's
own bookkeeping; in a child it lands in the probe's after-fork hook.

:func:`check` holds the report against the markers: every process that left a
start marker is in the report, instrumented (else **missing**: the fork race
loses the child's events), with the exit handler it registered and no other
(else **invented**: another process's events credited to it), the handler's
run as its markers say, and at least as many invocations of each signal
handler as it has begin markers; more only as many as raising handlers could
have cut short.  The probe's tracebacks in the program's output are counted
by ``checks.probe_lines``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import markers
from checks import Finding

STORM_SIGNALS = ("INT", "HUP", "USR1")


@dataclass
class Storm:
    """One storm: how many forks and signals, and what each signal's handler does."""

    number: int
    seed: int
    forks: int
    signals: int  # how many the sender fires
    gap_us: int  # the sender's largest pause between two signals, in microseconds
    raising: dict[str, str]  # signal -> "raise" (a custom error), "interrupt" (KeyboardInterrupt) or "note"
    python: str

    @property
    def timing(self) -> list[str]:
        return []  # no signal from gsup: the storm is the program's own

    def describe(self) -> str:
        bodies = ", ".join(f"{s}:{b}" for s, b in self.raising.items())
        return f"{self.forks} forks, {self.signals} signals ({bodies}), {self.python}"


def make(seed: int, number: int, pythons: list[str]) -> Storm:
    """Storm ``number`` of the run with ``seed``: the same arguments give the same storm."""
    rng = random.Random(f"storm:{seed}:{number}")
    raising = {sig: rng.choice(("raise", "note", "interrupt" if sig == "INT" else "raise")) for sig in STORM_SIGNALS}
    return Storm(number, seed, forks=rng.randint(150, 400), signals=rng.randint(200, 800),
                 gap_us=rng.choice((300, 1000, 3000)), raising=raising, python=rng.choice(pythons))


PROGRAM = '''\
import atexit
import os
import signal
import sys
import time

MARKERS = {markers!r}
LOG = {log!r}
IMAGE = "%x" % time.monotonic_ns()
STORM = (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
BODIES = {bodies!r}
FORKS, SIGNALS, GAP_US, SEED = {forks}, {signals}, {gap_us}, {seed}
_RUNS = {{}}
armed = False  # handlers raise only while the program calls fork or waitpid, inside a try


class StormError(Exception):
    pass


def _mark(name, what, run=0):
    path = "%s/%d-%s-%s-%s-%d" % (MARKERS, os.getpid(), IMAGE, name, what, run)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))


def _begin(name):
    run = _RUNS[name] = _RUNS.get(name, 0) + 1
    _mark(name, "begin", run)
    return run


def _calm():
    # In a child, after the probe's own at-fork hook (registered first): from here on the
    # storm is blocked, so the child's ending is known.  Until here, it is hit like the parent.
    global armed
    signal.pthread_sigmask(signal.SIG_BLOCK, STORM)
    armed = False
    _RUNS.clear()
    _mark("image", "start")


def _handler(name, body):
    def handle(signum, frame):
        global armed
        _begin(name)
        if armed and body != "note":
            armed = False  # one raise per window: a second one could land in the except clause
            raise StormError(name) if body == "raise" else KeyboardInterrupt
    handle.__name__ = handle.__qualname__ = name
    return handle


def c_exit():
    _k = _begin("c_exit")
    _mark("c_exit", "end", _k)


def child(number):
    atexit.register(c_exit)
    _mark("c_exit", "reg")
    if number % 3:
        sys.exit(0)
    os._exit(0)


def sender():
    import random
    rng = random.Random(SEED)
    for _ in range(SIGNALS):
        time.sleep(rng.uniform(0, GAP_US) / 1e6)
        os.killpg(0, rng.choice(STORM))
    os._exit(0)


def forked(run):
    global armed
    pid = None
    try:
        armed = True
        pid = os.fork()
        armed = False
    except (StormError, KeyboardInterrupt):
        armed = False  # the child may exist: waitpid(-1) reaps it
    if pid == 0:
        run()


def reap(options):
    global armed
    try:
        armed = True
        pid = os.waitpid(-1, options)[0]
        armed = False
        return pid
    except ChildProcessError:
        armed = False
        return -1
    except (StormError, KeyboardInterrupt):
        armed = False
        return 0 if options else 1


def main():
    for sig in STORM:
        name = signal.Signals(sig).name[3:]
        signal.signal(sig, _handler("s_" + name.lower(), BODIES[name]))
    forked(sender)
    for number in range(FORKS):
        forked(lambda: child(number))
        if number % 8 == 7:
            while reap(os.WNOHANG) > 0:
                pass
    while reap(0) != -1:
        pass
    signal.pthread_sigmask(signal.SIG_BLOCK, STORM)
    _mark("p_done", "reg")


_output = os.open(LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.dup2(_output, 1)
os.dup2(_output, 2)
os.close(_output)
_mark("image", "start")
os.register_at_fork(after_in_child=_calm)
main()
'''


def source(storm: Storm, marker_dir: Path, log: Path) -> str:
    return PROGRAM.format(markers=str(marker_dir), log=str(log), bodies=storm.raising, forks=storm.forks,
                          signals=storm.signals, gap_us=storm.gap_us, seed=storm.seed * 1000 + storm.number)


def check(storm: Storm, report: dict[str, Any], marker_dir: Path) -> list[Finding]:
    images = markers.read(marker_dir)
    entries = markers.match(report, images)
    raisers = {f"s_{sig.lower()}" for sig, body in storm.raising.items() if body != "note"}
    blind = {int(p["pid"]) for p in report["processes"] if not p["instrumented"]}
    findings: list[Finding] = []
    for key, marks in sorted(images.items()):
        entry = entries[key]
        if entry is None:
            why = "reported as not instrumented" if marks.pid in blind else "not in the report"
            findings.append(Finding("missing", "process", f"pid {marks.pid} ran (its markers say so) but is {why}"))
            continue
        findings += _check_handlers(marks, entry) + _check_signals(marks, entry, raisers)
    if not any("p_done" in m.registered for m in images.values()):
        findings.append(Finding("crash", "storm", "the parent did not finish its forks (see program.log)"))
    return findings


def _check_handlers(marks: markers.ImageMarks, entry: dict[str, Any]) -> list[Finding]:
    """The exit handlers a process registered are the ones the report gives it, run as marked."""
    own = {h["name"]: h for h in entry.get("handlers", []) if h.get("module") in ("__main__", "")}
    registered = {name for name in marks.registered if name.startswith("c_")}
    findings = [Finding("invented", "handler", f"pid {marks.pid}: {name} in the report, never registered there")
                for name in sorted(set(own) - registered)]
    for name in sorted(registered):
        handler = own.get(name)
        ended = marks.began(name) > 0 and all("end" in w for w in marks.runs[name].values())
        if handler is None:
            findings.append(Finding("missing", "handler", f"pid {marks.pid}: {name} registered, not in the report"))
        elif ended and handler["status"] != "ran":
            findings.append(Finding("missing", "handler", f"pid {marks.pid}: {name} ran, report: {handler['status']}"))
        elif not ended and handler["status"] == "ran":
            findings.append(Finding("invented", "handler", f"pid {marks.pid}: {name} never ran, report: ran"))
    return findings


def _check_signals(marks: markers.ImageMarks, entry: dict[str, Any], raisers: set[str]) -> list[Finding]:
    """Each handler's invocations: at least its begin markers; beyond them, at most one per
    raising handler's run in this process (it can cut another's call short before its marker)."""
    findings = []
    cut = sum(marks.began(name) for name in raisers)
    counted = {s["handler"]: int(s.get("invocations") or 0) for s in entry.get("signal_handlers", [])}
    for name in sorted({*(n for n in marks.runs if n.startswith("s_")), *counted}):
        began, invoked = marks.began(name), counted.get(name, 0)
        if invoked < began:
            findings.append(Finding("missing", "signal", f"pid {marks.pid}: {name} ran {began}x, report {invoked}x"))
        elif invoked > began + cut:
            findings.append(Finding("invented", "signal", f"pid {marks.pid}: {name} ran {began}x, report {invoked}x"))
    return findings
