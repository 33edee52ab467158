"""Bad input to the real ``gsup`` command: exit 2 and one line, never a traceback.

Every case runs the installed ``gsup`` through the ``gsup`` fixture, which also
fails the test if any process of the run is left behind.  A program that fails
on its own is *not* bad input: gsup reports it and exits 0.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PYTHON, Gsup, Program, Result, role

SLEEPER = """
import time
time.sleep({seconds})
"""


def assert_usage_error(result: Result, *needles: str) -> str:
    """Exit 2, exactly one stderr line ``gsup: error: ...`` containing every needle; that line."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    [message] = lines
    assert message.startswith("gsup: error: "), message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


def make_home(gsup: Gsup) -> Path:
    gsup.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return gsup.home


def write_session(gsup: Gsup, session_id: str, content: str | dict[str, Any]) -> Path:
    directory = make_home(gsup) / session_id
    directory.mkdir(mode=0o700)
    (directory / "events").mkdir(mode=0o700)
    text = content if isinstance(content, str) else json.dumps(content)
    (directory / "session.json").write_text(text)
    return directory


def dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def session_state(session_id: str, gsup_pid: int, **changes: Any) -> dict[str, Any]:
    """What ``Session.save`` writes (schema gsup.session/1)."""
    state: dict[str, Any] = {
        "schema": "gsup.session/1",
        "id": session_id,
        "command": ["python", "app.py"],
        "gsup": {"pid": gsup_pid, "create_time": 1000.0},
        "root": {"pid": gsup_pid + 1, "create_time": 1000.5},
        "pgid": gsup_pid + 1,
        "started": 1700000000.0,
        "launched": 12.5,
        "finished": False,
    }
    state.update(changes)
    return state


# -- nothing to run ---------------------------------------------------------------


def test_missing_script(gsup: Gsup) -> None:
    assert_usage_error(gsup.run("run", "--python", PYTHON, "missing.py"), "missing.py", "no such file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a chmod 000 file")
def test_unreadable_script(gsup: Gsup, program: Program) -> None:
    path = program("print('hi')\n")
    path.chmod(0)
    try:
        assert_usage_error(gsup.run("run", "--python", PYTHON, str(path)), str(path), "not readable")
    finally:
        path.chmod(0o644)


