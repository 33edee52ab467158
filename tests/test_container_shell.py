"""Container mode: shell-form CMD (a shell as PID 1) and the zombies a PID 1 that is no init leaves.

Observed first without gsup: under ``unshare --pid --fork dash -c "python3 app.py"``
dash stays PID 1 (it does not exec the single command), SIGTERM to it is dropped
and the app never gets it; bash execs, so the app is PID 1 and its handler runs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import MARKED_SERVICE, PYTHON, Gsup, Program, role

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a PID namespace as root (see test_container_userns.py)")



def _shell_form(gsup: Gsup, program: Program, tmp_path: Path, shell: str, mode: str) -> tuple[dict[str, Any], str]:
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell} on PATH (apt-get install -y {shell})")
    marks = tmp_path / "marks"
    command = f"{PYTHON} {program(MARKED_SERVICE, name='app.py')} {marks} {mode}"
    result = gsup.run("run", "--json", "-q", "--stop", "docker", "--time", "1s", "--", shell, "-c", command)
    assert result.returncode == 0, result.stderr
    return result.report, marks.read_text() if marks.exists() else ""


@pytest.mark.parametrize("mode", ["plain", "handler"])
def test_dash_stays_pid1_and_the_app_never_gets_term(gsup: Gsup, program: Program, tmp_path: Path,
                                                     mode: str) -> None:
    report, marks = _shell_form(gsup, program, tmp_path, "dash", mode)
    shell, app = role(report, "parent"), role(report, "child")
    assert shell["argv"][0] == "dash" and shell["nspid"] == 1 and app["nspid"] > 1
    assert report["actions"][0]["dropped"] == [shell["pid"]]
    assert [(a["signal"], a["pids"]) for a in report["actions"]] == [("SIGTERM", [shell["pid"]]),
                                                                     ("SIGKILL", [shell["pid"]])]
    assert "shell-form CMD: dash is PID 1 and never passes SIGTERM on; app.py never got it" in shell["explanation"]
    assert 'fix: exec form (CMD ["python", "app.py"])' in shell["explanation"]
    assert app["end"] == {"how": "signaled", "code": None, "signal": "SIGKILL", "reaped_by": "kernel"}
    assert "the SIGTERM never reached it" in app["explanation"] and marks == ""


def test_bash_execs_so_the_app_is_pid1(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    report, marks = _shell_form(gsup, program, tmp_path, "bash", "handler")
    app = role(report, "parent")
    assert app["nspid"] == 1 and app["argv"][0] == PYTHON and app["end"]["code"] == 0
    assert marks.split() == ["handler", "atexit"]
    assert "shell" not in " ".join(p["explanation"] for p in report["processes"])


ORPHAN = """
        import os, signal, sys, time
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        child = os.fork()
        if child == 0:
            if os.fork() == 0:
                time.sleep(0.2)  # outlive the child, so this one is orphaned to PID 1
                os._exit(0)
            os._exit(0)
        os.waitpid(child, 0)
        while True:  # until the orphan has exited (WNOWAIT: left for PID 1 to reap, which it never does)
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT | os.WNOHANG)
            except ChildProcessError:
                break  # not PID 1: the orphan went to gsup's guardian, not to us
            if info is not None:
                break
            time.sleep(0.01)
        open(sys.argv[1], "w").close()
        time.sleep(60)
"""


def test_orphans_of_pid1_stay_zombies(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """A grandchild orphaned to PID 1 exits; a Python PID 1 never waits for it, so it stays a zombie."""
    script = program(ORPHAN)
    ready = tmp_path / "zombie"
    result = gsup.run("run", "--json", "-q", "--python", PYTHON, "--stop", "docker", "--ready-file", str(ready),
                      str(script), str(ready))
    assert result.returncode == 0, result.stderr
    report = result.report
    parent = role(report, "parent")
    assert report["container"]["zombies"] == {str(parent["pid"]): 1}
    assert parent["end"]["code"] == 0


def test_outside_a_container_gsup_reaps_orphans_and_says_so(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    ready = tmp_path / "zombie"
    result = gsup.run("run", "--json", "-q", "--python", PYTHON, "--signal", "TERM", "--ready-file", str(ready),
                      str(program(ORPHAN)), str(ready))
    assert result.returncode == 0, result.stderr
    orphan = next(p for p in result.report["processes"] if p["orphaned"])
    assert orphan["end"]["reaped_by"] == "gsup" and result.report["container"] is None
    assert orphan["explanation"].endswith("orphaned, it was reaped by gsup (in a container, PID 1 would have to, "
                                          "or it stays a zombie)")
