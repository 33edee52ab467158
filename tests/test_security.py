"""Only a session's own processes are ever signalled, whatever its files say.

Sessions are private (0700 directories, 0600 files).  ``gsup kill`` refuses a
session.json that is a link, not ours, malformed, or names processes that are
not the session's (its guardian is the proof of ownership), and a pid that
died and was reused by another process is never signalled: every send checks
the process's start time through a pidfd.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.helpers import PYTHON, Gsup, Program, wait_for_pids, wait_until

FAMILY = """
    import os, sys, time
    ready = sys.argv[1]
    child = os.fork()
    if child == 0:
        open(os.path.join(ready, f"child-{os.getpid()}"), "w").close()
        time.sleep(60)
        os._exit(0)
    open(os.path.join(ready, f"parent-{os.getpid()}"), "w").close()
    os.waitpid(child, 0)
    open(os.path.join(ready, "reaped"), "w").close()
    time.sleep(60)
"""


class Live:
    def __init__(self, gsup: Gsup, proc: subprocess.Popen[str], ready: Path) -> None:
        self.gsup, self.proc, self.ready = gsup, proc, ready
        names = wait_for_pids(ready, ("parent", "child"), what="parent and child")
        self.parent, self.child = names["parent"], names["child"]
        (self.dir,) = [p for p in gsup.home.iterdir() if p.is_dir()]
        self.state_file = self.dir / "session.json"
        self.state: dict[str, Any] = json.loads(self.state_file.read_text())

    def kill(self, *args: str) -> Any:
        return self.gsup.run("kill", "--session", self.dir.name, *args, timeout=30)

    def tamper(self, **changes: Any) -> None:
        self.state_file.write_text(json.dumps({**self.state, **changes}))


@pytest.fixture
def live(gsup: Gsup, program: Program, tmp_path: Path) -> Iterator[Live]:
    ready = tmp_path / "ready"
    ready.mkdir()
    proc = gsup.start("run", "-q", "--json", "--grace", "1s", "--python", PYTHON, str(program(FAMILY)), str(ready))
    run = Live(gsup, proc, ready)
    yield run
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)


def test_session_files_are_private(live: Live) -> None:
    for path in [live.dir, *live.dir.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


@pytest.mark.parametrize("how", ["symlink", "foreign-owner", "garbage", "other-schema"])
def test_damaged_state_is_refused(live: Live, tmp_path: Path, how: str) -> None:
    if how == "symlink":
        copy = tmp_path / "copy.json"
        copy.write_text(live.state_file.read_text())
        live.state_file.unlink()
        live.state_file.symlink_to(copy)
        expected = "session.json is a link or not yours"
    elif how == "foreign-owner":
        if os.getuid() != 0:
            pytest.skip("only root can give a file away")
        os.chown(live.state_file, 65534, 65534)
        expected = "session.json is a link or not yours"
    elif how == "garbage":
        live.state_file.write_text("{not json")
        expected = "malformed session file"
    else:
        live.tamper(schema="gsup.session/99")
        expected = "malformed session file"
    done = live.kill("--signal", "KILL", "--target", "tree")
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.startswith("gsup: error: ") and expected in done.stderr and done.stderr.count("\n") == 1
    assert live.proc.poll() is None and psutil.pid_exists(live.child)
    live.state_file.unlink()
    live.state_file.write_text(json.dumps(live.state))  # as it was, so the run can end normally


def test_state_naming_other_processes_is_refused(live: Live) -> None:
    outsider = subprocess.Popen([sys.executable, "-c", "import os, time; os.fork(); time.sleep(60)"],
                                stdin=subprocess.DEVNULL)
    try:
        stranger = psutil.Process(outsider.pid)
        wait_until(stranger.children, what="the outsider's child")
        as_identity = {"pid": stranger.pid, "create_time": stranger.create_time()}
        # gsup's pid replaced by another of our processes, copied exactly: the guardian gives it away.
        live.tamper(gsup=as_identity)
        done = live.kill("--signal", "KILL", "--target", "tree")
        assert done.returncode == 2, done
        assert "refusing session" in done.stderr and "tampered" in done.stderr
        # The program's pid replaced by the outsider: it is not below the session's gsup.
        live.tamper(root=as_identity)
        done = live.kill("--signal", "KILL", "--target", "parent")
        assert done.returncode == 2, done
        assert f"names pid {stranger.pid} as the program, but that process is not below its gsup" in done.stderr
        assert outsider.poll() is None and all(c.is_running() for c in stranger.children())
    finally:
        for child in psutil.Process(outsider.pid).children():
            child.kill()
        outsider.kill()
        outsider.wait()
        live.tamper()


def _take_pid(pid: int) -> subprocess.Popen[str] | None:
    """Start a stranger that gets exactly ``pid``, by setting the kernel's last pid."""
    for _ in range(20):
        try:
            Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
        except OSError:
            return None
        stranger = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
        if stranger.pid == pid:
            return stranger
        stranger.kill()
        stranger.wait()
    return None


