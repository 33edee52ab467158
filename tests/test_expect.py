"""``--expect``: the grammar and its checks (pure, on hand-built reports), then real runs.

The hand-built reports mirror what real runs produce (see test_flask.py for the
Flask facts); the real runs check the wiring: parsing before launch, the JSON
``expectations`` list, the stderr lines, the exit code and its priority.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pytest
from rich.console import Console

from supervisor import expect, wording
from supervisor.errors import ExitCode, GsupError
from supervisor.model import (
    EXEC,
    EXITED,
    INTERRUPTED,
    LEFT_RUNNING,
    NOT_RUN,
    OS_EXIT,
    RAISED,
    RAN,
    SIGNALED,
    UNREGISTERED,
    End,
    ExpectationResult,
    Handler,
    Process,
    Report,
)
from supervisor.render import render
from tests.helpers import EXAMPLES, PYTHON, Gsup, Program, free_port, role

# -- building reports --------------------------------------------------------------------


def handler(name: str, status: str = RAN, order: Optional[int] = None, module: str = "__main__",
            exception: Optional[str] = None, kind: str = "atexit") -> Handler:
    return Handler(kind, name, module, "app.py:1", status, order=order, exception=exception)


def process(pid: int, role_: str, end: End, handlers: Optional[list[Handler]] = None, **fields: Any) -> Process:
    fields.setdefault("instrumented", True)
    return Process(pid=pid, ppid=None, role=role_, argv=["python", "app.py"], end=end, handlers=handlers or [],
                   **fields)


def report_of(*processes: Process, leftovers: Optional[list[int]] = None,
              incomplete: Optional[list[str]] = None) -> Report:
    return Report(command=["python", "app.py"], session="s-1", started=0.0, duration=1.0,
                  processes=list(processes), actions=[], leftovers=leftovers or [], incomplete=incomplete or [])


def all_ran() -> list[Handler]:
    """The Flask example's handlers as they run (LIFO), logging's last."""
    return [handler("shutdown", order=3), handler("shutdown2", order=2), handler("shutdown3", order=1),
            handler("shutdown", order=4, module="logging")]


def none_ran() -> list[Handler]:
    return [handler("shutdown", NOT_RUN), handler("shutdown2", NOT_RUN), handler("shutdown3", NOT_RUN),
            handler("shutdown", NOT_RUN, module="logging")]


def flask_kill_child() -> Report:
    """SIGKILL to the reloader's child: the parent runs everything and exits 247."""
    return report_of(process(100, "parent", End(EXITED, code=247), all_ran()),
                     process(101, "child", End(SIGNALED, signal="SIGKILL"), none_ran()))


def check(text: str, report: Report) -> ExpectationResult:
    [result] = expect.evaluate([expect.parse(text)], report)
    return result


# -- parse ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "fields"), [
    ("child: shutdown ran", {"kind": "ran", "role": "child", "any": False, "name": "shutdown"}),
    ("child: handler shutdown ran", {"kind": "ran", "name": "shutdown"}),
    ("Child:  shutdown   RAN", {"kind": "ran", "role": "child", "name": "shutdown"}),
    ("any child: worker_exit ran", {"kind": "ran", "any": True, "name": "worker_exit"}),
    ("every grandchild: x ran", {"kind": "ran", "role": "grandchild", "any": False}),
    ("child: shutdown not run", {"kind": "not-run", "name": "shutdown"}),
    ("child: shutdown did not run", {"kind": "not-run", "name": "shutdown"}),
    ("child: shutdown never ran", {"kind": "not-run", "name": "shutdown"}),
    ("parent: logging.shutdown ran", {"kind": "ran", "name": "logging.shutdown"}),
    ("parent: run_with_reloader.<locals>.<lambda> ran", {"name": "run_with_reloader.<locals>.<lambda>"}),
    ("parent: save raised", {"kind": "raised", "name": "save", "exception": None}),
    ("parent: handler save raised OSError", {"kind": "raised", "name": "save", "exception": "OSError"}),
    ("parent: all handlers ran", {"kind": "all-ran", "role": "parent"}),
    ("parent: exit 0", {"kind": "exit", "code": 0}),
    ("parent: exited 247", {"kind": "exit", "code": 247}),
    ("parent: exit code 3", {"kind": "exit", "code": 3}),
    ("child: killed by KILL", {"kind": "signal", "signal": "SIGKILL"}),
    ("child: killed by 9", {"kind": "signal", "signal": "SIGKILL"}),
    ("child: signal SIGKILL", {"kind": "signal", "signal": "SIGKILL"}),
    ("child: signaled by term", {"kind": "signal", "signal": "SIGTERM"}),
    ("child: nothing interrupted", {"kind": "nothing-interrupted", "role": "child"}),
    ("no leftovers", {"kind": "no-leftovers", "role": None}),
    ("No  Leftovers", {"kind": "no-leftovers"}),
    ("nothing interrupted", {"kind": "nothing-interrupted", "role": None}),
    ("complete", {"kind": "complete", "role": None}),
])
def test_parse(text: str, fields: dict[str, Any]) -> None:
    parsed = expect.parse(text)
    assert {key: getattr(parsed, key) for key in fields} == fields


