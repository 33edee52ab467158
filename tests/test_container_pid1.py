"""Container mode: the program is PID 1 of a real PID namespace, and gsup reports what the kernel did.

Each case was first observed without gsup (``unshare --pid --fork python3 prog.py``,
then ``kill -TERM``/``-INT`` from outside): SIGTERM without a handler is dropped
and the process sleeps on until SIGKILL, with no atexit; with a handler it
runs; SIGINT reaches Python's own default handler, and CPython, unable to die
by its re-raised SIGINT as PID 1, exits 130.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest

from supervisor import procfs
from tests.helpers import INTERPRETERS, MARKED_SERVICE, PYTHON, Gsup, Program, role, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a PID namespace as root (see test_container_userns.py)")



def _run(gsup: Gsup, program: Program, tmp_path: Path, mode: str, *options: str,
         python: str = PYTHON) -> tuple[dict[str, Any], list[str]]:
    marks = tmp_path / "marks"
    result = gsup.run("run", "--json", "-q", "--python", python, *options, str(program(MARKED_SERVICE)), str(marks),
                      mode)
    assert result.returncode == 0, result.stderr
    return result.report, marks.read_text().split() if marks.exists() else []


@pytest.mark.parametrize("python", INTERPRETERS)
def test_term_without_handler_is_dropped_then_sigkill_at_the_grace(gsup: Gsup, program: Program, tmp_path: Path,
                                                                   python: str) -> None:
    report, marks = _run(gsup, program, tmp_path, "plain", "--stop", "docker", "--time", "1s", python=python)
    parent = role(report, "parent")
    term, kill = report["actions"]
    assert (term["signal"], term["dropped"]) == ("SIGTERM", [parent["pid"]])
    assert (kill["signal"], kill["by"]) == ("SIGKILL", "stop docker")
    assert kill["at"] - term["at"] >= 0.999  # both rounded to the millisecond
    assert parent["nspid"] == 1 and parent["end"]["signal"] == "SIGKILL"
    assert parent["handlers"][0]["status"] == "not-run" and marks == []
    assert report["container"] == {"mode": "namespace", "via": "root", "pid1": parent["pid"], "zombies": {},
                                   "init": None}
    assert parent["explanation"].startswith("killed by SIGKILL when docker stop's 1 s ran out; SIGTERM had been "
                                            "dropped by the kernel: PID 1 had no handler for it")
    assert "fix: a SIGTERM handler that exits, exec-form CMD, or --init (tini)" in parent["explanation"]
    # PID 1's probe names its files by the pid it knows itself by (1): its stacks are still found
    assert parent["stuck"]["kind"] != "no-stack", parent["stuck"]
    assert parent["stacks"][0]["frames"][0]["function"] == "<module>", parent["stacks"]


def test_term_with_a_handler_runs_it_and_atexit(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    report, marks = _run(gsup, program, tmp_path, "handler", "--stop", "docker", "--time", "20s")
    parent = role(report, "parent")
    assert [a["signal"] for a in report["actions"]] == ["SIGTERM"] and "dropped" not in report["actions"][0]
    assert parent["end"] == {"how": "exited", "code": 0, "signal": None, "reaped_by": "gsup"}
    assert marks == ["handler", "atexit"] and parent["nspid"] == 1


@pytest.mark.parametrize("python", INTERPRETERS)
def test_int_reaches_python_default_handler(gsup: Gsup, program: Program, tmp_path: Path, python: str) -> None:
    report, marks = _run(gsup, program, tmp_path, "plain", "--container", "--signal", "INT", python=python)
    parent = role(report, "parent")
    assert "dropped" not in report["actions"][0]
    # CPython re-raises SIGINT to die by it; as PID 1 that is dropped, so it exits 128+2.
    assert parent["end"]["how"] == "exited" and parent["end"]["code"] == 130
    assert parent["exception"] == "KeyboardInterrupt" and marks == ["atexit"]
    assert parent["explanation"].endswith("as PID 1 it could not die by the SIGINT CPython re-raises at the end "
                                          "(the kernel drops it: no handler), so CPython exited 130 instead")


def test_rich_view_marks_pid1_and_the_drop(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    result = gsup.run("run", "-q", "--python", PYTHON, "--stop", "docker", "--time", "500ms",
                      str(program(MARKED_SERVICE)), str(marks), "plain")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # rich wraps at the terminal's width
    assert "SIGTERM to parent" in text and "— dropped by the kernel (PID 1, no handler)" in text
    assert "PID 1 parent" in text and "a real PID namespace (made as root)" in text


def test_children_die_with_pid1_killed_by_the_kernel(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """PID 1 exits by its handler; its child (no handler of its own needed) is SIGKILLed by the kernel."""
    script = program("""
        import signal, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; open(%r, 'w').close(); time.sleep(60)"
                                  % sys.argv[1]])
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        time.sleep(60)
    """)
    ready = tmp_path / "child-ready"
    result = gsup.run("run", "--json", "-q", "--python", PYTHON, "--stop", "k8s", "--ready-file", str(ready),
                      str(script), str(ready))
    assert result.returncode == 0, result.stderr
    parent, child = role(result.report, "parent"), role(result.report, "child")
    assert parent["end"]["code"] == 0 and child["nspid"] > 1
    assert child["end"] == {"how": "signaled", "code": None, "signal": "SIGKILL", "reaped_by": "kernel"}
    assert child["explanation"].startswith(f"killed with SIGKILL by the kernel when PID 1 (pid {parent['pid']}) ended")
    assert [a["signal"] for a in result.report["actions"]] == ["SIGTERM"]  # gsup killed nothing itself


def test_container_off_keeps_an_ordinary_child(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    report, _ = _run(gsup, program, tmp_path, "plain", "--stop", "docker", "--container=off", "--time", "5s")
    parent = role(report, "parent")
    assert parent["end"]["signal"] == "SIGTERM" and "nspid" not in parent and report["container"] is None


def test_the_kernel_without_gsup(program: Program, tmp_path: Path) -> None:
    """The reference the cases above rest on, with util-linux's ``unshare`` and no gsup:
    SIGTERM to a Python PID 1 without a handler changes nothing; SIGKILL ends it, atexit unrun."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare (util-linux)")
    ready, marks = tmp_path / "ready", tmp_path / "marks"
    script = program(MARKED_SERVICE.replace("time.sleep(60)", f"open({str(ready)!r}, 'w').close()\n    time.sleep(60)"),
                     name="reference.py")
    outside = subprocess.Popen([unshare, "--pid", "--fork", "--kill-child", PYTHON, str(script), str(marks), "plain"])
    try:
        wait_until(ready.exists, what="PID 1 to start")
        (pid1,) = psutil.Process(outside.pid).children()
        assert procfs.status(pid1.pid).nspid[-1] == 1  # type: ignore[union-attr]
        pid1.send_signal(signal.SIGTERM)
        with pytest.raises(psutil.TimeoutExpired):
            pid1.wait(timeout=0.5)  # dropped: it sleeps on (were it delivered, it would be gone at once)
        pid1.kill()
        outside.wait(timeout=30)
    finally:
        outside.kill()
        outside.wait()
    assert not marks.exists()  # no atexit
