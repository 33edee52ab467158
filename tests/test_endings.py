"""Every session ends in a defined state, which ``gsup report``, ``gsup kill`` and ``gsup ps --all`` say.

finished (the report was saved), could-not-start (with the reason and the exit
code ``gsup run`` gave), gsup-died (rebuilt from the session's files), or live:
never "unfinished" once gsup has left by itself.  State files written before
``state`` existed still read the same.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.helpers import PYTHON, Gsup, Program
from tests.test_bad_input import assert_usage_error, dead_pid, make_home, session_state, write_session


def not_startable(tmp_path: Path) -> Path:
    """An executable file the kernel cannot run (ENOEXEC): it passes gsup's checks, then fails to start."""
    path = tmp_path / "not-a-program"
    path.write_bytes(b"\x7fELF garbage\n")
    path.chmod(0o755)
    return path


def only_session(gsup: Gsup) -> Path:
    [directory] = [d for d in gsup.home.iterdir() if not d.name.startswith(".")]
    return directory


def test_a_command_that_cannot_start_ends_its_session(gsup: Gsup, tmp_path: Path) -> None:
    path = not_startable(tmp_path)
    reason = assert_usage_error(gsup.run("run", "--", str(path)), "cannot start", "Exec format error")
    directory = only_session(gsup)
    state = json.loads((directory / "session.json").read_text())
    assert (state["state"], state["exit_code"], state["finished"]) == ("could-not-start", 2, True)
    assert f"gsup: error: {state['reason']}" == reason
    for args in (["report"], ["report", directory.name], ["report", "--json", directory.name]):
        result = gsup.run(*args)
        assert_usage_error(result, f"session {directory.name} could not start", "Exec format error")
        assert result.stdout == ""
    assert_usage_error(gsup.run("kill", "--session", directory.name), "could not start", "nothing to signal")


def test_an_interrupted_start_keeps_its_exit_code(gsup: Gsup) -> None:
    directory = write_session(gsup, "9-abcd", session_state(
        "9-abcd", dead_pid(), root=None, finished=True, state="could-not-start", reason="interrupted",
        exit_code=130))
    result = gsup.run("report", directory.name)
    assert result.returncode == 130, result.stderr
    assert result.stderr == f"gsup: error: session {directory.name} could not start: interrupted\n"


def test_a_dead_gsup_is_rebuilt_with_the_duration_it_had(gsup: Gsup) -> None:
    directory = write_session(gsup, "9-dead", session_state("9-dead", dead_pid(), root=None))
    (directory / "exits.jsonl").write_text(json.dumps({"pid": 4242, "code": 0, "signal": None, "at": 0.75}) + "\n")
    result = gsup.run("report", "--json", directory.name)
    assert result.returncode == 3, result.stderr
    report = result.report
    assert report["incomplete"] == [f"gsup (pid {session_gsup(directory)}) died before writing the report; "
                                    "rebuilt from the session's files"]
    assert report["duration"] == 0.75  # the last thing recorded, not the time since launch


def session_gsup(directory: Path) -> int:
    return int(json.loads((directory / "session.json").read_text())["gsup"]["pid"])


def test_gsup_leaving_after_launch_says_why(gsup: Gsup) -> None:
    directory = write_session(gsup, "9-1ef7", session_state("9-1ef7", dead_pid(), finished=True, state="gsup-died",
                                                            reason="MemoryError: ", exit_code=3))
    result = gsup.run("report", "--json", directory.name)
    assert result.returncode == 3, result.stderr
    assert result.report["incomplete"] == [f"gsup (pid {session_gsup(directory)}) stopped before writing the "
                                           "report (MemoryError: ); rebuilt from the session's files"]


def test_state_files_without_state_read_as_before(gsup: Gsup, program: Program) -> None:
    result = gsup.run("run", "--json", "--python", PYTHON, str(program("print('hi')\n")))
    assert result.returncode == 0, result.stderr
    directory = only_session(gsup)
    state = json.loads((directory / "session.json").read_text())
    assert (state["state"], state["finished"]) == ("finished", True)
    for key in ("state", "reason", "exit_code"):
        del state[key]
    (directory / "session.json").write_text(json.dumps(state))
    again = gsup.run("report", "--json", directory.name)
    assert again.returncode == 0, again.stderr
    assert again.report == result.report


def test_ps_all_says_how_every_session_ended(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    assert gsup.run("run", "--json", "--python", PYTHON, str(program("print('hi')\n"))).returncode == 0
    finished = only_session(gsup).name
    assert gsup.run("run", "--", str(not_startable(tmp_path))).returncode == 2
    [failed] = [d.name for d in gsup.home.iterdir() if d.name not in (finished,) and not d.name.startswith(".")]
    write_session(gsup, "9-dead", session_state("9-dead", dead_pid()))
    make_home(gsup)
    result = gsup.run("ps", "--all")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"session {finished}  finished  ") for line in lines), lines
    assert any(line.startswith(f"session {failed}  could not start: ") and "Exec format error" in line
               for line in lines), lines
    assert any(line.startswith("session 9-dead  gsup died  ") for line in lines), lines
    assert os.path.isdir(gsup.home)
