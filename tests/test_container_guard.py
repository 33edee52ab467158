"""Container mode keeps gsup's guarantees, and refuses clearly where no namespace can be made.

* gsup SIGKILLed mid-run: the guardian (PID 1's parent, outside the namespace)
  stops and kills the namespace, so nothing is left;
* as a normal user, the PID namespace is made inside a user namespace; where the
  kernel refuses that, one line says why and how to fix it, exit 2, and nothing
  falls back silently (``--container=emulate`` is the explicit way to go on).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from supervisor import namespaces
from tests.helpers import (
    NOBODY,
    PYTHON,
    Gsup,
    Program,
    nobody_python,
    nobody_workdir,
    wait_for_pids,
    wait_until,
    write_program,
)
from tests.test_guardian import NEEDED, TREE, _gone_within

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@ROOT_ONLY
def test_sigkilled_gsup_leaves_nothing_of_the_namespace(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    proc = gsup.start("run", "-q", "--container", "--python", PYTHON, str(program(TREE)), str(pids))
    wait_for_pids(pids, NEEDED, what="every process of the tree to start")  # their pids inside: 1, 2, ...
    assert pids.joinpath("root-1").exists()
    everyone = [p.pid for p in gsup.leftovers() if p.pid != proc.pid]  # host pids: the guardian and the tree
    assert len(everyone) >= 1 + len(NEEDED)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert _gone_within(everyone, 2.0) == []
    assert gsup.leftovers() == []




def _userns_allowed(python: str) -> bool:
    """Can an unprivileged user make a user namespace here?  (Asked of the kernel, as nobody.)"""
    probe = "import os, ctypes; os._exit(ctypes.CDLL(None).unshare(0x10000000) != 0)"
    return subprocess.run([*NOBODY, python, "-c", probe], capture_output=True, check=False, cwd="/").returncode == 0


def test_unprivileged_user_gets_a_pid_namespace_through_a_user_namespace() -> None:
    """As ``nobody`` (setpriv), with the system python3 (root's venv is out of its reach), as test_deep does."""
    python = nobody_python()
    if not _userns_allowed(python):
        pytest.skip("unprivileged user namespaces are refused on this machine (user.max_user_namespaces, "
                    "kernel.unprivileged_userns_clone or AppArmor)")
    with nobody_workdir() as (shared, env):
        script = write_program(shared / "prog.py", """
            import signal, sys, time
            signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))
            time.sleep(60)
        """)
        script.chmod(0o644)
        done = subprocess.run([*NOBODY, python, "-m", "supervisor", "run", "--json", "-q", "--python", python,
                               "--stop", "docker", str(script)], env=env, cwd=shared, capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
    assert report["container"]["via"] == "user-namespace"
    (parent,) = report["processes"]
    assert parent["nspid"] == 1 and parent["end"]["code"] == 3 and parent["instrumented"]


def test_refusal_is_one_line_with_the_cause_and_the_fix() -> None:
    line = namespaces.why_unavailable(1, namespaces.CLONE_NEWPID, as_root=True)
    assert "\n" not in line and line.startswith("cannot make a PID namespace although gsup runs as root")
    assert "--container=emulate" in line
    user = namespaces.why_unavailable(1, namespaces.CLONE_NEWPID | namespaces.CLONE_NEWNET, as_root=False)
    assert user.startswith("cannot make a PID+network namespace") and "\n" not in user


def test_emulate_models_the_drop_without_a_namespace(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """``--container=emulate``: no namespace; PID 1's rules from its masks, and said to be emulated."""
    script = program("""
        import atexit, sys, time
        atexit.register(lambda: open(sys.argv[1], "w").close())
        time.sleep(60)
    """)
    ran = tmp_path / "atexit-ran"
    result = gsup.run("run", "--json", "-q", "--python", PYTHON, "--stop", "docker", "--time", "500ms",
                      "--container=emulate", str(script), str(ran))
    assert result.returncode == 0, result.stderr
    report = result.report
    (parent,) = report["processes"]
    assert report["container"] == {"mode": "emulate", "via": None, "pid1": parent["pid"], "zombies": {}, "init": None}
    assert report["actions"][0]["dropped"] == [parent["pid"]] and "nspid" not in parent
    assert parent["end"]["signal"] == "SIGKILL" and not ran.exists()
    assert "SIGTERM had been dropped (emulated: the kernel's rule for PID 1)" in parent["explanation"]
    rich = gsup.run("report", report["session"])
    assert "dropped, emulated (PID 1, no handler)" in " ".join(rich.stdout.split())


@ROOT_ONLY
def test_rebuilt_report_names_pid1_by_its_host_pid(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """gsup SIGKILLed: the report rebuilt from the session's files still puts PID 1's probe record
    (written as pid 1) on the launched process's host pid."""
    ready = tmp_path / "ready"
    script = program(f"import atexit, time\natexit.register(print)\nopen({str(ready)!r}, 'w').close()\n"
                     "time.sleep(60)\n")
    proc = gsup.start("run", "-q", "--container", "--python", PYTHON, str(script))
    wait_until(ready.exists, what="the program to start")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    (session,) = [p.name for p in gsup.home.iterdir() if p.is_dir()]
    rebuilt = gsup.run("report", session, "--json")
    (root,) = rebuilt.report["processes"]
    assert root["role"] == "parent" and root["nspid"] == 1 and root["instrumented"]
    assert root["end"]["signal"] == "SIGKILL"