@pytest.mark.parametrize(("text", "why"), [
    ("", "no 'ROLE:'"),
    ("shutdown ran", "no 'ROLE:'"),
    ("parnt: shutdown ran", "unknown role 'parnt'"),
    ("child:", "nothing after 'ROLE:'"),
    ("child: shutdown", "unknown claim 'shutdown'"),
    ("child: shutdown ran twice", "unknown claim"),
    ("parent: exit -1", "exit status '-1' is not 0-255"),
    ("parent: exit 256", "exit status '256' is not 0-255"),
    ("child: killed by FOO", "unknown signal 'FOO'"),
    ("some child: x ran", "unknown role"),
])
def test_parse_rejects_with_the_grammar(text: str, why: str) -> None:
    with pytest.raises(GsupError) as raised:
        expect.parse(text)
    message = str(raised.value)
    assert raised.value.exit_code == ExitCode.USAGE
    assert message.startswith(f"invalid --expect {text!r}: ")
    assert why in message
    assert message.endswith(expect.GRAMMAR)
    assert "\n" not in message


# -- handler claims ------------------------------------------------------------------------------


def test_the_seed_experiment_reads_as_expected() -> None:
    report = flask_kill_child()
    assert check("child: shutdown not run", report) == ExpectationResult(
        "child: shutdown not run", True, "every child did not run shutdown",
        "child (pid 101) was killed by SIGKILL before any handler; shutdown not run; ran: none")
    assert check("parent: shutdown ran", report) == ExpectationResult(
        "parent: shutdown ran", True, "parent ran shutdown",
        "parent (pid 100) exited 247; shutdown ran; ran: shutdown3, shutdown2, shutdown, logging.shutdown")
    assert check("child: shutdown ran", report) == ExpectationResult(
        "child: shutdown ran", False, "every child ran shutdown",
        "child (pid 101) was killed by SIGKILL before any handler; shutdown not run; ran: none")


def test_label_names_a_library_handler_apart_from_the_programs() -> None:
    report = report_of(process(1, "parent", End(EXITED, code=0),
                               [handler("shutdown", NOT_RUN), handler("shutdown", order=1, module="logging")]))
    assert check("parent: logging.shutdown ran", report).ok
    result = check("parent: shutdown ran", report)
    assert not result.ok  # the program's own, by its label
    assert result.observed == "parent (pid 1) exited 0; shutdown not run; ran: logging.shutdown"
    assert not check("parent: __main__.shutdown ran", report).ok  # the program's own go by name alone


def test_a_bare_qualname_names_a_library_handler_when_no_label_is_that_name() -> None:
    report = report_of(process(1, "parent", End(EXITED, code=0),
                               [handler("_exit_function", order=1, module="multiprocessing.util")]))
    result = check("parent: _exit_function ran", report)
    assert result.ok
    assert result.observed == ("parent (pid 1) exited 0; multiprocessing.util._exit_function ran; "
                               "ran: multiprocessing.util._exit_function")


