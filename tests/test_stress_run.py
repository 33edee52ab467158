"""``make stress`` as CI runs it: the seed comes first, and a printed replay command runs the same scenarios.

The stress run itself is ``tests/stress/stress.py`` (``.ci/run`` runs it on a
fresh seed); here two scenarios check what a CI log reader relies on.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from tests.helpers import PYTHON, ROOT

STRESS = ROOT / "tests" / "stress"


def test_the_replay_command_runs_the_same_scenarios_and_the_seed_is_printed_first(tmp_path: Path) -> None:
    command = subprocess.run([PYTHON, "-c", "import stress; print(stress.again(7, \"\", [3, 5]))"], cwd=STRESS,
                             capture_output=True, text=True, check=True).stdout.strip()
    argv = shlex.split(command)
    assert argv[1:] == [str(STRESS / "stress.py"), "--seed", "7", "--only", "3", "--only", "5"]
    done = subprocess.run([*argv, "--dir", str(tmp_path)], capture_output=True, text=True, timeout=300, check=False)
    lines = done.stdout.splitlines()
    assert lines[0] == f"stress: seed 7, 2 scenarios on 1 interpreter(s), in {tmp_path}"
    assert re.fullmatch(r"stress: 2 scenarios, 0 leftovers, 0 missing, 0 invented, 0 crashes, 0 probe outputs "
                        r"\(seed 7, \d+ s\)", lines[-1]), done.stdout
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_replay_keeps_the_interpreters_of_the_run() -> None:
    """With --pythons the plan draws from more interpreters: a replay without it would run other scenarios."""
    command = subprocess.run([PYTHON, "-c", "import stress; print(stress.again(7, \" --pythons\", [3]))"], cwd=STRESS,
                             capture_output=True, text=True, check=True).stdout
    assert shlex.split(command)[2:] == ["--pythons", "--seed", "7", "--only", "3"]


def test_ci_runs_the_stress_run() -> None:
    """At least 100 scenarios, part of them on pyenv's interpreters."""
    [line] = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("make stress")]
    scenarios = int(re.search(r"--scenarios (\d+)", line).group(1))  # type: ignore[union-attr]
    assert scenarios >= 100 and "--pythons" in line
