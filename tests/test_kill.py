"""``gsup kill`` and ``gsup ps`` against a live ``gsup run``, with real processes.

The program is a Python parent with one Python child; each registers an atexit
handler, writes its pid to a ready file (atomically) and waits.  The test
synchronises on those files, signals from a separate ``gsup kill`` process,
then reads the background run's JSON report.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any, Callable

import psutil
import pytest

from tests.helpers import PYTHON, Gsup, Program, ready_then_sleep, role, statuses, wait_until, wait_while_running

PARENT = """
import atexit, os, subprocess, sys

def parent_bye():
    print("parent bye", file=sys.stderr)

atexit.register(parent_bye)
ready = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
r, w = os.pipe()
child = subprocess.Popen([sys.executable, os.path.join(here, "kill_child.py"), ready], pass_fds=(w,))
os.close(w)
with open(os.path.join(ready, "parent.tmp"), "w") as out:
    out.write(str(os.getpid()))
os.replace(os.path.join(ready, "parent.tmp"), os.path.join(ready, "parent"))
os.read(r, 1)  # EOF once the child has ended: only then reap it
child.wait()
"""

# A parent signalled while it sits in waitpid can reap its (also signalled) child in
# the kernel and die before the probe records the status: PARENT waits on a pipe
# instead, so the tests above are deterministic.  This one makes that window wide
# on purpose: once the main thread is in waitpid, a thread takes the GIL for good,
# so after the reap the main thread never gets back to Python.
HOG_PARENT = """
import atexit, os, subprocess, sys, threading

def parent_bye():
    print("parent bye", file=sys.stderr)

def hog():
    wchan = "/proc/%d/task/%d/wchan" % (os.getpid(), os.getpid())
    while True:
        with open(wchan) as f:
            if f.read() == "do_wait":
                break
    with open(os.path.join(ready, "hogging"), "w"):
        pass
    sum(range(10**15))  # one C call: the GIL is never released again

atexit.register(parent_bye)
ready = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
child = subprocess.Popen([sys.executable, os.path.join(here, "kill_child.py"), ready])
with open(os.path.join(ready, "parent.tmp"), "w") as out:
    out.write(str(os.getpid()))
os.replace(os.path.join(ready, "parent.tmp"), os.path.join(ready, "parent"))
threading.Thread(target=hog, daemon=True).start()
child.wait()
"""

CHILD = """
import atexit, os, sys, threading

def child_bye():
    print("child bye", file=sys.stderr)

atexit.register(child_bye)
ready = sys.argv[1]
with open(os.path.join(ready, "child.tmp"), "w") as out:
    out.write(str(os.getpid()))
os.replace(os.path.join(ready, "child.tmp"), os.path.join(ready, "child"))
threading.Event().wait()
"""

SENT = re.compile(r"^sent (SIG\w+) to (\S+) in session (\S+): (.*)$")
COMMUNICATE = 30


class Run:
    """One background ``gsup run --json`` of the parent/child program."""

    def __init__(self, gsup: Gsup, prog: Path, ready: Path) -> None:
        ready.mkdir()
        self.gsup = gsup
        self.ready = ready
        self.argv = {"parent": [PYTHON, str(prog), str(ready)],
                     "child": [PYTHON, str(prog.with_name("kill_child.py")), str(ready)]}
        self.proc = gsup.start("run", "--json", "--grace", "2s", "--python", PYTHON, str(prog), str(ready))
        self.parent = self._pid("parent")
        self.child = self._pid("child")
        self.session = wait_until(lambda: self._session(gsup.home), what="the session directory")

    def _pid(self, name: str) -> int:
        path = self.ready / name
        return int(wait_while_running(self.proc, lambda: path.exists() and int(path.read_text()),
                                      f"{name} ready file"))

    def _session(self, home: Path) -> str | None:
        found = [d.name for d in home.iterdir() if d.name.startswith(f"{self.proc.pid}-")]
        return found[0] if len(found) == 1 else None

    def report(self) -> dict[str, Any]:
        data = self.gsup.finished_report(self.proc, timeout=COMMUNICATE)
        assert data["schema"] == "gsup.report/1"
        assert data["session"] == self.session
        assert data["complete"] is True, data["incomplete"]
        return data


@pytest.fixture
def start(gsup: Gsup, program: Program, tmp_path: Path) -> Callable[..., Run]:
    """Start a run of the parent/child program; ``name`` is its ready directory."""
    progs = {PARENT: program(PARENT, "kill_parent.py"), HOG_PARENT: program(HOG_PARENT, "kill_hog.py")}
    program(CHILD, "kill_child.py")

    def make(name: str = "ready", source: str = PARENT) -> Run:
        return Run(gsup, progs[source], tmp_path / name)

    return make


def sent(stdout: str) -> tuple[str, str, str, list[int]]:
    """(signal, target, session, pids) from ``gsup kill``'s line."""
    match = SENT.match(stdout.splitlines()[0])
    assert match, stdout
    pids = [int(p) for p in re.findall(r"(\d+) \(", match.group(4))]
    return match.group(1), match.group(2), match.group(3), pids


