"""JUnit XML: its shape, read back with the stdlib parser, and ``gsup run --junit`` for real."""

from __future__ import annotations

import signal
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from supervisor import expect, junit
from supervisor.errors import ExitCode, GsupError
from supervisor.model import EXITED, NOT_RUN, RAN, SIGNALED, End, Handler, Process, Report
from supervisor.options import Target
from tests.helpers import PYTHON, Gsup, Program, error_lines, role


def flask_like(*expectations: str, incomplete: tuple[str, ...] = ()) -> Report:
    parent = Process(pid=100, ppid=1, role="parent", argv=["/venv/bin/python", "app.py"], instrumented=True,
                     end=End(EXITED, code=247), handlers=[Handler("atexit", "shutdown", "__main__", "app.py:9", RAN,
                                                                  order=1)],
                     explanation="exited with code 247 after its child ended")
    child = Process(pid=101, ppid=100, role="child", argv=["/venv/bin/python", "app.py"], instrumented=True,
                    end=End(SIGNALED, signal="SIGKILL"),
                    handlers=[Handler("atexit", "shutdown", "__main__", "app.py:9", NOT_RUN)],
                    explanation="killed with SIGKILL by gsup: nothing ran")
    report = Report(command=["/venv/bin/python", "app.py"], session="s-1", started=0.0, duration=2.25,
                    processes=[parent, child], actions=[], leftovers=[], incomplete=list(incomplete))
    report.expectations = expect.evaluate(expect.parse_all(expectations), report)
    return report


def read_back(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuite"
    return root


def test_one_testcase_per_scenario(tmp_path: Path) -> None:
    cases = [("SIGKILL→child", flask_like("child: shutdown not run", "parent: shutdown ran")),
             ("SIGTERM→child", flask_like("child: shutdown ran", "parent: exit 0", "no leftovers")),
             ("SIGINT→group", flask_like(incomplete=("exits.jsonl lost",)))]
    path = tmp_path / "out.xml"
    junit.write(path, cases)
    suite = read_back(path)
    assert path.read_text().startswith("<?xml version='1.0' encoding='utf-8'?>")
    assert {k: suite.get(k) for k in ("name", "tests", "failures", "errors", "skipped", "time")} == {
        "name": "gsup", "tests": "3", "failures": "1", "errors": "1", "skipped": "0", "time": "6.750"}
    testcases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name"), c.get("time")) for c in testcases] == [
        ("python app.py", "SIGKILL→child", "2.250"), ("python app.py", "SIGTERM→child", "2.250"),
        ("python app.py", "SIGINT→group", "2.250")]
    passed, failed, errored = testcases
    assert passed.find("failure") is None and passed.find("error") is None
    failures = failed.findall("failure")
    assert [(f.get("message"), f.get("type")) for f in failures] == [
        ("child: shutdown ran", "expectation"), ("parent: exit 0", "expectation")]
    assert failures[0].text == ("expected: every child ran shutdown\n"
                                "observed: child (pid 101) was killed by SIGKILL before any handler; "
                                "shutdown not run; ran: none")
    [error] = errored.findall("error")
    assert (error.get("type"), error.get("message"), error.text) == (
        "incomplete", "report incomplete: exits.jsonl lost", "exits.jsonl lost")


def test_system_out_explains_every_process(tmp_path: Path) -> None:
    path = tmp_path / "out.xml"
    junit.write(path, [("SIGKILL→child", flask_like("child: shutdown not run", "parent: exit 0"))])
    [case] = read_back(path).findall("testcase")
    assert case.findtext("system-out") == (
        "100 parent: exited with code 247 after its child ended\n"
        "101 child: killed with SIGKILL by gsup: nothing ran\n"
        "✓ child: shutdown not run\n"
        "✗ parent: exit 0\n")


def test_a_problem_outside_the_report_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "out.xml"
    junit.write(path, [("SIGTERM→child", flask_like())], {"SIGTERM→child": "--signal was never sent"})
    suite = read_back(path)
    assert (suite.get("errors"), suite.get("failures")) == ("1", "0")
    error = suite.find("testcase/error")
    assert error is not None
    assert (error.get("type"), error.get("message")) == ("gsup", "--signal was never sent")


