"""Plain scripts under ``gsup run``: every way a process can end, and what ran.

Each program is real and each signal is real; the expectations are CPython's
documented behaviour (see shared/design/exit-semantics.md, section 3).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PYTHON, Gsup, Program, own_fired, pyenv_python, role, statuses, without_addresses

SERVER = """
    import atexit, signal, sys, time

    @atexit.register
    def first():
        print("first ran", flush=True)

    @atexit.register
    def second():
        print("second ran", flush=True)

    {extra}
    print("ready", flush=True)
    time.sleep(60)
"""


def server(program: Program, extra: str = "") -> str:
    return str(program(SERVER.replace("{extra}", extra)))


def only(report: dict[str, Any]) -> dict[str, Any]:
    assert len(report["processes"]) == 1, report["processes"]
    return role(report, "parent")


def test_term_without_a_handler_skips_atexit(gsup: Gsup, program: Program) -> None:
    proc = only(gsup.report("--signal", "TERM", server(program)))
    assert proc["end"] == {"how": "signaled", "code": None, "signal": "SIGTERM", "reaped_by": "gsup"}
    assert statuses(proc) == {"first": "not-run", "second": "not-run"}
    assert proc["fired"] == []
    assert proc["explanation"].startswith("SIGTERM by gsup had no Python handler")


def test_term_handler_calling_sys_exit_runs_atexit(gsup: Gsup, program: Program) -> None:
    script = server(program, "signal.signal(signal.SIGTERM, lambda s, f: sys.exit(3))")
    proc = only(gsup.report("--signal", "TERM", script))
    assert proc["end"]["how"] == "exited" and proc["end"]["code"] == 3
    assert own_fired(proc) == ["second", "first"]
    [term] = [s for s in proc["signal_handlers"] if s["signal"] == "SIGTERM"]
    assert term == {"signal": "SIGTERM", "handler": "<lambda>", "invoked": True, "invocations": 1,
                    "times": term["times"]} and len(term["times"]) == 1  # when it ran: report 1.2


def test_sigint_runs_atexit_then_dies_by_sigint(gsup: Gsup, program: Program) -> None:
    proc = only(gsup.report("--signal", "INT", server(program)))
    assert proc["end"]["how"] == "signaled" and proc["end"]["signal"] == "SIGINT"
    assert own_fired(proc) == ["second", "first"]
    assert proc["exception"] == "KeyboardInterrupt"
    assert "KeyboardInterrupt, atexit ran" in proc["explanation"]


def test_kill_runs_nothing(gsup: Gsup, program: Program) -> None:
    proc = only(gsup.report("--signal", "9", server(program)))
    assert proc["end"]["signal"] == "SIGKILL"
    assert statuses(proc) == {"first": "not-run", "second": "not-run"}
    assert proc["atexit_ran"] is False


def test_os_exit_skips_atexit_and_keeps_its_code(gsup: Gsup, program: Program) -> None:
    script = program("""
        import atexit, os
        atexit.register(lambda: print("never"))
        os._exit(4)
    """)
    result = gsup.run("run", "--json", "--python", PYTHON, str(script))
    proc = only(result.report)
    assert proc["end"] == {"how": "os._exit", "code": 4, "signal": None, "reaped_by": "gsup"}
    assert statuses(proc) == {"<lambda>": "not-run"}
    assert "never" not in result.stderr + result.stdout


def test_raising_handler_does_not_stop_the_others(gsup: Gsup, program: Program) -> None:
    script = program("""
        import atexit
        def a(): pass
        def boom(): raise ValueError("boom")
        def c(): pass
        atexit.register(a); atexit.register(boom); atexit.register(c)
    """)
    proc = only(gsup.report(str(script)))
    assert proc["end"]["code"] == 0
    handlers = {h["name"]: h for h in proc["handlers"] if h["module"] == "__main__"}
    assert [(n, h["status"], h["order"]) for n, h in handlers.items()] == [
        ("a", "ran", 3), ("boom", "raised", 2), ("c", "ran", 1)]
    assert handlers["boom"]["exception"] == "ValueError"
    assert own_fired(proc) == ["c", "boom", "a"]


def test_slow_handler_cut_off_by_the_grace_escalation(gsup: Gsup, program: Program) -> None:
    script = program("""
        import atexit, signal, sys, time
        def fast(): pass
        def slow(): time.sleep(60)
        atexit.register(fast)
        atexit.register(slow)   # runs first (LIFO), never finishes
        signal.signal(signal.SIGTERM, lambda s, f: sys.exit(0))
        time.sleep(60)
    """)
    report = gsup.report("--signal", "TERM", "--grace", "1s", str(script))
    proc = only(report)
    assert statuses(proc) == {"slow": "interrupted", "fast": "not-run"}
    assert proc["end"]["signal"] == "SIGKILL"
    assert [a["by"] for a in report["actions"]] == ["gsup", "grace"]
    assert "while exit handler slow was running (interrupted)" in proc["explanation"]


def test_register_then_unregister(gsup: Gsup, program: Program) -> None:
    script = program("""
        import atexit
        def kept(): pass
        def dropped(): print("dropped ran")
        atexit.register(kept)
        atexit.register(dropped)
        atexit.unregister(dropped)
    """)
    proc = only(gsup.report(str(script)))
    assert statuses(proc) == {"kept": "ran", "dropped": "unregistered"}
    assert own_fired(proc) == ["kept"]


def test_decorator_use_keeps_the_function(gsup: Gsup, program: Program) -> None:
    script = program("""
        import atexit
        @atexit.register
        def goodbye():
            print("goodbye")
        assert callable(goodbye) and goodbye.__name__ == "goodbye"
    """)
    result = gsup.run("run", "--python", PYTHON, "-q", str(script))
    assert result.returncode == 0 and result.stdout.startswith("goodbye\n"), result


def test_threading_atexit_callbacks_run_before_atexit(gsup: Gsup, program: Program) -> None:
    script = program("""
        import atexit
        from concurrent.futures import ThreadPoolExecutor
        atexit.register(lambda: None)
        with ThreadPoolExecutor(1) as pool:
            pool.submit(pow, 2, 8).result()
    """)
    proc = only(gsup.report(str(script)))
    [threaded] = [h for h in proc["handlers"] if h["kind"] == "threading"]
    assert threaded["name"] == "_python_exit" and threaded["status"] == "ran"
    assert threaded["order"] == 1  # threading._shutdown runs before atexit


def test_orphaned_grandchild_is_reaped_by_gsup_with_its_status(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    done = tmp_path / "grandchild-done"
    grandchild = program(f"""
        import os, sys, time
        while os.getppid() == int(sys.argv[1]):   # until the child is gone and gsup adopted us
            time.sleep(0.01)
        open({str(done)!r}, "w").close()
        sys.exit(5)
    """, name="grandchild.py")
    child = program(f"""
        import os, subprocess, sys
        subprocess.Popen([sys.executable, {str(grandchild)!r}, str(os.getpid())])
    """, name="child.py")
    root = program(f"""
        import os, subprocess, sys, time
        subprocess.run([sys.executable, {str(child)!r}])
        while not os.path.exists({str(done)!r}):
            time.sleep(0.01)
    """)
    report = gsup.report(str(root))
    gc = role(report, "grandchild")
    assert gc["end"] == {"how": "exited", "code": 5, "signal": None, "reaped_by": "gsup"}
    assert gc["orphaned"] is True
    assert role(report, "child")["end"]["reaped_by"] == f"parent {role(report, 'parent')['pid']}"
    assert report["leftovers"] == []


def test_non_python_child_is_reported_uninstrumented(gsup: Gsup, program: Program) -> None:
    script = program("""
        import subprocess
        subprocess.run(["sh", "-c", "sleep 0.2; exit 7"])
    """)
    report = gsup.report(str(script))
    child = role(report, "child")
    assert child["instrumented"] is False
    assert child["uninstrumented_reason"] == "not a Python program"
    assert child["end"]["code"] == 7
    assert child["explanation"].startswith("not instrumented (not a Python program)")


def test_isolated_python_child_is_reported_uninstrumented(gsup: Gsup, program: Program) -> None:
    script = program("""
        import subprocess, sys
        subprocess.run([sys.executable, "-I", "-c", "import time; time.sleep(0.3)"])
    """)
    report = gsup.report(str(script))
    child = role(report, "child")
    assert child["instrumented"] is False
    assert "-I" in child["uninstrumented_reason"]
    assert report["unseen"] == {"processes": 1, "handlers": 0}  # counted at the top, never omitted


def test_module_and_command_modes(gsup: Gsup, program: Program) -> None:
    program("import atexit\natexit.register(print, 'bye')\n", name="mymod.py")
    by_module = only(gsup.report("-m", "mymod"))
    assert by_module["argv"][1:] == ["-m", "mymod"]
    script = program("import atexit\natexit.register(print, 'bye')\n")
    result = gsup.run("run", "--json", "--", PYTHON, str(script), "arg")
    by_command = only(result.report)
    assert by_command["argv"][-1] == "arg"
    assert [h["status"] for h in by_command["handlers"] if h["name"] == "print"] == ["ran"]


TRANSPARENT = {
    "exit 3": """
        import atexit, sys
        atexit.register(lambda: print("at exit", flush=True))
        print("out line"); print("err line", file=sys.stderr)
        raise SystemExit(3)
    """,
    "unhandled": """
        import atexit
        atexit.register(print, "handler")
        raise KeyError("boom")
    """,
    "raising handler": """
        import atexit
        def bad(): raise ValueError("in handler")
        atexit.register(print, "after"); atexit.register(bad); atexit.register(print, "before")
    """,
    "os._exit": """
        import atexit, os, sys
        atexit.register(print, "never")
        sys.stdout.write("partial"); sys.stdout.flush()
        os._exit(9)
    """,
    "self SIGTERM": """
        import atexit, os, signal
        atexit.register(print, "never")
        os.kill(os.getpid(), signal.SIGTERM)
    """,
}


@pytest.mark.parametrize("name", sorted(TRANSPARENT))
def test_output_and_status_pass_through_unchanged(gsup: Gsup, program: Program, name: str) -> None:
    script = program(TRANSPARENT[name])
    direct = subprocess.run([PYTHON, str(script)], capture_output=True, text=True, check=False)
    through = gsup.run("run", "-q", "--python", PYTHON, str(script))
    assert through.returncode == 0  # gsup worked; the program's status is in the report
    assert through.stdout.startswith(direct.stdout)
    assert without_addresses(through.stderr) == without_addresses(direct.stderr)
    end = only(gsup.report(str(script)))["end"]
    if direct.returncode < 0:
        assert end["signal"] == signal.Signals(-direct.returncode).name
    else:
        assert end["code"] == direct.returncode


def test_exec_into_python_and_into_another_program(gsup: Gsup, program: Program) -> None:
    second = program("""
        import atexit, os
        atexit.register(print, "second image's handler")
        os.execv("/bin/sh", ["sh", "-c", "exit 6"])
    """, name="second.py")
    first = program(f"""
        import atexit, os, sys
        atexit.register(print, "never: exec replaces the image")
        os.execv(sys.executable, [sys.executable, {str(second)!r}])
    """)
    report = gsup.report(str(first))
    images = [p for p in report["processes"] if p["role"] == "parent"]
    assert [p["end"]["how"] for p in images] == ["exec", "exec", "exited"]
    assert len({p["pid"] for p in images}) == 1
    assert images[0]["end"]["exec"][-1] == str(second)
    assert images[1]["end"]["exec"] == ["sh", "-c", "exit 6"]
    assert images[2]["instrumented"] is False and images[2]["end"]["code"] == 6
    assert all(h["status"] == "not-run" for p in images[:2] for h in p["handlers"] if h["name"] == "print")
    assert images[0]["explanation"].startswith("replaced itself with exec")


def test_scrubbed_environment_child_is_uninstrumented(gsup: Gsup, program: Program) -> None:
    script = program("""
        import subprocess, sys
        subprocess.run([sys.executable, "-c", "pass"], env={})
    """)
    child = role(gsup.report(str(script)), "child")
    assert child["instrumented"] is False
    assert "environment" in child["uninstrumented_reason"]
    assert child["end"] == {"how": "exited", "code": 0, "signal": None, "reaped_by": f"parent {child['ppid']}"}


def test_status_reaped_by_a_non_python_parent_is_unknown(gsup: Gsup, program: Program) -> None:
    script = program("""
        import subprocess, sys
        subprocess.run(["sh", "-c", f"{sys.executable} -c 'import sys; sys.exit(4)'; exit 0"])
    """)
    report = gsup.report(str(script))
    sh, grandchild = role(report, "child"), role(report, "grandchild")
    assert sh["instrumented"] is False and sh["end"]["code"] == 0
    assert grandchild["instrumented"] is True and grandchild["ppid"] == sh["pid"]
    assert grandchild["end"]["how"] == "unknown"
    assert grandchild["end"]["reason"] == f"reaped by its parent (pid {sh['pid']}), which is not instrumented"
    assert grandchild["atexit_ran"] is True  # what the probe saw is still reported


def test_after_waits_for_a_late_target(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    script = program("""
        import subprocess, sys, time
        time.sleep(0.6)
        subprocess.run([sys.executable, "-c", "import time; time.sleep(30)"])
    """)
    report = gsup.report("--signal", "KILL", "--target", "child", "--after", "100ms", str(script))
    [action] = report["actions"]
    child = role(report, "child")
    assert action["pids"] == [child["pid"]] and action["at"] >= 0.6
    assert child["end"]["signal"] == "SIGKILL"
    assert role(report, "parent")["end"]["code"] == 0


def test_multiprocessing_fork_children(gsup: Gsup, program: Program) -> None:
    script = program("""
        import atexit, multiprocessing as mp, sys
        atexit.register(print, "parent handler")
        def work():
            print("in the child", flush=True)
        if __name__ == "__main__":
            proc = mp.get_context("fork").Process(target=work)
            proc.start(); proc.join()
            sys.exit(proc.exitcode)
    """)
    report = gsup.report(str(script))
    parent, child = role(report, "parent"), role(report, "child")
    assert child["forked"] is True and child["ppid"] == parent["pid"]
    inherited = [h for h in child["handlers"] if h["name"] == "print"]
    assert inherited and all(h["inherited"] for h in inherited)
    if sys.version_info < (3, 13):  # multiprocessing's fork children leave through os._exit before 3.13
        assert child["end"] == {"how": "os._exit", "code": 0, "signal": None, "reaped_by": f"parent {parent['pid']}"}
        assert [h["status"] for h in inherited] == ["not-run"]
    assert parent["end"]["code"] == 0 and [h["status"] for h in parent["handlers"] if h["name"] == "print"] == ["ran"]


@pytest.mark.parametrize("minor", [9, 10], ids=["3.9", "3.10"])
def test_default_sigint_handler_before_311_is_unobservable_unless_proven(gsup: Gsup, program: Program,
                                                                         minor: int) -> None:
    """Before 3.11 the probe leaves CPython's SIGINT handler bare: a caught
    KeyboardInterrupt leaves no trace, so its run is unknown, not "not invoked"."""
    _, python = pyenv_python(minor)
    caught = program("""
        import time
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            pass
    """)
    report = gsup.run("run", "-q", "--json", "--python", python, "--signal", "INT", str(caught)).report
    [sigint] = [s for s in only(report)["signal_handlers"] if s["signal"] == "SIGINT"]
    assert sigint["handler"] == "default_int_handler" and sigint["invoked"] is None
    uncaught = program("import time\ntime.sleep(60)\n", name="uncaught.py")
    report = gsup.run("run", "-q", "--json", "--python", python, "--signal", "INT", str(uncaught)).report
    [sigint] = [s for s in only(report)["signal_handlers"] if s["signal"] == "SIGINT"]
    assert sigint["invoked"] is True  # the KeyboardInterrupt that ended it proves the run
    in_atexit = program("""
        import atexit, os, signal
        atexit.register(print, "the next handler ran")
        atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT))
    """, name="in_atexit.py")
    result = gsup.run("run", "-q", "--json", "--python", python, str(in_atexit))
    process = only(result.report)
    assert process["end"]["code"] == 0 and "the next handler ran" in result.stdout + result.stderr
    assert [h["status"] for h in process["handlers"]] == ["ran", "raised"]
    [sigint] = [s for s in process["signal_handlers"] if s["signal"] == "SIGINT"]
    assert sigint["invoked"] is True  # the KeyboardInterrupt that escaped an exit handler proves it too
    assert process["explanation"].startswith("got SIGINT while its exit handlers ran: the KeyboardInterrupt "
                                             "escaped <lambda>, and the process exited with code 0")


def test_handler_that_restores_the_default_and_reraises_is_still_shown_as_run(gsup: Gsup, program: Program,
                                                                              tmp_path: Path) -> None:
    """uvicorn's way: the handler runs, puts SIG_DFL back and re-sends the signal to itself."""
    script = program(f"""
        import os, signal, time
        def handle_exit(signum, frame):
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        signal.signal(signal.SIGTERM, handle_exit)
        open({str(tmp_path / "ready")!r}, "w").close()
        time.sleep(60)
    """)
    parent = only(gsup.report("--signal", "TERM", "--ready-file", str(tmp_path / "ready"), str(script)))
    assert parent["end"] == {"how": "signaled", "code": None, "signal": "SIGTERM", "reaped_by": "gsup"}
    term = parent["signal_handlers"][-1]
    assert term == {"signal": "SIGTERM", "handler": "handle_exit", "invoked": True, "invocations": 1,
                    "times": term["times"]} and len(term["times"]) == 1  # when it ran: report 1.2
    assert parent["reraised"] == "SIGTERM"
    assert parent["explanation"] == ("got SIGTERM by gsup: its Python handler handle_exit ran, restored SIGTERM's "
                                     "default and re-raised it: died by SIGTERM, so atexit did not run")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_threading_callback_raising_where_multiprocessing_shuts_threading_down(gsup: Gsup, program: Program,
                                                                              method: str) -> None:
    """multiprocessing's _bootstrap calls threading._shutdown() itself, so a raising callback
    reaches no unraisable hook there.  A fork child then leaves through os._exit(1); a spawn
    child's interpreter runs the callbacks once more at exit: two runs, both raising."""
    script = program("""
        import multiprocessing, sys, threading
        def boom():
            raise ValueError("boom")
        def target():
            threading._register_atexit(boom)
        if __name__ == "__main__":
            p = multiprocessing.get_context(sys.argv[1]).Process(target=target)
            p.start()
            p.join()
    """)
    report = gsup.report(str(script), method)
    [child] = [p for p in report["processes"] if any(h["name"] == "boom" for h in p["handlers"])]
    [boom] = [h for h in child["handlers"] if h["name"] == "boom"]
    assert (boom["status"], boom["exception"], boom.get("runs", 1)) == (
        "raised", "ValueError", 1 if method == "fork" else 2)
    assert (child["end"]["how"], child["end"]["code"]) == (("os._exit", 1) if method == "fork" else ("exited", 1))