def kill_actions(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in report["actions"] if a["by"] == "gsup kill"]


def by_pid(report: dict[str, Any], pid: int) -> dict[str, Any]:
    found = [p for p in report["processes"] if p["pid"] == pid]
    assert len(found) == 1, report["processes"]
    return dict(found[0])


def assert_killed(proc: dict[str, Any], sig: str, handler: str) -> None:
    assert proc["end"]["how"] == "signaled", proc["end"]
    assert proc["end"]["signal"] == sig
    assert statuses(proc) == {handler: "not-run"}
    assert proc["fired"] == []
    assert "by `gsup kill`" in proc["explanation"], proc["explanation"]
    if sig == "SIGKILL":
        assert "SIGKILL cannot be handled" in proc["explanation"]
    else:
        assert f"{sig} by `gsup kill` had no Python handler" in proc["explanation"]


def assert_ran_after_child(proc: dict[str, Any], child: int, sig: str) -> None:
    """The parent outlived its child: child.wait() returned, it exited 0, atexit ran."""
    assert proc["end"]["how"] == "exited" and proc["end"]["code"] == 0, proc["end"]
    assert statuses(proc) == {"parent_bye": "ran"}
    assert proc["fired"] == ["parent_bye"]
    assert f"after its child ended ({child} killed by {sig})" in proc["explanation"], proc["explanation"]


def assert_leftover(report: dict[str, Any], pid: int) -> None:
    """Orphaned and still running: gsup SIGKILLed it after the grace period."""
    proc = by_pid(report, pid)
    assert proc["end"]["how"] == "left-running", proc["end"]
    assert proc["end"]["then"]["signal"] == "SIGKILL"
    assert statuses(proc) == {"child_bye": "not-run"}
    assert report["leftovers"] == [pid]
    assert any(a["by"] == "leftovers" and a["pids"] == [pid] for a in report["actions"]), report["actions"]


# -- each target --------------------------------------------------------------

CASES = [
    ("TERM", "parent"),
    ("KILL", "parent"),
    ("KILL", "child"),
    ("TERM", "child"),
    ("TERM", "group"),
    ("KILL", "tree"),
    ("TERM", "pid:child"),
    ("KILL", "pid:parent"),
]


