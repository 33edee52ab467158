"""Plain scripts under ``gsup run``: every way a process can end, and what ran.

Each program is real and each signal is real; the expectations are CPython's
documented behaviour (see shared/design/exit-semantics.md, section 3).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Callable

from tests.conftest import PYTHON, Gsup, own_fired, role, statuses

Program = Callable[..., Path]

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
    assert term == {"signal": "SIGTERM", "handler": "<lambda>", "invoked": True, "invocations": 1}


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
    assert proc["fired"][-3:] == ["c", "boom", "a"] or own_fired(proc) == ["c", "boom", "a"]


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
    child = role(gsup.report(str(script)), "child")
    assert child["instrumented"] is False
    assert "-I" in child["uninstrumented_reason"]


def test_module_and_command_modes(gsup: Gsup, program: Program) -> None:
    program("import atexit\natexit.register(print, 'bye')\n", name="mymod.py")
    by_module = only(gsup.report("-m", "mymod"))
    assert by_module["argv"][1:] == ["-m", "mymod"]
    script = program("import atexit\natexit.register(print, 'bye')\n")
    result = gsup.run("run", "--json", "--", PYTHON, str(script), "arg")
    by_command = only(result.report)
    assert by_command["argv"][-1] == "arg"
    assert [h["status"] for h in by_command["handlers"] if h["name"] == "print"] == ["ran"]


def test_output_and_status_pass_through_unchanged(gsup: Gsup, program: Program) -> None:
    script = program("""
        import atexit, sys
        atexit.register(lambda: print("at exit", flush=True))
        print("out line"); print("err line", file=sys.stderr)
        raise SystemExit(3)
    """)
    direct = subprocess.run([PYTHON, str(script)], capture_output=True, text=True, check=False)
    through = gsup.run("run", "-q", "--python", PYTHON, str(script))
    assert through.returncode == 0  # gsup worked; the program's status is in the report
    assert through.stdout.startswith(direct.stdout)
    assert through.stderr == direct.stderr
    reported = only(gsup.report(str(script)))
    assert reported["end"]["code"] == direct.returncode == 3
