"""Before every SIGKILL gsup sends because a wait ran out, every thread's stack, and where each process was stuck.

Each program hangs its shutdown in one of the ways real services do: a
non-daemon thread that ``threading._shutdown`` waits for (so atexit never
starts), an atexit handler in ``recv()`` on a peer that never answers, an
atexit handler waiting on a lock a daemon thread holds, a signal handler that
blocks.  The report must name the exact file:line, and the JSON carry it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import INTERPRETERS, PYTHON, Gsup, Program, role

GRACE = "0.5s"


def line_of(path: Path, marker: str) -> int:
    """The line of ``path`` carrying the comment ``# <marker>``."""
    lines = path.read_text().splitlines()
    return next(n for n, text in enumerate(lines, 1) if text.rstrip().endswith(f"# {marker}"))


def stuck_run(gsup: Gsup, prog: Path, ready: Path, *options: str, python: str = PYTHON) -> dict[str, Any]:
    """The parent's report entry after SIGTERM, once the program said it was ready, and a short grace."""
    report = gsup.report("--python", python, "--signal", "TERM", "--ready-file", str(ready), "--grace", GRACE,
                         *options, str(prog))
    return role(report, "parent")


NON_DAEMON = """
    import atexit, signal, sys, threading, time

    def poll_forever():
        while True:
            time.sleep(0.05)  # poll

    def on_term(signum, frame):
        sys.exit(0)

    def close_db():
        pass

    signal.signal(signal.SIGTERM, on_term)
    atexit.register(close_db)
    threading.Thread(target=poll_forever, name="poller").start()
    open({ready!r}, "w").close()
    time.sleep(60)
    """


@pytest.mark.parametrize("python", INTERPRETERS)
def test_a_non_daemon_thread_keeps_shutdown_waiting_and_atexit_never_starts(
        gsup: Gsup, program: Program, tmp_path: Path, python: str) -> None:
    ready = tmp_path / "ready"
    prog = program(textwrap.dedent(NON_DAEMON).format(ready=str(ready)))
    proc = stuck_run(gsup, prog, ready, python=python)
    stuck = proc["stuck"]
    assert stuck["kind"] == "joining-thread"
    assert stuck["waiting_for"] == ["poller"] and stuck["thread"] == "poller"
    assert stuck["frame"] == {"file": str(prog), "line": line_of(prog, "poll"), "function": "poll_forever"}
    assert stuck["source"] == "time.sleep(0.05)  # poll"
    assert stuck["not_run"] == ["close_db"]
    assert stuck["summary"].startswith(f"waiting for non-daemon thread 'poller' (prog.py:{line_of(prog, 'poll')} "
                                       "in poll_forever); atexit never started: make it daemon=True")
    main, poller = proc["stacks"]
    assert main["main"] and main["name"] == "MainThread" and not main["daemon"]
    assert main["frames"][0]["function"] == "_shutdown"
    assert poller["name"] == "poller" and not poller["daemon"] and poller["frames"][0]["function"] == "poll_forever"
    assert not any("_gsup_probe" in f["file"] for t in proc["stacks"] for f in t["frames"])