@pytest.mark.parametrize(("sig", "target"), CASES, ids=[f"{t}-{s}" for s, t in CASES])
def test_kill_target(gsup: Gsup, start: Callable[..., Run], sig: str, target: str) -> None:
    run = start()
    pids = {"parent": run.parent, "child": run.child}
    if target.startswith("pid:"):
        target = f"pid:{pids[target[4:]]}"
    done = gsup.run("kill", "--signal", sig, "--target", target, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # one live session: no note

    expected = {
        "parent": [run.parent], "child": [run.child], "group": [run.parent, run.child],
        "tree": [run.parent, run.child], f"pid:{run.parent}": [run.parent], f"pid:{run.child}": [run.child],
    }[target]
    name, said_target, session, said_pids = sent(done.stdout)
    assert (name, said_target, session) == (f"SIG{sig}", target, run.session)
    assert sorted(said_pids) == sorted(expected)
    # each pid with the start of its command line
    argv = {run.parent: run.argv["parent"], run.child: run.argv["child"]}
    assert done.stdout.splitlines()[0].endswith(": " + ", ".join(
        f"{pid} ({' '.join(argv[pid])[:40]})" for pid in said_pids))

    report = run.report()
    (action,) = kill_actions(report)
    assert action["signal"] == f"SIG{sig}" and action["target"] == target
    assert sorted(action["pids"]) == sorted(expected)
    if target == "group":
        assert action["group"] == run.parent
    assert role(report, "parent")["pid"] == run.parent
    assert role(report, "child")["pid"] == run.child

    parent, child = by_pid(report, run.parent), by_pid(report, run.child)
    if run.parent in expected:
        assert_killed(parent, f"SIG{sig}", "parent_bye")
    if run.child in expected:
        assert_killed(child, f"SIG{sig}", "child_bye")
    if expected == [run.child]:
        assert_ran_after_child(parent, run.child, f"SIG{sig}")
        assert child["end"]["reaped_by"] == f"parent {run.parent}"
        assert report["leftovers"] == []
    elif expected == [run.parent]:
        assert_leftover(report, run.child)
    else:
        assert report["leftovers"] == []


# -- --wait ---------------------------------------------------------------------


def test_kill_wait_explains_each_target(gsup: Gsup, start: Callable[..., Run]) -> None:
    run = start()
    done = gsup.run("kill", "--signal", "TERM", "--target", "tree", "--wait", "--timeout", "20s", timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert sorted(sent(lines[0])[3]) == sorted([run.parent, run.child])
    outcome = sorted(lines[1:])
    assert len(outcome) == 2, done.stdout
    no_handler = "SIGTERM by `gsup kill` had no Python handler: the default action killed the process " \
                 "before atexit could run; not run: "
    assert sorted([
        f"{run.parent} (parent): {no_handler}parent_bye",
        f"{run.child} (child): {no_handler}child_bye",
    ]) == outcome
    # --wait returned only once both had ended: the report agrees with it.
    report = run.report()
    for pid, handler in ((run.parent, "parent_bye"), (run.child, "child_bye")):
        assert_killed(by_pid(report, pid), "SIGTERM", handler)
        assert f"{pid} ({by_pid(report, pid)['role']}): {by_pid(report, pid)['explanation']}" in lines


def test_kill_wait_sigkill_child(gsup: Gsup, start: Callable[..., Run]) -> None:
    run = start()
    done = gsup.run("kill", "--signal", "9", "--target", "child", "--wait", timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1:] == [
        f"{run.child} (child): killed with SIGKILL by `gsup kill`: SIGKILL cannot be handled, nothing ran; "
        "not run: child_bye"
    ]
    report = run.report()
    assert_ran_after_child(by_pid(report, run.parent), run.child, "SIGKILL")


# -- ps -------------------------------------------------------------------------


def test_ps_lists_session_and_tree(gsup: Gsup, start: Callable[..., Run]) -> None:
    assert gsup.run("ps").stdout.strip() == "no live gsup session"
    run = start()
    done = gsup.run("ps", timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    try:
        assert lines[0].split() == ["session", run.session, "gsup", "pid", str(run.proc.pid), *run.argv["parent"]]
        rows = [line.split(None, 2) for line in lines[1:]]
        assert [(int(pid), who) for pid, who, _ in rows] == [(run.parent, "parent"), (run.child, "child")]
        assert rows[0][2] == " ".join(run.argv["parent"])[:60]
        assert rows[1][2] == " ".join(run.argv["child"])[:60]
    finally:
        gsup.run("kill", "--signal", "KILL", "--target", "tree")
    run.report()
    assert gsup.run("ps").stdout.strip() == "no live gsup session"


# -- several sessions -------------------------------------------------------------


def test_two_sessions_newest_by_default_else_named(gsup: Gsup, start: Callable[..., Run]) -> None:
    old = start("ready-old")
    new = start("ready-new")
    assert old.session != new.session

    done = gsup.run("kill", "--signal", "KILL", "--target", "tree", timeout=30)
    assert done.returncode == 0, done.stderr
    assert sent(done.stdout)[2] == new.session
    assert sorted(sent(done.stdout)[3]) == sorted([new.parent, new.child])
    assert done.stderr.startswith("gsup: 2 live sessions; chose the newest"), done.stderr
    assert new.session in done.stderr and old.session in done.stderr and "--session" in done.stderr
    new_report = new.report()
    (action,) = kill_actions(new_report)
    assert sorted(action["pids"]) == sorted([new.parent, new.child])
    assert old.proc.poll() is None  # the older run was not touched
    assert old.parent not in action["pids"] and old.child not in action["pids"]

    done = gsup.run("kill", "--session", old.session, "--signal", "KILL", "--target", "child", timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert sent(done.stdout)[2:] == (old.session, [old.child])
    old_report = old.report()
    (action,) = kill_actions(old_report)
    assert action["pids"] == [old.child]
    assert_killed(by_pid(old_report, old.child), "SIGKILL", "child_bye")
    assert_ran_after_child(by_pid(old_report, old.parent), old.child, "SIGKILL")


# -- only the tree is ever signalled ---------------------------------------------


def test_foreign_pid_is_never_signalled(gsup: Gsup, start: Callable[..., Run]) -> None:
    run = start()
    outsider = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
    try:
        for pid in (outsider.pid, run.proc.pid):  # a stranger, and the session's own gsup
            done = gsup.run("kill", "--signal", "KILL", "--target", f"pid:{pid}", timeout=30)
            assert done.returncode == 2, (done.stdout, done.stderr)
            assert done.stdout == ""
            assert f"pid {pid} is not in the tree" in done.stderr, done.stderr
            assert f"{run.parent} (parent)" in done.stderr and f"{run.child} (child)" in done.stderr
        assert outsider.poll() is None
        assert run.proc.poll() is None
    finally:
        outsider.kill()
        outsider.wait()
    assert outsider.returncode == -9  # it was alive until our own kill

    done = gsup.run("kill", "--signal", "KILL", "--target", "tree")
    assert done.returncode == 0, done.stderr
    report = run.report()
    (action,) = kill_actions(report)  # the refused sends left no action behind
    assert sorted(action["pids"]) == sorted([run.parent, run.child])


# -- a status the parent reaped but never recorded ---------------------------------


def _blocked_after_reap(parent: int, child: int) -> bool:
    """The child has died and the parent's main thread has left waitpid."""
    try:
        with open(f"/proc/{parent}/task/{parent}/wchan") as f:
            if f.read() == "do_wait":
                return False
    except OSError:
        return False
    try:
        return psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_child_status_survives_parent_killed_in_waitpid(gsup: Gsup, start: Callable[..., Run]) -> None:
    run = start(source=HOG_PARENT)
    wait_until(lambda: (run.ready / "hogging").exists(), what="the parent in waitpid, GIL taken")
    done = gsup.run("kill", "--signal", "KILL", "--target", "child", timeout=30)
    assert done.returncode == 0, done.stderr
    wait_until(lambda: _blocked_after_reap(run.parent, run.child), what="the child dead, waitpid returned")
    done = gsup.run("kill", "--signal", "KILL", "--target", "parent", timeout=30)
    assert done.returncode == 0, done.stderr
    report = run.report()
    assert_killed(by_pid(report, run.parent), "SIGKILL", "parent_bye")
    child = by_pid(report, run.child)
    assert child["end"]["how"] == "signaled", child["end"]
    assert child["end"]["signal"] == "SIGKILL"


def test_old_ended_sessions_are_pruned_live_ones_kept(gsup: Gsup, program: Program,
                                                      monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from supervisor import session as sessions

    quick = program("pass\n", name="quick.py")
    for _ in range(3):
        assert gsup.run("run", "-q", "--python", PYTHON, str(quick)).returncode == 0
    ready = tmp_path / "live-ready"
    waiting = program(ready_then_sleep(ready), name="waiting.py")
    live = gsup.start("run", "-q", "--python", PYTHON, str(waiting))
    wait_until(ready.exists, what="the live session's program")
    monkeypatch.setenv("GSUP_HOME", str(gsup.home))
    assert len(list(gsup.home.iterdir())) == 4
    sessions.prune(keep=1)
    left = sessions.all_sessions()
    assert len(left) == 2  # the live one, and the newest ended one
    assert sum(s.is_live() for s in left) == 1
    live.terminate()  # gsup forwards TERM to the program, then reports
    live.communicate(timeout=30)
    assert live.returncode == 0
