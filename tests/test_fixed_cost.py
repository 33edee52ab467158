"""gsup run's fixed cost: what it loads and when, so a short program does not pay for
what the run does not use (issue 17; the figure itself is measured by ``make bench``).

Read from the real command with ``PYTHONPROFILEIMPORTTIME``: every module gsup imports
is one line on its stderr (the guardian runs with ``-I`` and prints none).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from supervisor import guardian, launch
from tests.helpers import PYTHON, Gsup, Program

ONE_HANDLER = """
import atexit
atexit.register(lambda: None)
"""


def imported(stderr: str) -> list[str]:
    """The modules ``-X importtime`` names, in the order they were imported."""
    return [line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")][1:]


@pytest.fixture
def run_imports(gsup: Gsup, program: Program) -> list[str]:
    """What ``gsup run --json --python PY prog.py`` imports, stderr no terminal, no --junit."""
    result = gsup.run("run", "--json", "--python", PYTHON, str(program(ONE_HANDLER)),
                      env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr
    modules = imported(result.stderr)
    assert "supervisor.runner" in modules and "supervisor.tree" in modules
    return modules


@pytest.mark.parametrize(("module", "why"), [
    ("rich", "it draws the live view, and a run in CI or a script (stderr no terminal) never draws"),
    ("psutil", "the tree is read from /proc (procfs.py, held to psutil's arithmetic by test_ps_fast)"),
    ("subprocess", "only -m's pre-flight check and --deep run a child of gsup's own"),
    ("supervisor.junit", "only --junit writes XML"),
    ("click", "an ordinary gsup run line is read by supervisor.run_args (click costs 3 interpreter start-ups)"),
    ("supervisor.cli", "the click command is for the lines run_args leaves to click"),
    ("dataclasses", "supervisor.records: dataclasses imports inspect, ast, dis and tokenize"),
    ("inspect", "nothing of a run needs it (dataclasses and click were what imported it)"),
    ("typing", "annotations only (TYPE_CHECKING): importing typing costs a tenth of Python's start-up"),
    ("linecache", "only stacks shown need source lines (it imports tokenize)"),
    ("ctypes", "prctl is called through _ctypes (supervisor.reaper.prctl): ctypes' Python half costs ~2 ms"),
])
def test_a_run_never_imports_what_it_does_not_use(run_imports: list[str], module: str, why: str) -> None:
    assert not [m for m in run_imports if m == module or m.startswith(module + ".")], why


def test_what_launching_needs_loads_no_psutil_and_no_report() -> None:
    """Launch early, import late (supervisor/runner.py): the modules a run imports before the
    guardian starts leave psutil, the tree and the report to be imported while it starts."""
    late = ("psutil", "supervisor.tree", "supervisor.report", "supervisor.explain", "supervisor.phases.act",
            "shutil", "subprocess")
    code = ("import sys\nimport supervisor.cli, supervisor.display, supervisor.runner\n"
            "from supervisor import expect, launch, options, stops\n"
            f"print(' '.join(m for m in {late!r} if m in sys.modules))")
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == []


def test_the_guardian_starts_the_program_before_importing_json() -> None:
    """json imports re (~6 ms before the program could start); the guardian's status lines
    need neither, and the loader imports it as a module, from its compiled bytecode.  Nor
    enum, which signal imports: the guardian uses _signal's plain ints; nor ctypes (its
    prctl goes through _ctypes), once it has armed its prctl settings."""
    code = (f"import sys\nsys.argv[1:] = [{launch.GUARDIAN!r}]\n{launch.GUARDIAN_LOADER.split('; import')[0]}\n"
            "import guardian\nguardian.Guardian(0, 0.0, '.').prepare()\n"
            "print(guardian.__file__, 're' in sys.modules, 'json' in sys.modules, "
            "'enum' in sys.modules, 'ctypes' in sys.modules)")
    done = subprocess.run([PYTHON, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == [launch.GUARDIAN, "False", "False", "False", "False"]


@pytest.mark.parametrize("record", [
    {"spawned": 12, "at": 1.5}, {"pid": 3, "code": None, "signal": 9, "at": 12345.678901234},
    {"empty": True, "at": 0.1}, {"error": 'no "such" file \u00e9', "at": 2.0},
    {"signal": "SIGKILL", "signum": 9, "target": "tree", "pids": [1, 2], "at": 0.5, "by": "guardian"},
])
def test_the_guardians_lines_are_json_dumps(record: dict[str, object]) -> None:
    assert guardian.dumps(record) == json.dumps(record)


LEAVE = """
import atexit, sys
from supervisor import console
atexit.register(lambda: sys.stderr.write("finalized\\n"))
print("report", end="")  # still buffered: leave() must flush it
console.leave(SystemExit({code!r}))
"""


@pytest.mark.parametrize(("code", "status"), [(0, 0), (3, 3), (None, 0)])
def test_leaving_skips_finalization_and_keeps_the_output(code: object, status: int) -> None:
    """A run's report is out and saved: the interpreter's teardown (0.75x its start-up) is skipped."""
    done = subprocess.run([PYTHON, "-c", LEAVE.format(code=code)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (status, "report", "")


def test_leaving_with_a_message_or_a_failed_flush_takes_the_normal_way_out() -> None:
    done = subprocess.run([PYTHON, "-c", LEAVE.format(code="why")], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (1, "why\nfinalized\n")
    reader_gone = LEAVE.format(code=0).replace('print("report", end="")', 'import os; os.close(1); print("x")')
    done = subprocess.run([PYTHON, "-c", reader_gone], capture_output=True, text=True, timeout=60)
    assert "finalized" in done.stderr