def test_a_handler_that_raised_did_not_run() -> None:
    report = report_of(process(1, "parent", End(EXITED, code=0),
                               [handler("save", RAISED, order=1, exception="OSError"), handler("flush", order=2)]))
    result = check("parent: save ran", report)
    assert not result.ok
    assert result.observed == "parent (pid 1) exited 0; save raised OSError; ran: flush"
    assert check("parent: save raised", report).ok
    assert check("parent: save raised OSError", report).ok
    assert not check("parent: save raised ValueError", report).ok
    assert not check("parent: flush raised", report).ok


def test_raised_matches_a_qualified_exception_by_its_name() -> None:
    report = report_of(process(1, "parent", End(EXITED, code=0),
                               [handler("save", RAISED, order=1, exception="mylib.errors.SaveError")]))
    assert check("parent: save raised SaveError", report).ok
    assert check("parent: save raised mylib.errors.SaveError", report).ok


def test_not_run_of_a_name_nobody_registered_is_a_typo_not_a_pass() -> None:
    result = check("child: shutdwn not run", flask_kill_child())
    assert not result.ok
    assert result.observed.startswith("no handler named shutdwn in any process of the report (a typo?); ")


def test_not_run_where_only_another_process_registered_it() -> None:
    report = report_of(process(1, "parent", End(EXITED, code=0), [handler("cleanup", order=1)]),
                       process(2, "child", End(EXITED, code=0), []))
    result = check("child: cleanup not run", report)
    assert result.ok
    assert result.observed == "child (pid 2) exited 0; cleanup was never registered there; ran: none"


def test_interrupted_handler_began_so_it_is_not_not_run() -> None:
    report = report_of(process(1, "parent", End(SIGNALED, signal="SIGKILL"), [handler("slow", INTERRUPTED, 1)]))
    assert not check("parent: slow not run", report).ok
    assert not check("parent: slow ran", report).ok
    result = check("parent: nothing interrupted", report)
    assert not result.ok
    assert result.observed == "parent (pid 1) was killed by SIGKILL; ran: none; interrupted: slow"


def test_watched_calls_match_like_handlers() -> None:
    calls = [handler("Server.stop", RAN, 1, kind="watched", module="app.server"),
             handler("Server.stop", INTERRUPTED, 2, kind="watched", module="app.server")]
    report = report_of(process(1, "parent", End(EXITED, code=0), [handler("flush", order=1)], watched=calls))
    assert check("parent: flush ran", report).observed == (
        "parent (pid 1) exited 0; flush ran; ran: flush, app.server.Server.stop")
    assert check("parent: Server.stop ran", report).ok
    assert check("parent: app.server.Server.stop ran", report).ok
    assert not check("parent: Server.stop not run", report).ok
    assert not check("nothing interrupted", report).ok
    assert check("parent: all handlers ran", report).ok  # watched functions are not exit handlers


def test_all_handlers_ran() -> None:
    ok = process(1, "parent", End(EXITED, code=0), [*all_ran(), handler("gone", UNREGISTERED)])
    assert check("parent: all handlers ran", report_of(ok)).ok
    partial = process(1, "parent", End(OS_EXIT, code=0),
                      [handler("a", order=1), handler("b", NOT_RUN), handler("c", RAISED, 2, exception="E")])
    result = check("parent: all handlers ran", report_of(partial))
    assert not result.ok
    assert result.expected == "parent ran every handler it registered"
    assert result.observed == "parent (pid 1) called os._exit(0); ran: a; raised: c (E); not run: b"


def test_all_handlers_ran_with_none_registered_holds_and_says_so() -> None:
    result = check("parent: all handlers ran", report_of(process(1, "parent", End(EXITED, code=0),
                                                                  opaque_handlers=2)))
    assert result.ok
    assert result.observed == ("parent (pid 1) exited 0; no handler registered; "
                               "2 registered before the probe loaded, not observable")


def test_handler_claims_fail_on_an_uninstrumented_process() -> None:
    blind = process(2, "child", End(EXITED, code=0), instrumented=False, uninstrumented_reason="not Python")
    report = report_of(process(1, "parent", End(EXITED, code=0), all_ran()), blind)
    for text in ("child: shutdown ran", "child: shutdown not run", "child: all handlers ran",
                 "child: nothing interrupted"):
        result = check(text, report)
        assert not result.ok, text
        assert result.observed == "child (pid 2) was not instrumented (not Python): its handlers are unknown"
    assert check("child: exit 0", report).ok  # its ending is known from its wait status


