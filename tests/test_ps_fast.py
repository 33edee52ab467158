"""``gsup ps``'s fast path (supervisor/ps.py) against the click command; procfs against psutil.

A real process tree stands in for a run: a "gsup" process, its "guardian"
(whose command line names the session directories, as the real one does), the
launched "parent" below that, two children, a grandchild that exec'd, and a
zombie.  Session
files naming it, sound and broken in every way ``discovery.load`` checks, are
written to the test's home; then ``gsup ps`` (fast) and ``cli.entry`` (click)
must print the same bytes and exit with the same code, the fast path stepping
aside only where click would rewrite the text or an error must be reported.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import psutil
import pytest

from supervisor import procfs
from tests.helpers import GSUP, PYTHON, Gsup, wait_until

TREE = """
import os, signal, sys, time

children = []

def fork():
    pid = os.fork()
    if pid == 0:
        children.clear()
    else:
        children.append(pid)
    return pid

def end(*_):
    # TERM is passed down and everything below is reaped (the zombie too): no orphan is left to init
    for pid in children:
        os.kill(pid, signal.SIGTERM)
    for pid in children:
        os.waitpid(pid, 0)
    os._exit(0)

def rest():
    while True:
        time.sleep(60)

signal.signal(signal.SIGTERM, end)
ready = sys.argv[1]
if sys.argv[2] != "--guardian":  # the stand-in gsup: its child is the guardian
    if fork() == 0:
        os.execv(sys.executable, [sys.executable, __file__, ready, "--guardian", *sys.argv[2:]])
    rest()
if fork() == 0:  # the launched program, "parent"
    for n in range(2):
        if fork() == 0:
            if n == 0 and fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)",
                                          "grandchild with a command line longer than sixty characters"])
            rest()
    if fork() == 0:
        os._exit(0)  # never reaped: a zombie in the tree
    with open(ready + ".tmp", "w") as out:
        out.write(" ".join(map(str, [os.getppid(), os.getpid(), *children])))
    os.replace(ready + ".tmp", ready)
    rest()
rest()
"""

SESSIONS = ["1-aaaa", "2-bbbb", "3-cccc", "4-dddd"]  # directories the guardian names
SLOW_PS = "import sys; sys.argv = ['gsup', 'ps']; from supervisor.cli import entry; entry()"


@dataclass
class FakeRun:
    """A tree shaped like a run's: ``gsup`` (the top) above ``parent``."""

    gsup: psutil.Process
    guardian: psutil.Process
    parent: int
    children: list[int]
    zombie: int

    def state(self, **changes: Any) -> dict[str, Any]:
        """A sound session.json for this tree, with ``changes`` applied."""
        state = {
            "schema": "gsup.session/1", "id": f"{self.gsup.pid}-abcd",
            "command": [PYTHON, "app.py", "--flag", "an arg"],
            "gsup": {"pid": self.gsup.pid, "create_time": self.gsup.create_time()},
            "root": {"pid": self.parent, "create_time": psutil.Process(self.parent).create_time()},
            "pgid": self.parent, "started": time.time(), "launched": 1.5, "finished": False,
            "guardian": {"pid": self.guardian.pid, "create_time": self.guardian.create_time()},
        }
        state.update(changes)
        return state


@pytest.fixture
def tree(gsup: Gsup, tmp_path: Path) -> Iterator[FakeRun]:
    ready = tmp_path / "tree-ready"
    script = tmp_path / "tree.py"
    script.write_text(TREE)
    top = subprocess.Popen([PYTHON, str(script), str(ready), *(str(gsup.home / name) for name in SESSIONS)],
                           env=gsup.env, start_new_session=True)
    try:
        pids = [int(p) for p in wait_until(lambda: ready.exists() and ready.read_text(), what="tree").split()]
        guardian, parent, children, zombie = pids[0], pids[1], pids[2:4], pids[4]
        gone = lambda pid: psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # noqa: E731
        wait_until(lambda: gone(zombie), what="zombie")
        wait_until(lambda: any("grandchild" in " ".join(p.cmdline()) for p in psutil.Process(children[0]).children()),
                   what="grandchild's exec")
        yield FakeRun(psutil.Process(top.pid), psutil.Process(guardian), parent, children, zombie)
    finally:
        everyone = psutil.Process(top.pid).children(recursive=True)
        top.terminate()  # passed down the tree, each process reaping its own
        try:
            top.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(top.pid, signal.SIGKILL)
            top.wait()
        psutil.wait_procs(everyone, timeout=10)


