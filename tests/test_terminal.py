"""gsup in a terminal: Ctrl-C forwarding, the live view, and the rich report.

Ctrl-C is delivered as a terminal delivers it to gsup's foreground process
group: SIGINT to gsup (the program runs in a group of its own).
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

from rich.console import Console

from supervisor.model import End, Handler, Process, Report
from supervisor.render import render
from tests.helpers import GSUP, PYTHON, Gsup, Program, role, statuses, wait_until


def waiting_program(program: Program, ready: Path, extra: str = "") -> Path:
    return program(f"""
        import atexit, signal, time
        @atexit.register
        def cleanup():
            pass
        {extra}
        open({str(ready)!r}, "w").close()
        time.sleep(60)
    """)


def test_ctrl_c_reaches_the_program_and_the_report_follows(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    run = gsup.start("run", "--json", "--python", PYTHON, str(waiting_program(program, ready)))
    wait_until(ready.exists, what="the program to start")
    run.send_signal(signal.SIGINT)
    result = gsup.finish(run)
    assert result.returncode == 0, result.stderr
    report = result.report
    parent = role(report, "parent")
    assert parent["end"]["signal"] == "SIGINT" and parent["exception"] == "KeyboardInterrupt"
    assert statuses(parent) == {"cleanup": "ran"}
    [action] = report["actions"]
    assert (action["signal"], action["target"], action["by"]) == ("SIGINT", "group", "ctrl-c")
    assert action["pids"] == [parent["pid"]]


def test_live_view_on_a_terminal(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """With stderr on a terminal, gsup draws the tree; the report still comes out."""
    ready = tmp_path / "ready"
    script = waiting_program(program, ready)
    controller, terminal = pty.openpty()
    env = {**gsup.env, "COLUMNS": "100", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([*GSUP, "run", "--python", PYTHON, "--signal", "TERM", str(script)],
                            stdin=terminal, stdout=terminal, stderr=terminal, env=env, cwd=tmp_path)
    os.close(terminal)
    gsup.started.append(proc)  # type: ignore[arg-type]
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready_fds, _, _ = select.select([controller], [], [], 1)
        if ready_fds:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break  # the terminal closed: gsup has exited
            if not chunk:
                break
            seen += chunk
    os.close(controller)
    assert proc.wait(timeout=30) == 0
    text = seen.decode(errors="replace")
    assert "gsup session" in text and "running" in text  # the live table
    assert "gsup report" in text and "SIGTERM" in text


def test_render_reads_at_80_columns() -> None:
    handlers = [
        Handler("atexit", "shutdown", "__main__", "app.py:10", "not-run"),
        Handler("atexit", "shutdown2", "__main__", "app.py:15", "ran", order=2, duration=0.0),
        Handler("atexit", "shutdown3", "__main__", "app.py:20", "interrupted", order=1),
        Handler("atexit", "shutdown", "logging", "logging/__init__.py:2200", "raised", order=3,
                exception="ValueError"),
    ]
    proc = Process(pid=12, ppid=11, role="child", argv=["/usr/bin/python3", "app.py"], instrumented=True,
                   end=End("signaled", signal="SIGKILL"), handlers=handlers, explanation="killed it")
    report = Report(command=["python3", "app.py"], session="s-1", started=0.0, duration=1.5,
                    processes=[proc], actions=[], leftovers=[])
    console = Console(width=80, color_system=None, record=True)
    console.print(render(report))
    assert console.export_text() == (
        "gsup report: python3 app.py\n"
        "session s-1, 1.50s\n"
        "processes\n"
        "└── 12 child  python3 app.py\n"
        "    ended: killed by SIGKILL\n"
        "      ✗ 1. shutdown3  interrupted\n"
        "      ✓ 2. shutdown2\n"
        "      ! 3. logging.shutdown  raised ValueError\n"
        "      ·    shutdown  not-run\n"
        "    → killed it\n"
        "nothing left running\n"
    )


def test_left_running_then_exited_reads_as_such() -> None:
    from supervisor.model import EXITED, LEFT_RUNNING, SIGNALED, End
    from supervisor.render import end_text

    assert end_text(End(LEFT_RUNNING, then=End(EXITED, code=0))).plain == "ended: left running, then exited 0"
    assert end_text(End(LEFT_RUNNING, then=End(SIGNALED, signal="SIGKILL"))).plain == (
        "ended: left running, then SIGKILL")
