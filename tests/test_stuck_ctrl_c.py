"""Ctrl-C like a terminal: the first two are forwarded to the program's group, the third SIGKILLs, stacks first.

A real terminal sends SIGINT again on a second Ctrl-C, which breaks
``threading._shutdown`` (so atexit then runs) and aborts atexit callbacks:
people test exactly that.  Ctrl-C is delivered as a terminal delivers it to
gsup: SIGINT to gsup (the program runs in a group of its own).
"""

from __future__ import annotations

import signal
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from tests.helpers import PYTHON, Gsup, Program, role, statuses, wait_until


def actions_logged(gsup: Gsup) -> int:
    """How many sends the run's session has logged so far."""
    return sum(len(p.read_text().splitlines()) for p in gsup.home.rglob("actions.jsonl"))


def ctrl_c(run: subprocess.Popen[str], gsup: Gsup, then: int) -> None:
    """One Ctrl-C, and wait until gsup has logged ``then`` sends in all."""
    run.send_signal(signal.SIGINT)
    wait_until(lambda: actions_logged(gsup) >= then, what=f"send #{then} to be logged")


SHUTDOWN_WAITS = """
    import atexit, threading, time

    def poll_forever():
        while True:
            if not threading.main_thread().is_alive():
                open({in_shutdown!r}, "w").close()
            time.sleep(0.02)

    @atexit.register
    def cleanup():
        pass

    threading.Thread(target=poll_forever, name="poller").start()
    open({ready!r}, "w").close()
    time.sleep(60)
    """


def test_a_second_ctrl_c_is_forwarded_and_breaks_thread_shutdown(gsup: Gsup, program: Program,
                                                                 tmp_path: Path) -> None:
    ready, in_shutdown = tmp_path / "ready", tmp_path / "in-shutdown"
    prog = program(textwrap.dedent(SHUTDOWN_WAITS).format(ready=str(ready), in_shutdown=str(in_shutdown)))
    run = gsup.start("run", "--json", "--python", PYTHON, str(prog))
    wait_until(ready.exists, what="the program to start")
    ctrl_c(run, gsup, then=1)
    wait_until(in_shutdown.exists, what="the main thread to wait in threading._shutdown")
    ctrl_c(run, gsup, then=2)
    result = gsup.finish(run)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = result.report
    parent = role(report, "parent")
    assert statuses(parent) == {"cleanup": "ran"}  # the second SIGINT broke the join: atexit ran
    assert [(a["signal"], a["target"], a["by"]) for a in report["actions"]] == [
        ("SIGINT", "group", "ctrl-c"), ("SIGINT", "group", "2nd ctrl-c")]
    assert "2nd Ctrl-C: SIGINT to the program's process group (again to SIGKILL)" in result.stderr


def test_the_third_ctrl_c_sigkills_the_tree_after_taking_its_stacks(gsup: Gsup, program: Program,
                                                                    tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    prog = program(f"""
        import atexit, signal, time
        @atexit.register
        def cleanup():
            pass
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        open({str(ready)!r}, "w").close()
        time.sleep(60)  # here
        """)
    run = gsup.start("run", "--json", "--python", PYTHON, str(prog))
    wait_until(ready.exists, what="the program to start")
    ctrl_c(run, gsup, then=1)
    ctrl_c(run, gsup, then=2)
    run.send_signal(signal.SIGINT)
    result = gsup.finish(run)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = result.report
    parent = role(report, "parent")
    assert parent["end"]["signal"] == "SIGKILL" and statuses(parent) == {"cleanup": "not-run"}
    assert [(a["signal"], a["by"]) for a in report["actions"]] == [
        ("SIGINT", "ctrl-c"), ("SIGINT", "2nd ctrl-c"), ("SIGKILL", "3rd ctrl-c")]
    line = next(n for n, text in enumerate(prog.read_text().splitlines(), 1) if text.endswith("# here"))
    assert parent["stuck"]["kind"] == "busy"
    assert parent["stuck"]["frame"] == {"file": str(prog), "line": line, "function": "<module>"}
    assert "killed with SIGKILL by gsup at the 3rd Ctrl-C" in parent["explanation"]