def write_session(home: Path, name: str, state: Any) -> Path:
    directory = home / name
    (directory / "events").mkdir(parents=True)
    path = directory / "session.json"
    path.write_text(state if isinstance(state, str) else json.dumps(state))
    return path


Outcome = tuple[int, str, str]  # returncode, stdout, stderr


def both(gsup: Gsup, env: dict[str, str] | None = None, fast_path: bool | None = True) -> tuple[Outcome, Outcome]:
    """(``gsup ps``, the ordinary path), after checking whether ``gsup ps`` answered
    without click (``fast_path``; None: either way)."""
    full_env = {**gsup.env, **(env or {})}
    fast = subprocess.run([PYTHON, "-X", "importtime", "-m", "supervisor", "ps"], capture_output=True, text=True,
                          timeout=60, cwd=gsup.workdir, env=full_env, check=False)
    imported = [line for line in fast.stderr.splitlines(keepends=True) if line.startswith("import time:")]
    if fast_path is not None:
        assert (not any(line.split("|")[-1].strip() == "click" for line in imported)) == fast_path
    slow = subprocess.run([PYTHON, "-c", SLOW_PS], capture_output=True, text=True, timeout=60, cwd=gsup.workdir,
                          env=full_env, check=False)
    stderr = "".join(line for line in fast.stderr.splitlines(keepends=True) if line not in imported)
    return (fast.returncode, fast.stdout, stderr), (slow.returncode, slow.stdout, slow.stderr)


def rows(stdout: str) -> list[tuple[int, str]]:
    return [(int(line.split()[0]), line.split()[1]) for line in stdout.splitlines() if line.startswith("  ")]


# -- the same output ------------------------------------------------------------------


def test_live_tree_same_as_click_path(gsup: Gsup, tree: FakeRun) -> None:
    gsup.home.mkdir()
    write_session(gsup.home, "1-aaaa", tree.state())
    fast, slow = both(gsup)
    assert fast == slow
    shown = rows(fast[1])
    assert shown[:3] == [(tree.parent, "parent"), (tree.children[0], "child"), (tree.children[1], "child")]
    assert [role for _, role in shown[3:]] == ["grandchild"]  # neither the zombie nor the guardian is shown
    argv = [PYTHON, "-c", "import time; time.sleep(600)", "grandchild with a command line longer than sixty characters"]
    assert f"  {' '.join(argv)[:60]}\n" in fast[1]  # cut at 60 characters, wherever the venv lives


def test_imports_neither_click_nor_psutil(gsup: Gsup, tree: FakeRun) -> None:
    gsup.home.mkdir()
    write_session(gsup.home, "1-aaaa", tree.state())
    done = subprocess.run([PYTHON, "-X", "importtime", "-m", "supervisor", "ps"], capture_output=True, text=True,
                          timeout=60, env=gsup.env, check=False)
    assert done.returncode == 0 and str(tree.parent) in done.stdout
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
    assert {"click", "psutil", "rich", "supervisor.cli"}.isdisjoint(imported), sorted(imported)


FAST, ASIDE = True, False  # whether gsup ps answers itself, or steps aside for the ordinary path
VARIANTS: list[tuple[Callable[[FakeRun], Any], bool]] = [
    (lambda t: t.state(finished=True), FAST),
    (lambda t: t.state(root=None), FAST),
    (lambda t: t.state(command="abc"), FAST),  # iterable: shown letter by letter, as load reads it
    (lambda t: t.state(command=5), FAST),
    (lambda t: t.state(gsup={"pid": t.gsup.pid, "create_time": 12.5}), FAST),  # a recycled pid
    (lambda t: t.state(gsup={"pid": str(t.gsup.pid), "create_time": t.gsup.create_time()}), FAST),
    (lambda t: t.state(schema="gsup.session/2"), FAST),
    (lambda t: {k: v for k, v in t.state().items() if k != "pgid"}, FAST),
    (lambda t: {k: v for k, v in t.state().items() if k != "launched"}, FAST),
    (lambda t: {k: v for k, v in t.state().items() if k != "guardian"}, FAST),  # refused: no guardian
    (lambda t: t.state(launched="soon"), FAST),
    (lambda t: t.state(started=None), FAST),
    (lambda t: t.state(guardian=None), FAST),
    (lambda t: t.state(guardian={"pid": t.children[1], "create_time": psutil.Process(t.children[1]).create_time()}),
     FAST),  # refused: not a child of gsup naming the session
    (lambda t: t.state(guardian={"pid": "x"}), FAST),
    (lambda t: t.state(root={"pid": os.getpid(), "create_time": psutil.Process().create_time()}),
     FAST),  # refused: the program is not below its gsup
    (lambda t: [t.state()], FAST),
    (lambda t: "{not json", FAST),
    (lambda t: "", FAST),
    (lambda t: t.state(command=[PYTHON, "\x1b[31mred\x1b[0m"]), ASIDE),  # click strips escapes off a terminal
    (lambda t: t.state(gsup={"pid": -1, "create_time": 1.0}), ASIDE),  # psutil's ValueError: an internal error
    (lambda t: json.dumps(t.state()).replace('"pgid": ' + str(t.parent), '"pgid": 1e999'), ASIDE),  # OverflowError
]