def test_directory_instead_of_script(gsup: Gsup, tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    assert_usage_error(gsup.run("run", "--python", PYTHON, "adir"), "adir", "is a directory")


def test_unknown_module(gsup: Gsup) -> None:
    assert_usage_error(gsup.run("run", "--python", PYTHON, "-m", "no_such_module_xyz"),
                       "unknown module", "no_such_module_xyz")


def test_command_not_found(gsup: Gsup) -> None:
    assert_usage_error(gsup.run("run", "--", "no-such-command-xyz"), "no-such-command-xyz", "command not found")


def test_bad_python(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    path = program("print('hi')\n")
    missing = str(tmp_path / "no-python")
    assert_usage_error(gsup.run("run", "--python", missing, str(path)), missing, "not an executable file")


def test_nothing_to_run(gsup: Gsup) -> None:
    assert_usage_error(gsup.run("run"), "nothing to run")
    assert_usage_error(gsup.run("run", "--python", PYTHON), "nothing to run")
    assert_usage_error(gsup.run("run", "--"), "nothing to run")


# -- invalid values ---------------------------------------------------------------


def test_invalid_signal(gsup: Gsup, program: Program) -> None:
    path = program(SLEEPER.format(seconds=0))
    assert_usage_error(gsup.run("run", "--signal", "FOO", "--python", PYTHON, str(path)), "invalid signal", "'FOO'")


def test_invalid_target(gsup: Gsup, program: Program) -> None:
    path = program(SLEEPER.format(seconds=0))
    result = gsup.run("run", "--signal", "TERM", "--target", "kid", "--python", PYTHON, str(path))
    assert_usage_error(result, "invalid target", "'kid'")


@pytest.mark.parametrize(("option", "value"), [("--grace", "3x"), ("--settle", "soon"), ("--after", "-1")])
def test_invalid_duration(gsup: Gsup, program: Program, option: str, value: str) -> None:
    path = program(SLEEPER.format(seconds=0))
    result = gsup.run("run", "--signal", "TERM", option, value, "--python", PYTHON, str(path))
    assert_usage_error(result, "invalid duration", repr(value))
    assert not list(gsup.home.glob("*/session.json")), "nothing should have been run"


@pytest.mark.parametrize("extra", [["--target", "child"], ["--after", "1s"]])
def test_target_or_after_without_signal(gsup: Gsup, program: Program, extra: list[str]) -> None:
    path = program(SLEEPER.format(seconds=0))
    assert_usage_error(gsup.run("run", *extra, "--python", PYTHON, str(path)), "need --signal")


def test_kill_invalid_values(gsup: Gsup) -> None:
    assert_usage_error(gsup.run("kill", "--signal", "NOPE"), "invalid signal", "'NOPE'")
    assert_usage_error(gsup.run("kill", "--target", "pid:x"), "invalid target", "'pid:x'")
    assert_usage_error(gsup.run("kill", "--wait", "--timeout", "3x"), "invalid duration", "'3x'")


# -- the target is not there (the program does run) --------------------------------


def test_target_pid_not_in_tree(gsup: Gsup, program: Program) -> None:
    path = program(SLEEPER.format(seconds=3))
    result = gsup.run("run", "-q", "--json", "--signal", "TERM", "--target", "pid:1", "--after", "200ms",
                      "--python", PYTHON, str(path), timeout=60)
    report = result.report  # the report still comes out, complete and parseable
    assert report["schema"] == "gsup.report/1"
    assert report["complete"] is True
    parent = role(report, "parent")
    assert parent["end"]["how"] != "left-running"
    assert_usage_error(result, "pid 1", "not in the tree", f"{parent['pid']} (parent)")


def test_target_child_without_children(gsup: Gsup, program: Program) -> None:
    path = program(SLEEPER.format(seconds=3))
    result = gsup.run("run", "-q", "--json", "--signal", "TERM", "--target", "child", "--python", PYTHON, str(path),
                      timeout=60)
    report = result.report
    assert report["complete"] is True
    parent = role(report, "parent")
    assert_usage_error(result, "no child", f"{parent['pid']} (parent)")


# -- gsup kill without a session to act on ------------------------------------------


def test_kill_without_any_session(gsup: Gsup) -> None:
    assert_usage_error(gsup.run("kill"), "no live gsup session")
    make_home(gsup)
    assert_usage_error(gsup.run("kill", "--signal", "KILL"), "no live gsup session")


def test_kill_unknown_session(gsup: Gsup) -> None:
    assert_usage_error(gsup.run("kill", "--session", "nosuchid"), "no such session", "'nosuchid'")
    make_home(gsup)
    for bad in ["nosuchid", "../etc", ".hidden", "a/b"]:
        assert_usage_error(gsup.run("kill", "--session", bad), "no such session")


def test_kill_stale_session(gsup: Gsup) -> None:
    pid = dead_pid()
    write_session(gsup, "stale-1", session_state("stale-1", pid))
    assert_usage_error(gsup.run("kill"), "no live gsup session")
    assert_usage_error(gsup.run("kill", "--session", "stale-1"), "stale session stale-1", f"pid {pid}")


def test_kill_finished_session(gsup: Gsup) -> None:
    write_session(gsup, "done-1", session_state("done-1", os.getpid(), finished=True))
    assert_usage_error(gsup.run("kill", "--session", "done-1"), "session done-1 has finished")


@pytest.mark.parametrize("content", [
    "{not json",
    "",
    "\x00\x01\x02",
    '{"schema": "gsup.session/1"}',
    json.dumps(session_state("bad-1", 1, gsup={"pid": "x", "create_time": 0})),
    json.dumps(session_state("bad-1", 1, gsup=[1, 2])),
    json.dumps(session_state("bad-1", 1, command=None)),
], ids=["garbage", "empty", "binary", "schema-only", "bad-pid", "gsup-list", "bad-command"])
def test_kill_malformed_session(gsup: Gsup, content: str) -> None:
    write_session(gsup, "bad-1", content)
    assert_usage_error(gsup.run("kill"), "no live gsup session")
    assert_usage_error(gsup.run("kill", "--session", "bad-1"), "malformed session file", "bad-1")


@pytest.mark.parametrize("content", ["[1, 2, 3]", "null", "42", '"text"'])
def test_session_file_not_an_object(gsup: Gsup, content: str) -> None:
    write_session(gsup, "bad-1", content)
    ps = gsup.run("ps")
    assert (ps.returncode, ps.stdout.strip()) == (0, "no live gsup session"), ps.stderr
    assert_usage_error(gsup.run("kill"), "no live gsup session")
    assert_usage_error(gsup.run("kill", "--session", "bad-1"), "malformed session file", "bad-1")


def test_kill_foreign_session(gsup: Gsup) -> None:
    write_session(gsup, "foreign-1", session_state("foreign-1", os.getpid(), schema="other.tool/7"))
    assert_usage_error(gsup.run("kill"), "no live gsup session")
    assert_usage_error(gsup.run("kill", "--session", "foreign-1"), "malformed session file", "not written by")


def test_ps_skips_stale_and_malformed_sessions(gsup: Gsup) -> None:
    write_session(gsup, "stale-2", session_state("stale-2", dead_pid()))
    write_session(gsup, "bad-2", "{garbage")
    result = gsup.run("ps")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no live gsup session"
    assert result.stderr == ""


# -- the program failing on its own is not a gsup error -----------------------------


def run_failing(gsup: Gsup, path: Path) -> dict[str, Any]:
    result = gsup.run("run", "--json", "--python", PYTHON, str(path))
    assert result.returncode == 0, result.stderr
    assert "gsup: error" not in result.stderr
    report = result.report
    assert report["complete"] is True
    return role(report, "parent")


def test_program_with_syntax_error(gsup: Gsup, program: Program) -> None:
    parent = run_failing(gsup, program("def broken(:\n    pass\n"))
    assert parent["end"]["how"] == "exited"
    assert parent["end"]["code"] == 1
    assert parent["exception"] == "SyntaxError"


def test_program_raising_at_import(gsup: Gsup, program: Program) -> None:
    parent = run_failing(gsup, program("raise LookupError('boom at import')\n"))
    assert parent["end"] == {"how": "exited", "code": 1, "signal": None, "reaped_by": "gsup"}
    assert parent["exception"] == "LookupError"
    assert "LookupError" in parent["explanation"]


def test_program_exiting_3(gsup: Gsup, program: Program) -> None:
    parent = run_failing(gsup, program("import sys\nsys.exit(3)\n"))
    assert parent["end"]["how"] == "exited"
    assert parent["end"]["code"] == 3
    assert parent["exception"] is None


@pytest.mark.parametrize("bad", ["", ".", "..", "/", "a/../..", " ", "-", "\udcff\udcfe", "a" * 255, "a" * 300,
                                 "a" * 5000], ids=["empty", "dot", "dotdot", "slash", "up", "space", "dash",
                                                   "non-utf8", "255", "300", "5000"])
def test_any_session_id_is_no_such_session(gsup: Gsup, program: Program, bad: str) -> None:
    """Whatever argv can carry (NUL cannot) is one line and exit 2, never ENAMETOOLONG
    or the newest session passed off as the one asked for."""
    assert gsup.run("run", "--python", PYTHON, str(program("print('hi')\n"))).returncode == 0
    for args in (["kill", "--session", bad], ["report", bad], ["report", "--json", bad]):
        message = assert_usage_error(gsup.run(*args), "no such session")
        assert len(message) < 120, message


@pytest.mark.parametrize(("command", "typo", "meant"), [
    ("run", "--sigal", "--signal"), ("matrix", "--signal", "--signals"), ("run", "--grase", "--grace")])
def test_an_unknown_option_before_the_program_is_a_typo_not_a_file(gsup: Gsup, program: Program, command: str,
                                                                  typo: str, meant: str) -> None:
    """Everything from the program on is the program's; before it, an unknown option is a usage error."""
    script = program("open('ran', 'w').close()")
    result = gsup.run(command, typo, "KILL", "--python", PYTHON, str(script))
    assert_usage_error(result, f"No such option '{typo}'", "Did you mean", f"'{meant}'")  # one of, or alone
    assert not (gsup.workdir / "ran").exists() and not (script.parent / "ran").exists()


def test_options_after_the_program_are_the_programs(gsup: Gsup, program: Program) -> None:
    script = program("import sys; print(sys.argv[1:])")
    result = gsup.run("run", "-q", "--python", PYTHON, str(script), "--sigal", "-x")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("['--sigal', '-x']\n")


def test_bare_gsup_prints_the_help_and_succeeds(gsup: Gsup) -> None:
    result = gsup.run()
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("Usage: gsup [OPTIONS] [COMMAND] [ARGS]...") and "Commands:" in result.stdout


@pytest.mark.parametrize("command", ["run", "matrix"])
def test_usage_shows_the_program_as_required(gsup: Gsup, command: str) -> None:
    result = gsup.run(command, "--help")
    assert result.stdout.startswith(f"Usage: gsup {command} [OPTIONS] PROGRAM [ARGS]...\n")


@pytest.mark.parametrize(("words", "offered"), [
    ("gsup run --stop d", ["docker", "docker-init"]),
    ("gsup run -s SIGTE", []),  # names are offered as typed most often: TERM, not SIGTERM
    ("gsup run -s TE", ["TERM"]),
    ("gsup run -t ", ["parent", "child", "group", "tree", "pid:"]),
    ("gsup kill --target ch", ["child"]),
])
def test_shell_completion_offers_presets_signals_and_targets(gsup: Gsup, words: str, offered: list[str]) -> None:
    env = {"_GSUP_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    result = gsup.run(env=env)
    assert result.stdout.split() == [f"plain,{value}" for value in offered]


def test_shell_completion_offers_files_for_the_program(gsup: Gsup) -> None:
    env = {"_GSUP_COMPLETE": "bash_complete", "COMP_WORDS": "gsup run ap", "COMP_CWORD": "2"}
    assert gsup.run(env=env).stdout.split() == ["file,ap"]
