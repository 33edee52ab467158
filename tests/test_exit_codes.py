"""gsup's exit codes (``supervisor.errors.ExitCode``), each reached for real.

0: the report is complete, whatever the program did.  1: an --expect did not
hold.  2: bad input.  3: gsup failed part-way.  130: gsup was interrupted
before it could report.  When several apply: 2, then 4, then 3, then 1.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from supervisor.errors import ExitCode, GsupError
from tests.helpers import PYTHON, Gsup, Program, error_lines, lose_session_mid_run, ready_then_sleep, role, wait_until


def one_error_line(stderr: str) -> str:
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


def test_exit_code_values_are_as_documented() -> None:
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0, "EXPECTATION_FAILED": 1, "USAGE": 2, "INCOMPLETE": 3, "NOT_READY": 4, "INTERRUPTED": 130,
        "OUTPUT_CLOSED": 141}
    assert GsupError("x").exit_code is ExitCode.USAGE
    assert GsupError("x", ExitCode.INCOMPLETE).exit_code is ExitCode.INCOMPLETE


# -- 0 ------------------------------------------------------------------------------


def test_ok_when_the_program_ends_by_itself(gsup: Gsup, program: Program) -> None:
    path = program("import sys\nprint('out')\nsys.exit(5)\n")
    result = gsup.run("run", "--json", "--python", PYTHON, str(path))
    assert result.returncode == ExitCode.OK, result.stderr
    report = result.report
    assert report["complete"] is True and report["incomplete"] == []
    assert role(report, "parent")["end"]["code"] == 5


def test_ok_when_gsup_signals_the_program(gsup: Gsup, program: Program) -> None:
    path = program("import time\ntime.sleep(60)\n")
    result = gsup.run("run", "--json", "--signal", "TERM", "--settle", "200ms", "--python", PYTHON, str(path),
                      timeout=60)
    assert result.returncode == ExitCode.OK, result.stderr
    report = result.report
    assert report["complete"] is True
    assert [(a["signal"], a["by"]) for a in report["actions"]] == [("SIGTERM", "gsup")]
    assert role(report, "parent")["end"]["signal"] == "SIGTERM"


def test_ok_after_ctrl_c_is_forwarded(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """Ctrl-C during the run goes to the program; gsup still reports, so 0, not 130."""
    ready = tmp_path / "ready"
    path = program(ready_then_sleep(ready))
    proc = gsup.start("run", "--json", "--python", PYTHON, str(path))
    wait_until(ready.exists, what="the program to start")
    proc.send_signal(signal.SIGINT)
    result = gsup.finish(proc)
    assert result.returncode == ExitCode.OK, result.stderr
    parent = role(result.report, "parent")
    assert parent["exception"] == "KeyboardInterrupt"


# -- 1 ------------------------------------------------------------------------------


def test_expectation_failed(gsup: Gsup, program: Program) -> None:
    path = program("import sys\nsys.exit(5)\n")
    result = gsup.run("run", "--json", "--python", PYTHON, "--expect", "parent: exit 0", str(path))
    assert result.returncode == ExitCode.EXPECTATION_FAILED, result.stderr
    report = result.report
    assert report["complete"] is True
    assert [(e["text"], e["ok"]) for e in report["expectations"]] == [("parent: exit 0", False)]
    assert "gsup: expectation failed: parent: exit 0" in result.stderr.splitlines()
    assert "gsup: error" not in result.stderr


# -- 2 ------------------------------------------------------------------------------


def test_usage(gsup: Gsup) -> None:
    result = gsup.run("run", "--python", PYTHON, "no-such-script.py")
    assert result.returncode == ExitCode.USAGE
    assert "no such file" in one_error_line(result.stderr)


def test_usage_when_gsup_home_is_a_symlink(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    real = tmp_path / "real-home"
    real.mkdir(mode=0o700)
    link = tmp_path / "link-home"
    link.symlink_to(real)
    result = gsup.run("run", "--python", PYTHON, str(program("pass\n")), env={"GSUP_HOME": str(link)})
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "not a plain directory" in one_error_line(result.stderr)
    assert list(real.iterdir()) == [], "nothing should have been run"


@pytest.mark.parametrize("below", [False, True], ids=["file", "below-file"])
def test_usage_when_gsup_home_is_a_file(gsup: Gsup, program: Program, tmp_path: Path, below: bool) -> None:
    plain = tmp_path / "plain-file"
    plain.write_text("not a directory\n")
    home = plain / "sub" if below else plain
    result = gsup.run("run", "--python", PYTHON, str(program("pass\n")), env={"GSUP_HOME": str(home)})
    message = one_error_line(result.stderr)
    assert result.returncode == ExitCode.USAGE, message
    assert str(plain) in message
    assert "internal error" not in message


# -- 3 ------------------------------------------------------------------------------


def test_incomplete_prints_a_partial_report(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    result = gsup.finish(lose_session_mid_run(gsup, program, tmp_path))
    assert result.returncode == ExitCode.INCOMPLETE, result.stderr
    report = result.report
    assert report["complete"] is False
    assert any("exits.jsonl" in missing for missing in report["incomplete"]), report["incomplete"]
    assert role(report, "parent")["end"]["code"] == 0  # what was known is still there
    message = one_error_line(result.stderr)
    assert message.startswith("gsup: error: report incomplete:")


def test_incomplete_outranks_a_failed_expectation(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    result = gsup.finish(lose_session_mid_run(gsup, program, tmp_path, "--expect", "parent: exit 9"))
    assert result.returncode == ExitCode.INCOMPLETE, result.stderr
    assert "gsup: expectation failed: parent: exit 9" in result.stderr.splitlines()
    assert one_error_line(result.stderr).startswith("gsup: error: report incomplete:")
    assert result.report["expectations"][0]["ok"] is False


# -- 130 ----------------------------------------------------------------------------


def test_interrupted_before_the_report(gsup: Gsup, tmp_path: Path) -> None:
    """SIGINT while gsup checks that the interpreter has the module (before launch)."""
    ready = tmp_path / "python-ready"
    slow_python = tmp_path / "slow-python"
    slow_python.write_text(f"#!{PYTHON}\nimport time\nopen({str(ready)!r}, 'w').close()\ntime.sleep(30)\n")
    slow_python.chmod(0o755)
    proc = gsup.start("run", "--python", str(slow_python), "-m", "some_module")
    wait_until(ready.exists, what="gsup to ask the interpreter for the module")
    proc.send_signal(signal.SIGINT)
    result = gsup.finish(proc, timeout=30)
    assert result.returncode == ExitCode.INTERRUPTED, result.stderr
    assert result.stderr.strip().splitlines() == ["gsup: interrupted"]
    assert result.stdout == ""
    assert not gsup.home.exists() or not any(gsup.home.iterdir()), "nothing should have been launched"


# -- 141 ----------------------------------------------------------------------------


def with_closed_reader(gsup: Gsup, args: list[str], stream: str = "stdout") -> tuple[int, str]:
    """Run gsup with ``stream`` a pipe whose reader is gone; its exit code and its other stream."""
    import os
    import subprocess

    from tests.helpers import GSUP

    reader, writer = os.pipe()
    os.close(reader)
    try:
        other = subprocess.PIPE
        done = subprocess.run([*GSUP, *args], env=gsup.env, cwd=gsup.workdir, stdin=subprocess.DEVNULL,
                              stdout=writer if stream == "stdout" else other,
                              stderr=writer if stream == "stderr" else other, timeout=120, check=False)
    finally:
        os.close(writer)
    return done.returncode, (done.stderr if stream == "stdout" else done.stdout).decode()


QUIET = "import time\ntime.sleep(0.1)\n"  # prints nothing: the program never meets the closed pipe itself


@pytest.mark.parametrize("args", [
    ["run", "-q"], ["run", "-q", "--json"], ["report"], ["report", "--json"], ["ps"], ["ps", "--all"], ["--help"],
    ["matrix", "-q", "--signals", "KILL", "--targets", "parent"],
    ["matrix", "-q", "--json", "--signals", "KILL", "--targets", "parent"],
], ids=lambda args: " ".join(args))
def test_output_closed_by_its_reader(gsup: Gsup, program: Program, args: list[str]) -> None:
    """``gsup ... | head``: the run completes and is saved; gsup exits 141 quietly, whatever the command."""
    script = str(program(QUIET))
    assert gsup.run("run", "-q", "--python", PYTHON, script).returncode == 0  # a session for report and ps
    program_args = ["--python", PYTHON, script] if args[0] in ("run", "matrix") else []
    code, stderr = with_closed_reader(gsup, [*args, *program_args])
    assert (code, stderr) == (ExitCode.OUTPUT_CLOSED, ""), stderr
    for saved in gsup.home.glob("*/report.json"):
        assert json.loads(saved.read_text())["complete"] is True


def test_stderr_closed_by_its_reader_changes_nothing(gsup: Gsup, program: Program) -> None:
    """Progress lines to a closed stderr are dropped; the run and its report are as ever."""
    code, stdout = with_closed_reader(gsup, ["run", "--json", "--python", PYTHON, str(program(QUIET))], "stderr")
    assert code == ExitCode.OK
    assert json.loads(stdout)["complete"] is True