# -- roles ----------------------------------------------------------------------------------------


def two_workers() -> Report:
    """gunicorn-like: one worker ran worker_exit, the other was killed."""
    return report_of(process(1, "parent", End(EXITED, code=0), []),
                     process(2, "child", End(EXITED, code=0), [handler("worker_exit", order=1)]),
                     process(3, "child", End(SIGNALED, signal="SIGKILL"), [handler("worker_exit", NOT_RUN)]))


def test_role_means_every_process_of_it() -> None:
    result = check("child: worker_exit ran", two_workers())
    assert not result.ok
    assert result.observed == ("child (pid 3) was killed by SIGKILL before any handler; worker_exit not run; "
                               "ran: none")  # only the process that broke it


def test_any_role_means_at_least_one() -> None:
    result = check("any child: worker_exit ran", two_workers())
    assert result.ok
    assert result.expected == "at least one child ran worker_exit"
    assert result.observed == ("child (pid 2) exited 0; worker_exit ran; ran: worker_exit | "
                               "child (pid 3) was killed by SIGKILL before any handler; worker_exit not run; "
                               "ran: none")
    assert not check("any child: killed by TERM", two_workers()).ok


@pytest.mark.parametrize("text", ["grandchild: x not run", "any grandchild: exit 0", "unknown: killed by KILL"])
def test_a_role_with_no_process_fails_and_says_so(text: str) -> None:
    result = check(text, two_workers())
    assert not result.ok
    assert result.observed.startswith(f"no {text.split(':')[0].split()[-1]} process in the report (processes: ")
    assert result.observed.endswith("1 parent, 2 child, 3 child)")


def test_exec_images_are_one_process() -> None:
    """An exec adds an image with the same pid: its ending is the last image's, its handlers all images'."""
    first = process(5, "parent", End(EXEC), [handler("early", NOT_RUN)])
    second = process(5, "parent", End(EXITED, code=0), [handler("late", order=1)])
    report = report_of(first, second)
    assert check("parent: exit 0", report).ok
    assert check("parent: late ran", report).ok
    assert check("parent: early not run", report).ok
    assert check("parent: exit 0", report).observed == "parent (pid 5) exited 0; ran: late"


# -- endings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("end", "text", "ok"), [
    (End(EXITED, code=0), "parent: exit 0", True),
    (End(EXITED, code=3), "parent: exit 0", False),
    (End(OS_EXIT, code=0), "parent: exit 0", True),  # the exit status is 0; 'all handlers ran' tells the rest
    (End(SIGNALED, signal="SIGKILL"), "parent: exit 0", False),
    (End(SIGNALED, signal="SIGKILL"), "parent: killed by 9", True),
    (End(SIGNALED, signal="SIGTERM"), "parent: killed by KILL", False),
    (End(LEFT_RUNNING, then=End(SIGNALED, signal="SIGKILL")), "parent: killed by KILL", False),
    (End("unknown", reason="reaped by sh"), "parent: exit 0", False),
])
def test_endings(end: End, text: str, ok: bool) -> None:
    assert check(text, report_of(process(1, "parent", end))).ok is ok


@pytest.mark.parametrize("end", [End(EXITED, code=3), End(SIGNALED, signal="SIGTERM"), End(OS_EXIT, code=0),
                                 End(LEFT_RUNNING, then=End(EXITED, code=0)), End(EXEC), End("unknown")])
def test_observations_word_endings_from_the_one_table(end: End) -> None:
    """What an observation says of an ending is ``wording.sentence`` (its words are tested in test_wording.py)."""
    observed = check("parent: all handlers ran", report_of(process(1, "parent", end))).observed
    assert observed.startswith(f"parent (pid 1) {wording.sentence(end)}; ")


def test_left_running_says_how_gsup_ended_it() -> None:
    end = End(LEFT_RUNNING, then=End(SIGNALED, signal="SIGKILL"))
    result = check("parent: killed by SIGKILL", report_of(process(1, "parent", end)))
    assert result.expected == "parent was killed by SIGKILL"
    assert result.observed == "parent (pid 1) was left running, then ended by gsup (was killed by SIGKILL); ran: none"


