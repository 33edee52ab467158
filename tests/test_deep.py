"""``--deep``: children started with ``-I`` or ``-E`` load the probe too, and nothing is left behind.

Without it, the report says why such a child is blind and what to do.  With
it, the interpreter's site-packages is overlaid in a private mount namespace
(supervisor/deep.py): the tests check that the children are probed, that
they see the ``sys.path`` they see without gsup, that no mount and no file
outlives the run (a SIGKILLed gsup included), and that a user who may not
create a mount namespace gets one line and exit 2.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor import api, report
from supervisor.model import EXITED, End
from tests.helpers import (
    INTERPRETERS,
    NOBODY,
    Gsup,
    Program,
    nobody_python,
    nobody_workdir,
    ready_then_sleep,
    wait_for_pids,
    wait_until,
    write_program,
)

# Each child writes its sys.path to a file named after its flag, registers a handler, and
# lives long enough for gsup's tree snapshots to see its argv (unprobed, it says nothing itself).
CHILDREN = """
import subprocess, sys
for flag in ("-I", "-E", "-S"):
    code = ("import atexit, sys, time; open(%r, 'w').write(repr(sys.path)); atexit.register(print, 'bye');"
            "time.sleep(0.5)" % ("path" + flag))
    subprocess.run([sys.executable, flag, "-c", code], check=True)
"""
MOUNT_NAME = "gsup-deep"


def _by_flag(report: dict[str, object]) -> dict[str, dict[str, object]]:
    processes = report["processes"]
    assert isinstance(processes, list)
    return {p["argv"][1]: p for p in processes if p["argv"][1:2] in (["-I"], ["-E"], ["-S"])}


def _can_overlay() -> bool:
    """Whether this user may create a mount namespace (root, or CAP_SYS_ADMIN)."""
    done = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False) \
        if shutil.which("unshare") else None
    return done is not None and done.returncode == 0


needs_overlay = pytest.mark.skipif(not _can_overlay(), reason="needs the right to create a mount namespace")


def _site_packages(python: str) -> Path:
    ask = "import site; print([d for d in site.getsitepackages() if __import__('os').path.isdir(d)][0])"
    return Path(subprocess.run([python, "-I", "-c", ask], capture_output=True, text=True, check=True).stdout.strip())


def _no_trace(site_dir: Path, before: list[str]) -> None:
    assert sorted(os.listdir(site_dir)) == before
    assert MOUNT_NAME not in Path("/proc/self/mountinfo").read_text()


def test_without_deep_the_report_says_why_and_what_to_do(gsup: Gsup, program: Program) -> None:
    children = _by_flag(gsup.report(str(program(CHILDREN))))
    assert {flag: (p["instrumented"], p["uninstrumented_reason"]) for flag, p in children.items()} == {
        "-I": (False, "started with -I: Python ignores PYTHONPATH, so gsup's probe was not loaded; use --deep"),
        "-E": (False, "started with -E: Python ignores PYTHONPATH, so gsup's probe was not loaded; use --deep"),
        "-S": (False, "started with -S: Python skipped site, so gsup's probe was not loaded"),
    }


@needs_overlay
@pytest.mark.parametrize("python", INTERPRETERS)
def test_deep_probes_isolated_children_and_leaves_nothing(gsup: Gsup, program: Program, tmp_path: Path,
                                                          python: str) -> None:
    script = program(CHILDREN)
    site_dir = _site_packages(python)
    before = sorted(os.listdir(site_dir))
    subprocess.run([python, str(script)], cwd=tmp_path, check=True, capture_output=True)
    plain = {flag: (tmp_path / f"path{flag}").read_text() for flag in ("-I", "-E")}
    result = gsup.run("run", "--json", "--deep", "--python", python, str(script))
    assert result.returncode == 0, result.stderr
    children = _by_flag(result.report)
    assert [children[flag]["instrumented"] for flag in ("-I", "-E", "-S")] == [True, True, False]
    assert [h["status"] for h in children["-I"]["handlers"]] == ["ran"]
    assert {flag: (tmp_path / f"path{flag}").read_text() for flag in ("-I", "-E")} == plain  # sys.path unchanged
    _no_trace(site_dir, before)


@needs_overlay
def test_deep_leaves_nothing_when_gsup_is_sigkilled(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """The overlay lives in the program's own mount namespace: when gsup dies, its guardian ends
    the tree, the namespace's last process goes and the kernel drops the mounts with it."""
    (tmp_path / "pids").mkdir()
    code = "import os, time; open('pids/isolated-%d' % os.getpid(), 'w').close(); time.sleep(60)"
    script = program(f"import subprocess, sys\nsubprocess.run([sys.executable, '-I', '-c', {code!r}])\n")
    site_dir = _site_packages(sys.executable)
    before = sorted(os.listdir(site_dir))
    running = gsup.start("run", "-q", "--deep", "--python", sys.executable, str(script))
    pid = wait_for_pids(tmp_path / "pids", ("isolated",), "the -I child")["isolated"]
    assert MOUNT_NAME in Path(f"/proc/{pid}/mountinfo").read_text()
    assert MOUNT_NAME not in Path("/proc/self/mountinfo").read_text()  # never in gsup's own namespace
    running.send_signal(signal.SIGKILL)
    running.communicate(timeout=30)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), what="the -I child to be ended by the guardian")
    _no_trace(site_dir, before)


