"""gsup run's fixed cost: what it loads and when, so a short program does not pay for
what the run does not use (issue 17; the figure itself is measured by ``make bench``).

Read from the real command with ``PYTHONPROFILEIMPORTTIME``: every module gsup imports
is one line on its stderr (the guardian runs with ``-I`` and prints none).
"""

from __future__ import annotations

from tests.helpers import PYTHON, Gsup, Program

ONE_HANDLER = """
import atexit
atexit.register(lambda: None)
"""


def imported(stderr: str) -> list[str]:
    """The modules ``-X importtime`` names, in the order they were imported."""
    return [line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")][1:]


def test_a_run_off_a_terminal_never_imports_rich(gsup: Gsup, program: Program) -> None:
    """rich draws the live view; a run in CI or a script (stderr no terminal) never draws."""
    result = gsup.run("run", "--json", "--python", PYTHON, str(program(ONE_HANDLER)),
                      env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr
    modules = imported(result.stderr)
    assert "supervisor.runner" in modules
    assert not [m for m in modules if m.split(".")[0] == "rich"]