def test_no_scenarios_is_an_empty_suite(tmp_path: Path) -> None:
    path = tmp_path / "out.xml"
    junit.write(path, [])
    suite = read_back(path)
    assert (suite.get("tests"), suite.get("time"), list(suite)) == ("0", "0.000", [])


def test_markup_in_names_and_text_is_escaped(tmp_path: Path) -> None:
    report = flask_like("parent: run_with_reloader.<locals>.<lambda> ran")
    path = tmp_path / "out.xml"
    junit.write(path, [("a<b>&\"c\"", report)])
    case = read_back(path).find("testcase")
    assert case is not None and case.get("name") == "a<b>&\"c\""
    failure = case.find("failure")
    assert failure is not None and failure.get("message") == "parent: run_with_reloader.<locals>.<lambda> ran"


def test_an_unwritable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(GsupError) as raised:
        junit.write(tmp_path / "missing-dir" / "out.xml", [("run", flask_like())])
    assert raised.value.exit_code == ExitCode.USAGE
    assert str(raised.value) == f"cannot write --junit {str(tmp_path / 'missing-dir' / 'out.xml')!r}: " \
                                "No such file or directory"


@pytest.mark.parametrize(("sig", "target", "stop", "name"), [
    (signal.SIGKILL, Target("child"), None, "SIGKILL→child"),
    (signal.SIGTERM, Target("pid", 42), None, "SIGTERM→pid:42"),
    (signal.SIGTERM, Target("parent"), "docker", "stop docker"),
    (None, None, None, "run"),
])
def test_scenario_name(sig: signal.Signals | None, target: Target | None, stop: str | None, name: str) -> None:
    assert junit.scenario_name(sig, target, stop) == name


# -- gsup run --junit ----------------------------------------------------------------------------

SERVER = """
    import atexit, signal, sys, time

    @atexit.register
    def shutdown():
        pass

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    time.sleep(60)
"""


def test_gsup_run_writes_one_testcase(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    path, script = tmp_path / "junit.xml", program(SERVER)
    result = gsup.run("run", "--json", "--signal", "TERM", "--python", PYTHON, "--junit", str(path),
                      "--expect", "parent: shutdown ran", "--expect", "parent: killed by TERM", str(script))
    assert result.returncode == ExitCode.EXPECTATION_FAILED, result.stderr
    pid = role(result.report, "parent")["pid"]
    suite = read_back(path)
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("1", "1", "0")
    [case] = suite.findall("testcase")
    assert (case.get("classname"), case.get("name")) == (f"python {script}", "SIGTERM→parent")
    [failure] = case.findall("failure")
    assert failure.get("message") == "parent: killed by TERM"
    assert failure.text == ("expected: parent was killed by SIGTERM\n"
                            f"observed: parent (pid {pid}) exited 0; ran: shutdown")
    assert case.findtext("system-out", "").startswith(f"{pid} parent: ")


def test_gsup_run_cannot_write_junit(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "junit.xml"
    result = gsup.run("run", "--json", "--python", PYTHON, "--junit", str(path), "--expect", "parent: exit 0",
                      str(program("pass\n")))
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert error_lines(result.stderr) == [f"gsup: error: cannot write --junit {str(path)!r}: No such file or directory"]
    assert result.report["expectations"][0]["ok"] is True  # the report is still printed
    assert not path.parent.exists()


def test_the_suite_says_when_and_where_it_ran(tmp_path: Path) -> None:
    report = flask_like()
    report.started = 1796441400.5  # 2026-12-05 03:30:00.5 UTC
    path = tmp_path / "junit.xml"
    junit.write(path, [("SIGKILL→child", report)])
    root = read_back(path)
    assert root.get("timestamp") == "2026-12-05T03:30:00"
    assert root.get("hostname") == socket.gethostname()


def test_a_skipped_scenario_is_skipped_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    junit.write(path, [("SIGTERM→parent", flask_like()), ("SIGTERM→child", flask_like())],
                errors={}, skipped={"SIGTERM→child": "no child process"})
    root = read_back(path)
    assert (root.get("tests"), root.get("skipped"), root.get("errors")) == ("2", "1", "0")
    [skipped] = [c for c in root.iter("testcase") if c.find("skipped") is not None]
    assert skipped.get("name") == "SIGTERM→child" and skipped.find("skipped").get("message") == "no child process"