def test_an_uninstrumented_image_before_an_exec_is_reported(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """``python -I`` (no probe) execs a Python the probe enters: both images are reported."""
    ready = tmp_path / "ready"
    script = program(f"""
        import subprocess, sys
        code = ("import os, sys, time\\n"
                "deadline = time.monotonic() + 30\\n"
                "while not os.path.exists({str(ready)!r}) and time.monotonic() < deadline: time.sleep(0.01)\\n"
                "os.execv(sys.executable, [sys.executable, '-c', 'pass'])")
        child = subprocess.Popen([sys.executable, "-I", "-c", code])
        child.wait()
    """)
    run = gsup.start("run", "--json", "--python", PYTHON, str(script))
    assert run.stderr is not None
    # gsup's progress lines: wait until it has seen the child run python -I (the child gives up
    # waiting after 30 s, so a missing line ends the run and fails here instead of hanging)
    seen = any("(child) running:" in line and " -I " in line for line in run.stderr)
    assert seen, "gsup never reported the python -I child"
    ready.write_text("")  # only then may the child exec
    before, after = [p for p in gsup.finish(run).report["processes"] if p["role"] == "child"]
    assert (before["instrumented"], before["argv"][1], before["end"]["how"]) == (False, "-I", "exec")
    assert before["end"]["exec"][1:] == ["-c", "pass"]
    assert (after["instrumented"], after["argv"][1:], after["end"]["how"]) == (True, ["-c", "pass"], "exited")


def write_shim(directory: Path, real: str) -> Path:
    """A ``python`` like pyenv's shim: a shell script whose helpers run as its children, then exec."""
    directory.mkdir()
    shim = directory / "python"
    shim.write_text(f"#!/bin/sh\nversion=$(sh -c 'echo 3; sleep 0.1')\nexec {real} \"$@\"\n")
    shim.chmod(0o755)
    return shim


def test_a_shim_on_path_is_resolved_to_the_interpreter_behind_it(gsup: Gsup, program: Program,
                                                                tmp_path: Path) -> None:
    """The shim's helpers were the tree's child and grandchild ("unknown" endings), and -t child hit them."""
    shim = write_shim(tmp_path / "shims", PYTHON)
    script = program("import atexit; atexit.register(print, 'bye')")
    env = {"PATH": f"{shim.parent}:{os.environ['PATH']}", "VIRTUAL_ENV": ""}
    result = gsup.run("run", "--json", str(script), env=env)
    assert result.returncode == 0, result.stderr
    report = result.report
    assert [(p["role"], p["instrumented"]) for p in report["processes"]] == [("parent", True)]
    assert report["command"][0] == PYTHON
    assert report["interpreter"] == f"PATH: {shim} is a shim (a script), it runs {PYTHON}"


def test_a_shim_given_as_python_is_resolved_too(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    shim = write_shim(tmp_path / "shims", PYTHON)
    result = gsup.run("run", "--json", "--python", str(shim), str(program("pass")))
    assert result.returncode == 0, result.stderr
    report = result.report
    assert report["command"][0] == PYTHON and report["interpreter"].startswith(f"--python: {shim} is a shim")
    assert len(report["processes"]) == 1


def test_a_shim_that_cannot_say_its_interpreter_is_one_line_exit_2(gsup: Gsup, program: Program,
                                                                  tmp_path: Path) -> None:
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'pyenv: version `3.99` is not installed' >&2\nexit 1\n")
    broken.chmod(0o755)
    result = gsup.run("run", "--python", str(broken), str(program("pass")))
    assert result.returncode == 2
    assert result.stderr == (f"gsup: error: {broken} is a shim and could not say which Python it runs: "
                             "pyenv: version `3.99` is not installed; pass --python PATH\n")


def test_stdin_from_a_file_and_from_null(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    script = program("import sys; print(repr(sys.stdin.read()))")
    given = tmp_path / "answers.txt"
    given.write_text("bob\n")
    assert gsup.run("run", "-q", "--python", PYTHON, "--stdin", str(given), str(script)).stdout.startswith("'bob\\n'\n")
    assert gsup.run("run", "-q", "--python", PYTHON, "--stdin", "null", str(script)).stdout.startswith("''\n")


@pytest.mark.parametrize(("stdin", "message"), [
    ("missing.txt", "--stdin missing.txt: not a readable file (or use null, tty)"),
    ("tty", "--stdin tty: gsup's stdin is not a terminal it runs in the foreground of"),
])
def test_bad_stdin_is_one_line_exit_2(gsup: Gsup, program: Program, stdin: str, message: str) -> None:
    result = gsup.run("run", "--python", PYTHON, "--stdin", stdin, str(program("pass")))
    assert (result.returncode, result.stderr) == (2, f"gsup: error: {message}\n")


def test_a_stopped_program_gets_sigcont_after_the_signal_and_acts_on_it(gsup: Gsup, program: Program) -> None:
    """SIGTERM to a stopped process stays pending; the grace's SIGKILL used to be what ended it."""
    script = program("""
        import atexit, os, signal, sys
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        atexit.register(print, "cleaned up")
        os.kill(os.getpid(), signal.SIGSTOP)
    """)
    result = gsup.run("run", "--json", "--python", PYTHON, "--signal", "TERM", "--grace", "60s", str(script))
    assert result.returncode == 0, result.stderr
    report = result.report
    assert [(a["signal"], a["by"]) for a in report["actions"]] == [("SIGTERM", "gsup"), ("SIGCONT", "gsup")]
    parent = role(report, "parent")
    assert parent["end"]["how"] == "exited" and statuses(parent, "builtins") == {"print": "ran"}
    assert f"pid {parent['pid']} (parent) is stopped (SIGSTOP or SIGTSTP)" in result.stderr
    assert report["duration"] < 30