# -- whole-run claims ------------------------------------------------------------------------------


def test_no_leftovers() -> None:
    assert check("no leftovers", flask_kill_child()).ok
    result = check("no leftovers", report_of(process(1, "parent", End(EXITED, code=0)), leftovers=[7, 8]))
    assert (result.ok, result.observed) == (False, "left running after the grace, then ended by gsup: 7, 8")


def test_nothing_interrupted_over_the_whole_run() -> None:
    assert check("nothing interrupted", flask_kill_child()).ok
    cut = process(2, "child", End(SIGNALED, signal="SIGKILL"), [handler("slow", INTERRUPTED, 1)])
    result = check("nothing interrupted", report_of(process(1, "parent", End(EXITED, code=0)), cut))
    assert (result.ok, result.observed) == (False, "interrupted: slow in child (pid 2)")


def test_complete() -> None:
    assert check("complete", flask_kill_child()).ok
    result = check("complete", report_of(process(1, "parent", End(EXITED, code=0)), incomplete=["exits lost"]))
    assert (result.ok, result.observed) == (False, "incomplete: exits lost")


# -- the report and its views --------------------------------------------------------------------------


def test_report_ok_and_json() -> None:
    report = flask_kill_child()
    assert report.ok and report.to_json()["expectations"] == []
    report.expectations = expect.evaluate(expect.parse_all(["parent: exit 247", "child: shutdown ran"]), report)
    assert not report.ok
    assert [(e["text"], e["ok"]) for e in report.to_json()["expectations"]] == [
        ("parent: exit 247", True), ("child: shutdown ran", False)]
    assert set(report.to_json()["expectations"][0]) == {"text", "ok", "expected", "observed"}
    report.expectations = report.expectations[:1]
    assert report.ok
    report.incomplete = ["something"]
    assert not report.ok


def test_failure_lines() -> None:
    results = [ExpectationResult("a", True, "x", "y"), ExpectationResult("parent: exit 0", False, "e", "o")]
    assert expect.failure_lines(results) == [
        "gsup: expectation failed: parent: exit 0", "  expected: e", "  observed: o"]


def test_render_shows_expectations_last() -> None:
    report = report_of(process(12, "child", End(SIGNALED, signal="SIGKILL"), [handler("shutdown", NOT_RUN)],
                               explanation="killed it"))
    report.expectations = expect.evaluate(expect.parse_all(["child: shutdown not run", "child: shutdown ran"]),
                                          report)
    console = Console(width=80, color_system=None, record=True)
    console.print(render(report))
    assert console.export_text().endswith(
        "nothing left running\n"
        "expectations\n"
        "  ✓ child: shutdown not run\n"
        "  ✗ child: shutdown ran\n"
        "      expected: every child ran shutdown\n"
        "      observed: child (pid 12) was killed by SIGKILL before any handler; \n"
        "      shutdown not run; ran: none\n"
    )


# -- real runs ------------------------------------------------------------------------------------------

SERVER = """
    import atexit, signal, sys, time

    @atexit.register
    def shutdown():
        print("shutdown ran", flush=True)

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    print("ready", flush=True)
    time.sleep(60)
"""


def test_expectations_that_hold_exit_0(gsup: Gsup, program: Program) -> None:
    wanted = ["parent: shutdown ran", "parent: all handlers ran", "parent: exit 0", "no leftovers",
              "nothing interrupted", "complete"]
    result = gsup.run("run", "--json", "--signal", "TERM", "--python", PYTHON,
                      *[arg for text in wanted for arg in ("--expect", text)], str(program(SERVER)))
    assert result.returncode == ExitCode.OK, result.stderr
    assert [(e["text"], e["ok"]) for e in result.report["expectations"]] == [(text, True) for text in wanted]
    assert "expectation failed" not in result.stderr