@needs_overlay
def test_matrix_and_the_api_pass_deep_on(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    child = "import atexit; atexit.register(print, 'bye')"
    script = program(f"import subprocess, sys\nsubprocess.run([sys.executable, '-I', '-c', {child!r}])\n"
                     + ready_then_sleep(tmp_path / "ready"))
    matrix = gsup.run("matrix", "--json", "--deep", "--signals", "TERM", "--targets", "parent",
                      "--ready-file", str(tmp_path / "ready"), "--python", sys.executable, str(script))
    assert matrix.returncode == 0, matrix.stderr
    [run] = matrix.report["runs"]
    assert all(p["instrumented"] for p in run["processes"])
    (tmp_path / "ready").unlink()
    report = api.Gsup(env=gsup.env, cwd=gsup.workdir).run(script, signal="TERM", ready_file=tmp_path / "ready",
                                                          deep=True)
    assert all(p.instrumented for p in report.processes)


def test_deep_without_the_right_fails_in_one_line() -> None:
    """As ``nobody`` (setpriv), gsup cannot create a mount namespace: one line, exit 2, nothing run.
    (And a script in a directory nobody may enter is bad input too, not an internal error.)"""
    python, nobody = nobody_python(), NOBODY
    with nobody_workdir() as (shared, env):
        probe = subprocess.run([*nobody, python, "-c", "import click, rich, psutil, supervisor"], env=env,
                               capture_output=True, check=False)
        if probe.returncode != 0:
            pytest.skip(f"nobody cannot run gsup with {python} here")
        script = write_program(shared / "prog.py", "open('ran', 'w').write('yes')\n")
        script.chmod(0o644)
        done = subprocess.run([*nobody, python, "-m", "supervisor", "run", "--deep", "--python", python, "prog.py"],
                              env=env, cwd=shared, capture_output=True, text=True, timeout=60, check=False)
        assert (done.returncode, done.stderr) == (2, "gsup: error: --deep cannot create a private mount namespace "
                                                     "(Operation not permitted): run gsup as root, or drop --deep\n")
        assert not (shared / "ran").exists()
        (shared / "private").mkdir()
        hidden = write_program(shared / "private" / "prog.py", "pass\n")
        (shared / "private").chmod(0o700)  # root's: nobody may not enter it
        done = subprocess.run([*nobody, python, "-m", "supervisor", "run", "--python", python, str(hidden)],
                              env=env, cwd=shared, capture_output=True, text=True, timeout=60, check=False)
        assert (done.returncode, done.stderr) == (2, f"gsup: error: {hidden}: not readable (permission denied)\n")


@pytest.mark.parametrize(("argv", "deep", "reason"), [
    (["python3", "-Wignore::ImportWarning", "x.py"], None, "its environment may not have carried"),
    (["python3", "-X", "dev", "-E", "x.py"], None, "started with -E: Python ignores PYTHONPATH"),
    (["python3", "-Im", "pip"], None, "started with -I: Python ignores PYTHONPATH"),
    (["python3", "-I", "-S", "x.py"], None, "started with -S: Python skipped site"),
    (["python3", "-I", "x.py"], "/opt/py/bin/python3", "started with -I: --deep reached only the site-packages of "
                                                     "/opt/py/bin/python3"),
    (["python3", "x.py", "-I"], None, "its environment may not have carried"),  # the script's own option
])
def test_the_reason_reads_only_the_interpreter_options(argv: list[str], deep: str | None, reason: str) -> None:
    exited = End(EXITED, code=0)  # lived and exited by itself: the reason rests on its command line alone
    assert reason in report._why_uninstrumented(argv, None, exited, None, deep)
