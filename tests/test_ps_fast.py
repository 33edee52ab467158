"""``gsup ps``'s fast path (supervisor/ps.py, supervisor/procfs.py) against the ordinary one.

A real process tree stands in for a run: a "gsup" process with a launched
"parent" below it, two children, a grandchild that exec'd, and a zombie.  Session
files naming it, sound and broken in every way ``session.load`` checks, are
written to the test's home; then ``gsup ps`` (fast) and ``cli.entry`` (click and
psutil) must print the same bytes and exit with the same code.
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
from tests.conftest import GSUP, PYTHON, Gsup, wait_until

TREE = """
import os, sys, time

def rest():
    while True:
        time.sleep(60)

ready = sys.argv[1]
root = os.fork()
if root == 0:
    kids = []
    for n in range(2):
        pid = os.fork()
        if pid == 0:
            if n == 0 and os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)",
                                          "grandchild with a command line longer than sixty characters"])
            rest()
        kids.append(pid)
    zombie = os.fork()
    if zombie == 0:
        os._exit(0)  # never reaped: a zombie in the tree
    with open(ready + ".tmp", "w") as out:
        out.write(" ".join(map(str, [os.getpid(), *kids, zombie])))
    os.replace(ready + ".tmp", ready)
    rest()
rest()
"""

SLOW_PS = "import sys; sys.argv = ['gsup', 'ps']; from supervisor.cli import entry; entry()"


@dataclass
class FakeRun:
    """A tree shaped like a run's: ``gsup`` (the top) above ``parent``."""

    gsup: psutil.Process
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
        }
        state.update(changes)
        return state


@pytest.fixture
def tree(gsup: Gsup, tmp_path: Path) -> Iterator[FakeRun]:
    ready = tmp_path / "tree-ready"
    script = tmp_path / "tree.py"
    script.write_text(TREE)
    top = subprocess.Popen([PYTHON, str(script), str(ready)], env=gsup.env, start_new_session=True)
    try:
        pids = [int(p) for p in wait_until(lambda: ready.exists() and ready.read_text(), what="tree").split()]
        parent, children, zombie = pids[0], pids[1:3], pids[3]
        gone = lambda pid: psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # noqa: E731
        wait_until(lambda: gone(zombie), what="zombie")
        wait_until(lambda: any("grandchild" in " ".join(p.cmdline()) for p in psutil.Process(children[0]).children()),
                   what="grandchild's exec")
        yield FakeRun(psutil.Process(top.pid), parent, children, zombie)
    finally:
        os.killpg(top.pid, signal.SIGKILL)
        top.wait()


def write_session(home: Path, name: str, state: Any) -> Path:
    directory = home / name
    (directory / "events").mkdir(parents=True)
    path = directory / "session.json"
    path.write_text(state if isinstance(state, str) else json.dumps(state))
    return path


def both(gsup: Gsup, env: dict[str, str] | None = None) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """(fast, ordinary): returncode, stdout, stderr of each."""
    fast = gsup.run("ps", env=env)
    slow = subprocess.run([PYTHON, "-c", SLOW_PS], capture_output=True, text=True, timeout=60, cwd=gsup.workdir,
                          env={**gsup.env, **(env or {})}, check=False)
    return (fast.returncode, fast.stdout, fast.stderr), (slow.returncode, slow.stdout, slow.stderr)


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
    assert [role for _, role in shown[3:]] == ["grandchild"]  # the zombie is not shown
    assert "-c import time; time.sleep(600) " in fast[1]  # cut at 60 characters


def test_imports_neither_click_nor_psutil(gsup: Gsup, tree: FakeRun) -> None:
    gsup.home.mkdir()
    write_session(gsup.home, "1-aaaa", tree.state())
    done = subprocess.run([PYTHON, "-X", "importtime", "-m", "supervisor", "ps"], capture_output=True, text=True,
                          timeout=60, env=gsup.env, check=False)
    assert done.returncode == 0 and str(tree.parent) in done.stdout
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
    assert {"click", "psutil", "rich", "supervisor.cli"}.isdisjoint(imported), sorted(imported)


BROKEN: list[Callable[[FakeRun], Any]] = [
    lambda t: t.state(finished=True),
    lambda t: t.state(root=None),
    lambda t: t.state(command="abc"),  # iterable: shown letter by letter, as load reads it
    lambda t: t.state(command=5),
    lambda t: t.state(gsup={"pid": t.gsup.pid, "create_time": 12.5}),  # a recycled pid
    lambda t: t.state(gsup={"pid": str(t.gsup.pid), "create_time": t.gsup.create_time()}),
    lambda t: t.state(schema="gsup.session/2"),
    lambda t: {k: v for k, v in t.state().items() if k != "pgid"},
    lambda t: {k: v for k, v in t.state().items() if k != "launched"},
    lambda t: t.state(launched="soon"),
    lambda t: t.state(started=None),
    lambda t: t.state(guardian={"pid": t.children[1], "create_time": 1.0}),  # gsup's helper: not listed
    lambda t: t.state(guardian={"pid": "x"}),
    lambda t: [t.state()],
    lambda t: "{not json",
    lambda t: "",
    lambda t: t.state(command=[PYTHON, "\x1b[31mred\x1b[0m"]),  # click strips escapes off a terminal
    lambda t: t.state(gsup={"pid": -1, "create_time": 1.0}),  # psutil's ValueError: an internal error
    lambda t: json.dumps(t.state()).replace('"pgid": ' + str(t.parent), '"pgid": 1e999'),  # OverflowError
]


@pytest.mark.parametrize("variant", range(len(BROKEN)))
def test_session_variants_same_as_click_path(gsup: Gsup, tree: FakeRun, variant: int) -> None:
    gsup.home.mkdir()
    write_session(gsup.home, "2-bbbb", tree.state(started=time.time() - 10))  # a sound, older one
    write_session(gsup.home, "3-cccc", BROKEN[variant](tree))
    fast, slow = both(gsup)
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
    assert [pid for pid, _ in procfs.descendants(tree.gsup.pid)] == [p.pid for p in tree.gsup.children(recursive=True)]
    assert procfs.boot_time() == psutil.boot_time()
    assert procfs.stat(os.getpid()) is not None and procfs.descendants(2**22 + 1) == []
    with pytest.raises(ValueError):
        procfs.stat(-1)
    assert sys.getfilesystemencoding() == procfs.ENCODING