def test_ctrl_c_then_a_non_daemon_thread(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    source = textwrap.dedent(NON_DAEMON).format(ready=str(ready)).replace("signal.signal(", "# signal.signal(")
    prog = program(source)
    report = gsup.report("--signal", "INT", "--target", "group", "--ready-file", str(ready), "--grace", GRACE,
                         str(prog))
    stuck = role(report, "parent")["stuck"]
    assert stuck["kind"] == "joining-thread" and stuck["frame"]["line"] == line_of(prog, "poll")


RECV = """
    import atexit, signal, socket, sys, time

    ours, peer = socket.socketpair()

    def close_db():
        pass

    def flush_remote():
        ours.recv(1024)  # recv

    def on_term(signum, frame):
        sys.exit(0)

    atexit.register(close_db)
    atexit.register(flush_remote)
    signal.signal(signal.SIGTERM, on_term)
    open({ready!r}, "w").close()
    time.sleep(60)
    """


@pytest.mark.parametrize("python", INTERPRETERS)
def test_an_atexit_handler_blocked_in_recv_is_named_at_its_line(
        gsup: Gsup, program: Program, tmp_path: Path, python: str) -> None:
    ready = tmp_path / "ready"
    prog = program(textwrap.dedent(RECV).format(ready=str(ready)))
    proc = stuck_run(gsup, prog, ready, python=python)
    stuck = proc["stuck"]
    line = line_of(prog, "recv")
    assert stuck["kind"] == "handler-blocked" and stuck["handler"] == "flush_remote"
    assert stuck["frame"] == {"file": str(prog), "line": line, "function": "flush_remote"}
    assert stuck["not_run"] == ["close_db"]
    assert 0.3 < stuck["seconds"] < 30
    assert stuck["summary"].startswith(f"flush_remote blocked at prog.py:{line} on `ours.recv(1024)  # recv` for ")
    assert stuck["summary"].endswith("; close_db never ran")


LOCK = """
    import atexit, signal, sys, threading, time

    lock = threading.Lock()
    held = threading.Event()

    def hold():
        with lock:
            held.set()
            time.sleep(60)  # holder

    def save_state():
        with lock:  # waits
            pass

    def on_term(signum, frame):
        sys.exit(0)

    atexit.register(save_state)
    signal.signal(signal.SIGTERM, on_term)
    threading.Thread(target=hold, name="holder", daemon=True).start()
    held.wait()
    open({ready!r}, "w").close()
    time.sleep(60)
    """


def test_an_atexit_handler_waiting_on_a_lock_names_the_thread_holding_it(
        gsup: Gsup, program: Program, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    prog = program(textwrap.dedent(LOCK).format(ready=str(ready)))
    stuck = stuck_run(gsup, prog, ready)["stuck"]
    assert stuck["kind"] == "handler-blocked" and stuck["handler"] == "save_state"
    assert stuck["frame"]["line"] == line_of(prog, "waits") and stuck["holder"] == "holder"
    assert f"waiting on a lock held by thread 'holder' (prog.py:{line_of(prog, 'holder')} in hold)" in stuck["summary"]


SIGNAL_HANDLER = """
    import signal, threading, time

    def on_term(signum, frame):
        threading.Event().wait()  # blocked

    signal.signal(signal.SIGTERM, on_term)
    open({ready!r}, "w").close()
    time.sleep(60)
    """


def test_a_blocked_signal_handler(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    prog = program(textwrap.dedent(SIGNAL_HANDLER).format(ready=str(ready)))
    stuck = stuck_run(gsup, prog, ready)["stuck"]
    assert stuck["kind"] == "handler-blocked" and stuck["handler"] == "SIGTERM handler on_term"
    assert stuck["frame"] == {"file": str(prog), "line": line_of(prog, "blocked"), "function": "on_term"}
    assert 0.3 < stuck["seconds"] < 30


def test_a_process_that_is_not_python_gets_no_stack_and_is_not_signalled_for_one(
        gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """The default action of a real-time signal is to terminate: gsup never sends it
    to a process without the probe's handler (here ``sh`` ignoring SIGTERM)."""
    ready = tmp_path / "ready"
    prog = program(f"""
        import subprocess
        subprocess.run(["sh", "-c", "trap '' TERM; touch {ready}; while :; do sleep 0.05; done"])
        """)
    report = gsup.report("--signal", "TERM", "--target", "group", "--ready-file", str(ready), "--grace", GRACE,
                         str(prog))
    [shell] = [p for p in report["processes"] if p["argv"][:1] == ["sh"]]
    assert shell["stuck"] == {"kind": "no-stack", "summary": "no stack (not a Python process, or not instrumented)",
                              **{k: None for k in ("thread", "frame", "source", "handler", "seconds", "holder")},
                              "waiting_for": [], "not_run": []}
    assert shell["end"]["how"] == "left-running" and shell["end"]["then"]["signal"] == "SIGKILL"


def test_a_run_that_ends_by_itself_takes_no_stacks(gsup: Gsup, program: Program) -> None:
    proc = role(gsup.report(str(program("print('hi')\n"))), "parent")
    assert "stacks" not in proc and "stuck" not in proc


def test_the_exception_a_signal_handler_raised_is_recorded_with_its_origin_though_atexit_never_began(
        gsup: Gsup, program: Program, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    prog = program(textwrap.dedent(NON_DAEMON).format(ready=str(ready)).replace("sys.exit(0)", "sys.exit(0)  # exit"))
    proc = stuck_run(gsup, prog, ready)
    assert not proc["atexit_ran"] and proc["exception"] == "SystemExit"
    origin = f"SystemExit(0) raised by SIGTERM handler on_term at prog.py:{line_of(prog, 'exit')}"
    assert proc["exception_origin"] == origin


def test_an_uncaught_error_then_a_non_daemon_thread(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    prog = program(f"""
        import signal, threading, time

        def poll_forever():
            while True:
                time.sleep(0.05)

        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        threading.Thread(target=poll_forever, name="poller").start()
        open({str(ready)!r}, "w").close()
        raise ValueError("boom")  # boom
        """)
    report = gsup.report("--signal", "TERM", "--ready-file", str(ready), "--after", "0.3s", "--grace", GRACE,
                         str(prog))
    proc = role(report, "parent")
    assert proc["exception"] == "ValueError"
    assert proc["exception_origin"] == f"ValueError('boom') raised at prog.py:{line_of(prog, 'boom')}"
    assert proc["stuck"]["kind"] == "joining-thread"


def test_a_main_thread_busy_in_c_code_cannot_answer_and_the_report_says_so(
        gsup: Gsup, program: Program, tmp_path: Path) -> None:
    """Python runs signal handlers between bytecodes: ``sum`` over a huge range never gets there."""
    ready = tmp_path / "ready"
    prog = program(f"""
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open({str(ready)!r}, "w").close()
        sum(range(10 ** 13))
        """)
    stuck = stuck_run(gsup, prog, ready)["stuck"]
    assert stuck["kind"] == "no-stack"
    assert stuck["summary"] == ("no stack: no answer within 1 s "
                                "(its main thread is running C code that does not return to Python)")
