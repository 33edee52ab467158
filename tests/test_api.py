"""The Python API: ``run()`` and ``matrix()`` return typed reports of real runs.

Each test binds the API to the harness's session home (``api.Gsup(env=...)``),
so the harness's check that nothing is left running covers the API's runs.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from supervisor import api, matrix, run
from supervisor.errors import ExitCode
from supervisor.matrix_report import MatrixReport
from supervisor.model import Report
from tests.helpers import FORKED, Gsup, Program


@pytest.fixture
def bound(gsup: Gsup) -> api.Gsup:
    return api.Gsup(env=gsup.env, cwd=gsup.workdir)


def test_run_returns_the_typed_report(bound: api.Gsup, program: Program) -> None:
    script = program(FORKED)
    report = bound.run(script, signal="INT", target="child", grace=2, settle="200ms")
    assert isinstance(report, Report)
    assert report.role("child").fired == ["child_cleanup"]
    assert report.role("child").end.signal == "SIGINT"
    assert report.role("parent").end.code == 0
    assert report.ok and report.complete
    assert Report.from_json(report.to_json()).to_json() == report.to_json()


def test_failed_expectation_returns_the_report(bound: api.Gsup, program: Program) -> None:
    script = program(FORKED)
    report = bound.run(str(script), signal=signal.SIGKILL, target="child", grace=2.0, settle=0.2,
                       expect=["child: child_cleanup ran", "parent: exit 0"])
    assert not report.ok
    assert [(e.text, e.ok) for e in report.expectations] == [("child: child_cleanup ran", False),
                                                             ("parent: exit 0", True)]
    assert report.role("child").fired == []


def test_role_names_the_problem(bound: api.Gsup, program: Program) -> None:
    report = bound.run(program("pass\n"))
    with pytest.raises(LookupError, match=r"no child process in this report; the processes were: \d+ \(parent\)"):
        report.role("child")
    assert report.roles("child") == []
    two = Report.from_json({**report.to_json(), "processes": [p.to_json() for p in report.processes * 2]})
    with pytest.raises(LookupError, match=r"2 parent processes .* use report.roles\('parent'\)"):
        two.role("parent")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"script": "missing.py"}, "missing.py: no such file"),
    ({"script": "prog.py", "signal": "BOGUS"}, "invalid signal 'BOGUS'"),
    ({"module": "no_such_module_here"}, "no_such_module_here"),
    ({"script": "prog.py", "grace": "soon"}, "invalid duration 'soon'"),
])
def test_bad_input_raises_with_gsups_message(bound: api.Gsup, program: Program, kwargs: dict[str, str],
                                             message: str) -> None:
    program("pass\n")
    with pytest.raises(api.RunError) as raised:
        bound.run(**kwargs)  # type: ignore[arg-type]
    assert raised.value.exit_code == ExitCode.USAGE
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert raised.value.report is None


def test_signal_never_sent_raises_with_the_report(bound: api.Gsup, program: Program) -> None:
    with pytest.raises(api.RunError, match="no child process appeared") as raised:
        bound.run(program("pass\n"), signal="TERM", target="child")
    assert raised.value.report is not None and raised.value.report.role("parent").end.code == 0


def test_program_forms_are_exclusive() -> None:
    with pytest.raises(TypeError, match="exactly one of script, module= or command="):
        run("a.py", module="b")
    with pytest.raises(TypeError, match="exactly one"):
        matrix()


def test_timeout_ends_gsup_and_its_tree(bound: api.Gsup, program: Program) -> None:
    script = program("import signal\nsignal.pause()\n")
    with pytest.raises(api.RunTimeout, match=r"did not finish within 1\.0s") as raised:
        bound.run(script, timeout=1.0)
    assert raised.value.report is not None  # gsup forwarded the TERM and reported
    assert raised.value.report.role("parent").end.signal == "SIGTERM"
    assert not bound.running


def test_matrix_returns_the_typed_matrix_report(bound: api.Gsup, program: Program) -> None:
    script = program(FORKED)
    result = bound.matrix(script, signals=["KILL", signal.SIGTERM], targets="child", grace=2, settle=0.2,
                          jobs=2, expect=["child: child_cleanup not run"])
    assert isinstance(result, MatrixReport)
    assert [s.name for s in result.scenarios] == ["SIGKILL→child", "SIGTERM→child"]
    assert result.ok and result.complete and result.exit_code == 0
    assert result.run("SIGKILL→child").role("child").end.signal == "SIGKILL"
    assert result.run("SIGTERM→child").role("parent").fired == ["parent_cleanup"]
    assert all(Path(str(s.log)).is_file() for s in result.scenarios)
    assert MatrixReport.from_json(json.loads(json.dumps(result.to_json()))).to_json() == result.to_json()


def test_matrix_failure_is_a_result_not_an_exception(bound: api.Gsup, program: Program) -> None:
    script = program(FORKED)
    result = bound.matrix(script, signals="KILL", targets=["parent", "child"], grace=2, settle=0.2,
                          expect=["parent: parent_cleanup ran"])
    assert not result.ok and result.exit_code == ExitCode.EXPECTATION_FAILED
    assert [(s.name, s.ok, s.exit_code) for s in result.scenarios] == [("SIGKILL→parent", False, 1),
                                                                       ("SIGKILL→child", True, 0)]
    with pytest.raises(LookupError, match="no scenario 'SIGTERM→child'"):
        result.run("SIGTERM→child")


def test_matrix_bad_input_raises(bound: api.Gsup, program: Program) -> None:
    with pytest.raises(api.RunError, match="a pid belongs to one run") as raised:
        bound.matrix(program(FORKED), targets="pid:1")
    assert raised.value.exit_code == ExitCode.USAGE


def test_fired_names_library_handlers_with_their_module_and_own_fired_leaves_them_out(
        bound: api.Gsup, program: Program, tmp_path: Path) -> None:
    """The app's ``shutdown`` and ``logging.shutdown`` used to read the same: ``shutdown``."""
    (tmp_path / "app_db.py").write_text("def close():\n    pass\n")
    script = program(f"""
        import atexit, logging, sys
        sys.path.insert(0, {str(tmp_path)!r})
        import app_db
        atexit.register(app_db.close)
        @atexit.register
        def shutdown():
            pass
    """)
    parent = bound.run(script).role("parent")
    assert parent.fired == ["shutdown", "app_db.close", "logging.shutdown"]
    assert parent.own_fired == ["shutdown", "app_db.close"]
    assert parent.to_json()["fired"] == parent.fired


def test_a_report_that_is_not_ok_says_why(bound: api.Gsup, program: Program) -> None:
    report = bound.run(program(FORKED), signal="KILL", target="child", grace=2, settle="200ms",
                       expect=["child: child_cleanup ran", "parent: exit 0"])
    [problem] = report.problems
    assert problem.startswith("expectation 'child: child_cleanup ran' failed: expected every child ran child_cleanup;"
                              " observed child (pid ")
    with pytest.raises(AssertionError, match="gsup run not ok:\n  - expectation 'child: child_cleanup ran' failed"):
        report.assert_ok()
    shown = repr(report)  # what pytest prints for a failing ``assert report.ok``
    assert len(shown) < 400 and "ok=False" in shown and "child_cleanup" in shown


def test_an_ok_report_has_no_problems(bound: api.Gsup, program: Program) -> None:
    report = bound.run(program("pass\n"))
    assert report.ok and report.problems == []
    report.assert_ok()
