"""``gsup stacks [SESSION]`` and ``gsup ps --stacks``: the live tree's stacks on demand, no ptrace, no root.

The program must not notice being asked: a main thread in ``time.sleep``
goes back to sleeping for the rest of its time (PEP 475), and the probe keeps
no file open between requests.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import PYTHON, Gsup, Program, wait_until
from tests.test_stuck_escalation import line_of

PROGRAM = """
    import os, subprocess, sys, threading, time

    def serve_forever():
        while True:
            time.sleep(0.05)  # serve

    threading.Thread(target=serve_forever, name="server", daemon=True).start()
    child = subprocess.Popen(["sleep", "60"])
    if os.fork() == 0:  # a forked child answers with its parent's handler (a Python handler survives fork)
        time.sleep(3)  # forked
        os._exit(0)
    open({ready!r}, "w").close()
    started = time.monotonic()
    time.sleep(2)  # main
    fds = sorted(os.listdir("/proc/self/fd"))
    open({slept!r}, "w").write("%.3f %s" % (time.monotonic() - started, fds))
    child.kill()
    child.wait()
    """


def test_gsup_stacks_lists_every_thread_of_every_process_and_the_program_does_not_notice(
        gsup: Gsup, program: Program, tmp_path: Path) -> None:
    ready, slept = tmp_path / "ready", tmp_path / "slept"
    prog = program(PROGRAM.format(ready=str(ready), slept=str(slept)))
    run = gsup.start("run", "--json", "--python", PYTHON, str(prog))
    wait_until(ready.exists, what="the program to start")
    [session] = [p.name for p in gsup.home.iterdir() if p.is_dir()]
    result = gsup.run("stacks", "--json", session)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert listing["session"] == session
    python = listing["processes"][0]
    [shell] = [p for p in listing["processes"] if p["argv"][0] == "sleep"]
    [forked] = [p for p in listing["processes"][1:] if p["argv"][0] != "sleep"]
    assert forked["stacks"][0]["frames"][0]["line"] == line_of(prog, "forked")
    main, server = python["stacks"]
    assert main["main"] and main["frames"][0]["function"] == "<module>"
    assert main["frames"][0]["line"] == line_of(prog, "main")
    assert (server["name"], server["daemon"], server["frames"][0]["function"]) == ("server", True, "serve_forever")
    assert shell["no_stack"] == "no stack (not a Python process, or not instrumented)"
    text = gsup.run("ps", "--stacks")
    assert text.returncode == 0 and f"session {session}" in text.stdout and "thread 'server' (daemon)" in text.stdout
    report = gsup.finished_report(run)
    assert (report["processes"][0]["end"]["how"], report["processes"][0]["end"]["code"]) == ("exited", 0)
    duration, fds = slept.read_text().split(" ", 1)
    assert float(duration) >= 2.0  # the sleep went on after the request
    assert fds == str(["0", "1", "2", "3"])  # no descriptor of the probe's left open (3: listdir's own)


def test_gsup_stacks_without_a_live_session_is_a_one_line_error(gsup: Gsup) -> None:
    result = gsup.run("stacks")
    assert result.returncode == 2
    assert result.stderr == "gsup: error: no live gsup session: start one with `gsup run`\n"
