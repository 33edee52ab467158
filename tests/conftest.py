"""Test harness: the fixtures that run the real ``gsup`` command on real programs.

Every test gets its own session home (``GSUP_HOME``), and after it the harness
checks that no process that carried that home's probe environment is still
alive: a leftover fails the test (and is killed, so one failure does not
cascade).  The helpers themselves (running gsup, reading its JSON, waiting on
files with deadlines) are plain functions in ``tests/helpers.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.pytest_plugin import end_processes
from tests.helpers import Gsup, Program, check_saved, write_program


@pytest.fixture
def gsup(tmp_path: Path) -> Iterator[Gsup]:
    home = tmp_path / "gsup-home"
    runner = Gsup(home, tmp_path)
    yield runner
    for proc in runner.started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = runner.leftovers()
    end_processes(left)
    assert not left, f"processes left running: {[(p.pid, p.info if hasattr(p, 'info') else '') for p in left]}"
    for saved in sorted(home.glob("*/report.json")):  # also covers runs whose stdout the test read itself
        check_saved(saved, home)


@pytest.fixture
def program(tmp_path: Path) -> Program:
    """Write a program from a dedented source into the test's directory; returns its path."""

    def write(source: str, name: str = "prog.py") -> Path:
        return write_program(tmp_path / name, source)

    return write
