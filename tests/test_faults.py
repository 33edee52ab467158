"""Faults of the machine around a run, each made for real: gsup survives them and its report says what they cost.

* the session directory's file system full (a small tmpfs, mounted in a private
  mount namespace, so nothing leaks to the machine);
* gsup's guardian SIGKILLed while the program runs;
* gsup's terminal hung up (a pseudo-terminal whose other side is closed);
* the session directory deleted while the program runs.

In each, the program must not notice (same output, same exit status) and
nothing of its tree may be left.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import subprocess
import termios
from pathlib import Path

import psutil
import pytest

from supervisor.errors import ExitCode
from tests.helpers import GSUP, PYTHON, Gsup, Program, lose_session_mid_run, role, wait_until

# The program fills the file system it is told of, then starts a Python child: the child's probe has no room.
FILLS_THE_DISK = """
    import atexit, os, subprocess, sys
    atexit.register(print, "parent handler")
    try:
        with open(os.path.join(os.environ["FILL"], "filler"), "wb") as f:
            while True:
                f.write(b"x" * 4096)
                f.flush()
    except OSError as err:
        print("full:", err.strerror)
    done = subprocess.run([sys.executable, "-c", "import atexit; atexit.register(print, 'child handler')"])
    print("child exit", done.returncode)
    sys.exit(5)
"""


def in_small_tmpfs(mount_point: Path, command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``command`` with a 256 KiB tmpfs on ``mount_point``, in a mount namespace of its own."""
    script = 'mount -t tmpfs -o size=256k gsup-test "$0" && exec "$@"'
    return subprocess.run(["unshare", "--mount", "sh", "-c", script, str(mount_point), *command], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def can_mount() -> str:
    """Why a private tmpfs cannot be mounted here ('' if it can)."""
    if os.geteuid() != 0:
        return "mounting a small tmpfs needs root"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    done = subprocess.run(["unshare", "--mount", "mount", "-t", "tmpfs", "none", "/mnt"], capture_output=True,
                          check=False)
    return "" if done.returncode == 0 else f"unshare --mount cannot mount a tmpfs: {done.stderr.decode().strip()}"


@pytest.mark.skipif(bool(can_mount()), reason=can_mount() or "-")
def test_a_full_file_system_under_the_session_costs_records_not_the_program(gsup: Gsup, program: Program,
                                                                              tmp_path: Path) -> None:
    script = program(FILLS_THE_DISK)
    home = tmp_path / "small"
    home.mkdir()
    env = {**gsup.env, "GSUP_HOME": str(home), "FILL": str(home)}
    alone = in_small_tmpfs(home, [PYTHON, str(script)], env)
    assert alone.returncode == 5 and "full: No space left on device" in alone.stdout
    run = in_small_tmpfs(home, [*GSUP, "run", "--json", "-q", "--python", PYTHON, str(script)], env)
    assert run.returncode == ExitCode.INCOMPLETE, run.stderr
    program_output = [line for line in run.stderr.splitlines() if not line.startswith("gsup:")]
    assert program_output == alone.stdout.splitlines()  # --json: the program's stdout goes to stderr
    report = json.loads(run.stdout)
    parent, child = role(report, "parent"), role(report, "child")
    assert parent["end"]["code"] == 5 and child["end"]["code"] == 0
    assert child["instrumented"] is False
    assert child["uninstrumented_reason"] == ("its probe ran but could not write a record "
                                              "(the session directory's file system is full)")
    assert "the probe's records may be incomplete: the session directory's file system is full" in report[
        "incomplete"]
    assert f"the probe could not record pid {child['pid']} (the session directory's file system is full): " \
           "handlers unknown" in report["incomplete"]
    assert report["leftovers"] == []


WAITS_FOR_GO = """
    import atexit, os, sys, time
    atexit.register(print, "parent handler")
    def wait(go):
        while not os.path.exists(go):
            time.sleep(0.01)
    if os.fork() == 0:
        if os.fork() == 0:
            os.setsid()  # a daemon: out of the program's process group
            wait(sys.argv[2])
            os._exit(0)
        wait(sys.argv[2])
        sys.exit(0)
    open(sys.argv[1], "w").close()
    wait(sys.argv[2])
    os.wait()
"""


def test_the_guardian_killed_mid_run_leaves_nothing_and_is_reported(gsup: Gsup, program: Program,
                                                                     tmp_path: Path) -> None:
    ready, go = tmp_path / "ready", tmp_path / "go"
    script = program(WAITS_FOR_GO)
    running = gsup.start("run", "--json", "-q", "--python", PYTHON, str(script), str(ready), str(go))
    wait_until(ready.exists, what="the program to start")
    [guardian] = [p for p in psutil.Process(running.pid).children() if p.name() == "gsup-guardian"]
    guardian.kill()
    wait_until(lambda: not guardian.is_running() or guardian.status() == psutil.STATUS_ZOMBIE, what="the kill")
    go.touch()
    result = gsup.finish(running)
    assert result.returncode == ExitCode.INCOMPLETE, result.stderr
    report = result.report
    assert any(note.startswith(f"gsup's guardian (pid {guardian.pid}) died (SIGKILL) while the program ran")
               for note in report["incomplete"]), report["incomplete"]
    assert len(report["processes"]) == 3
    ends = {p["role"]: p["end"]["how"] for p in report["processes"]}
    assert ends == {"parent": "exited", "child": "exited", "grandchild": "os._exit"}, ends
    assert report["leftovers"] == []  # and the gsup fixture fails the test if any process is alive


def test_a_hung_up_terminal_ends_the_tree_and_the_report_is_written(gsup: Gsup, program: Program,
                                                                    tmp_path: Path) -> None:
    """gsup on a terminal (a pty it controls), then the terminal goes: SIGHUP, and writes fail with EIO."""
    ready = tmp_path / "ready"
    script = program(f"""
        import atexit, time
        atexit.register(print, "parent handler")
        open({str(ready)!r}, "w").close()
        time.sleep(60)
    """)
    master, slave = pty.openpty()
    running = subprocess.Popen([*GSUP, "run", "--python", PYTHON, str(script)], stdin=slave, stdout=slave,
                               stderr=slave, env=gsup.env, cwd=gsup.workdir, start_new_session=True,
                               preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))  # the pty is its terminal
    gsup.started.append(running)  # type: ignore[arg-type]
    os.close(slave)
    try:
        wait_until(ready.exists, what="the program to start")
    finally:
        os.close(master)  # the hang-up
    running.wait(timeout=60)  # its exit code is how a gsup whose output is gone exits (README, exit codes)
    [saved] = gsup.home.glob("*/report.json")
    report = json.loads(saved.read_text())
    parent = role(report, "parent")
    assert parent["end"]["signal"] == "SIGHUP"  # gsup passed the hang-up on to the program's group
    assert [(a["signal"], a["by"]) for a in report["actions"]] == [("SIGHUP", "gsup received")]
    assert report["complete"] is True
    assert report["leftovers"] == []


def test_a_deleted_session_directory_is_reported_as_lost_records(gsup: Gsup, program: Program,
                                                                 tmp_path: Path) -> None:
    result = gsup.finish(lose_session_mid_run(gsup, program, tmp_path))
    assert result.returncode == ExitCode.INCOMPLETE, result.stderr
    assert "Traceback" not in result.stderr
    report = result.report
    assert "the probe's records may be incomplete: the session directory was deleted while the program ran" in \
        report["incomplete"]
    parent = role(report, "parent")
    assert parent["end"]["code"] == 0
    assert parent["uninstrumented_reason"] == "no probe record: the session directory was deleted while the program ran"
