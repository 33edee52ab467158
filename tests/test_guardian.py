"""Nothing outlives gsup: SIGKILL gsup itself, and its guardian ends the tree.

The program below leaves behind the hardest cases together: a child that
ignores SIGTERM, a double-forked ``setsid`` daemon (out of every process group
gsup knows), and a grandchild forking in a loop.  Each writes its pid to a file;
the test waits for all of them, SIGKILLs gsup, and then requires every one to
be gone within 2 s (pidfds: no polling).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from supervisor import control, signals
from tests.helpers import PYTHON, Gsup, Program, wait_for_pids, wait_until

TREE = """
    import os, signal, sys, time
    pids = sys.argv[1]

    def note(what):
        with open(os.path.join(pids, f"{what}-{os.getpid()}"), "w"):
            pass

    def stubborn():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        note("stubborn")
        while True:
            time.sleep(60)

    def daemon():
        if os.fork():
            os._exit(0)
        os.setsid()
        if os.fork():
            os._exit(0)
        note("daemon")
        while True:
            time.sleep(60)

    def forker():
        note("forker")
        while True:
            child = os.fork()
            if child == 0:
                time.sleep(0.05)
                os._exit(0)
            os.waitpid(child, 0)

    for role in (stubborn, daemon, forker):
        if os.fork() == 0:
            role()
    note("root")
    while True:
        time.sleep(60)
"""

NEEDED = ("root", "stubborn", "daemon", "forker")


def _gone_within(pids: list[int], seconds: float) -> list[int]:
    """The pids still alive after ``seconds`` (each watched through a pidfd, as ``gsup kill --wait`` does)."""
    known = [found for found in map(signals.identity, pids) if found is not None]
    return [proc.pid for proc in control.wait_for(known, seconds) if psutil.pid_exists(proc.pid) and
            psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE]


def _start_tree(gsup: Gsup, program: Program, tmp_path: Path, *options: str,
                ) -> tuple[subprocess.Popen[str], dict[str, int]]:
    """A ``gsup run OPTIONS`` of TREE, once every process of the tree has written its pid."""
    script = program(TREE)
    pids = tmp_path / "pids"
    pids.mkdir()
    proc = gsup.start("run", *options, "--python", PYTHON, str(script), str(pids))
    return proc, wait_for_pids(pids, NEEDED, what="every process of the tree to start")


def test_sigkilled_gsup_leaves_nothing_running(gsup: Gsup, program: Program, tmp_path: Path) -> None:
    proc, found = _start_tree(gsup, program, tmp_path, "-q")
    everyone = [p.pid for p in gsup.leftovers() if p.pid != proc.pid]
    assert set(found.values()) <= set(everyone)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert _gone_within(everyone, 2.0) == []

    # The report is still recoverable from the session's files, and says who killed them.
    (session,) = [p.name for p in gsup.home.iterdir() if p.is_dir()]
    rebuilt = gsup.run("report", session, "--json")
    assert rebuilt.returncode == 3, rebuilt.stderr  # partial: gsup itself died
    report = rebuilt.report
    assert any("died" in why for why in report["incomplete"])
    by_pid = {p["pid"]: p for p in report["processes"]}
    assert by_pid[found["root"]]["end"]["signal"] == "SIGKILL"
    assert any(a["by"] == "guardian" and found["daemon"] in a["pids"] for a in report["actions"])
    assert "guardian" in by_pid[found["stubborn"]]["explanation"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_gsup_signalled_ends_the_tree_and_still_reports(gsup: Gsup, program: Program, tmp_path: Path,
                                                          sig: signal.Signals) -> None:
    proc, found = _start_tree(gsup, program, tmp_path, "--json", "-q", "--grace", "1s")
    proc.send_signal(sig)
    report = gsup.finish(proc, timeout=30).report
    assert _gone_within(list(found.values()), 0.5) == []
    assert report["complete"], report["incomplete"]
    assert report["actions"][0]["signal"] == sig.name and report["actions"][0]["target"] == "group"
    by_pid = {p["pid"]: p for p in report["processes"]}
    # The daemon left the group and the stubborn child ignored the signal: both
    # outlived the root by the grace period, and are reported as such.
    for survivor in ("daemon", "stubborn") if sig == signal.SIGTERM else ("daemon",):
        end = by_pid[found[survivor]]["end"]
        assert (end["how"], end["then"]["signal"]) == ("left-running", "SIGKILL"), end
        assert found[survivor] in report["leftovers"]
    assert by_pid[found["root"]]["end"]["signal"] == sig.name


def _signal_set(status: str, field: str) -> set[int]:
    """A /proc/PID/status signal mask (``SigCgt``, ``SigIgn``) as signal numbers."""
    [mask] = [int(line.split()[1], 16) for line in status.splitlines() if line.startswith(field + ":")]
    return {n + 1 for n in range(64) if mask >> n & 1}


def test_the_guardian_is_what_exec_would_make_of_a_fork_of_gsup(gsup: Gsup, program: Program,
                                                                 tmp_path: Path) -> None:
    """The guardian is forked from gsup, not started: it must hold none of gsup's
    close-on-exec descriptors (a pipe end gsup waits on would never see EOF), catch
    no signal with gsup's handlers, and say what it is to ps."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    script = program(f"""
        import os, time
        open({str(ready)!r}, "w").close()
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
    """)
    running = gsup.start("run", "--json", "-q", "--python", PYTHON, str(script))
    try:
        wait_until(ready.exists, what="the program to start")
        [guardian] = [p for p in psutil.Process(running.pid).children() if p.name() == "gsup-guardian"]
        fds = {int(fd): os.readlink(f"/proc/{guardian.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{guardian.pid}/fd")}
        status = Path(f"/proc/{guardian.pid}/status").read_text()
    finally:
        go.touch()
    result = gsup.finish(running)
    assert result.returncode == 0, result.stderr
    session_dir = result.report["session"]
    assert [fd for fd, target in sorted(fds.items()) if not target.endswith("/" + session_dir)] == [0, 1, 2, 3]
    assert len(fds) == 5  # gsup's three, the status pipe, and its session's directory (its proof of identity)
    assert _signal_set(status, "SigCgt") == {signal.SIGUSR1}  # the guardian's own handler, and no other
    assert {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT} <= _signal_set(status, "SigIgn")
    assert _signal_set(status, "SigBlk") == set()


def test_a_forked_guardian_that_cannot_set_up_says_why(tmp_path: Path) -> None:
    """What posix_spawn would have refused (here: a --stdin file gone since it was checked)
    comes back from the forked guardian as its one error line, and nothing is left."""
    from supervisor import launch
    from supervisor.errors import GsupError

    gone = tmp_path / "gone"
    with pytest.raises(GsupError, match=f"cannot start: {gone}: No such file or directory$"):
        launch.spawn([PYTHON, "-c", "pass"], dict(os.environ), False, tmp_path, 0.0, stdin=str(gone))
    assert not [p for p in psutil.Process().children() if p.name() == "gsup-guardian"]  # reaped, even as a zombie
