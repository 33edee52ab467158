"""Every run is placed in time on the report's clock (seconds since launch).

The probe stamps each event with CLOCK_MONOTONIC, which is system-wide, so a
handler's begin and end, a signal handler's invocations and a watched call
land on the same axis as the processes' lifetimes and gsup's own actions.
These tests hold the order a real shutdown must have on that axis: the signal
is sent, then the handler runs, then atexit runs, then the process ends.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.helpers import Gsup, Program, ready_then_sleep, role

SHUTDOWN = textwrap.dedent("""
    import atexit, signal, sys, time
    import mod

    def on_term(signum, frame):
        sys.exit(0)

    def slow():
        time.sleep(0.2)

    def quick():
        mod.flush()

    atexit.register(slow)
    atexit.register(quick)
    signal.signal(signal.SIGTERM, on_term)
    """)


def test_handlers_signal_handlers_and_watched_calls_carry_their_times(gsup: Gsup, program: Program,
                                                                         tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    program("def flush():\n    pass\n", "mod.py")
    prog = program(SHUTDOWN + ready_then_sleep(ready))
    report = gsup.report("--signal", "TERM", "--ready-file", str(ready), "--watch", "mod:flush", str(prog))
    proc = role(report, "parent")
    [sent] = [a for a in report["actions"] if a["signal"] == "SIGTERM"]
    [term] = [s for s in proc["signal_handlers"] if s["signal"] == "SIGTERM"]
    assert term["handler"] == "on_term" and len(term["times"]) == 1
    handlers = {h["name"]: h for h in proc["handlers"] if h["module"] == "__main__"}
    quick, slow = handlers["quick"], handlers["slow"]
    # atexit runs last-registered first: quick, then slow
    moments = [proc["started"], sent["at"], term["times"][0], quick["started"], quick["ended"],
               slow["started"], slow["ended"], proc["ended"]]
    assert moments == sorted(moments), moments
    assert abs((slow["ended"] - slow["started"]) - slow["duration"]) < 0.005
    assert slow["ended"] - slow["started"] >= 0.2
    [flush] = proc["watched"]
    assert quick["started"] <= flush["started"] <= flush["ended"] <= quick["ended"]


def test_a_handler_that_never_began_has_no_times(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    program("def flush():\n    pass\n", "mod.py")
    prog = program(SHUTDOWN + ready_then_sleep(ready))
    proc = role(gsup.report("--signal", "KILL", "--ready-file", str(ready), str(prog)), "parent")
    for handler in proc["handlers"]:
        assert handler["status"] == "not-run"
        assert "started" not in handler and "ended" not in handler
    [term] = [s for s in proc["signal_handlers"] if s["signal"] == "SIGTERM"]
    assert term["invocations"] == 0 and "times" not in term
