"""gsup in a terminal: Ctrl-C forwarding, the live view, and the rich report.

Ctrl-C is delivered as a terminal delivers it to gsup's foreground process
group: SIGINT to gsup (the program runs in a group of its own).
"""

from __future__ import annotations

import os
import pty
import select
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from rich.console import Console

from supervisor.display import shorten
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


def tmux_screen(gsup: Gsup, tmp_path: Path, argv: list[str], width: int, env: dict[str, str],
                answer: tuple[Path, str] | None = None) -> str:
    """Run ``argv`` in a tmux terminal ``width`` columns wide; what it left on the screen (and its
    scrollback), once it has ended.  A real terminal: cursor moves and erasures are applied, so an
    overwritten line is gone here as it is for the user.  ``answer``: once that file exists, type
    that line."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (.ci/run installs it)")
    done = tmp_path / f"done-{width}"
    script = tmp_path / f"run-{width}.sh"
    command = " ".join(shlex.quote(arg) for arg in ["env", *(f"{k}={v}" for k, v in env.items()), *argv])
    script.write_text(f"cd {shlex.quote(str(tmp_path))}\n{command}\necho exit=$? > {shlex.quote(str(done))}\n"
                      "sleep 60\n")
    tmux = ["tmux", "-L", f"gsup-test-{os.getpid()}-{width}", "-f", "/dev/null"]
    subprocess.run([*tmux, "new-session", "-d", "-x", str(width), "-y", "30", "sh", str(script)], check=True)
    try:
        if answer is not None:
            wait_until(answer[0].exists, timeout=60, what="the program to ask")
            subprocess.run([*tmux, "send-keys", answer[1], "Enter"], check=True)
        wait_until(done.exists, timeout=90, what="gsup to end in tmux")
        screen = subprocess.run([*tmux, "capture-pane", "-p", "-J", "-S", "-", "-E", "-"], check=True,
                                capture_output=True, text=True).stdout
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)
    assert done.read_text() == "exit=0\n", screen
    return screen


@pytest.mark.parametrize(("width", "colour"), [(80, False), (200, True)])
def test_the_live_view_keeps_every_line_the_program_printed(gsup: Gsup, program: Program, tmp_path: Path,
                                                            width: int, colour: bool) -> None:
    """The program's own output scrolls above the live table, line for line, with its own
    buffering (no PYTHONUNBUFFERED); gsup's progress lines scroll as lines; the last frame
    is the final state."""
    script = program("""
        import atexit, sys, time
        atexit.register(lambda: print("atexit: said goodbye"))
        for i in range(4):
            print(f"out {i}: a line of the program's stdout")
            print(f"err {i}: a line of the program's stderr", file=sys.stderr)
            time.sleep(0.4)  # the live table redraws in between
    """)
    env = {k: v for k, v in gsup.env.items() if k in ("GSUP_HOME", "PATH", "HOME")}
    env.update({"TERM": "xterm-256color"} if colour else {"TERM": "xterm", "NO_COLOR": "1"})
    screen = tmux_screen(gsup, tmp_path, ["env", "-u", "PYTHONUNBUFFERED", *GSUP, "run", "--python", PYTHON,
                                          str(script)], width, env)
    lines = [line.rstrip() for line in screen.splitlines()]
    printed = [line for line in lines if line.startswith(("out ", "err ", "atexit:"))]
    assert sorted(printed) == sorted([f"out {i}: a line of the program's stdout" for i in range(4)]
                                     + [f"err {i}: a line of the program's stderr" for i in range(4)]
                                     + ["atexit: said goodbye"]), screen
    assert any(line.startswith("gsup: pid ") and line.endswith("(parent) exited with code 0") for line in lines)
    assert screen.count("gsup session") == 1, screen  # one table left: the final frame
    assert "exited with code 0 │" in screen and "│ running" not in screen, screen
    assert "gsup report" in screen


ASKS = """
    import atexit
    atexit.register(print, "bye from atexit")
    open({asking!r}, "w").close()
    print("hello " + input("name? "))
"""


def test_a_program_stopped_by_sigttin_is_said_and_the_signal_still_reaches_it(gsup: Gsup, program: Program,
                                                                             tmp_path: Path) -> None:
    """It read the terminal from its own process group: stopped.  gsup says why and how to fix it,
    and its TERM is followed by SIGCONT (a stopped process acts on nothing else), not left to the grace."""
    script = program(ASKS.format(asking=str(tmp_path / "asking")))
    env = {k: v for k, v in gsup.env.items() if k in ("GSUP_HOME", "PATH", "HOME", "NO_COLOR")}
    screen = tmux_screen(gsup, tmp_path, [*GSUP, "run", "--python", PYTHON, "--signal", "TERM", "--after", "2s",
                                          "--grace", "30s", str(script)], 200, {**env, "TERM": "xterm"})
    assert "(parent) is stopped, most likely by SIGTTIN: it read from the terminal while in the background" in screen
    assert "give it stdin with --stdin null or --stdin FILE, or the terminal with --stdin tty" in screen
    assert "gsup: sent SIGCONT to parent" in screen and "killed by SIGTERM" in screen, screen


def test_stdin_tty_gives_the_program_the_terminal(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    asking = tmp_path / "asking"
    script = program(ASKS.format(asking=str(asking)))
    env = {k: v for k, v in gsup.env.items() if k in ("GSUP_HOME", "PATH", "HOME", "NO_COLOR")}
    screen = tmux_screen(gsup, tmp_path, [*GSUP, "run", "--python", PYTHON, "--stdin", "tty", str(script)], 120,
                         {**env, "TERM": "xterm"}, answer=(asking, "bob"))
    lines = [line.rstrip() for line in screen.splitlines()]
    assert "name? bob" in lines and "hello bob" in lines and "bye from atexit" in lines, screen
    assert "is stopped" not in screen


def test_commands_in_the_live_table_are_shortened_at_a_word() -> None:
    assert shorten("python manage.py runserver --noreload", 30) == "python manage.py runserver…"
    assert shorten("python app.py", 30) == "python app.py"
    assert shorten("averyveryverylongword tail", 10) == "averyvery…"


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