@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_session_variants_same_as_click_path(gsup: Gsup, tree: FakeRun, variant: int) -> None:
    gsup.home.mkdir()
    write_session(gsup.home, "2-bbbb", tree.state(started=time.time() - 10))  # a sound, older one
    state, fast_path = VARIANTS[variant]
    write_session(gsup.home, "3-cccc", state(tree))
    fast, slow = both(gsup, fast_path=fast_path)
    assert fast == slow


def test_unreadable_entries_same_as_click_path(gsup: Gsup, tree: FakeRun, tmp_path: Path) -> None:
    gsup.home.mkdir()
    write_session(gsup.home, "1-aaaa", tree.state())
    (gsup.home / "not-a-dir").write_text("x")
    (gsup.home / "no-state").mkdir()
    (gsup.home / ".hidden").mkdir()
    linked = write_session(gsup.home, "4-dddd", tree.state(started=time.time() + 1))
    target = tmp_path / "elsewhere.json"
    linked.rename(target)
    linked.symlink_to(target)
    (gsup.home / "5-eeee" / "session.json").mkdir(parents=True)
    fast, slow = both(gsup)
    assert fast == slow
    assert fast[1].count("session ") == 1


def test_unnormalised_home_same_as_click_path(gsup: Gsup, tree: FakeRun) -> None:
    gsup.home.mkdir()
    write_session(gsup.home, "1-aaaa", tree.state())
    fast, slow = both(gsup, env={"GSUP_HOME": f"{gsup.home}//./"})
    assert fast == slow
    assert str(tree.parent) in fast[1]


def test_no_session_home_same_as_click_path(gsup: Gsup) -> None:
    fast, slow = both(gsup)
    assert fast == slow == (0, "no live gsup session\n", "")


def test_write_error_reported_as_click_path(gsup: Gsup, tree: FakeRun) -> None:
    gsup.home.mkdir()
    write_session(gsup.home, "1-aaaa", tree.state())
    results = []
    for argv in ([*GSUP, "ps"], [PYTHON, "-c", SLOW_PS]):
        with open("/dev/full", "w") as full:
            done = subprocess.run(argv, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60, env=gsup.env,
                                  check=False)
        results.append((done.returncode, done.stderr.splitlines()[0]))
    assert results[0] == results[1]
    assert results[0][0] == 3 and "internal error: OSError" in results[0][1]


# -- procfs against psutil -------------------------------------------------------------


def test_procfs_matches_psutil(tree: FakeRun) -> None:
    for proc in [tree.gsup, *tree.gsup.children(recursive=True)]:
        info = procfs.stat(proc.pid)
        assert info is not None
        assert procfs.create_time(info) == proc.create_time()
        assert info.ppid == proc.ppid()
        assert procfs.cmdline(proc.pid) == (None if proc.pid == tree.zombie else proc.cmdline())
    assert sorted(pid for pid, _ in procfs.descendants(tree.gsup.pid)) == sorted(
        p.pid for p in tree.gsup.children(recursive=True))
    assert procfs.boot_time() == psutil.boot_time()
    assert procfs.stat(os.getpid()) is not None and procfs.descendants(2**22 + 1) == []
    with pytest.raises(ValueError):
        procfs.stat(-1)
    assert sys.getfilesystemencoding() == procfs.ENCODING
