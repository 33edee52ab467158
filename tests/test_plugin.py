"""The pytest plugin, as a user meets it: a fresh project whose tests use the
``gsup`` fixture, run by a real ``python -m pytest`` in a subprocess.

(Inside this repository, tests/conftest.py defines its own ``gsup`` fixture,
which overrides the plugin's; the project here has no conftest.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from supervisor.pytest_plugin import end_processes, processes_where
from tests.helpers import FORKED, write_program

APP = FORKED.replace("    os.waitpid(pid, 0)", """\
    if os.environ.get("MARKER"):
        open(os.environ["MARKER"], "w").close()
    os.waitpid(pid, 0)""")

TESTS = '''
import os
import signal
import threading
import time

import pytest

from supervisor import RunTimeout


def test_child_handler_runs_on_sigint(gsup):
    report = gsup.run("app.py", signal="INT", target="child", grace=2, settle=0.2)
    assert report.ok
    assert report.role("child").fired == ["child_cleanup"]
    assert report.role("parent").end.code == 0


def test_deliberately_failing(gsup):
    report = gsup.run("app.py", signal="KILL", target="child", grace=2, settle=0.2)
    assert report.role("child").fired == ["child_cleanup"]


def test_timeout(gsup):
    with pytest.raises(RunTimeout):
        gsup.run("app.py", timeout=1)  # never signalled: it would run for ever


def test_interrupted(gsup, tmp_path):
    marker = tmp_path / "running"

    def interrupt():
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, once the program runs

    threading.Thread(target=interrupt, daemon=True).start()
    gsup.run("app.py", env={"MARKER": str(marker)})
'''


def inner_pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    project = tmp_path / "project"
    project.mkdir()
    write_program(project / "app.py", APP)
    (project / "test_app.py").write_text(TESTS.lstrip())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GSUP_"))}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--basetemp",
                           str(tmp_path / "basetemp"), "-q", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def left_running(tmp_path: Path) -> list[psutil.Process]:
    """Processes started with a session home under the inner run's temporary directory."""
    marker = str(tmp_path / "basetemp")
    found = processes_where(lambda environ: environ.get("GSUP_HOME", "").startswith(marker))
    end_processes(found)
    return found


def test_fixture_passes_fails_readably_and_times_out(tmp_path: Path) -> None:
    done = inner_pytest(tmp_path, "-k", "not interrupted")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed, 2 passed" in done.stdout
    assert "FAILED test_app.py::test_deliberately_failing" in done.stdout
    assert "assert [] == ['child_cleanup']" in done.stdout  # pytest's own rewriting, on gsup's typed report
    assert left_running(tmp_path) == []


def test_ctrl_c_inside_a_test_leaves_nothing_running(tmp_path: Path) -> None:
    done = inner_pytest(tmp_path, "-k", "interrupted")
    assert done.returncode == 2, done.stdout + done.stderr  # pytest: interrupted
    assert "KeyboardInterrupt" in done.stdout
    assert (tmp_path / "basetemp" / "test_interrupted0" / "running").exists()  # it was interrupted mid-run
    assert left_running(tmp_path) == []


def test_plugin_is_installed_and_light() -> None:
    """The entry point is there, and loading the plugin imports nothing of gsup's API."""
    code = ("import sys, supervisor.pytest_plugin; "
            "print(sorted(m for m in sys.modules if m.startswith(('supervisor.', 'rich', 'psutil'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['supervisor.pytest_plugin']"
    from importlib.metadata import entry_points

    assert "supervisor.pytest_plugin" in [e.value for e in entry_points(group="pytest11")]