def test_expectations_that_fail_exit_1(gsup: Gsup, program: Program) -> None:
    result = gsup.run("run", "--json", "--signal", "TERM", "--python", PYTHON, "--expect", "parent: exit 0",
                      "--expect", "parent: killed by TERM", "--expect", "child: shutdown ran", str(program(SERVER)))
    assert result.returncode == ExitCode.EXPECTATION_FAILED, result.stderr
    report = result.report
    pid = role(report, "parent")["pid"]
    assert [(e["text"], e["ok"]) for e in report["expectations"]] == [
        ("parent: exit 0", True), ("parent: killed by TERM", False), ("child: shutdown ran", False)]
    failed = [line for line in result.stderr.splitlines() if line.startswith(("gsup: expectation", "  "))]
    assert failed == [
        "gsup: expectation failed: parent: killed by TERM",
        "  expected: parent was killed by SIGTERM",
        f"  observed: parent (pid {pid}) exited 0; ran: shutdown",
        "gsup: expectation failed: child: shutdown ran",
        "  expected: every child ran shutdown",
        f"  observed: no child process in the report (processes: {pid} parent)",
    ]
    assert "gsup: error" not in result.stderr and "Traceback" not in result.stderr


def test_rich_view_lists_the_expectations(gsup: Gsup, program: Program) -> None:
    result = gsup.run("run", "--signal", "TERM", "--python", PYTHON, "--expect", "parent: shutdown ran",
                      "--expect", "parent: shutdown not run", str(program(SERVER)))
    assert result.returncode == ExitCode.EXPECTATION_FAILED, result.stderr
    tail = result.stdout[result.stdout.index("\nexpectations\n") + 1:].splitlines()
    assert tail[:4] == ["expectations", "  ✓ parent: shutdown ran", "  ✗ parent: shutdown not run",
                        "      expected: parent did not run shutdown"]


def test_watched_function_in_a_real_run(gsup: Gsup, program: Program) -> None:
    program("def stop():\n    pass\n", name="service.py")
    script = program("""
        import signal, sys, time
        import service

        def on_term(signum, frame):
            service.stop()
            sys.exit(0)

        signal.signal(signal.SIGTERM, on_term)
        time.sleep(60)
    """)
    result = gsup.run("run", "--json", "--signal", "TERM", "--python", PYTHON, "--watch", "service:stop",
                      "--expect", "parent: stop ran", "--expect", "parent: service.stop ran", str(script))
    assert result.returncode == ExitCode.OK, result.stderr
    pid = role(result.report, "parent")["pid"]
    assert [e["observed"] for e in result.report["expectations"]] == [
        f"parent (pid {pid}) exited 0; service.stop ran; ran: service.stop"] * 2


@pytest.mark.slow
def test_flask_seed_experiment(gsup: Gsup) -> None:
    result = gsup.run("run", "--json", "--python", PYTHON, "--signal", "KILL", "--target", "child", "--grace", "5s",
                      "--expect", "child: shutdown not run", "--expect", "parent: shutdown ran",
                      "--expect", "child: killed by KILL", "--expect", "parent: exit 247",
                      str(EXAMPLES / "flask_app.py"), env={"PORT": str(free_port())})
    assert result.returncode == ExitCode.OK, result.stderr
    assert all(e["ok"] for e in result.report["expectations"]), result.report["expectations"]
    assert len(result.report["expectations"]) == 4


def test_bad_grammar_is_one_line_and_nothing_runs(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = program(f"open({str(marker)!r}, 'w').close()\n")
    result = gsup.run("run", "--python", PYTHON, "--expect", "parent: exit 0", "--expect", "child: shutdown",
                      str(path))
    assert result.returncode == ExitCode.USAGE
    assert result.stderr.splitlines() == [
        f"gsup: error: invalid --expect 'child: shutdown': unknown claim 'shutdown'; {expect.GRAMMAR}"]
    assert result.stdout == ""
    assert not marker.exists()
    assert not gsup.home.exists() or not any(gsup.home.iterdir()), "nothing should have been launched"


# -- exit code priority: 2, then 4, then 3, then 1 (3 over 1: test_exit_codes.py) ---------------


def test_a_signal_never_sent_outranks_a_failed_expectation(gsup: Gsup, program: Program) -> None:
    result = gsup.run("run", "--json", "--signal", "TERM", "--target", "child", "--python", PYTHON,
                      "--expect", "child: shutdown ran", str(program("pass\n")))
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "gsup: expectation failed: child: shutdown ran" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("gsup: error: --signal was never sent")
    assert result.report["expectations"][0]["ok"] is False