def test_a_recycled_pid_is_never_signalled(live: Live) -> None:
    from supervisor import signals

    old = signals.identity(live.child)
    assert old is not None
    done = live.kill("--signal", "KILL", "--target", f"pid:{live.child}")
    assert done.returncode == 0, done
    wait_until((live.ready / "reaped").exists, what="the parent to reap its child")
    stranger = _take_pid(live.child)
    if stranger is None:
        pytest.skip("cannot steer pid allocation here (/proc/sys/kernel/ns_last_pid)")
    try:
        # Same pid, another process: the identity (pid + start time) no longer matches.
        assert signals.send(old, signal.SIGKILL) is False
        done = live.kill("--signal", "KILL", "--target", f"pid:{live.child}")
        assert done.returncode == 2 and f"pid {live.child} is not in the tree" in done.stderr, done
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
    assert stranger.returncode == -signal.SIGKILL  # alive until the test itself killed it


def test_ps_lists_sound_sessions_and_says_which_it_refused(live: Live) -> None:
    live.tamper(guardian=None)
    done = live.gsup.run("ps", timeout=30)
    assert done.returncode == 0 and done.stdout == "no live gsup session\n", done
    assert done.stderr == f"gsup: refusing session {live.dir.name}: it names no running guardian; " \
                          "session.json damaged or tampered with?\n"
    live.tamper()
    done = live.gsup.run("ps", timeout=30)
    assert done.returncode == 0 and f"session {live.dir.name}" in done.stdout and done.stderr == "", done


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run gsup as another user")
@pytest.mark.parametrize("mode", [0o700, 0o755], ids=["private", "readable"])
def test_another_users_sessions_are_refused(program: Program, tmp_path: Path, mode: int) -> None:
    """A normal user whose GSUP_HOME names root's sessions gets one line and exit 2 from
    every command, the refusal ``gsup run`` gives, whether or not it can read them."""
    import tempfile

    from tests.helpers import GSUP

    shared = Path(tempfile.mkdtemp(prefix="gsup-foreign-"))
    try:
        shared.chmod(0o755)
        home = shared / "home"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("GSUP_")}, "GSUP_HOME": str(home)}
        ran = subprocess.run([*GSUP, "run", "-q", "--python", PYTHON, str(program("print('hi')\n"))], env=env,
                             capture_output=True, text=True, check=False, timeout=60)
        assert ran.returncode == 0, ran.stderr
        home.chmod(mode)
        [session] = [p.name for p in home.iterdir()]
        as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *GSUP]
        for args in (["ps"], ["ps", "--all"], ["kill"], ["kill", "--session", session], ["report"],
                     ["report", session], ["report", "--json", session]):
            done = subprocess.run([*as_nobody, *args], env=env, capture_output=True, text=True, check=False,
                                  timeout=60, cwd="/")
            assert (done.returncode, done.stdout) == (2, ""), (args, done)
            uid = os.stat(home).st_uid
            assert done.stderr == (f"gsup: error: refusing session directory {home}: owned by uid {uid}, not "
                                   f"{pwd_uid('nobody')}\n"), (args, done.stderr)
    finally:
        subprocess.run(["rm", "-rf", str(shared)], check=False)


def pwd_uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid
