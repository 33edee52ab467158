"""What processes do to themselves and each other with signals, and how handlers are named.

Small real programs under ``gsup run``: a signal a process sends (``os.kill``,
``os.killpg``, ``signal.raise_signal``, ``signal.pthread_kill``) is recorded with its
receiver, signal and time; a handler that restores the default and re-raises is
told as such (why atexit did not run although the handler did); handlers wrapped in
``functools.partial`` or ``functools.wraps`` are named by the function they run; a
watched call made before the stop is start-up work, never a shutdown action.
"""

from __future__ import annotations

from tests.helpers import Gsup, Program, role

RERAISE = """
    import atexit, os, signal

    def bye():
        pass

    def on_term(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)

    atexit.register(bye)
    signal.signal(signal.SIGTERM, on_term)
    os.kill(os.getpid(), signal.SIGTERM)
    """


def test_a_handler_that_restores_the_default_and_reraises(gsup: Gsup, program: Program) -> None:
    """Observed without gsup: the process dies by SIGTERM (-15) and ``bye`` never runs.
    The report says why: the handler ran, put the default back and raised the signal again."""
    program(RERAISE)
    parent = role(gsup.report("prog.py"), "parent")
    assert parent["end"]["signal"] == "SIGTERM" and parent["reraised"] == "SIGTERM"
    assert [(s["signal"], s["via"], s["pid"]) for s in parent["sent"]] == [
        ("SIGTERM", "kill", parent["pid"]), ("SIGTERM", "raise_signal", parent["pid"])]
    assert all(isinstance(s["at"], float) and s["at"] >= 0 for s in parent["sent"])
    assert parent["explanation"] == ("got SIGTERM: its Python handler on_term ran, restored SIGTERM's default and "
                                     "re-raised it: died by SIGTERM, so atexit did not run; not run: bye")


PTHREAD_KILL = """
    import signal, threading

    def on_usr1(signum, frame):
        print("usr1", flush=True)

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
    """


def test_pthread_kill_is_recorded(gsup: Gsup, program: Program) -> None:
    program(PTHREAD_KILL)
    parent = role(gsup.report("prog.py"), "parent")
    assert [(s["signal"], s["via"], s["pid"]) for s in parent["sent"]] == [("SIGUSR1", "pthread_kill", parent["pid"])]
    assert "reraised" not in parent
    assert parent["end"] == {"how": "exited", "code": 0, "signal": None, "reaped_by": "gsup"}


NAMED = """
    import functools, os, signal

    def on_term(signum, frame, why):
        pass

    def logged(func):
        @functools.wraps(func)
        def wrapper(*args):
            return func(*args)
        return wrapper

    @logged
    def on_usr1(signum, frame):
        pass

    class Server:
        def handle_exit(self, signum, frame):
            pass

    signal.signal(signal.SIGTERM, functools.partial(on_term, why="stop"))
    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGHUP, functools.partial(Server().handle_exit))
    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP):
        os.kill(os.getpid(), sig)
    """


def test_handlers_named_through_partial_and_wraps(gsup: Gsup, program: Program) -> None:
    """asyncio.Runner's SIGINT handler is a partial: its name was ``partial``."""
    program(NAMED)
    parent = role(gsup.report("prog.py"), "parent")
    named = {s["signal"]: (s["handler"], s["invocations"]) for s in parent["signal_handlers"]}
    assert named["SIGTERM"] == ("on_term", 1)
    assert named["SIGUSR1"] == ("on_usr1", 1)
    assert named["SIGHUP"] == ("Server.handle_exit", 1)


STARTUP_CALL = """
    import logging, os, signal, sys, time

    logging.shutdown()  # what logging.config.dictConfig does at start-up
    print("ready", flush=True)
    time.sleep(60)
    """


def test_a_watched_call_before_the_stop_is_start_up(gsup: Gsup, program: Program) -> None:
    program(STARTUP_CALL)
    result = gsup.run("run", "--json", "--signal", "TERM", "--ready-output", "ready", "prog.py")
    assert result.returncode == 0, result.stderr
    parent = role(result.report, "parent")
    [call] = [w for w in parent["watched"] if w["name"] == "shutdown"]
    assert call["before_stop"] is True and call["status"] == "ran"
    assert 0 <= call["started"] <= call["ended"] <= parent["stop_at"]
    assert parent["stop_at"] == result.report["actions"][0]["at"]
    shown = gsup.run("run", "--signal", "TERM", "--ready-output", "ready", "prog.py").stdout
    assert "logging.shutdown" in shown and "during start-up" in shown, shown


KILLPG = """
    import os, signal, sys, time

    HERE = os.path.dirname(os.path.abspath(__file__))

    def ready(name):
        os.close(os.open(os.path.join(HERE, name), os.O_WRONLY | os.O_CREAT))

    def wait_for(*names):
        deadline = time.monotonic() + 30
        while not all(os.path.exists(os.path.join(HERE, n)) for n in names):
            assert time.monotonic() < deadline, names
            time.sleep(0.01)

    leader = os.fork()
    if leader == 0:
        os.setpgid(0, 0)  # its own group, as billiard's pool workers have: the leader of it
        if os.fork() == 0:
            ready("member")
            time.sleep(60)
            os._exit(1)
        ready("leader")
        time.sleep(60)
        os._exit(1)
    wait_for("leader", "member")
    os.killpg(leader, signal.SIGTERM)  # what billiard does to a worker whose TERM timed out
    os.waitpid(leader, 0)
    """


def test_a_signal_sent_to_a_group_names_its_sender(gsup: Gsup, program: Program) -> None:
    """Observed without gsup, wait statuses: the leader and the member of the group both die
    by SIGTERM.  The report names the parent that sent it, through the group, in both."""
    program(KILLPG)
    report = gsup.report("prog.py")
    parent, leader, member = role(report, "parent"), role(report, "child"), role(report, "grandchild")
    assert [(s["signal"], s["via"], s["pid"]) for s in parent["sent"]] == [("SIGTERM", "killpg", -leader["pid"])]
    for proc in (leader, member):
        assert proc["end"]["signal"] == "SIGTERM", proc
    group = f"to its process group {leader['pid']}"
    assert f"by its parent (pid {parent['pid']}) {group}" in leader["explanation"], leader["explanation"]
    assert f"by process (pid {parent['pid']}) {group}" in member["explanation"], member["explanation"]
