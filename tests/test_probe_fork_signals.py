"""The probe's fork path under a storm of signals whose Python handler raises.

A signal landing in the at-fork hook used to stop it half-way: the child went
on writing into its parent's event file (reported ``instrumented: false``, the
parent credited with its ``os._exit``), and the hook's traceback landed in the
program's stderr.  Here a program forks 300 children while this test sends
SIGUSR1 to its whole process group as fast as it can; the handler raises in a
child (once), never in the parent.  Before the fix about one child in eight lost
its events on every run.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from supervisor.events import read_all
from tests.helpers import INTERPRETERS, PYTHON_TIMEOUT, probe_env, wait_until, write_program

CHILDREN = 300

FORK_STORM = """
import os, signal, sys

PARENT = os.getpid()
raised = []


def boom(signum, frame):
    if os.getpid() != PARENT and not raised:
        raised.append(1)
        raise RuntimeError("signal in the child")


def child():
    while True:
        try:
            os._exit(7)
        except RuntimeError:
            pass


def main():
    signal.signal(signal.SIGUSR1, boom)
    open(sys.argv[1], "w").close()  # ready: the storm may begin
    kids = []
    for _ in range(int(sys.argv[2])):
        try:
            pid = os.fork()
        except RuntimeError:  # only ever raised in a child
            child()
        if pid == 0:
            child()
        kids.append(pid)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # the storm goes on while this one ends
    print(*kids)
    print(*(os.waitpid(pid, 0)[1] for pid in kids))


try:
    main()
except RuntimeError:
    if os.getpid() == PARENT:
        raise
    child()
"""


def storm(proc: subprocess.Popen[bytes]) -> None:
    """SIGUSR1 to the program's group, back to back, until it ends."""
    while proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGUSR1)
        except ProcessLookupError:
            return


@pytest.mark.parametrize("python", INTERPRETERS)
def test_every_child_keeps_its_own_events(python: str, tmp_path: Path) -> None:
    prog = write_program(tmp_path / "prog.py", FORK_STORM)
    events, ready = tmp_path / "events", tmp_path / "ready"
    events.mkdir()
    proc = subprocess.Popen([python, str(prog), str(ready), str(CHILDREN)], env=probe_env(events), cwd=tmp_path,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        wait_until(lambda: ready.exists() or proc.poll() is not None, what="the program to be ready")
        storm(proc)
        out, err = proc.communicate(timeout=PYTHON_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert err == b"", err.decode()  # no probe traceback in the program's stderr
    lines = out.decode().splitlines()
    kids = [int(pid) for pid in lines[0].split()]
    assert len(kids) == CHILDREN and set(lines[1].split()) == {str(7 << 8)}

    images = {image.pid: image for image in read_all(events)}
    for image in images.values():
        assert image.start is not None and image.start["pid"] == image.pid, f"{image.path.name}: {image.start}"
    parent = images[proc.pid]
    assert parent.of_kind("os_exit") == [], "the parent was credited with a child's os._exit"
    spawned = [e["pid"] for e in parent.of_kind("spawn")]
    assert spawned == kids, f"the parent recorded {len(spawned)} of {CHILDREN} forks"
    lost = [pid for pid in kids if pid not in images]
    assert lost == [], f"{len(lost)} of {CHILDREN} children wrote no events of their own"
    for pid in kids:
        assert images[pid].start is not None and images[pid].start["fork"] is True
        assert [e["code"] for e in images[pid].of_kind("os_exit")][-1:] == [7], images[pid].events
