"""The ``gsup`` pytest fixture: the Python API, one private session home per test.

    def test_child_cleans_up(gsup):
        report = gsup.run("app.py", signal="TERM", target="child")
        assert report.role("child").own_fired == ["close_db"]

Installed with gsup (entry point ``pytest11``), so every test suite of an
environment that has gsup can use it.  This module is imported by every pytest
start-up of that environment: it imports nothing of gsup until a test asks for
the fixture.

At teardown, even after a failure, a timeout or Ctrl-C, every gsup the test
started is ended (as ``gsup_child.end_gsup`` does: gsup ends its tree and reports),
then any process still carrying the test's session home is killed, so a
test never leaves a server behind to hold the next test's port.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import pytest

if TYPE_CHECKING:
    import psutil

    from supervisor.api import Gsup


@pytest.fixture
def gsup(tmp_path: Path) -> Iterator[Gsup]:
    """gsup's API (``run``, ``matrix``) with its sessions under this test's ``tmp_path``."""
    from supervisor.api import Gsup

    home = tmp_path / "gsup-home"
    bound = Gsup(env={"GSUP_HOME": str(home)})
    try:
        yield bound
    finally:
        bound.close()
        _kill_leftovers(home)


def _kill_leftovers(home: Path) -> None:
    """Kill what still runs with this home in its environment: gsup, its guardian
    or the program (when gsup itself had to be SIGKILLed, its tree may outlive it)."""
    marker = str(home)
    end_processes(processes_where(lambda environ: environ.get("GSUP_HOME") == marker))


def processes_where(matches: Callable[[dict[str, str]], bool]) -> list[psutil.Process]:
    """Every process of the machine whose environment ``matches``: the environment is
    what a run's processes keep, whoever their parent has become (gsup's own tests find
    their leftovers with it too)."""
    import psutil

    found = []
    for proc in psutil.process_iter():
        try:
            environ = proc.environ()
        except psutil.Error:
            continue
        if matches(environ):
            found.append(proc)
    return found


def end_processes(found: list[psutil.Process]) -> None:
    """SIGKILL each of ``found`` (one already gone is fine), then wait up to 5 s for all of them."""
    import psutil

    for proc in found:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(found, timeout=5)
